//! The Kubernetes provider against a real API server, with `pool::testing::kubernetes`
//! playing the node (see there for what is real and what is not).
//!
//! Skips loudly without `XBUILD_KUBECONFIG`; `KUBERNETES_REQUIRE=1` turns that into a
//! failure.
#![cfg(feature = "kubernetes")]

use std::collections::BTreeMap;
use std::time::Duration;

use dashboard_types::keys::DEV_MASTER_KEY;
use pool::conformance::{Caps, run_all};
use pool::ledger::Resources;
use pool::providers::ephemeral::{Backend, EphemeralConfig, EphemeralPool, HostSpec, Toleration};
use pool::providers::kubernetes::KubernetesBackend;
use pool::testing::kubernetes::{IGNORED_IMAGE, IMAGE, NO_IMAGE, Node, OOM_IMAGE, cluster};
use pool::testing::{FrontDoor, owner};
use pool::{BuildletPool, LeaseRequest, SchedItem};

const HOST: &str = "host-linux-k8s";

struct Cluster {
    pool: EphemeralPool<KubernetesBackend>,
    backend: KubernetesBackend,
    owner: String,
    node: Node,
    _door: FrontDoor,
    _work: tempfile::TempDir,
}

fn host_types() -> BTreeMap<String, HostSpec> {
    let spec = |image: &str| HostSpec::new(image, 1, 128);
    BTreeMap::from([
        (HOST.to_owned(), spec(IMAGE)),
        ("host-no-image".to_owned(), spec(NO_IMAGE)),
        ("host-oom".to_owned(), spec(OOM_IMAGE)),
        ("host-ignored".to_owned(), spec(IGNORED_IMAGE)),
        (
            "host-gpu".to_owned(),
            spec(IMAGE).with_scheduling(
                BTreeMap::from([("accelerator".to_owned(), "gpu".to_owned())]),
                vec![Toleration {
                    key: "dedicated".into(),
                    operator: "Equal".into(),
                    value: "builds".into(),
                    effect: "NoSchedule".into(),
                }],
            ),
        ),
    ])
}

async fn cluster_with(
    limits: Resources,
    owner_id: Option<String>,
    startup: Duration,
) -> Option<Cluster> {
    let (backend, buildlet) = cluster().await?;
    let door = FrontDoor::start(DEV_MASTER_KEY.as_bytes()).await;
    let owner = owner_id.unwrap_or_else(owner);
    let work = tempfile::tempdir().unwrap();
    let node = Node::start(
        backend.pods().clone(),
        &owner,
        buildlet,
        work.path().to_owned(),
    );
    let cfg = EphemeralConfig::new(owner.clone(), door.addr.to_string(), host_types(), limits)
        .startup_timeout(startup)
        .coordinator_ca_pem(Some(door.ca_pem.clone()));
    let pool = EphemeralPool::start(cfg, backend.clone(), door.pool.clone())
        .await
        .expect("provider starts");
    Some(Cluster {
        pool,
        backend,
        owner,
        node,
        _door: door,
        _work: work,
    })
}

fn limits(instances: u64) -> Resources {
    Resources {
        instances,
        cpus: instances,
        memory_mib: 128 * instances,
    }
}

fn req(host_type: &str) -> LeaseRequest {
    LeaseRequest::new(SchedItem::new(host_type, "b"))
}

/// Waits until no pod of the owner is left and the ledger holds nothing.
async fn all_given_back(c: &Cluster) {
    for _ in 0..100 {
        if c.backend.list(&c.owner).await.unwrap().is_empty()
            && c.pool.ledger().used() == Resources::default()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "left behind: pods {:?}, quota {:?}",
        c.backend.list(&c.owner).await.unwrap(),
        c.pool.ledger().used()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(c) = cluster_with(limits(2), None, Duration::from_secs(60)).await else {
        return;
    };
    run_all(&c.pool, &Caps::ephemeral(HOST, 2)).await;
    all_given_back(&c).await;
    let p = &c.pool.providers()[0];
    assert_eq!((p.kind, p.failures), ("kubernetes", 0), "{p:?}");
}

/// The stored pod asks for the host type's resources (requests = limits), runs once, has
/// no service account token, carries the owner's label and runs the buildlet in reverse
/// mode under the pod's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_carry_the_host_type() {
    let Some(c) = cluster_with(limits(1), None, Duration::from_secs(60)).await else {
        return;
    };
    let lease = c.pool.lease(req(HOST)).await.expect("lease");
    let pod = c.backend.pods().get(lease.name()).await.expect("pod");
    let spec = pod.spec.expect("spec");
    let ctr = &spec.containers[0];
    let res = ctr.resources.clone().expect("resources");
    let want = BTreeMap::from([
        (
            "cpu".to_owned(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
        ),
        (
            "memory".to_owned(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("128Mi".into()),
        ),
    ]);
    assert_eq!(
        (res.limits.as_ref(), res.requests.as_ref()),
        (Some(&want), Some(&want))
    );
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(
        pod.metadata.labels.unwrap_or_default().get("xbuild-owner"),
        Some(&c.owner)
    );
    let cmd = ctr.command.clone().unwrap_or_default().join(" ");
    assert!(
        cmd.contains(&format!("--hostname={}", lease.name()))
            && cmd.contains("--reverse-type=host-linux-k8s"),
        "{cmd}"
    );
    drop(lease);
    all_given_back(&c).await;
}

/// The pod's failure reason is the lease's error, at once for a pull back-off and an OOM
/// kill; an unschedulable pod is reported at the start-up timeout, and the stored pod
/// carried the node selector and tolerations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_failures_are_reported() {
    let Some(c) = cluster_with(limits(1), None, Duration::from_secs(4)).await else {
        return;
    };
    let t = std::time::Instant::now();
    let e = c
        .pool
        .lease(req("host-no-image"))
        .await
        .expect_err("no image");
    assert!(
        e.to_string()
            .contains("ImagePullBackOff: Back-off pulling image"),
        "{e}"
    );
    let e = c.pool.lease(req("host-oom")).await.expect_err("oom");
    assert!(e.to_string().contains("OOMKilled (exit code 137)"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let e = c
        .pool
        .lease(req("host-gpu"))
        .await
        .expect_err("unschedulable");
    let msg = e.to_string();
    assert!(
        msg.contains("did not register within 4s") && msg.contains("Unschedulable: 0/1 nodes"),
        "{msg}"
    );
    let gpu = c
        .node
        .state
        .lock()
        .unwrap()
        .seen
        .values()
        .find(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("xbuild-host-type"))
                .map(String::as_str)
                == Some("host-gpu")
        })
        .cloned()
        .expect("the gpu pod was stored");
    let spec = gpu.spec.unwrap();
    assert_eq!(
        spec.node_selector
            .unwrap_or_default()
            .get("accelerator")
            .map(String::as_str),
        Some("gpu")
    );
    let tol = &spec.tolerations.unwrap_or_default()[0];
    assert_eq!(
        (
            tol.key.as_deref(),
            tol.value.as_deref(),
            tol.effect.as_deref()
        ),
        (Some("dedicated"), Some("builds"), Some("NoSchedule"))
    );
    // A pod nobody runs (no kubelet at all) is a start-up timeout.
    let e = c
        .pool
        .lease(req("host-ignored"))
        .await
        .expect_err("never runs");
    assert!(e.to_string().contains("did not register within 4s"), "{e}");
    all_given_back(&c).await;
    assert_eq!(c.pool.providers()[0].failures, 4);
}

/// A coordinator that died with pods out has them removed by its successor at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_swept_at_start() {
    let id = owner();
    let Some(c) = cluster_with(limits(2), Some(id.clone()), Duration::from_secs(60)).await else {
        return;
    };
    let a = c.pool.lease(req(HOST)).await.expect("lease");
    let name = a.name().to_owned();
    std::mem::forget(a);
    assert!(c.node.seen(&name).is_some());
    assert_eq!(c.backend.list(&id).await.unwrap(), vec![name]);
    drop(c);
    let d = cluster_with(limits(2), Some(id.clone()), Duration::from_secs(60))
        .await
        .expect("cluster");
    assert!(d.backend.list(&id).await.unwrap().is_empty(), "not swept");
    assert_eq!(d.pool.providers()[0].swept, 1);
}
