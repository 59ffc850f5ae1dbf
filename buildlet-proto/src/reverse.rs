//! Reverse mode (spec §6): the buildlet dials the coordinator, registers, and serves its
//! HTTP API on connections that the coordinator opens through revdial.
//!
//! The registration is byte-compatible with upstream: `GET /reverse` with an empty `Host`,
//! Go's User-Agent and the `X-Go-*` headers in Go's (sorted) order; the coordinator's
//! `HTTP/0.0 101` is accepted and bytes read past it stay with the control stream.
//! Beyond upstream, [`ReverseConfig::reconnect`] redials with exponential backoff and
//! jitter when the connection ends, instead of relying on an outside supervisor.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use revdial::http1::request_switch;
use revdial::io::Rewind;
use revdial::{DialBack, Listener, ListenerConfig, RevConn};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::api::VERSION;
use crate::server::Config;

/// How to reach and register with the coordinator.
#[derive(Clone)]
pub struct ReverseConfig {
    /// `host:port` of the coordinator.
    pub coordinator: String,
    /// The host type this machine serves (`X-Go-Host-Type`).
    pub host_type: String,
    /// Advisory machine name (`X-Go-Builder-Hostname`).
    pub hostname: String,
    /// `X-Go-Builder-Key`: hex HMAC-MD5 of the host type under the master key.
    pub key: String,
    /// TLS client configuration for the coordinator (see [`tls_client_config`]); `None`
    /// speaks plain TCP (only for loopback: tests, benchmarks, a local TLS terminator).
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Redial after the connection ends (with backoff) instead of returning.
    pub reconnect: bool,
    /// Longest wait between redials. Default 60 s.
    pub max_backoff: Duration,
    /// Offer revdial's multiplexed mode at registration (every connection a stream on the
    /// registration connection, no dial-back). A coordinator that does not accept it (Go's)
    /// gets v2. `None` offers nothing.
    pub mux: Option<revdial::MuxConfig>,
}

impl std::fmt::Debug for ReverseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReverseConfig")
            .field("coordinator", &self.coordinator)
            .field("host_type", &self.host_type)
            .field("hostname", &self.hostname)
            .field("reconnect", &self.reconnect)
            .field("mux", &self.mux.is_some())
            .finish()
    }
}

/// TLS settings as upstream's buildlet uses them: certificate verification is skipped in
/// dev mode (a coordinator address not starting with `farmer.golang.org`), unless a CA
/// is given; otherwise the CA (PEM) is trusted.
pub fn tls_client_config(
    ca_pem: Option<&[u8]>,
) -> std::io::Result<Arc<tokio_rustls::rustls::ClientConfig>> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let cfg = match ca_pem {
        Some(pem) => {
            use tokio_rustls::rustls::pki_types::CertificateDer;
            use tokio_rustls::rustls::pki_types::pem::PemObject;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| std::io::Error::other(format!("CA file: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| std::io::Error::other(format!("CA file: {e}")))?;
            }
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::tls::KeyCheck::any()))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Opens one TCP+TLS connection to the coordinator (10 s connect, 30 s handshake).
async fn dial(cfg: &ReverseConfig) -> std::io::Result<RevConn> {
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(&cfg.coordinator),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    tcp.set_nodelay(true)?;
    // A coordinator that vanishes without a FIN is noticed by TCP keep-alive probes going
    // unanswered (the Go Dialer's own keep-alives and the Listener's idle limit are the
    // other half).
    let d = revdial::DialerConfig::default();
    revdial::tcp::tune_control_socket(&tcp, d.keep_alive, d.write_timeout)?;
    let Some(tls) = &cfg.tls else {
        return Ok(RevConn::new(tcp));
    };
    // SNI is the address minus a trailing :443; in dev mode it may carry a port, which is
    // not a valid DNS name, so fall back to its host part.
    let name = cfg
        .coordinator
        .strip_suffix(":443")
        .unwrap_or(&cfg.coordinator);
    let host = name.rsplit_once(':').map_or(name, |(h, _)| h);
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::other(format!("bad coordinator name {host:?}: {e}")))?;
    let tls = tokio::time::timeout(
        Duration::from_secs(30),
        TlsConnector::from(tls.clone()).connect(server_name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timeout"))??;
    Ok(RevConn::new(tls))
}

/// Dials and registers once; returns the revdial Listener on success.
pub async fn register(cfg: &ReverseConfig) -> crate::Result<Listener> {
    let mut conn = dial(cfg)
        .await
        .map_err(|e| crate::Error::Transport(format!("dialing coordinator: {e}")))?;
    let version = VERSION.to_string();
    let mut headers = vec![
        ("X-Go-Builder-Hostname", cfg.hostname.as_str()),
        ("X-Go-Builder-Key", cfg.key.as_str()),
        ("X-Go-Builder-Version", version.as_str()),
        ("X-Go-Host-Type", cfg.host_type.as_str()),
        ("X-Revdial-Version", "2"),
    ];
    if cfg.mux.is_some() {
        headers.push((revdial::mux::MUX_HEADER, revdial::mux::MUX_PROTOCOL));
    }
    let mut buf = BytesMut::new();
    let switched = request_switch(&mut conn, &mut buf, "/reverse", &headers)
        .await
        .map_err(|e| match e {
            revdial::http1::SwitchError::Status { status, body } if status.starts_with('4') => {
                crate::Error::Refused { status, body }
            }
            e => crate::Error::Transport(format!("coordinator /reverse: {e}")),
        })?;
    let control = Rewind::new(buf.freeze(), conn);
    let accepted = switched
        .header(revdial::mux::MUX_HEADER)
        .map(|v| String::from_utf8_lossy(v).into_owned());
    if let Some(mux) = cfg
        .mux
        .as_ref()
        .filter(|_| revdial::mux::offers_mux(accepted.as_deref()))
    {
        return Ok(Listener::new_mux(control, mux));
    }
    let dial_cfg = cfg.clone();
    let dial_back: DialBack = Arc::new(move || {
        let c = dial_cfg.clone();
        Box::pin(async move { dial(&c).await })
    });
    Ok(Listener::new(control, dial_back, ListenerConfig::default()))
}

/// Registers and serves until the control connection ends (then, with `reconnect`,
/// registers again after a backoff) or `shutdown` completes.
pub async fn run(
    cfg: ReverseConfig,
    server: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> crate::Result<()> {
    let router = crate::server::router(server.clone());
    let server = Arc::new(server);
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(500);
    loop {
        let registered = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = register(&cfg) => r,
        };
        match registered {
            Ok(mut ln) => {
                tracing::info!(coordinator = %cfg.coordinator, host_type = %cfg.host_type, revdial = ln.mode().as_str(), "registered");
                backoff = Duration::from_millis(500);
                loop {
                    let conn = tokio::select! {
                        _ = &mut shutdown => { ln.close(); return Ok(()) }
                        c = ln.accept() => c,
                    };
                    let Ok(conn) = conn else { break };
                    tokio::spawn(crate::server::serve_connection(
                        conn,
                        server.clone(),
                        router.clone(),
                    ));
                }
                tracing::warn!("control connection to the coordinator ended");
                if !cfg.reconnect {
                    return Ok(());
                }
            }
            // A refusal is permanent (a wrong key stays wrong): say so and stop.
            Err(e @ crate::Error::Refused { .. }) => return Err(e),
            Err(e) if cfg.reconnect => {
                tracing::warn!("registration failed: {e}; retrying in {backoff:?}")
            }
            Err(e) => return Err(e),
        }
        let wait = jitter(backoff);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(cfg.max_backoff);
    }
}

/// A wait between half and all of `d`, so a fleet that lost its coordinator does not
/// come back in lockstep.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let frac = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX);
    d.mul_f64(0.5 + frac / 2.0)
}
