//! revdial against direct TLS on loopback, measured in the same run.
//! (Criterion's macros generate undocumented items, hence the allow below.)
//!
//! Run with: cargo bench -p revdial
//!
//! Criterion reports each case; the closing "ratios" report (printed, and written to
//! `target/criterion/revdial-ratios.txt`) gives what BENCHMARKS.md records: dial latency
//! p50/p99 through revdial over a direct TLS connect, dials per second with 1 and 8 in
//! flight, and bulk throughput over one revdial stream over one direct TLS stream.
//! Both sides use the same rustls configuration (so the same cipher suite) and the same
//! server process; pickups reuse TLS sessions exactly as any rustls client does.

#![allow(missing_docs)]

// The TLS pair and the bulk receiver of the tests' harness.
#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use revdial::http1::{GO_SWITCHING_PROTOCOLS, request_switch};
use revdial::io::Rewind;
use revdial::{
    Dialer, DialerConfig, HijackedRequest, Listener, ListenerConfig, PickupService, Registry,
    RevConn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

const BULK: usize = 64 << 20;

struct Env {
    addr: SocketAddr,
    connector: TlsConnector,
    dialer: Dialer,
    suite: String,
}

impl Env {
    /// A TLS connection to the server, handshake complete.
    async fn connect(&self) -> RevConn {
        connect(self.addr, &self.connector).await
    }
}

async fn connect(addr: SocketAddr, connector: &TlsConnector) -> RevConn {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    RevConn::new(connector.connect(name, tcp).await.unwrap())
}

async fn setup() -> Env {
    let common::Tls {
        acceptor,
        connector,
    } = common::tls();

    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let registry = Registry::new();
    let pickup = PickupService::new(registry.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = tcp.accept().await {
            sock.set_nodelay(true).unwrap();
            let (acceptor, registry, pickup, tx) = (
                acceptor.clone(),
                registry.clone(),
                pickup.clone(),
                tx.clone(),
            );
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let Ok(req) = HijackedRequest::read(tls, true).await else {
                    return;
                };
                match req.head.path() {
                    "/reverse" => {
                        let mut io = req.io;
                        io.write_all(GO_SWITCHING_PROTOCOLS).await.unwrap();
                        let _ = tx.send(Dialer::new(io, &registry, DialerConfig::default()));
                    }
                    "/sink" => common::sink(&mut { req.io }, BULK).await,
                    _ => {
                        let _ = pickup.handle(req).await;
                    }
                }
            });
        }
    });

    // The private side: every accepted stream sinks BULK bytes if it is sent any.
    let mut control = connect(addr, &connector).await;
    let mut buf = BytesMut::new();
    request_switch(&mut control, &mut buf, "/reverse", &[])
        .await
        .unwrap();
    let c2 = connector.clone();
    let dial_back: revdial::DialBack = Arc::new(move || {
        let c2 = c2.clone();
        Box::pin(async move { Ok(connect(addr, &c2).await) })
    });
    let mut ln = Listener::new(
        Rewind::new(buf.freeze(), control),
        dial_back,
        ListenerConfig::default(),
    );
    tokio::spawn(async move {
        while let Ok(mut c) = ln.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if c.read_exact(&mut first).await.is_ok() {
                    common::sink(&mut c, BULK - 1).await;
                }
            });
        }
    });
    let dialer = rx.recv().await.unwrap();
    let probe = connect(addr, &connector).await;
    drop(probe);
    let suite = {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        format!(
            "{:?}",
            tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite())
        )
    };
    Env {
        addr,
        connector,
        dialer,
        suite,
    }
}

async fn bulk_over(mut c: RevConn) {
    let chunk = vec![7u8; 256 * 1024];
    let mut sent = 0;
    while sent < BULK {
        let n = chunk.len().min(BULK - sent);
        c.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    c.flush().await.unwrap();
    let mut ack = [0u8; 1];
    c.read_exact(&mut ack).await.unwrap();
}

async fn bulk_direct(env: &Env) {
    let mut c = env.connect().await;
    c.write_all(b"GET /sink HTTP/1.1\r\nHost: \r\n\r\n")
        .await
        .unwrap();
    bulk_over(c).await;
}

async fn bulk_revdial(env: &Env) {
    let c = env.dialer.dial().await.unwrap();
    bulk_over(c).await;
}

/// Runs `n` dials with `in_flight` concurrent, returns the elapsed time.
async fn dials(env: &Arc<Env>, n: usize, in_flight: usize, revdial: bool) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..in_flight {
        let env = env.clone();
        let per = n / in_flight + usize::from(w < n % in_flight);
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                if revdial {
                    drop(env.dialer.dial().await.unwrap());
                } else {
                    drop(env.connect().await);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = Arc::new(rt.block_on(setup()));

    let mut g = c.benchmark_group("dial");
    g.bench_function("direct_tls_connect", |b| {
        b.to_async(&rt).iter(|| async { drop(env.connect().await) })
    });
    g.bench_function("revdial_dial", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(env.dialer.dial().await.unwrap()) })
    });
    g.finish();

    let mut g = c.benchmark_group("dial_8_in_flight");
    for (name, rev) in [("direct_tls_connect", false), ("revdial_dial", true)] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let env = env.clone();
                async move { dials(&env, iters as usize, 8, rev).await }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("bulk_64MiB");
    g.throughput(Throughput::Bytes(BULK as u64)).sample_size(10);
    g.bench_function("direct_tls_stream", |b| {
        b.to_async(&rt).iter(|| bulk_direct(&env))
    });
    g.bench_function("revdial_stream", |b| {
        b.to_async(&rt).iter(|| bulk_revdial(&env))
    });
    g.finish();

    report(&rt, &env);
}

/// The figures BENCHMARKS.md records, as ratios measured in this run.
fn report(rt: &Runtime, env: &Arc<Env>) {
    const BLOCKS: usize = 10;
    const PER_BLOCK: usize = 200;
    let (mut direct, mut rev) = (Vec::new(), Vec::new());
    rt.block_on(async {
        // Alternate blocks of each kind so drift (CPU frequency, other load) hits both
        // alike, without one sample paying for the other kind's connection teardown.
        for _ in 0..BLOCKS {
            for _ in 0..PER_BLOCK {
                let t = Instant::now();
                drop(env.connect().await);
                direct.push(t.elapsed());
            }
            for _ in 0..PER_BLOCK {
                let t = Instant::now();
                drop(env.dialer.dial().await.unwrap());
                rev.push(t.elapsed());
            }
        }
    });
    direct.sort();
    rev.sort();
    let mut lines = vec![format!("cipher suite: {}", env.suite)];
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (d, r) = (percentile(&direct, p), percentile(&rev, p));
        lines.push(format!(
            "dial latency {name}: revdial {:.3} ms, direct TLS {:.3} ms, ratio {:.2}x (goal <= 1.3x)",
            r.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e3,
            r.as_secs_f64() / d.as_secs_f64()
        ));
    }
    for in_flight in [1usize, 8] {
        let n = 2000;
        let (d, r) = rt.block_on(async {
            (
                dials(env, n, in_flight, false).await,
                dials(env, n, in_flight, true).await,
            )
        });
        let (dps, rps) = (n as f64 / d.as_secs_f64(), n as f64 / r.as_secs_f64());
        lines.push(format!(
            "dials/s with {in_flight} in flight: revdial {rps:.0}/s, direct TLS {dps:.0}/s, ratio {:.2}x (goal >= 0.8x)",
            rps / dps
        ));
    }
    let (mut d, mut r) = (Duration::MAX, Duration::MAX);
    rt.block_on(async {
        for _ in 0..5 {
            let t = Instant::now();
            bulk_direct(env).await;
            d = d.min(t.elapsed());
            let t = Instant::now();
            bulk_revdial(env).await;
            r = r.min(t.elapsed());
        }
    });
    let gbs = |t: Duration| BULK as f64 / t.as_secs_f64() / 1e9;
    lines.push(format!(
        "bulk throughput (64 MiB, best of 5): revdial {:.2} GB/s, direct TLS {:.2} GB/s, ratio {:.2}x (goal >= 0.95x)",
        gbs(r),
        gbs(d),
        gbs(r) / gbs(d)
    ));
    let text = lines.join("\n");
    println!("\n== revdial ratios ==\n{text}\n");
    // Beside criterion's own reports in the workspace's target dir (benches run from the
    // package's folder, so a relative path would land inside the source tree).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("revdial-ratios.txt"), text + "\n");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
