//! The HTTP client against the real server on loopback: every method, streaming, the
//! exec timeout, the heartbeat, and random trees through put_tgz/get_tgz.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use buildlet_proto::api::{ExecRequest, GoFileMode, ProcessState};
use buildlet_proto::client::Heartbeat;
use buildlet_proto::{BuildletClient, Error, HttpClient};
use bytes::Bytes;
use proptest::prelude::*;
use tokio::io::AsyncWrite;

fn client(s: &common::Server) -> HttpClient {
    HttpClient::tcp(&s.addr.to_string()).password("P").build()
}

/// An AsyncWrite that appends to shared memory and records when each write arrived.
#[derive(Clone, Default)]
struct Sink {
    data: Arc<std::sync::Mutex<Vec<u8>>>,
    times: Arc<std::sync::Mutex<Vec<(Instant, usize)>>>,
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        b: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut d = self.data.lock().unwrap();
        d.extend_from_slice(b);
        self.times.lock().unwrap().push((Instant::now(), d.len()));
        std::task::Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.lock().unwrap()).into_owned()
    }
}

fn sh(script: &str) -> ExecRequest {
    ExecRequest {
        cmd: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        ..Default::default()
    }
}

#[tokio::test]
async fn every_method_against_the_real_server() {
    let s = common::start("P").await;
    let c = client(&s);
    assert_eq!(c.status().await.unwrap().version, 29);
    assert_eq!(c.work_dir().await.unwrap(), s.w.display().to_string());
    c.put("a/b.txt", GoFileMode(0o644), Bytes::from_static(b"hi"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(s.w.join("a/b.txt")).unwrap(), b"hi");
    let arc = common::tgz(&[("d/", b'5', 0o755, b""), ("d/f", b'0', 0o644, b"x")]);
    c.put_tgz("t", Box::new(std::io::Cursor::new(arc)))
        .await
        .unwrap();
    let ls = c.list_dir("t", true, true, vec![]).await.unwrap();
    assert_eq!(
        ls.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["d/", "d/f"]
    );
    assert_eq!(
        ls[1].sha1.as_deref(),
        Some("11f6ad8ec52a2984abaafd7c3b516503785c2072")
    );
    let sink = Sink::default();
    c.get_tgz("t", Box::new(sink.clone())).await.unwrap();
    let got = sink.data.lock().unwrap().clone();
    let mut a = tar::Archive::new(flate2::read::MultiGzDecoder::new(&got[..]));
    assert_eq!(a.entries().unwrap().count(), 2);
    c.remove_all(vec!["t".into(), "a".into()]).await.unwrap();
    assert!(!s.w.join("t").exists() && !s.w.join("a").exists());
    c.remove_all(vec![]).await.unwrap();
    // Errors carry upstream's status line and body.
    match c.put("../x", GoFileMode(0o644), Bytes::new()).await {
        Err(Error::Status { status, body }) => {
            assert_eq!(status, "400 Bad Request");
            assert!(body.starts_with("invalid 'path' parameter"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    let sink = Sink::default();
    let st = c
        .exec(sh("echo out; echo err >&2; exit 3"), Box::new(sink.clone()))
        .await
        .unwrap();
    assert_eq!(st, ProcessState::Failed("exit status 3".into()));
    assert_eq!(sink.text(), "out\nerr\n");
    assert!(
        c.exec(sh("true"), Box::new(Sink::default()))
            .await
            .unwrap()
            .success()
    );
    c.close().await;
    assert!(matches!(c.status().await, Err(Error::Dead)));
    common::wait_halted(&s).await;
}

#[tokio::test]
async fn exec_output_streams_as_it_is_printed() {
    let s = common::start("P").await;
    let c = client(&s);
    let sink = Sink::default();
    let start = Instant::now();
    let st = c
        .exec(
            sh("echo first; sleep 2; echo second"),
            Box::new(sink.clone()),
        )
        .await
        .unwrap();
    assert!(st.success());
    let times = sink.times.lock().unwrap().clone();
    let (first_at, _) = times[0];
    let latency = first_at - start;
    eprintln!("first line reached the client after {latency:?} (command start included)");
    // Functional check: the first line arrived long before the command ended.
    assert!(
        latency < Duration::from_secs(1),
        "first line arrived only after {latency:?}"
    );
    assert_eq!(sink.text(), "first\nsecond\n");
}

#[tokio::test]
async fn exec_timeout_kills_the_process_group() {
    let s = common::start("P").await;
    let c = client(&s);
    let sink = Sink::default();
    let mut req = sh("sleep 300 & echo $!; wait");
    req.timeout_secs = 1;
    let st = c.exec(req, Box::new(sink.clone())).await.unwrap();
    match st {
        ProcessState::Failed(t) => {
            assert!(t.contains("signal: killed") && t.contains("timeout"), "{t}")
        }
        ProcessState::Ok => panic!("a killed command reported ok"),
    }
    let pid: u32 = sink.text().trim().parse().unwrap();
    for _ in 0..50 {
        if !common::alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("grandchild {pid} survived the timeout");
}

#[tokio::test]
async fn heartbeat_declares_a_silent_peer_dead_once() {
    // A "buildlet" that accepts connections and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = l.accept().await {
            held.push(c);
        }
    });
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let hb = Heartbeat {
        interval: Duration::from_millis(50),
        failures: 3,
        timeout: Duration::from_millis(100),
    };
    let c = HttpClient::tcp(&addr.to_string())
        .heartbeat(Some(hb))
        .on_dead(move || {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .build();
    // A request waiting for headers is released by the death, not by its own 20 s limit.
    let r = tokio::time::timeout(Duration::from_secs(10), c.status())
        .await
        .expect("not released");
    assert!(matches!(r, Err(Error::Dead)), "{r:?}");
    c.close().await;
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_trees_round_trip_through_put_tgz_and_get_tgz(
        children in prop::collection::btree_map("[a-zA-Z0-9_-]{1,12}", common::node(), 0..6)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let s = common::start("P").await;
            let c = client(&s);
            let children: Vec<_> = children.into_iter().collect();
            let src = tempfile::tempdir().unwrap();
            common::build(src.path(), &children);
            // Pack the source with the same codec, send it up, fetch it back, unpack.
            let dir = cap_std::fs::Dir::open_ambient_dir(src.path(), cap_std::ambient_authority()).unwrap();
            let up = buildlet_proto::tgz::pack(&dir, Vec::new(), &Default::default()).unwrap();
            c.put_tgz("tree", Box::new(std::io::Cursor::new(up))).await.unwrap();
            let sink = Sink::default();
            c.get_tgz("tree", Box::new(sink.clone())).await.unwrap();
            let down = sink.data.lock().unwrap().clone();
            let dst = tempfile::tempdir().unwrap();
            let root = cap_std::fs::Dir::open_ambient_dir(dst.path(), cap_std::ambient_authority()).unwrap();
            buildlet_proto::tgz::extract(&down[..], &root, std::time::SystemTime::now()).unwrap();
            assert_eq!(common::snapshot(dst.path()), common::snapshot(src.path()));
            assert_eq!(common::snapshot(&s.w.join("tree")), common::snapshot(src.path()));
        });
    }
}

fn tls_pair() -> (tokio_rustls::TlsAcceptor, String) {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(cfg)),
        cert.cert.pem(),
    )
}

#[tokio::test]
async fn tls_key_pinning_accepts_only_the_expected_key() {
    let (acceptor, pem) = tls_pair();
    let (_, other_pem) = tls_pair();
    let w = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let cfg = buildlet_proto::server::Config::new(w.path().join("w"));
    tokio::spawn(buildlet_proto::server::serve_tls(
        l,
        cfg,
        Some(acceptor),
        std::future::pending(),
    ));
    let connect = buildlet_proto::client::tls_pinned_connect(addr.clone(), &pem).unwrap();
    let good = buildlet_proto::HttpClientBuilder::new(&addr, connect).build();
    assert_eq!(good.status().await.unwrap().version, 29);
    let connect = buildlet_proto::client::tls_pinned_connect(addr.clone(), &other_pem).unwrap();
    let bad = buildlet_proto::HttpClientBuilder::new(&addr, connect).build();
    match bad.status().await {
        Err(Error::Transport(m)) => assert!(m.contains("unexpected TLS certificate"), "{m}"),
        other => panic!("a different key was accepted: {other:?}"),
    }
}

#[tokio::test]
async fn connect_ssh_tunnels_to_the_local_sshd() {
    // An "sshd" that echoes.
    let sshd = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ssh_addr = sshd.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = sshd.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = c.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let s = common::start_with("P", |c| c.ssh_addr = Some(ssh_addr)).await;
    let c = client(&s);
    let mut tunnel = c.connect_ssh("", "").await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tunnel.write_all(b"SSH-2.0-test\r\n").await.unwrap();
    let mut back = [0u8; 14];
    tunnel.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"SSH-2.0-test\r\n");
    // Wrong password: refused before any tunnel.
    let bad = HttpClient::tcp(&s.addr.to_string())
        .password("nope")
        .build();
    assert!(matches!(
        bad.connect_ssh("", "").await,
        Err(Error::Status { .. })
    ));
}
