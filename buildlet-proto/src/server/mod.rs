//! The buildlet server as a value: [`router`] builds the whole HTTP API as an axum
//! [`Router`], and [`serve`] runs it on a listener until a shutdown future completes.
//! Tests, the `buildlet` binary, reverse mode and the local pool all run this same code.
//!
//! # Layout
//! - [`auth`]: the password check, a layer on every route but `/`, `/healthz`, `/debug/x`.
//! - `files`: `/write`, `/writetgz`, `/tgz`, `/ls`, `/removeall`.
//! - `exec`: `/exec`, with streamed output and the `Process-State` trailer.
//! - `misc`: `/`, `/healthz`, `/debug/x`, `/status`, `/workdir`, `/halt`.
//! - `conn`: connection handling, including `/connect-ssh`, which must be hijacked below
//!   HTTP because Go clients send it without an `Upgrade` header.

pub mod auth;
mod conn;
mod exec;
mod fetch;
mod files;
mod misc;
mod params;
mod reply;
mod te;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;

pub use conn::{SHUTDOWN_GRACE, serve, serve_connection, serve_tls};

/// What a buildlet server needs to know.
#[derive(Clone)]
pub struct Config {
    /// W: the absolute work directory. Created (0755) when missing.
    pub workdir: PathBuf,
    /// Password for Basic auth (user name ignored); empty disables the check.
    pub password: String,
    /// `GOOS-GOARCH` reported by `/`.
    pub platform: String,
    /// Local sshd address for `/connect-ssh`; `None` answers 502.
    pub ssh_addr: Option<String>,
    /// Called one second after `/halt` answered (the binary exits; tests observe it).
    pub on_halt: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Largest body `/write` and `/writetgz` accept; `None` = unlimited, like upstream.
    pub max_upload: Option<u64>,
    /// What one `/writetgz` may create; unlimited by default, like upstream.
    pub extract_limits: crate::tgz::ExtractLimits,
    /// How long `/writetgz?url=` waits for more of the archive before giving up
    /// (default 60 s); connecting is bounded at 10 s and the response head at 60 s.
    pub fetch_idle_timeout: std::time::Duration,
    /// Connection caps and timeouts of the listener (and of each revdial stream's
    /// request heads and bodies).
    pub limits: netguard::Limits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("workdir", &self.workdir)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<set>"
                },
            )
            .field("platform", &self.platform)
            .field("ssh_addr", &self.ssh_addr)
            .field("max_upload", &self.max_upload)
            .field("extract_limits", &self.extract_limits)
            .field("fetch_idle_timeout", &self.fetch_idle_timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Config {
    /// A configuration for `workdir` with no password, reporting this host's platform.
    pub fn new(workdir: impl Into<PathBuf>) -> Config {
        Config {
            workdir: workdir.into(),
            password: String::new(),
            platform: host_platform(),
            ssh_addr: None,
            on_halt: None,
            max_upload: None,
            extract_limits: crate::tgz::ExtractLimits::default(),
            fetch_idle_timeout: fetch::FETCH_IDLE_TIMEOUT,
            limits: netguard::Limits::default(),
        }
    }
}

/// `GOOS-GOARCH` of the machine this runs on, in Go's names.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    };
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{os}-{arch}")
}

/// Shared state of one server.
pub(crate) struct State {
    pub(crate) cfg: Config,
    /// `GOROOT_BOOTSTRAP` for children, computed once per process (spec §4.4).
    pub(crate) bootstrap: std::sync::OnceLock<Option<String>>,
}

pub(crate) type AppState = Arc<State>;

/// The whole buildlet HTTP API. Routing is by exact path; unknown paths get Go's 404.
/// The password check runs before every method and parameter check (`route_layer`), and
/// not at all on `/`, `/healthz` and `/debug/x`.
pub fn router(cfg: Config) -> Router {
    let state: AppState = Arc::new(State {
        cfg,
        bootstrap: std::sync::OnceLock::new(),
    });
    let authed = Router::new()
        .route("/status", any(misc::status))
        .route("/workdir", any(misc::workdir))
        .route("/write", any(files::write))
        .route("/writetgz", any(files::writetgz))
        .route("/tgz", any(files::tgz))
        .route("/ls", any(files::ls))
        .route("/removeall", any(files::removeall))
        .route("/exec", any(exec::exec))
        .route("/halt", any(misc::halt))
        .route("/connect-ssh", any(conn::connect_ssh_not_first))
        .route("/debug/goroutines", any(misc::goroutines))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_password,
        ));
    Router::new()
        .route("/", any(misc::root))
        .route("/healthz", any(misc::healthz))
        .route("/debug/x", any(misc::debug_x))
        .merge(authed)
        .fallback(misc::not_found)
        .with_state(state)
}
