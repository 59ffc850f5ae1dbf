//! Mux mode over real loopback TCP: the Dialer/Listener contract of v2 where it is not
//! about v2's wire, plus what a multiplexer must not get wrong (streams reaching the wrong
//! peer, cancellations that cross or leak, head-of-line stalls, growth over many cycles).

mod common;

use std::time::Duration;

use revdial::{Dialer, Error, Listener, Mode, MuxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A Dialer and a Listener in mux mode on the two ends of one loopback TCP connection.
async fn pair(config: &MuxConfig) -> (Dialer, Listener) {
    let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ln.local_addr().unwrap();
    let (public, private) = tokio::join!(ln.accept(), TcpStream::connect(addr));
    let (public, _) = public.unwrap();
    let private = private.unwrap();
    // As the reverse pool and the buildlet set them: Nagle would hold small frames.
    public.set_nodelay(true).unwrap();
    private.set_nodelay(true).unwrap();
    (
        Dialer::new_mux(public, config),
        Listener::new_mux(private, config),
    )
}

/// Serves `ln`: each accepted stream gets `id` written, then echoes until EOF.
fn echo_server(mut ln: Listener, id: &'static str) {
    tokio::spawn(async move {
        while let Ok(mut conn) = ln.accept().await {
            tokio::spawn(async move {
                let _ = conn.write_all(id.as_bytes()).await;
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn a_dial_reaches_the_listener_and_both_say_mux() {
    let (d, mut ln) = pair(&MuxConfig::default()).await;
    assert_eq!((d.mode(), ln.mode()), (Mode::Mux, Mode::Mux));
    let (c, s) = tokio::join!(d.dial(), ln.accept());
    let (mut c, mut s) = (c.unwrap(), s.unwrap());
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    s.write_all(b"pong").await.unwrap();
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

/// Conformance 33: concurrent dials get distinct streams.
#[tokio::test]
async fn concurrent_dials_get_distinct_streams() {
    let (d, mut ln) = pair(&MuxConfig::default()).await;
    tokio::spawn(async move {
        let mut n = 0u32;
        while let Ok(mut s) = ln.accept().await {
            n += 1;
            let tag = n.to_be_bytes();
            tokio::spawn(async move { s.write_all(&tag).await });
        }
    });
    let conns = futures_util::future::join_all((0..20).map(|_| d.dial())).await;
    let mut tags = Vec::new();
    for c in conns {
        let mut c = c.unwrap();
        let mut tag = [0u8; 4];
        c.read_exact(&mut tag).await.unwrap();
        tags.push(u32::from_be_bytes(tag));
    }
    tags.sort();
    assert_eq!(tags, (1..=20).collect::<Vec<_>>());
}

/// Conformance 32 and the cancellation rule: dials dropped at random points neither
/// deliver a stream to another dial nor leave one open; the next dial works.
#[tokio::test]
async fn cancelled_dials_neither_cross_nor_leak() {
    let (d, ln) = pair(&MuxConfig::default()).await;
    echo_server(ln, "peer");
    for i in 0..200u64 {
        let dial = d.dial();
        // Cancel after 0–3 polls: before the request, while opening, or never.
        let _ = tokio::time::timeout(Duration::from_micros(i % 4 * 50), dial).await;
    }
    for i in 0..20u8 {
        let mut c = within(10, d.dial()).await.unwrap();
        let mut hello = [0u8; 4];
        c.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"peer");
        c.write_all(&[i; 100]).await.unwrap();
        let mut back = [0u8; 100];
        c.read_exact(&mut back).await.unwrap();
        assert!(
            back.iter().all(|&b| b == i),
            "a stream carried another's bytes"
        );
    }
    // Every stream of a cancelled dial is gone: the slots are all free again.
    let config = MuxConfig {
        max_streams: 4,
        dial_timeout: Duration::from_secs(5),
        ..MuxConfig::default()
    };
    let (d, ln) = pair(&config).await;
    echo_server(ln, "peer");
    for _ in 0..100 {
        let _ = tokio::time::timeout(Duration::from_micros(30), d.dial()).await;
    }
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| d.dial())).await;
    assert!(
        held.iter().all(Result::is_ok),
        "cancelled dials kept their slots"
    );
}

/// 200 concurrent streams over 4 peers: each reaches its own peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_across_four_peers_each_reach_their_own() {
    const IDS: [&str; 4] = ["peer-a", "peer-b", "peer-c", "peer-d"];
    let mut dialers = Vec::new();
    for id in IDS {
        let (d, ln) = pair(&MuxConfig::default()).await;
        echo_server(ln, id);
        dialers.push(d);
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let d = dialers[i % 4].clone();
            tokio::spawn(async move {
                let mut c = d.dial().await.unwrap();
                let mut id = [0u8; 6];
                c.read_exact(&mut id).await.unwrap();
                let payload = format!("stream {i}").repeat(50);
                c.write_all(payload.as_bytes()).await.unwrap();
                let mut back = vec![0u8; payload.len()];
                c.read_exact(&mut back).await.unwrap();
                assert_eq!(back, payload.as_bytes());
                (i, String::from_utf8(id.to_vec()).unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (i, id) = within(30, t).await.unwrap();
        assert_eq!(id, IDS[i % 4], "stream {i} reached the wrong peer");
    }
}

/// A reader that never reads one stream does not stall another on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_does_not_stall_other_streams() {
    let (d, mut ln) = pair(&MuxConfig::default()).await;
    tokio::spawn(async move {
        // Stream 1: push 64 MiB that nobody reads. Stream 2: echo.
        let mut flood = ln.accept().await.unwrap();
        tokio::spawn(async move {
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..64 {
                if flood.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut echo = ln.accept().await.unwrap();
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = echo.read(&mut buf).await {
            if n == 0 || echo.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let _stalled = d.dial().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fast = d.dial().await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(&mut fast);
    let total = 16usize << 20;
    let writer = async {
        let chunk = vec![1u8; 256 << 10];
        for _ in 0..total / chunk.len() {
            wr.write_all(&chunk).await.unwrap();
        }
    };
    let reader = async {
        let mut got = 0;
        let mut buf = vec![0u8; 256 << 10];
        while got < total {
            let n = rd.read(&mut buf).await.unwrap();
            assert!(n > 0, "the fast stream ended");
            got += n;
        }
        got
    };
    let (_, got) = within(30, async { tokio::join!(writer, reader) }).await;
    assert_eq!(got, total, "the fast stream's bytes all arrived");
}

/// Conformance 34 and 35: closing either end ends the other; a closed Dialer refuses
/// dials at once. (Unlike v2, streams end with their connection: they live on it.)
#[tokio::test]
async fn closing_either_end_ends_the_other() {
    let (d, ln) = pair(&MuxConfig::default()).await;
    ln.close();
    within(10, d.done()).await;
    assert!(matches!(d.dial().await, Err(Error::DialerClosed)));
    let (d, mut ln) = pair(&MuxConfig::default()).await;
    d.close();
    assert!(matches!(
        within(10, ln.accept()).await,
        Err(Error::ListenerClosed)
    ));
    // The last Dialer handle dropped closes the connection too.
    let (d, mut ln) = pair(&MuxConfig::default()).await;
    drop(d);
    assert!(matches!(
        within(10, ln.accept()).await,
        Err(Error::ListenerClosed)
    ));
}

/// Opening waits for a free slot (back-pressure) and times out when none frees.
#[tokio::test]
async fn stream_opening_is_bounded() {
    let config = MuxConfig {
        max_streams: 2,
        dial_timeout: Duration::from_millis(300),
        ..MuxConfig::default()
    };
    let (d, ln) = pair(&config).await;
    echo_server(ln, "peer");
    let a = d.dial().await.unwrap();
    let _b = d.dial().await.unwrap();
    assert!(matches!(d.dial().await, Err(Error::Timeout(_))));
    drop(a);
    let mut c = within(5, d.dial()).await.unwrap();
    let mut hello = [0u8; 4];
    c.read_exact(&mut hello).await.unwrap();
}

/// 10,000 open/close cycles leave no tasks, descriptors or memory behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_cycles_leave_nothing_behind() {
    let (d, ln) = pair(&MuxConfig::default()).await;
    echo_server(ln, "peer");
    let cycle = |d: Dialer| async move {
        let mut c = d.dial().await.unwrap();
        let mut hello = [0u8; 4];
        c.read_exact(&mut hello).await.unwrap();
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest).await;
    };
    for _ in 0..200 {
        cycle(d.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let (tasks, fds, mem) = (metrics.num_alive_tasks(), common::open_fds(), common::rss());
    for _ in 0..10_000 {
        cycle(d.clone()).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tasks_after, fds_after) = (metrics.num_alive_tasks(), common::open_fds());
    assert!(tasks_after <= tasks + 2, "tasks {tasks} -> {tasks_after}");
    assert!(fds_after <= fds + 2, "descriptors {fds} -> {fds_after}");
    // A leak of 1 KiB a cycle would be 10 MB; the allocator's own drift is far less.
    let mem_after = common::rss();
    assert!(
        mem_after <= mem + (8 << 20),
        "resident memory {mem} -> {mem_after} bytes"
    );
}

#[test]
fn the_offer_is_recognised_in_a_list() {
    use revdial::mux::offers_mux;
    assert!(offers_mux(Some("h2/1")));
    assert!(offers_mux(Some("yamux/1, h2/1")));
    assert!(!offers_mux(Some("h2/2")));
    assert!(!offers_mux(None));
}

/// A peer that goes silent without closing anything (a black-holed link) is found dead by
/// unanswered PINGs, on any transport: here an in-process relay that stops forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_found_dead_by_its_unanswered_pings() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let config = MuxConfig {
        keep_alive: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(300),
        ..MuxConfig::default()
    };
    let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ln.local_addr().unwrap();
    let (public, relay_in) = tokio::join!(TcpStream::connect(addr), ln.accept());
    let ln2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr2 = ln2.local_addr().unwrap();
    let (relay_out, private) = tokio::join!(TcpStream::connect(addr2), ln2.accept());
    let silent = Arc::new(AtomicBool::new(false));
    // Each direction: forward until `silent`, then swallow everything, closing nothing.
    let forward = |mut rd: tokio::net::tcp::OwnedReadHalf,
                   mut wr: tokio::net::tcp::OwnedWriteHalf,
                   silent: Arc<AtomicBool>| async move {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if !silent.load(Ordering::SeqCst) && wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
        drop(wr);
    };
    let (a_rd, a_wr) = relay_in.unwrap().0.into_split();
    let (b_rd, b_wr) = relay_out.unwrap().into_split();
    tokio::spawn(forward(a_rd, b_wr, silent.clone()));
    tokio::spawn(forward(b_rd, a_wr, silent.clone()));
    let d = Dialer::new_mux(public.unwrap(), &config);
    let ln = Listener::new_mux(private.unwrap().0, &config);
    echo_server(ln, "peer");
    let mut c = within(10, d.dial()).await.unwrap();
    let mut hello = [0u8; 4];
    within(10, c.read_exact(&mut hello)).await.unwrap();
    // Alive through several keep-alive periods while the link works.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!d.is_closed(), "a live peer was declared dead");
    silent.store(true, Ordering::SeqCst);
    within(10, d.done()).await;
    assert!(matches!(d.dial().await, Err(Error::DialerClosed)));
}
