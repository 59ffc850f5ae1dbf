//! The local provider passes the shared conformance suite with real in-process buildlets.

use pool::conformance::{Caps, run_all};
use pool::providers::local::{LocalPool, LocalPoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LocalPoolConfig::new(
        tmp.path().to_path_buf(),
        vec![
            ("host-linux-amd64-local".into(), 3),
            ("host-other".into(), 1),
        ],
    );
    let pool = LocalPool::start(cfg).await.unwrap();
    run_all(&pool, &Caps::fixed("host-linux-amd64-local", 3)).await;
    // The destroyed machine was replaced: three again. Through a trait object too.
    connected_becomes(&pool, "host-linux-amd64-local", 3).await;
    let dynamic: Box<pool::DynPool> = Box::new(pool);
    run_all(&*dynamic, &Caps::fixed("host-linux-amd64-local", 3)).await;
}

async fn connected_becomes(pool: &LocalPool, host_type: &str, n: i64) {
    use pool::BuildletPool;
    for _ in 0..200 {
        if pool.status().host_types[host_type].connected == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{host_type} never had {n} machines: {:?}", pool.status());
}

/// A local pool has no other source of machines: one destroyed (lost, or failed its
/// wipe) is replaced by a fresh buildlet that works, and the pool keeps its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_buildlet_is_replaced_by_a_working_one() {
    use pool::{BuildletPool, LeaseRequest, SchedItem};
    let tmp = tempfile::tempdir().unwrap();
    let pool = LocalPool::start(LocalPoolConfig::new(
        tmp.path().to_path_buf(),
        vec![("host-one".into(), 1)],
    ))
    .await
    .unwrap();
    let lease = pool
        .lease(LeaseRequest::new(SchedItem::new("host-one", "b")))
        .await
        .unwrap();
    let first = lease.name().to_owned();
    lease.destroy();
    let lease = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        pool.lease(LeaseRequest::new(SchedItem::new("host-one", "b"))),
    )
    .await
    .expect("the pool stayed empty after a destroy")
    .unwrap();
    assert_ne!(lease.name(), first, "the destroyed machine came back");
    let state = lease
        .client()
        .exec(
            buildlet_proto::api::ExecRequest {
                cmd: "sh".into(),
                args: vec!["-c".into(), "test -d .".into()],
                ..Default::default()
            },
            Box::new(tokio::io::sink()),
        )
        .await
        .unwrap();
    assert_eq!(state, buildlet_proto::api::ProcessState::Ok);
}

/// Local buildlets listen on loopback, where any local process can reach them: each has
/// its own password, and a request without it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_buildlets_require_their_password() {
    let tmp = tempfile::tempdir().unwrap();
    let _pool = LocalPool::start(LocalPoolConfig::new(
        tmp.path().to_path_buf(),
        vec![("host-one".into(), 1)],
    ))
    .await
    .unwrap();
    // The buildlet's port is not exposed; find it among this process's listeners.
    let ports = listening_ports();
    assert!(!ports.is_empty());
    // Other tests' buildlets in this process listen too: none may answer.
    for port in ports {
        let client = buildlet_proto::HttpClient::tcp(&format!("127.0.0.1:{port}")).build();
        use buildlet_proto::BuildletClient;
        match client.list_dir(".", false, false, Vec::new()).await {
            Err(buildlet_proto::Error::Status { status, .. }) => assert!(
                status.starts_with("401") || status.starts_with("403"),
                "{status}"
            ),
            other => panic!("port {port} answered without a password: {other:?}"),
        }
    }
}

/// TCP ports this process listens on (from /proc/net/tcp).
fn listening_ports() -> Vec<u16> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mine: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(String::from)
        })
        .collect();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // state 0A = LISTEN; field 9 is the inode.
            (f.get(3) == Some(&"0A") && mine.contains(*f.get(9)?))
                .then(|| u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok())?
        })
        .collect()
}
