//! The JSON shapes: a build as the API shows it, upstream's `BuildRecord`, and the
//! dashboard's `BuildStatus`.

use dashboard_types::{BuildRevision, BuildStatus};

use super::pages::GridRows;
use crate::model::State;
use crate::store::Build;

/// A build as the API shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct BuildJson {
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
    page_url: String,
}

impl From<Build> for BuildJson {
    fn from(b: Build) -> Self {
        BuildJson {
            log_url: format!("/log/{}", b.id),
            page_url: format!("/build/{}", b.id),
            id: b.id,
            source: b.source,
            branch: b.branch,
            rev: b.commit.hash,
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

/// The build as upstream's datastore `Build` record.
pub(super) fn record_of(b: &Build, base: &str) -> dashboard_types::BuildRecord {
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
        go_rev: b.rev().to_string(),
        rev: b.rev().to_string(),
        repo: b.source.clone(),
        builder: b.builder.clone(),
        os: os.to_string(),
        arch: arch.to_string(),
        end_time: end,
        seconds,
        result: match b.state {
            State::Succeeded => "ok".into(),
            State::Failed => "fail".into(),
            _ => String::new(),
        },
        failure_url: if b.state == State::Failed {
            log_url.clone()
        } else {
            String::new()
        },
        log_url,
        ..dashboard_types::BuildRecord::default()
    }
}

/// The dashboard's JSON: a cell is `""`, `"ok"`, or the failure's log URL. Upstream
/// writes it tab-indented, without a trailing newline.
pub(super) fn dashboard(grid: &GridRows, base: &str) -> Result<Vec<u8>, serde_json::Error> {
    let status = BuildStatus {
        builders: grid.builders.clone(),
        revisions: grid
            .commits
            .iter()
            .map(|r| BuildRevision {
                repo: r.source.clone(),
                revision: r.commit.hash.clone(),
                go_revision: r.go_rev.clone(),
                date: r.commit.date.clone(),
                branch: r.branch.clone(),
                author: r.commit.author.clone(),
                desc: r.commit.desc.clone(),
                results: r
                    .cells
                    .iter()
                    .map(|cell| match cell {
                        Some(b) if b.state == State::Succeeded => "ok".to_string(),
                        Some(b) if b.state == State::Failed => format!("{base}/log/{}", b.id),
                        _ => String::new(),
                    })
                    .collect(),
                ..BuildRevision::default()
            })
            .collect(),
    };
    let mut body = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut body,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    serde::Serialize::serialize(&status, &mut ser)?;
    Ok(body)
}
