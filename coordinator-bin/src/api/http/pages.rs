//! The HTML pages (templates in `templates/`, checked at compile time) and `/status`'s
//! JSON.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::{Reply, Shared, between, html, human, json_reply, minute, short};
use crate::error::Error;
use crate::model::State as BuildState;
use crate::ops;
use crate::store::{Build, Commit};

/// Commits per grid page, as upstream's dashboard shows them.
pub(super) const PER_PAGE: i64 = 30;

/// The grid's data: builder columns, and per commit one cell per builder.
pub(super) struct GridRows {
    pub(super) builders: Vec<String>,
    pub(super) commits: Vec<GridRow>,
    pub(super) more: bool,
}

/// One commit of the grid, with the build each builder's cell shows.
pub(super) struct GridRow {
    pub(super) source: String,
    pub(super) branch: String,
    pub(super) commit: Commit,
    /// For a sub-repo commit: the revision it was built against (the newest build's).
    pub(super) go_rev: String,
    pub(super) cells: Vec<Option<Build>>,
}

/// The build a grid cell shows among a commit's builds of one builder (newest first):
/// the newest, except that a canceled one (a stopped manual retry, say) never hides an
/// older build that ran.
fn cell_build<'a>(builds: impl Iterator<Item = &'a Build> + Clone) -> Option<&'a Build> {
    builds
        .clone()
        .find(|b| b.state != BuildState::Canceled)
        .or_else(|| builds.into_iter().next())
}

async fn grid_rows(c: &crate::Coordinator, page: i64) -> Result<GridRows, Error> {
    let data = c.store.grid(page * PER_PAGE, PER_PAGE).await?;
    let mut builders: Vec<String> = c.config.builders.iter().map(|b| b.name.clone()).collect();
    builders.sort();
    for (_, _, _, builds) in &data.commits {
        for b in builds {
            if !builders.contains(&b.builder) {
                builders.push(b.builder.clone());
            }
        }
    }
    let commits = data
        .commits
        .into_iter()
        .map(|(source, branch, commit, builds)| {
            let cells = builders
                .iter()
                .map(|name| cell_build(builds.iter().filter(|b| &b.builder == name)).cloned())
                .collect();
            let go_rev = builds
                .iter()
                .map(|b| b.go_rev.clone())
                .find(|r| !r.is_empty())
                .unwrap_or_default();
            GridRow {
                source,
                branch,
                commit,
                go_rev,
                cells,
            }
        })
        .collect();
    Ok(GridRows {
        builders,
        commits,
        more: data.more,
    })
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct GridParams {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    page: Option<i64>,
}

/// One grid cell.
struct Cell {
    class: &'static str,
    label: String,
    href: String,
    title: String,
}

struct Row {
    source: String,
    rev: String,
    short: String,
    branch: String,
    date: String,
    author: String,
    desc: String,
    go_rev: String,
    go_short: String,
    cells: Vec<Option<Cell>>,
}

#[derive(askama::Template)]
#[template(path = "grid.html")]
struct GridPage {
    refresh: bool,
    builders: Vec<String>,
    rows: Vec<Row>,
    page: i64,
    more: bool,
    per_page: i64,
}

fn cell(b: &Build) -> Cell {
    let (class, label, href) = match b.state {
        BuildState::Succeeded => ("ok", "ok".to_string(), format!("/build/{}", b.id)),
        // The failing step, one click away.
        BuildState::Failed => ("failed", "fail".into(), format!("/build/{}#failed", b.id)),
        BuildState::Running => {
            let elapsed = b
                .started
                .as_deref()
                .and_then(|s| between(s, None))
                .map(human)
                .unwrap_or_default();
            (
                "running",
                format!("running {elapsed}"),
                format!("/build/{}", b.id),
            )
        }
        BuildState::Waiting => (
            "waiting_for_machine",
            "waiting".into(),
            format!("/build/{}", b.id),
        ),
        BuildState::Queued => ("queued", "queued".into(), format!("/build/{}", b.id)),
        BuildState::Canceled => ("canceled", "canceled".into(), format!("/build/{}", b.id)),
    };
    Cell {
        class,
        label,
        href,
        title: format!("{} {}", b.id, b.state),
    }
}

/// `GET /`: the grid, newest commits first, a page at a time.
pub(super) async fn grid(State(c): State<Shared>, Query(p): Query<GridParams>) -> Reply {
    let page = p.page.unwrap_or(0);
    if !(0..=100_000).contains(&page) {
        return Err(Error::BadRequest(format!("page {page} is out of range")).into());
    }
    let rows = grid_rows(&c, page).await?;
    match p.mode.as_str() {
        "json" => {
            let body = super::json::dashboard(&rows, &c.base_url())
                .map_err(|e| Error::Startup(e.to_string()))?;
            Ok(([(header::CONTENT_TYPE, "text/json; charset=utf-8")], body).into_response())
        }
        "" => html(GridPage {
            refresh: true,
            rows: rows
                .commits
                .iter()
                .map(|r| Row {
                    source: r.source.clone(),
                    rev: r.commit.hash.clone(),
                    short: short(&r.commit.hash).to_string(),
                    branch: r.branch.clone(),
                    date: minute(&r.commit.date),
                    author: r.commit.author.clone(),
                    desc: r.commit.desc.clone(),
                    go_short: short(&r.go_rev).to_string(),
                    go_rev: r.go_rev.clone(),
                    cells: r.cells.iter().map(|b| b.as_ref().map(cell)).collect(),
                })
                .collect(),
            builders: rows.builders,
            page,
            more: rows.more,
            per_page: PER_PAGE,
        }),
        other => Err(Error::BadRequest(format!(
            "unsupported mode {other:?}: use mode=json or none"
        ))
        .into()),
    }
}

struct StepRow {
    attempt: i64,
    name: String,
    started: String,
    took: String,
    result: String,
    failed: bool,
}

struct UnitRow {
    attempt: i64,
    name: String,
    took: String,
    result: String,
    passed: bool,
    buildlet: String,
    output: String,
}

#[derive(askama::Template)]
#[template(path = "build.html")]
struct BuildPage {
    units: Vec<UnitRow>,
    /// A queued sub-repo build whose starting snapshot does not exist yet.
    waiting_snapshot: bool,
    refresh: bool,
    b: Build,
    short: String,
    state: &'static str,
    position: Option<usize>,
    took: String,
    steps: Vec<StepRow>,
    /// The CSRF token for the retry and cancel buttons: only for an admin's session.
    actions: Option<String>,
    /// Whether the viewer could log in to act (not already an admin).
    login_hint: bool,
}

/// `GET /build/{id}`: a build with its steps and their durations; retry and cancel
/// buttons for an admin who logged in.
pub(super) async fn build(
    State(c): State<Shared>,
    Path(id): Path<String>,
    viewer: Option<axum::Extension<crate::auth::layer::Viewer>>,
) -> Reply {
    let admin = viewer
        .as_ref()
        .is_some_and(|v| v.identity.has(crate::auth::Role::Admin));
    let actions = viewer
        .as_ref()
        .filter(|_| admin)
        .and_then(|v| v.csrf.clone());
    let login_hint = !admin;
    let b = ops::get(&c, &id).await?;
    let steps = c.store.steps(&id).await?;
    let units = c.store.units(&id).await?;
    let waiting_snapshot = b.state == BuildState::Queued
        && !b.go_rev.is_empty()
        && !c
            .snapshots
            .exists(&crate::snapshots::SnapshotKey::new(&b.builder, &b.go_rev))
            .await
            .unwrap_or(false);
    let position = if b.state.is_final() || b.state == BuildState::Running {
        None
    } else {
        ops::queue(&c)
            .await?
            .into_iter()
            .find(|(q, _)| q.id == b.id)
            .map(|(_, p)| p)
    };
    let took = b
        .started
        .as_deref()
        .and_then(|s| between(s, b.ended.as_deref()))
        .map(human)
        .unwrap_or_default();
    let last_failed = steps.iter().rposition(|s| s.result != "ok");
    html(BuildPage {
        refresh: !b.state.is_final(),
        short: short(b.rev()).to_string(),
        state: b.state.as_str(),
        position,
        took,
        waiting_snapshot,
        units: units
            .into_iter()
            .map(|u| UnitRow {
                attempt: u.attempt,
                took: human(std::time::Duration::from_millis(u.millis.max(0) as u64)),
                passed: u.result == "ok",
                name: u.name,
                result: u.result,
                buildlet: u.buildlet,
                output: String::from_utf8_lossy(&u.output).into_owned(),
            })
            .collect(),
        steps: steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepRow {
                attempt: s.attempt,
                name: s.name.clone(),
                started: s.started.clone(),
                took: human(std::time::Duration::from_millis(s.millis.max(0) as u64)),
                result: s.result.clone(),
                failed: Some(i) == last_failed && b.state == BuildState::Failed,
            })
            .collect(),
        b,
        actions,
        login_hint,
    })
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct StatusParams {
    #[serde(default)]
    mode: String,
}

#[derive(serde::Serialize)]
struct PoolRow {
    host_type: String,
    connected: i64,
    idle: i64,
    busy: i64,
    waiters: i64,
}

/// An on-demand provider (containers, pods): its quotas and what it is doing.
#[derive(serde::Serialize)]
struct ProviderRow {
    kind: &'static str,
    host_types: String,
    instances: String,
    cpus: String,
    memory_mib: String,
    creating: u64,
    waiting: u64,
    running: u64,
    started: u64,
    failures: u64,
    last_failure: String,
    swept: u64,
}

impl From<pool::ProviderStatus> for ProviderRow {
    fn from(p: pool::ProviderStatus) -> ProviderRow {
        let of = |used: u64, limit: u64| format!("{used} / {limit}");
        ProviderRow {
            kind: p.kind,
            host_types: p.host_types.join(", "),
            instances: of(p.used.instances, p.limits.instances),
            cpus: of(p.used.cpus, p.limits.cpus),
            memory_mib: of(p.used.memory_mib, p.limits.memory_mib),
            creating: p.creating,
            waiting: p.waiting,
            running: p.running,
            started: p.started,
            failures: p.failures,
            last_failure: p.last_failure.unwrap_or_default(),
            swept: p.swept,
        }
    }
}

#[derive(serde::Serialize)]
struct MachineRow {
    name: String,
    host_type: String,
    state: &'static str,
    connected: String,
    version: String,
    /// `v2` or `mux` for a reverse buildlet; empty for a local one.
    revdial: String,
}

#[derive(serde::Serialize)]
struct ActiveRow {
    id: String,
    builder: String,
    short: String,
    buildlet: String,
    elapsed: String,
}

#[derive(serde::Serialize)]
struct QueueRow {
    id: String,
    source: String,
    builder: String,
    short: String,
    state: &'static str,
    host_type: String,
    position: usize,
}

#[derive(serde::Serialize)]
struct RecentRow {
    id: String,
    builder: String,
    short: String,
    state: &'static str,
    ended: String,
}

#[derive(askama::Template, serde::Serialize)]
#[template(path = "status.html")]
struct StatusPage {
    #[serde(skip)]
    refresh: bool,
    queued: usize,
    waiting: usize,
    pools: Vec<PoolRow>,
    providers: Vec<ProviderRow>,
    machines: Vec<MachineRow>,
    running: Vec<ActiveRow>,
    queue: Vec<QueueRow>,
    recent: Vec<RecentRow>,
}

/// `GET /status`: pools, machines, running builds and the queue; `?mode=json` as JSON.
pub(super) async fn status(State(c): State<Shared>, Query(p): Query<StatusParams>) -> Reply {
    let queue = ops::queue(&c).await?;
    let running = c.store.in_state(BuildState::Running).await?;
    let recent = c.store.recent(20).await?;
    let pools = c.pool.status().host_types;
    let host_type_of = |b: &Build| {
        c.config
            .builder(&b.builder)
            .map(|x| x.host_type.clone())
            .unwrap_or_default()
    };
    let page = StatusPage {
        refresh: true,
        queued: queue
            .iter()
            .filter(|(b, _)| b.state == BuildState::Queued)
            .count(),
        waiting: queue
            .iter()
            .filter(|(b, _)| b.state == BuildState::Waiting)
            .count(),
        machines: pools
            .iter()
            .flat_map(|(ht, s)| {
                s.machines.iter().map(move |(name, m)| MachineRow {
                    name: name.clone(),
                    host_type: ht.clone(),
                    state: if m.busy { "busy" } else { "idle" },
                    connected: human(std::time::Duration::from_secs_f64(m.connected_sec.max(0.0))),
                    version: m.version.clone(),
                    revdial: m.revdial.clone(),
                })
            })
            .collect(),
        providers: c
            .pool
            .providers()
            .into_iter()
            .map(ProviderRow::from)
            .collect(),
        pools: pools
            .iter()
            .map(|(ht, s)| PoolRow {
                host_type: ht.clone(),
                connected: s.connected,
                idle: s.idle,
                busy: s.busy,
                waiters: s.waiters,
            })
            .collect(),
        running: running
            .iter()
            .map(|b| ActiveRow {
                id: b.id.clone(),
                builder: b.builder.clone(),
                short: short(b.rev()).to_string(),
                buildlet: b.buildlet.clone(),
                elapsed: b
                    .started
                    .as_deref()
                    .and_then(|s| between(s, None))
                    .map(human)
                    .unwrap_or_default(),
            })
            .collect(),
        queue: queue
            .iter()
            .map(|(b, position)| QueueRow {
                id: b.id.clone(),
                source: b.source.clone(),
                builder: b.builder.clone(),
                short: short(b.rev()).to_string(),
                state: b.state.as_str(),
                host_type: host_type_of(b),
                position: *position,
            })
            .collect(),
        recent: recent
            .iter()
            .filter(|b| b.state.is_final())
            .map(|b| RecentRow {
                id: b.id.clone(),
                builder: b.builder.clone(),
                short: short(b.rev()).to_string(),
                state: b.state.as_str(),
                ended: b.ended.clone().unwrap_or_default(),
            })
            .collect(),
    };
    match p.mode.as_str() {
        "json" => json_reply(StatusCode::OK, &page),
        "" => html(page),
        other => Err(Error::BadRequest(format!(
            "unsupported mode {other:?}: use mode=json or none"
        ))
        .into()),
    }
}
