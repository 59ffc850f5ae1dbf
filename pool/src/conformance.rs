//! The suite every [`BuildletPool`] passes (the object_store pattern): plain async functions
//! over `&dyn BuildletPool`, and [`run_all`] calling every one, so a new case reaches every
//! provider. Failed assertions say what they found.

use std::time::Duration;

use buildlet_proto::api::{ExecRequest, GoFileMode};

use crate::{BuildletPool, Error, LeaseRequest, SchedItem};

/// What the pool under test offers.
#[derive(Debug, Clone)]
pub struct Caps {
    /// A host type with machines.
    pub host_type: String,
    /// How many machines of it are connected (for an ephemeral pool: how many instances
    /// its quota allows at once).
    pub machines: usize,
    /// Machines are made per lease and removed after it (containers, pods): a lease never
    /// gets a machine an earlier lease had, and none is ever idle.
    pub ephemeral: bool,
}

impl Caps {
    /// A pool of `machines` long-lived machines of `host_type`.
    pub fn fixed(host_type: impl Into<String>, machines: usize) -> Caps {
        Caps {
            host_type: host_type.into(),
            machines,
            ephemeral: false,
        }
    }

    /// A pool making up to `limit` machines of `host_type` at once, one per lease.
    pub fn ephemeral(host_type: impl Into<String>, limit: usize) -> Caps {
        Caps {
            host_type: host_type.into(),
            machines: limit,
            ephemeral: true,
        }
    }

    /// Machines idle when no lease is held.
    fn idle_when_unused(&self) -> i64 {
        if self.ephemeral {
            0
        } else {
            self.machines as i64
        }
    }
}

/// Runs every case.
pub async fn run_all(pool: &dyn BuildletPool, caps: &Caps) {
    lease_runs_commands(pool, caps).await;
    work_dir_is_wiped_between_leases(pool, caps).await;
    lease_then_drop_returns_buildlet(pool, caps).await;
    cancelled_waiter_gets_nothing(pool, caps).await;
    waiters_report_their_position(pool, caps).await;
    destroyed_lease_leaves_the_pool(pool, caps).await;
    unknown_host_type_is_an_error(pool).await;
}

fn req(caps: &Caps, builder: &str) -> LeaseRequest {
    LeaseRequest::new(SchedItem::new(caps.host_type.clone(), builder))
}

/// Holds the lease future for at most `d`; `None` if it did not complete.
async fn within<T>(d: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(d, f).await.ok()
}

/// A leased buildlet runs commands.
pub async fn lease_runs_commands(pool: &dyn BuildletPool, caps: &Caps) {
    let lease = pool.lease(req(caps, "run")).await.expect("lease");
    assert_eq!(lease.host_type(), caps.host_type);
    runs_true(lease.client()).await;
}

/// Asserts that the buildlet runs `/bin/true`.
pub async fn runs_true(client: &dyn buildlet_proto::BuildletClient) {
    let st = client
        .exec(
            ExecRequest {
                cmd: "/bin/true".into(),
                ..Default::default()
            },
            Box::new(tokio::io::sink()),
        )
        .await
        .expect("exec");
    assert!(st.success(), "exec /bin/true: {st:?}");
}

/// A file written under one lease is gone under the next lease of any machine.
pub async fn work_dir_is_wiped_between_leases(pool: &dyn BuildletPool, caps: &Caps) {
    let mut names = Vec::new();
    for _ in 0..caps.machines {
        let l = pool.lease(req(caps, "dirty")).await.expect("lease");
        l.client()
            .put("leftover", GoFileMode(0o644), "x".into())
            .await
            .expect("put");
        names.push(l);
    }
    drop(names);
    for _ in 0..caps.machines {
        let l = pool.lease(req(caps, "clean")).await.expect("lease");
        let ls = l
            .client()
            .list_dir(".", false, false, vec![])
            .await
            .expect("ls");
        assert!(
            ls.iter().all(|e| e.name != "leftover"),
            "work dir of {} not wiped: {ls:?}",
            l.name()
        );
    }
}

/// With every machine leased the next lease waits, and gets a machine when one is dropped.
pub async fn lease_then_drop_returns_buildlet(pool: &dyn BuildletPool, caps: &Caps) {
    let mut held = Vec::new();
    for _ in 0..caps.machines {
        held.push(pool.lease(req(caps, "hold")).await.expect("lease"));
    }
    let h = &pool.status().host_types[&caps.host_type];
    assert_eq!(
        (h.busy, h.idle),
        (caps.machines as i64, 0),
        "status while all leased: {h:?}"
    );
    assert!(
        within(Duration::from_millis(300), pool.lease(req(caps, "extra")))
            .await
            .is_none(),
        "lease beyond capacity"
    );
    let freed = held.pop().expect("one lease").name().to_owned();
    let next = within(Duration::from_secs(30), pool.lease(req(caps, "next")))
        .await
        .expect("no buildlet after a drop")
        .expect("lease");
    if caps.ephemeral {
        assert_ne!(
            next.name(),
            freed,
            "an ephemeral machine was handed out twice"
        );
    } else {
        assert_eq!(next.name(), freed, "the freed machine is the only idle one");
    }
    drop(held);
    drop(next);
    let h = &pool.status().host_types[&caps.host_type];
    assert_eq!(
        (h.busy, h.waiters),
        (0, 0),
        "status after all leases dropped: {h:?}"
    );
}

/// A waiter that gives up gets nothing and leaves no trace.
pub async fn cancelled_waiter_gets_nothing(pool: &dyn BuildletPool, caps: &Caps) {
    let mut held = Vec::new();
    for _ in 0..caps.machines {
        held.push(pool.lease(req(caps, "hold")).await.expect("lease"));
    }
    assert!(
        within(
            Duration::from_millis(200),
            pool.lease(req(caps, "impatient"))
        )
        .await
        .is_none()
    );
    assert_eq!(
        pool.status().host_types[&caps.host_type].waiters,
        0,
        "a cancelled waiter stayed queued"
    );
    drop(held);
    let h = &pool.status().host_types[&caps.host_type];
    assert_eq!(
        (h.idle, h.busy),
        (caps.idle_when_unused(), 0),
        "a machine went to the cancelled waiter: {h:?}"
    );
}

/// A waiter learns how many are ahead of it.
pub async fn waiters_report_their_position(pool: &dyn BuildletPool, caps: &Caps) {
    let mut held = Vec::new();
    for _ in 0..caps.machines {
        held.push(pool.lease(req(caps, "hold")).await.expect("lease"));
    }
    // Trybot requests are first come, first served (post-submit work is newest first).
    let mut first_req = req(caps, "first");
    first_req.item.is_try = true;
    let first = pool.lease(first_req);
    let (tx, mut rx) = tokio::sync::watch::channel(Default::default());
    let mut second_req = req(caps, "second");
    second_req.item.is_try = true;
    second_req.progress = Some(tx);
    let second = pool.lease(second_req);
    let (mut first, mut second) = (Box::pin(first), Box::pin(second));
    // Poll both into the queue, in order.
    assert!(
        within(Duration::from_millis(100), &mut first)
            .await
            .is_none()
    );
    assert!(
        within(Duration::from_millis(1500), &mut second)
            .await
            .is_none()
    );
    let _ = rx.changed().await;
    assert_eq!(rx.borrow().ahead, 1, "second waiter's position");
    drop(held.pop());
    let got = within(Duration::from_secs(30), &mut first)
        .await
        .expect("first waiter served")
        .expect("lease");
    drop(got);
    drop(
        within(Duration::from_secs(30), &mut second)
            .await
            .expect("second waiter served"),
    );
}

/// A destroyed lease's machine is not handed out again (a provider may start a
/// successor under another name).
pub async fn destroyed_lease_leaves_the_pool(pool: &dyn BuildletPool, caps: &Caps) {
    if caps.machines < 2 {
        return; // the pool would be empty afterwards
    }
    let l = pool.lease(req(caps, "doomed")).await.expect("lease");
    let name = l.name().to_owned();
    l.destroy();
    let st = pool.status();
    let h = &st.host_types[&caps.host_type];
    assert!(
        !h.machines.contains_key(&name),
        "destroyed machine {name} still listed"
    );
}

/// Asking for a host type the pool does not serve fails at once.
pub async fn unknown_host_type_is_an_error(pool: &dyn BuildletPool) {
    let r = within(
        Duration::from_secs(5),
        pool.lease(LeaseRequest::new(SchedItem::new("host-nope", "x"))),
    )
    .await;
    assert!(
        matches!(r, Some(Err(Error::UnknownHostType(_)))),
        "got {r:?}"
    );
}
