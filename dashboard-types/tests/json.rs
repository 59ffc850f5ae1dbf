//! JSON compatibility: upstream documents (spec §7) parse and re-encode, and every wire
//! type survives a proptest JSON round trip.

use dashboard_types::go_json::GoTime;
use dashboard_types::*;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
    let s = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
    assert_eq!(&back, v, "{s}");
}

#[test]
fn grid_document_parses() {
    let doc = r#"{
	"builders": ["linux-386", "linux-amd64"],
	"revisions": [
		{"repo": "go", "revision": "26957168c4c0cdcc7ca4f0b19d0eb19474d224ac",
		 "date": "2009-11-10T23:00:01Z", "branch": "master",
		 "author": "Foo Bar <foo@example.com>", "desc": "runtime: fix all the bugs",
		 "results": ["ok", "https://build.golang.org/log/9f2c...e1"]},
		{"repo": "net", "revision": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
		 "goRevision": "26957168c4c0cdcc7ca4f0b19d0eb19474d224ac",
		 "date": "2009-11-10T23:00:01Z", "branch": "master", "goBranch": "master",
		 "author": "Ee Yore <e@e.net>", "desc": "all: fix networking",
		 "results": ["", ""]}
	]
}"#;
    let st: BuildStatus = serde_json::from_str(doc).unwrap();
    assert_eq!(st.builders.len(), 2);
    assert_eq!(st.revisions[1].go_branch, "master");
    assert_eq!(st.revisions[0].go_revision, "");
    // Re-encoding gives Go's compact form with keys in Go's field order.
    let s = serde_json::to_string(&st.revisions[0]).unwrap();
    assert!(s.starts_with(r#"{"repo":"go","revision":"26957168c4c0cdcc7ca4f0b19d0eb19474d224ac","date":"2009-11-10T23:00:01Z","branch":"master","author""#), "{s}");
    round_trip(&st);
}

#[test]
fn result_post_and_reply_documents() {
    let doc = r#"{"Builder": "linux-amd64", "PackagePath": "golang.org/x/net",
 "Hash": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
 "GoHash": "26957168c4c0cdcc7ca4f0b19d0eb19474d224ac",
 "OK": false, "Log": "--- FAIL: TestX ...\n", "RunTime": 93000000000}"#;
    let p: ResultPost = serde_json::from_str(doc).unwrap();
    assert_eq!(p.run_time, 93_000_000_000);
    assert!(!p.ok);
    let reply: DashReply = serde_json::from_str(r#"{"Response":null,"Error":""}"#).unwrap();
    assert_eq!(reply, DashReply::ok());
    assert_eq!(
        DashReply::ok().to_body(),
        "{\"Response\":null,\"Error\":\"\"}\n"
    );
}

#[test]
fn build_record_document_is_byte_identical() {
    let doc = r#"{"ID":"B0123abcd","ProcessID":"P9f","StartTime":"2024-05-01T12:00:00Z","IsTry":false,"IsSlowBot":false,"GoRev":"2695…24ac","Rev":"2695…24ac","Repo":"go","Builder":"linux-amd64","ContainerHost":"cos","OS":"linux","Arch":"amd64","EndTime":"2024-05-01T12:20:00Z","Seconds":1200,"Result":"ok","FailureURL":"","LogURL":""}"#;
    let r: BuildRecord = serde_json::from_str(doc).unwrap();
    assert_eq!(r.seconds, 1200.0);
    assert_eq!(r.end_time.seconds_since(&r.start_time), 1200.0);
    assert_eq!(serde_json::to_string(&r).unwrap(), doc);
    // A running build has Go's zero EndTime.
    let running = BuildRecord::default();
    assert!(
        serde_json::to_string(&running)
            .unwrap()
            .contains(r#""EndTime":"0001-01-01T00:00:00Z""#)
    );
}

#[test]
fn reverse_status_and_active_builds_documents() {
    let doc = r#"{"HostTypes": {"host-linux-s390x": {"HostType": "host-linux-s390x", "Connected": 1, "Expect": 2,
  "Idle": 0, "Busy": 1, "Waiters": 3, "Machines": {"s390x-1": {"Name": "s390x-1",
  "HostType": "host-linux-s390x", "ConnectedSec": 5400.5, "BusySec": 120, "Version": "29", "Busy": true}}}}}"#;
    let mut st: ReverseBuilderStatus = serde_json::from_str(doc).unwrap();
    let h = &st.host_types["host-linux-s390x"];
    assert_eq!(h.machines["s390x-1"].busy_sec, 120.0);
    let s = serde_json::to_string(&st).unwrap();
    assert!(
        s.contains(r#""ConnectedSec":5400.5,"BusySec":120,"Version":"29""#),
        "{s}"
    );
    // Host() creates an entry with only HostType set, and returns existing ones.
    assert_eq!(st.host("host-new").host_type, "host-new");
    assert_eq!(st.host("host-linux-s390x").waiters, 3);
    let empty = serde_json::to_string(&st.host_types["host-new"]).unwrap();
    assert!(empty.ends_with(r#""Machines":null}"#), "{empty}");

    let doc = r#"[{"builder": "linux-amd64", "commit": "eeee…eeee", "goCommit": "2695…24ac",
  "statusURL": "https://farmer.golang.org/temporarylogs?name=linux-amd64&rev=2695…24ac&st=0xc000123456&subName=net&subRev=eeee…eeee"}]"#;
    let a: Vec<ActivePostSubmitBuild> = serde_json::from_str(doc).unwrap();
    assert_eq!(a[0].go_commit, "2695…24ac");
    let main_repo = ActivePostSubmitBuild {
        builder: "b".into(),
        commit: "c".into(),
        go_commit: String::new(),
        status_url: "u".into(),
    };
    assert_eq!(
        serde_json::to_string(&main_repo).unwrap(),
        r#"{"builder":"b","commit":"c","statusURL":"u"}"#
    );
}

#[test]
fn host_config_encodes_like_farmer_builders_json() {
    let cat = Catalogue::builtin();
    let h = cat.host("host-linux-arm-aws").unwrap();
    let want = r#"{"HostType":"host-linux-arm-aws","HostArch":"linux-arm-7","GoBootstrap":"go1.24.6","VMImage":"ami-07409163bccd5ac4d","ContainerImage":"gobuilder-arm-aws:latest","IsReverse":false,"RegularDisk":false,"MinCPUPlatform":"","IsEC2":true,"CustomDeleteTimeout":0,"ExpectNum":0,"HermeticReverse":false,"GoogleReverse":false,"NestedVirt":false,"KonletVMImage":"","Owners":null,"Notes":"Debian Buster, EC2 arm instance. See x/build/env/linux-arm/aws","SSHUsername":"root","RootDriveSizeGB":0}"#;
    assert_eq!(serde_json::to_string(h).unwrap(), want);
    let perf = cat.host("host-linux-amd64-perf").unwrap();
    assert_eq!(perf.custom_delete_timeout, 12 * 3600 * 1_000_000_000);
}

#[test]
fn small_types_encode_as_upstream() {
    assert_eq!(
        serde_json::to_string(&BuildletStatus { version: 29 }).unwrap(),
        r#"{"Version":29}"#
    );
    assert_eq!(
        serde_json::to_string(&BuildletWaitStatus::default()).unwrap(),
        r#"{"message":"","ahead":0}"#
    );
    assert_eq!(
        serde_json::to_string(&MajorMinor::new(1, 21)).unwrap(),
        r#"{"Major":1,"Minor":21}"#
    );
    assert!(MajorMinor::new(1, 9).less(&MajorMinor::new(1, 10)));
    assert!(!MajorMinor::new(2, 0).less(&MajorMinor::new(1, 99)));
}

// --- proptest round trips -------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, control characters and the LUCI rabbit.
    prop_oneof![any::<String>(), "[a-z0-9-]{0,12}".prop_map(String::from)]
}

fn go_time() -> impl Strategy<Value = GoTime> {
    (
        -62_135_596_800i64..253_402_300_799,
        0u32..1_000_000_000,
        -14 * 60i32..=14 * 60,
    )
        .prop_map(|(s, n, off_min)| {
            let t = GoTime::from_unix(s, n).unwrap();
            let off = chrono::FixedOffset::east_opt(off_min * 60).unwrap();
            GoTime(t.0.with_timezone(&off))
        })
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0i64..1_000_000).prop_map(|n| n as f64),
        (0.0f64..1e9),
        Just(0.0)
    ]
}

prop_compose! {
    fn revision()(repo in text(), revision in text(), go_revision in text(), date in text(),
                  branch in text(), go_branch in text(), author in text(), desc in text(),
                  results in prop::collection::vec(text(), 0..4)) -> BuildRevision {
        BuildRevision { repo, revision, go_revision, date, branch, go_branch, author, desc, results }
    }
}

prop_compose! {
    fn reverse_builder()(name in text(), host_type in text(), connected_sec in float(),
                         idle_sec in float(), busy_sec in float(), version in text(),
                         busy in any::<bool>(),
                         revdial in prop_oneof![Just(String::new()), Just("v2".to_string()), Just("mux".to_string())])
                         -> ReverseBuilder {
        ReverseBuilder { name, host_type, connected_sec, idle_sec, busy_sec, version, busy, revdial }
    }
}

prop_compose! {
    fn host_status()(host_type in text(), n in prop::array::uniform5(-5i64..100),
                     machines in prop::collection::btree_map(text(), reverse_builder(), 0..3))
                     -> ReverseHostStatus {
        ReverseHostStatus { host_type, connected: n[0], expect: n[1], idle: n[2], busy: n[3],
                            waiters: n[4], machines }
    }
}

proptest! {
    #[test]
    fn build_status_round_trips(builders in prop::collection::vec(text(), 0..4),
                                revisions in prop::collection::vec(revision(), 0..3)) {
        round_trip(&BuildStatus { builders, revisions });
    }

    #[test]
    fn build_record_round_trips(s in prop::collection::vec(text(), 11), b in any::<[bool; 2]>(),
                                start in go_time(), end in go_time(), seconds in float()) {
        round_trip(&BuildRecord {
            id: s[0].clone(), process_id: s[1].clone(), start_time: start, is_try: b[0],
            is_slow_bot: b[1], go_rev: s[2].clone(), rev: s[3].clone(), repo: s[4].clone(),
            builder: s[5].clone(), container_host: s[6].clone(), os: s[7].clone(),
            arch: s[8].clone(), end_time: end, seconds, result: s[9].clone(),
            failure_url: s[10].clone(), log_url: String::new(),
        });
    }

    #[test]
    fn span_record_round_trips(s in prop::collection::vec(text(), 10), is_try in any::<bool>(),
                               start in go_time(), end in go_time(), seconds in float()) {
        let span = SpanRecord {
            build_id: s[0].clone(), is_try, go_rev: s[1].clone(), rev: s[2].clone(),
            repo: s[3].clone(), builder: s[4].clone(), os: s[5].clone(), arch: s[6].clone(),
            event: s[7].clone(), error: s[8].clone(), detail: s[9].clone(),
            start_time: start, end_time: end, seconds,
        };
        round_trip(&span);
        prop_assert!(span.key_name().starts_with(&span.build_id));
    }

    #[test]
    fn reverse_status_round_trips(hosts in prop::collection::btree_map(text(), host_status(), 0..3)) {
        round_trip(&ReverseBuilderStatus { host_types: hosts });
    }

    #[test]
    fn small_types_round_trip(message in text(), ahead in any::<i64>(), major in any::<i64>(),
                              minor in any::<i64>(), version in any::<i64>(),
                              s in prop::collection::vec(text(), 4)) {
        round_trip(&BuildletWaitStatus { message: message.clone(), ahead });
        round_trip(&MajorMinor { major, minor });
        round_trip(&BuildletStatus { version });
        round_trip(&ActivePostSubmitBuild { builder: s[0].clone(), commit: s[1].clone(),
                                            go_commit: s[2].clone(), status_url: s[3].clone() });
        round_trip(&WaitStreamItem { error: message, buildlet: None,
                                     status: Some(BuildletWaitStatus { message: s[0].clone(), ahead }) });
    }

    #[test]
    fn result_post_and_reply_round_trip(s in prop::collection::vec(text(), 7), ok in any::<bool>(),
                                        run_time in any::<i64>()) {
        round_trip(&ResultPost { builder: s[0].clone(), package_path: s[1].clone(),
                                 hash: s[2].clone(), go_hash: s[3].clone(), ok, log: s[4].clone(),
                                 run_time, log_hash: s[5].clone(), building_url: s[6].clone() });
        round_trip(&DashReply::error(s[0].clone()));
    }

    #[test]
    fn go_time_text_round_trips(t in go_time()) {
        let s = t.to_string();
        prop_assert_eq!(GoTime::parse(&s).unwrap(), t);
        // Go never prints trailing zeros in the fraction.
        if let Some(frac) = s.split('.').nth(1) {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            prop_assert!(!digits.ends_with('0'), "{}", s);
        }
    }

    #[test]
    fn host_config_round_trips_through_json(expect in 0i64..10, notes in text(),
                                            owners in prop::collection::vec(text(), 0..2)) {
        let h = HostConfig {
            host_type: "host-linux-amd64-x".into(), host_arch: "linux-amd64".into(),
            go_bootstrap: "go1.24.6".into(), is_reverse: true, expect_num: expect, notes,
            owners: owners.into_iter().map(|name| host::Person { name, ..Default::default() }).collect(),
            ..Default::default()
        };
        round_trip(&h);
    }
}
