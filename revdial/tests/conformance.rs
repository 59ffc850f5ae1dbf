//! Spec `revdial.md` §12, one test per case (37–40 concern the coordinator's `/reverse`
//! handler and live in the pool crate). Dialer cases run over an in-memory duplex pipe;
//! pickup cases over real TLS on loopback; Listener cases against a scripted TCP server.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use revdial::http1::GO_SWITCHING_PROTOCOLS;
use revdial::{Dialer, DialerConfig, Error, Listener, ListenerConfig, Registry, RevConn};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, duplex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

fn cfg() -> DialerConfig {
    DialerConfig::default()
}

/// A Dialer on one end of a pipe; the test plays the peer on the other.
fn dialer_on_pipe(config: DialerConfig) -> (Dialer, Registry, BufReader<DuplexStream>) {
    let (a, b) = duplex(64 * 1024);
    let reg = Registry::new();
    (Dialer::new(a, &reg, config), reg, BufReader::new(b))
}

async fn line(peer: &mut BufReader<DuplexStream>) -> String {
    let mut s = String::new();
    tokio::time::timeout(Duration::from_secs(60), peer.read_line(&mut s))
        .await
        .expect("no control line")
        .unwrap();
    s
}

fn is_pickup_path(p: &str) -> bool {
    let Some(id) = p.strip_prefix("/revdial?revdial.dialer=") else {
        return false;
    };
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn conn_path(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["command"], "conn-ready", "{line}");
    v["connPath"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn case_01_first_line_is_keep_alive() {
    let (_d, _r, mut peer) = dialer_on_pipe(cfg());
    assert_eq!(line(&mut peer).await, "{\"command\":\"keep-alive\"}\n");
}

#[tokio::test(start_paused = true)]
async fn case_02_idle_keep_alives_every_30s() {
    let (_d, _r, mut peer) = dialer_on_pipe(cfg());
    let start = tokio::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..3 {
        assert_eq!(line(&mut peer).await, "{\"command\":\"keep-alive\"}\n");
        at.push(start.elapsed().as_secs());
    }
    assert_eq!(at, [0, 30, 60]);
}

#[tokio::test]
async fn case_03_conn_ready_then_keep_alive() {
    let (d, _r, mut peer) = dialer_on_pipe(cfg());
    line(&mut peer).await;
    let dial = tokio::spawn(async move { d.dial().await });
    let p = conn_path(&line(&mut peer).await);
    assert!(is_pickup_path(&p), "{p}");
    assert_eq!(line(&mut peer).await, "{\"command\":\"keep-alive\"}\n");
    dial.abort();
}

#[tokio::test]
async fn case_04_conn_path_with_query() {
    let config = DialerConfig {
        conn_path: "/x?a=b".into(),
        ..cfg()
    };
    let (d, _r, mut peer) = dialer_on_pipe(config);
    line(&mut peer).await;
    let dial = tokio::spawn(async move { d.dial().await });
    let raw = line(&mut peer).await;
    assert!(raw.contains("/x?a=b\\u0026revdial.dialer="), "{raw}");
    assert!(conn_path(&raw).starts_with("/x?a=b&revdial.dialer="));
    dial.abort();
}

#[tokio::test]
async fn case_05_two_dialers_distinct_ids_both_resolvable() {
    let reg = Registry::new();
    let (a, mut pa) = duplex(4096);
    let (b, mut pb) = duplex(4096);
    let (da, db) = (Dialer::new(a, &reg, cfg()), Dialer::new(b, &reg, cfg()));
    assert_ne!(da.id(), db.id());
    let (ta, tb) = (
        tokio::spawn(async move { da.dial().await }),
        tokio::spawn(async move { db.dial().await }),
    );
    let mut seen = Vec::new();
    for p in [&mut pa, &mut pb] {
        let mut r = BufReader::new(p);
        line_of(&mut r).await;
        let path = conn_path(&line_of(&mut r).await);
        let ticket = path.rsplit('=').next().unwrap().to_owned();
        assert!(reg.contains(&ticket));
        seen.push(ticket);
    }
    assert_ne!(seen[0], seen[1]);
    ta.abort();
    tb.abort();
}

async fn line_of<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
    let mut s = String::new();
    r.read_line(&mut s).await.unwrap();
    s
}

/// Sends a raw request to the public server and returns the whole response.
async fn raw_request(
    addr: std::net::SocketAddr,
    tls: Option<std::sync::Arc<common::Tls>>,
    req: &str,
) -> (Vec<u8>, RevConn) {
    let mut c = common::connect(addr, tls).await.unwrap();
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n")
            && (got.starts_with(b"HTTP/0.0 101")
                || got.ends_with(b"\n") && !got.ends_with(b"\r\n\r\n"))
        {
            break;
        }
    }
    (got, c)
}

fn status_and_body(resp: &[u8]) -> (String, String, String) {
    let s = String::from_utf8_lossy(resp).into_owned();
    let (head, body) = s.split_once("\r\n\r\n").unwrap();
    (
        head.lines().next().unwrap().to_owned(),
        head.to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn case_06_pickup_over_tls_reaches_the_dial() {
    let mut p = common::public(true, cfg()).await;
    let (mut ln, d) = common::register(&mut p).await;
    let server = tokio::spawn(async move {
        let mut c = ln.accept().await.unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).await.unwrap();
        c.write_all(&b).await.unwrap();
        c.flush().await.unwrap();
        (ln, c)
    });
    let mut c = d.dial().await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    c.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"hello");
    server.await.unwrap();
}

#[tokio::test]
async fn case_07_pickup_without_tls_is_refused() {
    plaintext_refusals().await;
}

async fn plaintext_refusals() {
    // A TLS-requiring pickup service reached over plaintext.
    let reg = Registry::new();
    let svc = revdial::PickupService::new(reg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let svc = svc.clone();
            tokio::spawn(async move {
                let req = revdial::HijackedRequest::read(s, false).await.unwrap();
                svc.handle(req).await.unwrap();
            });
        }
    });
    let (resp, _) = raw_request(
        addr,
        None,
        "GET /revdial?revdial.dialer=x HTTP/1.1\r\nHost: \r\n\r\n",
    )
    .await;
    let (status, _, body) = status_and_body(&resp);
    assert_eq!(
        (status.as_str(), body.as_str()),
        (
            "HTTP/1.1 500 Internal Server Error",
            "handler requires TLS\n"
        )
    );
    // case 9: the TLS check precedes the method check.
    let (resp, _) = raw_request(
        addr,
        None,
        "POST /revdial HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(status_and_body(&resp).0.contains(" 500 "));
}

#[tokio::test]
async fn case_08_post_is_405_with_allow() {
    let p = common::public(true, cfg()).await;
    let (resp, _) = raw_request(
        p.addr,
        p.tls.clone(),
        "POST /revdial HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let (status, head, body) = status_and_body(&resp);
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(head.contains("\r\nAllow: GET"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; charset=utf-8"),
        "{head}"
    );
    assert_eq!(body, "expected GET request to revdial conn handler\n");
}

#[tokio::test]
async fn case_09_post_over_plaintext_is_500() {
    // Case 7's server: a TLS-requiring service reached over a plaintext connection.
    plaintext_refusals().await;
}

async fn expect_unknown_dialer(p: &common::Public, target: &str) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n\r\n");
    let (resp, _) = raw_request(p.addr, p.tls.clone(), &req).await;
    let (status, _, body) = status_and_body(&resp);
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 400 Bad Request", "unknown dialer\n")
    );
}

#[tokio::test]
async fn case_10_unknown_id_is_400() {
    let p = common::public(true, cfg()).await;
    expect_unknown_dialer(
        &p,
        "/revdial?revdial.dialer=00112233445566778899aabbccddeeff",
    )
    .await;
}

#[tokio::test]
async fn case_11_missing_id_is_400() {
    let p = common::public(true, cfg()).await;
    expect_unknown_dialer(&p, "/revdial").await;
    expect_unknown_dialer(&p, "/revdial?revdial.dialer=").await;
}

#[tokio::test]
async fn case_12_closed_dialer_is_400() {
    let mut p = common::public(true, cfg()).await;
    let (_ln, d) = common::register(&mut p).await;
    // Learn a real ticket by intercepting: dial, then close before the pickup lands is
    // racy, so instead hold a ticket from a dial on a pipe Dialer sharing the registry.
    let (a, b) = duplex(4096);
    let pipe = Dialer::new(a, &p.registry, cfg());
    let mut r = BufReader::new(b);
    let dial = {
        let pipe = pipe.clone();
        tokio::spawn(async move { pipe.dial().await })
    };
    line_of(&mut r).await;
    let path = conn_path(&line_of(&mut r).await);
    pipe.close();
    assert!(matches!(dial.await.unwrap(), Err(Error::DialerClosed)));
    expect_unknown_dialer(&p, &path).await;
    d.close();
}

#[tokio::test]
async fn case_13_pickup_failed_fails_the_dial() {
    let (d, _r, mut peer) = dialer_on_pipe(cfg());
    line(&mut peer).await;
    let dial = tokio::spawn(async move { d.dial().await });
    line(&mut peer).await;
    peer.get_mut()
        .write_all(b"{\"command\":\"pickup-failed\",\"err\":\"boom\"}\n")
        .await
        .unwrap();
    let err = dial.await.unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "revdial listener failed to pick up connection: boom"
    );
}

/// Sends `bytes` to a fresh Dialer and reports whether it closed.
async fn dialer_closes_on(bytes: &[u8]) -> bool {
    let (d, _r, mut peer) = dialer_on_pipe(cfg());
    line(&mut peer).await;
    peer.get_mut().write_all(bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), d.done())
        .await
        .is_ok()
}

#[tokio::test]
async fn case_14_invalid_json_closes_the_dialer() {
    let (d, _r, mut peer) = dialer_on_pipe(cfg());
    line(&mut peer).await;
    peer.get_mut().write_all(b"not json\n").await.unwrap();
    d.done().await;
    assert!(matches!(d.dial().await, Err(Error::DialerClosed)));
    // The control socket is closed: the peer reads EOF.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn case_15_empty_line_closes() {
    assert!(dialer_closes_on(b"\n").await);
}

#[tokio::test]
async fn case_16_null_is_ignored() {
    assert!(!dialer_closes_on(b"null\n").await);
}

#[tokio::test]
async fn case_17_unknown_command_is_ignored() {
    assert!(!dialer_closes_on(b"{\"command\":\"bogus\"}\n").await);
    assert!(!listener_closes_on(b"{\"command\":\"bogus\"}\n").await);
}

#[tokio::test]
async fn case_18_type_mismatch_closes() {
    assert!(dialer_closes_on(b"{\"command\":5}\n").await);
    assert!(listener_closes_on(b"{\"command\":5}\n").await);
}

#[tokio::test]
async fn case_19_two_objects_on_a_line_close() {
    assert!(dialer_closes_on(b"{\"command\":\"keep-alive\"}{\"command\":\"keep-alive\"}\n").await);
}

#[tokio::test]
async fn case_20_long_line_closes() {
    let mut long = vec![b' '; 5000];
    long.push(b'\n');
    assert!(dialer_closes_on(&long).await);
    assert!(listener_closes_on(&long).await);
}

#[tokio::test]
async fn case_21_crlf_is_accepted() {
    assert!(!dialer_closes_on(b"{\"command\":\"keep-alive\"}\r\n").await);
}

/// A Listener on a pipe, with a dial-back that reports each call on a channel and uses
/// the given script server (or fails).
fn listener_on_pipe(
    dial_to: Option<std::net::SocketAddr>,
) -> (
    Listener,
    BufReader<DuplexStream>,
    mpsc::UnboundedReceiver<()>,
) {
    let (a, b) = duplex(64 * 1024);
    let (tx, rx) = mpsc::unbounded_channel();
    let dial: revdial::DialBack = std::sync::Arc::new(move || {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(());
            match dial_to {
                Some(addr) => Ok(RevConn::new(TcpStream::connect(addr).await?)),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "dial tcp 127.0.0.1:9: connection refused",
                )),
            }
        })
    });
    (
        Listener::new(a, dial, ListenerConfig::default()),
        BufReader::new(b),
        rx,
    )
}

async fn listener_closes_on(bytes: &[u8]) -> bool {
    let (ln, mut peer, _rx) = listener_on_pipe(None);
    peer.get_mut().write_all(bytes).await.unwrap();
    let token = ln.closed_token();
    tokio::time::timeout(Duration::from_secs(2), token.cancelled())
        .await
        .is_ok()
}

/// A scripted HTTP server: answers the n-th request on a connection with `replies[n]`,
/// and reports every request line it saw.
async fn script(
    replies: Vec<&'static str>,
) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (tx, replies) = (tx.clone(), replies.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                for reply in replies {
                    let mut first = String::new();
                    if r.read_line(&mut first).await.unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap();
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let _ = tx.send(first.trim_end().to_owned());
                    r.get_mut().write_all(reply.as_bytes()).await.unwrap();
                }
                // Keep the connection open after a 101.
                let mut sink = Vec::new();
                let _ = r.read_to_end(&mut sink).await;
            });
        }
    });
    (addr, rx)
}

async fn pickup_failed_after(
    dial_to: Option<std::net::SocketAddr>,
    path: &str,
) -> serde_json::Value {
    let (_ln, mut peer, _rx) = listener_on_pipe(dial_to);
    let msg = format!("{{\"command\":\"conn-ready\",\"connPath\":\"{path}\"}}\n");
    peer.get_mut().write_all(msg.as_bytes()).await.unwrap();
    let l = line(&mut peer).await;
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["command"], "pickup-failed", "{l}");
    v
}

#[tokio::test]
async fn case_22_case_insensitive_keys_start_a_pickup() {
    let (_ln, mut peer, mut dials) = listener_on_pipe(None);
    peer.get_mut()
        .write_all(b"{\"Command\":\"conn-ready\",\"ConnPath\":\"/revdial?revdial.dialer=X\"}\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), dials.recv())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn case_23_dial_failure_reports_path_and_error() {
    let v = pickup_failed_after(None, "/revdial?revdial.dialer=abc").await;
    assert_eq!(v["connPath"], "/revdial?revdial.dialer=abc");
    assert_eq!(v["err"], "dial tcp 127.0.0.1:9: connection refused");
}

#[tokio::test]
async fn case_24_bad_status_reports_switch_failed_without_path() {
    let (addr, _) = script(vec![
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 15\r\n\r\nunknown dialer\n",
    ])
    .await;
    let v = pickup_failed_after(Some(addr), "/revdial?revdial.dialer=abc").await;
    let err = v["err"].as_str().unwrap();
    assert!(
        err.starts_with("switch failed: want HTTP status 101 or 307; got 400 Bad Request"),
        "{err}"
    );
    assert!(v.get("connPath").is_none(), "{v}");
}

#[tokio::test]
async fn case_25_one_redirect_is_followed_on_the_same_connection() {
    let (addr, mut seen) = script(vec![
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: /redirected/revdial?revdial.dialer=abc\r\nContent-Length: 0\r\n\r\n",
        "HTTP/0.0 101 Switching Protocols\r\n\r\n",
    ]).await;
    let (mut ln, mut peer, mut dials) = listener_on_pipe(Some(addr));
    peer.get_mut()
        .write_all(b"{\"command\":\"conn-ready\",\"connPath\":\"/revdial?revdial.dialer=abc\"}\n")
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), ln.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen.recv().await.unwrap(),
        "GET /revdial?revdial.dialer=abc HTTP/1.1"
    );
    assert_eq!(
        seen.recv().await.unwrap(),
        "GET /redirected/revdial?revdial.dialer=abc HTTP/1.1"
    );
    dials.recv().await.unwrap();
    assert!(dials.try_recv().is_err(), "a second connection was dialed");
}

#[tokio::test]
async fn case_26_redirect_loop_fails_after_two_requests() {
    let r = "HTTP/1.1 307 Temporary Redirect\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n";
    let (addr, mut seen) = script(vec![r, r, r]).await;
    let v = pickup_failed_after(Some(addr), "/revdial?revdial.dialer=abc").await;
    assert_eq!(v["err"], "too many redirects");
    assert_eq!(v["connPath"], "/again");
    seen.recv().await.unwrap();
    seen.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(seen.try_recv().is_err(), "a third request was sent");
}

#[tokio::test]
async fn case_27_absolute_location_is_refused() {
    let (addr, _) = script(vec!["HTTP/1.1 307 Temporary Redirect\r\nLocation: https://evil/revdial?x\r\nContent-Length: 0\r\n\r\n"]).await;
    let v = pickup_failed_after(Some(addr), "/p").await;
    let err = v["err"].as_str().unwrap();
    assert!(
        err.contains("redirect Location must be relative: ") && err.ends_with("contains scheme"),
        "{err}"
    );
}

#[tokio::test]
async fn case_28_protocol_relative_location_is_refused() {
    let (addr, _) = script(vec![
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: //evil/x\r\nContent-Length: 0\r\n\r\n",
    ])
    .await;
    let v = pickup_failed_after(Some(addr), "/p").await;
    assert!(v["err"].as_str().unwrap().ends_with("contains host"), "{v}");
}

#[tokio::test]
async fn case_29_redirect_without_location_is_refused() {
    let (addr, _) = script(vec![
        "HTTP/1.1 307 Temporary Redirect\r\nContent-Length: 0\r\n\r\n",
    ])
    .await;
    let v = pickup_failed_after(Some(addr), "/p").await;
    assert!(
        v["err"]
            .as_str()
            .unwrap()
            .contains("redirect missing Location header"),
        "{v}"
    );
}

#[tokio::test]
async fn case_30_302_is_not_followed() {
    let (addr, _) = script(vec![
        "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
    ])
    .await;
    let v = pickup_failed_after(Some(addr), "/p").await;
    assert!(
        v["err"]
            .as_str()
            .unwrap()
            .contains("want HTTP status 101 or 307; got 302 Found"),
        "{v}"
    );
}

#[tokio::test]
async fn case_31_go_http_0_0_101_is_accepted_and_no_byte_is_lost() {
    // The server sends its first stream bytes in the same write as the 101.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await.unwrap();
        let mut out = GO_SWITCHING_PROTOCOLS.to_vec();
        out.extend_from_slice(b"early bytes");
        s.write_all(&out).await.unwrap();
        let _ = s.read(&mut buf).await;
    });
    let (mut ln, mut peer, _rx) = listener_on_pipe(Some(addr));
    peer.get_mut()
        .write_all(b"{\"command\":\"conn-ready\",\"connPath\":\"/p\"}\n")
        .await
        .unwrap();
    let mut c = tokio::time::timeout(Duration::from_secs(5), ln.accept())
        .await
        .unwrap()
        .unwrap();
    let mut got = [0u8; 11];
    c.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"early bytes");
}

#[tokio::test]
async fn case_32_cancelled_dial_then_next_dial_works() {
    let mut p = common::public(true, cfg()).await;
    // A private side whose connect-back waits for a permit, so a dial can be cancelled
    // before its pickup arrives.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mut conn = common::connect(p.addr, p.tls.clone()).await.unwrap();
    let mut buf = BytesMut::new();
    revdial::http1::request_switch(&mut conn, &mut buf, "/reverse", &[])
        .await
        .unwrap();
    let inner = common::dial_back(p.addr, p.tls.clone());
    let g = gate.clone();
    let dial: revdial::DialBack = std::sync::Arc::new(move || {
        let (g, inner) = (g.clone(), inner.clone());
        Box::pin(async move {
            g.acquire().await.unwrap().forget();
            inner().await
        })
    });
    let mut ln = Listener::new(
        revdial::io::Rewind::new(buf.freeze(), conn),
        dial,
        ListenerConfig::default(),
    );
    let d = p.dialers.recv().await.unwrap();

    // Cancelled before any pickup: the caller gets its own timeout, nothing else.
    let r = tokio::time::timeout(Duration::from_millis(200), d.dial()).await;
    assert!(r.is_err(), "dial completed without a pickup");
    // An already-cancelled dial (dropped unpolled) sends nothing at all.
    drop(d.dial());

    let accepter = tokio::spawn(async move {
        let mut n = 0;
        while let Ok(mut c) = ln.accept().await {
            n += 1;
            c.write_all(b"x").await.unwrap();
        }
        n
    });
    let next = {
        let d = d.clone();
        tokio::spawn(async move { d.dial().await })
    };
    // Release the late pickup of the cancelled dial, then the next dial's.
    gate.add_permits(2);
    let mut c = next.await.unwrap().unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"x");
    // The late pickup was refused (its ticket was gone) and its failure report, which a
    // Go listener sends without a path, did not fail the live dial.
    assert!(p.registry.is_empty());
    d.close();
    assert_eq!(accepter.await.unwrap(), 1);
}

#[tokio::test]
async fn case_33_concurrent_dials_get_distinct_connections() {
    let (d, _r, mut peer) = dialer_on_pipe(cfg());
    line(&mut peer).await;
    let dials: Vec<_> = (0..3)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move { d.dial().await })
        })
        .collect();
    let mut paths = std::collections::BTreeSet::new();
    while paths.len() < 3 {
        let l = line(&mut peer).await;
        if l.contains("conn-ready") {
            paths.insert(conn_path(&l));
        }
    }
    d.close();
    for t in dials {
        assert!(t.await.unwrap().is_err());
    }
    // End to end with real pickups: see `concurrent_dials_reach_the_right_peer`.
}

#[tokio::test]
async fn case_34_listener_control_close_closes_the_dialer() {
    let mut p = common::public(true, cfg()).await;
    let (ln, d) = common::register(&mut p).await;
    ln.close();
    tokio::time::timeout(Duration::from_secs(10), d.done())
        .await
        .unwrap();
    assert!(matches!(d.dial().await, Err(Error::DialerClosed)));
}

#[tokio::test]
async fn case_35_dialer_close_fails_accept_but_keeps_conns() {
    let mut p = common::public(true, cfg()).await;
    let (mut ln, d) = common::register(&mut p).await;
    let dial = {
        let d = d.clone();
        tokio::spawn(async move { d.dial().await.unwrap() })
    };
    let mut server_side = ln.accept().await.unwrap();
    let mut client_side = dial.await.unwrap();
    d.close();
    let err = tokio::time::timeout(Duration::from_secs(10), ln.accept())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.to_string(), "revdial: Listener closed");
    client_side.write_all(b"still").await.unwrap();
    let mut b = [0u8; 5];
    server_side.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"still");
}

#[tokio::test(start_paused = true)]
async fn case_36_blocked_write_times_out_and_closes() {
    // A tiny pipe that nobody reads: the first keep-alive fills it, the next one blocks.
    let (a, _b) = duplex(8);
    let reg = Registry::new();
    let d = Dialer::new(a, &reg, cfg());
    tokio::time::timeout(Duration::from_secs(11), d.done())
        .await
        .expect("no close after 10 s");
    let _ = BytesMut::new();
}
