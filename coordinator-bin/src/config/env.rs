//! Named environments, as upstream's `buildenv` names production, staging and
//! development: one file holds them all, `serve --env NAME` picks one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Pools, Source};

/// What an environment replaces; everything left out keeps the file's top-level value.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// HTTP address.
    pub listen: Option<SocketAddr>,
    /// Reverse-buildlet address.
    pub reverse_listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Links in JSON replies.
    pub public_url: Option<String>,
    /// Seconds between polls.
    pub poll_secs: Option<u64>,
    /// Sources (replace the top-level list).
    pub sources: Option<Vec<Source>>,
    /// Pools (each table given replaces the top-level one).
    pub pools: Option<EnvPools>,
}

/// An environment's pools.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EnvPools {
    /// Local buildlets: host type → count.
    pub local: Option<BTreeMap<String, usize>>,
    /// Reverse buildlets: host type → machines expected.
    pub reverse: Option<BTreeMap<String, i64>>,
    /// Replaces `[pools.container]`.
    pub container: Option<super::ondemand::OnDemandConfig>,
    /// Replaces `[pools.kubernetes]`.
    pub kubernetes: Option<super::ondemand::OnDemandConfig>,
}

impl EnvConfig {
    /// `base` with this environment's settings in place.
    pub fn apply(&self, mut base: Config) -> Config {
        let e = self.clone();
        if let Some(v) = e.listen {
            base.listen = v;
        }
        if let Some(v) = e.reverse_listen {
            base.reverse_listen = Some(v);
        }
        if let Some(v) = e.data_dir {
            base.data_dir = v;
        }
        if let Some(v) = e.public_url {
            base.public_url = Some(v);
        }
        if let Some(v) = e.poll_secs {
            base.poll_secs = v;
        }
        if let Some(v) = e.sources {
            base.sources = v;
        }
        if let Some(p) = e.pools {
            let Pools {
                local,
                reverse,
                container,
                kubernetes,
            } = base.pools;
            base.pools = Pools {
                local: p.local.unwrap_or(local),
                reverse: p.reverse.unwrap_or(reverse),
                container: p.container.or(container),
                kubernetes: p.kubernetes.or(kubernetes),
            };
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
listen = "127.0.0.1:8880"
data_dir = "prod-data"

[pools.local]
host-a = 4

[env.dev]
listen = "127.0.0.1:9990"
data_dir = "dev-data"

[env.dev.pools.local]
host-a = 1

[env.staging]
poll_secs = 60
"#;

    #[test]
    fn an_environment_replaces_only_what_it_names() {
        let cfg: Config = toml::from_str(FILE).unwrap();
        let dev = cfg.clone().for_env(Some("dev")).unwrap();
        assert_eq!(dev.listen.port(), 9990);
        assert_eq!(dev.data_dir, PathBuf::from("dev-data"));
        assert_eq!(dev.pools.local.get("host-a"), Some(&1));
        assert!(
            dev.env.is_empty(),
            "the chosen result has no environments left"
        );
        let staging = cfg.clone().for_env(Some("staging")).unwrap();
        assert_eq!(staging.listen.port(), 8880);
        assert_eq!(staging.poll_secs, 60);
        assert_eq!(staging.pools.local.get("host-a"), Some(&4));
        let none = cfg.clone().for_env(None).unwrap();
        assert_eq!(none.data_dir, PathBuf::from("prod-data"));
        let err = cfg.for_env(Some("prod")).unwrap_err().to_string();
        assert!(
            err.contains("\"prod\"") && err.contains("dev, staging"),
            "{err}"
        );
    }
}
