//! Lease latency of the container provider against the engine's own `create + start`,
//! measured in the same run, and 20 leases at once. Needs the engine and static buildlet
//! of the container tests (`DOCKER_HOST`, `XBUILD_STATIC_BUILDLET`; see README.md):
//!
//!   cargo bench -p pool --bench container_lease
//!
//! - **Latency**: 50 rounds, each timing first the engine's `create + start` of a container
//!   of the same image and limits (a `sleep`, removed untimed), then one lease: request →
//!   the container's buildlet registered and answering `/status`. The lease is then given
//!   back and its container's removal awaited, so rounds do not overlap. p50 and p99 of
//!   each, and their ratios.
//! - **20 concurrent leases**: all requested at once and held together; the time until
//!   all are served, the process's peak RSS above its level before (this process plays
//!   the coordinator: front door, pool, 20 revdial connections), and that no container is
//!   left afterwards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dashboard_types::keys::DEV_MASTER_KEY;
use pool::ledger::Resources;
use pool::providers::container::ContainerBackend;
use pool::providers::ephemeral::{Backend, EphemeralConfig, EphemeralPool, HostSpec, InstanceSpec};
use pool::testing::{FrontDoor, TEST_IMAGE, container_engine, owner};
use pool::{BuildletPool, LeaseRequest, SchedItem};

const HOST: &str = "host-bench";
const ROUNDS: usize = 50;
const CONCURRENT: u64 = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A memory figure of this process in KiB from `/proc/self/status` (`VmHWM`: the peak
/// resident size; `VmRSS`: the current one).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_removed(pool: &EphemeralPool<ContainerBackend>, engine: &ContainerBackend, id: &str) {
    for _ in 0..600 {
        if pool.ledger().used() == Resources::default() && engine.list(id).await.unwrap().is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("containers left: {:?}", engine.list(id).await.unwrap());
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let Some(engine) = container_engine(Some("host".into())).await else {
        return;
    };
    let door = FrontDoor::start(DEV_MASTER_KEY.as_bytes()).await;
    let id = owner();
    let host = HostSpec::new(TEST_IMAGE, 1, 128);
    let cfg = EphemeralConfig::new(
        id.clone(),
        door.addr.to_string(),
        BTreeMap::from([(HOST.to_owned(), host.clone())]),
        Resources {
            instances: CONCURRENT,
            cpus: CONCURRENT,
            memory_mib: 128 * CONCURRENT,
        },
    )
    .coordinator_ca_pem(Some(door.ca_pem.clone()));
    let pool = EphemeralPool::start(cfg, engine.clone(), door.pool.clone())
        .await
        .expect("provider");
    let baseline_owner = owner();

    let (mut engine_times, mut lease_times) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + 2 {
        let name = format!("xb-bench-baseline-{baseline_owner}-{round}");
        let spec = InstanceSpec {
            name: &name,
            host_type: HOST,
            host: &host,
            labels: BTreeMap::from([("xbuild-owner".to_owned(), baseline_owner.clone())]),
            command: vec!["/bin/sleep".into(), "30".into()],
            env: Vec::new(),
        };
        let t = Instant::now();
        engine.create(&spec).await.expect("create + start");
        let e = t.elapsed();
        engine.delete(&name).await.expect("remove");

        let t = Instant::now();
        let lease = pool
            .lease(LeaseRequest::new(SchedItem::new(HOST, "bench")))
            .await
            .expect("lease");
        lease.client().status().await.expect("/status");
        let l = t.elapsed();
        drop(lease);
        wait_removed(&pool, &engine, &id).await;
        // The first rounds warm the engine's caches and our connections.
        if round >= 2 {
            engine_times.push(e);
            lease_times.push(l);
        }
    }
    engine_times.sort();
    lease_times.sort();
    let (e50, e99) = (
        percentile(&engine_times, 0.5),
        percentile(&engine_times, 0.99),
    );
    let (l50, l99) = (
        percentile(&lease_times, 0.5),
        percentile(&lease_times, 0.99),
    );
    println!("lease latency over {ROUNDS} rounds (ms):");
    println!(
        "  engine create+start  p50 {:7.1}  p99 {:7.1}",
        ms(e50),
        ms(e99)
    );
    println!(
        "  lease → /status      p50 {:7.1}  p99 {:7.1}",
        ms(l50),
        ms(l99)
    );
    println!(
        "  ratio                p50 {:7.2}× p99 {:7.2}×   (goal ≤ 1.3×)",
        ms(l50) / ms(e50),
        ms(l99) / ms(e99)
    );

    // 20 at once, held together.
    let before = status_kib("VmRSS");
    // Reset the peak to the current level (Linux: "5" clears VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CONCURRENT as usize + 1));
    let mut tasks = Vec::new();
    for i in 0..CONCURRENT {
        let (pool, barrier) = (pool.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let lease = pool
                .lease(LeaseRequest::new(SchedItem::new(HOST, format!("b{i}"))))
                .await
                .expect("lease");
            lease.client().status().await.expect("/status");
            barrier.wait().await;
            barrier.wait().await;
            drop(lease);
        }));
    }
    barrier.wait().await;
    let all = t.elapsed();
    let held = pool.providers()[0].running;
    let peak = status_kib("VmHWM");
    barrier.wait().await;
    for task in tasks {
        task.await.expect("lease task");
    }
    wait_removed(&pool, &engine, &id).await;
    println!("{CONCURRENT} concurrent leases:");
    println!(
        "  all served in {:.2} s, {held} held at once",
        all.as_secs_f64()
    );
    println!(
        "  process RSS before {:.1} MiB, peak while held {:.1} MiB (+{:.1} MiB, {:.0} KiB per lease)",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / 1024.0,
        peak.saturating_sub(before) as f64 / CONCURRENT as f64
    );
    println!("  containers left afterwards: 0 (checked)");
}
