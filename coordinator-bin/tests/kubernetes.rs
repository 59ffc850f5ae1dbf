//! The coordinator with `[pools.kubernetes]` (feature `kubernetes`) against the real API
//! server of `.ci/run`, `pool::testing::kubernetes` playing the node: a build runs end to
//! end in a pod, and a pod whose image cannot be pulled fails its build with the reason in
//! the log. Skips loudly without the API server; `KUBERNETES_REQUIRE=1` makes that a
//! failure.
#![cfg(feature = "kubernetes")]

mod common;

use common::*;
use pool::providers::ephemeral::Backend;
use pool::testing::kubernetes::{IMAGE, NO_IMAGE, Node, cluster};

/// A loopback port free now (the coordinator's reverse port, which the pods must be told).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn builds_run_in_pods_and_pod_failures_reach_the_log() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some((backend, buildlet)) = rt.block_on(cluster()) else {
        return;
    };
    let kubeconfig = std::env::var("XBUILD_KUBECONFIG").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let rev = repo_with_script(&repo, "#!/bin/sh\necho \"hello from the pod\"\n", "pod");
    let port = free_port();
    let builders = format!(
        r#"[[builders]]
name = "in-pod"
host_type = "host-k8s"
steps = [["./build.sh"]]

[[builders]]
name = "no-image"
host_type = "host-k8s-missing"
steps = [["./build.sh"]]

[pools.kubernetes]
kubeconfig = "{kubeconfig}"
namespace = "default"
coordinator = "127.0.0.1:{port}"
max_instances = 2
max_cpus = 2
max_memory_mb = 512
startup_timeout_secs = 30

[pools.kubernetes.host_types.host-k8s]
image = "{IMAGE}"
cpus = 1
memory_mb = 128

[pools.kubernetes.host_types.host-k8s-missing]
image = "{NO_IMAGE}"
cpus = 1
memory_mb = 128
"#
    );
    let cfg = config(dir.path(), &repo, &builders);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "reverse_listen = \"127.0.0.1:0\"",
        &format!("reverse_listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&cfg, text).unwrap();
    let c = start(&cfg);
    let owner = std::fs::read_to_string(dir.path().join("data/instance-id"))
        .unwrap()
        .trim()
        .to_owned();
    let _node = {
        let _in = rt.enter();
        Node::start(
            backend.pods().clone(),
            &owner,
            buildlet,
            dir.path().join("node"),
        )
    };
    let result = |builder: &'static str| {
        wait_for_or(
            builder,
            120,
            || {
                let cell = cell(&grid(c.port), &rev, builder);
                (!cell.is_empty()).then_some(cell)
            },
            || http(c.port, "GET", "/status", "").1,
        )
    };
    assert_eq!(result("in-pod"), "ok");
    let builds: Vec<serde_json::Value> =
        serde_json::from_str(&http(c.port, "GET", "/api/builds?builder=in-pod", "").1).unwrap();
    let id = builds[0]["id"].as_str().unwrap();
    let (_, log) = http(c.port, "GET", &format!("/log/{id}"), "");
    assert!(
        log.contains("buildlet: xb-")
            && log.contains("-host-k8s-")
            && log.contains("hello from the pod"),
        "ran in a pod: {log}"
    );

    let url = result("no-image");
    let prefix = format!("http://127.0.0.1:{}", c.port);
    let (_, log) = http(c.port, "GET", url.trim_start_matches(&prefix), "");
    assert!(
        log.contains("ImagePullBackOff: Back-off pulling image")
            && log.contains("giving up after 3 attempts"),
        "{log}"
    );
    let (_, json) = http(c.port, "GET", "/status?mode=json", "");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let p = &json["providers"][0];
    assert_eq!(p["kind"], "kubernetes", "{json}");
    assert_eq!(p["failures"], 3, "{json}");
    wait_for("the pods to be deleted", 30, || {
        rt.block_on(backend.list(&owner))
            .unwrap()
            .is_empty()
            .then_some(())
    });
}
