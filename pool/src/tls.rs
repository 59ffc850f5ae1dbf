//! The TLS server of the reverse front door, tolerant of the peers that dial it.
//!
//! Upstream's buildlet (and any revdial/v2 `Listener` built like it) dials the coordinator
//! with `tls.Config{ServerName: "HOST:PORT"}` for every port but 443, so its ClientHello
//! carries `HOST:PORT` as the SNI host name. RFC 6066 does not allow that, and rustls 0.23
//! answers it with a fatal `illegal_parameter` alert, with no setting to relax it; Go's TLS
//! server and OpenSSL accept it. The handshake transcript covers the ClientHello as sent,
//! so the name cannot be repaired in flight either. This server therefore uses OpenSSL
//! (the system's libssl), which accepts any SNI name without a NUL byte, and never
//! selects a certificate by it.

use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncWrite};

/// A TLS server identity: a certificate chain and its key, cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: Arc<SslAcceptor>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A server presenting `cert_pem` (the leaf first, then any intermediates) with the
    /// private key `key_pem` (PKCS#8, PKCS#1 or SEC1 PEM).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> std::io::Result<ServerTls> {
        let invalid = |what: &str, e: openssl::error::ErrorStack| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
        };
        let mut chain = X509::stack_from_pem(cert_pem)
            .map_err(|e| invalid("reading the certificate PEM", e))?
            .into_iter();
        let leaf = chain.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no certificate in PEM")
        })?;
        let key =
            PKey::private_key_from_pem(key_pem).map_err(|e| invalid("reading the key PEM", e))?;
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .map_err(|e| invalid("setting up TLS", e))?;
        b.set_certificate(&leaf)
            .map_err(|e| invalid("using the certificate", e))?;
        for extra in chain {
            b.add_extra_chain_cert(extra)
                .map_err(|e| invalid("adding an intermediate certificate", e))?;
        }
        b.set_private_key(&key)
            .map_err(|e| invalid("using the key", e))?;
        b.check_private_key()
            .map_err(|e| invalid("the key does not match the certificate", e))?;
        Ok(ServerTls {
            acceptor: Arc::new(b.build()),
        })
    }

    /// Runs the server side of a handshake on `io` (callers bound it in time:
    /// `netguard::Guard::handshake`).
    pub async fn accept<S>(&self, io: S) -> std::io::Result<tokio_openssl::SslStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ssl = openssl::ssl::Ssl::new(self.acceptor.context()).map_err(std::io::Error::other)?;
        let mut stream = tokio_openssl::SslStream::new(ssl, io).map_err(std::io::Error::other)?;
        std::pin::Pin::new(&mut stream)
            .accept()
            .await
            .map_err(std::io::Error::other)?;
        Ok(stream)
    }
}
