//! `/admin/audit` and `/api/audit`: the audit log, a page at a time (admins only).

use axum::extract::{Query, State};
use axum::http::StatusCode;

use super::{Reply, Shared, html, json_reply, readable};
use crate::store::AuditEntry;

/// Entries per page.
const PER_PAGE: i64 = 50;

/// `?before=SEQ`: the page of entries older than that one.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    before: Option<i64>,
}

/// One entry as JSON.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct AuditJson {
    seq: i64,
    time: String,
    who: String,
    roles: String,
    route: String,
    target: String,
    status: u16,
    client: String,
}

/// A page of entries, and the cursor of the next (older) one.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct AuditPageJson {
    entries: Vec<AuditJson>,
    /// Pass as `?before=` for the next page; absent on the last one.
    older: Option<i64>,
}

async fn page(
    c: &Shared,
    before: Option<i64>,
) -> Result<(Vec<AuditEntry>, Option<i64>), crate::error::Error> {
    let mut entries = c.access.audit(before, PER_PAGE + 1).await?;
    let older = (entries.len() as i64 > PER_PAGE).then(|| {
        entries.truncate(PER_PAGE as usize);
        entries.last().map(|e| e.seq)
    });
    Ok((entries, older.flatten()))
}

/// The audit log: every write, newest first, 50 a page.
#[utoipa::path(get, path = "/api/audit", tag = "admin", params(AuditParams),
    responses(
        (status = 200, description = "a page of entries", body = AuditPageJson),
        (status = 400, description = "a malformed cursor", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn audit_json(State(c): State<Shared>, Query(p): Query<AuditParams>) -> Reply {
    let (entries, older) = page(&c, p.before).await?;
    let entries = entries.into_iter().map(AuditJson::from).collect();
    json_reply(StatusCode::OK, AuditPageJson { entries, older })
}

impl From<AuditEntry> for AuditJson {
    fn from(e: AuditEntry) -> Self {
        AuditJson {
            seq: e.seq,
            time: e.time,
            who: e.who,
            roles: e.roles,
            route: e.route,
            target: e.target,
            status: e.status,
            client: e.client,
        }
    }
}

/// One row of the page: the entry, its time as a person reads it, and the result's
/// colour.
struct Row {
    e: AuditJson,
    time: String,
    /// `ok` or `failed`.
    class: &'static str,
}

#[derive(askama::Template)]
#[template(path = "audit.html")]
struct AuditPage {
    refresh: bool,
    entries: Vec<Row>,
    before: Option<i64>,
    older: Option<i64>,
}

pub(super) async fn audit_page(State(c): State<Shared>, Query(p): Query<AuditParams>) -> Reply {
    let (entries, older) = page(&c, p.before).await?;
    let entries = entries
        .into_iter()
        .map(|e| Row {
            time: readable(&e.time, "%Y-%m-%d %H:%M:%S"),
            class: if e.status < 400 { "ok" } else { "failed" },
            e: AuditJson::from(e),
        })
        .collect();
    html(AuditPage {
        refresh: false,
        entries,
        before: p.before,
        older,
    })
}
