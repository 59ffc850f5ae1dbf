//! Builds of a temporary git repository by the real `coordinator` binary on its local
//! buildlets: success, failure with a log URL, the API, and restarts.

mod common;

use common::*;

const BUILDERS: &str = r#"
[[builders]]
name = "script"
host_type = "host-test"
steps = [["./build.sh"]]
env = ["GREETING=hello"]
step_timeout_secs = 60
"#;

#[test]
fn commits_are_built_and_failures_link_their_logs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let good = repo_with_script(
        &repo,
        "#!/bin/sh\necho \"$GREETING from the good commit\"\n",
        "good",
    );
    let cfg = config(dir.path(), &repo, BUILDERS);
    let c = start(&cfg);
    let port = c.port;

    let ok = wait_for("the first commit to pass", 60, || {
        let c = cell(&grid(port), &good, "script");
        (!c.is_empty()).then_some(c)
    });
    assert_eq!(ok, "ok");

    // The source as the coordinator serves it (upstream's gitmirror role): the commit's
    // tree and its revision marker, a real tar.gz that GNU tar reads.
    let (status, tgz) = get_bytes(port, &format!("/src/repo/+archive/{good}.tar.gz"));
    assert_eq!(status, 200);
    let archive = dir.path().join("served.tar.gz");
    std::fs::write(&archive, &tgz).unwrap();
    let tar = |args: &[&str]| {
        let out = std::process::Command::new("tar")
            .args(args)
            .arg(&archive)
            .args(["build.sh", ".xbuild-rev"])
            .output()
            .unwrap();
        assert!(out.status.success(), "tar {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut entries: Vec<String> = tar(&["-tzf"]).lines().map(String::from).collect();
    entries.sort();
    assert_eq!(entries, [".xbuild-rev", "build.sh"]);
    assert!(tar(&["-xzOf"]).contains(&good));
    let (status, body) = http(port, "GET", "/src/repo/+archive/--output=x.tar.gz", "");
    assert_eq!(status, 404, "{body}");
    let (status, _) = http(port, "GET", "/src/nope/+archive/main.tar.gz", "");
    assert_eq!(status, 404);

    let bad = repo_with_script(
        &repo,
        "#!/bin/sh\necho 'boom: the bad commit'\nexit 3\n",
        "bad",
    );
    let url = wait_for("the second commit to fail", 60, || {
        let c = cell(&grid(port), &bad, "script");
        (!c.is_empty()).then_some(c)
    });
    let prefix = format!("http://127.0.0.1:{port}/log/");
    assert!(url.starts_with(&prefix), "{url}");
    let (status, log) = http(port, "GET", &url[prefix.len() - 5..], "");
    assert_eq!(status, 200);
    assert!(log.contains("boom: the bad commit"), "{log}");
    assert!(log.contains("step failed: exit status 3"), "{log}");
    assert!(log.contains("result: failed"), "{log}");
    // The same build as upstream's BuildRecord.
    let id = &url[prefix.len()..];
    let (status, record) = http(port, "GET", &format!("/api/builds/{id}/record"), "");
    assert_eq!(status, 200);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["ID"], id);
    assert_eq!(record["Result"], "fail");
    assert_eq!(record["FailureURL"], url);
    assert_eq!(record["Rev"], bad);
    assert!(record["Seconds"].as_f64().unwrap() >= 0.0);

    // The HTML grid shows both.
    let (_, html) = http(port, "GET", "/", "");
    assert!(
        html.contains("class=\"cell ok\"") && html.contains("class=\"cell failed\""),
        "{html}"
    );
    // Metrics count them.
    assert_finished(port, "script", "failed", 1);
}

#[test]
fn api_enqueue_retry_cancel_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(
        &repo,
        "#!/bin/sh\nif [ -n \"$SLOW\" ]; then sleep 4; fi\necho done\n",
        "one",
    );
    let builders = format!(
        "{BUILDERS}\n[[builders]]\nname = \"slow\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\nenv = [\"SLOW=1\"]\n"
    );
    let cfg = config(dir.path(), &repo, &builders);
    let c = start(&cfg);
    let port = c.port;
    wait_for("the poller's builds", 60, || {
        (cell(&grid(port), &rev, "script") == "ok").then_some(())
    });

    // Bad requests are refused with a reason.
    let (status, body) = http(
        port,
        "POST",
        "/api/builds",
        r#"{"source":"repo","rev":"main","builder":"nope"}"#,
    );
    assert_eq!((status, body.as_str()), (404, "unknown builder \"nope\"\n"));
    let (status, _) = http(port, "POST", "/api/builds", "not json");
    assert_eq!(status, 400);

    // Enqueue by branch name, then cancel it while it runs.
    let b = enqueue_slow(port);
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["rev"], rev);
    wait_for("the build to run", 30, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
        body.contains("\"state\":\"running\"").then_some(())
    });
    let (status, _) = http(port, "POST", &format!("/api/builds/{id}/cancel"), "");
    assert_eq!(status, 200);
    wait_for("the cancel", 30, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
        body.contains("\"state\":\"canceled\"").then_some(())
    });
    let (status, _) = http(port, "POST", &format!("/api/builds/{id}/cancel"), "");
    assert_eq!(status, 409, "a finished build cannot be canceled");

    // Retry it, and kill the coordinator while the retry runs: after a restart the build
    // is queued again and completes, and earlier results are still there.
    let (status, body) = http(port, "POST", &format!("/api/builds/{id}/retry"), "");
    assert_eq!(status, 201);
    let retry: serde_json::Value = serde_json::from_str(&body).unwrap();
    let retry_id = retry["id"].as_str().unwrap().to_string();
    assert_ne!(retry_id, id);
    wait_for("the retry to run", 30, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{retry_id}"), "");
        body.contains("\"state\":\"running\"").then_some(())
    });
    // Two more slow builds while the retry holds one of the two buildlets: one takes the
    // other buildlet, the second waits in the pool's queue across the restart.
    let extra: Vec<String> = (0..2)
        .map(|_| enqueue_slow(port)["id"].as_str().unwrap().to_string())
        .collect();
    let state = |port: u16, id: &str| {
        let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert!(
        extra
            .iter()
            .all(|id| state(port, id)["state"] != "succeeded"),
        "the extra builds finished before the restart: {}",
        http(port, "GET", "/status", "").1
    );
    drop(c);
    let c = start(&cfg);
    let port = c.port;
    assert_eq!(
        cell(&grid(port), &rev, "script"),
        "ok",
        "results survive a restart"
    );
    let done = wait_for("the retried build after restart", 60, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{retry_id}"), "");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["state"] == "succeeded").then_some(v)
    });
    assert_eq!(
        done["attempt"], 2,
        "one attempt before the restart, one after"
    );
    let (_, old) = http(port, "GET", &format!("/api/builds/{id}"), "");
    assert!(old.contains("\"state\":\"canceled\""));
    // The builds in flight or waiting for a buildlet at the restart are built after it.
    // Three 4-second builds on two buildlets need seconds; the long limit only keeps a
    // heavily loaded machine from failing the test, and a failure shows where it stuck.
    for id in &extra {
        wait_for_or(
            "a build waiting across the restart",
            180,
            || (state(port, id)["state"] == "succeeded").then_some(()),
            || {
                format!(
                    "{}\n{}",
                    state(port, id),
                    http(port, "GET", "/status", "").1
                )
            },
        );
    }
}

/// Queues the `slow` builder at the head of `main`; returns the new build as JSON.
fn enqueue_slow(port: u16) -> serde_json::Value {
    let (status, body) = http(
        port,
        "POST",
        "/api/builds",
        r#"{"source":"repo","rev":"main","builder":"slow"}"#,
    );
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_step_over_its_time_limit_fails_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho waiting\nsleep 30\n", "hangs");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"hang\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\nstep_timeout_secs = 1\n",
    );
    let c = start(&cfg);
    let port = c.port;
    let started = std::time::Instant::now();
    let url = wait_for("the time limit", 30, || {
        let c = cell(&grid(port), &rev, "hang");
        (!c.is_empty()).then_some(c)
    });
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "killed at the limit, not at the end"
    );
    let path = &url[url.find("/log/").unwrap()..];
    let (_, log) = http(port, "GET", path, "");
    assert!(
        log.contains("waiting") && log.contains("step failed: "),
        "{log}"
    );
    assert!(
        log.contains("pushing the source") && log.contains("source in place after"),
        "{log}"
    );
}

/// A builder's bootstrap archive: served by the coordinator from its data dir, fetched by
/// the buildlet into its directory before the steps; a URL that cannot be fetched fails
/// the build and keeps the machine.
#[test]
fn bootstrap_archives_are_fetched_before_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\ncat go1.4/VERSION\n", "uses bootstrap");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("VERSION"), "go1.99-bootstrap\n").unwrap();
    let folder = dir.path().join("data/bootstrap");
    std::fs::create_dir_all(&folder).unwrap();
    let out = std::process::Command::new("tar")
        .arg("czf")
        .arg(folder.join("boot.tar.gz"))
        .arg("-C")
        .arg(&staging)
        .arg("VERSION")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"boot\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\
         bootstrap = { url = \"/bootstrap/boot.tar.gz\" }\n\n\
         [[builders]]\nname = \"missing\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\
         bootstrap = { url = \"/bootstrap/nope.tar.gz\" }\n\n\
         [auth]\nanonymous_read = false\n",
    );
    // With anonymous reading off, the buildlet (which has no token) reaches the archive
    // through the URL the coordinator signed for it; the same path unsigned is refused.
    let c = start(&cfg);
    let port = c.port;
    let (status, _) = http_as(None, port, "GET", "/bootstrap/boot.tar.gz", "");
    assert_eq!(status, 401);
    let g = wait_for("both builds", 60, || {
        let g = grid(port);
        (!cell(&g, &rev, "boot").is_empty() && !cell(&g, &rev, "missing").is_empty()).then_some(g)
    });
    assert_eq!(cell(&g, &rev, "boot"), "ok", "{g}");
    let failed = cell(&g, &rev, "missing");
    let (_, log) = http(port, "GET", &failed[failed.find("/log/").unwrap()..], "");
    assert!(
        log.contains("fetching the bootstrap archive") && log.contains("404"),
        "{log}"
    );
    assert!(!log.contains("retrying"), "{log}");
    let (_, status) = http(port, "GET", "/status?mode=json", "");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["pools"][0]["connected"], 2, "no machine was lost: {v}");
    let ok_log = {
        let (_, s) = http(port, "GET", "/status?mode=json", "");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        let id = v["recent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["builder"] == "boot")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        http(port, "GET", &format!("/log/{id}"), "").1
    };
    assert!(ok_log.contains("go1.99-bootstrap"), "{ok_log}");
}

/// `coordinator retry` (upstream's retrybuilds) against a running coordinator: a dry run
/// changes nothing, a builder's failures are queued again once, a revision's builds
/// once per builder, and it needs a token.
#[test]
fn retrybuilds_queues_failures_again_once_after_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho fine\n", "one commit");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"good\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\n\
         [[builders]]\nname = \"bad\"\nhost_type = \"host-test\"\nsteps = [[\"sh\", \"-c\", \"exit 1\"]]\n",
    );
    let c = start(&cfg);
    let port = c.port;
    wait_for("both builds", 60, || {
        let g = grid(port);
        (cell(&g, &rev, "good") == "ok" && !cell(&g, &rev, "bad").is_empty()).then_some(())
    });
    let admin = create_token(&cfg, "ops", &["admin"]);
    let url = format!("http://127.0.0.1:{port}");
    let retry = |args: &[&str], token: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"));
        cmd.arg("retry").args(args).args(["--url", &url]);
        cmd.env_remove("COORDINATOR_TOKEN");
        if let Some(t) = token {
            cmd.env("COORDINATOR_TOKEN", t);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let builds = |q: &str| -> Vec<serde_json::Value> {
        let (status, body) = http(port, "GET", &format!("/api/builds?{q}"), "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let (ok, _, err) = retry(&["--builder", "bad"], None);
    assert!(!ok && err.contains("admin token"), "{err}");
    let (ok, out, _) = retry(&["--builder", "bad", "--dry-run"], Some(&admin));
    assert!(
        ok && out.contains("would retry") && out.contains("bad at"),
        "{out}"
    );
    assert_eq!(builds("builder=bad").len(), 1, "a dry run queues nothing");
    let (ok, out, err) = retry(&["--builder", "bad"], Some(&admin));
    assert!(
        ok && out.contains("retried") && out.contains(": now B"),
        "{out}{err}"
    );
    assert_eq!(builds("builder=bad").len(), 2);
    // Once the newest build of the pair has ended, the revision's builds go again,
    // once per builder (the older failure is history, not queued twice).
    wait_for("the retried build to end", 60, || {
        (builds("builder=bad&state=failed").len() == 2).then_some(())
    });
    let (ok, out, _) = retry(&["--rev", &rev[..8]], Some(&admin));
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 2, "good and bad once each: {out}");
    assert_eq!(builds(&format!("rev={rev}")).len(), 5);
    // Bad filters are refused with what to give.
    let (status, body) = http(port, "GET", "/api/builds?rev=xyz", "");
    assert_eq!(status, 400);
    assert!(body.contains("hex digits"), "{body}");
}
