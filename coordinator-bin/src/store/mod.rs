//! Where builds, their steps and logs, and the branch heads seen are kept.
//!
//! [`BuildStore`] is the seam: SQLite ([`sqlite::SqliteStore`]) is the embedded default,
//! and [`conformance::run_all`] is the contract every store must pass (a build records
//! one result; claims are exclusive; enqueue and the head update are one transaction).
//! State changes follow [`crate::model::build`]'s rules.

pub mod access;
pub mod conformance;
pub mod sqlite;

use async_trait::async_trait;

use crate::model::{Event, State};
pub use access::{AccessStore, AuditEntry, TokenRecord};
pub use sqlite::SqliteStore;

/// A store's failure (its own, not the caller's).
#[derive(Debug, thiserror::Error)]
#[error("build store: {0}")]
pub struct StoreError(pub String);

/// The result of store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One commit's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commit {
    /// Full hash.
    pub hash: String,
    /// `Name <email>`.
    pub author: String,
    /// Committer time, RFC 3339.
    pub date: String,
    /// Title line.
    pub desc: String,
}

/// Which builds [`BuildStore::search`] returns: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildQuery {
    /// Source name.
    pub source: Option<String>,
    /// Builder name.
    pub builder: Option<String>,
    /// A commit hash, or a prefix of one (at least 4 hex digits).
    pub rev: Option<String>,
    /// State.
    pub state: Option<State>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// One build, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// `B` and nine hex digits, as upstream's build ids.
    pub id: String,
    /// Insertion order.
    pub seq: i64,
    /// Source name.
    pub source: String,
    /// Branch (empty for a build of a bare revision).
    pub branch: String,
    /// The commit.
    pub commit: Commit,
    /// Builder name.
    pub builder: String,
    /// State.
    pub state: State,
    /// Attempts made (a lost buildlet gives another).
    pub attempt: i64,
    /// When it was queued (RFC 3339).
    pub created: String,
    /// When it first got a buildlet.
    pub started: Option<String>,
    /// When it ended.
    pub ended: Option<String>,
    /// The buildlet that ran (or runs) it.
    pub buildlet: String,
    /// For a sub-repo build: the revision of the repo it is built against (Go's), whose
    /// snapshot it starts from; empty otherwise.
    pub go_rev: String,
}

impl Build {
    /// The commit hash.
    pub fn rev(&self) -> &str {
        &self.commit.hash
    }
}

/// One step of a build attempt, as the build page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which attempt ran it (1-based).
    pub attempt: i64,
    /// Its position in the attempt.
    pub index: i64,
    /// What ran (`make.bash`, `$ go test ./...`, `push source`).
    pub name: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// How long it took.
    pub millis: i64,
    /// `ok`, or why it failed.
    pub result: String,
}

/// One test unit's result (a listed unit, or a group of them run at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitResult {
    /// Which attempt of the build ran it (1-based).
    pub attempt: i64,
    /// The unit's name (a group's members joined by spaces).
    pub name: String,
    /// `ok`, or why it failed.
    pub result: String,
    /// How long the deciding run took.
    pub millis: i64,
    /// The buildlet that ran it.
    pub buildlet: String,
    /// Its output (bounded).
    pub output: Vec<u8>,
}

/// Builds to queue for one commit.
#[derive(Debug, Clone)]
pub struct NewBuilds<'a> {
    /// The source.
    pub source: &'a str,
    /// The branch (empty: a bare revision).
    pub branch: &'a str,
    /// The commit.
    pub commit: &'a Commit,
    /// One build per builder.
    pub builders: &'a [String],
    /// For a sub-repo: the revision of the repo it is built against.
    pub go_rev: &'a str,
}

/// A page of the grid: commits newest first (by their newest build), each with its builds
/// newest first.
#[derive(Debug, Clone, Default)]
pub struct GridPage {
    /// `(source, branch, commit, builds)`.
    pub commits: Vec<(String, String, Commit, Vec<Build>)>,
    /// Whether older commits exist.
    pub more: bool,
}

/// Builds, steps, logs and branch heads.
#[async_trait]
pub trait BuildStore: Send + Sync + std::fmt::Debug {
    /// Queues builds for new commits of `branch` and records `head` as the branch's head,
    /// all in one transaction: a poll that fails halfway queues nothing and is retried.
    async fn enqueue_commits(
        &self,
        builds: &[NewBuilds<'_>],
        head: Option<(&str, &str, &str)>,
    ) -> Result<Vec<Build>>;

    /// One build.
    async fn get(&self, id: &str) -> Result<Option<Build>>;

    /// Builds in `state`, oldest first.
    async fn in_state(&self, state: State) -> Result<Vec<Build>>;

    /// The newest `limit` builds.
    async fn recent(&self, limit: i64) -> Result<Vec<Build>>;

    /// The newest builds that match every field `q` sets, at most `q.limit`.
    async fn search(&self, q: &BuildQuery) -> Result<Vec<Build>>;

    /// Commits `offset..offset + limit`, newest first, with their builds.
    async fn grid(&self, offset: i64, limit: i64) -> Result<GridPage>;

    /// Applies `event` if the build is in one of the event's source states; returns
    /// whether it applied (a build records exactly one result: the first `Finish` or
    /// `Cancel` wins). `Claim` and `Retry` count an attempt; `Leased` records the
    /// buildlet and the start time; a final event records `log` as the build's log.
    async fn apply(&self, id: &str, event: Event, detail: Detail) -> Result<bool>;

    /// Records a finished step.
    async fn add_step(&self, id: &str, step: &Step) -> Result<()>;

    /// A build's steps, in the order they ran.
    async fn steps(&self, id: &str) -> Result<Vec<Step>>;

    /// Records a test unit's result.
    async fn add_unit(&self, id: &str, unit: &UnitResult) -> Result<()>;

    /// A build's unit results, slowest first.
    async fn units(&self, id: &str) -> Result<Vec<UnitResult>>;

    /// `(name, millis)` of the builder's passing units, newest first, at most `limit`:
    /// the history that orders the next build's units.
    async fn unit_history(&self, builder: &str, limit: i64) -> Result<Vec<(String, i64)>>;

    /// A finished build's log.
    async fn log(&self, id: &str) -> Result<Option<Vec<u8>>>;

    /// The newest build of `builder` at `rev` of `source` (a sub-repo build asks after
    /// its parent's).
    async fn latest(&self, source: &str, rev: &str, builder: &str) -> Result<Option<Build>>;

    /// The head last seen of a branch.
    async fn head(&self, source: &str, branch: &str) -> Result<Option<String>>;

    /// Puts builds that were claimed by a process that is gone back in the queue (run at
    /// start by the only coordinator on a store); returns how many.
    async fn requeue_orphans(&self) -> Result<u64>;
}

/// Refuses an event no state allows (a `Finish` whose result is not a result).
pub fn check_event(event: Event) -> Result<()> {
    let from = event.from_states()[0];
    crate::model::transition(from, event)
        .map(drop)
        .map_err(|e| StoreError(e.to_string()))
}

/// What an [`Event`] records besides the state.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    /// The buildlet (for `Leased`).
    pub buildlet: String,
    /// The log (for final events).
    pub log: Vec<u8>,
}

impl Detail {
    /// A detail carrying a log.
    pub fn log(log: Vec<u8>) -> Detail {
        Detail {
            log,
            ..Detail::default()
        }
    }

    /// A detail naming a buildlet.
    pub fn buildlet(name: &str) -> Detail {
        Detail {
            buildlet: name.to_owned(),
            ..Detail::default()
        }
    }
}
