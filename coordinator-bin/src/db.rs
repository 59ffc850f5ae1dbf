//! Builds and their logs, in SQLite in the data directory.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

/// A build's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting to start.
    Queued,
    /// Holding (or waiting for) a buildlet.
    Running,
    /// Every step passed.
    Succeeded,
    /// A step failed, or the infrastructure failed twice.
    Failed,
    /// Cancelled through the API.
    Canceled,
}

impl State {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "running" => State::Running,
            "succeeded" => State::Succeeded,
            "failed" => State::Failed,
            "canceled" => State::Canceled,
            _ => State::Queued,
        }
    }

    /// Whether the build has ended.
    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Canceled)
    }
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
    /// Branch.
    pub branch: String,
    /// Commit hash.
    pub rev: String,
    /// Builder name.
    pub builder: String,
    /// State.
    pub state: State,
    /// Attempts made (a lost buildlet gives one more).
    pub attempt: i64,
    /// RFC 3339 times.
    pub created: String,
    /// When it started running.
    pub started: Option<String>,
    /// When it ended.
    pub ended: Option<String>,
    /// The buildlet that ran it.
    pub buildlet: String,
    /// Commit author.
    pub author: String,
    /// Commit date.
    pub date: String,
    /// Commit title.
    pub desc: String,
}

/// The build database.
#[derive(Debug, Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS builds (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    branch TEXT NOT NULL,
    rev TEXT NOT NULL,
    builder TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    started TEXT,
    ended TEXT,
    buildlet TEXT NOT NULL DEFAULT '',
    author TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL DEFAULT '',
    desc TEXT NOT NULL DEFAULT '',
    log BLOB NOT NULL DEFAULT x''
);
CREATE INDEX IF NOT EXISTS builds_state ON builds (state, seq);
CREATE INDEX IF NOT EXISTS builds_commit ON builds (source, rev, builder, seq);
CREATE TABLE IF NOT EXISTS heads (
    source TEXT NOT NULL,
    branch TEXT NOT NULL,
    rev TEXT NOT NULL,
    PRIMARY KEY (source, branch)
);
";

const COLUMNS: &str = "id, seq, source, branch, rev, builder, state, attempt, created, started, ended, buildlet, author, date, desc";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Build> {
    Ok(Build {
        id: r.get(0)?,
        seq: r.get(1)?,
        source: r.get(2)?,
        branch: r.get(3)?,
        rev: r.get(4)?,
        builder: r.get(5)?,
        state: State::parse(&r.get::<_, String>(6)?),
        attempt: r.get(7)?,
        created: r.get(8)?,
        started: r.get(9)?,
        ended: r.get(10)?,
        buildlet: r.get(11)?,
        author: r.get(12)?,
        date: r.get(13)?,
        desc: r.get(14)?,
    })
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A new build id: `B` and nine random hex digits.
fn new_id() -> String {
    let mut b = [0u8; 5];
    getrandom::fill(&mut b).expect("OS randomness");
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("B{}", &hex[..9])
}

impl Db {
    /// Opens (creating) `path`. Builds left `running` by a previous process go back to the
    /// queue: their buildlets died with it.
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "UPDATE builds SET state = 'queued' WHERE state = 'running'",
            [],
        )?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let conn = self.conn.clone();
        let r = tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&guard)
        })
        .await?;
        Ok(r?)
    }

    /// Queues a build; returns it.
    pub async fn enqueue(
        &self,
        source: &str,
        branch: &str,
        commit: &crate::git::Commit,
        builder: &str,
    ) -> anyhow::Result<Build> {
        let (source, branch, builder, c) = (
            source.to_string(),
            branch.to_string(),
            builder.to_string(),
            commit.clone(),
        );
        let id = new_id();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO builds (id, seq, source, branch, rev, builder, state, created, author, date, desc) \
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM builds), ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9)",
                params![id, source, branch, c.hash, builder, now(), c.author, c.date, c.desc],
            )?;
            conn.query_row(&format!("SELECT {COLUMNS} FROM builds WHERE id = ?1"), [&id], row)
        })
        .await
    }

    /// One build.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Build>> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM builds WHERE id = ?1"),
                [&id],
                row,
            )
            .optional()
        })
        .await
    }

    /// Builds selected by `tail` (the SQL after `FROM builds`) with one parameter.
    async fn select(
        &self,
        tail: &'static str,
        param: impl rusqlite::ToSql + Send + 'static,
    ) -> anyhow::Result<Vec<Build>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM builds {tail}"))?;
            stmt.query_map([param], row)?.collect()
        })
        .await
    }

    /// Builds in `state`, oldest first.
    pub async fn in_state(&self, state: State) -> anyhow::Result<Vec<Build>> {
        self.select("WHERE state = ?1 ORDER BY seq", state.as_str())
            .await
    }

    /// The newest `limit` builds.
    pub async fn recent(&self, limit: i64) -> anyhow::Result<Vec<Build>> {
        self.select("ORDER BY seq DESC LIMIT ?1", limit).await
    }

    /// Marks a queued build running, counting an attempt. False if it was not queued (for
    /// example cancelled meanwhile).
    pub async fn start(&self, id: &str) -> anyhow::Result<bool> {
        let id = id.to_string();
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE builds SET state = 'running', started = COALESCE(started, ?2), attempt = attempt + 1 \
                 WHERE id = ?1 AND state = 'queued'",
                params![id, now()],
            )? == 1)
        })
        .await
    }

    /// Counts another attempt of a running build (after a lost buildlet).
    pub async fn retry_attempt(&self, id: &str) -> anyhow::Result<()> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.execute(
                "UPDATE builds SET attempt = attempt + 1 WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
        .await
    }

    /// Records which buildlet runs the build.
    pub async fn set_buildlet(&self, id: &str, buildlet: &str) -> anyhow::Result<()> {
        let (id, b) = (id.to_string(), buildlet.to_string());
        self.call(move |conn| {
            conn.execute(
                "UPDATE builds SET buildlet = ?2 WHERE id = ?1",
                params![id, b],
            )?;
            Ok(())
        })
        .await
    }

    /// Ends a build with its log, unless it already ended (a cancel wins). Returns whether
    /// this call recorded the result: a build gets exactly one.
    pub async fn finish(&self, id: &str, state: State, log: Vec<u8>) -> anyhow::Result<bool> {
        let id = id.to_string();
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE builds SET state = ?2, ended = ?3, log = ?4 \
                 WHERE id = ?1 AND state IN ('queued', 'running')",
                params![id, state.as_str(), now(), log],
            )? == 1)
        })
        .await
    }

    /// A stored log.
    pub async fn log(&self, id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row("SELECT log FROM builds WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
        })
        .await
    }

    /// The last head seen of a branch.
    pub async fn head(&self, source: &str, branch: &str) -> anyhow::Result<Option<String>> {
        let (s, b) = (source.to_string(), branch.to_string());
        self.call(move |conn| {
            conn.query_row(
                "SELECT rev FROM heads WHERE source = ?1 AND branch = ?2",
                params![s, b],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Records the head seen of a branch.
    pub async fn set_head(&self, source: &str, branch: &str, rev: &str) -> anyhow::Result<()> {
        let (s, b, r) = (source.to_string(), branch.to_string(), rev.to_string());
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO heads (source, branch, rev) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (source, branch) DO UPDATE SET rev = excluded.rev",
                params![s, b, r],
            )?;
            Ok(())
        })
        .await
    }
}
