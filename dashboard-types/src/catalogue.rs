//! The builder/host catalogue: loading from TOML, validation, migration switches, and
//! look-ups (spec §3–§5).
//!
//! A catalogue file has three parts, all optional but `Hosts` and `Builders`:
//! ```toml
//! [Migration]                       # upstream's internal/migration switches (default off)
//! StopAllLegacyBuilders = false
//!
//! [Hosts.host-linux-amd64-bullseye] # keyed by host type, like upstream's Hosts map
//! ContainerImage = "linux-x86-bullseye:latest"
//!
//! [[Builders]]                      # one table per builder, like upstream's addBuilder
//! Name = "linux-amd64"
//! HostType = "host-linux-amd64-bullseye"
//! tryBot = { default_try_set = [] }
//!
//! [[MiscCompile]]                   # upstream's addMiscCompile helper
//! goos = "windows"
//! goarch = "arm"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::builder::{BuildConfig, Builder};
use crate::error::{Error, Result};
use crate::host::{DEFAULT_GO_BOOTSTRAP, HostConfig};
use crate::names::{BuilderName, derive_host_arch};
use crate::policy::RepoPolicy;
use crate::wire::MajorMinor;

/// The catalogue compiled into the crate: real upstream hosts and builders.
pub const BUILTIN_TOML: &str = include_str!("builtin.toml");

/// Notes given to a builder stopped because it was ported to LUCI.
pub const NOTES_PORTED: &str =
    "Unavailable in the coordinator. Use LUCI (https://go.dev/wiki/LUCI) instead.";
/// Notes given to every other builder when all legacy builders are stopped.
pub const NOTES_STOPPED: &str = "Unavailable in the coordinator. Look for a tracking issue to add this builder to LUCI (https://go.dev/wiki/LUCI) instead.";

/// Upstream's LUCI migration switches (golang.org/x/build `internal/migration`).
///
/// Upstream has them all on, which means **no builder builds anything**. A reference
/// coordinator that is meant to build keeps them off by default; [`Migration::upstream`]
/// gives upstream's setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Migration {
    /// Misc-compile trybots are not registered.
    #[serde(rename = "StopLegacyMiscCompileTryBots")]
    pub stop_legacy_misc_compile_try_bots: bool,
    /// Builders in `ported_to_luci` build nothing.
    #[serde(rename = "StopPortedBuilder")]
    pub stop_ported_builder: bool,
    /// Every other builder builds nothing either.
    #[serde(rename = "StopAllLegacyBuilders")]
    pub stop_all_legacy_builders: bool,
    /// Builders that have a LUCI equivalent.
    #[serde(rename = "BuildersPortedToLUCI")]
    pub ported_to_luci: BTreeSet<String>,
}

impl Migration {
    /// The switches as upstream sets them today (all on), keeping this list of ported
    /// builders.
    pub fn upstream(ported_to_luci: BTreeSet<String>) -> Migration {
        Migration {
            stop_legacy_misc_compile_try_bots: true,
            stop_ported_builder: true,
            stop_all_legacy_builders: true,
            ported_to_luci,
        }
    }
}

/// One `addMiscCompile` call: a compile-only trybot for `goos/goarch` on a linux-amd64 host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiscCompile {
    /// Target GOOS.
    pub goos: String,
    /// Target GOARCH.
    pub goarch: String,
    /// Minimum Go 1.x minor (0 = none).
    #[serde(default)]
    pub min: u32,
    /// Name suffix after `goos-goarch` (`-arm5`, `-go1.22`).
    #[serde(default)]
    pub suffix: String,
    /// Extra environment placed before the defaults.
    #[serde(default)]
    pub env: Vec<String>,
    /// Host type to run on.
    #[serde(default = "misc_compile_host")]
    pub host: String,
}

fn misc_compile_host() -> String {
    "host-linux-amd64-bullseye".into()
}

impl MiscCompile {
    /// The builder upstream's `addMiscCompileGo1` registers.
    fn to_build_config(&self) -> BuildConfig {
        let platform = format!("{}-{}{}", self.goos, self.goarch, self.suffix);
        let also = if self.min != 0 {
            format!(" Applies to Go 1.{} and newer.", self.min)
        } else {
            String::new()
        };
        let mut env = self.env.clone();
        env.extend([
            "GO_DISABLE_OUTBOUND_NETWORK=1".to_owned(),
            format!("GOOS={}", self.goos),
            format!("GOARCH={}", self.goarch),
        ]);
        BuildConfig {
            name: format!("misc-compile-{platform}"),
            host_type: self.host.clone(),
            try_bot: Some(RepoPolicy::MiscCompile {
                goos: self.goos.clone(),
                goarch: self.goarch.clone(),
            }),
            env,
            try_only: true,
            minimum_go_version: if self.min != 0 {
                MajorMinor::new(1, i64::from(self.min))
            } else {
                MajorMinor::default()
            },
            compile_only: true,
            skip_snapshot: true,
            notes: format!(
                "Runs make.bash (or compile-only go test) for {platform}, but doesn't run any tests.{also}"
            ),
            ..Default::default()
        }
    }
}

/// The file format (see the module docs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(rename = "Migration", default)]
    migration: Migration,
    #[serde(rename = "Hosts", default)]
    hosts: BTreeMap<String, HostConfig>,
    #[serde(rename = "Builders", default)]
    builders: Vec<BuildConfig>,
    #[serde(rename = "MiscCompile", default)]
    misc_compile: Vec<MiscCompile>,
}

/// A validated catalogue of hosts and builders.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    hosts: BTreeMap<String, HostConfig>,
    builders: BTreeMap<String, BuildConfig>,
    migration: Migration,
}

impl Catalogue {
    /// The built-in catalogue with its own migration setting (switches off).
    pub fn builtin() -> Catalogue {
        Self::from_toml_str(BUILTIN_TOML, "built-in").expect("the built-in catalogue is valid")
    }

    /// The built-in catalogue with other migration switches (e.g. [`Migration::upstream`]).
    pub fn builtin_with(migration: Migration) -> Catalogue {
        let mut file = parse_file(BUILTIN_TOML, "built-in").expect("built-in parses");
        file.migration = migration;
        Self::from_file(file).expect("the built-in catalogue is valid")
    }

    /// Loads and validates a catalogue file.
    pub fn load(path: &Path) -> Result<Catalogue> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates catalogue text; `source_name` names it in errors.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Catalogue> {
        Self::from_file(parse_file(text, source_name)?)
    }

    fn from_file(file: CatalogueFile) -> Result<Catalogue> {
        let mut hosts = BTreeMap::new();
        for (key, host) in file.hosts {
            let host = validate_host(&key, host)?;
            hosts.insert(key, host);
        }
        let misc = if file.migration.stop_legacy_misc_compile_try_bots {
            Vec::new()
        } else {
            file.misc_compile
                .iter()
                .map(MiscCompile::to_build_config)
                .collect()
        };
        let mut builders = BTreeMap::new();
        for mut b in file.builders.into_iter().chain(misc) {
            validate_builder(&b, &hosts)?;
            if builders.contains_key(&b.name) {
                return Err(Error::InvalidBuilder {
                    builder: b.name,
                    reason: "defined twice; builder names must be unique".into(),
                });
            }
            apply_migration(&mut b, &file.migration);
            builders.insert(b.name.clone(), b);
        }
        Ok(Catalogue {
            hosts,
            builders,
            migration: file.migration,
        })
    }

    /// The migration switches in force.
    pub fn migration(&self) -> &Migration {
        &self.migration
    }

    /// Every host, by host type.
    pub fn hosts(&self) -> &BTreeMap<String, HostConfig> {
        &self.hosts
    }

    /// A host by host type.
    pub fn host(&self, host_type: &str) -> Option<&HostConfig> {
        self.hosts.get(host_type)
    }

    /// A builder by name, resolved against its host.
    pub fn builder(&self, name: &str) -> Option<Builder<'_>> {
        let config = self.builders.get(name)?;
        let host = self.hosts.get(&config.host_type)?;
        Some(Builder { config, host })
    }

    /// Every builder, sorted by name.
    pub fn builders(&self) -> impl Iterator<Item = Builder<'_>> + '_ {
        self.builders.values().filter_map(|config| {
            let host = self.hosts.get(&config.host_type)?;
            Some(Builder { config, host })
        })
    }

    /// Upstream's `TryBuildersForProject`: builders that run as trybots here, by name.
    pub fn try_builders_for_project(
        &self,
        repo: &str,
        branch: &str,
        go_branch: &str,
    ) -> Vec<Builder<'_>> {
        self.builders()
            .filter(|b| b.builds_repo_try_bot(repo, branch, go_branch))
            .collect()
    }

    /// Builders that build this (repo, branch, goBranch) after submit, by name.
    pub fn post_submit_builders(
        &self,
        repo: &str,
        branch: &str,
        go_branch: &str,
    ) -> Vec<Builder<'_>> {
        self.builders()
            .filter(|b| b.builds_repo_post_submit(repo, branch, go_branch))
            .collect()
    }
}

fn parse_file(text: &str, source_name: &str) -> Result<CatalogueFile> {
    toml::from_str(text).map_err(|e| Error::Parse {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })
}

fn validate_host(key: &str, mut host: HostConfig) -> Result<HostConfig> {
    let bad = |reason: String| Error::InvalidHost {
        host: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(bad("empty host type key".into()));
    }
    if host.host_type.is_empty() {
        host.host_type = key.to_owned();
    }
    if host.host_type != key {
        return Err(bad(format!(
            "HostType {:?} differs from its key; remove HostType or make them equal",
            host.host_type
        )));
    }
    if host.host_arch.is_empty() {
        host.host_arch = derive_host_arch(key).ok_or_else(|| {
            bad("name must be host-<os>-<arch>-<suffix>, or set HostArch explicitly".into())
        })?;
    }
    let arch_fields = host.host_arch.split('-').count();
    if !(2..=3).contains(&arch_fields) || host.host_arch.split('-').any(str::is_empty) {
        return Err(bad(format!(
            "HostArch {:?} must be GOOS-GOARCH or GOOS-GOARCH-GOARM",
            host.host_arch
        )));
    }
    if host.go_bootstrap.is_empty() {
        host.go_bootstrap = DEFAULT_GO_BOOTSTRAP.to_owned();
    }
    match host.kinds_set() {
        1 => {}
        0 => {
            return Err(bad(
                "no pool kind: set exactly one of VMImage, ContainerImage or IsReverse".into(),
            ));
        }
        n => {
            return Err(bad(format!(
                "claims {n} pool kinds: set exactly one of VMImage, ContainerImage (on \
                 non-EC2 hosts) or IsReverse"
            )));
        }
    }
    if host.google_reverse && !host.is_reverse {
        return Err(bad("GoogleReverse is only valid on reverse hosts".into()));
    }
    Ok(host)
}

fn validate_builder(b: &BuildConfig, hosts: &BTreeMap<String, HostConfig>) -> Result<()> {
    let bad = |reason: String| Error::InvalidBuilder {
        builder: b.name.clone(),
        reason,
    };
    if b.name.is_empty() {
        return Err(bad("empty Name".into()));
    }
    BuilderName::parse(&b.name).map_err(|e| bad(e.to_string()))?;
    if b.host_type.is_empty() {
        return Err(bad("missing HostType".into()));
    }
    let Some(host) = hosts.get(&b.host_type) else {
        return Err(bad(format!(
            "unknown HostType {:?}; define it under [Hosts.{}]",
            b.host_type, b.host_type
        )));
    };
    if host.google_reverse && !host.is_reverse {
        return Err(bad(
            "GoogleReverse is set but the builder isn't reverse".into()
        ));
    }
    if b.skip_snapshot && (b.num_test_helpers > 0 || b.num_try_test_helpers > 0) {
        return Err(bad(
            "SkipSnapshot is not compatible with sharded test helpers".into(),
        ));
    }
    if let Some(i) = b.known_issues.iter().position(|&n| n == 0) {
        return Err(bad(format!("KnownIssues has a zero issue at index {i}")));
    }
    Ok(())
}

/// What upstream's `addBuilder` does to a builder when the switches are on.
fn apply_migration(b: &mut BuildConfig, m: &Migration) {
    if m.stop_ported_builder && m.ported_to_luci.contains(&b.name) {
        b.builds_repo = Some(RepoPolicy::Never);
        b.notes = NOTES_PORTED.into();
    } else if m.stop_all_legacy_builders {
        b.builds_repo = Some(RepoPolicy::Never);
        b.notes = NOTES_STOPPED.into();
    }
}
