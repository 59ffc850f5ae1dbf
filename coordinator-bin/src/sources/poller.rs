//! The git poller: every new commit of a watched branch becomes one queued build per
//! builder that [`crate::config::routing`] says builds that source and branch.
//!
//! Sources are polled independently: one that fails (unreachable, timed out) is logged
//! and retried next time, and the others are polled anyway. A branch's new builds and
//! its new head are stored in one transaction.

use std::sync::Arc;
use std::time::Duration;

use crate::Coordinator;
use crate::config::Source;
use crate::store::{Commit, NewBuilds};

/// At most this many new commits are queued per branch and poll (a force-push or a long
/// absence should not flood the queue); on first sight of a branch only its head is built.
const MAX_NEW_COMMITS: usize = 20;

/// Polls every source until shutdown.
pub async fn poll_loop(c: Arc<Coordinator>) {
    loop {
        for (source, e) in poll_once(&c).await {
            tracing::warn!(source = %source, error = %e, "polling a work source failed; retrying at the next poll");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(c.config.poll_secs.max(1))) => {}
            _ = c.poll_now.notified() => {}
            _ = c.shutdown.draining() => return,
        }
    }
}

/// One poll of every source; returns the sources that failed and why.
pub async fn poll_once(c: &Coordinator) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for source in &c.config.sources {
        if let Err(e) = poll_source(c, source).await {
            failed.push((source.name.clone(), e));
        }
    }
    failed
}

async fn poll_source(c: &Coordinator, source: &Source) -> Result<(), String> {
    let Some(mirror) = c.mirror(&source.name) else {
        return Ok(());
    };
    // A sub-repo's new commits are built against its parent's branch head: until that
    // is known (the parent polled once), its commits wait for a later poll.
    let go_rev = crate::ops::go_rev_for(c, source)
        .await
        .map_err(|e| e.to_string())?;
    if source.subrepo_of.is_some() && go_rev.is_none() {
        tracing::info!(source = %source.name, "sub-repo waits for its parent's first poll");
        return Ok(());
    }
    let go_rev = go_rev.unwrap_or_default();
    mirror.fetch().await.map_err(|e| e.to_string())?;
    for branch in &source.branches {
        let Some(head) = mirror.head(branch).await.map_err(|e| e.to_string())? else {
            tracing::warn!(source = %source.name, %branch, "branch not found");
            continue;
        };
        let last = c
            .store
            .head(&source.name, branch)
            .await
            .map_err(|e| e.to_string())?;
        if last.as_deref() == Some(head.as_str()) {
            continue;
        }
        let commits = match &last {
            Some(last) => mirror.new_commits(Some(last), &head, MAX_NEW_COMMITS).await,
            None => mirror.commit(&head).await.map(|c| vec![c]),
        }
        .map_err(|e| e.to_string())?;
        let builders = builders_of(c, source, branch);
        let mut batch: Vec<NewBuilds<'_>> = commits
            .iter()
            .map(|commit| NewBuilds {
                source: &source.name,
                branch,
                commit,
                builders: &builders,
                go_rev: &go_rev,
            })
            .collect();
        // A new head of a parent: its sub-repos' heads are built again against it, as
        // upstream's dashboard showed each sub-repo at tip against every Go revision.
        let subrepos = subrepo_heads(c, source, branch).await?;
        batch.extend(
            subrepos
                .iter()
                .map(|(sub, sub_branch, commit, builders)| NewBuilds {
                    source: &sub.name,
                    branch: sub_branch,
                    commit,
                    builders,
                    go_rev: &head,
                }),
        );
        let queued = c
            .store
            .enqueue_commits(&batch, Some((&source.name, branch, &head)))
            .await
            .map_err(|e| e.to_string())?;
        for b in &queued {
            tracing::info!(id = %b.id, builder = %b.builder, rev = %b.rev(), "queued");
        }
        c.work.notify_one();
    }
    Ok(())
}

/// The builders that build `branch` of `source`.
fn builders_of(c: &Coordinator, source: &Source, branch: &str) -> Vec<String> {
    c.config
        .builders
        .iter()
        .filter(|b| crate::config::routing::builds(b, source, branch, &c.catalogue))
        .map(|b| b.name.clone())
        .collect()
}

/// The sub-repos built against `branch` of `parent`, each with its branch, its last
/// polled head's commit and its builders (sub-repos not polled yet have none).
async fn subrepo_heads<'a>(
    c: &'a Coordinator,
    parent: &Source,
    branch: &str,
) -> Result<Vec<(&'a Source, &'a str, Commit, Vec<String>)>, String> {
    let mut out = Vec::new();
    for sub in &c.config.sources {
        if sub
            .parent(&c.config)
            .is_none_or(|(p, b)| p.name != parent.name || b != branch)
        {
            continue;
        }
        let Some(mirror) = c.mirror(&sub.name) else {
            continue;
        };
        for sub_branch in &sub.branches {
            let head = c
                .store
                .head(&sub.name, sub_branch)
                .await
                .map_err(|e| e.to_string())?;
            let Some(head) = head else { continue };
            let commit = mirror.commit(&head).await.map_err(|e| e.to_string())?;
            out.push((
                sub,
                sub_branch.as_str(),
                commit,
                builders_of(c, sub, sub_branch),
            ));
        }
    }
    Ok(out)
}
