//! The coordinator's configuration: a TOML file, every field optional.
//!
//! With no file at all the coordinator builds the git checkout it was started in (if any)
//! with one quick built-in builder on two local buildlets, so `coordinator serve` shows a
//! real build within seconds.
//!
//! ```toml
//! listen = "127.0.0.1:8880"
//! data_dir = "coordinator-data"
//! poll_secs = 15
//! reverse_listen = "127.0.0.1:8119"     # TLS, for `buildlet --reverse-type …`
//! master_key_file = "/etc/farm/master.key"
//! public_url = "https://farm.example.com"  # links in JSON; default http://<listen>
//!
//! [[sources]]
//! name = "myrepo"                 # the grid's repo column
//! url = "/src/myrepo"             # anything `git clone` reaches
//! branches = ["main"]
//!
//! [[builders]]
//! name = "linux-amd64-test"
//! host_type = "host-linux-local"
//! steps = [["sh", "-c", "make test"]]
//! env = ["CGO_ENABLED=0", "GOROOT_BOOTSTRAP=$WORKDIR/go1.4"]
//! step_timeout_secs = 1200
//! bootstrap = { url = "/bootstrap/go1.22-linux-amd64.tar.gz", dir = "go1.4" }  # optional
//!
//! [[builders]]                          # Go's pipeline: make, snapshot, sharded tests
//! name = "linux-amd64"
//! host_type = "host-linux-local"
//! sources = ["myrepo"]
//! steps = [["src/make.bash"]]
//! env = ["GOROOT_BOOTSTRAP=$WORKDIR/go1.4", "GO_TEST_TIMEOUT_SCALE=2"]
//! snapshot = true                       # later builds of this revision skip make
//! tests = { list = ["bin/go", "tool", "dist", "test", "--no-rebuild", "--list"], run = ["bin/go", "tool", "dist", "test", "--no-rebuild", "--banner=XXXBANNERXXX:", "{units}"], helpers = 1, group_prefix = "go_test:", banner = "XXXBANNERXXX:" }
//!
//! [pools.local]
//! host-linux-local = 2
//!
//! [pools.reverse]                       # host type = machines expected
//! host-linux-arm64-rev = 1
//!
//! [perf]
//! postgres_url = "postgres://user:pw@127.0.0.1/perf"   # default: SQLite in data_dir
//!
//! [revdial]                             # how fast a vanished reverse buildlet is dropped
//! keep_alive_secs = 30
//! write_timeout_secs = 10
//! mux = true                            # streams on one connection for buildlets that offer it
//!
//! [tls]                                 # `serve --tls`: HTTPS on the web listener
//! enabled = true
//! cert = "/etc/farm/cert.pem"           # with key; default: self-signed in <data_dir>/tls/
//! key = "/etc/farm/key.pem"
//! one_port = true                       # reverse buildlets register on the web port, as upstream
//!
//! [auth]                                # writes always need a token (`coordinator token create`)
//! anonymous_read = false                # default: true when `listen` is loopback, else false
//! writes_per_minute = 60                # per token: queuing builds, perf uploads (429 past it)
//!
//! [limits]                              # both listeners; these are the defaults
//! max_connections = 4096
//! max_per_ip = 512
//! header_read_secs = 30                 # also the keep-alive idle limit
//! body_idle_secs = 60
//! tls_handshake_secs = 10
//!
//! [env.staging]                         # `serve --env staging`: these replace the above
//! listen = "127.0.0.1:8881"
//! data_dir = "coordinator-staging"
//! reverse_listen = "127.0.0.1:8120"
//!
//! [env.staging.pools.local]
//! host-linux-local = 1
//! ```
//!
//! Every builder's host type must be served by exactly one pool (`[pools.local]`,
//! `[pools.reverse]`, or the on-demand `[pools.container]` and `[pools.kubernetes]`
//! documented in [`ondemand`]): a misspelled one is an error naming the builder, not a
//! silent local buildlet. Without any file the built-in builder runs on `host-local = 2`.

pub mod env;
pub mod go;
pub mod ondemand;
pub mod routing;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use env::EnvConfig;

/// A configuration that cannot work, naming the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

macro_rules! bail {
    ($($t:tt)*) => { return Err(ConfigError(format!($($t)*))) };
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP address of the web UI and API.
    pub listen: SocketAddr,
    /// Where builds, logs, perf data, snapshots and git mirrors are kept.
    pub data_dir: PathBuf,
    /// TLS address where reverse buildlets register (`/reverse`, `/revdial`); `None`
    /// turns reverse buildlets off.
    pub reverse_listen: Option<SocketAddr>,
    /// The master key file (builder keys derive from it); default `<data_dir>/master.key`,
    /// created on first start.
    pub master_key_file: Option<PathBuf>,
    /// Seconds between polls of the work sources.
    pub poll_secs: u64,
    /// Repositories to watch.
    pub sources: Vec<Source>,
    /// Builders and their steps.
    pub builders: Vec<BuilderConfig>,
    /// Buildlet pools.
    pub pools: Pools,
    /// Perf data storage.
    pub perf: PerfConfig,
    /// The coordinator's address as its users reach it (`https://farm.example.com`),
    /// for the links in JSON replies (log and failure URLs). Default: `http://` and the
    /// listen address. Links are never built from a request's `Host` header, which any
    /// client can set.
    pub public_url: Option<String>,
    /// The control connections of reverse buildlets.
    pub revdial: RevdialConfig,
    /// Who may read without a token.
    pub auth: AuthConfig,
    /// HTTPS on the web listener, and upstream's one-port mode.
    pub tls: TlsConfig,
    /// Connection caps and timeouts of the web listener and the reverse front door.
    pub limits: LimitsConfig,
    /// Seconds a `git fetch` or `git clone` of a source may take before it is killed.
    pub git_timeout_secs: u64,
    /// Seconds running builds may finish after a shutdown signal; those still running
    /// are then stopped and queued again (not recorded as canceled).
    pub shutdown_grace_secs: u64,
    /// Megabytes of snapshots kept in `<data_dir>/snapshots`; the least recently used
    /// go first when a new one would exceed it.
    pub snapshot_max_mb: u64,
    /// Named environments (`dev`, `staging`, `prod`, …), each replacing some of the
    /// settings above; chosen with `serve --env NAME`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvConfig>,
}

/// Connection caps and timeouts (netguard's), for the web listener and the reverse port.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections open at once, from all clients.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_ip: usize,
    /// Seconds to send a request head; also how long an idle keep-alive connection waits.
    pub header_read_secs: u64,
    /// Seconds a request body may go without a byte.
    pub body_idle_secs: u64,
    /// Seconds to finish a TLS handshake (reverse port).
    pub tls_handshake_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = netguard::Limits::default();
        LimitsConfig {
            max_connections: d.max_connections,
            max_per_ip: d.max_per_ip,
            header_read_secs: d.header_read.as_secs(),
            body_idle_secs: d.body_idle.as_secs(),
            tls_handshake_secs: d.tls_handshake.as_secs(),
        }
    }
}

impl LimitsConfig {
    /// As netguard's limits (timeouts of at least one second).
    pub fn to_limits(&self) -> netguard::Limits {
        let secs = |s: u64| std::time::Duration::from_secs(s.max(1));
        netguard::Limits {
            max_connections: self.max_connections.max(1),
            max_per_ip: self.max_per_ip.max(1),
            header_read: secs(self.header_read_secs),
            body_idle: secs(self.body_idle_secs),
            tls_handshake: secs(self.tls_handshake_secs),
        }
    }
}

/// How the coordinator watches its reverse buildlets' control connections.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevdialConfig {
    /// A keep-alive (v2) or PING (mux mode) is sent after this many seconds of silence
    /// (upstream: 30).
    pub keep_alive_secs: u64,
    /// A write not acknowledged (v2) or a PING not answered (mux) within this many
    /// seconds ends the connection, so a machine that vanished without a FIN is dropped
    /// within keep_alive + write_timeout.
    pub write_timeout_secs: u64,
    /// Accept the multiplexed mode from buildlets that offer it (ours do, Go's never):
    /// every connection to the machine is a stream on its registration connection.
    pub mux: bool,
}

impl RevdialConfig {
    /// The keep-alive interval (at least a second).
    pub fn keep_alive(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.keep_alive_secs.max(1))
    }

    /// The write (or PING) timeout (at least a second).
    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.write_timeout_secs.max(1))
    }
}

impl Default for RevdialConfig {
    fn default() -> Self {
        RevdialConfig {
            keep_alive_secs: 30,
            write_timeout_secs: 10,
            mux: true,
        }
    }
}

/// HTTPS on the web listener (`serve --tls`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve the UI and APIs over TLS.
    pub enabled: bool,
    /// A PEM certificate (chain) and its key; both or neither. Neither: the
    /// self-signed certificate generated into `<data_dir>/tls/` (its `ca.pem` is what
    /// clients and buildlets trust).
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Upstream's one-port mode: reverse buildlets register on the web listener
    /// (`/reverse`, `/revdial`) and `reverse_listen` is not opened. Needs `enabled`.
    pub one_port: bool,
}

/// Access without a token. Writes always need one (`coordinator token create`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether pages and JSON answer callers without a token. Default: on when the web
    /// listener is on a loopback address (only this machine reaches it), off otherwise.
    pub anonymous_read: Option<bool>,
    /// Expensive writes (queuing a build, a perf upload) each token may make a minute,
    /// in bursts of as many; more get 429. Default 60.
    pub writes_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_read: None,
            writes_per_minute: 60,
        }
    }
}

impl Config {
    /// Whether callers without a token may read (see [`AuthConfig::anonymous_read`]).
    pub fn anonymous_read(&self) -> bool {
        self.auth
            .anonymous_read
            .unwrap_or_else(|| self.listen.ip().is_loopback())
    }
}

/// A repository to watch.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Short name shown in the grid (`repo`).
    pub name: String,
    /// Path or URL that `git` can fetch.
    pub url: String,
    /// Branches to build.
    pub branches: Vec<String>,
    /// Build it as a sub-repo of this other source (Go's `x/` repositories of `go`): at
    /// its own revision, on the snapshot that the same builder made of the other
    /// source's branch head, waiting until that snapshot exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subrepo_of: Option<String>,
    /// The other source's branch it is built against (default: that source's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_branch: Option<String>,
    /// Where a sub-repo's tree goes in the work dir, beside the other source's (default:
    /// its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
}

impl Source {
    /// For a sub-repo: the parent source and its branch it is built against.
    pub fn parent<'a>(&'a self, config: &'a Config) -> Option<(&'a Source, &'a str)> {
        let parent = config
            .sources
            .iter()
            .find(|s| Some(&s.name) == self.subrepo_of.as_ref())?;
        let branch = self
            .go_branch
            .as_deref()
            .or(parent.branches.first().map(String::as_str))?;
        Some((parent, branch))
    }

    /// Where its tree goes in the work dir: `""` (the root) for a source of its own, its
    /// `dir` (or name) for a sub-repo.
    pub fn checkout_dir(&self) -> &str {
        match (&self.subrepo_of, &self.dir) {
            (None, _) => "",
            (Some(_), Some(d)) => d,
            (Some(_), None) => &self.name,
        }
    }
}

/// A builder: what runs, where.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BuilderConfig {
    /// Builder name (a grid column).
    pub name: String,
    /// Host type of the buildlets it runs on.
    pub host_type: String,
    /// The `make` steps: commands run in order in the checked-out source; the first
    /// failure fails the build. Optional with `pipeline = "go"`, which fills them.
    #[serde(default)]
    pub steps: Vec<Vec<String>>,
    /// Extra `KEY=VALUE` environment for every step.
    #[serde(default)]
    pub env: Vec<String>,
    /// Per-step limit (0: none).
    #[serde(default = "default_step_timeout")]
    pub step_timeout_secs: u64,
    /// Sources it builds (empty: all).
    #[serde(default)]
    pub sources: Vec<String>,
    /// A builder of the built-in catalogue (`dashboard_types::Catalogue`) whose upstream
    /// post-submit policy decides which repos and branches this builder builds, e.g.
    /// `"linux-amd64"`: the source name is taken as the Gerrit project (`go`, `net`, …).
    #[serde(default)]
    pub policy: Option<String>,
    /// An archive (a bootstrap toolchain, say) that the buildlet fetches and unpacks
    /// before the steps run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Bootstrap>,
    /// Keep the tree as it is after the steps as a snapshot keyed by (builder, revision);
    /// a later build of the same key, and test helpers, start from it instead of
    /// building. Helpers imply it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// Stop after the steps (and the snapshot): no tests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub make_only: bool,
    /// The directory the steps run in, relative to the work dir; empty runs each
    /// command in its own directory, as upstream's buildlet does (`src/make.bash` in
    /// `src`).
    #[serde(default = "default_dir", skip_serializing_if = "is_default_dir")]
    pub dir: String,
    /// The commands of a sub-repo build (see [`Source::subrepo_of`]), run in the
    /// sub-repo's directory once the parent's snapshot and the sub-repo's tree are in
    /// place (Go's pipeline: `bin/go test -short ./...`). As in every step, a command
    /// given as a relative path is found from the work dir (`x/check.sh`, `bin/go`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subrepo_steps: Vec<Vec<String>>,
    /// `"go"`: Go's pipeline for the catalogue builder named by `policy` fills what this
    /// entry leaves out (see [`go`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Tests listed by a command and sharded over helper buildlets (after the steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestsConfig>,
}

/// Sharded tests: a lister prints the test units, one per line; a runner runs one unit
/// or a group of them, on the build's buildlet and on `helpers` more buildlets of its
/// host type, each started from the build's snapshot. Upstream's Go builders list with
/// `go tool dist test --no-rebuild --list` and run with
/// `go tool dist test --no-rebuild --banner=XXXBANNERXXX: {units}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TestsConfig {
    /// The command whose standard output lists the units, one per line.
    pub list: Vec<String>,
    /// The command that runs units; the argument `{units}` becomes the unit names (one
    /// argument each).
    pub run: Vec<String>,
    /// Extra buildlets of the builder's host type that take units too (0: the build's
    /// own buildlet runs them all).
    #[serde(default)]
    pub helpers: usize,
    /// Seconds one unit (or group) may run, times the builder's
    /// `GO_TEST_TIMEOUT_SCALE` (upstream: 20 minutes).
    #[serde(default = "default_step_timeout")]
    pub unit_timeout_secs: u64,
    /// Units whose names start with this prefix are packed into groups whose summed
    /// recorded duration stays under `group_secs` (upstream: `go_test:`, 10 s); empty:
    /// every unit runs alone.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group_prefix: String,
    /// The duration bound of a group, in seconds.
    #[serde(default = "default_group_secs")]
    pub group_secs: u64,
    /// A banner the runner prints before each unit's output (upstream:
    /// `XXXBANNERXXX:`), shown in the build log as `##### `.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub banner: String,
    /// Arguments put before the units for builds of branches starting with the key
    /// (upstream: `-k` for `release-branch.go…`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub branch_args: BTreeMap<String, Vec<String>>,
    /// Drop the units that the builder's catalogue `policy` does not run, as upstream
    /// does for Go's dist tests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub policy_filter: bool,
    /// Go's `dist test` names: groups, policies and `only` see Go 1.21+ names in their
    /// 1.20 form (`fmt` as `go_test:fmt`), as upstream's did; the runner gets them as
    /// listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub go_names: bool,
    /// Run only the units whose names start with one of these (a quick slice of a long
    /// suite); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
}

fn default_dir() -> String {
    ".".into()
}

fn is_default_dir(d: &String) -> bool {
    d == "."
}

/// The argument of a tests' run command that becomes the unit names.
pub const UNITS: &str = "{units}";

fn default_group_secs() -> u64 {
    10
}

impl TestsConfig {
    /// The timeout scale a builder's environment sets (`GO_TEST_TIMEOUT_SCALE=N`); the
    /// last entry wins, as the file's own entries come after the pipeline's.
    pub fn timeout_scale(env: &[String]) -> u64 {
        u64::from(dashboard_types::builder::go_test_timeout_scale(
            env.iter().rev(),
        ))
    }
}

/// A `.tar.gz` a builder needs beside its source, fetched by the buildlet itself
/// (`/writetgz?url=`), as upstream's builders fetch their Go bootstrap toolchain.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// `https://…` or `http://…`; or `/bootstrap/FILE` for a file in the data
    /// directory's `bootstrap/` folder, which the coordinator serves itself (the buildlet
    /// reaches it at `public_url`, or the listen address).
    pub url: String,
    /// Where it is unpacked in the buildlet's work dir (upstream: `go1.4`). Point a step's
    /// environment at it, e.g. `env = ["GOROOT_BOOTSTRAP=$WORKDIR/go1.4"]`.
    #[serde(default = "default_bootstrap_dir")]
    pub dir: String,
}

/// Whether `name` may name a file of the data dir's `bootstrap/` folder: one path element
/// of letters, digits, `.`, `-`, `_` and `+`, not starting with a dot. The configuration
/// check and the `/bootstrap/{file}` route both ask here.
pub fn bootstrap_file_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

fn default_bootstrap_dir() -> String {
    "go1.4".into()
}

fn default_step_timeout() -> u64 {
    20 * 60
}

/// Buildlet pools.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Pools {
    /// Local in-process buildlets: host type → count.
    pub local: BTreeMap<String, usize>,
    /// Host types served by reverse buildlets: host type → machines expected.
    pub reverse: BTreeMap<String, i64>,
    /// One container per lease on Docker or Podman (see [`ondemand`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ondemand::OnDemandConfig>,
    /// One pod per lease on a Kubernetes cluster (feature `kubernetes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<ondemand::OnDemandConfig>,
}

impl Pools {
    /// Every host type with the section serving it.
    pub fn host_types(&self) -> impl Iterator<Item = (&String, &'static str)> {
        self.local
            .keys()
            .map(|k| (k, "[pools.local]"))
            .chain(self.reverse.keys().map(|k| (k, "[pools.reverse]")))
            .chain(
                self.container
                    .iter()
                    .flat_map(|c| c.host_types.keys().map(|k| (k, "[pools.container]"))),
            )
            .chain(
                self.kubernetes
                    .iter()
                    .flat_map(|c| c.host_types.keys().map(|k| (k, "[pools.kubernetes]"))),
            )
    }

    /// The section serving `host_type`.
    pub fn serving(&self, host_type: &str) -> Option<&'static str> {
        self.host_types()
            .find(|(k, _)| k.as_str() == host_type)
            .map(|(_, s)| s)
    }
}

/// Where perf data goes.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PerfConfig {
    /// A PostgreSQL URL; when absent, perf data lives in SQLite in the data directory.
    pub postgres_url: Option<String>,
}

/// The host type of the built-in builder and local pool.
pub const LOCAL_HOST_TYPE: &str = "host-local";

/// The built-in quick builder: checks the source arrived and summarises it.
pub fn quick_builder() -> BuilderConfig {
    BuilderConfig {
        name: "local-quick".into(),
        host_type: LOCAL_HOST_TYPE.into(),
        steps: vec![
            vec![
                "sh".into(),
                "-c".into(),
                "echo \"tree at $(cat .xbuild-rev)\"; find . -type f | wc -l | sed 's/^/files: /'"
                    .into(),
            ],
            vec![
                "sh".into(),
                "-c".into(),
                "test -s .xbuild-rev && ls -a | head -50".into(),
            ],
        ],
        env: Vec::new(),
        step_timeout_secs: 60,
        sources: Vec::new(),
        policy: None,
        bootstrap: None,
        snapshot: false,
        make_only: false,
        dir: default_dir(),
        subrepo_steps: Vec::new(),
        pipeline: None,
        tests: None,
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8880".parse().expect("valid address"),
            data_dir: PathBuf::from("coordinator-data"),
            reverse_listen: Some("127.0.0.1:8119".parse().expect("valid address")),
            master_key_file: None,
            poll_secs: 15,
            sources: Vec::new(),
            builders: Vec::new(),
            pools: Pools::default(),
            perf: PerfConfig::default(),
            public_url: None,
            revdial: RevdialConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            git_timeout_secs: 300,
            shutdown_grace_secs: 10,
            snapshot_max_mb: 10 << 10,
            env: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads a TOML file (not yet checked: choose an environment, fill the defaults, then
    /// [`Config::check`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// The configuration of environment `name` (see [`EnvConfig`]); `None` leaves it as
    /// it is. The result has no environments left.
    pub fn for_env(mut self, name: Option<&str>) -> Result<Config, ConfigError> {
        let envs = std::mem::take(&mut self.env);
        let Some(name) = name else {
            return Ok(self);
        };
        match envs.get(name) {
            Some(e) => Ok(e.apply(self)),
            None if envs.is_empty() => {
                bail!("no environment {name:?}: the configuration defines none ([env.NAME])")
            }
            None => bail!(
                "no environment {name:?}; the configuration defines: {}",
                envs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Refuses what cannot work, naming the entry: empty steps, duplicate names, two
    /// sources in one mirror directory, unknown policies and sources, host types that no
    /// pool serves.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!(
                "[tls]: give both cert and key, or neither (a generated self-signed certificate)"
            );
        }
        if self.tls.one_port && !self.tls.enabled {
            bail!(
                "[tls] one_port: reverse buildlets register over TLS only; set enabled = true (serve --tls)"
            );
        }
        let catalogue = dashboard_types::catalogue::Catalogue::builtin();
        let mut mirrors: BTreeMap<String, &str> = BTreeMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.name.is_empty() {
                bail!("sources[{i}]: a source needs a name");
            }
            if self.sources[..i].iter().any(|o| o.name == s.name) {
                bail!("source {:?} is declared twice", s.name);
            }
            if let Some(parent) = &s.subrepo_of {
                match self.sources.iter().find(|p| &p.name == parent) {
                    None => bail!(
                        "source {:?}: subrepo_of names no source ({parent:?})",
                        s.name
                    ),
                    Some(p) if p.subrepo_of.is_some() => bail!(
                        "source {:?}: {parent:?} is itself a sub-repo; sub-repos are built against a source of its own",
                        s.name
                    ),
                    Some(p) => {
                        if let Some(b) = &s.go_branch
                            && !p.branches.contains(b)
                        {
                            bail!(
                                "source {:?}: go_branch {b:?} is not a branch of {parent:?}",
                                s.name
                            );
                        }
                        if p.branches.is_empty() {
                            bail!(
                                "source {:?}: {parent:?} has no branch to build against",
                                s.name
                            );
                        }
                    }
                }
                let dir = s.checkout_dir();
                if dir.is_empty()
                    || dir.starts_with('/')
                    || dir.split('/').any(|p| p == ".." || p.is_empty())
                {
                    bail!(
                        "source {:?}: dir {dir:?} must be a relative path inside the work dir",
                        s.name
                    );
                }
            } else if s.go_branch.is_some() || s.dir.is_some() {
                bail!(
                    "source {:?}: go_branch and dir are for sub-repos (subrepo_of)",
                    s.name
                );
            }
            let dir = crate::sources::git::mirror_dir_name(&s.name);
            if let Some(other) = mirrors.insert(dir.clone(), &s.name) {
                bail!(
                    "sources {other:?} and {:?} would share the mirror directory {dir}; rename one",
                    s.name
                );
            }
        }
        for (i, b) in self.builders.iter().enumerate() {
            if self.builders[..i].iter().any(|o| o.name == b.name) {
                bail!("builder {:?} is declared twice", b.name);
            }
            match (b.pipeline.as_deref(), &b.policy) {
                (None, _) | (Some(go::GO), Some(_)) => {}
                (Some(go::GO), None) => bail!(
                    "builder {:?}: pipeline \"go\" needs a catalogue builder as its policy",
                    b.name
                ),
                (Some(other), _) => {
                    bail!(
                        "builder {:?}: unknown pipeline {other:?} (known: \"go\")",
                        b.name
                    )
                }
            }
            if b.dir.starts_with('/') || b.dir.split('/').any(|p| p == "..") {
                bail!(
                    "builder {:?}: dir {:?} must be a relative path inside the work dir",
                    b.name,
                    b.dir
                );
            }
            if b.steps.is_empty() {
                bail!(
                    "builder {:?} has no steps: give it steps, or pipeline = \"go\" with a catalogue policy",
                    b.name
                );
            }
            if b.steps.iter().chain(&b.subrepo_steps).any(Vec::is_empty) {
                bail!("builder {:?}: every step needs a command", b.name);
            }
            if let Some(p) = &b.policy
                && catalogue.builder(p).is_none()
            {
                bail!(
                    "builder {:?}: policy {p:?} is not a builder of the built-in catalogue",
                    b.name
                );
            }
            for s in &b.sources {
                if !self.sources.iter().any(|x| &x.name == s) {
                    bail!("builder {:?}: unknown source {s:?}", b.name);
                }
            }
            self.check_subrepos(b, &catalogue)?;
            if let Some(bs) = &b.bootstrap {
                let served = bs
                    .url
                    .strip_prefix("/bootstrap/")
                    .is_some_and(bootstrap_file_ok);
                if !(bs.url.starts_with("https://") || bs.url.starts_with("http://") || served) {
                    bail!(
                        "builder {:?}: bootstrap url {:?} must be http(s)://… or /bootstrap/FILE",
                        b.name,
                        bs.url
                    );
                }
                if bs.dir.is_empty()
                    || bs.dir.starts_with('/')
                    || bs.dir.split('/').any(|p| p == "..")
                {
                    bail!(
                        "builder {:?}: bootstrap dir {:?} must be a relative path inside the work dir",
                        b.name,
                        bs.dir
                    );
                }
            }
            if let Some(t) = &b.tests {
                if t.list.is_empty() || t.run.is_empty() {
                    bail!("builder {:?}: tests need a list and a run command", b.name);
                }
                if !t.run.iter().any(|a| a == UNITS) {
                    bail!(
                        "builder {:?}: the tests' run command needs the argument {UNITS:?}",
                        b.name
                    );
                }
                if t.unit_timeout_secs == 0 {
                    bail!("builder {:?}: unit_timeout_secs must be positive", b.name);
                }
                if b.make_only {
                    bail!(
                        "builder {:?}: make_only and tests exclude each other",
                        b.name
                    );
                }
                if t.helpers > 64 {
                    bail!("builder {:?}: at most 64 helpers", b.name);
                }
            }
            if self.pools.serving(&b.host_type).is_none() {
                let known: Vec<String> = self
                    .pools
                    .host_types()
                    .map(|(k, _)| format!("{k:?}"))
                    .collect();
                bail!(
                    "builder {:?}: no pool serves host type {:?}; add it under [pools.local], \
                     [pools.reverse], [pools.container] or [pools.kubernetes] (pools: {})",
                    b.name,
                    b.host_type,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
        }
        let mut seen: BTreeMap<&String, &str> = BTreeMap::new();
        for (ht, section) in self.pools.host_types() {
            if let Some(first) = seen.insert(ht, section) {
                bail!("host type {ht:?} is in both {first} and {section}");
            }
        }
        for (section, pool, backend) in [
            (
                "[pools.container]",
                &self.pools.container,
                ondemand::Backend::Container,
            ),
            (
                "[pools.kubernetes]",
                &self.pools.kubernetes,
                ondemand::Backend::Kubernetes,
            ),
        ] {
            let Some(pool) = pool else { continue };
            pool.check(backend)?;
            let front_door = if self.tls.one_port {
                Some(self.listen)
            } else {
                self.reverse_listen
            };
            let Some(front_door) = front_door else {
                bail!(
                    "{section}: its buildlets register through the reverse front door; set \
                     reverse_listen (or [tls] one_port = true)"
                );
            };
            // Without `coordinator`, instances dial the front door's own address; from a
            // pod, or a container outside the host's network, loopback is not the host.
            let host_network =
                backend == ondemand::Backend::Container && pool.network.as_deref() == Some("host");
            let ip = front_door.ip();
            if pool.coordinator.is_none()
                && !host_network
                && (ip.is_loopback() || ip.is_unspecified())
            {
                bail!(
                    "{section} coordinator: its instances cannot reach the front door at \
                     {front_door} (loopback is not the host from inside them); set coordinator \
                     to an address they reach (Podman: host.containers.internal:{port}, with \
                     reverse_listen = \"0.0.0.0:{port}\"){host}",
                    port = front_door.port(),
                    host = if backend == ondemand::Backend::Container {
                        ", or network = \"host\""
                    } else {
                        ""
                    }
                );
            }
        }
        if self.pools.kubernetes.is_some() && !cfg!(feature = "kubernetes") {
            bail!(
                "[pools.kubernetes]: this coordinator was built without Kubernetes support; \
                 rebuild it with `cargo build --release --features kubernetes`"
            );
        }
        Ok(())
    }

    /// A builder that builds a sub-repo needs its sub-repo steps, snapshots, and to build
    /// the parent's branch too: the parent's snapshot by this builder is what the
    /// sub-repo builds on, and without it the sub-repo's builds could never start.
    fn check_subrepos(
        &self,
        b: &BuilderConfig,
        catalogue: &dashboard_types::catalogue::Catalogue,
    ) -> Result<(), ConfigError> {
        for sub in &self.sources {
            let Some((parent, branch)) = sub.parent(self) else {
                continue;
            };
            if !sub
                .branches
                .iter()
                .any(|br| routing::builds(b, sub, br, catalogue))
            {
                continue;
            }
            if b.subrepo_steps.is_empty() || !b.snapshot {
                bail!(
                    "builder {:?} builds the sub-repo {:?}, so it needs subrepo_steps and \
                     snapshot = true (or a sources list without it)",
                    b.name,
                    sub.name
                );
            }
            if !routing::builds(b, parent, branch, catalogue) {
                bail!(
                    "builder {:?} builds the sub-repo {:?} but not {:?} {branch}, so it never \
                     makes the snapshot the sub-repo builds on; let it build {:?} too",
                    b.name,
                    sub.name,
                    parent.name,
                    parent.name
                );
            }
        }
        Ok(())
    }

    /// Fills what the file left out: the checkout in `cwd` as the source, and the
    /// built-in builder on two local buildlets when no builder is configured.
    pub fn with_defaults(mut self, cwd: &Path) -> Config {
        if self.sources.is_empty()
            && let Some(source) = crate::sources::git::checkout_source(cwd)
        {
            self.sources.push(source);
        }
        let catalogue = dashboard_types::catalogue::Catalogue::builtin();
        for b in &mut self.builders {
            go::fill(b, &catalogue);
        }
        if self.builders.is_empty() {
            self.builders.push(quick_builder());
            self.pools
                .local
                .entry(LOCAL_HOST_TYPE.to_string())
                .or_insert(2);
        }
        self
    }

    /// The builder named `name`.
    pub fn builder(&self, name: &str) -> Option<&BuilderConfig> {
        self.builders.iter().find(|b| b.name == name)
    }

    /// How many machines a host type can have at once (local: the count; reverse: the
    /// machines expected, at least one, so that a build can wait for the first; on-demand:
    /// as many instances as the pool's quotas allow).
    pub fn capacity(&self, host_type: &str) -> usize {
        let p = &self.pools;
        if let Some(n) = p.local.get(host_type) {
            return *n;
        }
        if let Some(n) = p.reverse.get(host_type) {
            return (*n).max(1) as usize;
        }
        [&p.container, &p.kubernetes]
            .into_iter()
            .flatten()
            .find_map(|c| {
                let h = c.host_types.get(host_type)?;
                let fit = (c.max_cpus / h.cpus.max(1)).min(c.max_memory_mb / h.memory_mb.max(1));
                Some(fit.min(c.max_instances) as usize)
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TOML example of this module's documentation.
    fn documented_example() -> String {
        include_str!("mod.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                l.trim_start_matches("//!")
                    .trim_start_matches(' ')
                    .to_string()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn the_documented_example_parses() {
        let cfg: Config = toml::from_str(&documented_example()).unwrap();
        assert_eq!(cfg.sources[0].branches, ["main"]);
        assert_eq!(cfg.builders[0].steps[0], ["sh", "-c", "make test"]);
        assert_eq!(cfg.pools.local.get("host-linux-local"), Some(&2));
        assert_eq!(cfg.pools.reverse.get("host-linux-arm64-rev"), Some(&1));
        assert!(
            toml::from_str::<Config>("bogus = 1").is_err(),
            "unknown keys are refused"
        );
        cfg.check().unwrap();
    }

    #[test]
    fn printed_configuration_loads_back_unchanged() {
        // What `coordinator config` prints must be a file `serve --config` accepts as is.
        let example: Config = toml::from_str(&documented_example()).unwrap();
        for cfg in [
            Config::default().with_defaults(Path::new("/src/checkout")),
            example,
        ] {
            let printed = toml::to_string(&cfg).unwrap();
            let again: Config = toml::from_str(&printed).unwrap();
            assert_eq!(format!("{again:?}"), format!("{cfg:?}"), "{printed}");
        }
    }

    #[test]
    fn bootstrap_urls_and_dirs_are_checked() {
        let mut cfg = Config::default().with_defaults(Path::new("/nonexistent"));
        let with = |url: &str, dir: &str| {
            let mut cfg = cfg.clone();
            cfg.builders[0].bootstrap = Some(Bootstrap {
                url: url.into(),
                dir: dir.into(),
            });
            cfg.check()
        };
        assert!(with("https://dl.example.com/go.tgz", "go1.4").is_ok());
        assert!(with("/bootstrap/go1.22.tar.gz", "go1.4").is_ok());
        for (url, dir) in [
            ("ftp://x/y.tgz", "go1.4"),
            ("/bootstrap/../secret", "go1.4"),
            ("/etc/passwd", "go1.4"),
            ("https://x/y.tgz", "/abs"),
            ("https://x/y.tgz", "../out"),
            ("https://x/y.tgz", ""),
        ] {
            let err = with(url, dir).unwrap_err().to_string();
            assert!(err.contains("local-quick"), "{url} {dir}: {err}");
        }
        cfg.builders.clear();
        assert!(cfg.check().is_ok());
    }

    #[test]
    fn builders_of_subrepos_build_their_parents_with_snapshots() {
        let text = |builder_sources: &str, extra: &str| {
            format!(
                "[[sources]]\nname = \"go\"\nurl = \"/src/go\"\nbranches = [\"master\"]\n\n\
                 [[sources]]\nname = \"net\"\nurl = \"/src/net\"\nbranches = [\"master\"]\nsubrepo_of = \"go\"\n\n\
                 [[builders]]\nname = \"b\"\nhost_type = \"h\"\nsteps = [[\"make\"]]\nsources = {builder_sources}\n{extra}\n\
                 [pools.local]\nh = 1\n"
            )
        };
        let check = |t: String| toml::from_str::<Config>(&t).unwrap().check();
        let good = "snapshot = true\nsubrepo_steps = [[\"bin/go\", \"test\", \"./...\"]]";
        assert!(check(text("[\"go\", \"net\"]", good)).is_ok());
        assert!(check(text("[]", good)).is_ok(), "no list: builds both");
        assert!(check(text("[\"go\"]", "")).is_ok(), "the parent only");
        let err = check(text("[\"net\"]", good)).unwrap_err().to_string();
        assert!(err.contains("never makes the snapshot"), "{err}");
        let err = check(text("[]", "")).unwrap_err().to_string();
        assert!(
            err.contains("needs subrepo_steps and snapshot = true"),
            "{err}"
        );
        let err = check(text("[\"go\", \"net\"]", "snapshot = true"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs subrepo_steps"), "{err}");
    }

    #[test]
    fn catalogue_policies_decide() {
        let catalogue = dashboard_types::catalogue::Catalogue::builtin();
        let mut b = quick_builder();
        let src = |name: &str| Source {
            name: name.into(),
            url: String::new(),
            branches: vec![],
            subrepo_of: None,
            go_branch: None,
            dir: None,
        };
        assert!(routing::builds(&b, &src("anything"), "main", &catalogue));
        b.sources = vec!["other".into()];
        assert!(!routing::builds(&b, &src("anything"), "main", &catalogue));
        b.sources.clear();
        b.policy = Some("linux-amd64".into());
        assert!(routing::builds(&b, &src("go"), "master", &catalogue));
        // Upstream's policy: release branches before Go 1.11 are not built.
        assert!(!routing::builds(
            &b,
            &src("go"),
            "release-branch.go1.10",
            &catalogue
        ));
        let mut cfg = Config::default().with_defaults(Path::new("/nonexistent"));
        cfg.builders[0].policy = Some("no-such-builder".into());
        let err = cfg.check().unwrap_err().to_string();
        assert!(
            err.contains("not a builder of the built-in catalogue"),
            "{err}"
        );
    }
}
