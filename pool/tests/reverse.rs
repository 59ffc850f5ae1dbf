//! The reverse provider over loopback TLS: upstream's registration checks and bytes, the
//! shared conformance suite with in-process reverse buildlets, and the real `buildlet`
//! binary: several machines and host types, one killed mid-exec, a wrong key refused.

use std::sync::Arc;
use std::time::Duration;

use buildlet_proto::reverse::{ReverseConfig, tls_client_config};
use dashboard_types::keys::{DEV_MASTER_KEY, builder_key};
use pool::conformance::{Caps, run_all};
use pool::providers::reverse::{Health, ReversePool, ReversePoolConfig};
use pool::tls::ServerTls;
use pool::{BuildletPool, LeaseRequest, SchedItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

struct Coordinator {
    pool: ReversePool,
    addr: std::net::SocketAddr,
    ca_pem: String,
    connector: tokio_rustls::TlsConnector,
}

async fn coordinator(tls: bool) -> Coordinator {
    coordinator_with(tls, Some(revdial::MuxConfig::default())).await
}

async fn coordinator_with(tls: bool, mux: Option<revdial::MuxConfig>) -> Coordinator {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let ca_pem = cert.cert.pem();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let server =
        ServerTls::from_pem(ca_pem.as_bytes(), cert.key_pair.serialize_pem().as_bytes()).unwrap();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = tokio_rustls::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut cfg = ReversePoolConfig::new(DEV_MASTER_KEY);
    cfg.mux = mux;
    cfg.host_types = vec![("host-a".into(), 2), ("host-b".into(), 1)];
    cfg.health = Health {
        min_interval: Duration::from_millis(200),
        jitter: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
    };
    let pool = ReversePool::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = tls.then_some(server);
    let p = pool.clone();
    tokio::spawn(async move { p.serve(l, acceptor).await });
    Coordinator {
        pool,
        addr,
        ca_pem,
        connector: tokio_rustls::TlsConnector::from(Arc::new(client)),
    }
}

/// Sends a raw request over TLS and returns everything read within a short window.
async fn raw(c: &Coordinator, request: &str, wait_for: &[u8]) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let mut s = c
        .connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.windows(wait_for.len().max(1)).any(|w| w == wait_for) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

fn registration(host_type: &str, key: &str, extra: &str) -> String {
    format!(
        "GET /reverse HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nX-Go-Builder-Hostname: h\r\nX-Go-Builder-Key: {key}\r\nX-Go-Builder-Version: 29\r\nX-Go-Host-Type: {host_type}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn case_43_registration_requires_tls() {
    let c = coordinator(false).await;
    let tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let (mut r, mut w) = tcp.into_split();
    w.write_all(registration("host-a", "k", "X-Revdial-Version: 2\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = String::new();
    r.read_to_string(&mut got).await.unwrap();
    assert!(got.starts_with("HTTP/1.1 500 "), "{got}");
    assert!(
        got.ends_with("\r\n\r\nbuildlet registration requires SSL\n"),
        "{got}"
    );
}

#[tokio::test]
async fn case_44_registration_checks_in_order() {
    let c = coordinator(true).await;
    let key = builder_key(DEV_MASTER_KEY.as_bytes(), "host-a");
    let cases = [
        (
            registration("host-a", &key, ""),
            "400 Bad Request",
            "buildlet binary is too old\n",
        ),
        (
            registration("host-a", &key, "X-Revdial-Version: 1\r\n"),
            "400 Bad Request",
            "unknown revdial version\n",
        ),
        (
            registration("host-a", &key, "X-Revdial-Version: 2\r\n")
                .replace("X-Go-Builder-Hostname: h\r\n", ""),
            "400 Bad Request",
            "missing X-Go-Builder-Hostname header\n",
        ),
        (
            registration("", &key, "X-Revdial-Version: 2\r\n"),
            "400 Bad Request",
            "missing X-Go-Host-Type; old buildlet binary?\n",
        ),
        (
            registration("host-a", "0000", "X-Revdial-Version: 2\r\n"),
            "412 Precondition Failed",
            "invalid build key\n",
        ),
    ];
    for (req, status, body) in cases {
        let got = String::from_utf8(raw(&c, &req, body.as_bytes()).await).unwrap();
        assert!(got.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{got}");
        assert!(got.ends_with(&format!("\r\n\r\n{body}")), "{got}");
    }
}

#[tokio::test]
async fn case_45_switch_bytes_and_status_probe() {
    let c = coordinator(true).await;
    let req = registration(
        "test-reverse-dial",
        "bf016c9ac63d1fabc7a60b55728fce32",
        "X-Revdial-Version: 2\r\n",
    );
    let got = raw(&c, &req, b"conn-ready").await;
    let text = String::from_utf8(got).unwrap();
    let rest = text
        .strip_prefix("HTTP/0.0 101 Switching Protocols\r\n\r\n{\"command\":\"keep-alive\"}\n")
        .unwrap_or_else(|| panic!("{text:?}"));
    let v: serde_json::Value = serde_json::from_str(rest.lines().next().unwrap()).unwrap();
    let path = v["connPath"].as_str().unwrap();
    let id = path.strip_prefix("/revdial?revdial.dialer=").unwrap();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{path}"
    );
}

#[tokio::test]
async fn case_47_too_old_buildlet_is_dropped() {
    let c = coordinator(true).await;
    // A buildlet that registers properly but reports version 22.
    let token = fake_buildlet(&c, "old", "22", |_, mut conn| {
        tokio::spawn(async move {
            let mut b = [0u8; 1024];
            let _ = conn.read(&mut b).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"Version\":22}")
                .await;
        });
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), token.cancelled())
        .await
        .expect("control connection not closed");
    assert_eq!(c.pool.status().host_types["host-a"].connected, 0);
}

/// Registers a hand-made reverse buildlet of host type `host-a`, named `hostname`, that
/// reports `version` in its registration and serves each accepted stream with
/// `serve(stream number, stream)`. Returns the Listener's closed token.
async fn fake_buildlet(
    c: &Coordinator,
    hostname: &str,
    version: &str,
    serve: impl Fn(usize, revdial::RevConn) + Send + 'static,
) -> tokio_util::sync::CancellationToken {
    let tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let mut s = c
        .connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let key = builder_key(DEV_MASTER_KEY.as_bytes(), "host-a");
    let mut buf = bytes::BytesMut::new();
    let headers = [
        ("X-Go-Builder-Hostname", hostname),
        ("X-Go-Builder-Key", key.as_str()),
        ("X-Go-Builder-Version", version),
        ("X-Go-Host-Type", "host-a"),
        ("X-Revdial-Version", "2"),
    ];
    revdial::http1::request_switch(&mut s, &mut buf, "/reverse", &headers)
        .await
        .unwrap();
    let (addr, connector) = (c.addr, c.connector.clone());
    let dial: revdial::DialBack = Arc::new(move || {
        let connector = connector.clone();
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").unwrap();
            Ok(revdial::RevConn::new(connector.connect(name, tcp).await?))
        })
    });
    let mut ln = revdial::Listener::new(
        revdial::io::Rewind::new(buf.freeze(), s),
        dial,
        Default::default(),
    );
    let token = ln.closed_token();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok(conn) = ln.accept().await {
            serve(n, conn);
            n += 1;
        }
    });
    token
}

async fn start_in_process(
    c: &Coordinator,
    host_type: &str,
    name: &str,
    w: &std::path::Path,
) -> tokio_util::sync::CancellationToken {
    start_in_process_with(c, host_type, name, w, None).await
}

async fn start_in_process_with(
    c: &Coordinator,
    host_type: &str,
    name: &str,
    w: &std::path::Path,
    mux: Option<revdial::MuxConfig>,
) -> tokio_util::sync::CancellationToken {
    let rc = ReverseConfig {
        coordinator: c.addr.to_string(),
        host_type: host_type.into(),
        hostname: name.into(),
        key: builder_key(DEV_MASTER_KEY.as_bytes(), host_type),
        tls: Some(tls_client_config(Some(c.ca_pem.as_bytes())).unwrap()),
        reconnect: false,
        max_backoff: Duration::from_secs(1),
        mux,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    let server = buildlet_proto::server::Config::new(w.join(name));
    tokio::spawn(
        async move { buildlet_proto::reverse::run(rc, server, s.cancelled_owned()).await },
    );
    stop
}

async fn wait_connected(pool: &ReversePool, host_type: &str, n: i64) {
    for _ in 0..200 {
        if pool
            .status()
            .host_types
            .get(host_type)
            .is_some_and(|h| h.connected == n)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{host_type}: expected {n} connected, status {:?}",
        pool.status().host_types.get(host_type)
    );
}

/// Three machines of `host-a` registering with `mux` (and one plain v2 machine of
/// `host-b` beside them) get the mode they offered, as the status says, and the pool's
/// conformance suite passes over them.
async fn conformance_with(mux: Option<revdial::MuxConfig>) {
    let want = if mux.is_some() { "mux" } else { "v2" };
    let c = coordinator(true).await;
    let w = tempfile::tempdir().unwrap();
    let mut stops = Vec::new();
    for i in 0..3 {
        let name = format!("m{i}");
        stops.push(start_in_process_with(&c, "host-a", &name, w.path(), mux.clone()).await);
    }
    stops.push(start_in_process(&c, "host-b", "old", w.path()).await);
    wait_connected(&c.pool, "host-a", 3).await;
    wait_connected(&c.pool, "host-b", 1).await;
    let st = c.pool.status();
    assert!(
        st.host_types["host-a"]
            .machines
            .values()
            .all(|m| m.revdial == want),
        "{st:?}"
    );
    assert_eq!(st.host_types["host-b"].machines["old"].revdial, "v2");
    run_all(&c.pool, &Caps::fixed("host-a", 3)).await;
    c.pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    conformance_with(None).await;
}

/// Buildlets that offer mux mode get it, and the suite passes over mux streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_mux_mode() {
    conformance_with(Some(revdial::MuxConfig::default())).await;
}

/// A pool that does not accept mux mode answers with a plain `101`; the buildlet that
/// offered it falls back to v2 and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_the_pool_declines_falls_back_to_v2() {
    let c = coordinator_with(true, None).await;
    let w = tempfile::tempdir().unwrap();
    let _stop = start_in_process_with(
        &c,
        "host-a",
        "offers",
        w.path(),
        Some(revdial::MuxConfig::default()),
    )
    .await;
    wait_connected(&c.pool, "host-a", 1).await;
    assert_eq!(
        c.pool.status().host_types["host-a"].machines["offers"].revdial,
        "v2"
    );
    let lease = c
        .pool
        .lease(LeaseRequest::new(SchedItem::new("host-a", "b")))
        .await
        .unwrap();
    assert!(lease.client().status().await.is_ok());
    c.pool.shutdown();
}

use buildlet_proto::testing::buildlet_bin;

struct Proc(std::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_buildlet(
    c: &Coordinator,
    host_type: &str,
    name: &str,
    w: &std::path::Path,
    extra: &[&str],
) -> Proc {
    // Written once per work dir: rewriting it for a second machine would truncate the file
    // while the first one may still be reading it (it then fails with UnknownIssuer).
    let ca = w.join("ca.pem");
    if !ca.exists() {
        std::fs::write(&ca, &c.ca_pem).unwrap();
    }
    Proc(
        std::process::Command::new(buildlet_bin())
            .args([
                "--reverse-type",
                host_type,
                "--coordinator",
                &c.addr.to_string(),
                "--hostname",
                name,
                "--halt=false",
            ])
            .args([
                "--health-addr",
                "127.0.0.1:0",
                "--coordinator-ca",
                ca.to_str().unwrap(),
            ])
            .arg("--workdir")
            .arg(w.join(name))
            .args(extra)
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_binaries_several_types_and_a_machine_killed_mid_exec() {
    let c = coordinator(true).await;
    let w = tempfile::tempdir().unwrap();
    let mut procs: std::collections::HashMap<String, Proc> = Default::default();
    for (ht, name) in [("host-a", "a1"), ("host-a", "a2"), ("host-b", "b1")] {
        procs.insert(name.into(), spawn_buildlet(&c, ht, name, w.path(), &[]));
    }
    wait_connected(&c.pool, "host-a", 2).await;
    wait_connected(&c.pool, "host-b", 1).await;

    let b = c
        .pool
        .lease(LeaseRequest::new(SchedItem::new("host-b", "linux-b")))
        .await
        .unwrap();
    assert_eq!(b.name(), "b1");
    drop(b);

    let lease = c
        .pool
        .lease(LeaseRequest::new(SchedItem::new("host-a", "linux-a")))
        .await
        .unwrap();
    let victim = lease.name().to_owned();
    let client = lease.client_arc();
    let exec = tokio::spawn(async move {
        let req = buildlet_proto::api::ExecRequest {
            cmd: "/bin/sleep".into(),
            args: vec!["300".into()],
            ..Default::default()
        };
        client.exec(req, Box::new(tokio::io::sink())).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(procs.remove(&victim)); // kill -9
    let r = tokio::time::timeout(Duration::from_secs(30), exec)
        .await
        .expect("exec did not fail promptly")
        .unwrap();
    assert!(r.is_err(), "exec on a killed machine returned {r:?}");
    wait_connected(&c.pool, "host-a", 1).await;
    drop(lease);
    let next = c
        .pool
        .lease(LeaseRequest::new(SchedItem::new("host-a", "linux-a")))
        .await
        .unwrap();
    assert_ne!(next.name(), victim);
    c.pool.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_and_the_binary_exits() {
    let c = coordinator(true).await;
    let w = tempfile::tempdir().unwrap();
    let keyfile = w.path().join("key");
    std::fs::write(&keyfile, "0123456789abcdef0123456789abcdef").unwrap();
    let mut p = spawn_buildlet(
        &c,
        "host-a",
        "bad",
        w.path(),
        &["--key-file", keyfile.to_str().unwrap()],
    );
    let status = tokio::task::spawn_blocking(move || {
        let s = p.0.wait();
        std::mem::forget(p);
        s
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(c.pool.status().host_types["host-a"].connected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_failing_its_health_check_leaves_the_pool() {
    let c = coordinator(true).await;
    // A buildlet whose control connection stays up but whose HTTP goes silent after the
    // registration probe, so only the health check (timeout 5 s here) can notice; the
    // client heartbeat would need 30 s or more.
    let parked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let _token = fake_buildlet(&c, "silent", "29", move |n, mut conn| {
        let parked = parked.clone();
        tokio::spawn(async move {
            let mut b = [0u8; 1024];
            let _ = conn.read(&mut b).await;
            if n == 0 {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"Version\":29}")
                    .await;
            }
            parked.lock().unwrap().push(conn); // later requests are never answered
        });
    })
    .await;
    wait_connected(&c.pool, "host-a", 1).await;
    let start = tokio::time::Instant::now();
    while c.pool.status().host_types["host-a"].connected > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "a silent machine stayed in the pool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The front door with small limits: the pool, its address and its CA.
async fn front_door(limits: netguard::Limits) -> (ReversePool, std::net::SocketAddr) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let tls = ServerTls::from_pem(
        cert.cert.pem().as_bytes(),
        cert.key_pair.serialize_pem().as_bytes(),
    )
    .unwrap();
    let mut cfg = ReversePoolConfig::new(DEV_MASTER_KEY);
    cfg.host_types = vec![("host-a".into(), 1)];
    cfg.limits = limits;
    let pool = ReversePool::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let p = pool.clone();
    tokio::spawn(async move { p.serve(l, Some(tls)).await });
    (pool, addr)
}

#[tokio::test]
async fn abandoned_tls_handshakes_are_closed() {
    let limits = netguard::Limits {
        tls_handshake: Duration::from_secs(1),
        ..netguard::Limits::default()
    };
    let (_pool, addr) = front_door(limits).await;
    // Half a ClientHello, then silence.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "an abandoned handshake was kept open");
}

#[tokio::test]
async fn malformed_and_oversized_heads_get_400_and_431() {
    let (_pool, addr) = front_door(netguard::Limits::default()).await;
    // Any certificate, as a buildlet without --coordinator-ca accepts.
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(None).unwrap());
    for (head, want) in [
        (
            b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            [
                b"GET /reverse HTTP/1.1\r\nX-Big: ".to_vec(),
                vec![b'a'; 20 << 10],
            ]
            .concat(),
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
    ] {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let _ = tls.write_all(&head).await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with(want), "{reply:?}");
    }
}

/// Registers `name` with `key` and returns how `reverse::run` ended (`Err` when refused;
/// it keeps serving while admitted, so that case is cut off after `wait`).
async fn register_with_key(
    (addr, ca_pem): (std::net::SocketAddr, String),
    name: &str,
    key: String,
    w: &std::path::Path,
    wait: Duration,
) -> Option<Result<(), buildlet_proto::Error>> {
    let rc = ReverseConfig {
        coordinator: addr.to_string(),
        host_type: "host-a".into(),
        hostname: name.into(),
        key,
        tls: Some(tls_client_config(Some(ca_pem.as_bytes())).unwrap()),
        reconnect: false,
        max_backoff: Duration::from_secs(1),
        mux: Some(revdial::MuxConfig::default()),
    };
    let server = buildlet_proto::server::Config::new(w.join(name));
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::time::timeout(
        wait,
        buildlet_proto::reverse::run(rc, server, stop.cancelled_owned()),
    )
    .await
    .ok()
}

/// An expected instance registers only with its own key, goes to whoever expects it
/// (never into the pool), and once nobody expects it the key opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expected_instances_need_their_own_key() {
    use pool::providers::reverse::instance_key;
    let c = coordinator(true).await;
    let w = tempfile::tempdir().unwrap();
    let master = DEV_MASTER_KEY.as_bytes();
    let refused = |key: String| {
        let (front, dir) = ((c.addr, c.ca_pem.clone()), w.path().to_owned());
        async move {
            let r = register_with_key(front, "inst-1", key, &dir, Duration::from_secs(10)).await;
            assert!(
                matches!(r, Some(Err(buildlet_proto::Error::Refused { .. }))),
                "{r:?}"
            );
        }
    };
    let mut expected = c.pool.expect("inst-1", "host-a");
    // The host type's key does not admit an expected name.
    refused(builder_key(master, "host-a")).await;
    // Its own key does; the buildlet is handed over, not added to the pool.
    let door = tokio::spawn({
        let (front, dir) = ((c.addr, c.ca_pem.clone()), w.path().to_owned());
        let key = instance_key(DEV_MASTER_KEY.as_bytes(), "inst-1");
        async move { register_with_key(front, "inst-1", key, &dir, Duration::from_secs(30)).await }
    });
    let arrival = tokio::time::timeout(Duration::from_secs(10), expected.arrived())
        .await
        .expect("registered in time")
        .expect("handed over");
    arrival
        .client
        .status()
        .await
        .expect("/status through revdial");
    assert!(
        c.pool.status().host_types["host-a"].machines.is_empty(),
        "an expected instance joined the pool"
    );
    arrival.dialer.close();
    door.abort();
    // Once no longer expected, the instance's key is refused.
    drop(expected);
    refused(instance_key(master, "inst-1")).await;
}
