//! The coordinator with `[pools.container]` on a real engine (Podman in CI): a build runs
//! end to end in a container, a container killed mid-build is retried in a new one with a
//! single result, and a coordinator killed with a container out removes it when it starts
//! again. Skips loudly without an engine, fails instead under `CONTAINER_REQUIRE=1`.

mod common;

use std::time::Duration;

use common::*;
use pool::providers::container::ContainerBackend;
use pool::providers::ephemeral::Backend;
use pool::testing::{TEST_IMAGE, container_engine};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The engine with the test image, or `None` (skipped).
fn engine(rt: &tokio::runtime::Runtime) -> Option<ContainerBackend> {
    rt.block_on(container_engine(Some("host".into())))
}

fn builders(socket: &str, image: &str) -> String {
    format!(
        r#"[[builders]]
name = "in-container"
host_type = "host-container"
steps = [["./build.sh"]]

[pools.container]
socket = "{socket}"
network = "host"
max_instances = 2
max_cpus = 2
max_memory_mb = 512
startup_timeout_secs = 60

[pools.container.host_types.host-container]
image = "{image}"
cpus = 1
memory_mb = 128
"#
    )
}

/// A coordinator building `script` in containers.
struct Farm {
    dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    rev: String,
}

fn farm(script: &str) -> Farm {
    farm_with(script, TEST_IMAGE)
}

fn farm_with(script: &str, image: &str) -> Farm {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, script, "in a container");
    let socket = std::env::var("DOCKER_HOST").unwrap();
    let cfg = config(dir.path(), &repo, &builders(&socket, image));
    Farm { dir, cfg, rev }
}

impl Farm {
    fn owner(&self) -> String {
        wait_for("the instance id", 30, || {
            std::fs::read_to_string(self.dir.path().join("data/instance-id"))
                .ok()
                .map(|s| s.trim().to_owned())
        })
    }
}

fn containers(rt: &tokio::runtime::Runtime, engine: &ContainerBackend, owner: &str) -> Vec<String> {
    rt.block_on(engine.list(owner)).unwrap()
}

fn remove_all(rt: &tokio::runtime::Runtime, engine: &ContainerBackend, owner: &str) {
    for name in containers(rt, engine, owner) {
        let _ = rt.block_on(engine.delete(&name));
    }
}

#[test]
fn a_build_runs_in_a_container_and_survives_losing_it() {
    let rt = runtime();
    let Some(engine) = engine(&rt) else { return };
    let f = farm("#!/bin/sh\necho \"hello from $(hostname)\"\nsleep 5\necho done\n");
    let c = start(&f.cfg);
    let owner = f.owner();
    // The first attempt's container: killed while the build runs in it.
    let victim = wait_for("a container for the build", 60, || {
        containers(&rt, &engine, &owner).into_iter().next()
    });
    std::thread::sleep(Duration::from_secs(2));
    rt.block_on(engine.kill(&victim)).expect("kill");
    let url = wait_for_or(
        "the build to finish",
        120,
        || {
            let cell = cell(&grid(c.port), &f.rev, "in-container");
            (!cell.is_empty()).then_some(cell)
        },
        || http(c.port, "GET", "/status", "").1,
    );
    assert_eq!(url, "ok");
    assert_finished(c.port, "in-container", "succeeded", 1);
    let (_, list) = http(c.port, "GET", "/api/builds?builder=in-container", "");
    let builds: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(builds.len(), 1, "one build, one result: {list}");
    let id = builds[0]["id"].as_str().unwrap();
    let (_, log) = http(c.port, "GET", &format!("/log/{id}"), "");
    assert!(log.contains("retrying on another buildlet"), "{log}");
    // The result is the second container's, which ran the script to its end.
    let ran_on = builds[0]["buildlet"].as_str().unwrap();
    assert!(
        ran_on.starts_with("xb-") && ran_on != victim,
        "{ran_on} vs {victim}"
    );
    assert!(log.contains(&format!("hello from {ran_on}\ndone")), "{log}");
    // The status page shows the provider and what it did.
    let (_, status) = http(c.port, "GET", "/status", "");
    assert!(status.contains("On-demand buildlets"), "{status}");
    let (_, json) = http(c.port, "GET", "/status?mode=json", "");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &json["providers"][0];
    assert_eq!(p["kind"], "container", "{json}");
    assert!(p["started"].as_u64().unwrap() >= 2, "{json}");
    wait_for("the containers to be removed", 30, || {
        containers(&rt, &engine, &owner).is_empty().then_some(())
    });
}

#[test]
fn a_restarted_coordinator_removes_the_containers_of_its_crash() {
    let rt = runtime();
    let Some(engine) = engine(&rt) else { return };
    let f = farm("#!/bin/sh\nsleep 120\n");
    let c = start(&f.cfg);
    let owner = f.owner();
    let before = wait_for("a container for the build", 60, || {
        let now = containers(&rt, &engine, &owner);
        (!now.is_empty()).then_some(now)
    });
    // SIGKILL: nothing is cleaned up.
    drop(c);
    assert_eq!(
        containers(&rt, &engine, &owner),
        before,
        "left behind by the crash"
    );
    let c = start(&f.cfg);
    let after = containers(&rt, &engine, &owner);
    assert!(
        before.iter().all(|n| !after.contains(n)),
        "orphans survived the restart: {before:?} → {after:?}"
    );
    let (_, json) = http(c.port, "GET", "/status?mode=json", "");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["providers"][0]["swept"], before.len(), "{json}");
    // The requeued build runs in a new container; a graceful stop (SIGTERM) gives the
    // build back once its grace is over and removes that container before exiting.
    wait_for("the requeued build's container", 60, || {
        (!containers(&rt, &engine, &owner).is_empty()).then_some(())
    });
    let mut c = c;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &c.proc.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = wait_for("the coordinator to exit", 90, || {
        c.proc.0.try_wait().unwrap()
    });
    assert!(exited.success(), "{exited:?}");
    let left = containers(&rt, &engine, &owner);
    remove_all(&rt, &engine, &owner);
    assert!(left.is_empty(), "a graceful stop left containers: {left:?}");
}

/// A container that cannot start fails the build's attempts with the engine's reason in
/// the build's log, and leaves nothing behind.
#[test]
fn why_a_container_did_not_start_is_in_the_build_log() {
    let rt = runtime();
    let Some(engine) = engine(&rt) else { return };
    let f = farm_with("#!/bin/sh\ntrue\n", "localhost/xbuild-no-such-image:1");
    let c = start(&f.cfg);
    let owner = f.owner();
    let url = wait_for("the build to fail", 120, || {
        let cell = cell(&grid(c.port), &f.rev, "in-container");
        (!cell.is_empty()).then_some(cell)
    });
    let prefix = format!("http://127.0.0.1:{}", c.port);
    let (_, log) = http(c.port, "GET", url.trim_start_matches(&prefix), "");
    assert!(
        log.contains("localhost/xbuild-no-such-image:1 not found")
            && log.contains("coordinator image build")
            && log.contains("giving up after 3 attempts"),
        "{log}"
    );
    assert!(containers(&rt, &engine, &owner).is_empty());
}
