//! The container provider on a real engine (Podman's Docker-compatible socket in CI, or
//! Docker): the conformance suite, quotas under 20 concurrent leases, start-up failures
//! and timeouts, a container killed under a lease, and the sweep of orphans.
//!
//! Containers share the host's network here so their buildlets reach the test's loopback
//! front door; nothing is published either way. Skips loudly without an engine (see
//! `pool::testing`), fails instead under `CONTAINER_REQUIRE=1`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use buildlet_proto::api::ExecRequest;
use dashboard_types::keys::DEV_MASTER_KEY;
use pool::conformance::{Caps, run_all, runs_true};
use pool::ledger::Resources;
use pool::providers::container::ContainerBackend;
use pool::providers::ephemeral::{Backend, EphemeralConfig, EphemeralPool, HostSpec};
use pool::testing::{FrontDoor, TEST_IMAGE, container_engine, owner};
use pool::{BuildletPool, Error, LeaseRequest, SchedItem};

const HOST: &str = "host-linux-container";

struct Farm {
    pool: EphemeralPool<ContainerBackend>,
    engine: ContainerBackend,
    owner: String,
    _door: FrontDoor,
}

fn limits(instances: u64, cpus: u64, memory_mib: u64) -> Resources {
    Resources {
        instances,
        cpus,
        memory_mib,
    }
}

/// How a test's provider differs from the default.
struct Opts {
    image: &'static str,
    /// Where buildlets dial; default: the front door.
    coordinator: Option<String>,
    /// Default: a fresh owner id.
    owner: Option<String>,
    startup: Duration,
    /// On the engine's default network (a bridge) instead of the host's, dialing the host
    /// by Podman's name for it.
    bridge: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            image: TEST_IMAGE,
            coordinator: None,
            owner: None,
            startup: Duration::from_secs(60),
            bridge: false,
        }
    }
}

/// Podman's name for the host, in its containers' `/etc/hosts`.
const PODMAN_HOST: &str = "host.containers.internal";

/// A provider serving [`HOST`] (1 CPU, 128 MiB each) within `limits`.
async fn farm_with(limits: Resources, o: Opts) -> Option<Farm> {
    let Opts {
        image,
        coordinator,
        owner: owner_id,
        startup,
        bridge,
    } = o;
    let engine = container_engine((!bridge).then(|| "host".into())).await?;
    let door = if bridge {
        FrontDoor::start_on("0.0.0.0:0", &[PODMAN_HOST], DEV_MASTER_KEY.as_bytes()).await
    } else {
        FrontDoor::start(DEV_MASTER_KEY.as_bytes()).await
    };
    let coordinator = match (coordinator, bridge) {
        (None, true) => Some(format!("{PODMAN_HOST}:{}", door.addr.port())),
        (c, _) => c,
    };
    let owner = owner_id.unwrap_or_else(owner);
    let cfg = EphemeralConfig::new(
        owner.clone(),
        coordinator.unwrap_or_else(|| door.addr.to_string()),
        BTreeMap::from([(HOST.to_owned(), HostSpec::new(image, 1, 128))]),
        limits,
    )
    .startup_timeout(startup)
    .coordinator_ca_pem(Some(door.ca_pem.clone()));
    let pool = EphemeralPool::start(cfg, engine.clone(), door.pool.clone())
        .await
        .expect("provider starts");
    Some(Farm {
        pool,
        engine,
        owner,
        _door: door,
    })
}

async fn farm(limits: Resources) -> Option<Farm> {
    farm_with(limits, Opts::default()).await
}

/// Waits until the engine lists no container of `owner` (removal runs after the lease).
async fn no_containers_left(engine: &ContainerBackend, owner: &str) {
    for _ in 0..100 {
        if engine.list(owner).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "containers of {owner} left behind: {:?}",
        engine.list(owner).await.unwrap()
    );
}

/// Waits until no container is left and the ledger holds nothing (a reservation is given
/// back once its container is removed).
async fn all_given_back(f: &Farm) {
    no_containers_left(&f.engine, &f.owner).await;
    for _ in 0..100 {
        if f.pool.ledger().used() == Resources::default() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("quota still held: {:?}", f.pool.ledger().reservations());
}

/// What the engine says about container `name`.
async fn inspect(f: &Farm, name: &str) -> bollard::models::ContainerInspectResponse {
    f.engine
        .docker()
        .inspect_container(name, None)
        .await
        .expect("inspect")
}

fn req(builder: &str) -> LeaseRequest {
    LeaseRequest::new(SchedItem::new(HOST, builder))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let Some(f) = farm(limits(2, 2, 512)).await else {
        return;
    };
    run_all(&f.pool, &Caps::ephemeral(HOST, 2)).await;
    all_given_back(&f).await;
    let p = &f.pool.providers()[0];
    assert_eq!(
        (p.kind, p.failures, p.running),
        ("container", 0, 0),
        "{p:?}"
    );
    assert!(p.started >= 8, "{p:?}");
}

/// The container gets the host type's limits and the owner's label, runs as its own host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_carry_limits_and_labels() {
    let Some(f) = farm(limits(1, 1, 128)).await else {
        return;
    };
    let lease = f.pool.lease(req("inspect")).await.expect("lease");
    let info = inspect(&f, lease.name()).await;
    let hc = info.host_config.expect("host config");
    assert_eq!(hc.nano_cpus, Some(1_000_000_000));
    assert_eq!(hc.memory, Some(128 * 1024 * 1024));
    let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(labels.get("xbuild-owner"), Some(&f.owner));
    assert!(
        hc.port_bindings.unwrap_or_default().is_empty(),
        "a port was published"
    );
    let (w, mut r) = tokio::io::duplex(1 << 16);
    let st = lease
        .client()
        .exec(
            ExecRequest {
                cmd: "/bin/sh".into(),
                args: vec!["-c".into(), "hostname; cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes".into()],
                ..Default::default()
            },
            Box::new(w),
        )
        .await
        .expect("exec");
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut r, &mut out)
        .await
        .unwrap();
    assert!(st.success(), "{st:?}: {out}");
    assert!(out.starts_with(lease.name()), "hostname: {out}");
    assert!(
        out.contains(&(128 * 1024 * 1024).to_string()),
        "memory limit: {out}"
    );
    drop(lease);
    all_given_back(&f).await;
}

/// 20 leases at once with room for 3 CPUs: every one is served, the engine never runs more
/// than the ledger allows, and everything is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_under_20_concurrent_leases() {
    let Some(f) = farm(limits(20, 3, 1024)).await else {
        return;
    };
    let f = Arc::new(f);
    let peak = Arc::new(AtomicUsize::new(0));
    let watching = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (f, peak, stop) = (f.clone(), peak.clone(), watching.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let n = f.engine.list(&f.owner).await.unwrap().len();
                peak.fetch_max(n, Ordering::Relaxed);
                let used = f.pool.ledger().used();
                assert!(used.cpus <= 3 && used.memory_mib <= 1024, "{used:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..20 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let lease = f.pool.lease(req(&format!("b{i}"))).await.expect("lease");
            runs_true(lease.client()).await;
            lease.name().to_owned()
        }));
    }
    let mut names = Vec::new();
    for t in tasks {
        names.push(t.await.expect("lease task"));
    }
    watching.cancel();
    watcher.await.expect("the ledger held");
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20, "every lease got its own container");
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        (1..=3).contains(&peak),
        "{peak} containers at once, limit 3"
    );
    all_given_back(&f).await;
}

/// A missing image fails the lease at once, saying how to build it; nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_clear_error() {
    let opts = Opts {
        image: "localhost/xbuild-no-such-image:1",
        ..Opts::default()
    };
    let Some(f) = farm_with(limits(1, 1, 128), opts).await else {
        return;
    };
    let e = f.pool.lease(req("x")).await.expect_err("no image");
    let msg = e.to_string();
    assert!(
        matches!(e, Error::Provision { .. }) && msg.contains("coordinator image build"),
        "{msg}"
    );
    all_given_back(&f).await;
    assert_eq!(f.pool.providers()[0].failures, 1);
}

/// A buildlet that exits (nothing listens where it dials) fails the lease with the exit,
/// well before the start-up timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_container_fails_the_lease() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = free.local_addr().unwrap().to_string();
    drop(free);
    let opts = Opts {
        coordinator: Some(nowhere),
        ..Opts::default()
    };
    let Some(f) = farm_with(limits(1, 1, 128), opts).await else {
        return;
    };
    let t = std::time::Instant::now();
    let e = f.pool.lease(req("x")).await.expect_err("cannot register");
    assert!(e.to_string().contains("exited with code"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    all_given_back(&f).await;
}

/// A buildlet that never gets through (its coordinator accepts and stays silent) is removed
/// at the start-up timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_start_times_out() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let opts = Opts {
        coordinator: Some(addr),
        startup: Duration::from_secs(3),
        ..Opts::default()
    };
    let Some(f) = farm_with(limits(1, 1, 128), opts).await else {
        return;
    };
    let e = f.pool.lease(req("x")).await.expect_err("timeout");
    assert!(e.to_string().contains("did not register within 3s"), "{e}");
    all_given_back(&f).await;
}

/// Killing the container under a lease makes its calls fail instead of hang; destroying
/// the lease frees the quota for the next, which gets a new container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_fails_its_lease() {
    let Some(f) = farm(limits(1, 1, 128)).await else {
        return;
    };
    let lease = f.pool.lease(req("victim")).await.expect("lease");
    let client = lease.client_arc();
    let name = lease.name().to_owned();
    let running = tokio::spawn(async move {
        client
            .exec(
                ExecRequest {
                    cmd: "/bin/sleep".into(),
                    args: vec!["60".into()],
                    ..Default::default()
                },
                Box::new(tokio::io::sink()),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.engine.kill(&name).await.expect("kill");
    let r = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the call ends when its container dies")
        .unwrap();
    assert!(r.is_err(), "{r:?}");
    lease.destroy();
    let next = f.pool.lease(req("next")).await.expect("next lease");
    assert_ne!(next.name(), name);
    drop(next);
    no_containers_left(&f.engine, &f.owner).await;
}

/// A coordinator that dies with leases out leaves containers; its successor (same owner id)
/// removes them when it starts, and a periodic sweep catches later ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_swept_at_start() {
    let id = owner();
    let same_owner = || Opts {
        owner: Some(id.clone()),
        ..Opts::default()
    };
    let Some(f) = farm_with(limits(2, 2, 256), same_owner()).await else {
        return;
    };
    let a = f.pool.lease(req("a")).await.expect("lease");
    let b = f.pool.lease(req("b")).await.expect("lease");
    // A crash: the leases are never released.
    std::mem::forget(a);
    std::mem::forget(b);
    assert_eq!(f.engine.list(&id).await.unwrap().len(), 2);
    drop(f);
    let g = farm_with(limits(2, 2, 256), same_owner())
        .await
        .expect("engine");
    assert!(g.engine.list(&id).await.unwrap().is_empty(), "not swept");
    assert_eq!(g.pool.providers()[0].swept, 2);
    // Containers of another owner are not this coordinator's to remove.
    let other = farm(limits(1, 1, 128)).await.expect("engine");
    let keep = other.pool.lease(req("other")).await.expect("lease");
    assert_eq!(g.pool.sweep().await.unwrap(), 0);
    drop(keep);
    no_containers_left(&other.engine, &other.owner).await;
}

/// On the engine's own (bridge) network a container reaches the host by Podman's name for
/// it, and its buildlet verifies the front door's certificate for that name. Podman only:
/// Docker has no such name by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_container_dials_the_host_by_name() {
    let opts = Opts {
        bridge: true,
        ..Opts::default()
    };
    let Some(f) = farm_with(limits(1, 1, 128), opts).await else {
        return;
    };
    let version = f.engine.docker().version().await.expect("version");
    let podman = version
        .components
        .unwrap_or_default()
        .iter()
        .any(|c| c.name.contains("Podman"));
    if !podman {
        eprintln!("*** SKIPPED: the engine is not Podman; {PODMAN_HOST} is Podman's name");
        return;
    }
    let lease = f.pool.lease(req("bridged")).await.expect("lease");
    let info = inspect(&f, lease.name()).await;
    let mode = info.host_config.and_then(|h| h.network_mode);
    assert_ne!(mode.as_deref(), Some("host"), "not bridged");
    runs_true(lease.client()).await;
    drop(lease);
    all_given_back(&f).await;
}
