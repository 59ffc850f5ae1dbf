//! The coordinator's pipeline, measured in process against baselines of the same run:
//!
//! - sharding efficiency: 200 fixture units of known durations (1–500 ms) shared by
//!   1, 2, 4 and 8 local buildlets (the build's own and 0, 1, 3, 7 helpers); wall time
//!   against the ideal (serial time / buildlets), and the coordinator's overhead per unit
//!   (a unit's recorded time less its sleep), p50;
//! - queue throughput: 1,000 one-step builds queued at once on 8 local buildlets, builds
//!   per second against the same number of bare `/exec` calls on 8 buildlets, and the
//!   process's peak resident memory.
//!
//! `cargo bench -p coordinator-bin --bench pipeline`; the figures are printed and written
//! to `target/criterion/pipeline-ratios.txt`.

#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use buildlet_proto::api::ExecRequest;
use coordinator_bin::Coordinator;
use coordinator_bin::config::Config;
use coordinator_bin::model::State;
use coordinator_bin::store::NewBuilds;

const UNITS: usize = 200;

/// The fixture's units: durations spread over 1–500 ms, the same every run.
fn units() -> (String, Vec<u64>) {
    let millis: Vec<u64> = (0..UNITS as u64).map(|i| (i * 7919) % 500 + 1).collect();
    let text = millis
        .iter()
        .enumerate()
        .map(|(i, ms)| format!("u{i:03} pass {ms}\n"))
        .collect();
    (text, millis)
}

fn config(dir: &Path, builders: &str) -> Config {
    let text = format!(
        // No branches: nothing is polled, so only the builds the bench queues run.
        "listen = \"127.0.0.1:0\"\ndata_dir = {data:?}\npoll_secs = 3600\n\n[[sources]]\nname = \"repo\"\nurl = {url:?}\nbranches = []\n{builders}",
        data = dir.join("data").display().to_string(),
        url = dir.join("repo").display().to_string(),
    );
    let mut cfg: Config = toml::from_str(&text).expect("a valid bench configuration");
    cfg.reverse_listen = None;
    cfg.with_defaults(dir)
}

async fn start(cfg: Config) -> Arc<Coordinator> {
    let c = Coordinator::open(cfg).await.expect("the coordinator opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = c.clone();
    tokio::spawn(async move { run.run(listener, std::future::pending()).await });
    c.mirror("repo").unwrap().fetch().await.unwrap();
    c
}

/// Queues `n` builds of `builder` at the repository's head.
async fn queue(c: &Coordinator, builder: &str, n: usize) -> Vec<String> {
    let mirror = c.mirror("repo").unwrap();
    let head = mirror.head("main").await.unwrap().unwrap();
    let commit = mirror.commit(&head).await.unwrap();
    let builders = vec![builder.to_string(); n];
    let queued = c
        .store
        .enqueue_commits(
            &[NewBuilds {
                source: "repo",
                branch: "main",
                commit: &commit,
                builders: &builders,
                go_rev: "",
            }],
            None,
        )
        .await
        .unwrap();
    c.work.notify_one();
    queued.into_iter().map(|b| b.id).collect()
}

async fn wait_all(c: &Coordinator, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(1800);
    for id in ids {
        loop {
            let b = c.store.get(id).await.unwrap().unwrap();
            if b.state.is_final() {
                assert_eq!(b.state, State::Succeeded, "build {id} did not succeed");
                break;
            }
            assert!(Instant::now() < deadline, "builds did not finish in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of this process, MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The buildlet counts measured (`PIPELINE_WORKERS=2,4` to measure some).
fn bench_workers() -> Vec<usize> {
    std::env::var("PIPELINE_WORKERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 4, 8])
}

async fn sharding(out: &mut Vec<String>) {
    let (text, millis) = units();
    let serial: u64 = millis.iter().sum();
    for workers in bench_workers() {
        let dir = tempfile::tempdir().unwrap();
        fixture::commit_units(&dir.path().join("repo"), &text, "200 units");
        let builders = format!(
            "[[builders]]\nname = \"shard\"\nhost_type = \"host-bench\"\nsteps = [[\"./make.sh\"]]\nenv = [\"MAKE_LOG={log}\", \"BUILDER_TAG=bench\"]\nsnapshot = true\ntests = {{ list = [\"bin/tool\", \"list\"], run = [\"bin/tool\", \"run\", \"{{units}}\"], helpers = {h}, unit_timeout_secs = 60 }}\n\n[pools.local]\nhost-bench = {workers}\n",
            log = dir.path().join("make.log").display(),
            h = workers - 1,
        );
        let c = start(config(dir.path(), &builders)).await;
        let ids = queue(&c, "shard", 1).await;
        wait_all(&c, &ids).await;
        let steps = c.store.steps(&ids[0]).await.unwrap();
        let wall = steps
            .iter()
            .find(|s| s.name == "tests")
            .map(|s| s.millis)
            .expect("a tests step") as f64;
        let log = c.store.log(&ids[0]).await.unwrap().unwrap_or_default();
        for line in String::from_utf8_lossy(&log).lines() {
            if line.starts_with("helper") || line.starts_with("starting_tests") {
                println!("  {line}");
            }
        }
        let recorded = c.store.units(&ids[0]).await.unwrap();
        assert_eq!(recorded.len(), UNITS);
        let overhead: Vec<f64> = recorded
            .iter()
            .map(|u| {
                let i: usize = u.name[1..].parse().unwrap();
                u.millis as f64 - millis[i] as f64
            })
            .collect();
        let ideal = serial as f64 / workers as f64;
        let buildlets: std::collections::BTreeSet<&str> =
            recorded.iter().map(|u| u.buildlet.as_str()).collect();
        out.push(format!(
            "sharding, {workers} buildlet(s) ({} used): wall {:.2} s, ideal {:.2} s, ratio {:.3}x (goal <= 1.15x); overhead per unit p50 {:.1} ms (goal <= 10 ms)",
            buildlets.len(),
            wall / 1000.0,
            ideal / 1000.0,
            wall / ideal,
            p50(overhead),
        ));
        println!("{}", out.last().unwrap());
    }
}

async fn throughput(out: &mut Vec<String>) {
    const BUILDS: usize = 1000;
    const BUILDLETS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    fixture::commit_units(&dir.path().join("repo"), "u pass 1\n", "one step");
    let builders = format!(
        "[[builders]]\nname = \"one\"\nhost_type = \"host-bench\"\nsteps = [[\"true\"]]\n\n[pools.local]\nhost-bench = {BUILDLETS}\n"
    );
    let c = start(config(dir.path(), &builders)).await;

    // Baseline: the same number of one-command execs straight on 8 buildlets.
    let leases = futures_util::future::join_all((0..BUILDLETS).map(|_| {
        c.pool.lease(pool::LeaseRequest::new(pool::SchedItem::new(
            "host-bench",
            "baseline",
        )))
    }))
    .await;
    let clients: Vec<_> = leases
        .iter()
        .map(|l| l.as_ref().expect("a local buildlet").client_arc())
        .collect();
    let started = Instant::now();
    futures_util::future::join_all(clients.iter().map(|client| async move {
        for _ in 0..BUILDS / BUILDLETS {
            let req = ExecRequest {
                cmd: "true".into(),
                dir: ".".into(),
                ..ExecRequest::default()
            };
            client.exec(req, Box::new(tokio::io::sink())).await.unwrap();
        }
    }))
    .await;
    let direct = BUILDS as f64 / started.elapsed().as_secs_f64();
    drop(clients);
    drop(leases);

    let before = peak_rss_mib();
    let started = Instant::now();
    let ids = queue(&c, "one", BUILDS).await;
    wait_all(&c, &ids).await;
    let rate = BUILDS as f64 / started.elapsed().as_secs_f64();
    out.push(format!(
        "queue throughput: {BUILDS} one-step builds on {BUILDLETS} buildlets: {rate:.0} builds/s (goal >= 100); bare execs {direct:.0}/s; ratio {:.2}x; peak RSS {:.0} MiB (before the builds {before:.0} MiB; goal < 100)",
        rate / direct,
        peak_rss_mib(),
    ));
    println!("{}", out.last().unwrap());
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it quickly as a smoke
    // test with nothing measured.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    rt.block_on(async {
        sharding(&mut out).await;
        if std::env::var("PIPELINE_WORKERS").is_err() {
            throughput(&mut out).await;
        }
    });
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion/pipeline-ratios.txt");
    let _ = std::fs::create_dir_all(path.parent().unwrap());
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}
