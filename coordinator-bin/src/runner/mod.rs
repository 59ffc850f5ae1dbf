//! The build runner: the dispatcher takes queued builds that a pool can serve, and each
//! build runs its attempts ([`attempt`]) under the retry rules of [`retry`].
//!
//! A build ends in exactly one of three ways: a result (recorded once), a user's cancel
//! (recorded as `canceled`), or the coordinator's shutdown cutting it off (back to the
//! queue, nothing recorded: the next start runs it again).

mod attempt;
pub mod dispatch;
pub mod priority;
mod progress;
pub mod retry;
pub mod sharded;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Coordinator;
use crate::logs::live::LiveLog;
use crate::model::{Event, State};
use crate::store::{Build, Detail};

pub use dispatch::dispatch_loop;

/// A build in progress: its live log and how to cancel it.
#[derive(Debug)]
pub struct Running {
    /// The live log.
    pub log: Arc<LiveLog>,
    /// A user's cancel (not shutdown: that requeues instead).
    pub cancel: CancellationToken,
    /// The host type its buildlets come from.
    pub host_type: String,
}

/// How a build's run ended.
enum Outcome {
    Result(State),
    Canceled,
    CutOff,
}

/// Runs one claimed build to its end.
pub(crate) async fn run_build(c: Arc<Coordinator>, build: Build, running: Arc<Running>) {
    let log = running.log.clone();
    c.metrics.started();
    log.line(&format!(
        "{} at {} ({} {})",
        build.builder,
        build.rev(),
        build.source,
        build.branch
    ));
    log.line("");
    let started = std::time::Instant::now();
    let attempt = attempt::BuildAttempt {
        c: &c,
        build: &build,
        log: log.clone(),
        main_lost: Default::default(),
    };
    let outcome = tokio::select! {
        s = retry::run_attempts(&attempt) => Outcome::Result(s),
        _ = running.cancel.cancelled() => Outcome::Canceled,
        _ = c.shutdown.cut_off() => Outcome::CutOff,
    };
    let (event, state) = match outcome {
        Outcome::Result(s) => (Event::Finish(s), s),
        Outcome::Canceled => {
            log.line("build canceled");
            (Event::Cancel, State::Canceled)
        }
        Outcome::CutOff => {
            log.line("the coordinator is shutting down: build requeued");
            (Event::Requeue, State::Queued)
        }
    };
    log.close();
    let detail = if state.is_final() {
        Detail::log(log.contents())
    } else {
        Detail::default()
    };
    match c.store.apply(&build.id, event, detail).await {
        Ok(true) if state.is_final() => {
            c.metrics.finished(&build.builder, state, started.elapsed());
            tracing::info!(state = state.as_str(), "build done");
        }
        Ok(true) => tracing::info!("build requeued"),
        Ok(false) => tracing::info!("build already ended (canceled)"),
        Err(e) => tracing::error!(error = %e, "recording the result"),
    }
    c.running_remove(&build.id);
    // Its machine is free again: the dispatcher starts the next build now, not at its
    // next periodic look at the queue.
    c.work.notify_one();
}
