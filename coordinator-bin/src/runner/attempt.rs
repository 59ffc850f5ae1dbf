//! One attempt at a build: lease a buildlet, stream the source into it, run the steps,
//! recording each step with its duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use buildlet_proto::BuildletClient;
use buildlet_proto::api::{ExecRequest, ProcessState};
use pool::{Lease, LeaseRequest};

use super::progress::Progress;
use super::retry::{Attempt, AttemptError, Disposition, classify};
use super::sharded::{TestRun, TestsEnd};
use crate::Coordinator;

/// How long a signed bootstrap URL stays valid: the fetch starts at once.
const BOOTSTRAP_URL_LIFE: Duration = Duration::from_secs(3600);
use crate::config::BuilderConfig;
use crate::logs::live::{LiveLog, LogWriter};
use crate::model::{Event, State};
use crate::snapshots::{SnapshotKey, SnapshotReader};
use crate::store::{Build, Detail, Step, sqlite::now};

/// A build's attempts on real buildlets.
pub(super) struct BuildAttempt<'a> {
    pub(super) c: &'a Coordinator,
    pub(super) build: &'a Build,
    pub(super) log: Arc<LiveLog>,
    /// Set when the attempt's own buildlet was lost during the tests, which its helpers
    /// finished: the result stands, and the machine is retired, not given back.
    pub(super) main_lost: std::sync::atomic::AtomicBool,
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
        let item = super::priority::sched_item(self.build, host_type);
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

    /// Streams the source from `git archive` into `dir` of the buildlet's work dir.
    async fn push_source(
        &self,
        client: &dyn BuildletClient,
        dir: &str,
    ) -> Result<(), AttemptError> {
        let mirror = self.c.mirror(&self.build.source).ok_or_else(|| {
            AttemptError::Setup(format!("unknown source {:?}", self.build.source))
        })?;
        let archive = mirror
            .archive(self.build.rev())
            .map_err(|e| AttemptError::Setup(format!("getting the source: {e}")))?;
        let started = Instant::now();
        self.log.line("pushing the source");
        let reader = Progress::new(archive.stream, self.log.clone());
        let pushed = client.put_tgz(dir, Box::new(reader)).await;
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
            // The buildlet has no token: the coordinator signs the URL for it.
            let signed = self.c.signer.sign(&bs.url, BOOTSTRAP_URL_LIFE);
            format!("{}{signed}", self.c.base_url())
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

impl BuildAttempt<'_> {
    /// Runs `what` as step `index` of attempt `n`, recording its result.
    async fn step<T, F>(
        &self,
        n: u32,
        index: &mut usize,
        name: &str,
        what: F,
    ) -> Result<T, AttemptError>
    where
        F: std::future::Future<Output = Result<T, AttemptError>>,
    {
        let clock = self.clock(n, *index, name);
        *index += 1;
        let r = what.await;
        match &r {
            Ok(_) => self.record(clock, "ok").await,
            Err(e) => self.record(clock, &e.to_string()).await,
        }
        r
    }

    /// The stored snapshot of `key`, if there is one the store can give (a store that
    /// cannot is logged, and the tree is built as if there were none).
    async fn open_snapshot(&self, key: &SnapshotKey) -> Option<(SnapshotReader, u64)> {
        match self.c.snapshots.open(key).await {
            Ok(found) => found,
            Err(e) => {
                self.log
                    .line(&format!("snapshot {key} unreadable ({e}): building"));
                None
            }
        }
    }

    /// Puts an opened snapshot in place in the buildlet's work dir.
    async fn put_snapshot(
        &self,
        client: &dyn BuildletClient,
        key: &SnapshotKey,
        (reader, len): (SnapshotReader, u64),
    ) -> Result<(), AttemptError> {
        self.log.line(&format!(
            "restoring snapshot {key} ({len} bytes): make skipped"
        ));
        client
            .put_tgz("", reader)
            .await
            .map_err(|error| AttemptError::Buildlet {
                stage: "restoring the snapshot".into(),
                error,
            })
    }

    /// Stores the built tree as the snapshot of `key`; `false` if the store failed
    /// (the build goes on without one).
    async fn save_snapshot(
        &self,
        client: &dyn BuildletClient,
        key: &SnapshotKey,
    ) -> Result<bool, AttemptError> {
        let started = Instant::now();
        let (writer, reader, confirm) = crate::snapshots::confirmed_pipe();
        let fetch = async {
            let r = client.get_tgz(".", Box::new(writer)).await;
            confirm.finished(r.is_ok());
            r
        };
        let (fetched, stored) = tokio::join!(fetch, self.c.snapshots.put(key, reader));
        match (fetched, stored) {
            (Ok(()), Ok(len)) => {
                self.log.line(&format!(
                    "snapshot {key} kept ({len} bytes, {:.1} s)",
                    started.elapsed().as_secs_f64()
                ));
                Ok(true)
            }
            // The store failed (and the pipe broke under the download because of it):
            // not the buildlet's fault, and the build goes on without a snapshot.
            (Ok(()) | Err(buildlet_proto::Error::Io(_)), Err(e)) => {
                self.log.line(&format!("keeping the snapshot failed: {e}"));
                Ok(false)
            }
            (Err(error), _) => Err(AttemptError::Buildlet {
                stage: "taking the snapshot".into(),
                error,
            }),
        }
    }

    /// Runs `steps` in `dir` (the builder's make steps, or its sub-repo steps); `Some`
    /// with the build's state when one failed.
    async fn run_steps(
        &self,
        n: u32,
        index: &mut usize,
        client: &dyn BuildletClient,
        builder: &BuilderConfig,
        steps: &[Vec<String>],
        dir: &str,
    ) -> Result<Option<State>, AttemptError> {
        for step in steps {
            let Some((cmd, args)) = step.split_first() else {
                continue;
            };
            let name = format!("$ {}", step.join(" "));
            self.log.line(&name);
            let clock = self.clock(n, *index, &name);
            *index += 1;
            let req = ExecRequest {
                cmd: cmd.clone(),
                args: args.to_vec(),
                dir: dir.to_owned(),
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
                        return Ok(Some(State::Failed));
                    }
                    return Err(e);
                }
            };
            match failed {
                None => self.record(clock, "ok").await,
                Some(why) => {
                    self.record(clock, &why).await;
                    self.log.line(&format!("step failed: {why}"));
                    return Ok(Some(State::Failed));
                }
            }
        }
        Ok(None)
    }

    /// A sub-repo build: the parent's snapshot (by this builder, at the build's parent
    /// revision), the sub-repo's tree in its directory, then the builder's sub-repo steps
    /// there.
    async fn subrepo(
        &self,
        n: u32,
        client: &dyn BuildletClient,
        builder: &BuilderConfig,
    ) -> Result<State, AttemptError> {
        let source = self
            .c
            .config
            .sources
            .iter()
            .find(|s| s.name == self.build.source)
            .ok_or_else(|| {
                AttemptError::Setup(format!("unknown source {:?}", self.build.source))
            })?;
        if builder.subrepo_steps.is_empty() {
            return Err(AttemptError::Setup(format!(
                "builder {:?} has no subrepo_steps to build the sub-repo {:?} with",
                builder.name, source.name
            )));
        }
        let key = SnapshotKey::new(&builder.name, &self.build.go_rev);
        let mut index = 0;
        let restore = async {
            let found = self.open_snapshot(&key).await.ok_or_else(|| {
                AttemptError::Setup(format!(
                    "the snapshot {key} this sub-repo build starts from is gone (evicted?); \
                     build {} at {} again first",
                    builder.name, self.build.go_rev
                ))
            })?;
            self.put_snapshot(client, &key, found).await
        };
        self.step(n, &mut index, &format!("restore snapshot {key}"), restore)
            .await?;
        let dir = source.checkout_dir();
        self.step(
            n,
            &mut index,
            &format!("push source into {dir}"),
            self.push_source(client, dir),
        )
        .await?;
        if let Some(end) = self
            .run_steps(n, &mut index, client, builder, &builder.subrepo_steps, dir)
            .await?
        {
            return Ok(end);
        }
        self.log.line("All steps passed.");
        Ok(State::Succeeded)
    }

    /// Everything done on the leased buildlet: the tree (from a snapshot, or source,
    /// bootstrap and make), the snapshot, then the tests.
    async fn on_buildlet(
        &self,
        n: u32,
        client: Arc<dyn BuildletClient>,
        name: &str,
        builder: &BuilderConfig,
    ) -> Result<State, AttemptError> {
        if !self.build.go_rev.is_empty() {
            return self.subrepo(n, &*client, builder).await;
        }
        let mut index = 0;
        let key = SnapshotKey::new(&builder.name, self.build.rev());
        let helpers = builder.tests.as_ref().is_some_and(|t| t.helpers > 0);
        let wants_snapshot = builder.snapshot || helpers;
        let found = match wants_snapshot {
            true => self.open_snapshot(&key).await,
            false => None,
        };
        let restored = found.is_some();
        if let Some(found) = found {
            self.step(
                n,
                &mut index,
                "restore snapshot",
                self.put_snapshot(&*client, &key, found),
            )
            .await?;
        }
        let mut snapshot = restored.then(|| key.clone());
        if !restored {
            self.step(n, &mut index, "push source", self.push_source(&*client, ""))
                .await?;
            if let Some(bs) = &builder.bootstrap {
                self.step(
                    n,
                    &mut index,
                    &format!("bootstrap {}", bs.dir),
                    self.fetch_bootstrap(&*client, bs),
                )
                .await?;
            }
            if let Some(end) = self
                .run_steps(
                    n,
                    &mut index,
                    &*client,
                    builder,
                    &builder.steps,
                    &builder.dir,
                )
                .await?
            {
                return Ok(end);
            }
            if wants_snapshot {
                let saved = self
                    .step(
                        n,
                        &mut index,
                        "save snapshot",
                        self.save_snapshot(&*client, &key),
                    )
                    .await?;
                if saved {
                    snapshot = Some(key.clone());
                }
            }
        }
        if builder.make_only {
            self.log.line("Make only: done.");
            return Ok(State::Succeeded);
        }
        let Some(tests) = &builder.tests else {
            self.log.line("All steps passed.");
            return Ok(State::Succeeded);
        };
        let run = TestRun {
            c: self.c,
            build: self.build,
            builder,
            tests,
            log: self.log.clone(),
            attempt: n,
            snapshot,
            main_lost: &self.main_lost,
        };
        let clock = self.clock(n, index, "tests");
        let r = run.run(client, name).await;
        let result = match &r {
            Ok(TestsEnd::Passed) => "ok".to_owned(),
            Ok(TestsEnd::Failed(why)) => why.clone(),
            Err(e) => e.to_string(),
        };
        self.record(clock, &result).await;
        match r? {
            TestsEnd::Passed => Ok(State::Succeeded),
            TestsEnd::Failed(_) => Ok(State::Failed),
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
        let name = lease.name().to_owned();
        match self
            .on_buildlet(n, lease.client_arc(), &name, builder)
            .await
        {
            Ok(state) => Ok(state),
            Err(e) => {
                Self::release(lease, &e);
                Err(e)
            }
        }
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
