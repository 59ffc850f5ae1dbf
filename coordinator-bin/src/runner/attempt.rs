//! One attempt at a build: lease a buildlet, stream the source into it, run the steps,
//! recording each step with its duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use buildlet_proto::BuildletClient;
use buildlet_proto::api::{ExecRequest, ProcessState};
use pool::{Lease, LeaseRequest, SchedItem};

use super::progress::Progress;
use super::retry::{Attempt, AttemptError, Disposition, classify};
use crate::Coordinator;
use crate::logs::live::{LiveLog, LogWriter};
use crate::model::{Event, State};
use crate::store::{Build, Detail, Step, sqlite::now};

/// A build's attempts on real buildlets.
pub(super) struct BuildAttempt<'a> {
    pub(super) c: &'a Coordinator,
    pub(super) build: &'a Build,
    pub(super) log: Arc<LiveLog>,
}

/// Records one step as it ends.
struct StepClock {
    attempt: i64,
    index: i64,
    name: String,
    started: String,
    at: Instant,
}

impl BuildAttempt<'_> {
    fn clock(&self, attempt: u32, index: usize, name: &str) -> StepClock {
        StepClock {
            attempt: i64::from(attempt),
            index: index as i64,
            name: name.to_owned(),
            started: now(),
            at: Instant::now(),
        }
    }

    async fn record(&self, clock: StepClock, result: &str) {
        let step = Step {
            attempt: clock.attempt,
            index: clock.index,
            name: clock.name,
            started: clock.started,
            millis: clock.at.elapsed().as_millis() as i64,
            result: result.to_owned(),
        };
        if let Err(e) = self.c.store.add_step(&self.build.id, &step).await {
            tracing::warn!(error = %e, "recording a step");
        }
    }

    /// Ends the lease as `error` says: a refused request leaves the machine good; any
    /// other failure retires it.
    fn release(lease: Lease, error: &AttemptError) {
        match classify(error) {
            Disposition::Fail => drop(lease),
            Disposition::Retry => lease.destroy(),
        }
    }

    /// Leases a buildlet; the first attempt's lease observes the build's queue wait (from
    /// queueing to its buildlet), once per build.
    async fn lease(&self, host_type: &str, first: bool) -> Result<Lease, AttemptError> {
        let mut item = SchedItem::new(host_type, &self.build.builder);
        item.repo = self.build.source.clone();
        item.branch = self.build.branch.clone();
        let lease = self
            .c
            .pool
            .lease(LeaseRequest::new(item))
            .await
            .map_err(|e| {
                self.c.metrics.lease_failed(host_type);
                AttemptError::Lease(e)
            })?;
        if first {
            self.c
                .metrics
                .queue_wait(&self.build.builder, self.queued_for());
        }
        Ok(lease)
    }

    /// How long the build has been waiting since it was queued.
    fn queued_for(&self) -> Duration {
        chrono::DateTime::parse_from_rfc3339(&self.build.created)
            .ok()
            .and_then(|t| (chrono::Utc::now() - t.to_utc()).to_std().ok())
            .unwrap_or_default()
    }

    /// Streams the source from `git archive` into the buildlet.
    async fn push_source(&self, client: &dyn BuildletClient) -> Result<(), AttemptError> {
        let mirror = self.c.mirror(&self.build.source).ok_or_else(|| {
            AttemptError::Setup(format!("unknown source {:?}", self.build.source))
        })?;
        let archive = mirror
            .archive(self.build.rev())
            .map_err(|e| AttemptError::Setup(format!("getting the source: {e}")))?;
        let started = Instant::now();
        self.log.line("pushing the source");
        let reader = Progress::new(archive.stream, self.log.clone());
        let pushed = client.put_tgz("", Box::new(reader)).await;
        // git's verdict first: a source that could not be archived is not the buildlet's
        // fault, whatever the push says.
        archive
            .exit
            .finish()
            .await
            .map_err(|e| AttemptError::Setup(format!("getting the source: {e}")))?;
        pushed.map_err(|error| AttemptError::Buildlet {
            stage: "pushing the source".into(),
            error,
        })?;
        self.log.line(&format!(
            "source in place after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    }
}

impl BuildAttempt<'_> {
    /// Has the buildlet fetch the builder's bootstrap archive into its directory. A URL
    /// the buildlet could not fetch (it answered with an error) fails the build and keeps
    /// the machine; a buildlet that stopped answering is lost.
    async fn fetch_bootstrap(
        &self,
        client: &dyn BuildletClient,
        bs: &crate::config::Bootstrap,
    ) -> Result<(), AttemptError> {
        let url = if bs.url.starts_with('/') {
            format!("{}{}", self.c.base_url(), bs.url)
        } else {
            bs.url.clone()
        };
        self.log.line(&format!("fetching {url} into {}", bs.dir));
        let started = Instant::now();
        match client.put_tgz_url(&bs.dir, &url).await {
            Ok(()) => {
                self.log.line(&format!(
                    "bootstrap in place after {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
                Ok(())
            }
            Err(e @ buildlet_proto::Error::Status { .. }) => Err(AttemptError::Setup(format!(
                "fetching the bootstrap archive: {e}"
            ))),
            Err(error) => Err(AttemptError::Buildlet {
                stage: "fetching the bootstrap archive".into(),
                error,
            }),
        }
    }
}

#[async_trait]
impl Attempt for BuildAttempt<'_> {
    async fn run(&self, n: u32) -> Result<State, AttemptError> {
        let builder = self.c.config.builder(&self.build.builder).ok_or_else(|| {
            AttemptError::Setup(format!("unknown builder {:?}", self.build.builder))
        })?;
        let lease = self.lease(&builder.host_type, n == 1).await?;
        self.log.line(&format!("using buildlet {}", lease.name()));
        let _ = self
            .c
            .store
            .apply(
                &self.build.id,
                Event::Leased,
                Detail::buildlet(lease.name()),
            )
            .await;
        // Calls go through the client: a `Lease` is not `Sync`, so it is not held across
        // an await by reference.
        let client = lease.client_arc();
        let clock = self.clock(n, 0, "push source");
        if let Err(e) = self.push_source(&*client).await {
            self.record(clock, &e.to_string()).await;
            Self::release(lease, &e);
            return Err(e);
        }
        self.record(clock, "ok").await;
        if let Some(bs) = &builder.bootstrap {
            let clock = self.clock(n, 1, &format!("bootstrap {}", bs.dir));
            if let Err(e) = self.fetch_bootstrap(&*client, bs).await {
                self.record(clock, &e.to_string()).await;
                Self::release(lease, &e);
                return Err(e);
            }
            self.record(clock, "ok").await;
        }
        let first = if builder.bootstrap.is_some() { 2 } else { 1 };
        for (i, step) in builder.steps.iter().enumerate() {
            let Some((cmd, args)) = step.split_first() else {
                continue;
            };
            let name = format!("$ {}", step.join(" "));
            self.log.line(&name);
            let clock = self.clock(n, i + first, &name);
            let req = ExecRequest {
                cmd: cmd.clone(),
                args: args.to_vec(),
                dir: ".".into(),
                env: builder.env.clone(),
                timeout_secs: builder.step_timeout_secs,
                ..ExecRequest::default()
            };
            let failed = match client
                .exec(req, Box::new(LogWriter(self.log.clone())))
                .await
            {
                Ok(ProcessState::Ok) => None,
                Ok(ProcessState::Failed(why)) => Some(why),
                // The client closed the step's connection at its deadline; the buildlet
                // killed the command, so the step failed and the machine is still good.
                Err(buildlet_proto::Error::ExecTimeout) => {
                    Some(format!("timed out after {} s", builder.step_timeout_secs))
                }
                Err(error) => {
                    let e = AttemptError::Buildlet { stage: name, error };
                    self.record(clock, &e.to_string()).await;
                    if classify(&e) == Disposition::Fail {
                        // The buildlet refused the step (no such command, say): the
                        // step failed, the machine is fine.
                        self.log.line(&format!("step failed: {e}"));
                        drop(lease);
                        return Ok(State::Failed);
                    }
                    lease.destroy();
                    return Err(e);
                }
            };
            match failed {
                None => self.record(clock, "ok").await,
                Some(why) => {
                    self.record(clock, &why).await;
                    self.log.line(&format!("step failed: {why}"));
                    return Ok(State::Failed);
                }
            }
        }
        self.log.line("All steps passed.");
        Ok(State::Succeeded)
    }

    async fn retrying(&self, _n: u32, _why: &str) {
        self.log.line("");
        let _ = self
            .c
            .store
            .apply(&self.build.id, Event::Retry, Detail::default())
            .await;
    }

    fn note(&self, line: &str) {
        self.log.line(line);
    }
}
