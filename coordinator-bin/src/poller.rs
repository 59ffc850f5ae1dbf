//! The git poller: every new commit of a watched branch × every builder of its source
//! becomes a queued build.

use std::sync::Arc;
use std::time::Duration;

use crate::Coordinator;

/// At most this many new commits are queued per branch and poll (a force-push or a long
/// absence should not flood the queue); on first sight of a branch only its head is built.
const MAX_NEW_COMMITS: usize = 20;

/// Polls every source until shutdown.
pub async fn poll_loop(c: Arc<Coordinator>) {
    loop {
        if let Err(e) = poll_once(&c).await {
            tracing::warn!(error = %e, "polling work sources");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(c.config.poll_secs.max(1))) => {}
            _ = c.poll_now.notified() => {}
            _ = c.shutdown.cancelled() => return,
        }
    }
}

/// One poll of every source.
pub async fn poll_once(c: &Coordinator) -> anyhow::Result<()> {
    for source in &c.config.sources {
        let Some(mirror) = c.mirror(&source.name) else {
            continue;
        };
        mirror.fetch().await?;
        for branch in &source.branches {
            let Some(head) = mirror.head(branch).await? else {
                tracing::warn!(source = %source.name, %branch, "branch not found");
                continue;
            };
            let last = c.db.head(&source.name, branch).await?;
            if last.as_deref() == Some(head.as_str()) {
                continue;
            }
            let commits = match &last {
                Some(last) => {
                    mirror
                        .new_commits(Some(last), &head, MAX_NEW_COMMITS)
                        .await?
                }
                None => vec![mirror.commit(&head).await?],
            };
            for commit in &commits {
                for builder in c
                    .config
                    .builders
                    .iter()
                    .filter(|b| b.sources.is_empty() || b.sources.contains(&source.name))
                {
                    let b =
                        c.db.enqueue(&source.name, branch, commit, &builder.name)
                            .await?;
                    tracing::info!(id = %b.id, builder = %builder.name, rev = %commit.hash, "queued");
                }
            }
            c.db.set_head(&source.name, branch, &head).await?;
            c.work.notify_one();
        }
    }
    Ok(())
}
