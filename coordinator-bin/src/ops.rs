//! The coordinator's use cases, independent of transport: the HTTP API calls these, and
//! so will gRPC and TryBots. Each checks its input and answers with a typed [`Error`].

use crate::Coordinator;
use crate::error::Error;
use crate::model::{Event, State};
use crate::store::{Build, Detail, NewBuilds};

/// Queues `builder` on `rev` of `source`. `rev` may be a commit (any form git resolves)
/// or a branch name, which means its current head (and files the build under the branch).
/// A builder whose routing excludes that branch is refused.
pub async fn enqueue(
    c: &Coordinator,
    source: &str,
    rev: &str,
    builder: &str,
) -> Result<Build, Error> {
    let b = c
        .config
        .builder(builder)
        .ok_or_else(|| Error::NotFound(format!("unknown builder {builder:?}")))?;
    let src = c
        .config
        .sources
        .iter()
        .find(|s| s.name == source)
        .ok_or_else(|| Error::NotFound(format!("unknown source {source:?}")))?;
    let mirror = c
        .mirror(source)
        .ok_or_else(|| Error::NotFound(format!("unknown source {source:?}")))?;
    if let Err(e) = mirror.fetch().await {
        // A stale mirror can still serve a known revision; say why if it cannot.
        tracing::warn!(%source, error = %e, "fetching before an enqueue");
    }
    let (hash, branch) = match mirror.head(rev).await? {
        Some(head) => (head, rev.to_string()),
        None => (rev.to_string(), String::new()),
    };
    if !branch.is_empty() && !crate::config::routing::builds(b, src, &branch, &c.catalogue) {
        return Err(Error::BadRequest(format!(
            "builder {builder:?} does not build branch {branch:?} of {source:?} (its sources or policy exclude it)"
        )));
    }
    let commit = mirror
        .commit(&hash)
        .await
        .map_err(|e| Error::NotFound(format!("unknown revision {rev:?}: {e}")))?;
    let go_rev = match go_rev_for(c, src).await? {
        Some(rev) => rev,
        None if src.subrepo_of.is_some() => {
            return Err(Error::Conflict(format!(
                "{source:?} is a sub-repo of {:?}, whose branch head is not known yet; try again after its next poll",
                src.subrepo_of.as_deref().unwrap_or_default()
            )));
        }
        None => String::new(),
    };
    queue_one(c, source, &branch, &commit, builder, &go_rev).await
}

/// For a sub-repo source, the head of its parent's branch as last polled (what a new
/// build of it is built against); `None` for other sources, or when no head is known.
pub async fn go_rev_for(
    c: &Coordinator,
    source: &crate::config::Source,
) -> Result<Option<String>, Error> {
    let Some((parent, branch)) = source.parent(&c.config) else {
        return Ok(None);
    };
    Ok(c.store.head(&parent.name, branch).await?)
}

/// Queues one build and wakes the dispatcher.
async fn queue_one(
    c: &Coordinator,
    source: &str,
    branch: &str,
    commit: &crate::store::Commit,
    builder: &str,
    go_rev: &str,
) -> Result<Build, Error> {
    let builders = [builder.to_string()];
    let mut out = c
        .store
        .enqueue_commits(
            &[NewBuilds {
                source,
                branch,
                commit,
                builders: &builders,
                go_rev,
            }],
            None,
        )
        .await?;
    c.work.notify_one();
    out.pop()
        .ok_or_else(|| Error::Conflict("the store queued nothing".into()))
}

/// Queues the same build again (upstream's retrybuilds).
pub async fn retry(c: &Coordinator, id: &str) -> Result<Build, Error> {
    let old = get(c, id).await?;
    queue_one(
        c,
        &old.source,
        &old.branch,
        &old.commit,
        &old.builder,
        &old.go_rev,
    )
    .await
}

/// Cancels a queued or running build.
pub async fn cancel(c: &Coordinator, id: &str) -> Result<(), Error> {
    if let Some(r) = c.running(id) {
        r.cancel.cancel();
        return Ok(());
    }
    let canceled = c
        .store
        .apply(
            id,
            Event::Cancel,
            Detail::log(b"canceled before it started\n".to_vec()),
        )
        .await?;
    if canceled {
        return Ok(());
    }
    // Nothing was canceled: say whether the build is finished or does not exist.
    let b = get(c, id).await?;
    Err(Error::Conflict(format!(
        "build {id} is {} and cannot be canceled",
        b.state
    )))
}

/// One build, or `NotFound`.
pub async fn get(c: &Coordinator, id: &str) -> Result<Build, Error> {
    c.store
        .get(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no build {id}")))
}

/// The queue in the order builds get machines (those already waiting for one first, then
/// the dispatcher's priority order), with each build's position (1-based) among those of
/// its host type: what `/status` and the build page show.
pub async fn queue(c: &Coordinator) -> Result<Vec<(Build, usize)>, Error> {
    let mut waiting = c.store.in_state(State::Waiting).await?;
    crate::runner::priority::sort(&mut waiting);
    let mut queued = c.store.in_state(State::Queued).await?;
    crate::runner::priority::sort(&mut queued);
    waiting.extend(queued);
    let mut per_type: std::collections::HashMap<String, usize> = Default::default();
    Ok(waiting
        .into_iter()
        .map(|b| {
            let ht = c
                .config
                .builder(&b.builder)
                .map(|x| x.host_type.clone())
                .unwrap_or_default();
            let n = per_type.entry(ht).or_default();
            *n += 1;
            (b, *n)
        })
        .collect())
}
