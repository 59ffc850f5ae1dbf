//! A stand-in node for the Kubernetes provider's tests (features `conformance` and
//! `kubernetes`). The API server is real (upstream's kube-apiserver, built and started by
//! `.ci/run` from `.ci/kube-apiserver`; its kubeconfig in `XBUILD_KUBECONFIG`), but no
//! scheduler or kubelet can run here, so [`Node`] plays both for one owner's pods: it runs
//! each pod's command and environment as a local process (the buildlet from
//! `XBUILD_STATIC_BUILDLET`, its `/workdir` mapped to a directory of its own) and writes
//! `Running` and, when the process ends, `Failed` into the pod's status as a kubelet would.
//! Pods of the images named below get what a kubelet or scheduler reports for them:
//! `ImagePullBackOff`, `OOMKilled`, `Unschedulable` (any node selector), or nothing at all.
//! Not covered: a real container runtime, resource enforcement on a node, the scheduler's
//! own decisions.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio_util::sync::CancellationToken;

use crate::providers::kubernetes::KubernetesBackend;

/// The API server and the buildlet the node runs: `XBUILD_KUBECONFIG`'s namespace
/// `default`, and `XBUILD_STATIC_BUILDLET`. `None` after [`skip`] when either is missing.
pub async fn cluster() -> Option<(KubernetesBackend, PathBuf)> {
    let Some(kubeconfig) = std::env::var_os("XBUILD_KUBECONFIG").map(PathBuf::from) else {
        skip("XBUILD_KUBECONFIG is not set");
        return None;
    };
    let buildlet = super::static_buildlet(skip)?;
    match KubernetesBackend::connect(Some(&kubeconfig), "default").await {
        Ok(b) => Some((b, buildlet)),
        Err(e) => {
            skip(&format!("no API server answers: {e}"));
            None
        }
    }
}

/// An image the node runs.
pub const IMAGE: &str = "registry.example/xbuild-buildlet:test";
/// The node reports `ImagePullBackOff` for this image.
pub const NO_IMAGE: &str = "registry.example/no-such-image:1";
/// The node reports the container `OOMKilled`.
pub const OOM_IMAGE: &str = "registry.example/oom:1";
/// The node never touches pods of this image.
pub const IGNORED_IMAGE: &str = "registry.example/ignored:1";

/// The Kubernetes tests' [`skip`](super::skip).
pub fn skip(why: &str) {
    super::skip(
        "KUBERNETES_REQUIRE",
        why,
        "`.ci/run` builds and starts a kube-apiserver and sets XBUILD_KUBECONFIG and \
         XBUILD_STATIC_BUILDLET",
    );
}

/// What the node saw and runs.
#[derive(Debug, Default)]
pub struct NodeState {
    /// Every pod seen, by name, as first seen.
    pub seen: BTreeMap<String, Pod>,
    running: HashMap<String, tokio::process::Child>,
}

/// A stand-in for a node's kubelet (and the scheduler's verdict), for one owner's pods.
/// Dropping it stops it and kills what it runs.
#[derive(Debug)]
pub struct Node {
    /// What it saw and runs.
    pub state: Arc<Mutex<NodeState>>,
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
    /// Starts playing the node for the pods labelled with `owner`, running `buildlet` for
    /// them with work dirs under `work`.
    pub fn start(pods: Api<Pod>, owner: &str, buildlet: PathBuf, work: PathBuf) -> Node {
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

    /// The pod named `name` as first seen.
    pub fn seen(&self, name: &str) -> Option<Pod> {
        self.state.lock().unwrap().seen.get(name).cloned()
    }
}
