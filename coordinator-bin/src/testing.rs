//! What the crate's own tests share: a real coordinator (SQLite, a git mirror of a
//! generated repository, local buildlets) with its workers not started, so each test
//! drives the part it is about.

use std::path::Path;
use std::sync::Arc;

use crate::Coordinator;
use crate::config::Config;

/// A repository with one commit; returns its hash.
fn repo(dir: &Path) -> String {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    std::fs::create_dir_all(dir).unwrap();
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "first commit"]);
    git(&["rev-parse", "HEAD"])
}

/// A coordinator (workers not started) on a generated repository.
pub(crate) struct Fixture {
    pub(crate) c: Arc<Coordinator>,
    pub(crate) rev: String,
    /// An admin token of this coordinator.
    pub(crate) admin: String,
    _dir: tempfile::TempDir,
}

/// Opens a [`Fixture`]: SQLite, the repository mirrored, one local buildlet.
pub(crate) async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rev = repo(&dir.path().join("repo"));
    let mut cfg = Config {
        data_dir: dir.path().join("data"),
        reverse_listen: None,
        ..Config::default()
    }
    .with_defaults(&dir.path().join("repo"));
    cfg.pools
        .local
        .insert(crate::config::LOCAL_HOST_TYPE.into(), 1);
    let c = Coordinator::open(cfg).await.unwrap();
    c.mirror("repo").unwrap().fetch().await.unwrap();
    let admin = crate::auth::token::create(&*c.access, "test-admin", &["admin".into()])
        .await
        .unwrap();
    Fixture {
        c,
        rev,
        admin,
        _dir: dir,
    }
}
