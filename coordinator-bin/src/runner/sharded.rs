//! Sharded tests: the build's buildlet lists the units, then it and its helpers (leased
//! through the pool like any buildlet, each started from the build's snapshot) take units
//! from one shared queue ([`crate::model::shard`]) until every unit has a verdict, one
//! fails, or every buildlet is gone.
//!
//! Helpers are wanted, not waited for: the build's own buildlet starts on the units at
//! once and helpers join as the pool hands them out, so two builds that each want more
//! helpers than the pool has cannot hold each other up.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use buildlet_proto::BuildletClient;
use buildlet_proto::api::{ExecRequest, ProcessState};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use pool::{Lease, LeaseRequest};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::retry::{AttemptError, refused};
use crate::Coordinator;
use crate::config::{BuilderConfig, TestsConfig, UNITS};
use crate::logs::live::LiveLog;
use crate::model::shard::{Next, Outcome, Run, Shard, Verdict};
use crate::model::units::{self, Unit};
use crate::snapshots::SnapshotKey;
use crate::store::{Build, UnitResult};

/// Most output kept per unit (the build log keeps its own bounded copy).
const UNIT_OUTPUT: usize = 1 << 20;
/// Most output of the lister read.
const LIST_OUTPUT: usize = 4 << 20;
/// Recorded unit durations read to order the units.
const HISTORY_ROWS: i64 = 20_000;
/// How often a wait for running units is logged (upstream: 30 s).
const STILL_WAITING: Duration = Duration::from_secs(30);
/// The message when no buildlet is left (upstream's words).
pub const ALL_LOST: &str = "all buildlets had network errors or timeouts, yet tests remain";

/// How the tests ended when they ended with a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestsEnd {
    /// Every unit passed.
    Passed,
    /// A unit failed (or the lister did); the message names it.
    Failed(String),
}

/// Output collected up to a bound; what is past the bound is counted, not kept.
#[derive(Debug, Clone, Default)]
pub(super) struct Capture {
    buf: Arc<Mutex<(Vec<u8>, u64)>>,
    limit: usize,
}

impl Capture {
    pub(super) fn new(limit: usize) -> Capture {
        Capture {
            buf: Arc::default(),
            limit,
        }
    }

    /// What was kept, with a note on what was not.
    pub(super) fn take(&self) -> Vec<u8> {
        let mut g = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let (mut out, dropped) = (std::mem::take(&mut g.0), g.1);
        if dropped > 0 {
            out.extend_from_slice(
                format!("\n... {dropped} bytes of output left out ...\n").as_bytes(),
            );
        }
        out
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut g = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.limit.saturating_sub(g.0.len()).min(data.len());
        g.0.extend_from_slice(&data[..room]);
        g.1 += (data.len() - room) as u64;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One buildlet taking units: the build's own, or a helper with its lease.
struct Worker {
    name: String,
    client: Arc<dyn BuildletClient>,
    lease: Option<Lease>,
}

/// The shared state of a run.
struct Shared {
    shard: Shard,
    tokens: HashMap<u64, CancellationToken>,
    /// Decided units' output, printed to the build log in list order.
    outputs: Vec<Option<Vec<u8>>>,
    /// Unit indices in list order, and how many of them are printed.
    print_order: Vec<usize>,
    printed: usize,
}

/// A build's sharded test run.
pub(super) struct TestRun<'a> {
    pub(super) c: &'a Coordinator,
    pub(super) build: &'a Build,
    pub(super) builder: &'a BuilderConfig,
    pub(super) tests: &'a TestsConfig,
    pub(super) log: Arc<LiveLog>,
    pub(super) attempt: u32,
    /// The snapshot helpers start from, if one was stored.
    pub(super) snapshot: Option<SnapshotKey>,
    /// Set when the build's own buildlet is lost (it has no lease here to retire).
    pub(super) main_lost: &'a std::sync::atomic::AtomicBool,
}

impl TestRun<'_> {
    fn exec_request(&self, cmd: &[String], timeout: Duration) -> ExecRequest {
        ExecRequest {
            cmd: cmd[0].clone(),
            args: cmd[1..].to_vec(),
            dir: ".".into(),
            env: self.builder.env.clone(),
            timeout_secs: timeout.as_secs(),
            ..ExecRequest::default()
        }
    }

    fn unit_timeout(&self) -> Duration {
        Duration::from_secs(
            self.tests
                .unit_timeout_secs
                .saturating_mul(TestsConfig::timeout_scale(&self.builder.env)),
        )
    }

    /// Lists the units on the build's buildlet.
    async fn list(
        &self,
        client: &dyn BuildletClient,
    ) -> Result<Result<Vec<String>, String>, AttemptError> {
        self.log.line(&format!("$ {}", self.tests.list.join(" ")));
        let out = Capture::new(LIST_OUTPUT);
        let req = self.exec_request(&self.tests.list, self.unit_timeout());
        match client.exec(req, Box::new(out.clone())).await {
            Ok(ProcessState::Ok) => {
                Ok(Ok(units::parse_list(&String::from_utf8_lossy(&out.take()))))
            }
            Ok(ProcessState::Failed(why)) => {
                self.log.write(&out.take());
                Ok(Err(format!("listing the tests: {why}")))
            }
            Err(buildlet_proto::Error::ExecTimeout) => Ok(Err(format!(
                "listing the tests: ran over {} limit",
                crate::model::shard::humanize(self.unit_timeout())
            ))),
            Err(error) => Err(AttemptError::Buildlet {
                stage: "listing the tests".into(),
                error,
            }),
        }
    }

    /// Runs the tests: lists, plans, shards; a verdict, or why there is none.
    pub(super) async fn run(
        &self,
        main: Arc<dyn BuildletClient>,
        main_name: &str,
    ) -> Result<TestsEnd, AttemptError> {
        let mut names = match self.list(&*main).await? {
            Ok(names) => names,
            Err(why) => return Ok(TestsEnd::Failed(why)),
        };
        let key = |n: &str| {
            if self.tests.go_names {
                units::go120_name(n)
            } else {
                n.to_owned()
            }
        };
        if !self.tests.only.is_empty() {
            names.retain(|n| {
                let k = key(n);
                self.tests.only.iter().any(|p| k.starts_with(p.as_str()))
            });
        }
        if self.tests.policy_filter
            && let Some(cb) = self
                .builder
                .policy
                .as_deref()
                .and_then(|p| self.c.catalogue.builder(p))
        {
            let before = names.len();
            names.retain(|n| cb.should_run_dist_test(&key(n), false));
            if names.len() < before {
                self.log.line(&format!(
                    "{} units left out by {}'s policy",
                    before - names.len(),
                    cb.name()
                ));
            }
        }
        let history = match self
            .c
            .store
            .unit_history(&self.builder.name, HISTORY_ROWS)
            .await
        {
            Ok(rows) => units::history(&rows),
            Err(e) => {
                tracing::warn!(error = %e, "reading unit durations");
                HashMap::new()
            }
        };
        let plan = units::plan(
            &names,
            &history,
            &self.tests.group_prefix,
            Duration::from_secs(self.tests.group_secs),
            &key,
        );
        self.log.line(&format!(
            "starting_tests: {} units in {} runs, {} helper(s) wanted",
            names.len(),
            plan.len(),
            if self.snapshot.is_some() {
                self.tests.helpers
            } else {
                0
            }
        ));
        if plan.is_empty() {
            self.log.line("No tests listed.");
            return Ok(TestsEnd::Passed);
        }
        let mut print_order: Vec<usize> = (0..plan.len()).collect();
        print_order.sort_by_key(|&i| plan[i].position);
        let shared = Mutex::new(Shared {
            outputs: vec![None; plan.len()],
            shard: Shard::new(plan, true),
            tokens: HashMap::new(),
            print_order,
            printed: 0,
        });
        let changed = Notify::new();
        let main = Worker {
            name: main_name.to_owned(),
            client: main,
            lease: None,
        };
        let mut workers: FuturesUnordered<BoxFuture<'_, ()>> = FuturesUnordered::new();
        workers.push(self.work(main, &shared, &changed).boxed());
        let mut helpers: FuturesUnordered<BoxFuture<'_, Option<Worker>>> = FuturesUnordered::new();
        if let Some(key) = &self.snapshot {
            for i in 0..self.tests.helpers {
                helpers.push(self.helper(i + 1, key).boxed());
            }
        }
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + STILL_WAITING, STILL_WAITING);
        while !workers.is_empty() {
            tokio::select! {
                Some(()) = workers.next() => {}
                Some(helper) = helpers.next(), if !helpers.is_empty() => {
                    if let Some(w) = helper {
                        self.log.line(&format!("helper {} joins", w.name));
                        workers.push(self.work(w, &shared, &changed).boxed());
                    }
                }
                _ = tick.tick() => {
                    let s = lock(&shared);
                    self.log.line(&format!("still_waiting_on_test: {} units left", s.shard.remaining()));
                }
            }
        }
        drop(helpers); // leases still being sought are not wanted any more
        let mut s = lock(&shared);
        // Output of units decided after a gap (the run failed first) still goes to the log.
        for i in s.printed..s.print_order.len() {
            let unit = s.print_order[i];
            if let Some(text) = s.outputs[unit].take() {
                self.log.write(&text);
            }
        }
        if let Some(unit) = s.shard.failed() {
            let name = s.shard.units()[unit].name();
            let why = match s.shard.verdict(unit) {
                Some(Verdict::Failed(why)) => why.clone(),
                _ => String::new(),
            };
            self.log.line(&format!("FAILED: {name}: {why}"));
            return Ok(TestsEnd::Failed(format!("{name}: {why}")));
        }
        if s.shard.is_done() {
            self.log.line("All tests passed.");
            return Ok(TestsEnd::Passed);
        }
        Err(AttemptError::AllLost)
    }

    /// Leases helper `n` and puts the snapshot into it; `None` if either fails (the run
    /// goes on without it).
    async fn helper(&self, n: usize, key: &SnapshotKey) -> Option<Worker> {
        let mut item = super::priority::sched_item(self.build, &self.builder.host_type);
        item.is_helper = true;
        let lease = match self.c.pool.lease(LeaseRequest::new(item)).await {
            Ok(l) => l,
            Err(e) => {
                self.log.line(&format!("helper {n}: no buildlet: {e}"));
                return None;
            }
        };
        let client = lease.client_arc();
        let started = Instant::now();
        let put = match self.c.snapshots.open(key).await {
            Ok(Some((reader, _))) => client.put_tgz("", reader).await.map_err(|e| e.to_string()),
            Ok(None) => Err(format!("snapshot {key} is gone")),
            Err(e) => Err(e.to_string()),
        };
        match put {
            Ok(()) => {
                tracing::debug!(helper = lease.name(), took = ?started.elapsed(), "helper ready");
                Some(Worker {
                    name: lease.name().to_owned(),
                    client,
                    lease: Some(lease),
                })
            }
            Err(e) => {
                self.log.line(&format!(
                    "helper {}: putting the snapshot: {e}",
                    lease.name()
                ));
                lease.destroy();
                None
            }
        }
    }

    /// One buildlet's loop: take a unit, run it, report, until the run is over or the
    /// buildlet is lost.
    async fn work(&self, w: Worker, shared: &Mutex<Shared>, changed: &Notify) {
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut s = lock(shared);
                match s.shard.next(Instant::now()) {
                    Next::Run(run) => {
                        let token = CancellationToken::new();
                        s.tokens.insert(run.copy, token.clone());
                        Some(Some((run, s.shard.units()[run.unit].clone(), token)))
                    }
                    Next::Wait => Some(None),
                    Next::Done => None,
                }
            };
            let (run, unit, token) = match next {
                Some(Some(assigned)) => assigned,
                Some(None) => {
                    notified.await;
                    continue;
                }
                None => break,
            };
            let started = Instant::now();
            let out = Capture::new(UNIT_OUTPUT);
            let outcome = tokio::select! {
                o = self.run_unit(&*w.client, &unit, out.clone()) => Some(o),
                _ = token.cancelled() => None,
            };
            let lost = matches!(outcome, Some(Outcome::Lost));
            self.report(
                shared,
                run,
                outcome.unwrap_or(Outcome::Lost),
                &w.name,
                started.elapsed(),
                out.take(),
            )
            .await;
            changed.notify_waiters();
            if lost {
                self.log.line(&format!(
                    "buildlet {} lost; its unit goes to another",
                    w.name
                ));
                match w.lease {
                    Some(lease) => lease.destroy(),
                    None => self
                        .main_lost
                        .store(true, std::sync::atomic::Ordering::Relaxed),
                }
                return;
            }
        }
    }

    /// Runs one unit; `Lost` when the buildlet stopped answering.
    async fn run_unit(&self, client: &dyn BuildletClient, unit: &Unit, out: Capture) -> Outcome {
        let mut cmd = Vec::with_capacity(self.tests.run.len() + unit.members.len());
        for a in &self.tests.run {
            if a == UNITS {
                for (prefix, args) in &self.tests.branch_args {
                    if self.build.branch.starts_with(prefix.as_str()) {
                        cmd.extend(args.iter().cloned());
                    }
                }
                cmd.extend(unit.members.iter().cloned());
            } else {
                cmd.push(a.clone());
            }
        }
        let limit = self.unit_timeout();
        match client
            .exec(self.exec_request(&cmd, limit), Box::new(out))
            .await
        {
            Ok(ProcessState::Ok) => Outcome::Passed,
            Ok(state) if state.timed_out() => Outcome::TimedOut(limit),
            Ok(ProcessState::Failed(why)) => Outcome::Failed(why),
            Err(buildlet_proto::Error::ExecTimeout) => Outcome::TimedOut(limit),
            // The buildlet answered and refused the command: the unit failed.
            Err(e) if refused(&e) => Outcome::Failed(e.to_string()),
            Err(_) => Outcome::Lost,
        }
    }

    /// Applies a copy's outcome: cancels what it makes moot, records a decided unit,
    /// and prints decided output in list order.
    async fn report(
        &self,
        shared: &Mutex<Shared>,
        run: Run,
        outcome: Outcome,
        buildlet: &str,
        took: Duration,
        output: Vec<u8>,
    ) {
        let record = {
            let mut s = lock(shared);
            s.tokens.remove(&run.copy);
            let report = s.shard.report(run, outcome);
            for copy in &report.cancel {
                if let Some(t) = s.tokens.remove(copy) {
                    t.cancel();
                }
            }
            if !report.decided {
                return;
            }
            let result = match s.shard.verdict(run.unit) {
                Some(Verdict::Failed(why)) => why.clone(),
                _ => "ok".to_owned(),
            };
            let output = self.render(&output);
            s.outputs[run.unit] = Some(output.clone());
            while s.printed < s.print_order.len() {
                let next = s.print_order[s.printed];
                let Some(text) = s.outputs[next].take() else {
                    break;
                };
                self.log.write(&text);
                s.printed += 1;
            }
            UnitResult {
                attempt: i64::from(self.attempt),
                name: s.shard.units()[run.unit].name(),
                result,
                millis: took.as_millis() as i64,
                buildlet: buildlet.to_owned(),
                output,
            }
        };
        if let Err(e) = self.c.store.add_unit(&self.build.id, &record).await {
            tracing::warn!(error = %e, "recording a unit");
        }
    }

    /// A unit's output as the build log shows it: the banner rendered as `##### `.
    fn render(&self, output: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(output);
        if self.tests.banner.is_empty() {
            return text.into_owned().into_bytes();
        }
        text.replace(&self.tests.banner, "##### ").into_bytes()
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
