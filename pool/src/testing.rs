//! Fixtures for tests and benchmarks of the on-demand providers (feature `conformance`):
//! a reverse front door on loopback TLS, and the container engine with the buildlet image.
//!
//! A missing engine or static buildlet makes [`container_engine`] print why and return
//! `None`, so the test skips loudly; `CONTAINER_REQUIRE=1` (set by `.ci/run`) turns that
//! into a failure.

use std::net::SocketAddr;
use std::path::PathBuf;

#[cfg(feature = "kubernetes")]
pub mod kubernetes;

use crate::providers::reverse::{ReversePool, ReversePoolConfig};
use crate::tls::ServerTls;

/// A reverse pool served with TLS on `127.0.0.1`, as a coordinator's front door.
#[derive(Debug)]
pub struct FrontDoor {
    /// The pool; expected buildlets register through it.
    pub pool: ReversePool,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate (self-signed for `127.0.0.1`, `localhost` and any names given),
    /// to trust.
    pub ca_pem: String,
}

impl FrontDoor {
    /// Serves a reverse pool with master key `master_key` on a free loopback port.
    pub async fn start(master_key: &[u8]) -> FrontDoor {
        FrontDoor::start_on("127.0.0.1:0", &[], master_key).await
    }

    /// The same on `bind`, its certificate also naming `names` (say, the name by which
    /// containers reach their host).
    pub async fn start_on(bind: &str, names: &[&str], master_key: &[u8]) -> FrontDoor {
        let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        all.extend(names.iter().map(|n| n.to_string()));
        let cert = rcgen::generate_simple_self_signed(all).expect("certificate");
        let ca_pem = cert.cert.pem();
        let tls = ServerTls::from_pem(ca_pem.as_bytes(), cert.key_pair.serialize_pem().as_bytes())
            .expect("TLS acceptor");
        let pool = ReversePool::new(ReversePoolConfig::new(master_key.to_vec()));
        let l = tokio::net::TcpListener::bind(bind).await.expect("bind");
        let addr = l.local_addr().expect("address");
        let p = pool.clone();
        tokio::spawn(async move { p.serve(l, Some(tls)).await });
        FrontDoor { pool, addr, ca_pem }
    }
}

/// The tag the tests give the buildlet image.
pub const TEST_IMAGE: &str = "localhost/xbuild-buildlet:test";

/// Prints why a test cannot run here and `how` to make it run, then lets it return; under
/// `<require>=1` (`CONTAINER_REQUIRE`, `KUBERNETES_REQUIRE`, set by `.ci/run`) it fails
/// instead.
pub fn skip(require: &str, why: &str, how: &str) {
    if std::env::var_os(require).is_some_and(|v| v == "1") {
        panic!("{require}=1 but {why}");
    }
    eprintln!("\n*** SKIPPED: {why}.\n*** {how}; {require}=1 turns this skip into a failure.\n");
}

/// The container tests' [`skip`].
#[cfg(feature = "container")]
fn skip_containers(why: &str) {
    skip(
        "CONTAINER_REQUIRE",
        why,
        "Set DOCKER_HOST=unix:///path/to/engine.sock (Docker, or `podman system service`) \
         and XBUILD_STATIC_BUILDLET to a statically linked buildlet (see README.md)",
    );
}

/// The statically linked buildlet at `XBUILD_STATIC_BUILDLET`; `None` after `skipping`.
pub fn static_buildlet(skipping: fn(&str)) -> Option<PathBuf> {
    let path = std::env::var_os("XBUILD_STATIC_BUILDLET").map(PathBuf::from);
    if path.is_none() {
        skipping("XBUILD_STATIC_BUILDLET is not set");
    }
    path
}

#[cfg(feature = "container")]
static IMAGE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// The engine at `DOCKER_HOST` with [`TEST_IMAGE`] built (once per process) from the
/// buildlet at `XBUILD_STATIC_BUILDLET` and busybox at `XBUILD_BUSYBOX` (default
/// `/bin/busybox`); containers join `network`. `None` after [`skip`] when either is missing.
#[cfg(feature = "container")]
pub async fn container_engine(
    network: Option<String>,
) -> Option<crate::providers::container::ContainerBackend> {
    use crate::providers::container::{ContainerBackend, image};
    let Some(socket) = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|s| s.starts_with("unix://"))
    else {
        skip_containers("DOCKER_HOST does not name a container engine's unix socket");
        return None;
    };
    let buildlet = static_buildlet(skip_containers)?;
    let engine = match ContainerBackend::connect(&socket, network).await {
        Ok(e) => e,
        Err(e) => {
            skip_containers(&format!("no container engine answers: {e}"));
            return None;
        }
    };
    let busybox = std::env::var_os("XBUILD_BUSYBOX")
        .map_or_else(|| PathBuf::from(image::DEFAULT_BUSYBOX), PathBuf::from);
    let spec = image::ImageSpec {
        tag: TEST_IMAGE.into(),
        buildlet,
        busybox,
    };
    let docker = engine.docker().clone();
    IMAGE
        .get_or_init(|| async move {
            image::build(&docker, &spec)
                .await
                .unwrap_or_else(|e| panic!("building the test image: {e}"));
        })
        .await;
    Some(engine)
}

/// A fresh owner id, so concurrent tests never sweep each other's instances.
pub fn owner() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("OS randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
