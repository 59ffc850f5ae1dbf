//! The reverse pool under load: 1,000 reverse buildlets (real revdial over loopback) and
//! 10,000 queued lease requests.
//!
//! Run with: cargo bench -p pool --bench reverse_pool
//!
//! Reports, from one run:
//! - the time from a lease's release to the next waiter holding its lease (which includes
//!   wiping the machine's work dir over revdial), p50 and p99, with 10,000 waiters queued;
//!   the baseline is the bare quota queue's release-to-grant time in the same process;
//! - the pool's memory per idle reverse buildlet: the RSS growth of this process while
//!   1,000 machines register. The buildlets run in a helper process (this binary again),
//!   so their own memory is not counted; connections are plain TCP on loopback.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use buildlet_proto::reverse::ReverseConfig;
use dashboard_types::keys::{DEV_MASTER_KEY, builder_key};
use pool::providers::reverse::{Health, ReversePool, ReversePoolConfig};
use pool::queue::{Quota, SchedItem};
use pool::{BuildletPool, LeaseRequest};

const MACHINES: usize = 1000;
const WAITERS: usize = 10_000;
const HOST: &str = "host-bench";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The helper process: MACHINES reverse buildlets dialing `addr`.
fn helper(addr: String) {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let w = tempfile::tempdir().unwrap();
        for i in 0..MACHINES {
            let rc = ReverseConfig {
                coordinator: addr.clone(),
                host_type: HOST.into(),
                hostname: format!("m{i}"),
                key: builder_key(DEV_MASTER_KEY.as_bytes(), HOST),
                tls: None,
                reconnect: false,
                max_backoff: Duration::from_secs(1),
                mux: None,
            };
            let cfg = buildlet_proto::server::Config::new(w.path().join(format!("m{i}")));
            tokio::spawn(buildlet_proto::reverse::run(
                rc,
                cfg,
                std::future::pending(),
            ));
            if i % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        std::future::pending::<()>().await;
    });
}

fn main() {
    if let Ok(addr) = std::env::var("XBUILD_POOL_BENCH_HELPER") {
        return helper(addr);
    }
    if std::env::args().any(|a| a == "--list" || a == "--exact") {
        return; // cargo test --benches probes; nothing to list
    }
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let mut cfg = ReversePoolConfig::new(DEV_MASTER_KEY);
    cfg.host_types = vec![(HOST.into(), MACHINES as i64)];
    cfg.require_tls = false;
    // Health checks are exercised by the tests; here they would only add noise.
    cfg.health = Health {
        min_interval: Duration::from_secs(3600),
        ..Health::default()
    };
    let pool = ReversePool::new(cfg);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let p = pool.clone();
    tokio::spawn(async move { p.serve(l, None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib();

    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .env("XBUILD_POOL_BENCH_HELPER", &addr)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while pool.status().host_types[HOST].connected < MACHINES as i64 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} machines registered",
            pool.status().host_types[HOST].connected
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{MACHINES} reverse buildlets registered in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_machine = (rss_kib().saturating_sub(rss_before)) as f64 / MACHINES as f64;

    // Hold every machine, queue WAITERS requests, then release one lease at a time.
    let mut held = Vec::new();
    for _ in 0..MACHINES {
        held.push(
            pool.lease(LeaseRequest::new(SchedItem::new(HOST, "hold")))
                .await
                .unwrap(),
        );
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pool = Arc::new(pool);
    for i in 0..WAITERS {
        let (pool, tx) = (pool.clone(), tx.clone());
        tokio::spawn(async move {
            let mut item = SchedItem::new(HOST, format!("w{i}"));
            item.is_try = true; // first come, first served
            let lease = pool.lease(LeaseRequest::new(item)).await.unwrap();
            let _ = tx.send((Instant::now(), lease));
        });
    }
    while (pool.status().host_types[HOST].waiters as usize) < WAITERS {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lat = Vec::with_capacity(WAITERS);
    for _ in 0..WAITERS {
        let lease = held.pop().unwrap();
        let t0 = Instant::now();
        drop(lease);
        let (t1, next) = rx.recv().await.unwrap();
        lat.push(t1.duration_since(t0));
        held.push(next);
    }
    lat.sort();

    // Baseline: the bare quota queue, release to grant, with the same number of waiters.
    let q = Quota::new(1);
    let mut g = q.enqueue(1, SchedItem::new(HOST, "first")).granted().await;
    let mut waiters: std::collections::VecDeque<_> = (0..WAITERS)
        .map(|i| {
            let mut it = SchedItem::new(HOST, format!("q{i}"));
            it.is_try = true;
            q.enqueue(1, it)
        })
        .collect();
    let mut base = Vec::with_capacity(WAITERS);
    while let Some(w) = waiters.pop_front() {
        let t0 = Instant::now();
        drop(g);
        g = w.granted().await;
        base.push(t0.elapsed());
    }
    base.sort();

    println!("\n== reverse pool ==");
    println!(
        "release -> next waiter holds its lease ({WAITERS} queued, {MACHINES} machines): p50 {:.3} ms, p99 {:.3} ms (goal p99 < 5 ms)",
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "baseline, bare quota release -> grant: p50 {:.4} ms, p99 {:.4} ms; pool/queue p99 ratio {:.0}x (the rest is the work-dir wipe over revdial)",
        pct(&base, 0.5).as_secs_f64() * 1e3,
        pct(&base, 0.99).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() / pct(&base, 0.99).as_secs_f64().max(1e-9)
    );
    println!("pool memory per idle reverse buildlet: {per_machine:.1} KiB (goal < 64 KiB)");
    let _ = helper.kill();
    let _ = helper.wait();
    pool.shutdown();
}
