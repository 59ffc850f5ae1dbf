//! The dispatcher: takes queued builds in priority order ([`super::priority`]), only while their host type has a
//! buildlet to give (in flight < the pool's capacity), so a long queue holds no memory,
//! processes or connections until a machine can take its builds.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::Coordinator;
use crate::model::{Event, State};
use crate::snapshots::SnapshotKey;
use crate::store::{Build, Detail, StoreError};

/// Dispatches now and whenever work arrives, until shutdown begins.
pub async fn dispatch_loop(c: Arc<Coordinator>) {
    loop {
        if let Err(e) = dispatch_once(&c).await {
            tracing::error!(error = %e, "reading the build queue");
        }
        tokio::select! {
            _ = c.work.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = c.shutdown.draining() => return,
        }
    }
}

/// Claims and starts what can run now; returns how many builds started.
pub async fn dispatch_once(c: &Arc<Coordinator>) -> Result<usize, crate::store::StoreError> {
    let mut started = 0;
    let mut queued = c.store.in_state(State::Queued).await?;
    super::priority::sort(&mut queued);
    for build in queued {
        if c.shutdown.is_draining() {
            break;
        }
        let Some(builder) = c.config.builder(&build.builder) else {
            // A builder removed from the configuration: the build can never run.
            let why = format!(
                "unknown builder {:?}: not in the configuration",
                build.builder
            );
            fail_queued(c, &build.id, &why).await?;
            continue;
        };
        let host_type = builder.host_type.clone();
        if c.in_flight(&host_type) >= c.config.capacity(&host_type) {
            continue;
        }
        // A sub-repo build waits for the snapshot it starts from (§9.1).
        if !build.go_rev.is_empty() {
            match subrepo_gate(c, &build).await? {
                Gate::Ready => {}
                Gate::Wait => continue,
                Gate::Fail(why) => {
                    fail_queued(c, &build.id, &why).await?;
                    continue;
                }
            }
        }
        if !c
            .store
            .apply(&build.id, Event::Claim, Detail::default())
            .await?
        {
            continue;
        }
        let Some(running) = c.running_insert(&build.id, &host_type) else {
            continue;
        };
        let span = tracing::info_span!("build", id = %build.id, builder = %build.builder);
        c.shutdown
            .spawn(super::run_build(c.clone(), build, running).instrument(span));
        started += 1;
    }
    Ok(started)
}

/// Ends a queued build that can never run, with `why` as its log.
async fn fail_queued(c: &Coordinator, id: &str, why: &str) -> Result<(), StoreError> {
    if c.store.apply(id, Event::Claim, Detail::default()).await? {
        c.store
            .apply(
                id,
                Event::Finish(State::Failed),
                Detail::log(format!("{why}\n").into_bytes()),
            )
            .await?;
    }
    Ok(())
}

/// Whether a sub-repo build can start.
enum Gate {
    /// Its snapshot exists.
    Ready,
    /// Its parent's build has not made the snapshot yet.
    Wait,
    /// It never will: why.
    Fail(String),
}

async fn subrepo_gate(c: &Coordinator, build: &Build) -> Result<Gate, StoreError> {
    let key = SnapshotKey::new(&build.builder, &build.go_rev);
    if c.snapshots.exists(&key).await.unwrap_or(false) {
        return Ok(Gate::Ready);
    }
    let Some(parent) = c
        .config
        .sources
        .iter()
        .find(|s| s.name == build.source)
        .and_then(|s| s.subrepo_of.clone())
    else {
        return Ok(Gate::Fail(format!(
            "{:?} is no longer a sub-repo in the configuration; nothing to build it against",
            build.source
        )));
    };
    let made = c
        .store
        .latest(&parent, &build.go_rev, &build.builder)
        .await?;
    Ok(match made {
        Some(p) if p.state == State::Succeeded => Gate::Fail(format!(
            "{parent} at {} built on {} ({}/build/{}) but its snapshot is gone (evicted?): \
             retry that build, then this one",
            build.go_rev,
            build.builder,
            c.base_url(),
            p.id
        )),
        Some(p) if p.state.is_final() => Gate::Fail(format!(
            "{parent} at {} did not build on {} ({}: {}/build/{}): no snapshot to build on",
            build.go_rev,
            build.builder,
            p.state,
            c.base_url(),
            p.id
        )),
        _ => Gate::Wait,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::testing::fixture;

    #[tokio::test]
    async fn a_finished_build_wakes_the_dispatcher() {
        // A build that ends frees its machine; the dispatcher must hear of it at once,
        // not at its next periodic look (which held 1,000 queued builds to 8 per 5 s).
        let f = fixture().await;
        let b = crate::ops::enqueue(&f.c, "repo", &f.rev, "local-quick")
            .await
            .unwrap();
        // The enqueue's own wake-up.
        f.c.work.notified().await;
        assert_eq!(super::dispatch_once(&f.c).await.unwrap(), 1);
        let ended = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if f.c
                    .store
                    .get(&b.id)
                    .await
                    .unwrap()
                    .unwrap()
                    .state
                    .is_final()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        ended.await.expect("the build ends");
        tokio::time::timeout(Duration::from_secs(5), f.c.work.notified())
            .await
            .expect("the end of a build wakes the dispatcher");
    }
}
