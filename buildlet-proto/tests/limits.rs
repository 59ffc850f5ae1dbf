//! The buildlet's limits on hostile or runaway input: typed 413s for bodies and
//! extractions over their caps, a URL fetch that stalls, and header injection through
//! `connect_ssh`.

mod common;

use std::time::{Duration, Instant};

use buildlet_proto::tgz::ExtractLimits;
use buildlet_proto::{BuildletClient, Error, HttpClient};
use common::{request, send, start_with, tgz};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bytes gzip cannot shrink, so a body's size on the wire is its content's size.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn writetgz_over_the_upload_limit_is_413() {
    let s = start_with("", |c| c.max_upload = Some(4096)).await;
    let body = tgz(&[("big.bin", b'0', 0o644, &noise(64 << 10))]);
    let r = send(s.addr, &request("PUT", "/writetgz?dir=x", None, &[], &body)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("too large"), "{}", r.text());
}

#[tokio::test]
async fn extraction_limits_on_entries_and_bytes_are_413() {
    let s = start_with("", |c| {
        c.extract_limits = ExtractLimits {
            max_bytes: Some(100),
            max_entries: Some(2),
        }
    })
    .await;
    let three = tgz(&[
        ("a", b'0', 0o644, b"a"),
        ("b", b'0', 0o644, b"b"),
        ("c", b'0', 0o644, b"c"),
    ]);
    let r = send(
        s.addr,
        &request("PUT", "/writetgz?dir=e", None, &[], &three),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("more than 2 entries"), "{}", r.text());
    assert!(!s.w.join("e/c").exists());

    let big = tgz(&[
        ("small", b'0', 0o644, b"ok"),
        ("big", b'0', 0o644, &[7u8; 200]),
    ]);
    let r = send(s.addr, &request("PUT", "/writetgz?dir=f", None, &[], &big)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("more than 100 bytes"), "{}", r.text());
    // The file that would cross the limit is never started.
    assert!(!s.w.join("f/big").exists());
}

#[tokio::test]
async fn a_url_that_stops_sending_does_not_hold_the_extraction() {
    let s = start_with("", |c| c.fetch_idle_timeout = Duration::from_secs(1)).await;
    // A server that sends a head and half an archive, then nothing (but stays open).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/go.tar.gz", l.local_addr().unwrap());
    let half = tgz(&[("x", b'0', 0o644, &noise(32 << 10))]);
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", half.len());
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&half[..half.len() / 2]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let started = Instant::now();
    let body = format!(
        "url={}",
        form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    );
    let r = send(
        s.addr,
        &request(
            "POST",
            "/writetgz?dir=u",
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        ),
    )
    .await;
    assert!(r.status >= 400, "{} {}", r.status, r.text());
    assert!(r.text().contains("no data from the URL"), "{}", r.text());
    // Functional bound only: far below the 60 s the stalled server would hold it.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn connect_ssh_refuses_line_breaks_before_sending_anything() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut got)).await;
            let _ = tx.send(got);
        }
    });
    let c = HttpClient::tcp(&addr).build();
    for (user, key) in [
        ("gopher\r\nX-Injected: 1", "ssh-ed25519 AAAA"),
        ("gopher", "ssh-ed25519 AAAA\r\nX-Injected: 1"),
        ("gopher\0", "ssh-ed25519 AAAA"),
    ] {
        match c.connect_ssh(user, key).await {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("control characters"), "{m}"),
            other => panic!("{user:?}/{key:?}: {:?}", other.map(|_| ())),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "a request reached the buildlet");
}

#[tokio::test]
async fn the_client_does_not_read_an_endless_reply_into_memory() {
    // A "buildlet" whose /workdir reply never ends.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await;
        c.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = format!("10000\r\n{}\r\n", "w".repeat(0x10000));
        // 64 MiB at most, so the loop is bounded even if the client kept reading.
        for _ in 0..1024 {
            if c.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let c = HttpClient::tcp(&addr).build();
    match c.work_dir().await {
        Err(Error::InvalidReply(m)) => assert!(m.contains("longer than 16777216 bytes"), "{m}"),
        other => panic!("{:?}", other.map(|s| s.len())),
    }
}

/// Small limits so the timeouts show within a test.
fn tight() -> netguard::Limits {
    netguard::Limits {
        max_connections: 64,
        max_per_ip: 4,
        tls_handshake: Duration::from_secs(1),
        header_read: Duration::from_secs(1),
        body_idle: Duration::from_secs(1),
    }
}

/// A connection from another loopback address, as a second client would have.
async fn connect_from(from: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Reads until the server closes; the time it took, or `None` after `limit`.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn idle_and_slowloris_connections_are_closed_and_others_still_served() {
    let s = start_with("", |c| c.limits = tight()).await;
    // Idle: connects and sends nothing.
    let mut idle = connect_from("127.0.0.2", s.addr).await;
    // Slowloris: a head one byte at a time, never finished.
    let mut slow = connect_from("127.0.0.3", s.addr).await;
    let writer = tokio::spawn(async move {
        for b in b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .cycle()
            .take(40)
        {
            if slow.write_all(&[*b]).await.is_err() {
                return slow;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        slow
    });
    // A normal client is answered meanwhile.
    let r = send(s.addr, &request("GET", "/workdir", None, &[], b"")).await;
    assert_eq!(r.status, 200);
    assert!(
        closed_within(&mut idle, Duration::from_secs(10))
            .await
            .is_some(),
        "idle kept"
    );
    let mut slow = writer.await.unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(10))
            .await
            .is_some(),
        "slowloris kept"
    );
}

#[tokio::test]
async fn a_body_that_stops_is_cut_off() {
    let s = start_with("", |c| c.limits = tight()).await;
    let mut c = connect_from("127.0.0.2", s.addr).await;
    c.write_all(
        b"PUT /write?path=f&mode=420 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nten bytes!",
    )
    .await
    .unwrap();
    assert!(
        closed_within(&mut c, Duration::from_secs(10))
            .await
            .is_some(),
        "stalled body kept"
    );
    assert!(!s.w.join("f").exists(), "a partial file was left");
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let s = start_with("", |c| c.limits = tight()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.2", s.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect_from("127.0.0.2", s.addr).await;
    let took = closed_within(&mut fifth, Duration::from_millis(900)).await;
    assert!(
        took.is_some(),
        "the fifth connection from one address was kept"
    );
    // Another address is still served.
    let mut other = connect_from("127.0.0.4", s.addr).await;
    other
        .write_all(b"GET /workdir HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    other.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
