//! Test harness: a public server on loopback (TLS with a self-signed certificate, or
//! plaintext) that routes `/reverse` registrations to a channel of Dialers and `/revdial`
//! to the pickup service; and a private side that registers and runs a Listener.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use revdial::http1::{GO_SWITCHING_PROTOCOLS, MUX_SWITCHING_PROTOCOLS, request_switch};
use revdial::io::Rewind;
use revdial::{
    DialBack, Dialer, DialerConfig, HijackedRequest, Listener, ListenerConfig, PickupService,
    Registry, RevConn,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A self-signed certificate for `localhost` and both TLS configurations.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

pub fn tls() -> Tls {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(der).unwrap();
    let client = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    }
}

/// The public server.
pub struct Public {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub dialers: mpsc::UnboundedReceiver<Dialer>,
    pub tls: Option<Arc<Tls>>,
}

/// Starts a public server on loopback; `tls = false` serves plaintext (pickup opt-out).
pub async fn public(tls: bool, config: DialerConfig) -> Public {
    public_on("127.0.0.1:0", tls, config).await
}

/// Starts a public server on `bind`. Every accepted socket is tuned with the Dialer's
/// keep-alive and write timeout, as a production server tunes registration sockets.
pub async fn public_on(bind: &str, tls: bool, config: DialerConfig) -> Public {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = Registry::new();
    let tls = tls.then(|| Arc::new(self::tls()));
    let (tx, rx) = mpsc::unbounded_channel();
    let pickup = if tls.is_some() {
        PickupService::new(registry.clone())
    } else {
        PickupService::new(registry.clone()).allow_plaintext()
    };
    let (reg, acc) = (registry.clone(), tls.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (reg, acc, tx, pickup, config) = (
                reg.clone(),
                acc.clone(),
                tx.clone(),
                pickup.clone(),
                config.clone(),
            );
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let _ = revdial::tcp::tune_control_socket(
                    &tcp,
                    config.keep_alive,
                    config.write_timeout,
                );
                let io: RevConn = match &acc {
                    Some(t) => match t.acceptor.accept(tcp).await {
                        Ok(s) => RevConn::new(s),
                        Err(_) => return,
                    },
                    None => RevConn::new(tcp),
                };
                let Ok(req) = HijackedRequest::read(io, acc.is_some()).await else {
                    return;
                };
                if req.head.path() == "/reverse" {
                    // Mux mode when the peer offers it, with the Dialer's keep-alive.
                    let offered = req.head.header(revdial::mux::MUX_HEADER);
                    let mux =
                        revdial::mux::offers_mux(offered.and_then(|v| std::str::from_utf8(v).ok()));
                    let mut io = req.io;
                    if mux {
                        if io.write_all(MUX_SWITCHING_PROTOCOLS).await.is_ok() {
                            let _ = tx
                                .send(Dialer::new_mux(io, &revdial::MuxConfig::following(&config)));
                        }
                    } else if io.write_all(GO_SWITCHING_PROTOCOLS).await.is_ok() {
                        let _ = tx.send(Dialer::new(io, &reg, config));
                    }
                } else {
                    let _ = pickup.handle(req).await;
                }
            });
        }
    });
    Public {
        addr,
        registry,
        dialers: rx,
        tls,
    }
}

/// Opens a connection to the public server (TLS if it has TLS).
pub async fn connect(addr: SocketAddr, tls: Option<Arc<Tls>>) -> std::io::Result<RevConn> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(match tls {
        Some(t) => {
            let name = ServerName::try_from("localhost").unwrap();
            RevConn::new(t.connector.connect(name, tcp).await?)
        }
        None => RevConn::new(tcp),
    })
}

/// A dial-back function for a Listener.
pub fn dial_back(addr: SocketAddr, tls: Option<Arc<Tls>>) -> DialBack {
    Arc::new(move || {
        let tls = tls.clone();
        Box::pin(async move { connect(addr, tls).await })
    })
}

/// Registers with the public server and returns (the Listener, the server's Dialer).
pub async fn register(p: &mut Public) -> (Listener, Dialer) {
    let mut conn = connect(p.addr, p.tls.clone()).await.unwrap();
    let mut buf = BytesMut::new();
    request_switch(
        &mut conn,
        &mut buf,
        "/reverse",
        &[("X-Revdial-Version", "2")],
    )
    .await
    .unwrap();
    let control = Rewind::new(buf.freeze(), conn);
    let ln = Listener::new(
        control,
        dial_back(p.addr, p.tls.clone()),
        ListenerConfig::default(),
    );
    let d = p.dialers.recv().await.unwrap();
    (ln, d)
}

/// Reads until `n` bytes arrived, then acknowledges with one byte (the benches' bulk
/// receiver).
pub async fn sink<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(io: &mut IO, n: usize) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0;
    while got < n {
        let k = io.read(&mut buf).await.unwrap();
        assert!(k > 0, "stream ended early");
        got += k;
    }
    io.write_all(b"!").await.unwrap();
    io.flush().await.unwrap();
}

/// Resident memory of this process, in bytes.
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// CPU time (user + system) this process has used, in seconds, to the kernel's tick
/// (10 ms): for figures over hundreds of milliseconds.
#[allow(dead_code)]
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
