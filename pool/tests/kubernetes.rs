//! The Kubernetes provider against a real API server (upstream's kube-apiserver over etcd,
//! built and started by `.ci/run` from `.ci/kube-apiserver`; its kubeconfig in
//! `XBUILD_KUBECONFIG`). The server validates and stores every pod, serves status
//! subresources, label selectors and deletions for real.
//!
//! There is no scheduler or kubelet, so this file plays the node: [`Node`] watches the
//! provider's pods and runs each one's command and environment as a local process (the
//! buildlet from `XBUILD_STATIC_BUILDLET`, its `/workdir` mapped to a temporary dir),
//! writing `Running` and, when the process ends, `Failed` into the pod's status as a
//! kubelet would. Images named below make it report what a kubelet reports for them:
//! `ImagePullBackOff`, `OOMKilled`, `Unschedulable`, or nothing at all (a pod nobody
//! runs). What this does not cover: a real kubelet's container runtime, resource
//! enforcement on a node, and the scheduler's own decisions.
//!
//! Skips loudly without `XBUILD_KUBECONFIG`; `KUBERNETES_REQUIRE=1` turns that into a
//! failure.
#![cfg(feature = "kubernetes")]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashboard_types::keys::DEV_MASTER_KEY;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use pool::conformance::{Caps, run_all};
use pool::ledger::Resources;
use pool::providers::ephemeral::{Backend, EphemeralConfig, EphemeralPool, HostSpec, Toleration};
use pool::providers::kubernetes::KubernetesBackend;
use pool::testing::{FrontDoor, owner};
use pool::{BuildletPool, LeaseRequest, SchedItem};
use tokio_util::sync::CancellationToken;

const HOST: &str = "host-linux-k8s";
const IMAGE: &str = "registry.example/xbuild-buildlet:test";
/// The node reports `ImagePullBackOff` for this image.
const NO_IMAGE: &str = "registry.example/no-such-image:1";
/// The node reports the container `OOMKilled`.
const OOM_IMAGE: &str = "registry.example/oom:1";
/// The node never touches pods of this image.
const IGNORED_IMAGE: &str = "registry.example/ignored:1";

fn skip(why: &str) {
    if std::env::var_os("KUBERNETES_REQUIRE").is_some_and(|v| v == "1") {
        panic!("KUBERNETES_REQUIRE=1 but {why}");
    }
    eprintln!(
        "\n*** SKIPPED: {why}.\n*** `.ci/run` builds and starts a kube-apiserver and sets \
         XBUILD_KUBECONFIG and XBUILD_STATIC_BUILDLET; KUBERNETES_REQUIRE=1 turns this skip \
         into a failure.\n"
    );
}

/// What the node saw and runs.
#[derive(Default)]
struct NodeState {
    seen: BTreeMap<String, Pod>,
    running: HashMap<String, tokio::process::Child>,
}

/// A stand-in for a node's kubelet (and the scheduler's verdict), for this owner's pods.
struct Node {
    state: Arc<Mutex<NodeState>>,
    stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        let mut s = self.state.lock().unwrap();
        for (_, mut c) in s.running.drain() {
            let _ = c.start_kill();
        }
    }
}

async fn set_status(pods: &Api<Pod>, name: &str, status: serde_json::Value) {
    let patch = Patch::Merge(serde_json::json!({ "status": status }));
    if let Err(e) = pods
        .patch_status(name, &PatchParams::default(), &patch)
        .await
    {
        eprintln!("node: status of {name}: {e}");
    }
}

impl Node {
    fn start(pods: Api<Pod>, owner: &str, buildlet: PathBuf, work: PathBuf) -> Node {
        let state: Arc<Mutex<NodeState>> = Arc::default();
        let stop = CancellationToken::new();
        let (st, stp, selector) = (state.clone(), stop.clone(), format!("xbuild-owner={owner}"));
        tokio::spawn(async move {
            while !stp.is_cancelled() {
                let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let names: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                // Pods deleted from the API: stop what runs for them.
                {
                    let mut s = st.lock().unwrap();
                    let gone: Vec<String> = s
                        .running
                        .keys()
                        .filter(|n| !names.contains(n))
                        .cloned()
                        .collect();
                    for n in gone {
                        if let Some(mut c) = s.running.remove(&n) {
                            let _ = c.start_kill();
                        }
                    }
                }
                for pod in list.items {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let new = st
                        .lock()
                        .unwrap()
                        .seen
                        .insert(name.clone(), pod.clone())
                        .is_none();
                    if new {
                        Self::admit(&pods, &st, &name, &pod, &buildlet, &work).await;
                    }
                    let exited = {
                        let mut s = st.lock().unwrap();
                        match s.running.get_mut(&name).map(|c| c.try_wait()) {
                            Some(Ok(Some(status))) => {
                                s.running.remove(&name);
                                Some(status.code().unwrap_or(-1))
                            }
                            _ => None,
                        }
                    };
                    if let Some(code) = exited {
                        set_status(&pods, &name, serde_json::json!({
                            "phase": "Failed",
                            "containerStatuses": [{"name": "buildlet", "image": "x", "imageID": "",
                                "ready": false, "restartCount": 0,
                                "state": {"terminated": {"exitCode": code, "reason": "Error"}}}],
                        })).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Node { state, stop }
    }

    /// What a scheduler and kubelet would make of a new pod.
    async fn admit(
        pods: &Api<Pod>,
        state: &Arc<Mutex<NodeState>>,
        name: &str,
        pod: &Pod,
        buildlet: &std::path::Path,
        work: &std::path::Path,
    ) {
        let spec = pod.spec.clone().unwrap_or_default();
        let c = &spec.containers[0];
        let waiting = |reason: &str, message: &str| {
            serde_json::json!({
                "phase": "Pending",
                "containerStatuses": [{"name": "buildlet", "image": c.image, "imageID": "",
                    "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}}}],
            })
        };
        if spec.node_selector.as_ref().is_some_and(|s| !s.is_empty()) {
            let st = serde_json::json!({"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            }]});
            return set_status(pods, name, st).await;
        }
        match c.image.as_deref() {
            Some(NO_IMAGE) => {
                let msg = format!("Back-off pulling image \"{NO_IMAGE}\"");
                return set_status(pods, name, waiting("ImagePullBackOff", &msg)).await;
            }
            Some(OOM_IMAGE) => {
                let st = serde_json::json!({
                    "phase": "Failed",
                    "containerStatuses": [{"name": "buildlet", "image": OOM_IMAGE, "imageID": "",
                        "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}],
                });
                return set_status(pods, name, st).await;
            }
            Some(IGNORED_IMAGE) => return,
            _ => {}
        }
        let cmd = c.command.clone().unwrap_or_default();
        let dir = work.join(name);
        let args = cmd[1..].iter().map(|a| {
            if a == "--workdir=/workdir" {
                format!("--workdir={}", dir.display())
            } else {
                a.clone()
            }
        });
        let mut p = tokio::process::Command::new(buildlet);
        p.args(args)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for e in c.env.iter().flatten() {
            p.env(&e.name, e.value.as_deref().unwrap_or_default());
        }
        match p.spawn() {
            Ok(child) => {
                state.lock().unwrap().running.insert(name.to_owned(), child);
                set_status(
                    pods,
                    name,
                    serde_json::json!({
                        "phase": "Running",
                        "containerStatuses": [{"name": "buildlet", "image": c.image, "imageID": "",
                            "ready": true, "restartCount": 0, "started": true,
                            "state": {"running": {}}}],
                    }),
                )
                .await;
            }
            Err(e) => eprintln!("node: starting {name}: {e}"),
        }
    }

    fn seen(&self, name: &str) -> Option<Pod> {
        self.state.lock().unwrap().seen.get(name).cloned()
    }
}

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
    let Some(kubeconfig) = std::env::var_os("XBUILD_KUBECONFIG").map(PathBuf::from) else {
        skip("XBUILD_KUBECONFIG is not set");
        return None;
    };
    let Some(buildlet) = std::env::var_os("XBUILD_STATIC_BUILDLET").map(PathBuf::from) else {
        skip("XBUILD_STATIC_BUILDLET is not set");
        return None;
    };
    let backend = match KubernetesBackend::connect(Some(&kubeconfig), "default").await {
        Ok(b) => b,
        Err(e) => {
            skip(&format!("no API server answers: {e}"));
            return None;
        }
    };
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
