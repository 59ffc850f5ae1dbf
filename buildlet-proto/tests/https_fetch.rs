//! `POST /writetgz` with an `https://` URL, against the real `buildlet` binary: the archive
//! is fetched with the system's trust roots (here `SSL_CERT_FILE`, a CA the test makes),
//! and a server whose certificate those roots do not vouch for is refused.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An https server on loopback answering every request with `body`; returns its port
/// and the PEM of its self-signed certificate.
async fn https_server(body: Vec<u8>) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = cert.cert.pem();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = [0u8; 4096];
                let _ = tls.read(&mut head).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, pem)
}

/// Starts the buildlet binary with `SSL_CERT_FILE=ca`; returns it and its address.
fn buildlet(dir: &std::path::Path, ca: &std::path::Path) -> (Proc, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Proc(
        Command::new(buildlet_proto::testing::buildlet_bin())
            .args(["--listen", &addr, "--no-auth", "--halt=false", "--workdir"])
            .arg(dir.join("w"))
            .env("SSL_CERT_FILE", ca)
            .env_remove("SSL_CERT_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return (child, addr);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the buildlet never listened on {addr}");
}

/// `POST /writetgz?dir=t` with `url`; returns (status, body).
async fn write_from_url(addr: &str, url: &str) -> (u16, String) {
    let form = format!("url={}", url.replace(':', "%3A").replace('/', "%2F"));
    let req = format!(
        "POST /writetgz?dir=t HTTP/1.1\r\nHost: buildlet\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).await.unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_archives_are_fetched_with_the_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let archive = common::tgz(&[("go/VERSION", b'0', 0o644, b"go1.99-bootstrap\n")]);
    let (port, pem) = https_server(archive).await;
    let trusted = dir.path().join("trusted.pem");
    std::fs::write(&trusted, &pem).unwrap();
    let (_b, addr) = buildlet(dir.path(), &trusted);
    let url = format!("https://127.0.0.1:{port}/go-bootstrap.tgz");
    let (status, body) = write_from_url(&addr, &url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("w/t/go/VERSION")).unwrap(),
        "go1.99-bootstrap\n"
    );

    // Roots that do not vouch for the server: refused, and the reason is named.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let stranger = rcgen::generate_simple_self_signed(vec!["elsewhere".into()]).unwrap();
    let untrusted = other.join("untrusted.pem");
    std::fs::write(&untrusted, stranger.cert.pem()).unwrap();
    let (_b2, addr2) = buildlet(&other, &untrusted);
    let (status, body) = write_from_url(&addr2, &url).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("certificate") || body.contains("UnknownIssuer"),
        "{body}"
    );
    assert!(!other.join("w/t/go/VERSION").exists());
}
