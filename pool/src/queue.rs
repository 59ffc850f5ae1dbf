//! Per-host-type quota queues (spec `pool-and-coordinator.md` §3): who gets the next
//! buildlet, in upstream's priority order, and how much capacity is in use.
//!
//! Differences from upstream, each deliberate:
//! - **No head-of-line blocking.** Upstream pops only the head, so a cheap request waits
//!   behind an expensive one that does not fit. Here every waiter whose cost fits the free
//!   quota is granted, in priority order. To keep an expensive head from starving, once it
//!   has been passed over [`BYPASS_LIMIT`] times nothing more may pass it.
//! - **Release branches first among trybots** (upstream's rule 2, which never fires there
//!   because its helper compares the receiver's branch with itself).
//! - Waiting and holding are RAII: dropping a [`Waiter`] cancels it (returning quota that
//!   was granted but not yet taken), and dropping a [`Grant`] returns its quota.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use dashboard_types::BuildletWaitStatus;
use tokio::sync::{oneshot, watch};

/// How many times a waiter that does not fit may be passed over before it blocks others.
pub const BYPASS_LIMIT: u32 = 16;

/// Scheduling priority; lower is sooner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Release builds.
    Urgent = 0,
    /// Interactive (gomote) sessions.
    Interactive = 1,
    /// Trybots.
    Automated = 2,
    /// Post-submit builds.
    Batch = 3,
}

/// What is waiting for a buildlet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedItem {
    /// Host type wanted.
    pub host_type: String,
    /// Builder name (empty for gomote sessions).
    pub builder: String,
    /// A release build.
    pub is_release: bool,
    /// A gomote session.
    pub is_gomote: bool,
    /// A trybot run.
    pub is_try: bool,
    /// A test helper for a sharded build.
    pub is_helper: bool,
    /// Repo under test.
    pub repo: String,
    /// Go branch under test.
    pub branch: String,
    /// Newest commit time among the revisions under test, if known.
    pub commit_time: Option<SystemTime>,
    /// When the request was made.
    pub request_time: SystemTime,
    /// Commit author or gomote user.
    pub user: String,
}

impl SchedItem {
    /// A post-submit item for `builder` on `host_type`, requested now.
    pub fn new(host_type: impl Into<String>, builder: impl Into<String>) -> SchedItem {
        SchedItem {
            host_type: host_type.into(),
            builder: builder.into(),
            is_release: false,
            is_gomote: false,
            is_try: false,
            is_helper: false,
            repo: "go".into(),
            branch: "master".into(),
            commit_time: None,
            request_time: SystemTime::now(),
            user: String::new(),
        }
    }

    /// Upstream's priority: release, then gomote, then try, then everything else.
    pub fn priority(&self) -> Priority {
        if self.is_release {
            Priority::Urgent
        } else if self.is_gomote {
            Priority::Interactive
        } else if self.is_try {
            Priority::Automated
        } else {
            Priority::Batch
        }
    }

    /// The time an item is ordered by: its request time for gomote, try, or unknown commit
    /// time; its commit time otherwise.
    pub fn sort_time(&self) -> SystemTime {
        match self.commit_time {
            Some(t) if !self.is_gomote && !self.is_try => t,
            _ => self.request_time,
        }
    }

    /// Whether `self` is served before `other` (ties are broken by arrival by the queue).
    pub fn before(&self, other: &SchedItem) -> bool {
        let (p, q) = (self.priority(), other.priority());
        if p != q {
            return p < q;
        }
        if p == Priority::Automated {
            let (a, b) = (
                is_release_branch(&self.branch),
                is_release_branch(&other.branch),
            );
            if a != b {
                return a;
            }
        }
        if p == Priority::Batch {
            // Post-submit: newest commit first, so the dashboard's top rows fill first.
            return self.sort_time() > other.sort_time();
        }
        self.sort_time() < other.sort_time()
    }
}

fn is_release_branch(b: &str) -> bool {
    b.starts_with("release-branch.")
}

struct Entry {
    seq: u64,
    item: SchedItem,
    cost: u64,
    bypassed: u32,
    wake: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    limit: u64,
    used: u64,
    untracked: u64,
    next_seq: u64,
    /// Waiting entries, kept in service order.
    waiting: Vec<Entry>,
}

impl State {
    fn free(&self) -> u64 {
        self.limit.saturating_sub(self.used + self.untracked)
    }

    fn insert(&mut self, e: Entry) {
        // `waiting` is sorted by service order; equal items keep arrival order.
        let at = self.waiting.partition_point(|w| !e.item.before(&w.item));
        self.waiting.insert(at, e);
    }

    /// Grants every waiter that fits, in order, in one pass. A waiter that does not fit
    /// is counted as passed over each time one behind it is granted; once one has been
    /// passed over `BYPASS_LIMIT` times, nothing behind it is granted until it is served.
    fn pop(&mut self) {
        let mut i = 0;
        // Indexes (into `waiting`) of entries passed so far in this pass.
        let mut blocked: Vec<usize> = Vec::new();
        while i < self.waiting.len() {
            let free = self.free();
            if free == 0 {
                return; // nothing can be granted; the common case when the quota is full
            }
            let cost = self.waiting[i].cost;
            if cost > free {
                if self.waiting[i].bypassed >= BYPASS_LIMIT {
                    return;
                }
                blocked.push(i);
                i += 1;
                continue;
            }
            for &b in &blocked {
                self.waiting[b].bypassed += 1;
            }
            let mut e = self.waiting.remove(i);
            self.used += cost;
            if let Some(w) = e.wake.take() {
                // A waiter that is already gone gets its quota back in its Drop.
                let _ = w.send(());
            }
            // Entries before `i` keep their indexes; a passed-over one may now be at its
            // limit, which stops this pass.
            if blocked
                .iter()
                .any(|&b| self.waiting[b].bypassed >= BYPASS_LIMIT)
            {
                return;
            }
        }
    }
}

/// A quota with a priority queue of waiters. Cheap to clone.
#[derive(Clone, Default)]
pub struct Quota {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.stats();
        f.debug_struct("Quota")
            .field("used", &s.used)
            .field("limit", &s.limit)
            .field("waiting", &s.waiting.len())
            .finish()
    }
}

/// A snapshot of a quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaStats {
    /// Granted and not returned.
    pub used: u64,
    /// Capacity.
    pub limit: u64,
    /// Used by things outside this queue.
    pub untracked: u64,
    /// Waiting items with their costs, in service order.
    pub waiting: Vec<(SchedItem, u64)>,
}

impl Quota {
    /// A quota with this capacity (upstream starts at 0: everything waits for a limit).
    pub fn new(limit: u64) -> Quota {
        let q = Quota::default();
        q.lock().limit = limit;
        q
    }

    // The std Mutex is held only for bookkeeping, never across an .await.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the queue. Await [`Waiter::granted`] for the quota; drop the waiter to leave.
    pub fn enqueue(&self, cost: u64, item: SchedItem) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let mut s = self.lock();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.insert(Entry {
            seq,
            item,
            cost,
            bypassed: 0,
            wake: Some(tx),
        });
        s.pop();
        Waiter {
            quota: self.clone(),
            seq,
            cost,
            rx: Some(rx),
            taken: false,
        }
    }

    /// Sets the capacity.
    pub fn set_limit(&self, limit: u64) {
        let mut s = self.lock();
        s.limit = limit;
        s.pop();
    }

    /// Sets how much capacity is used outside this queue.
    pub fn set_untracked(&self, n: u64) {
        let mut s = self.lock();
        s.untracked = n;
        s.pop();
    }

    /// Replaces both usage and capacity (the reverse pool recomputes them from machines).
    pub fn set_used_and_limit(&self, used: u64, limit: u64) {
        let mut s = self.lock();
        s.used = used;
        s.limit = limit;
        s.pop();
    }

    /// Returns `n` units of quota.
    pub fn give_back(&self, n: u64) {
        let mut s = self.lock();
        s.used = s.used.saturating_sub(n);
        s.pop();
    }

    /// A snapshot.
    pub fn stats(&self) -> QuotaStats {
        let s = self.lock();
        QuotaStats {
            used: s.used,
            limit: s.limit,
            untracked: s.untracked,
            waiting: s.waiting.iter().map(|e| (e.item.clone(), e.cost)).collect(),
        }
    }
}

/// A place in a [`Quota`]'s queue.
#[derive(Debug)]
pub struct Waiter {
    quota: Quota,
    seq: u64,
    cost: u64,
    rx: Option<oneshot::Receiver<()>>,
    taken: bool,
}

impl Waiter {
    /// Waiters ordered before this one (upstream's `BuildletWaitStatus.ahead`); 0 once granted.
    pub fn ahead(&self) -> usize {
        self.position().ahead()
    }

    /// A probe of this waiter's position that stays usable while the waiter is awaited.
    pub fn position(&self) -> Position {
        Position {
            quota: self.quota.clone(),
            seq: self.seq,
        }
    }

    /// The position report sent to waiting clients.
    pub fn status(&self) -> dashboard_types::BuildletWaitStatus {
        dashboard_types::BuildletWaitStatus {
            message: String::new(),
            ahead: self.ahead() as i64,
        }
    }

    /// Waits for the quota, sending this waiter's position to `progress` (if any) now and
    /// every second until granted. Cancel by dropping the future.
    pub async fn granted_reporting(
        self,
        progress: Option<&watch::Sender<BuildletWaitStatus>>,
    ) -> Grant {
        let position = self.position();
        let mut granted = std::pin::pin!(self.granted());
        loop {
            if let Some(p) = progress {
                let _ = p.send(BuildletWaitStatus {
                    message: String::new(),
                    ahead: position.ahead() as i64,
                });
            }
            tokio::select! {
                g = &mut granted => return g,
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// Waits for the quota. Cancel by dropping the future (or the waiter).
    pub async fn granted(mut self) -> Grant {
        if let Some(rx) = self.rx.as_mut() {
            // The sender lives in the queue until the grant; it is never dropped unsent.
            let _ = rx.await;
        }
        self.taken = true;
        Grant {
            quota: self.quota.clone(),
            cost: self.cost,
            returned: false,
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut s = self.quota.lock();
        if let Some(i) = s.waiting.iter().position(|e| e.seq == self.seq) {
            s.waiting.remove(i);
        } else {
            // Granted but never taken: give it back.
            s.used = s.used.saturating_sub(self.cost);
        }
        s.pop();
    }
}

/// Reads a waiter's position in its queue.
#[derive(Debug, Clone)]
pub struct Position {
    quota: Quota,
    seq: u64,
}

impl Position {
    /// Waiters ordered before it; 0 once granted or gone.
    pub fn ahead(&self) -> usize {
        let s = self.quota.lock();
        s.waiting
            .iter()
            .position(|e| e.seq == self.seq)
            .unwrap_or(0)
    }
}

/// Quota held; returned when dropped (or kept by [`Grant::forget`]).
#[derive(Debug)]
pub struct Grant {
    quota: Quota,
    cost: u64,
    returned: bool,
}

impl Grant {
    /// Keeps the quota accounted as used after this grant is gone (upstream's reverse pool
    /// never returns it: it recomputes usage from the machines instead).
    pub fn forget(mut self) {
        self.returned = true;
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if !self.returned {
            self.quota.give_back(self.cost);
        }
    }
}
