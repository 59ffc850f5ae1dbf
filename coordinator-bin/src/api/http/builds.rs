//! `/api/builds…` and `/api/poll`: the write routes and a build's JSON.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};

use super::json::{BuildJson, record_of};
use super::{Reply, Shared, json_reply, text};
use crate::auth::layer::is_form;
use crate::error::Error;
use crate::ops;

/// `POST /api/builds` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EnqueueRequest {
    source: String,
    /// A commit, or a branch name (its current head).
    rev: String,
    builder: String,
}

/// The largest `POST /api/builds` body: three names in JSON.
const MAX_ENQUEUE_BODY: usize = 16 << 10;

/// Queue a build of a commit (or a branch's head) on a builder.
#[utoipa::path(post, path = "/api/builds", tag = "builds",
    request_body(content = EnqueueRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "queued", body = BuildJson),
        (status = 400, description = "a malformed request, or a builder that does not build that branch", body = String, content_type = "text/plain"),
        (status = 404, description = "no such source, revision or builder", body = String, content_type = "text/plain"),
        (status = 413, description = "body over 16 KiB", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn enqueue(State(c): State<Shared>, body: axum::body::Body) -> Reply {
    let body = axum::body::to_bytes(body, MAX_ENQUEUE_BODY)
        .await
        .map_err(|_| Error::TooLarge(format!("request body over {MAX_ENQUEUE_BODY} bytes")))?;
    let req: EnqueueRequest = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!(
            "bad request: {e}; want {{\"source\",\"rev\",\"builder\"}}"
        ))
    })?;
    let b = ops::enqueue(&c, &req.source, &req.rev, &req.builder).await?;
    json_reply(StatusCode::CREATED, BuildJson::from(b))
}

/// `GET /api/builds` filters: each one given must match.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Source name.
    source: Option<String>,
    /// Builder name.
    builder: Option<String>,
    /// A commit hash or a prefix of at least 4 hex digits.
    #[param(pattern = "^[0-9a-fA-F]{4,40}$")]
    rev: Option<String>,
    /// A build state.
    #[param(pattern = "^(queued|waiting_for_machine|running|succeeded|failed|canceled)$")]
    state: Option<String>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /api/builds?builder=…&state=failed&rev=…`: the newest matching builds.
#[utoipa::path(get, path = "/api/builds", tag = "builds", params(ListParams),
    responses(
        (status = 200, description = "the newest matching builds", body = [BuildJson]),
        (status = 400, description = "a malformed filter", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn list(
    State(c): State<Shared>,
    axum::extract::Query(p): axum::extract::Query<ListParams>,
) -> Reply {
    let rev = match p.rev {
        Some(r) if r.len() < 4 || r.len() > 40 || !r.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err(Error::BadRequest(format!(
                "rev {r:?}: give a commit hash or a prefix of 4 to 40 hex digits"
            ))
            .into());
        }
        r => r,
    };
    let state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(crate::model::State::parse(s).ok_or_else(|| {
            Error::BadRequest(format!(
                "state {s:?}: one of queued, waiting_for_machine, running, succeeded, failed, canceled"
            ))
        })?),
    };
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::BadRequest(format!("limit {limit}: 1 to 1000")).into());
    }
    let q = crate::store::BuildQuery {
        source: p.source,
        builder: p.builder,
        rev,
        state,
        limit,
    };
    let builds: Vec<BuildJson> = c
        .store
        .search(&q)
        .await?
        .into_iter()
        .map(BuildJson::from)
        .collect();
    json_reply(StatusCode::OK, builds)
}

/// A build.
#[utoipa::path(get, path = "/api/builds/{id}", tag = "builds",
    params(("id" = String, Path, description = "the build's id")),
    responses(
        (status = 200, description = "the build", body = BuildJson),
        (status = 404, description = "no such build", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn get(State(c): State<Shared>, Path(id): Path<String>) -> Reply {
    json_reply(StatusCode::OK, BuildJson::from(ops::get(&c, &id).await?))
}

/// A build as upstream's datastore `BuildRecord` (Go field names).
#[utoipa::path(get, path = "/api/builds/{id}/record", tag = "builds",
    params(("id" = String, Path, description = "the build's id")),
    responses(
        (status = 200, description = "upstream's BuildRecord", body = Object),
        (status = 404, description = "no such build", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn record(State(c): State<Shared>, Path(id): Path<String>) -> Reply {
    let b = ops::get(&c, &id).await?;
    json_reply(StatusCode::OK, record_of(&b, &c.base_url()))
}

/// One test unit's result in `/api/builds/{id}/units`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct UnitJson {
    name: String,
    result: String,
    millis: i64,
    buildlet: String,
    attempt: i64,
    output: String,
}

/// `GET /api/builds/{id}/units`: the build's test units, slowest first, with output.
#[utoipa::path(get, path = "/api/builds/{id}/units", tag = "builds",
    params(("id" = String, Path, description = "the build's id")),
    responses(
        (status = 200, description = "its test units, slowest first", body = [UnitJson]),
        (status = 404, description = "no such build", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn units(State(c): State<Shared>, Path(id): Path<String>) -> Reply {
    ops::get(&c, &id).await?;
    let units: Vec<UnitJson> = c
        .store
        .units(&id)
        .await?
        .into_iter()
        .map(|u| UnitJson {
            output: String::from_utf8_lossy(&u.output).into_owned(),
            name: u.name,
            result: u.result,
            millis: u.millis,
            buildlet: u.buildlet,
            attempt: u.attempt,
        })
        .collect();
    json_reply(StatusCode::OK, units)
}

/// Queue the same build again (upstream's retrybuilds). A browser form post is answered
/// with a redirect to the new build.
#[utoipa::path(post, path = "/api/builds/{id}/retry", tag = "builds",
    params(("id" = String, Path, description = "the build's id")),
    responses(
        (status = 201, description = "the new build", body = BuildJson),
        (status = 303, description = "a form post: to the new build's page"),
        (status = 404, description = "no such build", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn retry(
    State(c): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let b = ops::retry(&c, &id).await?;
    if is_form(&headers) {
        return Ok(Redirect::to(&format!("/build/{}", b.id)).into_response());
    }
    json_reply(StatusCode::CREATED, BuildJson::from(b))
}

/// Cancel a queued or running build.
#[utoipa::path(post, path = "/api/builds/{id}/cancel", tag = "builds",
    params(("id" = String, Path, description = "the build's id")),
    responses(
        (status = 200, description = "canceled", body = String, content_type = "text/plain"),
        (status = 303, description = "a form post: to the build's page"),
        (status = 404, description = "no such build", body = String, content_type = "text/plain"),
        (status = 409, description = "the build has ended", body = String, content_type = "text/plain"),
    ))]
pub(super) async fn cancel(
    State(c): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    ops::cancel(&c, &id).await?;
    if is_form(&headers) {
        return Ok(Redirect::to(&format!("/build/{id}")).into_response());
    }
    Ok(text(StatusCode::OK, "canceled\n"))
}

/// Poll the work sources now.
#[utoipa::path(post, path = "/api/poll", tag = "builds",
    responses((status = 202, description = "a poll is on its way", body = String, content_type = "text/plain")))]
pub(super) async fn poll(State(c): State<Shared>) -> Reply {
    c.poll_now.notify_one();
    Ok(text(StatusCode::ACCEPTED, "polling\n"))
}
