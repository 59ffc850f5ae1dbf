//! A public side and a private side talking revdial over TLS on loopback.
//!
//! Run with: cargo run -p revdial --example tls_pair
//!
//! The public side listens with a self-signed certificate and serves `/reverse`
//! (registration) and `/revdial` (pickups). The private side registers, runs a Listener,
//! and answers each connection with a greeting. The public side then dials it three times.

use std::sync::Arc;

use bytes::BytesMut;
use revdial::http1::{GO_SWITCHING_PROTOCOLS, request_switch};
use revdial::io::Rewind;
use revdial::{
    Dialer, DialerConfig, HijackedRequest, Listener, ListenerConfig, PickupService, Registry,
    RevConn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let acceptor = TlsAcceptor::from(Arc::new(
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)?,
    ));
    let mut roots = RootCertStore::empty();
    roots.add(der)?;
    let connector = TlsConnector::from(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ));

    // Public side: one accept loop; registrations become Dialers, pickups go to the service.
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let registry = Registry::new();
    let pickup = PickupService::new(registry.clone());
    let (dialers_tx, mut dialers) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = tcp.accept().await {
            let (acceptor, registry, pickup, dialers_tx) = (
                acceptor.clone(),
                registry.clone(),
                pickup.clone(),
                dialers_tx.clone(),
            );
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let Ok(req) = HijackedRequest::read(tls, true).await else {
                    return;
                };
                if req.head.path() == "/reverse" {
                    let mut io = req.io;
                    if io.write_all(GO_SWITCHING_PROTOCOLS).await.is_ok() {
                        let _ =
                            dialers_tx.send(Dialer::new(io, &registry, DialerConfig::default()));
                    }
                } else {
                    let _ = pickup.handle(req).await;
                }
            });
        }
    });
    println!("public side listening on {addr} (TLS)");

    // Private side: dial out once, register, then accept what the public side dials.
    let connect = move || {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").expect("valid name");
            Ok::<_, std::io::Error>(RevConn::new(connector.connect(name, tcp).await?))
        }
    };
    let mut control = connect().await?;
    let mut buf = BytesMut::new();
    request_switch(
        &mut control,
        &mut buf,
        "/reverse",
        &[("X-Revdial-Version", "2")],
    )
    .await?;
    let dial_back: revdial::DialBack = Arc::new(move || Box::pin(connect()));
    let mut listener = Listener::new(
        Rewind::new(buf.freeze(), control),
        dial_back,
        ListenerConfig::default(),
    );
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok(mut conn) = listener.accept().await {
            n += 1;
            let greeting = format!("hello from the private side, stream {n}");
            // shutdown() sends TLS close_notify, so the reader sees a clean end of stream.
            let _ = conn.write_all(greeting.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
    });
    println!("private side registered");

    let dialer = dialers.recv().await.ok_or("registration never arrived")?;
    for _ in 0..3 {
        let mut conn = dialer.dial().await?;
        let mut greeting = String::new();
        conn.read_to_string(&mut greeting).await?;
        println!("public side dialed: {greeting:?}");
    }
    dialer.close();
    Ok(())
}
