//! Reverse mode against a TLS coordinator stand-in on loopback: the registration bytes,
//! serving the API through revdial, the real binary in both modes, and --reconnect.

mod common;

use std::sync::Arc;
use std::time::Duration;

use buildlet_proto::reverse::{ReverseConfig, tls_client_config};
use buildlet_proto::{BuildletClient, HttpClient, HttpClientBuilder};
use revdial::http1::GO_SWITCHING_PROTOCOLS;
use revdial::{Dialer, DialerConfig, HijackedRequest, PickupService, Registry, RevConn};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A coordinator stand-in: TLS, `/reverse` (records the raw head, answers Go's bytes) and
/// `/revdial` pickups. Each registration yields (raw head, Dialer).
struct Coordinator {
    addr: std::net::SocketAddr,
    registrations: mpsc::UnboundedReceiver<(String, Dialer)>,
    ca_pem: String,
}

/// A TLS acceptor with a fresh self-signed certificate for localhost and 127.0.0.1, and
/// that certificate's PEM (for the buildlet's `--coordinator-ca`).
fn tls_server() -> (TlsAcceptor, String) {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    (TlsAcceptor::from(Arc::new(cfg)), cert.cert.pem())
}

async fn coordinator() -> Coordinator {
    let (acceptor, ca_pem) = tls_server();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let registry = Registry::new();
    let pickup = PickupService::new(registry.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, registry, pickup, tx) = (
                acceptor.clone(),
                registry.clone(),
                pickup.clone(),
                tx.clone(),
            );
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(req) = HijackedRequest::read(RevConn::new(tls), true).await else {
                    return;
                };
                if req.head.path() == "/reverse" {
                    let raw = format!(
                        "{} {}\n{}",
                        req.head.method,
                        req.head.target,
                        req.head
                            .headers
                            .iter()
                            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v)))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                    let mut io = req.io;
                    io.write_all(GO_SWITCHING_PROTOCOLS).await.unwrap();
                    let _ = tx.send((raw, Dialer::new(io, &registry, DialerConfig::default())));
                } else {
                    let _ = pickup.handle(req).await;
                }
            });
        }
    });
    Coordinator {
        addr,
        registrations: rx,
        ca_pem,
    }
}

fn client_over(d: &Dialer) -> HttpClient {
    let d = d.clone();
    let connect: buildlet_proto::client::Connect = Arc::new(move || {
        let d = d.clone();
        Box::pin(async move { d.dial().await.map_err(std::io::Error::other) })
    });
    HttpClientBuilder::new("buildlet", connect).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_like_upstream_and_serves_through_revdial() {
    let mut co = coordinator().await;
    let w = tempfile::tempdir().unwrap();
    let cfg = ReverseConfig {
        coordinator: co.addr.to_string(),
        host_type: "test-reverse-dial".into(),
        hostname: "rusty".into(),
        key: dashboard_types::keys::builder_key(b"gophers rule", "test-reverse-dial"),
        tls: Some(tls_client_config(Some(co.ca_pem.as_bytes())).unwrap()),
        reconnect: false,
        max_backoff: Duration::from_secs(1),
        mux: None,
    };
    let server = buildlet_proto::server::Config::new(w.path().join("w"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(buildlet_proto::reverse::run(cfg, server, async {
        let _ = stop_rx.await;
    }));
    let (raw, dialer) = tokio::time::timeout(Duration::from_secs(30), co.registrations.recv())
        .await
        .expect("no registration")
        .unwrap();
    assert_eq!(
        raw,
        "GET /reverse\nHost: \nUser-Agent: Go-http-client/1.1\nX-Go-Builder-Hostname: rusty\n\
         X-Go-Builder-Key: bf016c9ac63d1fabc7a60b55728fce32\nX-Go-Builder-Version: 29\n\
         X-Go-Host-Type: test-reverse-dial\nX-Revdial-Version: 2"
    );
    let c = client_over(&dialer);
    assert_eq!(c.status().await.unwrap().version, 29);
    c.put(
        "f",
        buildlet_proto::api::GoFileMode(0o644),
        bytes::Bytes::from_static(b"via revdial"),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(w.path().join("w/f")).unwrap(), b"via revdial");
    let st = c
        .exec(
            buildlet_proto::api::ExecRequest {
                cmd: "/bin/echo".into(),
                args: vec!["hi".into()],
                ..Default::default()
            },
            Box::new(tokio::io::sink()),
        )
        .await
        .unwrap();
    assert!(st.success());
    stop_tx.send(()).unwrap();
    run.await.unwrap().unwrap();
}

fn buildlet_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_buildlet"))
}

/// A child process that is killed on drop.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reverse_mode_reconnects() {
    let mut co = coordinator().await;
    let w = tempfile::tempdir().unwrap();
    let ca = w.path().join("ca.pem");
    std::fs::write(&ca, &co.ca_pem).unwrap();
    let health = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let _p = Proc(
        std::process::Command::new(buildlet_bin())
            .args([
                "--reverse-type",
                "host-linux-amd64-local",
                "--coordinator",
                &co.addr.to_string(),
            ])
            .args(["--hostname", "bin", "--reconnect", "--halt=false"])
            .args([
                "--health-addr",
                &health.to_string(),
                "--coordinator-ca",
                ca.to_str().unwrap(),
            ])
            .arg("--workdir")
            .arg(w.path().join("w"))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let (raw, d1) = tokio::time::timeout(Duration::from_secs(30), co.registrations.recv())
        .await
        .unwrap()
        .unwrap();
    let key = dashboard_types::keys::builder_key(b"gophers rule", "host-linux-amd64-local");
    assert!(
        raw.contains(&format!("X-Go-Builder-Key: {key}")),
        "dev-mode key missing: {raw}"
    );
    assert!(
        raw.contains("X-Go-Host-Type: host-linux-amd64-local"),
        "{raw}"
    );
    assert_eq!(client_over(&d1).status().await.unwrap().version, 29);
    // The coordinator drops the control connection: the buildlet registers again.
    d1.close();
    let (_, d2) = tokio::time::timeout(Duration::from_secs(30), co.registrations.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client_over(&d2).status().await.unwrap().version, 29);
    // And its health listener answers.
    let r = common::send(health, &common::request("GET", "/healthz", None, &[], b"")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_direct_mode_serves_and_stops_on_sigterm() {
    let w = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = std::process::Command::new(buildlet_bin())
        .args(["--listen", &port.to_string()])
        .arg("--workdir")
        .arg(w.path().join("w"))
        .env("META_password", "secret")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let c = HttpClient::tcp(&port.to_string())
        .password("secret")
        .build();
    let mut ok = false;
    for _ in 0..100 {
        if c.status().await.is_ok_and(|s| s.version == 29) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the buildlet never answered");
    let unauth = HttpClient::tcp(&port.to_string()).build();
    assert!(unauth.status().await.is_err());
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// A TLS server that answers every request on a connection with the next reply of
/// `replies`, recording request lines (per connection).
async fn scripted(
    replies: Vec<&'static str>,
) -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<Vec<String>>,
    String,
) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (acceptor, pem) = tls_server();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut r = BufReader::new(tls);
            let mut seen = Vec::new();
            for reply in &replies {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                seen.push(line.trim_end().to_owned());
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).await.unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                r.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
            let _ = tx.send(seen);
        }
    });
    (addr, rx, pem)
}

async fn run_binary_once(addr: std::net::SocketAddr, ca_pem: &str) -> std::process::ExitStatus {
    run_binary(addr, ca_pem, &[], None).await.0
}

/// Runs the reverse-mode binary against `addr` until it exits (30 s at most), with
/// `extra` arguments and `health` as its health address (a free one when `None`).
async fn run_binary(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    extra: &[&str],
    health: Option<std::net::SocketAddr>,
) -> (std::process::ExitStatus, String) {
    let w = tempfile::tempdir().unwrap();
    let ca = w.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let health = match health {
        Some(h) => h,
        None => TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap(),
    };
    let child = std::process::Command::new(buildlet_bin())
        .args([
            "--reverse-type",
            "host-linux-amd64-local",
            "--coordinator",
            &addr.to_string(),
            "--halt=false",
        ])
        .args([
            "--health-addr",
            &health.to_string(),
            "--coordinator-ca",
            ca.to_str().unwrap(),
        ])
        .args(extra)
        .arg("--workdir")
        .arg(w.path().join("w"))
        .env("RUST_LOG", "error")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = rustix::process::Pid::from_child(&child);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let Ok(out) = out else {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        panic!("the buildlet did not exit");
    };
    let out = out.unwrap().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_registration_ends_the_buildlet_even_with_reconnect() {
    let (addr, _rx, pem) = scripted(vec![
        "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 18\r\n\r\ninvalid build key\n",
    ])
    .await;
    // The health address is taken, as by a second buildlet on the host: not fatal.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (status, stderr) = run_binary(
        addr,
        &pem,
        &["--reconnect"],
        Some(taken.local_addr().unwrap()),
    )
    .await;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("no /healthz"), "{stderr}");
    assert!(
        stderr.contains("refused the registration: 412 Precondition Failed: invalid build key"),
        "{stderr}"
    );
    assert!(stderr.contains("--key-file"), "{stderr}");
}

#[test]
fn an_empty_password_is_refused_unless_no_auth_says_so() {
    let w = tempfile::tempdir().unwrap();
    let pw = w.path().join("pw");
    std::fs::write(&pw, "  \n").unwrap();
    let run = |extra: &[&str]| {
        let mut child = std::process::Command::new(buildlet_bin())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--password-file",
                pw.to_str().unwrap(),
            ])
            .args(extra)
            .arg("--workdir")
            .arg(w.path().join("w"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return Some((status, err));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    };
    let (status, err) = run(&[]).expect("a blank password file must stop the buildlet");
    assert!(!status.success());
    assert!(
        err.contains("is empty") && err.contains("--no-auth"),
        "{err}"
    );
    // With --no-auth it serves (and is still running after 10 s).
    assert!(run(&["--no-auth"]).is_none(), "--no-auth must serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_48_registration_follows_one_relative_redirect_only() {
    let redirect =
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: /x/reverse\r\nContent-Length: 0\r\n\r\n";
    let (addr, mut seen, pem) = scripted(vec![redirect, redirect, redirect]).await;
    let status = run_binary_once(addr, &pem).await;
    assert_eq!(status.code(), Some(1));
    let lines = seen.recv().await.unwrap();
    assert_eq!(
        lines,
        ["GET /reverse HTTP/1.1", "GET /x/reverse HTTP/1.1"],
        "requests on the connection"
    );

    let evil =
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: https://evil/\r\nContent-Length: 0\r\n\r\n";
    let (addr, mut seen, pem) = scripted(vec![evil, evil]).await;
    assert_eq!(run_binary_once(addr, &pem).await.code(), Some(1));
    assert_eq!(seen.recv().await.unwrap(), ["GET /reverse HTTP/1.1"]);
}
