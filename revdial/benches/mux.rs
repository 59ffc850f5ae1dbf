//! Mux mode against v2 and a direct TLS connection, in one run, as ratios:
//! `cargo bench -p revdial --bench mux`.
//!
//! Both modes register over real TLS on loopback through the same server (the v2 pickups
//! too), once directly and once through a delay line that adds 10 ms each way (a 20 ms
//! RTT: this machine's kernel has no `netem`, so the delay is a userspace relay that holds
//! every chunk for 10 ms without limiting bandwidth). Figures:
//! - dial latency p50: `dial()` returning, and dial plus a one-byte round trip (a mux
//!   dial returns once the stream is announced, without waiting for the peer);
//! - bulk: one 64 MiB stream, and 8 concurrent streams of 16 MiB each (aggregate), mux
//!   and v2 runs alternating, as medians and the median of the pairs' ratios, with the
//!   process's CPU time per GB;
//! - memory: resident bytes per idle mux connection (both ends) and per idle stream.
//!
//! The ratios land in `target/criterion/revdial-mux-ratios.txt` as well.

// The TLS pair and the process figures of the tests' harness.
#[path = "../tests/common/mod.rs"]
mod common;

/// The allocator of our `buildlet` and `coordinator` binaries, which this bench stands
/// for. Mux mode frees each received frame's buffer after it is read; glibc's allocator
/// hands such blocks back to the kernel and faults them in again (see BENCHMARKS.md).
/// `--features bench-system-alloc` measures on the system allocator instead.
#[cfg(not(feature = "bench-system-alloc"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use revdial::http1::{GO_SWITCHING_PROTOCOLS, MUX_SWITCHING_PROTOCOLS, request_switch};
use revdial::io::Rewind;
use revdial::mux::{MUX_HEADER, MUX_PROTOCOL, offers_mux};
use revdial::{
    DialBack, Dialer, DialerConfig, HijackedRequest, Listener, ListenerConfig, MuxConfig,
    PickupService, Registry, RevConn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

const BULK: usize = 64 << 20;
const PART: usize = 16 << 20;

/// A client's way to the server: its address (the server's, or the delay line's).
#[derive(Clone)]
struct Route {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl Route {
    async fn connect(&self) -> RevConn {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        RevConn::new(self.connector.connect(name, tcp).await.unwrap())
    }
}

/// The private side's server: `S` + n (u64) → read n bytes, answer `!`; `P` → echo one byte.
fn serve(mut ln: Listener) {
    tokio::spawn(async move {
        while let Ok(mut c) = ln.accept().await {
            tokio::spawn(async move {
                let mut op = [0u8; 1];
                if c.read_exact(&mut op).await.is_err() {
                    return;
                }
                match op[0] {
                    b'S' => {
                        let mut n = [0u8; 8];
                        c.read_exact(&mut n).await.unwrap();
                        common::sink(&mut c, u64::from_be_bytes(n) as usize).await;
                    }
                    b'P' => {
                        let _ = c.write_all(b"p").await;
                    }
                    _ => {}
                }
            });
        }
    });
}

/// Sends `n` bytes after the sink command and waits for the acknowledgement.
async fn push(mut c: RevConn, n: usize) {
    c.write_all(b"S").await.unwrap();
    c.write_all(&(n as u64).to_be_bytes()).await.unwrap();
    let chunk = vec![7u8; 256 << 10];
    let mut sent = 0;
    while sent < n {
        let k = chunk.len().min(n - sent);
        c.write_all(&chunk[..k]).await.unwrap();
        sent += k;
    }
    c.flush().await.unwrap();
    let mut ack = [0u8; 1];
    c.read_exact(&mut ack).await.unwrap();
}

async fn ping(mut c: RevConn) {
    c.write_all(b"P").await.unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await.unwrap();
}

/// The public server: `/reverse` (v2 or mux, as offered), `/revdial` pickups, and `P`/`S`
/// requests for the direct-connection baseline.
async fn server() -> (
    SocketAddr,
    TlsConnector,
    tokio::sync::mpsc::UnboundedReceiver<Dialer>,
) {
    let common::Tls {
        acceptor,
        connector,
    } = common::tls();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let registry = Registry::new();
    let pickup = PickupService::new(registry.clone());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
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
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                // A direct connection starts with its command byte, not a request.
                let mut first = [0u8; 1];
                if tls.read_exact(&mut first).await.is_err() {
                    return;
                }
                if first[0] == b'P' {
                    let _ = tls.write_all(b"p").await;
                    return;
                }
                if first[0] == b'S' {
                    let mut n = [0u8; 8];
                    tls.read_exact(&mut n).await.unwrap();
                    common::sink(&mut tls, u64::from_be_bytes(n) as usize).await;
                    return;
                }
                let io = Rewind::new(bytes::Bytes::copy_from_slice(&first), tls);
                let Ok(req) = HijackedRequest::read(io, true).await else {
                    return;
                };
                if req.head.path() != "/reverse" {
                    let _ = pickup.handle(req).await;
                    return;
                }
                let mux = offers_mux(
                    req.head
                        .header(MUX_HEADER)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .as_deref(),
                );
                let mut io = req.io;
                if mux {
                    io.write_all(MUX_SWITCHING_PROTOCOLS).await.unwrap();
                    let _ = tx.send(Dialer::new_mux(io, &MuxConfig::default()));
                } else {
                    io.write_all(GO_SWITCHING_PROTOCOLS).await.unwrap();
                    let _ = tx.send(Dialer::new(io, &registry, DialerConfig::default()));
                }
            });
        }
    });
    (addr, connector, rx)
}

/// Registers a private side over `route`; returns the public side's Dialer.
async fn register(
    route: &Route,
    mux: bool,
    dialers: &mut tokio::sync::mpsc::UnboundedReceiver<Dialer>,
) -> Dialer {
    let mut conn = route.connect().await;
    let mut buf = BytesMut::new();
    let mut headers = vec![("X-Revdial-Version", "2")];
    if mux {
        headers.push((MUX_HEADER, MUX_PROTOCOL));
    }
    request_switch(&mut conn, &mut buf, "/reverse", &headers)
        .await
        .unwrap();
    let control = Rewind::new(buf.freeze(), conn);
    let ln = if mux {
        Listener::new_mux(control, &MuxConfig::default())
    } else {
        let r = route.clone();
        let back: DialBack = Arc::new(move || {
            let r = r.clone();
            Box::pin(async move { Ok(r.connect().await) })
        });
        Listener::new(control, back, ListenerConfig::default())
    };
    serve(ln);
    let d = dialers.recv().await.unwrap();
    assert_eq!(d.mode() == revdial::Mode::Mux, mux);
    d
}

/// Relays `listen` to `target`, holding every chunk for `delay` in each direction.
async fn delay_line(target: SocketAddr, delay: Duration) -> SocketAddr {
    let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ln.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = ln.accept().await {
            tokio::spawn(async move {
                let outbound = TcpStream::connect(target).await.unwrap();
                inbound.set_nodelay(true).unwrap();
                outbound.set_nodelay(true).unwrap();
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::spawn(delayed_copy(ri, wo, delay));
                tokio::spawn(delayed_copy(ro, wi, delay));
            });
        }
    });
    addr
}

async fn delayed_copy(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until((at + delay).into()).await;
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Dial latencies: (`dial()` alone, dial + round trip) p50 for each way.
async fn latencies(
    direct: &Route,
    v2: &Dialer,
    mux: &Dialer,
    rounds: usize,
) -> [(Duration, Duration); 3] {
    let (mut d, mut v, mut m) = (
        (Vec::new(), Vec::new()),
        (Vec::new(), Vec::new()),
        (Vec::new(), Vec::new()),
    );
    // Alternate the three kinds so drift hits them alike.
    for _ in 0..rounds {
        let t = Instant::now();
        let c = direct.connect().await;
        d.0.push(t.elapsed());
        ping(c).await;
        d.1.push(t.elapsed());
        for (dialer, out) in [(v2, &mut v), (mux, &mut m)] {
            let t = Instant::now();
            let c = dialer.dial().await.unwrap();
            out.0.push(t.elapsed());
            ping(c).await;
            out.1.push(t.elapsed());
        }
    }
    [
        (p50(d.0), p50(d.1)),
        (p50(v.0), p50(v.1)),
        (p50(m.0), p50(m.1)),
    ]
}

/// One bulk transfer's time: one stream of BULK, or `streams` of PART at once.
async fn bulk_once(dialer: &Dialer, streams: usize) -> Duration {
    let t = Instant::now();
    if streams == 1 {
        push(dialer.dial().await.unwrap(), BULK).await;
    } else {
        let tasks: Vec<_> = (0..streams)
            .map(|_| {
                let d = dialer.clone();
                tokio::spawn(async move { push(d.dial().await.unwrap(), PART).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    t.elapsed()
}

/// Bulk figures of two Dialers, their runs alternating so drift hits them alike.
struct Bulk {
    /// Median GB/s of each.
    gbps: [f64; 2],
    /// Median of the per-pair throughput ratios (first / second): a run pair shares the
    /// machine's state of the moment, which across pairs drifts.
    ratio: f64,
    /// The process's CPU seconds per GB of each, both ends, over all runs.
    cpu: [f64; 2],
}

async fn bulk(dialers: [&Dialer; 2], streams: usize, runs: usize) -> Bulk {
    let mut times = [Vec::new(), Vec::new()];
    let mut cpu = [0.0; 2];
    for _ in 0..runs {
        for (i, d) in dialers.iter().enumerate() {
            let before = common::cpu_seconds();
            times[i].push(bulk_once(d, streams).await.as_secs_f64());
            cpu[i] += common::cpu_seconds() - before;
        }
    }
    let bytes = (if streams == 1 { BULK } else { PART * streams }) as f64;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let ratios = times[1].iter().zip(&times[0]).map(|(b, a)| b / a).collect();
    Bulk {
        gbps: [0, 1].map(|i| bytes / median(times[i].clone()) / 1e9),
        ratio: median(ratios),
        cpu: cpu.map(|c| c / (bytes * runs as f64 / 1e9)),
    }
}

/// Resident bytes per idle mux connection (both ends, over loopback TCP) and per idle
/// stream on one connection.
async fn memory() -> (f64, f64) {
    const CONNS: usize = 200;
    const STREAMS: usize = 100;
    let pair = || async {
        let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = ln.local_addr().unwrap();
        let (a, b) = tokio::join!(ln.accept(), TcpStream::connect(addr));
        let cfg = MuxConfig::default();
        (
            Dialer::new_mux(a.unwrap().0, &cfg),
            Listener::new_mux(b.unwrap(), &cfg),
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = common::rss();
    let mut keep = Vec::new();
    for _ in 0..CONNS {
        keep.push(pair().await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let per_conn = (common::rss().saturating_sub(before)) as f64 / CONNS as f64;
    let (d, mut ln) = keep.pop().unwrap();
    let before = common::rss();
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        let (c, s) = tokio::join!(d.dial(), ln.accept());
        streams.push((c.unwrap(), s.unwrap()));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let per_stream = (common::rss().saturating_sub(before)) as f64 / STREAMS as f64;
    drop((streams, keep));
    (per_conn, per_stream)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then only
    // check that everything connects.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lines = rt.block_on(async {
        // Memory first, before bulk transfers leave freed memory for the allocator to reuse.
        let (conn, stream) = memory().await;
        let (addr, connector, mut dialers) = server().await;
        let mut lines = Vec::new();
        let (rounds, runs) = if quick { (5, 1) } else { (400, 9) };
        for (link, delay) in [("loopback", None), ("20 ms RTT", Some(Duration::from_millis(10)))] {
            let route = Route {
                addr: match delay {
                    Some(d) => delay_line(addr, d).await,
                    None => addr,
                },
                connector: connector.clone(),
            };
            let v2 = register(&route, false, &mut dialers).await;
            let mux = register(&route, true, &mut dialers).await;
            let rounds = if delay.is_some() { rounds / 10 + 1 } else { rounds };
            let [d, v, m] = latencies(&route, &v2, &mux, rounds).await;
            lines.push(format!(
                "{link}: dial p50: mux {:.3} ms, v2 {:.3} ms, direct TLS {:.3} ms; mux/direct {:.3}x (goal <= 0.1x), mux/v2 {:.3}x",
                ms(m.0), ms(v.0), ms(d.0), ms(m.0) / ms(d.0), ms(m.0) / ms(v.0)
            ));
            lines.push(format!(
                "{link}: dial + round trip p50: mux {:.3} ms, v2 {:.3} ms, direct TLS {:.3} ms; mux/direct {:.2}x, mux/v2 {:.2}x",
                ms(m.1), ms(v.1), ms(d.1), ms(m.1) / ms(d.1), ms(m.1) / ms(v.1)
            ));
            let goal = if delay.is_some() { 0.8 } else { 0.9 };
            for streams in [1, 8] {
                let b = bulk([&mux, &v2], streams, runs).await;
                lines.push(format!(
                    "{link}: bulk, {streams} stream(s): mux {:.2} GB/s, v2 {:.2} GB/s (medians); ratio {:.2}x (median of {runs} pairs; goal >= {goal}x); CPU s/GB mux {:.2}, v2 {:.2} ({:.2}x)",
                    b.gbps[0], b.gbps[1], b.ratio, b.cpu[0], b.cpu[1], b.cpu[0] / b.cpu[1]
                ));
            }
            v2.close();
            mux.close();
        }
        lines.push(format!(
            "memory: {:.0} KiB per idle mux connection (both ends), {:.1} KiB per idle stream (both ends)",
            conn / 1024.0,
            stream / 1024.0
        ));
        lines
    });
    let text = lines.join("\n");
    let allocator = if cfg!(feature = "bench-system-alloc") {
        "system"
    } else {
        "mimalloc"
    };
    let text = format!("allocator: {allocator}\n{text}");
    println!("\n== revdial mux ratios ==\n{text}\n");
    if !quick {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("revdial-mux-ratios.txt"), text + "\n");
    }
}
