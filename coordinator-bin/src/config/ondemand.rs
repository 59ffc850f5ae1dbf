//! `[pools.container]` and `[pools.kubernetes]`: buildlets made per lease, one container or
//! pod each, within quotas. Both sections have the same shape; a few keys belong to one
//! backend only, and giving them to the other is an error naming the key.
//!
//! ```toml
//! [pools.container]
//! socket = "unix:///run/podman/podman.sock"  # default: $DOCKER_HOST, else /var/run/docker.sock
//! network = "host"                        # default: the engine's (a bridge)
//! coordinator = "127.0.0.1:8119"          # what instances dial; default, with network = "host":
//!                                         # the reverse listener (a bridge needs e.g.
//!                                         # host.containers.internal:8119, reverse_listen 0.0.0.0)
//! max_instances = 8                       # quotas over all host types of this pool
//! max_cpus = 8
//! max_memory_mb = 16384
//! startup_timeout_secs = 60               # an instance must register within this
//! sweep_secs = 60                         # orphaned instances are removed this often
//!
//! [pools.container.host_types.host-linux-container]
//! image = "localhost/xbuild-buildlet:latest"   # `coordinator image build`
//! cpus = 2
//! memory_mb = 2048
//! env = ["GOFLAGS=-mod=mod"]
//!
//! [pools.kubernetes]                      # needs a coordinator built with --features kubernetes
//! kubeconfig = "/etc/farm/kubeconfig"     # default: $KUBECONFIG, ~/.kube/config, in-cluster
//! namespace = "builds"
//! coordinator = "farm.example.com:8119"
//!
//! [pools.kubernetes.host_types.host-linux-k8s]
//! image = "registry.example.com/xbuild-buildlet:1"
//! cpus = 4
//! memory_mb = 8192
//! node_selector = { pool = "builders" }
//! tolerations = [{ key = "dedicated", operator = "Equal", value = "builds", effect = "NoSchedule" }]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// One on-demand pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnDemandConfig {
    /// Container pool: the engine's API socket (`unix://…`).
    pub socket: Option<String>,
    /// Container pool: the network containers join (`host`, `bridge`, a named network).
    pub network: Option<String>,
    /// Kubernetes pool: the kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes pool: the namespace of the pods. Default `default`.
    pub namespace: Option<String>,
    /// `host:port` of the reverse front door as instances reach it.
    pub coordinator: Option<String>,
    /// The PEM file instances trust for the front door's certificate; default: the
    /// coordinator's own self-signed certificate (`<data_dir>/tls/cert.pem`).
    pub ca_file: Option<PathBuf>,
    /// Most instances at once.
    pub max_instances: u64,
    /// Most CPUs at once.
    pub max_cpus: u64,
    /// Most memory at once, in MiB.
    pub max_memory_mb: u64,
    /// Seconds an instance has to register.
    pub startup_timeout_secs: u64,
    /// Seconds between sweeps for orphaned instances.
    pub sweep_secs: u64,
    /// Host types served, with what their instances are.
    pub host_types: BTreeMap<String, OnDemandHost>,
}

impl Default for OnDemandConfig {
    fn default() -> Self {
        OnDemandConfig {
            socket: None,
            network: None,
            kubeconfig: None,
            namespace: None,
            coordinator: None,
            ca_file: None,
            max_instances: 4,
            max_cpus: 4,
            max_memory_mb: 8192,
            startup_timeout_secs: 60,
            sweep_secs: 60,
            host_types: BTreeMap::new(),
        }
    }
}

/// What an instance of one host type is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OnDemandHost {
    /// The image holding the buildlet.
    pub image: String,
    /// CPUs per instance. Default 1.
    #[serde(default = "one")]
    pub cpus: u64,
    /// MiB per instance. Default 1024.
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// Extra `KEY=value` environment of the buildlet.
    #[serde(default)]
    pub env: Vec<String>,
    /// Kubernetes only: the pod's node selector.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes only: the pod's tolerations.
    #[serde(default)]
    pub tolerations: Vec<TolerationConfig>,
}

fn one() -> u64 {
    1
}

fn default_memory() -> u64 {
    1024
}

/// A Kubernetes toleration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TolerationConfig {
    /// The taint key.
    pub key: String,
    /// `Equal` (default when a value is given) or `Exists`.
    pub operator: String,
    /// The taint value.
    pub value: String,
    /// `NoSchedule`, `PreferNoSchedule`, `NoExecute`, or empty for all.
    pub effect: String,
}

/// Which backend a section configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `[pools.container]`.
    Container,
    /// `[pools.kubernetes]`.
    Kubernetes,
}

impl Backend {
    /// The section's name.
    pub fn section(self) -> &'static str {
        match self {
            Backend::Container => "[pools.container]",
            Backend::Kubernetes => "[pools.kubernetes]",
        }
    }
}

macro_rules! bail {
    ($($t:tt)*) => { return Err(ConfigError(format!($($t)*))) };
}

impl OnDemandConfig {
    /// Refuses what cannot work, naming the key.
    pub fn check(&self, backend: Backend) -> Result<(), ConfigError> {
        let s = backend.section();
        let only = |key: &str, set: bool, owner: Backend| {
            if set && backend != owner {
                Err(ConfigError(format!(
                    "{s} {key}: only {} takes it",
                    owner.section()
                )))
            } else {
                Ok(())
            }
        };
        only("socket", self.socket.is_some(), Backend::Container)?;
        only("network", self.network.is_some(), Backend::Container)?;
        only("kubeconfig", self.kubeconfig.is_some(), Backend::Kubernetes)?;
        only("namespace", self.namespace.is_some(), Backend::Kubernetes)?;
        if let Some(sock) = &self.socket
            && !sock.starts_with("unix://")
        {
            bail!("{s} socket = {sock:?}: give the engine's Unix socket as unix:///path");
        }
        if self.host_types.is_empty() {
            bail!(
                "{s}: no host_types; add [{}.host_types.NAME] with an image",
                &s[1..s.len() - 1]
            );
        }
        for (name, v) in [
            ("max_instances", self.max_instances),
            ("max_cpus", self.max_cpus),
            ("max_memory_mb", self.max_memory_mb),
            ("startup_timeout_secs", self.startup_timeout_secs),
            ("sweep_secs", self.sweep_secs),
        ] {
            if v == 0 {
                bail!("{s} {name} must be positive");
            }
        }
        for (ht, h) in &self.host_types {
            let at = format!("[{}.host_types.{ht}]", &s[1..s.len() - 1]);
            if h.image.trim().is_empty() {
                bail!("{at}: image is empty");
            }
            if h.cpus == 0 || h.memory_mb < 16 {
                bail!("{at}: cpus must be at least 1 and memory_mb at least 16");
            }
            if h.cpus > self.max_cpus {
                bail!(
                    "{at}: cpus = {} exceeds {s} max_cpus = {}, so no instance could ever start",
                    h.cpus,
                    self.max_cpus
                );
            }
            if h.memory_mb > self.max_memory_mb {
                bail!(
                    "{at}: memory_mb = {} exceeds {s} max_memory_mb = {}, so no instance could \
                     ever start",
                    h.memory_mb,
                    self.max_memory_mb
                );
            }
            if let Some(bad) = h.env.iter().find(|e| !e.contains('=')) {
                bail!("{at}: env entry {bad:?} is not KEY=value");
            }
            if backend == Backend::Container
                && (!h.node_selector.is_empty() || !h.tolerations.is_empty())
            {
                bail!("{at}: node_selector and tolerations are for [pools.kubernetes] only");
            }
        }
        Ok(())
    }

    /// The quota limits.
    pub fn limits(&self) -> pool::ledger::Resources {
        pool::ledger::Resources {
            instances: self.max_instances,
            cpus: self.max_cpus,
            memory_mib: self.max_memory_mb,
        }
    }

    /// Host types as the pool takes them.
    pub fn host_specs(&self) -> BTreeMap<String, pool::providers::ephemeral::HostSpec> {
        use pool::providers::ephemeral::{HostSpec, Toleration};
        self.host_types
            .iter()
            .map(|(ht, h)| {
                let env = h
                    .env
                    .iter()
                    .filter_map(|e| e.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                let tolerations = h
                    .tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: t.key.clone(),
                        operator: t.operator.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect();
                let spec = HostSpec::new(&h.image, h.cpus, h.memory_mb)
                    .with_env(env)
                    .with_scheduling(h.node_selector.clone(), tolerations);
                (ht.clone(), spec)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> OnDemandConfig {
        toml::from_str(toml_text).expect("parses")
    }

    #[test]
    fn errors_name_the_entry() {
        let ok = "[host_types.h]\nimage = \"i\"\n";
        assert!(parse(ok).check(Backend::Container).is_ok());
        for (text, backend, want) in [
            ("", Backend::Container, "[pools.container]: no host_types"),
            (
                "socket = \"/run/x.sock\"\n[host_types.h]\nimage = \"i\"\n",
                Backend::Container,
                "unix:///path",
            ),
            (
                "namespace = \"b\"\n[host_types.h]\nimage = \"i\"\n",
                Backend::Container,
                "[pools.container] namespace: only [pools.kubernetes] takes it",
            ),
            (
                "network = \"host\"\n[host_types.h]\nimage = \"i\"\n",
                Backend::Kubernetes,
                "[pools.kubernetes] network: only [pools.container]",
            ),
            (
                "max_cpus = 2\n[host_types.big]\nimage = \"i\"\ncpus = 4\n",
                Backend::Container,
                "[pools.container.host_types.big]: cpus = 4 exceeds [pools.container] max_cpus = 2",
            ),
            (
                "[host_types.h]\nimage = \"\"\n",
                Backend::Kubernetes,
                "[pools.kubernetes.host_types.h]: image is empty",
            ),
            (
                "[host_types.h]\nimage = \"i\"\nnode_selector = { a = \"b\" }\n",
                Backend::Container,
                "for [pools.kubernetes] only",
            ),
            (
                "[host_types.h]\nimage = \"i\"\nenv = [\"NOEQUALS\"]\n",
                Backend::Container,
                "\"NOEQUALS\" is not KEY=value",
            ),
        ] {
            let e = parse(text).check(backend).expect_err(text).0;
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    /// The example of this module's documentation parses and passes its checks.
    #[test]
    fn the_documented_example_is_valid() {
        let text: String = include_str!("ondemand.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or("")))
            .collect();
        let cfg: super::super::Config = toml::from_str(&text).expect("the example parses");
        let c = cfg.pools.container.expect("[pools.container]");
        c.check(Backend::Container).expect("container example");
        assert_eq!(c.host_types["host-linux-container"].cpus, 2);
        let k = cfg.pools.kubernetes.expect("[pools.kubernetes]");
        k.check(Backend::Kubernetes).expect("kubernetes example");
        let spec = &k.host_specs()["host-linux-k8s"];
        assert_eq!(spec.tolerations[0].effect, "NoSchedule");
        assert_eq!(spec.node_selector["pool"], "builders");
    }

    /// Instances that cannot reach the address they would dial are a configuration error.
    #[test]
    fn instances_must_reach_the_front_door() {
        let check = |text: &str| {
            let cfg: super::super::Config = toml::from_str(text).expect("parses");
            cfg.check().map_err(|e| e.0)
        };
        let pools = |section: &str, extra: &str| {
            format!(
                "reverse_listen = \"127.0.0.1:8119\"\n[pools.{section}]\n{extra}\n\
                 [pools.{section}.host_types.h]\nimage = \"i\"\n"
            )
        };
        let e = check(&pools("container", "")).expect_err("bridge to loopback");
        assert!(
            e.contains("[pools.container] coordinator: its instances cannot reach the front door at 127.0.0.1:8119")
                && e.contains("network = \"host\""),
            "{e}"
        );
        check(&pools("container", "network = \"host\"")).expect("host network reaches loopback");
        check(&pools(
            "container",
            "coordinator = \"host.containers.internal:8119\"",
        ))
        .expect("an address of the host");
        if cfg!(feature = "kubernetes") {
            let e = check(&pools("kubernetes", "")).expect_err("pods to loopback");
            assert!(e.contains("[pools.kubernetes] coordinator"), "{e}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let e = toml::from_str::<OnDemandConfig>("max_cpu = 3\n[host_types.h]\nimage = \"i\"\n")
            .expect_err("typo");
        assert!(e.to_string().contains("max_cpu"), "{e}");
    }
}
