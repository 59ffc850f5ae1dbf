//! The web UI and HTTP API.
//!
//! | Path | |
//! |---|---|
//! | `GET /` | the build grid, 30 commits a page (`?page=N`); `?mode=json` gives the dashboard's `BuildStatus` JSON |
//! | `GET /build/{id}` | a build: its state, queue position, buildlet and steps with their durations |
//! | `GET /log/{id}` | a build's log, streamed while it runs (`?nostream=1`: what is there now) |
//! | `GET /status` | pools, queue (with positions), running builds; `?mode=json` as JSON |
//! | `POST /api/builds` | `{"source","rev","builder"}` → `201` and the build: queue a build |
//! | `GET /api/builds` | the newest builds matching `?source=&builder=&rev=&state=&limit=` (a rev prefix of 4+ hex; at most 1000) |
//! | `GET /api/builds/{id}` | a build as JSON |
//! | `GET /api/builds/{id}/record` | the build as upstream's `BuildRecord` (Go field names) |
//! | `POST /api/builds/{id}/retry` | queue the same build again (upstream's retrybuilds) |
//! | `POST /api/builds/{id}/cancel` | cancel a queued or running build |
//! | `POST /api/poll` | poll the work sources now |
//! | `GET /admin/audit`, `GET /api/audit` | the audit log of writes, newest first, 50 a page (`?before=SEQ`); admins only |
//! | `GET /src/{source}/+archive/{rev}.tar.gz` | the tree at a commit, as pushed to buildlets (`git archive`; the URL shape of the Gerrit archives upstream's gitmirror served), fit for a buildlet's `writetgz?url=` |
//! | `GET /bootstrap/{file}` | a file of the data dir's `bootstrap/` folder (bootstrap toolchains that builders name as `/bootstrap/FILE`) |
//! | `GET /metrics`, `GET /healthz` | Prometheus text; `ok` |
//! | `GET /api/openapi.json` | the JSON API's OpenAPI description, generated from the handlers |
//! | `GET /login`, `POST /login`, `POST /logout` | a browser session from an API token (a cookie; forms that write carry a CSRF token) |
//! | `/perf/…` | perfstore's API and UI |
//!
//! Who may call each route is declared with it ([`routes`]): reads need the `viewer`
//! role unless anonymous reading is on, writes need their role (`submitter` to queue,
//! `admin` to retry, cancel, poll or read the audit log, `perf-uploader` for
//! `/perf/upload`), `/src/…` and `/bootstrap/…` also answer URLs the coordinator signed,
//! and `/healthz` answers anyone. See [`crate::auth`].
//!
//! Handlers parse, call [`crate::ops`], and render; errors become [`AppError`], which
//! maps each [`Error`] kind to its status and logs the coordinator's own failures.

mod admin;
mod builds;
mod json;
mod login;
mod logs;
mod openapi;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};

use crate::Coordinator;
use crate::auth::layer::{AuthState, RouteRule, authorize};
use crate::auth::rate::RateLimiter;
use crate::auth::{Access, Role};
use crate::error::Error;
use crate::model::State as BuildState;

type Shared = Arc<Coordinator>;

/// Every route: method, path, what it asks of its caller ([`Access`]), and its
/// handler. The router is built from this list and the auth middleware reads its rules
/// from it, so a route cannot be added without saying who may call it.
fn table() -> Vec<(RouteRule, MethodRouter<Shared>)> {
    use Access::{Fetch, Need, Public, Read, Write};
    use Role::{Admin, Submitter};
    let rule = |method: Method, path, access| RouteRule {
        method,
        path,
        access,
        // Queuing runs a `git fetch`: rate-limited per caller.
        limited: matches!(access, Write(Submitter)),
    };
    vec![
        (rule(Method::GET, "/", Read), get(pages::grid)),
        (rule(Method::GET, "/build/{id}", Read), get(pages::build)),
        (rule(Method::GET, "/log/{id}", Read), get(logs::log)),
        (rule(Method::GET, "/status", Read), get(pages::status)),
        (
            rule(Method::GET, "/admin/audit", Need(Admin)),
            get(admin::audit_page),
        ),
        (
            rule(Method::GET, "/api/audit", Need(Admin)),
            get(admin::audit_json),
        ),
        (rule(Method::GET, "/api/builds", Read), get(builds::list)),
        (
            rule(Method::POST, "/api/builds", Write(Submitter)),
            post(builds::enqueue),
        ),
        (
            rule(Method::GET, "/api/builds/{id}", Read),
            get(builds::get),
        ),
        (
            rule(Method::GET, "/api/builds/{id}/record", Read),
            get(builds::record),
        ),
        (
            rule(Method::GET, "/api/builds/{id}/units", Read),
            get(builds::units),
        ),
        (
            rule(Method::POST, "/api/builds/{id}/retry", Write(Admin)),
            post(builds::retry),
        ),
        (
            rule(Method::POST, "/api/builds/{id}/cancel", Write(Admin)),
            post(builds::cancel),
        ),
        (
            rule(Method::POST, "/api/poll", Write(Admin)),
            post(builds::poll),
        ),
        (
            rule(Method::GET, "/src/{source}/+archive/{file}", Fetch),
            get(logs::source_archive),
        ),
        (
            rule(Method::GET, "/bootstrap/{file}", Fetch),
            get(logs::bootstrap_archive),
        ),
        (rule(Method::GET, "/metrics", Read), get(metrics)),
        (
            rule(Method::GET, "/healthz", Public),
            get(|| async { "ok\n" }),
        ),
        (
            rule(Method::GET, "/api/openapi.json", Read),
            get(openapi::json),
        ),
        (rule(Method::GET, "/login", Public), get(login::page)),
        (rule(Method::POST, "/login", Public), post(login::login)),
        (rule(Method::POST, "/logout", Read), post(login::logout)),
        (
            rule(Method::GET, "/perf", Read),
            get(|| async { Redirect::permanent("/perf/") }),
        ),
    ]
}

/// The rules of the routes perfstore serves under `/perf/`: reads for readers, every
/// write (its `/upload`) for perf uploaders.
fn perf_rules() -> Vec<RouteRule> {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ]
    .into_iter()
    .map(|method| RouteRule {
        access: if method == Method::GET {
            Access::Read
        } else {
            Access::Write(Role::PerfUploader)
        },
        // An upload parses and stores its files: rate-limited per caller.
        limited: method == Method::POST,
        method,
        path: "/perf/*",
    })
    .collect()
}

/// Every route's rule, perfstore's included: what the auth middleware enforces (and
/// what the route-walking test walks).
pub fn routes() -> Vec<RouteRule> {
    rules_of(&table())
}

fn rules_of(table: &[(RouteRule, MethodRouter<Shared>)]) -> Vec<RouteRule> {
    table
        .iter()
        .map(|(r, _)| r.clone())
        .chain(perf_rules())
        .collect()
}

/// The whole HTTP surface, behind the auth middleware.
pub fn router(c: Arc<Coordinator>) -> Router {
    let perf = perfstore::http::router(c.perf.clone(), perfstore::http::ServerConfig::default());
    let table = table();
    let rules = rules_of(&table);
    let doc = openapi::document(&rules, c.config.anonymous_read());
    let auth = AuthState {
        rules: Arc::new(rules),
        store: c.access.clone(),
        anonymous_read: c.config.anonymous_read(),
        signer: c.signer.clone(),
        rate: Arc::new(RateLimiter::new(c.config.auth.writes_per_minute)),
    };
    let mut r = Router::new();
    for (rule, handler) in table {
        r = r.route(rule.path, handler);
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(doc))
        .with_state(c)
        .nest("/perf/", perf)
        .layer(axum::middleware::from_fn_with_state(auth, authorize))
}

/// An error answered over HTTP: the kind decides the status; the coordinator's own
/// failures are logged, since only the operator can fix them.
#[derive(Debug)]
pub struct AppError(Error);

impl<E: Into<Error>> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        text(status, format!("{}\n", self.0))
    }
}

/// The result of a handler.
type Reply = Result<Response, AppError>;

async fn not_found(uri: axum::http::Uri) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("404 page not found: {}\n", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("405 method {method} not allowed for {}\n", uri.path()),
    )
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Renders a page template.
fn html(t: impl askama::Template) -> Reply {
    let body = t
        .render()
        .map_err(|e| Error::Startup(format!("rendering a page: {e}")))?;
    Ok(Html(body).into_response())
}

fn json_reply(status: StatusCode, v: impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec(&v).map_err(|e| Error::Startup(e.to_string()))?;
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The first ten characters of a commit hash.
fn short(rev: &str) -> &str {
    &rev[..rev.len().min(10)]
}

/// `1h02m`, `3m07s`, `12.4s`, `340ms`.
fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// An RFC 3339 time as a person reads it: `2026-12-02 01:39`, in its own zone.
fn minute(t: &str) -> String {
    readable(t, "%Y-%m-%d %H:%M")
}

/// An RFC 3339 time in `format`, in its own zone (as given if it does not parse).
fn readable(t: &str, format: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(t) => t.format(format).to_string(),
        Err(_) => t.to_string(),
    }
}

/// The time from `from` (RFC 3339) to `to` (RFC 3339, or now).
fn between(from: &str, to: Option<&str>) -> Option<std::time::Duration> {
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.to_utc())
    };
    let end = match to {
        Some(t) => parse(t)?,
        None => chrono::Utc::now(),
    };
    (end - parse(from)?).to_std().ok()
}

/// `/metrics`: OpenMetrics for a scraper that asks for it in `Accept`, Prometheus's
/// classic text format otherwise (what a browser shows instead of downloading).
async fn metrics(State(c): State<Shared>, headers: HeaderMap) -> Response {
    if let Ok(q) = c.store.in_state(BuildState::Queued).await {
        c.metrics.queued.set(q.len() as i64);
    }
    c.metrics.set_pools(&c.pool.status());
    let text = c.metrics.encode();
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        return (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response();
    }
    // The classic format is the same lines without OpenMetrics' `# EOF` terminator.
    let classic = text.strip_suffix("# EOF\n").unwrap_or(&text).to_owned();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        classic,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
