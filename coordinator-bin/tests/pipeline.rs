//! The build pipeline on a fixture project shaped like Go: `make.sh` builds a tool,
//! `bin/tool list` prints the test units and `bin/tool run U…` runs them, each unit
//! passing after a delay, failing or hanging as `units.txt` says. Built by the real
//! `coordinator` binary on local buildlets over loopback.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::fixture::commit_units;
use common::*;

/// A builder with `helpers` helpers on its own host type (so helpers are never taken by
/// another builder's build).
fn builder(name: &str, helpers: usize, make_log: &Path) -> String {
    format!(
        r#"
[[builders]]
name = "{name}"
host_type = "host-{name}"
steps = [["./make.sh"]]
env = ["BUILDER_TAG={name}", "MAKE_LOG={log}"]
step_timeout_secs = 60
snapshot = true
tests = {{ list = ["bin/tool", "list"], run = ["bin/tool", "run", "{{units}}"], helpers = {helpers}, unit_timeout_secs = 2, banner = "XXXBANNERXXX:" }}
"#,
        log = make_log.display()
    )
}

/// The finished build of `builder` at `rev`: (result cell, build id).
fn finished(port: u16, rev: &str, builder: &str) -> (String, String) {
    let cell = wait_for_or(
        &format!("{builder} at {rev} to finish"),
        120,
        || {
            let c = cell(&grid(port), rev, builder);
            (!c.is_empty()).then_some(c)
        },
        || http(port, "GET", "/status?mode=json", "").1,
    );
    (cell, build_id(port, rev, builder))
}

/// The id of the newest finished build of `builder` at `rev`, from the status page's
/// recent builds.
fn build_id(port: u16, rev: &str, builder: &str) -> String {
    let (_, body) = http(port, "GET", "/status?mode=json", "");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    status["recent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["builder"] == builder && rev.starts_with(b["short"].as_str().unwrap_or("-")))
        .and_then(|b| b["id"].as_str())
        .unwrap_or_else(|| panic!("no recent build of {builder} at {rev}: {body}"))
        .to_string()
}

fn units_of(port: u16, id: &str) -> Vec<serde_json::Value> {
    let (status, body) = http(port, "GET", &format!("/api/builds/{id}/units"), "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn make_runs(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn sharded_tests_on_zero_one_and_three_helpers() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let make_log = dir.path().join("make.log");
    let units: String = (0..12)
        .map(|i| format!("u{i:02} pass {}\n", 50 + 30 * i))
        .collect();
    let good = commit_units(&repo, &units, "twelve passing units");
    let builders = [("shard0", 0), ("shard1", 1), ("shard3", 3)];
    let mut text: String = builders
        .iter()
        .map(|(n, h)| builder(n, *h, &make_log))
        .collect();
    text.push_str("\n[pools.local]\n");
    for (n, h) in builders {
        text.push_str(&format!("host-{n} = {}\n", h + 1));
    }
    let cfg = config(dir.path(), &repo, &text);
    let c = start(&cfg);
    let port = c.port;

    // The same per-unit results whatever the number of helpers.
    let mut results: Vec<BTreeMap<String, String>> = Vec::new();
    for (name, helpers) in builders {
        let (cell, id) = finished(port, &good, name);
        assert_eq!(
            cell,
            "ok",
            "{name}: {}",
            http(port, "GET", &format!("/log/{id}"), "").1
        );
        let units = units_of(port, &id);
        assert_eq!(units.len(), 12, "{name}: {units:?}");
        let buildlets: std::collections::BTreeSet<&str> = units
            .iter()
            .filter_map(|u| u["buildlet"].as_str())
            .collect();
        assert!(
            buildlets.len() > usize::from(helpers > 0),
            "{name} ran its units on {buildlets:?}"
        );
        // Slowest first.
        let millis: Vec<i64> = units
            .iter()
            .map(|u| u["millis"].as_i64().unwrap())
            .collect();
        assert!(millis.windows(2).all(|w| w[0] >= w[1]), "{millis:?}");
        results.push(
            units
                .iter()
                .map(|u| {
                    (
                        u["name"].as_str().unwrap().to_owned(),
                        u["result"].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
        );
        // The log has every unit's output in list order, banners rendered.
        let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
        let first = log.find("##### u00").expect("u00 in the log");
        let last = log.find("##### u11").expect("u11 in the log");
        assert!(first < last, "{log}");
        assert!(log.contains("All tests passed."), "{log}");
        assert!(!log.contains("XXXBANNERXXX"), "{log}");
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    assert!(results[0].values().all(|r| r == "ok"));

    // Each builder ran make once; a second build of the same key starts from the
    // snapshot and runs no make.
    assert_eq!(make_runs(&make_log).len(), 3, "{:?}", make_runs(&make_log));
    let (status, body) = http(
        port,
        "POST",
        "/api/builds",
        &format!(r#"{{"source":"repo","rev":"{good}","builder":"shard1"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let again: serde_json::Value = serde_json::from_str(&body).unwrap();
    let again_id = again["id"].as_str().unwrap().to_owned();
    wait_for("the second build of the same key", 120, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{again_id}"), "");
        body.contains("\"succeeded\"").then_some(())
    });
    assert_eq!(make_runs(&make_log).len(), 3, "{:?}", make_runs(&make_log));
    let (_, page) = http(port, "GET", &format!("/build/{again_id}"), "");
    assert!(page.contains("restore snapshot"), "{page}");
    assert!(page.contains("Test units"), "{page}");
    assert_eq!(units_of(port, &again_id).len(), 12);

    // A failing unit fails the build and names itself.
    let failing = commit_units(&repo, &format!("{units}broken fail\n"), "one unit fails");
    let (cell, id) = finished(port, &failing, "shard3");
    assert_ne!(cell, "ok");
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert!(log.contains("FAILED: broken: exit status 1"), "{log}");
    assert!(log.contains("unit broken is broken"), "{log}");
    let broken = units_of(port, &id)
        .into_iter()
        .find(|u| u["name"] == "broken")
        .expect("the failing unit is recorded");
    assert_eq!(broken["result"], "exit status 1");
    let output = broken["output"].as_str().unwrap();
    assert!(
        output.starts_with("##### broken\n"),
        "banner rendered: {output}"
    );

    // A hung unit hits its timeout, with upstream's message.
    let hung = commit_units(&repo, "quick pass 10\nstuck hang\n", "one unit hangs");
    let (cell, id) = finished(port, &hung, "shard1");
    assert_ne!(cell, "ok");
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert!(
        log.contains(r#"FAILED: stuck: Test "stuck" ran over 2s limit"#),
        "{log}"
    );
}

/// A finished build of the victim fixture on real reverse buildlets.
struct VictimRun {
    log: String,
    units: Vec<serde_json::Value>,
    build: serde_json::Value,
    _coordinator: Coord,
    _machines: Vec<Option<Proc>>,
    _dir: tempfile::TempDir,
}

/// Builds a fixture whose `victim` unit records its buildlet's pid, on `machines` real
/// reverse buildlets with `helpers` helpers, and kills that buildlet as soon as the unit
/// runs; the unit passes when it runs again elsewhere.
fn run_victim(helpers: usize, machines: usize) -> VictimRun {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let make_log = dir.path().join("make.log");
    let victim_dir = dir.path().join("victim");
    std::fs::create_dir_all(&victim_dir).unwrap();
    let rev = commit_units(
        &repo,
        "a pass 300\nb pass 300\nvictim victim\nc pass 300\nd pass 300\n",
        "a unit whose buildlet dies",
    );
    let text = builder("rev", helpers, &make_log)
        .replace(
            "MAKE_LOG=",
            &format!("VICTIM_DIR={}\", \"MAKE_LOG=", victim_dir.display()),
        )
        .replace("unit_timeout_secs = 2", "unit_timeout_secs = 120")
        + &format!("\n[pools.reverse]\nhost-rev = {machines}\n");
    let cfg = config(dir.path(), &repo, &text);
    let c = start(&cfg);
    let (port, reverse_port) = (c.port, c.reverse_port);
    let key = builder_key_file(dir.path(), &cfg, "host-rev");
    let mut procs: Vec<Option<Proc>> = (0..machines)
        .map(|i| {
            let name = format!("m{i}");
            Some(reverse_buildlet(
                dir.path(),
                "host-rev",
                &name,
                reverse_port,
                &key,
            ))
        })
        .collect();

    // Kill the machine that runs the victim unit, as soon as it does.
    let pid: u32 = wait_for_or(
        "the victim unit to start",
        120,
        || {
            std::fs::read_to_string(victim_dir.join("pid"))
                .ok()?
                .trim()
                .parse()
                .ok()
        },
        || http(port, "GET", "/status?mode=json", "").1,
    );
    let victim = procs
        .iter_mut()
        .find(|m| m.as_ref().is_some_and(|p| p.0.id() == pid))
        .expect("the victim's parent is one of the buildlets");
    std::fs::write(victim_dir.join("killed"), "").unwrap();
    drop(victim.take());

    let (cell, id) = finished(port, &rev, "rev");
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert_eq!(cell, "ok", "{log}");
    assert!(log.contains("ok victim on a second buildlet"), "{log}");
    let (_, build) = http(port, "GET", &format!("/api/builds/{id}"), "");
    assert_finished(port, "rev", "succeeded", 1);
    VictimRun {
        units: units_of(port, &id),
        build: serde_json::from_str(&build).unwrap(),
        log,
        _coordinator: c,
        _machines: procs,
        _dir: dir,
    }
}

#[test]
fn a_unit_whose_buildlet_dies_is_retried_on_another_with_one_result() {
    let run = run_victim(2, 3);
    assert!(
        run.log.contains("lost; its unit goes to another"),
        "{}",
        run.log
    );
    assert_eq!(run.units.len(), 5, "{:?}", run.units);
    assert_eq!(
        run.units.iter().filter(|u| u["name"] == "victim").count(),
        1,
        "one result for the unit: {:?}",
        run.units
    );
    assert_eq!(
        run.build["attempt"], 1,
        "the unit was retried, not the build: {}",
        run.build
    );
}

#[test]
fn a_build_whose_buildlets_are_all_lost_is_retried_whole() {
    // No helpers: the only buildlet dies with units left, which is upstream's
    // communication error; the build runs again on the other machine, from its
    // snapshot, and still records one result.
    let run = run_victim(0, 2);
    assert!(
        run.log.contains(
            "runTests: dist test failed: all buildlets had network errors or timeouts, yet tests remain"
        ),
        "{}",
        run.log
    );
    assert!(
        run.log.contains("retrying on another buildlet"),
        "{}",
        run.log
    );
    assert!(run.log.contains("restoring snapshot"), "{}", run.log);
    assert_eq!(run.build["attempt"], 2, "{}", run.build);
    let victims: Vec<&serde_json::Value> =
        run.units.iter().filter(|u| u["name"] == "victim").collect();
    assert_eq!(victims.len(), 1, "{:?}", run.units);
    assert_eq!(victims[0]["attempt"], 2);
}

#[test]
fn a_subrepo_waits_for_its_parents_snapshot_then_builds_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let make_log = dir.path().join("make.log");
    let go_rev = commit_units(&go, "u00 pass 10\n", "the parent");
    // The sub-repo's check needs the tool the parent's make built, beside it.
    let x = dir.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    git(&x, &["init", "-q", "-b", "main"]);
    std::fs::write(
        x.join("check.sh"),
        "#!/bin/sh\nset -e\ntest -x ../bin/tool\necho \"x $(cat .xbuild-rev) built against $(cat ../.xbuild-rev)\"\n",
    )
    .unwrap();
    git(&x, &["add", "check.sh"]);
    git(&x, &["update-index", "--chmod=+x", "check.sh"]);
    git(&x, &["commit", "-q", "-m", "a sub-repo"]);
    let x_rev = git(&x, &["rev-parse", "HEAD"]);

    let cfg = dir.path().join("coordinator.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"listen = "127.0.0.1:0"
reverse_listen = "127.0.0.1:0"
data_dir = {data:?}
poll_secs = 1

[[sources]]
name = "go"
url = {go:?}
branches = ["main"]

[[sources]]
name = "x"
url = {x:?}
branches = ["main"]
subrepo_of = "go"
dir = "x"

[[builders]]
name = "gob"
host_type = "host-test"
steps = [["sh", "-c", "sleep 3 && ./make.sh"]]
env = ["BUILDER_TAG=gob", "MAKE_LOG={log}"]
snapshot = true
make_only = true
subrepo_steps = [["x/check.sh"]]

[pools.local]
host-test = 2
"#,
            data = dir.path().join("data").display().to_string(),
            go = go.display().to_string(),
            x = x.display().to_string(),
            log = make_log.display(),
        ),
    )
    .unwrap();
    let c = start(&cfg);
    let port = c.port;

    // While the parent's make runs, the sub-repo build is queued, waiting for the
    // snapshot, although a buildlet is free.
    let waiting = wait_for("the sub-repo build to be queued", 60, || {
        let (_, body) = http(port, "GET", "/status?mode=json", "");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let parent_running = v["running"]
            .as_array()?
            .iter()
            .any(|b| b["builder"] == "gob");
        let queued = v["queue"]
            .as_array()?
            .iter()
            .find(|b| b["source"] == "x")?
            .clone();
        parent_running.then_some(queued)
    });
    let id = waiting["id"]
        .as_str()
        .expect("a queued build id")
        .to_owned();
    let (_, page) = http(port, "GET", &format!("/build/{id}"), "");
    assert!(page.contains("waiting for that snapshot"), "{page}");
    assert!(page.contains(&go_rev), "{page}");

    let done = wait_for("the sub-repo build", 120, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        ["succeeded", "failed"]
            .contains(&v["state"].as_str()?)
            .then_some(v)
    });
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert_eq!(done["state"], "succeeded", "{log}");
    assert!(
        log.contains(&format!("x {x_rev} built against {go_rev}")),
        "{log}"
    );
    assert_eq!(make_runs(&make_log).len(), 1, "only the parent ran make");
    // The grid's row shows both revisions; the dashboard JSON fills goRevision.
    let row = grid(port)["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["revision"] == x_rev.as_str())
        .cloned()
        .expect("the sub-repo's row");
    assert_eq!(row["repo"], "x");
    assert_eq!(row["goRevision"], go_rev.as_str());
    let (_, html) = http(port, "GET", "/", "");
    assert!(
        html.contains(&format!("on go <code title=\"{go_rev}\">")),
        "{html}"
    );

    // A parent revision that fails to build leaves nothing to build on: the sub-repo
    // build built against it fails and says why, instead of waiting for ever.
    std::fs::write(go.join("make.sh"), "#!/bin/sh\necho broken make; exit 1\n").unwrap();
    git(&go, &["commit", "-q", "-a", "-m", "a broken make"]);
    let broken_go = git(&go, &["rev-parse", "HEAD"]);
    // The sub-repo's commit comes after the coordinator saw the parent's: a poll that
    // read the parent just before its commit and the sub-repo just after would build
    // the sub-repo against the parent's earlier head, which is right but not this test.
    wait_for("the broken parent commit to be polled", 60, || {
        grid(port)["revisions"]
            .as_array()?
            .iter()
            .any(|r| r["revision"] == broken_go.as_str())
            .then_some(())
    });
    std::fs::write(x.join("more"), "x\n").unwrap();
    git(&x, &["add", "more"]);
    git(&x, &["commit", "-q", "-m", "more"]);
    let x_rev2 = git(&x, &["rev-parse", "HEAD"]);
    let row = wait_for(
        "the sub-repo build on the broken parent to end",
        120,
        || {
            let g = grid(port);
            let row = g["revisions"]
                .as_array()?
                .iter()
                .find(|r| r["revision"] == x_rev2.as_str())?
                .clone();
            (!cell(&g, &x_rev2, "gob").is_empty()).then_some(row)
        },
    );
    assert_eq!(row["goRevision"], broken_go.as_str());
    // The sub-repo's earlier head was queued again against the new parent head too:
    // its row now shows that revision (its newest build's).
    wait_for(
        "the earlier sub-repo head rebuilt against the new parent",
        60,
        || {
            grid(port)["revisions"]
                .as_array()?
                .iter()
                .any(|r| r["revision"] == x_rev.as_str() && r["goRevision"] == broken_go.as_str())
                .then_some(())
        },
    );
    let url = cell(&grid(port), &x_rev2, "gob");
    let (_, log) = http(port, "GET", &url[url.find("/log/").unwrap()..], "");
    assert!(
        log.contains(&format!("go at {broken_go} did not build on gob (failed")),
        "{log}"
    );
}
