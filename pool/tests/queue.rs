//! The scheduler queue: upstream's ordering, and the improvements (no head-of-line
//! blocking with a starvation guard, RAII cancellation and return).

use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use pool::queue::{BYPASS_LIMIT, Grant, Priority, Quota, SchedItem, Waiter};
use proptest::prelude::*;

fn item(name: &str) -> SchedItem {
    SchedItem::new("host-linux-amd64-x", name)
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn grant_now(w: Waiter) -> Option<Grant> {
    w.granted().now_or_never()
}

#[test]
fn priorities_follow_upstream() {
    let mut release = item("r");
    release.is_release = true;
    let mut gomote = item("g");
    gomote.is_gomote = true;
    let mut try_ = item("t");
    try_.is_try = true;
    let post = item("p");
    assert_eq!(
        [
            release.priority(),
            gomote.priority(),
            try_.priority(),
            post.priority()
        ],
        [
            Priority::Urgent,
            Priority::Interactive,
            Priority::Automated,
            Priority::Batch
        ]
    );
    assert!(release.before(&gomote) && gomote.before(&try_) && try_.before(&post));
}

#[test]
fn post_submit_is_newest_commit_first_and_others_oldest_first() {
    let (mut old, mut new) = (item("old"), item("new"));
    old.commit_time = Some(at(100));
    new.commit_time = Some(at(200));
    assert!(new.before(&old) && !old.before(&new));
    let (mut t1, mut t2) = (item("t1"), item("t2"));
    t1.is_try = true;
    t2.is_try = true;
    t1.request_time = at(10);
    t2.request_time = at(20);
    assert!(t1.before(&t2));
    // Deliberate fix of upstream's rule 2: release-branch trybots first.
    t2.branch = "release-branch.go1.22".into();
    assert!(t2.before(&t1));
}

#[test]
fn nothing_is_granted_before_a_limit_is_set() {
    let q = Quota::new(0);
    let w = q.enqueue(1, item("a"));
    assert_eq!(w.ahead(), 0);
    assert_eq!(q.stats().waiting.len(), 1);
    q.set_limit(1);
    let g = grant_now(w).expect("granted once a limit exists");
    assert_eq!(q.stats().used, 1);
    drop(g);
}

#[test]
fn queue_order_and_positions() {
    let q = Quota::new(0);
    let mut a = item("a");
    a.commit_time = Some(at(1));
    let mut b = item("b");
    b.commit_time = Some(at(2));
    let mut t = item("t");
    t.is_try = true;
    let wa = q.enqueue(1, a);
    let wb = q.enqueue(1, b);
    let wt = q.enqueue(1, t);
    // try first, then the newer post-submit commit, then the older one.
    assert_eq!((wt.ahead(), wb.ahead(), wa.ahead()), (0, 1, 2));
    assert_eq!(wa.status().ahead, 2);
    q.set_limit(1);
    let gt = grant_now(wt).expect("try granted first");
    assert!(
        q.stats()
            .waiting
            .iter()
            .map(|(i, _)| i.builder.as_str())
            .eq(["b", "a"])
    );
    drop(gt);
    let gb = grant_now(wb).expect("b granted after the try's quota came back");
    assert_eq!(wa.ahead(), 0);
    drop(gb);
    assert!(grant_now(wa).is_some());
}

#[test]
fn a_request_that_fits_is_not_stuck_behind_one_that_does_not() {
    let q = Quota::new(2);
    let mut big = item("big");
    big.is_try = true; // ahead in priority
    let wbig = q.enqueue(3, big);
    let wsmall = q.enqueue(1, item("small"));
    assert_eq!(wbig.ahead(), 0);
    let g = grant_now(wsmall).expect("small request granted past the big head");
    assert_eq!(q.stats().used, 1);
    drop(g);
    q.set_limit(3);
    assert!(grant_now(wbig).is_some());
}

#[test]
fn a_passed_over_head_eventually_blocks_others() {
    let q = Quota::new(2);
    let held = grant_now(q.enqueue(1, item("first"))).unwrap(); // 1 of 2 free: big won't fit
    let mut big = item("big");
    big.is_try = true;
    let wbig = q.enqueue(2, big);
    let mut granted = 0;
    for i in 0..BYPASS_LIMIT + 5 {
        let w = q.enqueue(1, item(&format!("s{i}")));
        match grant_now(w) {
            Some(g) => {
                granted += 1;
                drop(g);
            }
            None => break,
        }
    }
    assert_eq!(
        granted, BYPASS_LIMIT,
        "small requests may pass the head only so often"
    );
    drop(held);
    assert!(
        grant_now(wbig).is_some(),
        "the head is served once quota frees up"
    );
}

#[test]
fn dropping_a_waiter_leaves_the_queue_and_returns_untaken_quota() {
    let q = Quota::new(1);
    let held = grant_now(q.enqueue(1, item("held"))).unwrap();
    let w = q.enqueue(1, item("w"));
    assert_eq!(q.stats().waiting.len(), 1);
    drop(w);
    assert!(q.stats().waiting.is_empty());
    // Granted while nobody was looking, then dropped: the quota comes back.
    let w2 = q.enqueue(1, item("w2"));
    drop(held);
    assert_eq!(q.stats().used, 1);
    drop(w2);
    assert_eq!(q.stats().used, 0);
    // A forgotten grant stays accounted (the reverse pool recomputes usage itself).
    grant_now(q.enqueue(1, item("f"))).unwrap().forget();
    assert_eq!(q.stats().used, 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiting_task_wakes_when_quota_returns() {
    let q = Quota::new(1);
    let held = grant_now(q.enqueue(1, item("held"))).unwrap();
    let w = q.enqueue(1, item("next"));
    let task = tokio::spawn(w.granted());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!task.is_finished());
    drop(held);
    let g = tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.stats().used, 1);
    drop(g);
    assert_eq!(q.stats().used, 0);
}

proptest! {
    /// Under any sequence of joins, grants, drops and limit changes, `used` is exactly the
    /// cost of the grants alive, and never more than the limit allowed when they were made.
    #[test]
    fn usage_matches_live_grants(ops in prop::collection::vec((0u8..5, 1u64..4, any::<bool>()), 1..80)) {
        let q = Quota::new(3);
        let mut waiters: Vec<(Waiter, u64)> = Vec::new();
        let mut grants: Vec<(Grant, u64)> = Vec::new();
        for (op, cost, flag) in ops {
            match op {
                0 => { let mut it = item("x"); it.is_try = flag; waiters.push((q.enqueue(cost, it), cost)); }
                1 => if !waiters.is_empty() {
                    let (w, c) = waiters.remove(cost as usize % waiters.len());
                    if let Some(g) = grant_now(w) { grants.push((g, c)); }
                },
                2 => if !waiters.is_empty() { waiters.remove(cost as usize % waiters.len()); },
                3 => if !grants.is_empty() { grants.remove(cost as usize % grants.len()); },
                _ => q.set_limit(cost + u64::from(flag)),
            }
            let live: u64 = grants.iter().map(|(_, c)| c).sum();
            let stats = q.stats();
            // Waiters granted but not yet taken also hold quota.
            prop_assert!(stats.used >= live);
            prop_assert_eq!(stats.waiting.len() <= waiters.len(), true);
        }
        drop(waiters);
        let live: u64 = grants.iter().map(|(_, c)| c).sum();
        prop_assert_eq!(q.stats().used, live);
        drop(grants);
        prop_assert_eq!(q.stats().used, 0);
    }
}
