//! The build runner: lease a buildlet, push the source, run the steps, record the result.
//!
//! A build whose buildlet is lost (a communication error, not a failing command) is retried
//! once on another buildlet under the same build id, so it still records exactly one
//! result. Cancelling a build stops it wherever it is and records `canceled`.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use buildlet_proto::api::{ExecRequest, ProcessState};
use pool::{LeaseRequest, SchedItem};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Coordinator;
use crate::db::{Build, State};
use crate::livelog::{LiveLog, LogWriter};

/// A build in progress: its live log and how to cancel it.
#[derive(Debug)]
pub struct Running {
    /// The live log.
    pub log: Arc<LiveLog>,
    /// Cancels the build.
    pub cancel: CancellationToken,
}

/// Why one attempt did not produce a result.
#[derive(Debug)]
enum AttemptError {
    /// The buildlet was lost: retry elsewhere.
    Lost(String),
    /// Nothing a retry would fix (unknown builder, bad revision).
    Setup(String),
}

/// How often a source push reports progress in the build log.
const PROGRESS_STEP: usize = 16 << 20;

/// Reports a long transfer's progress in the build log as it is read.
struct Progress<R> {
    inner: R,
    log: Arc<LiveLog>,
    total: usize,
    sent: usize,
    next_report: usize,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Progress<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let me = &mut *self;
        me.sent += buf.filled().len() - before;
        if me.sent >= me.next_report && me.sent < me.total {
            me.log.line(&format!(
                "  … {:.0} of {:.0} MB sent",
                me.sent as f64 / 1e6,
                me.total as f64 / 1e6
            ));
            me.next_report += PROGRESS_STEP;
        }
        polled
    }
}

/// Starts every queued build not yet started, now and whenever work arrives.
pub async fn dispatch_loop(c: Arc<Coordinator>) {
    loop {
        match c.db.in_state(State::Queued).await {
            Ok(queued) => {
                for build in queued {
                    let fresh = c.running_insert(&build.id);
                    if let Some(running) = fresh {
                        let span =
                            tracing::info_span!("build", id = %build.id, builder = %build.builder);
                        tokio::spawn(run_build(c.clone(), build, running).instrument(span));
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the build queue"),
        }
        tokio::select! {
            _ = c.work.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = c.shutdown.cancelled() => return,
        }
    }
}

/// Runs one build to its end.
async fn run_build(c: Arc<Coordinator>, build: Build, running: Arc<Running>) {
    let log = running.log.clone();
    match c.db.start(&build.id).await {
        Ok(true) => {}
        Ok(false) => {
            c.running_remove(&build.id);
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "starting build");
            c.running_remove(&build.id);
            return;
        }
    }
    c.metrics.started();
    log.line(&format!(
        "{} at {} ({} {})",
        build.builder, build.rev, build.source, build.branch
    ));
    log.line("");
    let state = tokio::select! {
        s = attempts(&c, &build, &log) => s,
        _ = running.cancel.cancelled() => {
            log.line("build canceled");
            State::Canceled
        }
    };
    log.close();
    match c.db.finish(&build.id, state, log.contents()).await {
        Ok(true) => {
            c.metrics.finished(state);
            tracing::info!(state = state.as_str(), "build done");
        }
        Ok(false) => tracing::info!("build already ended (canceled)"),
        Err(e) => tracing::error!(error = %e, "recording the result"),
    }
    c.running_remove(&build.id);
}

async fn attempts(c: &Coordinator, build: &Build, log: &Arc<LiveLog>) -> State {
    for attempt in 1..=2 {
        match attempt_once(c, build, log).await {
            Ok(state) => return state,
            Err(AttemptError::Setup(e)) => {
                log.line(&e);
                return State::Failed;
            }
            Err(AttemptError::Lost(e)) if attempt == 1 => {
                log.line(&format!(
                    "buildlet lost: {e}; retrying the build once on another buildlet"
                ));
                log.line("");
                let _ = c.db.retry_attempt(&build.id).await;
            }
            Err(AttemptError::Lost(e)) => {
                log.line(&format!("buildlet lost again: {e}; giving up"));
            }
        }
    }
    State::Failed
}

async fn attempt_once(
    c: &Coordinator,
    build: &Build,
    log: &Arc<LiveLog>,
) -> Result<State, AttemptError> {
    let builder = c
        .config
        .builder(&build.builder)
        .ok_or_else(|| AttemptError::Setup(format!("unknown builder {:?}", build.builder)))?;
    let mirror = c
        .mirror(&build.source)
        .ok_or_else(|| AttemptError::Setup(format!("unknown source {:?}", build.source)))?;
    let tgz = mirror
        .archive(&build.rev)
        .await
        .map_err(|e| AttemptError::Setup(format!("getting the source: {e}")))?;
    let mut item = SchedItem::new(&builder.host_type, &builder.name);
    item.repo = build.source.clone();
    item.branch = build.branch.clone();
    let lease = c
        .pool
        .lease(LeaseRequest::new(item))
        .await
        .map_err(|e| AttemptError::Setup(format!("failed to get a buildlet: {e}")))?;
    log.line(&format!("using buildlet {}", lease.name()));
    let _ = c.db.set_buildlet(&build.id, lease.name()).await;
    let client = lease.client_arc();
    let (size, started) = (tgz.len(), std::time::Instant::now());
    log.line(&format!("pushing the source ({:.1} MB)", size as f64 / 1e6));
    let reader = Progress {
        inner: Cursor::new(tgz),
        log: log.clone(),
        total: size,
        sent: 0,
        next_report: PROGRESS_STEP,
    };
    if let Err(e) = client.put_tgz("", Box::new(reader)).await {
        lease.destroy();
        return Err(AttemptError::Lost(format!("pushing the source: {e}")));
    }
    log.line(&format!(
        "source in place after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    for step in &builder.steps {
        let Some((cmd, args)) = step.split_first() else {
            continue;
        };
        log.line(&format!("$ {}", step.join(" ")));
        let req = ExecRequest {
            cmd: cmd.clone(),
            args: args.to_vec(),
            dir: ".".into(),
            env: builder.env.clone(),
            timeout_secs: builder.step_timeout_secs,
            ..ExecRequest::default()
        };
        match client.exec(req, Box::new(LogWriter(log.clone()))).await {
            Ok(ProcessState::Ok) => {}
            Ok(ProcessState::Failed(why)) => {
                log.line(&format!("step failed: {why}"));
                return Ok(State::Failed);
            }
            Err(buildlet_proto::Error::ExecTimeout) => {
                // The client closed the step's connection at its deadline; the buildlet
                // killed the command, so the step failed and the machine is still good.
                log.line(&format!(
                    "step failed: timed out after {} s",
                    builder.step_timeout_secs
                ));
                return Ok(State::Failed);
            }
            Err(e) => {
                lease.destroy();
                return Err(AttemptError::Lost(e.to_string()));
            }
        }
    }
    log.line("All steps passed.");
    Ok(State::Succeeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_pushes_report_progress() {
        let log = LiveLog::new();
        let total = 40 << 20;
        let mut reader = Progress {
            inner: Cursor::new(vec![0u8; total]),
            log: log.clone(),
            total,
            sent: 0,
            next_report: PROGRESS_STEP,
        };
        let copied = tokio::io::copy(&mut reader, &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(copied as usize, total);
        let text = String::from_utf8(log.contents()).unwrap();
        assert_eq!(text.matches(" MB sent").count(), 2, "{text}");
        assert!(text.contains("… 17 of 42 MB sent"), "{text}");
    }
}
