//! Spec `dashboard-types.md` §8: one test per conformance case, named after its number.
//! Policy cases use the built-in catalogue with the migration switches off unless stated.

use std::time::Duration;

use dashboard_types::catalogue::{NOTES_PORTED, NOTES_STOPPED};
use dashboard_types::dash::{self, ResultEntry, check_result_post, json_cell};
use dashboard_types::keys::builder_key;
use dashboard_types::names::{
    self, BuilderName, grid, luci_display_name, luci_xrepo_display_name, parse_release_branch,
};
use dashboard_types::{
    BuildEnv, BuildRevision, BuildStatus, Builder, Catalogue, Migration, PoolKind, ResultPost,
    ReverseBuilder,
};

fn cat() -> Catalogue {
    Catalogue::builtin()
}

fn with<R>(name: &str, f: impl FnOnce(Builder<'_>) -> R) -> R {
    let c = cat();
    let b = c
        .builder(name)
        .unwrap_or_else(|| panic!("no builder {name}"));
    f(b)
}

/// (post, try) for a builder on (repo, branch, goBranch).
fn post_try(name: &str, repo: &str, branch: &str, go_branch: &str) -> (bool, bool) {
    with(name, |b| {
        (
            b.builds_repo_post_submit(repo, branch, go_branch),
            b.builds_repo_try_bot(repo, branch, go_branch),
        )
    })
}

#[test]
fn case_01_goos_goarch() {
    let n = BuilderName::parse("linux-amd64").unwrap();
    assert_eq!((n.goos(), n.goarch()), ("linux", "amd64"));
    let n = BuilderName::parse("linux-386-softfloat").unwrap();
    assert_eq!((n.goos(), n.goarch()), ("linux", "386"));
}

#[test]
fn case_02_misc_compile_quirk() {
    let n = BuilderName::parse("misc-compile-openbsd-ppc64-go1.22").unwrap();
    assert_eq!((n.goos(), n.goarch()), ("misc", "compile"));
    // And the registered misc-compile builder of the built-in catalogue agrees.
    with("misc-compile-openbsd-ppc64-go1.22", |b| {
        assert_eq!((b.goos(), b.goarch()), ("misc", "compile"));
        assert!(b.env().contains(&"GOOS=openbsd".to_string()));
        assert_eq!(b.target_arch(), "openbsd-ppc64");
    });
}

#[test]
fn case_03_longtest_race() {
    with("linux-amd64-longtest-race", |b| {
        assert!(b.is_race() && b.is_longtest());
        assert_eq!(b.all_script(), "src/race.bash");
        assert!(b.env().contains(&"GO_TEST_SHORT=0".to_string()));
    });
}

#[test]
fn case_04_racecompile_is_not_race() {
    with("linux-amd64-racecompile", |b| assert!(!b.is_race()));
    assert!(!grid::is_race("linux-amd64-racecompile"));
}

#[test]
fn case_05_scripts() {
    with("windows-amd64-race", |b| {
        assert_eq!(b.all_script(), "src/race.bat")
    });
    with("plan9-arm", |b| {
        assert_eq!(b.all_script(), "src/all.rc");
        assert_eq!(b.make_script(), "src/make.rc");
    });
}

#[test]
fn case_06_grid_headers() {
    assert_eq!(grid::os_or_race("linux-amd64-race"), "race");
    assert_eq!(grid::subheading("linux-amd64-race"), "linux");
    assert_eq!(grid::subheading2("linux-amd64-longtest-race"), "longtest");
    assert_eq!(grid::subheading2("linux-amd64-nocgo"), "nocgo");
}

#[test]
fn case_07_host_arch() {
    let c = cat();
    assert_eq!(
        c.host("host-linux-arm-aws").unwrap().host_arch,
        "linux-arm-7"
    );
    assert_eq!(
        c.host("host-linux-amd64-bullseye").unwrap().host_arch,
        "linux-amd64"
    );
    assert_eq!(
        c.host("host-solaris-oracle-amd64-oraclerel")
            .unwrap()
            .host_arch,
        "solaris-amd64"
    );
    let err = Catalogue::from_toml_str("[Hosts.host-foo]\nIsReverse = true\n", "t").unwrap_err();
    assert!(err.to_string().contains("host-foo"), "{err}");
}

#[test]
fn case_08_pool_kinds() {
    let two = "[Hosts.host-linux-amd64-x]\nVMImage = \"a\"\nContainerImage = \"b\"\n";
    let err = Catalogue::from_toml_str(two, "t").unwrap_err();
    assert!(err.to_string().contains("claims 2 pool kinds"), "{err}");
    let c = cat();
    let ec2 = c.host("host-linux-arm-aws").unwrap();
    assert!(!ec2.is_vm() && ec2.is_container());
    assert_eq!(ec2.pool_kind(), Some(PoolKind::Ec2));
    assert_eq!(ec2.pool_name(), "EC2 VM Container");
}

#[test]
fn case_09_machine_types() {
    let c = cat();
    let mt = |h: &str| c.host(h).unwrap().machine_type();
    assert_eq!(mt("host-linux-amd64-bullseye"), "e2-standard-16");
    assert_eq!(mt("host-linux-amd64-bullseye-vmx"), "n2-standard-16");
    assert_eq!(mt("host-netbsd-amd64-9_3"), "n2-standard-8");
    assert_eq!(mt("host-linux-amd64-perf"), "c2-standard-8");
    assert_eq!(mt("host-linux-arm64-bullseye"), "t2a-standard-16");
    assert_eq!(mt("host-linux-arm-aws"), "m6g.xlarge");
}

#[test]
fn case_10_luci_display_names() {
    assert_eq!(
        luci_display_name("gotip-linux-amd64_debiansid", "linux", "amd64"),
        "linux-amd64-debiansid-🐇"
    );
    assert_eq!(
        luci_display_name("gotip-linux-amd64-longtest", "linux", "amd64"),
        "linux-amd64-longtest-🐇"
    );
    assert_eq!(
        luci_xrepo_display_name(
            "x_tools-go1.24-linux-amd64",
            "tools",
            "release-branch.go1.24",
            "linux",
            "amd64"
        ),
        "linux-amd64-🐇"
    );
}

#[test]
fn case_11_slowbot_terms() {
    assert!(names::matches_slowbot_term("linux-arm64", "arm64"));
    assert!(names::matches_slowbot_term("linux-amd64", "linux-amd64"));
    let c = cat();
    for term in ["js", ""] {
        assert!(
            c.builders().all(|b| !b.matches_slowbot_term(term)),
            "{term:?} matched a builder"
        );
    }
}

#[test]
fn case_12_release_branches() {
    assert_eq!(parse_release_branch("release-branch.go1.21"), Some((1, 21)));
    assert_eq!(parse_release_branch("release-branch.go1"), Some((1, 0)));
    for not in [
        "release-branch.go1.0",
        "release-branch.go1.21.3",
        "release-branch.go01.2",
        "release-branch.go1.1000",
        "master",
    ] {
        assert_eq!(parse_release_branch(not), None, "{not}");
    }
}

#[test]
fn case_13_linux_amd64_go_master() {
    assert_eq!(
        post_try("linux-amd64", "go", "master", "master"),
        (true, true)
    );
}

#[test]
fn case_14_old_and_go2_release_branches() {
    let c = cat();
    for b in c.builders() {
        for branch in ["release-branch.go1.10", "release-branch.go2"] {
            assert!(
                !b.builds_repo_post_submit("go", branch, branch),
                "{}",
                b.name()
            );
            assert!(!b.builds_repo_try_bot("go", branch, branch), "{}", b.name());
        }
    }
}

#[test]
fn case_15_exp_and_pkgsite_metrics() {
    assert_eq!(
        post_try("linux-amd64", "exp", "master", "release-branch.go1.22"),
        (false, false)
    );
    assert_eq!(
        post_try(
            "linux-amd64",
            "pkgsite-metrics",
            "master",
            "release-branch.go1.20"
        ),
        (true, true)
    );
}

#[test]
fn case_16_pkgsite_needs_go1_23() {
    assert!(
        !post_try(
            "linux-amd64-sid",
            "pkgsite",
            "master",
            "release-branch.go1.22"
        )
        .0
    );
    assert_eq!(
        post_try(
            "linux-amd64-sid",
            "pkgsite",
            "master",
            "release-branch.go1.23"
        ),
        (true, false)
    );
}

#[test]
fn case_17_longtest() {
    let b = "linux-amd64-longtest";
    let rb = "release-branch.go1.22";
    assert_eq!(post_try(b, "go", rb, rb), (true, true));
    assert_eq!(post_try(b, "go", "master", "master"), (true, false));
    assert!(post_try(b, "mobile", "master", "master").0);
    assert!(!post_try(b, "net", "master", rb).0);
}

#[test]
fn case_18_softfloat() {
    assert_eq!(
        post_try("linux-386-softfloat", "crypto", "master", "master"),
        (true, false)
    );
    assert!(!post_try("linux-386-softfloat", "net", "master", "master").0);
}

#[test]
fn case_19_android_emu() {
    let b = "android-amd64-emu";
    assert_eq!(post_try(b, "mobile", "master", "master"), (true, true));
    assert_eq!(post_try(b, "go", "master", "master"), (true, false));
    assert!(!post_try(b, "website", "master", "master").0);
}

#[test]
fn case_20_darwin_10_15() {
    let b = "darwin-amd64-10_15";
    assert_eq!(post_try(b, "go", "master", "master"), (false, false));
    let rb = "release-branch.go1.22";
    assert_eq!(post_try(b, "go", rb, rb), (true, false));
}

#[test]
fn case_21_openbsd_386() {
    assert_eq!(
        post_try("openbsd-386-72", "sys", "master", "master"),
        (true, true)
    );
    assert!(!post_try("openbsd-386-72", "review", "master", "master").0);
}

#[test]
fn case_22_newinliner() {
    let b = "linux-amd64-newinliner";
    assert_eq!(post_try(b, "go", "master", "master"), (true, true));
    let rb = "release-branch.go1.22";
    assert_eq!(post_try(b, "go", rb, rb), (false, false));
}

#[test]
fn case_23_js_wasm() {
    let b = "js-wasm-node18";
    let rb = "release-branch.go1.20";
    assert!(!post_try(b, "go", rb, rb).0);
    assert_eq!(post_try(b, "net", "master", "master"), (true, false));
    assert_eq!(post_try(b, "tools", "master", "master"), (false, false));
}

#[test]
fn case_24_boringcrypto_branch() {
    let br = "dev.boringcrypto.go1.21";
    assert!(!post_try("linux-386", "go", br, br).0);
    assert!(post_try("windows-386-2016", "go", br, br).0);
    assert!(post_try("linux-amd64", "go", br, br).0);
}

#[test]
fn case_25_try_only_without_try_policy() {
    assert_eq!(
        post_try("linux-amd64-localdev", "go", "master", "master"),
        (false, false)
    );
}

#[test]
fn case_26_switches_on_stop_everything() {
    let ported = cat().migration().ported_to_luci.clone();
    let c = Catalogue::builtin_with(Migration::upstream(ported.clone()));
    let tuples = [
        ("go", "master", "master"),
        ("net", "master", "master"),
        ("go", "release-branch.go1.22", "release-branch.go1.22"),
        ("mobile", "master", "master"),
    ];
    let mut count = 0;
    for b in c.builders() {
        count += 1;
        for (r, br, gb) in tuples {
            assert!(
                !b.builds_repo_post_submit(r, br, gb),
                "{} post {r}",
                b.name()
            );
            assert!(!b.builds_repo_try_bot(r, br, gb), "{} try {r}", b.name());
        }
        let want = if ported.contains(b.name()) {
            NOTES_PORTED
        } else {
            NOTES_STOPPED
        };
        assert_eq!(b.config.notes, want, "{}", b.name());
        assert!(
            !b.name().starts_with("misc-compile-"),
            "misc-compile registered"
        );
    }
    assert!(count >= 25);
}

#[test]
fn case_27_api_only_on_linux_amd64_in_try() {
    with("linux-amd64", |b| {
        assert!(b.should_run_dist_test("api", true))
    });
    with("freebsd-amd64-12_3", |b| {
        assert!(!b.should_run_dist_test("api", true));
        assert!(b.should_run_dist_test("api", false));
    });
}

#[test]
fn case_28_faster_trybots() {
    with("linux-amd64-race", |b| {
        assert!(!b.should_run_dist_test("reboot", true));
        assert!(!b.should_run_dist_test("test:0_5", true));
        assert!(b.should_run_dist_test("reboot", false));
    });
}

#[test]
fn case_29_mac_policy() {
    with("darwin-amd64-13", |b| {
        assert!(!b.should_run_dist_test("codewalk", false));
        assert!(!b.should_run_dist_test("runtime:cpu124", true));
        assert!(b.should_run_dist_test("runtime:cpu124", false));
        assert!(b.should_run_dist_test("go_test:fmt", false));
    });
}

#[test]
fn case_30_wasm_internal_rule() {
    with("js-wasm-node18", |b| {
        assert!(!b.should_run_dist_test("go_test:runtime/internal/atomic", true));
        assert!(b.should_run_dist_test("go_test:internal/abi", true));
    });
}

#[test]
fn case_31_env_order_and_timeout() {
    with("linux-amd64-longtest", |b| {
        assert_eq!(
            b.env(),
            [
                "GO_BUILDER_NAME=linux-amd64-longtest",
                "GO_TEST_SHORT=0",
                "GO_TEST_TIMEOUT_SCALE=5"
            ]
        );
        assert_eq!(b.dist_tests_exec_timeout(), Duration::from_secs(100 * 60));
    });
    with("linux-s390x-ibm", |b| {
        assert_eq!(
            b.env()[..2],
            ["GO_BUILDER_NAME=linux-s390x-ibm", "GO_BUILDER_FLAKY_NET=1"]
        );
    });
}

#[test]
fn case_32_timeout_scale() {
    let toml = |builder_env: &str, host_env: &str| {
        format!(
            "[Hosts.host-linux-amd64-x]\nIsReverse = true\nenv = [{host_env}]\n\
             [[Builders]]\nName = \"linux-amd64-x\"\nHostType = \"host-linux-amd64-x\"\nenv = [{builder_env}]\n"
        )
    };
    let minutes = |b: &str, h: &str| {
        let c = Catalogue::from_toml_str(&toml(b, h), "t").unwrap();
        c.builder("linux-amd64-x")
            .unwrap()
            .dist_tests_exec_timeout()
            .as_secs()
            / 60
    };
    assert_eq!(
        minutes("\"GO_TEST_TIMEOUT_SCALE=2\"", "\"GO_TEST_TIMEOUT_SCALE=3\""),
        40
    );
    assert_eq!(minutes("", "\"GO_TEST_TIMEOUT_SCALE=3\""), 60);
    assert_eq!(minutes("\"GO_TEST_TIMEOUT_SCALE=0\"", ""), 20);
    assert_eq!(minutes("\"GO_TEST_TIMEOUT_SCALE=abc\"", ""), 20);
}

#[test]
fn case_33_target_arch() {
    with("linux-arm-aws", |b| {
        assert_eq!(b.target_arch(), "linux-arm-6");
        assert!(!b.is_cross_compile_only());
    });
    with("linux-s390x-crosscompile", |b| {
        assert_eq!(b.target_arch(), "linux-s390x");
        assert!(b.is_cross_compile_only());
        assert_eq!(b.all_script(), "src/make.bash");
    });
    with("windows-arm-zx2c4", |b| {
        assert_eq!(b.target_arch(), "windows-arm64-7")
    });
}

#[test]
fn case_34_bootstrap_urls() {
    let env = BuildEnv::production();
    with("linux-amd64", |b| {
        assert_eq!(
            b.go_bootstrap_url(&env),
            "https://go.dev/dl/go1.24.6.linux-amd64.tar.gz"
        )
    });
    with("linux-arm-aws", |b| {
        assert_eq!(
            b.go_bootstrap_url(&env),
            "https://go.dev/dl/go1.24.6.linux-arm.tar.gz"
        )
    });
    with("windows-amd64-2016", |b| {
        assert_eq!(
            b.go_bootstrap_url(&env),
            "https://storage.googleapis.com/go-builder-data/gobootstrap-windows-amd64-go1.24.6.tar.gz"
        )
    });
    // host-linux-loong64-3a5000 has GoBootstrap "none".
    with("linux-loong64-3a5000", |b| {
        assert_eq!(b.go_bootstrap_url(&env), "")
    });
}

#[test]
fn case_35_grid_cells() {
    let host = "build.golang.org";
    assert_eq!(json_cell(None, host), "");
    let ok = ResultEntry::parse("linux-amd64|true||").unwrap();
    assert_eq!(json_cell(Some(&ok), host), "ok");
    let fail = ResultEntry::parse("linux-amd64|false|abc|").unwrap();
    assert_eq!(
        json_cell(Some(&fail), host),
        "https://build.golang.org/log/abc"
    );
    let fail = ResultEntry::parse("linux-amd64|false||").unwrap();
    assert_eq!(
        json_cell(Some(&fail), host),
        "https://build.golang.org/log/"
    );
}

#[test]
fn case_36_result_data_entries() {
    let e = ResultEntry::parse("linux-amd64|true|0a1b|").unwrap();
    assert!(e.ok());
    assert_eq!(e.go_hash, "");
    let e = ResultEntry::parse("gotip-x|infra_failure|https://ci.chromium.org/b/1|").unwrap();
    assert!(!e.ok());
    assert_eq!(e.outcome, dash::Outcome::InfraFailure);
    assert_eq!(e.html_log_link(), "https://ci.chromium.org/b/1");
    assert_eq!(ResultEntry::parse("linux-amd64|true|0a1b"), None);
    let data = vec!["a|true|x".to_string(), "linux-amd64|false|h|".to_string()];
    assert_eq!(
        dash::find_result(&data, "linux-amd64", "")
            .unwrap()
            .log_hash,
        "h"
    );
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn case_37_result_post_checks() {
    let master = b"master-secret";
    let key = builder_key(master, "b");
    let body = br#"{"Builder":"b","Hash":"abc","OK":true}"#;
    let e = check_result_post("GET", &q(&[("key", "whatever")]), body, master).unwrap_err();
    assert_eq!(
        e.to_body(),
        "{\"Response\":null,\"Error\":\"bad method: GET\"}\n"
    );
    let e = check_result_post("POST", &q(&[("key", &key), ("builder", "b")]), body, master)
        .unwrap_err();
    assert_eq!(
        e.error,
        "rejecting POST from builder; need version 1 instead of 0"
    );
    let e = check_result_post(
        "POST",
        &q(&[("key", "wrong"), ("builder", "b"), ("version", "1")]),
        body,
        master,
    )
    .unwrap_err();
    assert!(e.error.starts_with("invalid key"), "{}", e.error);
    let ok = check_result_post(
        "POST",
        &q(&[("key", &key), ("builder", "b"), ("version", "1")]),
        body,
        master,
    )
    .unwrap();
    assert_eq!(ok.post.hash, "abc");
    // The master key itself also works; a revoked builder's derived key does not.
    let master_str = std::str::from_utf8(master).unwrap();
    assert!(dash::result_key_valid(master, "b", master_str));
    let revoked = builder_key(master, "linux-arm-onlinenet");
    assert!(!dash::result_key_valid(
        master,
        "linux-arm-onlinenet",
        &revoked
    ));
}

#[test]
fn case_38_subrepo_needs_go_hash() {
    let master = b"m";
    let key = builder_key(master, "linux-amd64");
    let post = ResultPost {
        builder: "linux-amd64".into(),
        package_path: "golang.org/x/net".into(),
        hash: "eeee".into(),
        ..Default::default()
    };
    let body = serde_json::to_vec(&post).unwrap();
    let e = check_result_post(
        "POST",
        &q(&[("key", &key), ("builder", "linux-amd64"), ("version", "1")]),
        &body,
        master,
    )
    .unwrap_err();
    assert_eq!(e.error, "validating Result: invalid GoHash");
}

#[test]
fn case_39_result_data_replace_and_trim() {
    let mut data = Vec::new();
    let first = ResultEntry::parse("linux-amd64|false|h1|g").unwrap();
    let second = ResultEntry::parse("linux-amd64|true|h2|g").unwrap();
    dash::add_result(&mut data, &first);
    dash::add_result(&mut data, &second);
    assert_eq!(data, ["linux-amd64|true|h2|g"]);
    for i in 0..1005 {
        let e = ResultEntry::parse(&format!("b{i}|true||g")).unwrap();
        dash::add_result(&mut data, &e);
    }
    assert_eq!(data.len(), dash::MAX_RESULT_DATA);
    assert_eq!(data.last().unwrap(), "b1004|true||g");
    assert!(!data.iter().any(|s| s.starts_with("linux-amd64|")));
}

#[test]
fn case_40_json_omissions_and_nil_slices() {
    let rev = BuildRevision {
        repo: "go".into(),
        revision: "abc".into(),
        results: vec!["ok".into()],
        ..Default::default()
    };
    let s = serde_json::to_string(&rev).unwrap();
    assert!(!s.contains("goRevision") && !s.contains("goBranch"), "{s}");
    assert!(s.contains("\"desc\":\"\""), "{s}");
    let rb = ReverseBuilder {
        name: "m".into(),
        ..Default::default()
    };
    let s = serde_json::to_string(&rb).unwrap();
    assert!(!s.contains("IdleSec") && !s.contains("BusySec"), "{s}");
    let st = BuildStatus {
        builders: vec![],
        revisions: vec![],
    };
    let s = serde_json::to_string(&st).unwrap();
    assert_eq!(s, r#"{"builders":[],"revisions":null}"#);
    let back: BuildStatus = serde_json::from_str(&s).unwrap();
    assert!(back.revisions.is_empty());
}
