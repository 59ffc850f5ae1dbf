//! The embedded [`BuildStore`]: SQLite in the data directory (WAL), one connection on a
//! blocking thread per call.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::{
    AccessStore, AuditEntry, Build, BuildQuery, BuildStore, Commit, Detail, GridPage, NewBuilds,
    Result, Step, StoreError, TokenRecord, UnitResult,
};
use crate::model::{Event, State};

/// Builds in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

/// The schema; `user_version` counts the migrations applied.
const MIGRATIONS: &[&str] = &[
    // 1: builds, heads.
    "CREATE TABLE IF NOT EXISTS builds (
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
    );",
    // 2: steps with their durations.
    "CREATE TABLE IF NOT EXISTS steps (
        build TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        started TEXT NOT NULL,
        millis INTEGER NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (build, attempt, idx)
    );",
    // 3: test units, and their durations per builder for the next build's order.
    "CREATE TABLE IF NOT EXISTS units (
        build TEXT NOT NULL,
        builder TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        name TEXT NOT NULL,
        result TEXT NOT NULL,
        millis INTEGER NOT NULL,
        buildlet TEXT NOT NULL,
        output BLOB NOT NULL,
        PRIMARY KEY (build, attempt, name)
    );
    CREATE INDEX IF NOT EXISTS units_builder ON units (builder, result);",
    // 4: sub-repo builds name the revision they are built against.
    "ALTER TABLE builds ADD COLUMN go_rev TEXT NOT NULL DEFAULT '';",
    // 5: API tokens (their hashes) and the audit log of writes.
    "CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        roles TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        revoked TEXT
    );
    CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        who TEXT NOT NULL,
        roles TEXT NOT NULL,
        route TEXT NOT NULL,
        target TEXT NOT NULL,
        status INTEGER NOT NULL,
        client TEXT NOT NULL
    );",
];

const COLUMNS: &str = "id, seq, source, branch, rev, builder, state, attempt, created, started, ended, buildlet, author, date, desc, go_rev";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Build> {
    let state: String = r.get(6)?;
    Ok(Build {
        id: r.get(0)?,
        seq: r.get(1)?,
        source: r.get(2)?,
        branch: r.get(3)?,
        commit: Commit {
            hash: r.get(4)?,
            author: r.get(12)?,
            date: r.get(13)?,
            desc: r.get(14)?,
        },
        builder: r.get(5)?,
        state: State::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown build state {state:?}").into(),
            )
        })?,
        attempt: r.get(7)?,
        created: r.get(8)?,
        started: r.get(9)?,
        ended: r.get(10)?,
        buildlet: r.get(11)?,
        go_rev: r.get(15)?,
    })
}

/// The current time as stored (RFC 3339, UTC, milliseconds).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new build id: `B` and nine random hex digits.
fn new_id() -> String {
    format!("B{}", &crate::hex::random_hex(5)[..9])
}

/// `?N, ?N+1, …` for the states an event applies in, and the states as text.
fn state_list(event: Event, first: usize) -> (String, Vec<&'static str>) {
    let states = event.from_states();
    let marks = (0..states.len())
        .map(|i| format!("?{}", first + i))
        .collect::<Vec<_>>()
        .join(", ");
    (marks, states.iter().map(|s| s.as_str()).collect())
}

impl SqliteStore {
    /// Opens (creating and migrating) `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        let applied: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(applied) {
            conn.execute_batch(m).map_err(err)?;
            conn.pragma_update(None, "user_version", i + 1)
                .map_err(err)?;
        }
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in a blocking thread.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError(e.to_string()))?
        .map_err(err)
    }

    async fn select(
        &self,
        tail: &'static str,
        param: impl rusqlite::ToSql + Send + 'static,
    ) -> Result<Vec<Build>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM builds {tail}"))?;
            stmt.query_map([param], row)?.collect()
        })
        .await
    }
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError(e.to_string())
}

#[async_trait]
impl BuildStore for SqliteStore {
    async fn enqueue_commits(
        &self,
        builds: &[NewBuilds<'_>],
        head: Option<(&str, &str, &str)>,
    ) -> Result<Vec<Build>> {
        let owned: Vec<(String, String, Commit, Vec<String>, String)> = builds
            .iter()
            .map(|b| {
                (
                    b.source.to_owned(),
                    b.branch.to_owned(),
                    b.commit.clone(),
                    b.builders.to_vec(),
                    b.go_rev.to_owned(),
                )
            })
            .collect();
        let head = head.map(|(s, b, r)| (s.to_owned(), b.to_owned(), r.to_owned()));
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let mut ids = Vec::new();
            for (source, branch, c, builders, go_rev) in &owned {
                for builder in builders {
                    let id = new_id();
                    tx.execute(
                        "INSERT INTO builds (id, seq, source, branch, rev, builder, state, created, author, date, desc, go_rev) \
                         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM builds), ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10)",
                        params![id, source, branch, c.hash, builder, now(), c.author, c.date, c.desc, go_rev],
                    )?;
                    ids.push(id);
                }
            }
            if let Some((s, b, r)) = &head {
                tx.execute(
                    "INSERT INTO heads (source, branch, rev) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (source, branch) DO UPDATE SET rev = excluded.rev",
                    params![s, b, r],
                )?;
            }
            let mut out = Vec::with_capacity(ids.len());
            for id in &ids {
                out.push(tx.query_row(
                    &format!("SELECT {COLUMNS} FROM builds WHERE id = ?1"),
                    [id],
                    row,
                )?);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Build>> {
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

    async fn in_state(&self, state: State) -> Result<Vec<Build>> {
        self.select("WHERE state = ?1 ORDER BY seq", state.as_str())
            .await
    }

    async fn recent(&self, limit: i64) -> Result<Vec<Build>> {
        self.select("ORDER BY seq DESC LIMIT ?1", limit).await
    }

    async fn search(&self, q: &BuildQuery) -> Result<Vec<Build>> {
        let q = q.clone();
        self.call(move |conn| {
            // Each condition is `?N IS NULL OR …`: one statement, cached, for any
            // combination. A revision prefix matches as a range, using the index.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM builds
                 WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR builder = ?2)
                   AND (?3 IS NULL OR (rev >= ?3 AND rev < ?3 || 'g'))
                   AND (?4 IS NULL OR state = ?4)
                 ORDER BY seq DESC LIMIT ?5"
            ))?;
            stmt.query_map(
                params![
                    q.source,
                    q.builder,
                    q.rev.map(|r| r.to_ascii_lowercase()),
                    q.state.map(|s| s.as_str()),
                    q.limit
                ],
                row,
            )?
            .collect()
        })
        .await
    }

    async fn grid(&self, offset: i64, limit: i64) -> Result<GridPage> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT source, rev, MAX(seq) AS newest FROM builds GROUP BY source, rev \
                 ORDER BY newest DESC LIMIT ?1 OFFSET ?2",
            )?;
            let keys: Vec<(String, String)> = stmt
                .query_map(params![limit + 1, offset], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let more = keys.len() as i64 > limit;
            let mut by_commit = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM builds WHERE source = ?1 AND rev = ?2 ORDER BY seq DESC"
            ))?;
            let mut commits = Vec::new();
            for (source, rev) in keys.into_iter().take(limit.max(0) as usize) {
                let builds: Vec<Build> = by_commit
                    .query_map(params![source, rev], row)?
                    .collect::<rusqlite::Result<_>>()?;
                let Some(first) = builds.first() else {
                    continue;
                };
                // The branch of the newest build that names one.
                let branch = builds
                    .iter()
                    .find(|b| !b.branch.is_empty())
                    .map(|b| b.branch.clone())
                    .unwrap_or_default();
                let commit = first.commit.clone();
                commits.push((source, branch, commit, builds));
            }
            Ok(GridPage { commits, more })
        })
        .await
    }

    async fn apply(&self, id: &str, event: Event, detail: Detail) -> Result<bool> {
        super::check_event(event)?;
        let id = id.to_string();
        self.call(move |conn| {
            // ?1 id, ?2 new state, ?3 buildlet, ?4 now, ?5 log, ?6… the source states.
            // SQLite counts parameters up to the highest number, so unused ones may be bound.
            let set = match event {
                Event::Claim => "attempt = attempt + 1",
                Event::Retry => "attempt = attempt + 1, buildlet = ''",
                Event::Leased => "buildlet = ?3, started = COALESCE(started, ?4)",
                Event::Requeue => "buildlet = ''",
                Event::Finish(_) | Event::Cancel => "ended = ?4, log = ?5",
            };
            let (marks, states) = state_list(event, 6);
            let sql =
                format!("UPDATE builds SET state = ?2, {set} WHERE id = ?1 AND state IN ({marks})");
            let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
                Box::new(id),
                Box::new(event.to_state().as_str()),
                Box::new(detail.buildlet),
                Box::new(now()),
                Box::new(detail.log),
            ];
            values.extend(
                states
                    .into_iter()
                    .map(|s| Box::new(s) as Box<dyn rusqlite::ToSql>),
            );
            Ok(conn.execute(&sql, params_from_iter(values.iter().map(|v| &**v)))? == 1)
        })
        .await
    }

    async fn add_step(&self, id: &str, step: &Step) -> Result<()> {
        let (id, s) = (id.to_string(), step.clone());
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO steps (build, attempt, idx, name, started, millis, result) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id, s.attempt, s.index, s.name, s.started, s.millis, s.result
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn steps(&self, id: &str) -> Result<Vec<Step>> {
        let id = id.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT attempt, idx, name, started, millis, result FROM steps \
                 WHERE build = ?1 ORDER BY attempt, idx",
            )?;
            stmt.query_map([id], |r| {
                Ok(Step {
                    attempt: r.get(0)?,
                    index: r.get(1)?,
                    name: r.get(2)?,
                    started: r.get(3)?,
                    millis: r.get(4)?,
                    result: r.get(5)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn add_unit(&self, id: &str, unit: &UnitResult) -> Result<()> {
        let (id, u) = (id.to_string(), unit.clone());
        self.call(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO units (build, builder, attempt, name, result, millis, buildlet, output) \
                 SELECT id, builder, ?2, ?3, ?4, ?5, ?6, ?7 FROM builds WHERE id = ?1",
                params![id, u.attempt, u.name, u.result, u.millis, u.buildlet, u.output],
            )?;
            Ok(())
        })
        .await
    }

    async fn units(&self, id: &str) -> Result<Vec<UnitResult>> {
        let id = id.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT attempt, name, result, millis, buildlet, output FROM units \
                 WHERE build = ?1 ORDER BY millis DESC, name",
            )?;
            stmt.query_map([id], |r| {
                Ok(UnitResult {
                    attempt: r.get(0)?,
                    name: r.get(1)?,
                    result: r.get(2)?,
                    millis: r.get(3)?,
                    buildlet: r.get(4)?,
                    output: r.get(5)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn unit_history(&self, builder: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        let builder = builder.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, millis FROM units WHERE builder = ?1 AND result = 'ok' \
                 ORDER BY rowid DESC LIMIT ?2",
            )?;
            stmt.query_map(params![builder, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    async fn log(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let id = id.to_string();
        self.call(move |conn| {
            conn.query_row("SELECT log FROM builds WHERE id = ?1", [&id], |r| r.get(0))
                .optional()
        })
        .await
    }

    async fn latest(&self, source: &str, rev: &str, builder: &str) -> Result<Option<Build>> {
        let key = [source.to_string(), rev.to_string(), builder.to_string()];
        self.call(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {COLUMNS} FROM builds WHERE source = ?1 AND rev = ?2 AND builder = ?3 \
                     ORDER BY seq DESC LIMIT 1"
                ),
                params_from_iter(key.iter()),
                row,
            )
            .optional()
        })
        .await
    }

    async fn head(&self, source: &str, branch: &str) -> Result<Option<String>> {
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

    async fn requeue_orphans(&self) -> Result<u64> {
        self.call(move |conn| {
            let (marks, states) = state_list(Event::Requeue, 1);
            Ok(conn.execute(
                &format!(
                    "UPDATE builds SET state = 'queued', buildlet = '' WHERE state IN ({marks})"
                ),
                params_from_iter(states),
            )? as u64)
        })
        .await
    }
}

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let roles: String = r.get(2)?;
    Ok(TokenRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        roles: roles
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        hash: r.get(3)?,
        created: r.get(4)?,
        revoked: r.get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, roles, hash, created, revoked";

#[async_trait]
impl AccessStore for SqliteStore {
    async fn add_token(&self, t: &TokenRecord) -> Result<()> {
        let t = t.clone();
        let name = t.name.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO tokens (id, name, roles, hash, created, revoked) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.id, t.name, t.roles.join(","), t.hash, t.created, t.revoked],
            )
        })
        .await
        .map_err(|e| {
            if e.0.contains("UNIQUE") {
                StoreError(format!("a token named {name:?} exists already"))
            } else {
                e
            }
        })?;
        Ok(())
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created, id"
            ))?;
            stmt.query_map([], token_row)?.collect()
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                [hash],
                token_row,
            )
            .optional()
        })
        .await
    }

    async fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?1"),
                [id],
                token_row,
            )
            .optional()
        })
        .await
    }

    async fn revoke_token(&self, name_or_id: &str) -> Result<bool> {
        let key = name_or_id.to_owned();
        self.call(move |conn| {
            Ok(conn.execute(
                "UPDATE tokens SET revoked = ?1 WHERE (name = ?2 OR id = ?2) AND revoked IS NULL",
                params![now(), key],
            )? > 0)
        })
        .await
    }

    async fn add_audit(&self, e: &AuditEntry) -> Result<()> {
        let e = e.clone();
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO audit (time, who, roles, route, target, status, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![e.time, e.who, e.roles, e.route, e.target, e.status, e.client],
            )
        })
        .await?;
        Ok(())
    }

    async fn audit(&self, before: Option<i64>, limit: i64) -> Result<Vec<AuditEntry>> {
        let before = before.unwrap_or(i64::MAX);
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, time, who, roles, route, target, status, client FROM audit
                 WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            stmt.query_map(params![before, limit], |r| {
                Ok(AuditEntry {
                    seq: r.get(0)?,
                    time: r.get(1)?,
                    who: r.get(2)?,
                    roles: r.get(3)?,
                    route: r.get(4)?,
                    target: r.get(5)?,
                    status: r.get(6)?,
                    client: r.get(7)?,
                })
            })?
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("builds.db")).unwrap();
        crate::store::conformance::run_all(&store).await;
        crate::store::conformance::access(&store).await;
    }

    #[tokio::test]
    async fn reopening_keeps_builds_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("builds.db");
        let store = SqliteStore::open(&path).unwrap();
        let c = Commit {
            hash: "a".repeat(40),
            ..Commit::default()
        };
        let b = store
            .enqueue_commits(
                &[NewBuilds {
                    source: "s",
                    branch: "main",
                    commit: &c,
                    builders: &["x".into()],
                    go_rev: "",
                }],
                None,
            )
            .await
            .unwrap();
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.get(&b[0].id).await.unwrap().unwrap().builder, "x");
    }
}
