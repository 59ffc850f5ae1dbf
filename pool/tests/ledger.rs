//! The ledger: every path, including failures and cancellations, releases what it took.

use std::time::Duration;

use futures_util::FutureExt;
use pool::ledger::{Ledger, LedgerError, Resources};
use pool::queue::SchedItem;

fn r(instances: u64, cpus: u64, memory_mib: u64) -> Resources {
    Resources {
        instances,
        cpus,
        memory_mib,
    }
}

fn item() -> SchedItem {
    SchedItem::new("host-linux-amd64-vm", "linux-amd64")
}

#[tokio::test]
async fn reserve_and_release() {
    let l = Ledger::new(r(2, 8, 1024));
    let a = l.reserve("vm-a", r(1, 4, 512), item()).await.unwrap();
    assert_eq!(l.used(), r(1, 4, 512));
    assert_eq!(l.reservations().len(), 1);
    assert_eq!(
        l.reserve("vm-a", r(1, 1, 1), item()).await.unwrap_err(),
        LedgerError::AlreadyReserved("vm-a".into())
    );
    drop(a);
    assert_eq!(l.used(), r(0, 0, 0));
    assert!(l.reservations().is_empty());
}

#[tokio::test]
async fn invalid_and_impossible_requests_fail_at_once() {
    let l = Ledger::new(r(2, 8, 1024));
    assert!(matches!(
        l.reserve("x", r(1, 0, 1), item()).await,
        Err(LedgerError::Invalid(_))
    ));
    assert!(matches!(
        l.reserve("x", r(1, 9, 1), item()).await,
        Err(LedgerError::TooLarge { .. })
    ));
    assert!(l.reservations().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_releases_what_it_already_got() {
    let l = Ledger::new(r(2, 8, 1024));
    let held = l.reserve("big", r(1, 6, 100), item()).await.unwrap();
    // Gets an instance at once, then waits for CPUs; give up while waiting.
    let waiting = tokio::time::timeout(
        Duration::from_secs(5),
        l.reserve("small", r(1, 4, 100), item()),
    )
    .await;
    assert!(waiting.is_err(), "should still be waiting for CPUs");
    assert_eq!(
        l.used(),
        r(1, 6, 100),
        "the cancelled wait kept an instance"
    );
    assert_eq!(l.reservations().len(), 1);
    drop(held);
    assert_eq!(l.used(), r(0, 0, 0));
}

#[tokio::test]
async fn waiters_are_granted_when_limits_grow() {
    let l = Ledger::new(r(1, 2, 100));
    let first = l.reserve("a", r(1, 2, 100), item()).await.unwrap();
    let mut second = Box::pin(l.reserve("b", r(1, 2, 100), item()));
    assert!((&mut second).now_or_never().is_none());
    l.set_limits(r(2, 4, 200));
    let second = second.await.unwrap();
    assert_eq!(l.used(), r(2, 4, 200));
    drop((first, second));
    assert_eq!(l.used(), r(0, 0, 0));
}
