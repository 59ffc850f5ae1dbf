//! The review's findings against the real `coordinator` binary: a refused step is a failed
//! step (not a lost machine), only what a pool can serve is dispatched, the catalogue's
//! policy routes the poller, a failing source does not stop the others, shutdown requeues
//! what it cuts off and is not held up by a log stream, and configuration mistakes are
//! errors that name the entry.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn build(port: u16, id: &str) -> serde_json::Value {
    let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
    serde_json::from_str(&body).unwrap_or_default()
}

/// A configuration whose source has no watched branches (builds come only from the API),
/// with `extra` top-level settings and `builders` (pools included).
fn api_only_config(dir: &std::path::Path, extra: &str, builders: &str) -> std::path::PathBuf {
    let cfg = dir.join("coordinator.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nreverse_listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\n{extra}\n\
             [[sources]]\nname = \"repo\"\nurl = {url:?}\nbranches = []\n\n{builders}",
            data = dir.join("data").display().to_string(),
            url = dir.join("repo").display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

fn enqueue(port: u16, builder: &str) -> String {
    let (status, body) = http(
        port,
        "POST",
        "/api/builds",
        &format!(r#"{{"source":"repo","rev":"main","builder":"{builder}"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// A step whose command the buildlet refuses (`422`: not found) fails that build at once,
/// and the only buildlet of the host type stays: the next build runs on it.
#[test]
fn a_refused_step_fails_the_build_and_keeps_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho fine\n", "one");
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"missing\"\nhost_type = \"host-one\"\nsteps = [[\"no-such-command-xyz\"]]\n\n\
         [[builders]]\nname = \"fine\"\nhost_type = \"host-one\"\nsteps = [[\"./build.sh\"]]\n\n\
         [pools.local]\nhost-one = 1\n",
    );
    let c = start(&cfg);
    let port = c.port;
    let g = wait_for("both builds", 60, || {
        let g = grid(port);
        let (m, f) = (cell(&g, &rev, "missing"), cell(&g, &rev, "fine"));
        (!m.is_empty() && !f.is_empty()).then_some(g)
    });
    assert!(cell(&g, &rev, "missing").contains("/log/"), "{g}");
    assert_eq!(cell(&g, &rev, "fine"), "ok", "{g}");
    let url = cell(&g, &rev, "missing");
    let (_, log) = http(port, "GET", &url[url.find("/log/").unwrap()..], "");
    assert!(
        log.contains("step failed") && log.contains("not found"),
        "{log}"
    );
    assert!(
        !log.contains("retrying"),
        "a refused request is not retried: {log}"
    );
    let (_, status) = http(port, "GET", "/status?mode=json", "");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["pools"][0]["connected"], 1, "the machine was kept: {v}");
}

/// Builds are dispatched only as far as their host type has machines: five queued builds
/// on one buildlet are one in flight and four queued, not five "running" at once.
#[test]
fn only_what_a_pool_can_serve_is_dispatched() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\nsleep 3\n", "slow");
    let cfg = api_only_config(
        dir.path(),
        "",
        "[[builders]]\nname = \"slow\"\nhost_type = \"host-one\"\nsteps = [[\"./build.sh\"]]\n\n\
         [pools.local]\nhost-one = 1\n",
    );
    let c = start(&cfg);
    let port = c.port;
    let ids: Vec<String> = (0..5).map(|_| enqueue(port, "slow")).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let states: Vec<String> = ids
        .iter()
        .map(|id| build(port, id)["state"].as_str().unwrap_or("").to_string())
        .collect();
    let in_flight = states.iter().filter(|s| *s != "queued").count();
    assert_eq!(in_flight, 1, "{states:?}");
    let (_, status) = http(port, "GET", "/status?mode=json", "");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["queued"], 4, "{v}");
}

/// The poller asks the one routing rule: a builder whose catalogue policy does not build
/// this branch gets no builds from it, while a plain builder does.
#[test]
fn the_poller_follows_the_catalogue_policy() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho fine\n", "one");
    // Upstream's post-submit policy of linux-amd64 skips release branches before Go 1.11.
    git(&repo, &["branch", "release-branch.go1.10"]);
    let cfg = dir.path().join("coordinator.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nreverse_listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\npoll_secs = 1\n\n\
             [[sources]]\nname = \"go\"\nurl = {url:?}\nbranches = [\"release-branch.go1.10\"]\n\n\
             [[builders]]\nname = \"plain\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\n\
             [[builders]]\nname = \"policy\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\npolicy = \"linux-amd64\"\n\n\
             [pools.local]\nhost-test = 2\n",
            data = dir.path().join("data").display().to_string(),
            url = repo.display().to_string(),
        ),
    )
    .unwrap();
    let c = start(&cfg);
    let port = c.port;
    wait_for("the plain build", 60, || {
        (cell(&grid(port), &rev, "plain") == "ok").then_some(())
    });
    let (_, status) = http(port, "GET", "/status?mode=json", "");
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        v["recent"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["builder"] != "policy"),
        "the policy excludes this repository: {v}"
    );
    assert_eq!(cell(&grid(port), &rev, "policy"), "");
}

/// A source whose remote never answers is killed at the git time limit and reported;
/// the source after it is polled and built anyway.
#[test]
fn a_hanging_source_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho fine\n", "one");
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let cfg = dir.path().join("coordinator.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nreverse_listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\npoll_secs = 1\ngit_timeout_secs = 2\n\n\
             [[sources]]\nname = \"silent\"\nurl = \"git://{addr}/x\"\nbranches = [\"main\"]\n\n\
             [[sources]]\nname = \"repo\"\nurl = {url:?}\nbranches = [\"main\"]\n\n\
             [[builders]]\nname = \"script\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\n\
             [pools.local]\nhost-test = 1\n",
            data = dir.path().join("data").display().to_string(),
            url = repo.display().to_string(),
        ),
    )
    .unwrap();
    let c = start(&cfg);
    let port = c.port;
    wait_for("the good source's build", 60, || {
        (cell(&grid(port), &rev, "script") == "ok").then_some(())
    });
}

/// SIGTERM with a build in flight and a client following its log: shutdown finishes
/// within the grace period (the log stream does not hold it up), the build is not
/// recorded as canceled, and after a restart it runs again and succeeds.
#[test]
fn shutdown_requeues_what_it_cuts_off() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(
        &repo,
        "#!/bin/sh\nsleep ${PAUSE:-0}\necho finished\n",
        "one",
    );
    let cfg = api_only_config(
        dir.path(),
        "shutdown_grace_secs = 2",
        "[[builders]]\nname = \"slow\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\nenv = [\"PAUSE=30\"]\n\n\
         [pools.local]\nhost-test = 1\n",
    );
    let mut c = start(&cfg);
    let port = c.port;
    let id = enqueue(port, "slow");
    let followed = id.clone();
    wait_for("the build to run", 30, || {
        (build(port, &id)["state"] == "running").then_some(())
    });
    // A client following the live log.
    let follower = std::thread::spawn(move || http(port, "GET", &format!("/log/{followed}"), ""));
    std::thread::sleep(Duration::from_millis(300));
    let pid = c.proc.0.id().to_string();
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exited = loop {
        if let Some(status) = c.proc.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "the coordinator did not exit within 20 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = signalled.elapsed();
    assert!(exited.success(), "{exited:?}");
    assert!(took < Duration::from_secs(15), "shutdown took {took:?}");
    let (_, streamed) = follower.join().unwrap();
    assert!(streamed.contains("still running"), "{streamed}");

    // Restart with builds that finish quickly: the cut-off build runs again.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("PAUSE=30", "PAUSE=0");
    std::fs::write(&cfg, text).unwrap();
    let c = start(&cfg);
    let port = c.port;
    let id = &id;
    let done = wait_for("the requeued build", 60, || {
        let b = build(port, id);
        b["state"]
            .as_str()
            .is_some_and(|s| s != "queued" && s != "running" && s != "waiting_for_machine")
            .then_some(b)
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert!(!log.contains("build canceled"), "{log}");
}

/// Configuration mistakes stop the coordinator before it starts, naming the entry.
#[test]
fn configuration_mistakes_name_their_entry() {
    let dir = tempfile::tempdir().unwrap();
    let check = |toml: &str| -> String {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "accepted:\n{toml}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check(
        "[[builders]]\nname = \"linux\"\nhost_type = \"host-linux-locl\"\nsteps = [[\"true\"]]\n\n\
         [pools.local]\nhost-linux-local = 1\n",
    );
    assert!(
        err.contains("builder \"linux\"") && err.contains("host-linux-locl"),
        "{err}"
    );
    let err = check(
        "[[sources]]\nname = \"a/b\"\nurl = \"/x\"\nbranches = []\n\n\
         [[sources]]\nname = \"a_b\"\nurl = \"/y\"\nbranches = []\n",
    );
    assert!(err.contains("\"a/b\"") && err.contains("\"a_b\""), "{err}");
    let path = dir.path().join("envs.toml");
    std::fs::write(&path, "[env.dev]\nlisten = \"127.0.0.1:1\"\n").unwrap();
    let run = |env: &str| {
        Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["config", "--env", env, "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = run("prod");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no environment \"prod\"") && err.contains("dev"),
        "{err}"
    );
    let out = run("dev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("listen = \"127.0.0.1:1\""), "{printed}");
    assert!(
        !printed.contains("[env"),
        "the printed result has no environments: {printed}"
    );
}
