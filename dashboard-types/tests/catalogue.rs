//! Catalogue loading: the built-in catalogue's breadth, a custom catalogue from a file,
//! and a precise error naming the entry for each kind of bad entry.

use std::collections::BTreeSet;

use dashboard_types::{Catalogue, Error, PoolKind};

const GOOD: &str = r#"
[Hosts.host-linux-amd64-local]
IsReverse = true
ExpectNum = 2
env = ["GOFLAGS=-mod=mod"]

[Hosts.host-linux-amd64-vm]
VMImage = "debian-12"

[[Builders]]
Name = "linux-amd64-quick"
HostType = "host-linux-amd64-local"
buildsRepo = { repo = ["go", "mything"] }
tryBot = { default_try_set = [] }
env = ["GO_TEST_TIMEOUT_SCALE=2"]

[[Builders]]
Name = "linux-amd64-vm"
HostType = "host-linux-amd64-vm"
"#;

fn err(toml: &str) -> String {
    match Catalogue::from_toml_str(toml, "my.toml") {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn builtin_catalogue_is_broad() {
    let c = Catalogue::builtin();
    let builders: Vec<_> = c.builders().collect();
    assert!(builders.len() >= 25, "{} builders", builders.len());
    let real = builders
        .iter()
        .filter(|b| !b.name().starts_with("misc-compile-"));
    let goos: BTreeSet<_> = real.clone().map(|b| b.goos()).collect();
    let goarch: BTreeSet<_> = real
        .map(|b| b.target_arch().split('-').nth(1).unwrap().to_owned())
        .collect();
    assert!(goos.len() >= 8, "{goos:?}");
    assert!(goarch.len() >= 6, "{goarch:?}");
    let kinds: BTreeSet<_> = builders
        .iter()
        .map(|b| (b.is_reverse(), b.is_container(), b.is_vm()))
        .collect();
    assert!(kinds.contains(&(true, false, false)), "no reverse builder");
    assert!(
        kinds.contains(&(false, true, false)),
        "no container builder"
    );
    assert!(kinds.contains(&(false, false, true)), "no VM builder");
    for b in &builders {
        assert!(b.host.pool_kind().is_some(), "{}", b.name());
    }
}

#[test]
fn custom_catalogue_loads_from_a_file() {
    let dir = std::env::temp_dir().join(format!("dt-cat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("catalogue.toml");
    std::fs::write(&path, GOOD).unwrap();
    let c = Catalogue::load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let b = c.builder("linux-amd64-quick").unwrap();
    assert_eq!(b.host.pool_kind(), Some(PoolKind::Reverse));
    assert_eq!(b.host.host_arch, "linux-amd64");
    assert_eq!(b.host.go_bootstrap, "go1.24.6");
    assert_eq!(
        b.env(),
        [
            "GO_BUILDER_NAME=linux-amd64-quick",
            "GOFLAGS=-mod=mod",
            "GO_TEST_TIMEOUT_SCALE=2"
        ]
    );
    assert!(b.builds_repo_post_submit("mything", "main", "master"));
    assert!(!b.builds_repo_post_submit("net", "master", "master"));
    assert!(b.builds_repo_try_bot("go", "master", "master"));
    assert_eq!(c.post_submit_builders("go", "master", "master").len(), 2);
    assert_eq!(
        c.try_builders_for_project("go", "master", "master").len(),
        1
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = Catalogue::load(std::path::Path::new("/nonexistent/cat.toml")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/cat.toml"), "{e}");
}

#[test]
fn unknown_host_type_is_named() {
    let e = err("[[Builders]]\nName = \"linux-amd64-x\"\nHostType = \"host-nope-amd64-x\"\n");
    assert!(
        e.contains("linux-amd64-x") && e.contains("unknown HostType \"host-nope-amd64-x\""),
        "{e}"
    );
}

#[test]
fn duplicate_builder_is_named() {
    let e = err(&format!(
        "{GOOD}\n[[Builders]]\nName = \"linux-amd64-vm\"\nHostType = \"host-linux-amd64-vm\"\n"
    ));
    assert!(
        e.contains("\"linux-amd64-vm\"") && e.contains("defined twice"),
        "{e}"
    );
}

#[test]
fn duplicate_host_is_named() {
    let e = err(&format!(
        "{GOOD}\n[Hosts.host-linux-amd64-vm]\nVMImage = \"x\"\n"
    ));
    assert!(
        e.contains("my.toml") && e.contains("host-linux-amd64-vm"),
        "{e}"
    );
}

#[test]
fn invalid_builder_names_are_named() {
    for bad in ["linux", "linux amd64", "-amd64", "linux-", ""] {
        let e = err(&format!(
            "[Hosts.host-linux-amd64-vm]\nVMImage = \"x\"\n[[Builders]]\nName = \"{bad}\"\nHostType = \"host-linux-amd64-vm\"\n"
        ));
        assert!(e.contains(&format!("builder \"{bad}\"")), "{bad:?}: {e}");
    }
}

#[test]
fn host_claiming_two_pool_kinds_is_named() {
    let e = err("[Hosts.host-linux-amd64-two]\nIsReverse = true\nVMImage = \"img\"\n");
    assert!(
        e.contains("host \"host-linux-amd64-two\"") && e.contains("2 pool kinds"),
        "{e}"
    );
    let e = err("[Hosts.host-linux-amd64-none]\nNotes = \"x\"\n");
    assert!(
        e.contains("host-linux-amd64-none") && e.contains("no pool kind"),
        "{e}"
    );
}

#[test]
fn other_rules_are_enforced() {
    let e = err("[Hosts.host-linux-amd64-a]\nHostType = \"host-other\"\nIsReverse = true\n");
    assert!(e.contains("differs from its key"), "{e}");
    let e = err("[Hosts.host-linux-amd64-a]\nVMImage = \"x\"\nGoogleReverse = true\n");
    assert!(e.contains("GoogleReverse"), "{e}");
    let e = err("[Hosts.h]\nHostArch = \"linux\"\nIsReverse = true\n");
    assert!(e.contains("HostArch \"linux\""), "{e}");
    let base = "[Hosts.host-linux-amd64-a]\nIsReverse = true\n[[Builders]]\nName = \"linux-amd64-a\"\nHostType = \"host-linux-amd64-a\"\n";
    let e = err(&format!("{base}SkipSnapshot = true\nnumTestHelpers = 1\n"));
    assert!(e.contains("SkipSnapshot"), "{e}");
    let e = err(&format!("{base}KnownIssues = [1, 0]\n"));
    assert!(e.contains("zero issue at index 1"), "{e}");
    let e = err(&format!("{base}buildsRepo = \"sometimes\"\n"));
    assert!(e.contains("my.toml") && e.contains("sometimes"), "{e}");
    let e = err(&format!("{base}Typo = 1\n"));
    assert!(e.contains("Typo"), "{e}");
    let e = err("[Hosts.host-linux-amd64-a]\nIsReverse = true\nCustomDeleteTimeout = \"soon\"\n");
    assert!(e.contains("bad duration \"soon\""), "{e}");
}
