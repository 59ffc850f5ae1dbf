//! The web UI and API.
//!
//! | Path | |
//! |---|---|
//! | `GET /` | the build grid; `?mode=json` gives the dashboard's `BuildStatus` JSON |
//! | `GET /log/{id}` | a build's log, streamed while it runs (`?nostream=1`: what is there now) |
//! | `GET /status` | pools, queue (with positions), running builds |
//! | `POST /api/builds` | `{"source","rev","builder"}` → `201 {"id"}`: queue a build |
//! | `GET /api/builds/{id}` | a build as JSON |
//! | `GET /api/builds/{id}/record` | the build as upstream's `BuildRecord` (Go field names) |
//! | `POST /api/builds/{id}/retry` | queue the same build again (upstream's retrybuilds) |
//! | `POST /api/builds/{id}/cancel` | cancel a queued or running build |
//! | `POST /api/poll` | poll the work sources now |
//! | `GET /src/{source}/+archive/{rev}.tar.gz` | the tree at a commit, as pushed to buildlets (`git archive`; the URL shape of the Gerrit archives upstream's gitmirror served), fit for a buildlet's `writetgz?url=` |
//! | `GET /metrics`, `GET /healthz` | Prometheus text; `ok` |
//! | `/perf/…` | perfstore's API and UI |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dashboard_types::{BuildRevision, BuildStatus};

use crate::Coordinator;
use crate::db::{Build, State as BuildState};

type Shared = Arc<Coordinator>;

/// The whole HTTP surface.
pub fn router(c: Arc<Coordinator>) -> Router {
    let perf = perfstore::http::router(c.perf.clone(), perfstore::http::ServerConfig::default());
    Router::new()
        .route("/", get(grid))
        .route("/log/{id}", get(log))
        .route("/status", get(status))
        .route("/api/builds", post(enqueue))
        .route("/api/builds/{id}", get(build_json))
        .route("/api/builds/{id}/record", get(build_record))
        .route("/api/builds/{id}/retry", post(retry))
        .route("/api/builds/{id}/cancel", post(cancel))
        .route("/api/poll", post(poll))
        .route("/src/{source}/+archive/{file}", get(source_archive))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/perf", get(|| async { Redirect::permanent("/perf/") }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(c)
        .nest("/perf/", perf)
}

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

fn internal(e: anyhow::Error) -> Response {
    // The coordinator's own failure: the operator must see it, not only the client.
    tracing::error!("request failed: {e:#}");
    text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, refresh: bool, body: &str) -> Response {
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"5\">"
    } else {
        ""
    };
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">{refresh}<title>{t}</title><style>\
body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}\
.ok{{background:#cfc}}.failed{{background:#fcc}}.running{{background:#ffc}}.queued{{color:#888}}.canceled{{color:#888}}\
code{{font-size:90%}}</style></head><body>\
<nav><a href=\"/\">Grid</a> · <a href=\"/status\">Status</a> · <a href=\"/perf/\">Perf data</a> · <a href=\"/metrics\">Metrics</a></nav>\
<h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    ))
    .into_response()
}

/// Rows of the grid: (source, rev) newest first, with the newest build per builder.
struct Grid {
    builders: Vec<String>,
    rows: Vec<(Build, HashMap<String, Build>)>,
}

async fn grid_data(c: &Coordinator) -> anyhow::Result<Grid> {
    let mut builders: Vec<String> = c.config.builders.iter().map(|b| b.name.clone()).collect();
    builders.sort();
    let mut rows: Vec<(Build, HashMap<String, Build>)> = Vec::new();
    for b in c.db.recent(1000).await? {
        if !builders.contains(&b.builder) {
            builders.push(b.builder.clone());
        }
        match rows
            .iter_mut()
            .find(|(k, _)| k.source == b.source && k.rev == b.rev)
        {
            Some((_, cells)) => {
                // `recent` is newest first: keep the newest build per builder, except
                // that a canceled one (a manual retry stopped, say) never hides an
                // older build that ran.
                let replace = cells.get(&b.builder).is_none_or(|kept| {
                    kept.state == BuildState::Canceled && b.state != BuildState::Canceled
                });
                if replace {
                    cells.insert(b.builder.clone(), b);
                }
            }
            None => {
                let mut cells = HashMap::new();
                cells.insert(b.builder.clone(), b.clone());
                rows.push((b, cells));
            }
        }
    }
    rows.truncate(30);
    Ok(Grid { builders, rows })
}

#[derive(Debug, serde::Deserialize)]
struct GridParams {
    #[serde(default)]
    mode: String,
}

async fn grid(State(c): State<Shared>, Query(p): Query<GridParams>) -> Response {
    let grid = match grid_data(&c).await {
        Ok(g) => g,
        Err(e) => return internal(e),
    };
    let base = c.base_url();
    match p.mode.as_str() {
        "json" => grid_json(&grid, &base),
        "" => grid_html(&grid),
        _ => text(StatusCode::BAD_REQUEST, "unsupported mode argument\n"),
    }
}

/// The dashboard's JSON: a cell is `""`, `"ok"`, or the failure's log URL.
fn grid_json(grid: &Grid, base: &str) -> Response {
    let status = BuildStatus {
        builders: grid.builders.clone(),
        revisions: grid
            .rows
            .iter()
            .map(|(b, cells)| BuildRevision {
                repo: b.source.clone(),
                revision: b.rev.clone(),
                date: b.date.clone(),
                branch: b.branch.clone(),
                author: b.author.clone(),
                desc: b.desc.clone(),
                results: grid
                    .builders
                    .iter()
                    .map(|name| match cells.get(name).map(|b| b.state) {
                        Some(BuildState::Succeeded) => "ok".to_string(),
                        Some(BuildState::Failed) => format!("{base}/log/{}", cells[name].id),
                        _ => String::new(),
                    })
                    .collect(),
                ..BuildRevision::default()
            })
            .collect(),
    };
    // Upstream writes tab-indented JSON without a trailing newline.
    let mut body = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut body,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    if let Err(e) = serde::Serialize::serialize(&status, &mut ser) {
        return internal(e.into());
    }
    ([(header::CONTENT_TYPE, "text/json; charset=utf-8")], body).into_response()
}

fn cell_html(b: Option<&Build>) -> String {
    let Some(b) = b else {
        return "<td></td>".into();
    };
    let (class, label) = match b.state {
        BuildState::Succeeded => ("ok", "ok"),
        BuildState::Failed => ("failed", "fail"),
        BuildState::Running => ("running", "running"),
        BuildState::Queued => ("queued", "queued"),
        BuildState::Canceled => ("canceled", "canceled"),
    };
    format!(
        "<td class=\"{class}\"><a href=\"/log/{id}\" title=\"{id}\">{label}</a></td>",
        id = b.id
    )
}

fn grid_html(grid: &Grid) -> Response {
    let mut body = String::new();
    if grid.rows.is_empty() {
        body.push_str(
            "<p>No builds yet. Commits of the watched branches appear here as they are found.</p>",
        );
    }
    body.push_str("<table id=\"grid\"><tr><th>repo</th><th>commit</th><th>date</th><th>author</th><th>description</th>");
    for b in &grid.builders {
        let _ = write!(body, "<th>{}</th>", escape(b));
    }
    body.push_str("</tr>");
    for (first, cells) in &grid.rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td>",
            escape(&first.source),
            escape(&first.rev[..first.rev.len().min(10)]),
            escape(&first.date),
            escape(&first.author),
            escape(&first.desc)
        );
        for name in &grid.builders {
            body.push_str(&cell_html(cells.get(name)));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    page("Build grid", true, &body)
}

#[derive(Debug, serde::Deserialize)]
struct LogParams {
    /// Upstream's `nostream=1`: the log so far, without waiting for the rest.
    #[serde(default)]
    nostream: String,
}

async fn log(
    State(c): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Response {
    let build = match c.db.get(&id).await {
        Ok(Some(b)) => b,
        Ok(None) => return text(StatusCode::NOT_FOUND, format!("no build {id}\n")),
        Err(e) => return internal(e),
    };
    let mut head = format!(
        " builder: {}\n     rev: {}\n  source: {} {}\nbuildlet: {}\n started: {}\n",
        build.builder,
        build.rev,
        build.source,
        build.branch,
        build.buildlet,
        build.started.as_deref().unwrap_or("-")
    );
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if let Some(running) = c.running(&id).filter(|_| !build.state.is_final()) {
        if !p.nostream.is_empty() {
            head.push_str(
                "  status: still running (streaming disabled by nostream)\n\nBuild log:\n",
            );
            let mut body = head.into_bytes();
            body.extend(running.log.contents());
            return (headers, body).into_response();
        }
        head.push_str(
            "  status: still running (this page streams until the build ends)\n\nBuild log:\n",
        );
        let log = running.log.clone();
        let stream = futures_util::stream::unfold(
            (Some(head.into_bytes()), 0usize, log),
            |(head, offset, log)| async move {
                if let Some(h) = head {
                    return Some((Ok::<_, std::convert::Infallible>(h), (None, offset, log)));
                }
                let chunk = log.read_from(offset).await?;
                let next = offset + chunk.len();
                Some((Ok(chunk), (None, next, log)))
            },
        );
        return (headers, Body::from_stream(stream)).into_response();
    }
    let _ = write!(
        head,
        "   ended: {}\n  result: {}\n\nBuild log:\n",
        build.ended.as_deref().unwrap_or("-"),
        build.state.as_str()
    );
    let mut body = head.into_bytes();
    match c.db.log(&id).await {
        Ok(Some(l)) => body.extend(l),
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    (headers, body).into_response()
}

async fn status(State(c): State<Shared>) -> Response {
    let mut body = String::new();
    let queued = c.db.in_state(BuildState::Queued).await.unwrap_or_default();
    let running = c.db.in_state(BuildState::Running).await.unwrap_or_default();
    c.metrics.queued.set(queued.len() as i64);
    let _ = write!(
        body,
        "<h2>Running</h2><p id=\"summary\">{} running, {} queued.</p>",
        running.len(),
        queued.len()
    );
    body.push_str("<h2>Buildlet pools</h2><table id=\"pools\"><tr><th>host type</th><th>machines</th><th>idle</th><th>busy</th><th>waiting</th></tr>");
    let pools = c.pool.status().host_types;
    for (ht, s) in &pools {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(ht),
            s.connected,
            s.idle,
            s.busy,
            s.waiters
        );
    }
    body.push_str("</table><h2>Buildlets</h2><ul id=\"buildlets\">");
    for (ht, s) in &pools {
        for (name, m) in &s.machines {
            let state = if m.busy_sec > 0.0 { "busy" } else { "idle" };
            let _ = write!(
                body,
                "<li>{} ({}): {state}, connected {:.0} s, version {}</li>",
                escape(name),
                escape(ht),
                m.connected_sec,
                escape(&m.version)
            );
        }
    }
    body.push_str("</ul><h2>Active builds</h2><ul id=\"active\">");
    for b in &running {
        let _ = write!(
            body,
            "<li>{} at <code>{}</code> on {} — <a href=\"/log/{id}\">log</a></li>",
            escape(&b.builder),
            escape(&b.rev[..b.rev.len().min(10)]),
            escape(&b.buildlet),
            id = b.id
        );
    }
    if running.is_empty() {
        body.push_str("<li>(none)</li>");
    }
    body.push_str("</ul><h2>Queue</h2>");
    if queued.is_empty() {
        body.push_str("<p id=\"queue\">Queue empty.</p>");
    } else {
        body.push_str("<ol id=\"queue\">");
    }
    for b in &queued {
        let _ = write!(
            body,
            "<li>{} at <code>{}</code> ({})</li>",
            escape(&b.builder),
            escape(&b.rev[..b.rev.len().min(10)]),
            b.id
        );
    }
    if !queued.is_empty() {
        body.push_str("</ol>");
    }
    body.push_str("<h2>Recently completed</h2><ul id=\"recent\">");
    for b in
        c.db.recent(20)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|b| b.state.is_final())
    {
        let _ = write!(
            body,
            "<li>{} at <code>{}</code>: <a href=\"/log/{id}\">{}</a>, ended {}</li>",
            escape(&b.builder),
            escape(&b.rev[..b.rev.len().min(10)]),
            b.state.as_str(),
            b.ended.as_deref().unwrap_or("-"),
            id = b.id
        );
    }
    body.push_str("</ul>");
    page("Coordinator status", true, &body)
}

/// A build as the API shows it.
#[derive(Debug, serde::Serialize)]
struct BuildJson {
    id: String,
    source: String,
    branch: String,
    rev: String,
    builder: String,
    state: &'static str,
    attempt: i64,
    buildlet: String,
    created: String,
    started: Option<String>,
    ended: Option<String>,
    log_url: String,
}

impl From<Build> for BuildJson {
    fn from(b: Build) -> Self {
        BuildJson {
            log_url: format!("/log/{}", b.id),
            id: b.id,
            source: b.source,
            branch: b.branch,
            rev: b.rev,
            builder: b.builder,
            state: b.state.as_str(),
            attempt: b.attempt,
            buildlet: b.buildlet,
            created: b.created,
            started: b.started,
            ended: b.ended,
        }
    }
}

fn json(status: StatusCode, v: impl serde::Serialize) -> Response {
    match serde_json::to_vec(&v) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => internal(e.into()),
    }
}

async fn build_json(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    match c.db.get(&id).await {
        Ok(Some(b)) => json(StatusCode::OK, BuildJson::from(b)),
        Ok(None) => text(StatusCode::NOT_FOUND, format!("no build {id}\n")),
        Err(e) => internal(e),
    }
}

/// The build as upstream's datastore `Build` record.
fn record_of(b: &Build, base: &str) -> dashboard_types::BuildRecord {
    use dashboard_types::go_json::GoTime;
    let time = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| GoTime::parse(t).ok())
            .unwrap_or_else(GoTime::zero)
    };
    let (start, end) = (time(&b.started), time(&b.ended));
    let seconds = if start.is_zero() || end.is_zero() {
        0.0
    } else {
        (end.0 - start.0).num_milliseconds() as f64 / 1000.0
    };
    let mut parts = b.builder.splitn(3, '-');
    let (os, arch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let log_url = format!("{base}/log/{}", b.id);
    dashboard_types::BuildRecord {
        id: b.id.clone(),
        process_id: std::process::id().to_string(),
        start_time: start,
        go_rev: b.rev.clone(),
        rev: b.rev.clone(),
        repo: b.source.clone(),
        builder: b.builder.clone(),
        os: os.to_string(),
        arch: arch.to_string(),
        end_time: end,
        seconds,
        result: match b.state {
            BuildState::Succeeded => "ok".into(),
            BuildState::Failed => "fail".into(),
            _ => String::new(),
        },
        failure_url: if b.state == BuildState::Failed {
            log_url.clone()
        } else {
            String::new()
        },
        log_url,
        ..dashboard_types::BuildRecord::default()
    }
}

async fn build_record(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    match c.db.get(&id).await {
        Ok(Some(b)) => json(StatusCode::OK, record_of(&b, &c.base_url())),
        Ok(None) => text(StatusCode::NOT_FOUND, format!("no build {id}\n")),
        Err(e) => internal(e),
    }
}

/// `GET /src/{source}/+archive/{rev}.tar.gz`: the tree at a commit (or a branch's head),
/// the same archive the build runner pushes to buildlets.
async fn source_archive(
    State(c): State<Shared>,
    Path((source, file)): Path<(String, String)>,
) -> Response {
    let Some(rev) = file.strip_suffix(".tar.gz") else {
        return text(
            StatusCode::NOT_FOUND,
            "want /src/SOURCE/+archive/REV.tar.gz\n",
        );
    };
    let Some(mirror) = c.mirror(&source) else {
        return text(StatusCode::NOT_FOUND, format!("no source {source:?}\n"));
    };
    let commit = match mirror.commit(rev).await {
        Ok(commit) => commit,
        Err(e) => return text(StatusCode::NOT_FOUND, format!("{e}\n")),
    };
    match mirror.archive(&commit.hash).await {
        Ok(tgz) => ([(header::CONTENT_TYPE, "application/x-gzip")], tgz).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /api/builds` body.
#[derive(Debug, serde::Deserialize)]
struct EnqueueRequest {
    source: String,
    /// A commit hash, or a branch name (its current head).
    rev: String,
    builder: String,
}

async fn enqueue(State(c): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: EnqueueRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad request: {e}; want {{\"source\",\"rev\",\"builder\"}}\n"),
            );
        }
    };
    if c.config.builder(&req.builder).is_none() {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown builder {:?}\n", req.builder),
        );
    }
    let Some(mirror) = c.mirror(&req.source) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown source {:?}\n", req.source),
        );
    };
    let _ = mirror.fetch().await;
    let (rev, branch) = match mirror.head(&req.rev).await {
        Ok(Some(head)) => (head, req.rev.clone()),
        _ => (req.rev.clone(), String::new()),
    };
    let commit = match mirror.commit(&rev).await {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("unknown revision {:?}: {e}\n", req.rev),
            );
        }
    };
    match c
        .db
        .enqueue(&req.source, &branch, &commit, &req.builder)
        .await
    {
        Ok(b) => {
            c.work.notify_one();
            json(StatusCode::CREATED, BuildJson::from(b))
        }
        Err(e) => internal(e),
    }
}

async fn retry(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    let old = match c.db.get(&id).await {
        Ok(Some(b)) => b,
        Ok(None) => return text(StatusCode::NOT_FOUND, format!("no build {id}\n")),
        Err(e) => return internal(e),
    };
    let commit = crate::git::Commit {
        hash: old.rev.clone(),
        author: old.author.clone(),
        date: old.date.clone(),
        desc: old.desc.clone(),
    };
    match c
        .db
        .enqueue(&old.source, &old.branch, &commit, &old.builder)
        .await
    {
        Ok(b) => {
            c.work.notify_one();
            json(StatusCode::CREATED, BuildJson::from(b))
        }
        Err(e) => internal(e),
    }
}

async fn cancel(State(c): State<Shared>, Path(id): Path<String>) -> Response {
    if let Some(r) = c.running(&id) {
        r.cancel.cancel();
        return text(StatusCode::OK, "canceled\n");
    }
    match c
        .db
        .finish(
            &id,
            BuildState::Canceled,
            b"canceled before it started\n".to_vec(),
        )
        .await
    {
        Ok(true) => text(StatusCode::OK, "canceled\n"),
        // Nothing was canceled: say whether the build is finished or does not exist.
        Ok(false) => match c.db.get(&id).await {
            Ok(Some(_)) => text(
                StatusCode::CONFLICT,
                format!("build {id} is not queued or running\n"),
            ),
            Ok(None) => text(StatusCode::NOT_FOUND, format!("no build {id}\n")),
            Err(e) => internal(e),
        },
        Err(e) => internal(e),
    }
}

async fn poll(State(c): State<Shared>) -> Response {
    c.poll_now.notify_one();
    text(StatusCode::ACCEPTED, "polling\n")
}

/// `/metrics`: OpenMetrics for a scraper that asks for it in `Accept`, Prometheus's
/// classic text format otherwise (what a browser shows instead of downloading).
async fn metrics(State(c): State<Shared>, headers: HeaderMap) -> Response {
    if let Ok(q) = c.db.in_state(BuildState::Queued).await {
        c.metrics.queued.set(q.len() as i64);
    }
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
