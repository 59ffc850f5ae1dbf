//! What a new user and a hostile caller found in the coordinator: answers with bodies,
//! links that do not trust `Host`, metrics a browser can show, a grid that a canceled
//! retry cannot hide, a data directory two coordinators cannot share, and `key` that
//! does not invent a master key.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

const BUILDERS: &str = r#"
[[builders]]
name = "script"
host_type = "host-test"
steps = [["./build.sh"]]
step_timeout_secs = 60

[pools.local]
host-test = 1
"#;

/// A raw request with the given extra header lines; returns the whole response.
fn raw(port: u16, method: &str, path: &str, headers: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\n{headers}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn errors_have_bodies_and_unknown_builds_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho hi\n", "one");
    let c = start(&config(dir.path(), &repo, BUILDERS));
    let (status, body) = http(c.port, "POST", "/api/builds/nosuchbuild/cancel", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no build nosuchbuild"), "{body}");
    let (status, body) = http(c.port, "GET", "/no/such/page", "");
    assert_eq!(status, 404);
    assert!(body.contains("404 page not found: /no/such/page"), "{body}");
    let (status, body) = http(c.port, "DELETE", "/status", "");
    assert_eq!(status, 405);
    assert!(
        body.contains("405 method DELETE not allowed for /status"),
        "{body}"
    );
}

#[test]
fn metrics_are_openmetrics_only_for_scrapers_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho hi\n", "one");
    let c = start(&config(dir.path(), &repo, BUILDERS));
    let browser = raw(
        c.port,
        "GET",
        "/metrics",
        "Host: x\r\nAccept: text/html,*/*\r\n",
    );
    assert!(
        browser.contains("content-type: text/plain; version=0.0.4"),
        "{browser:.400}"
    );
    assert!(!browser.contains("# EOF"), "{browser:.400}");
    let scraper = raw(
        c.port,
        "GET",
        "/metrics",
        "Host: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
    );
    assert!(
        scraper.contains("content-type: application/openmetrics-text"),
        "{scraper:.400}"
    );
    assert!(scraper.trim_end().ends_with("# EOF"), "{scraper:.400}");
}

#[test]
fn links_are_not_built_from_the_host_header_and_a_canceled_retry_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // Fails (so the grid links its log), slowly enough to cancel a retry mid-run.
    let rev = repo_with_script(&repo, "#!/bin/sh\nsleep 1\necho failing\nexit 3\n", "one");
    let c = start(&config(dir.path(), &repo, BUILDERS));
    let first = wait_for("the first build to fail", 60, || {
        let v = cell(&grid(c.port), &rev, "script");
        v.contains("/log/").then_some(v)
    });
    let json = raw(c.port, "GET", "/?mode=json", "Host: evil.example\r\n");
    assert!(!json.contains("evil.example"), "{json}");
    assert!(
        json.contains(&format!("http://127.0.0.1:{}/log/", c.port)),
        "{json}"
    );
    // A manual retry, canceled while it runs, must not hide the failure.
    let (status, body) = http(
        c.port,
        "POST",
        "/api/builds",
        &format!(r#"{{"source":"repo","rev":"{rev}","builder":"script"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(c.port, "POST", &format!("/api/builds/{id}/cancel"), "");
    assert_eq!(status, 200, "{body}");
    wait_for("the retry to be canceled", 60, || {
        let (_, b) = http(c.port, "GET", &format!("/api/builds/{id}"), "");
        b.contains("\"canceled\"").then_some(())
    });
    assert_eq!(cell(&grid(c.port), &rev, "script"), first);
}

#[test]
fn two_coordinators_cannot_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho hi\n", "one");
    let cfg = config(dir.path(), &repo, BUILDERS);
    let _first = start(&cfg);
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another coordinator (PID "),
        "{err}"
    );
}

#[test]
fn key_refuses_to_invent_a_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["key", "host-linux-arm64-rev", "--data-dir"])
        .arg(dir.path().join("not-a-data-dir"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no master key at"), "{err}");
    assert!(!dir.path().join("not-a-data-dir/master.key").exists());
}

/// Reads until the server closes the connection; false if it is still open after `secs`.
fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// A connection from another loopback address.
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    s.into()
}

#[test]
fn the_web_listener_sheds_idle_connections_and_caps_each_address() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho hi\n", "one");
    let builders = format!("{BUILDERS}\n[limits]\nmax_per_ip = 2\nheader_read_secs = 1\n");
    let c = start(&config(dir.path(), &repo, &builders));
    // Two idle connections from one address: the most it may hold.
    let mut a = connect_from([127, 0, 0, 2], c.port);
    let mut b = connect_from([127, 0, 0, 2], c.port);
    std::thread::sleep(Duration::from_millis(300));
    // A third from that address is closed at once (well before the head timeout).
    let mut third = connect_from([127, 0, 0, 2], c.port);
    assert!(
        closed_within(&mut third, 1),
        "a third connection from one address was kept"
    );
    // Another address is answered meanwhile.
    let (status, _) = http(c.port, "GET", "/healthz", "");
    assert_eq!(status, 200);
    // The idle ones are closed after the head timeout.
    assert!(closed_within(&mut a, 10), "an idle connection was kept");
    assert!(closed_within(&mut b, 10), "an idle connection was kept");
}
