//! The dispatcher: takes queued builds in priority order ([`super::priority`]), only while their host type has a
//! buildlet to give (in flight < the pool's capacity), so a long queue holds no memory,
//! processes or connections until a machine can take its builds.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::Coordinator;
use crate::model::{Event, State};
use crate::store::Detail;

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
    queued.sort_by(super::priority::compare);
    for build in queued {
        if c.shutdown.is_draining() {
            break;
        }
        let Some(builder) = c.config.builder(&build.builder) else {
            // A builder removed from the configuration: the build can never run.
            if c.store
                .apply(&build.id, Event::Claim, Detail::default())
                .await?
            {
                let log = format!(
                    "unknown builder {:?}: not in the configuration\n",
                    build.builder
                );
                c.store
                    .apply(
                        &build.id,
                        Event::Finish(State::Failed),
                        Detail::log(log.into_bytes()),
                    )
                    .await?;
            }
            continue;
        };
        let host_type = builder.host_type.clone();
        if c.in_flight(&host_type) >= c.config.capacity(&host_type) {
            continue;
        }
        // A sub-repo build waits for the snapshot it starts from (§9.1).
        if !build.go_rev.is_empty() {
            let key = crate::snapshots::SnapshotKey::new(&build.builder, &build.go_rev);
            if !c.snapshots.exists(&key).await.unwrap_or(false) {
                continue;
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
