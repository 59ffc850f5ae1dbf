//! The small endpoints: `/`, `/healthz`, `/debug/x`, `/debug/goroutines`, `/status`,
//! `/workdir`, `/halt`, and the 404 fallback.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::Response;

use super::reply::{go_error, requires, text};
use super::{AppState, params};
use crate::api::VERSION;

/// Largest `/debug/x` reply.
const MAX_DEBUG_X: usize = 1 << 20;

pub(crate) async fn root(State(st): State<AppState>) -> Response {
    text(format!("buildlet running on {}\n", st.cfg.platform))
}

pub(crate) async fn healthz() -> Response {
    text("ok\n")
}

pub(crate) async fn not_found() -> Response {
    go_error(404, "404 page not found")
}

/// `n` bytes of `X` for MTU tests. Upstream panics on a negative `n`; here it counts as 0.
pub(crate) async fn debug_x(req: Request) -> Response {
    let p = match params::read(req).await {
        Ok(p) => p,
        Err(e) => return go_error(400, e),
    };
    let n = p
        .value("n")
        .parse::<i64>()
        .unwrap_or(0)
        .clamp(0, MAX_DEBUG_X as i64) as usize;
    text(vec![b'X'; n])
}

pub(crate) async fn goroutines() -> Response {
    text("goroutine dumps are not available from a Rust buildlet; see the process's tracing logs\n")
}

pub(crate) async fn status(req: Request) -> Response {
    if req.method() != Method::GET {
        return requires("GET");
    }
    let mut r = Response::new(format!("{{\"Version\":{VERSION}}}").into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub(crate) async fn workdir(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET {
        return requires("GET");
    }
    text(st.cfg.workdir.display().to_string())
}

/// Answers at once; the halt hook runs one second later (upstream's delay, which lets the
/// reply reach the client).
pub(crate) async fn halt(State(st): State<AppState>, req: Request) -> Response {
    if req.method() != Method::POST {
        return requires("POST");
    }
    if let Some(hook) = st.cfg.on_halt.clone() {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            hook();
        });
    }
    Response::new(axum::body::Body::empty())
}
