//! The local provider passes the shared conformance suite with real in-process buildlets.

use pool::conformance::{Caps, run_all};
use pool::providers::local::{LocalPool, LocalPoolConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LocalPoolConfig {
        base_dir: tmp.path().to_path_buf(),
        machines: vec![
            ("host-linux-amd64-local".into(), 3),
            ("host-other".into(), 1),
        ],
    };
    let pool = LocalPool::start(cfg).await.unwrap();
    run_all(
        &pool,
        &Caps {
            host_type: "host-linux-amd64-local".into(),
            machines: 3,
        },
    )
    .await;
    // Through a trait object too.
    let dynamic: Box<pool::DynPool> = Box::new(pool);
    run_all(
        &*dynamic,
        &Caps {
            host_type: "host-linux-amd64-local".into(),
            machines: 2,
        },
    )
    .await;
}
