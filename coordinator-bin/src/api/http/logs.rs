//! Streams: a build's log (live while it runs) and a commit's source archive.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use futures_util::StreamExt;

use super::{Reply, Shared};
use crate::error::Error;
use crate::ops;

#[derive(Debug, serde::Deserialize)]
pub(super) struct LogParams {
    /// Upstream's `nostream=1`: the log so far, without waiting for the rest.
    #[serde(default)]
    nostream: String,
}

/// `GET /log/{id}`: the stored log, or the live one, streamed until the build ends or
/// the coordinator begins shutting down (an open stream never holds shutdown up).
pub(super) async fn log(
    State(c): State<Shared>,
    Path(id): Path<String>,
    Query(p): Query<LogParams>,
) -> Reply {
    let build = ops::get(&c, &id).await?;
    let mut head = format!(
        " builder: {}\n     rev: {}\n  source: {} {}\nbuildlet: {}\n started: {}\n",
        build.builder,
        build.rev(),
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
            return Ok((headers, body).into_response());
        }
        head.push_str(
            "  status: still running (this page streams until the build ends)\n\nBuild log:\n",
        );
        let log = running.log.clone();
        let drain = c.shutdown.drain_token();
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
        )
        .take_until(async move { drain.cancelled_owned().await });
        return Ok((headers, Body::from_stream(stream)).into_response());
    }
    let _ = write!(
        head,
        "   ended: {}\n  result: {}\n\nBuild log:\n",
        build.ended.as_deref().unwrap_or("-"),
        build.state.as_str()
    );
    let mut body = head.into_bytes();
    body.extend(c.store.log(&id).await?.unwrap_or_default());
    Ok((headers, body).into_response())
}

/// `GET /src/{source}/+archive/{rev}.tar.gz`: the tree at a commit (or a branch's head),
/// the same archive the build runner pushes to buildlets, streamed from `git archive`.
/// If git fails midway the body ends with an error, so the client sees a broken
/// transfer, never a short archive.
pub(super) async fn source_archive(
    State(c): State<Shared>,
    Path((source, file)): Path<(String, String)>,
) -> Reply {
    let rev = file
        .strip_suffix(".tar.gz")
        .ok_or_else(|| Error::NotFound("want /src/SOURCE/+archive/REV.tar.gz".into()))?;
    let mirror = c
        .mirror(&source)
        .ok_or_else(|| Error::NotFound(format!("no source {source:?}")))?;
    let commit = mirror
        .commit(rev)
        .await
        .map_err(|e| Error::NotFound(e.to_string()))?;
    let archive = mirror.archive(&commit.hash)?;
    let exit = archive.exit;
    let tail = futures_util::stream::once(async move {
        exit.finish()
            .await
            .map(|()| axum::body::Bytes::new())
            .map_err(std::io::Error::other)
    });
    let body = tokio_util::io::ReaderStream::new(archive.stream).chain(tail);
    Ok((
        [(header::CONTENT_TYPE, "application/x-gzip")],
        Body::from_stream(body),
    )
        .into_response())
}

/// `GET /bootstrap/{file}`: a file of the data dir's `bootstrap/` folder, streamed.
pub(super) async fn bootstrap_archive(State(c): State<Shared>, Path(file): Path<String>) -> Reply {
    if !crate::config::bootstrap_file_ok(&file) {
        return Err(Error::BadRequest(format!(
            "bad file name {file:?}: one name of letters, digits, '.', '-', '_' and '+'"
        ))
        .into());
    }
    let path = c.config.data_dir.join("bootstrap").join(&file);
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(|_| Error::NotFound(format!("no bootstrap file {file:?}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(tokio_util::io::ReaderStream::new(f)),
    )
        .into_response())
}
