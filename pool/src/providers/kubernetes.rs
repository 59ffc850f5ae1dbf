//! The Kubernetes provider (cargo feature `kubernetes`): one pod per lease, through
//! kube-rs. It is an [`EphemeralPool`](super::ephemeral::EphemeralPool) over
//! [`KubernetesBackend`]: the pod runs the image's buildlet in reverse mode (no Service,
//! no published port), with the host type's CPU and memory as both requests and limits,
//! its node selector and tolerations, and the owner's label for the sweeper.
//!
//! A pod that cannot start says why in its status; [`Backend::state`] turns that into the
//! lease's error: `ImagePullBackOff`/`ErrImagePull` and a terminated container
//! (`OOMKilled`, an exit code) fail the start at once, `Unschedulable` is reported while
//! waiting and in the start-up timeout's message (a cluster autoscaler may still add a
//! node).

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    Container, ContainerStateTerminated, EnvVar, Pod, PodSpec, ResourceRequirements,
    Toleration as K8sToleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

use super::ephemeral::{Backend, BackendError, InstanceSpec, InstanceState, OWNER_LABEL};

/// Reasons of a waiting container that mean it will not start without a change.
const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// A namespace of a cluster.
#[derive(Clone)]
pub struct KubernetesBackend {
    pods: Api<Pod>,
    namespace: String,
}

impl std::fmt::Debug for KubernetesBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesBackend")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

impl KubernetesBackend {
    /// Connects with the kubeconfig at `kubeconfig`, or else as kube-rs infers (the
    /// `KUBECONFIG` variable, `~/.kube/config`, the in-cluster service account), and
    /// checks that pods of `namespace` can be listed.
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        namespace: &str,
    ) -> Result<KubernetesBackend, BackendError> {
        let config = match kubeconfig {
            Some(path) => {
                let kc = kube::config::Kubeconfig::read_from(path)
                    .map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| format!("finding a Kubernetes configuration: {e}"))?,
        };
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config)?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        pods.list(&ListParams::default().limit(1))
            .await
            .map_err(|e| format!("listing pods of namespace {namespace} at {server}: {e}"))?;
        Ok(KubernetesBackend {
            pods,
            namespace: namespace.to_owned(),
        })
    }

    /// The pods API of the namespace, for what this backend does not wrap.
    pub fn pods(&self) -> &Api<Pod> {
        &self.pods
    }
}

/// The pod for `spec`.
pub fn pod(spec: &InstanceSpec<'_>) -> Pod {
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(spec.host.cpus.to_string())),
        (
            "memory".to_owned(),
            Quantity(format!("{}Mi", spec.host.memory_mib)),
        ),
    ]);
    let tolerations: Vec<K8sToleration> = spec
        .host
        .tolerations
        .iter()
        .map(|t| {
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            K8sToleration {
                key: opt(&t.key),
                operator: opt(&t.operator),
                value: opt(&t.value),
                effect: opt(&t.effect),
                toleration_seconds: None,
            }
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(spec.name.to_owned()),
            labels: Some(spec.labels.clone()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "buildlet".into(),
                image: Some(spec.host.image.clone()),
                command: Some(spec.command.clone()),
                env: Some(
                    spec.env
                        .iter()
                        .map(|(k, v)| EnvVar {
                            name: k.clone(),
                            value: Some(v.clone()),
                            value_from: None,
                        })
                        .collect(),
                ),
                resources: Some(ResourceRequirements {
                    limits: Some(resources.clone()),
                    requests: Some(resources),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            restart_policy: Some("Never".into()),
            // The buildlet talks only to the coordinator; it needs no cluster credentials.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            node_selector: (!spec.host.node_selector.is_empty())
                .then(|| spec.host.node_selector.clone()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            ..Default::default()
        }),
        status: None,
    }
}

fn terminated(t: &ContainerStateTerminated) -> String {
    let mut s = format!(
        "the buildlet container terminated: {} (exit code {})",
        t.reason.as_deref().unwrap_or("no reason given"),
        t.exit_code
    );
    if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

/// What a pod's status says about its start.
pub fn pod_state(pod: &Pod) -> InstanceState {
    let Some(status) = &pod.status else {
        return InstanceState::Starting(None);
    };
    for cs in status.container_statuses.iter().flatten() {
        let Some(state) = &cs.state else { continue };
        if let Some(t) = &state.terminated {
            return InstanceState::Failed(terminated(t));
        }
        if let Some(w) = &state.waiting {
            let reason = w.reason.as_deref().unwrap_or_default();
            let said = format!(
                "{reason}: {}",
                w.message.as_deref().unwrap_or("no message given")
            );
            if FATAL_WAITING.contains(&reason) {
                return InstanceState::Failed(said);
            }
            if !reason.is_empty() && reason != "ContainerCreating" {
                return InstanceState::Starting(Some(said));
            }
        }
    }
    if let Some("Failed" | "Succeeded") = status.phase.as_deref() {
        return InstanceState::Failed(format!(
            "the pod ended ({}): {}",
            status.reason.as_deref().unwrap_or("no reason given"),
            status.message.as_deref().unwrap_or("no message given")
        ));
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    InstanceState::Starting(unschedulable.map(|c| {
        format!(
            "Unschedulable: {}",
            c.message.as_deref().unwrap_or("no message given")
        )
    }))
}

#[async_trait]
impl Backend for KubernetesBackend {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn create(&self, spec: &InstanceSpec<'_>) -> Result<(), BackendError> {
        self.pods
            .create(&PostParams::default(), &pod(spec))
            .await
            .map_err(|e| format!("creating pod in namespace {}: {e}", self.namespace))?;
        Ok(())
    }

    async fn state(&self, name: &str) -> Result<InstanceState, BackendError> {
        Ok(match self.pods.get_opt(name).await? {
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                InstanceState::Failed("the pod is being deleted".into())
            }
            Some(p) => pod_state(&p),
            None => InstanceState::Failed("the pod disappeared".into()),
        })
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        // An ephemeral buildlet has nothing to save: a short grace period suffices.
        let dp = DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        };
        match self.pods.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self, owner: &str) -> Result<Vec<String>, BackendError> {
        let lp = ListParams::default().labels(&format!("{OWNER_LABEL}={owner}"));
        Ok(self
            .pods
            .list(&lp)
            .await?
            .items
            .into_iter()
            // A pod already being deleted is on its way out.
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect())
    }
}
