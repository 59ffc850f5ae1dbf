//! Many dials at once, cancellations, and resource hygiene, over real sockets on loopback.

mod common;

use std::time::Duration;

use revdial::{DialerConfig, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves a Listener: each accepted stream first says which peer it is, then echoes.
fn serve_echo(mut ln: revdial::Listener, name: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(mut c) = ln.accept().await {
            let name = name.clone();
            tokio::spawn(async move {
                if c.write_all(name.as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 64];
                while let Ok(n) = c.read(&mut buf).await {
                    if n == 0 || c.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dials_reach_the_right_peer() {
    let mut p = common::public(true, DialerConfig::default()).await;
    let mut dialers = Vec::new();
    for i in 0..4 {
        let (ln, d) = common::register(&mut p).await;
        serve_echo(ln, format!("peer-{i}"));
        dialers.push(d);
    }
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let d = dialers[n % 4].clone();
        tasks.push(tokio::spawn(async move {
            let mut c = d.dial().await.unwrap();
            let mut who = [0u8; 6];
            c.read_exact(&mut who).await.unwrap();
            let token = format!("{n:08}");
            c.write_all(token.as_bytes()).await.unwrap();
            let mut back = [0u8; 8];
            c.read_exact(&mut back).await.unwrap();
            (
                n,
                String::from_utf8(who.to_vec()).unwrap(),
                String::from_utf8(back.to_vec()).unwrap(),
            )
        }));
    }
    for t in tasks {
        let (n, who, back) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(who, format!("peer-{}", n % 4));
        assert_eq!(back, format!("{n:08}"));
    }
    assert!(p.registry.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_dials_leak_nothing_and_never_cross() {
    let mut p = common::public(true, DialerConfig::default()).await;
    let (ln, d) = common::register(&mut p).await;
    serve_echo(ln, "peer-0".into());
    // 100 dials, most cancelled at random points, interleaved with dials that complete.
    let mut tasks = Vec::new();
    for n in 0..100u64 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let wait = Duration::from_micros((n * 7919) % 3000);
            match tokio::time::timeout(wait, d.dial()).await {
                Ok(Ok(mut c)) => {
                    let mut who = [0u8; 6];
                    c.read_exact(&mut who).await.unwrap();
                    assert_eq!(&who, b"peer-0");
                    c.write_all(&n.to_be_bytes()).await.unwrap();
                    let mut back = [0u8; 8];
                    c.read_exact(&mut back).await.unwrap();
                    assert_eq!(
                        u64::from_be_bytes(back),
                        n,
                        "a stream crossed to another dial"
                    );
                    true
                }
                Ok(Err(e)) => panic!("dial failed: {e}"),
                Err(_) => false,
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every ticket is gone, and the Dialer still works.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(p.registry.is_empty(), "{} tickets left", p.registry.len());
    let mut c = d.dial().await.unwrap();
    let mut who = [0u8; 6];
    c.read_exact(&mut who).await.unwrap();
    assert!(!d.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialer_close_errors_accept_and_pending_dials() {
    let mut p = common::public(true, DialerConfig::default()).await;
    let (mut ln, d) = common::register(&mut p).await;
    let pending = {
        let d = d.clone();
        // No one accepts yet, but the pickup itself completes; close races it.
        tokio::spawn(async move { d.dial().await })
    };
    d.close();
    let r = pending.await.unwrap();
    assert!(r.is_ok() || matches!(r, Err(Error::DialerClosed)));
    let e = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(e) = ln.accept().await {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(e, Error::ListenerClosed));
}

/// 10,000 dial+close cycles leave no task and no file descriptor behind. Plaintext
/// pickups keep the loop fast; the TLS path is the same code above the transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_cycles_leave_nothing_behind() {
    let mut p = common::public(false, DialerConfig::default()).await;
    let (ln, d) = common::register(&mut p).await;
    serve_echo(ln, "peer-0".into());
    let metrics = tokio::runtime::Handle::current().metrics();
    // Warm up, then measure.
    for _ in 0..10 {
        let mut c = d.dial().await.unwrap();
        let mut who = [0u8; 6];
        c.read_exact(&mut who).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (fds, tasks) = (common::open_fds(), metrics.num_alive_tasks());
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        let mut c = d.dial().await.unwrap();
        let mut who = [0u8; 6];
        c.read_exact(&mut who).await.unwrap();
        c.shutdown().await.unwrap();
        drop(c);
        // A bound on the loop, not a performance assertion.
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "cycle loop ran over 5 minutes"
        );
    }
    // Let the peer tasks see EOF and exit.
    let mut settled = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if common::open_fds() <= fds && metrics.num_alive_tasks() <= tasks {
            settled = true;
            break;
        }
    }
    assert!(
        settled,
        "fds {} -> {}, tasks {} -> {}",
        fds,
        common::open_fds(),
        tasks,
        metrics.num_alive_tasks()
    );
    assert!(p.registry.is_empty());
}
