//! Orderly shutdown in two steps: *drain* (stop taking work, stop polling, stop accepting
//! connections, end log streams) and, after a grace period, *cut off* (builds still
//! running are stopped and go back to the queue, never recorded as canceled). A user's
//! cancel is a different token, held per build.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The coordinator's shutdown state and the tasks it waits for.
#[derive(Debug, Default)]
pub struct Shutdown {
    drain: CancellationToken,
    cut: CancellationToken,
    tasks: TaskTracker,
}

/// How long builds in flight may finish after shutdown begins, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

impl Shutdown {
    /// Resolves when shutdown begins.
    pub fn draining(&self) -> WaitForCancellationFuture<'_> {
        self.drain.cancelled()
    }

    /// A token cancelled when shutdown begins (for futures that must own it).
    pub fn drain_token(&self) -> CancellationToken {
        self.drain.clone()
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Resolves when the grace period is over and running work must stop.
    pub fn cut_off(&self) -> WaitForCancellationFuture<'_> {
        self.cut.cancelled()
    }

    /// Runs `task` as work that shutdown waits for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Begins shutdown and waits for the tracked work: up to `grace` for it to finish by
    /// itself, then cuts it off and waits for it to record that (a few seconds at most).
    /// Returns whether anything had to be cut off.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.drain.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_ok() {
            return false;
        }
        tracing::warn!("shutdown: work still running after {grace:?} is cut off and requeued");
        self.cut.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::error!("shutdown: work did not stop within 10 s of the cut-off");
        }
        true
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what service managers and `kill` send).
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_ends_in_the_grace_period_is_not_cut_off() {
        let s = Shutdown::default();
        let drain = s.drain_token();
        s.spawn(async move { drain.cancelled().await });
        assert!(!s.drain(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn work_past_the_grace_period_is_cut_off() {
        let s = std::sync::Arc::new(Shutdown::default());
        let s2 = s.clone();
        let done = s.spawn(async move { s2.cut_off().await });
        assert!(s.drain(Duration::from_millis(50)).await);
        done.await.unwrap();
    }
}
