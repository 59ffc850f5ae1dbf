//! Real `buildlet --reverse-type …` processes register with the real coordinator over TLS,
//! receive the builds of their host type, and a buildlet killed mid-build makes the build
//! retry on another one with exactly one result recorded.

mod common;

use common::*;

#[test]
fn reverse_buildlets_take_their_builds_and_a_lost_one_is_retried_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(
        &repo,
        "#!/bin/sh\necho \"step begins\"\nsleep 6\necho end\n",
        "slow",
    );
    let cfg = config(
        dir.path(),
        &repo,
        "[[builders]]\nname = \"rev\"\nhost_type = \"host-rev\"\nsteps = [[\"./build.sh\"]]\n\n[pools.reverse]\nhost-rev = 2\n",
    );
    let c = start(&cfg);
    let (port, reverse_port) = (c.port, c.reverse_port);

    let key_file = builder_key_file(dir.path(), &cfg, "host-rev");

    // A buildlet with a wrong key is refused and never gets work.
    let bad_key = dir.path().join("bad-key");
    std::fs::write(&bad_key, "0123456789abcdef0123456789abcdef").unwrap();
    let _bad = reverse_buildlet(dir.path(), "host-rev", "rev-bad", reverse_port, &bad_key);

    let mut a = Some(reverse_buildlet(
        dir.path(),
        "host-rev",
        "rev-a",
        reverse_port,
        &key_file,
    ));
    let mut b = Some(reverse_buildlet(
        dir.path(),
        "host-rev",
        "rev-b",
        reverse_port,
        &key_file,
    ));
    wait_for("both reverse buildlets on the status page", 60, || {
        let (_, html) = http(port, "GET", "/status", "");
        let (_, json) = http(port, "GET", "/status?mode=json", "");
        let v: serde_json::Value = serde_json::from_str(&json).ok()?;
        (v["pools"][0]["host_type"] == "host-rev"
            && v["pools"][0]["connected"] == 2
            && html.contains("rev-a (host-rev): "))
        .then_some(())
    });

    // The poller queues the head commit; wait until a buildlet runs it, then kill that one.
    let build = wait_for("the build to start on a reverse buildlet", 60, || {
        let (_, json) = http(port, "GET", "/status?mode=json", "");
        let v: serde_json::Value = serde_json::from_str(&json).ok()?;
        let id = v["running"][0]["id"].as_str()?.to_string();
        let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["state"] == "running" && v["buildlet"].as_str().is_some_and(|s| !s.is_empty()))
            .then_some(v)
    });
    let id = build["id"].as_str().unwrap().to_string();
    let first = build["buildlet"].as_str().unwrap().to_string();
    // Let the step start, then kill its machine.
    wait_for("the step's output", 30, || {
        let (_, log) = http(port, "GET", &format!("/log/{id}?nostream=1"), "");
        log.contains("step begins").then_some(())
    });
    drop(if first.contains("rev-a") {
        a.take()
    } else {
        b.take()
    });

    let done = wait_for("the retry on the other buildlet", 90, || {
        let (_, body) = http(port, "GET", &format!("/api/builds/{id}"), "");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["state"]
            .as_str()
            .is_some_and(|s| !["running", "queued", "waiting_for_machine"].contains(&s))
            .then_some(v)
    });
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert_eq!(done["attempt"], 2, "{done} {log}");
    assert_ne!(done["buildlet"], first, "the retry ran elsewhere");
    let (_, log) = http(port, "GET", &format!("/log/{id}"), "");
    assert!(log.contains("retrying on another buildlet"), "{log}");
    assert!(log.contains("All steps passed."), "{log}");
    assert_eq!(cell(&grid(port), &rev, "rev"), "ok");
    assert_finished(port, "rev", "succeeded", 1);
    drop((a, b));
}
