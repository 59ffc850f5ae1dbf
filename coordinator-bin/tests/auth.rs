//! Access control over a real socket on the real binary: every route of the router
//! against every role (the route list is the one the router is built from, so a route
//! added later without the right role fails here), the token lifecycle through the CLI
//! while the coordinator runs, and the audit log of what happened.

mod common;

use common::*;
use coordinator_bin::auth::layer::RouteRule;
use coordinator_bin::auth::{Access, Role};

/// Who calls: a token's roles, or no token at all.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Nobody,
    With(Role),
}

/// A concrete path for a route pattern.
fn concrete(rule: &RouteRule, build: &str) -> String {
    if rule.path == "/perf/*" {
        return if rule.method == "GET" {
            "/perf/".into()
        } else {
            "/perf/upload".into()
        };
    }
    rule.path
        .replace("{id}", build)
        .replace("{source}", "repo")
        .replace("{file}", "none.tar.gz")
}

/// What `caller` must get from a route: allowed (`true`), or the refusal's status.
fn expected(access: Access, caller: Caller, anonymous_read: bool) -> Result<(), u16> {
    let has = |role: Role| match caller {
        Caller::Nobody => false,
        Caller::With(r) => r == role || r == Role::Admin || role == Role::Viewer,
    };
    match (access, caller) {
        (Access::Public, _) => Ok(()),
        (Access::Read | Access::Fetch, Caller::Nobody) if anonymous_read => Ok(()),
        (Access::Read | Access::Fetch, Caller::Nobody) => Err(401),
        (Access::Read | Access::Fetch, _) => Ok(()),
        (Access::Need(_) | Access::Write(_), Caller::Nobody) => Err(401),
        (Access::Need(r) | Access::Write(r), _) if has(r) => Ok(()),
        (Access::Need(_) | Access::Write(_), _) => Err(403),
    }
}

/// Walks every route with every caller on a coordinator with anonymous reading as
/// given; returns the table (route × caller → status) for the record.
fn walk(anonymous_read: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho built\n", "one commit");
    let cfg = config(
        dir.path(),
        &repo,
        &format!(
            "[[builders]]\nname = \"b\"\nhost_type = \"host-test\"\nsteps = [[\"./build.sh\"]]\n\n\
             [auth]\nanonymous_read = {anonymous_read}\n"
        ),
    );
    let c = start(&cfg);
    let port = c.port;
    let build = wait_for("a build to exist", 60, || {
        let (_, s) = http(port, "GET", "/status?mode=json", "");
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        v["recent"][0]["id"].as_str().map(str::to_owned)
    });
    let mut callers = vec![(Caller::Nobody, None)];
    for role in Role::ALL {
        let t = create_token(&cfg, &format!("as-{role}"), &[role.as_str()]);
        callers.push((Caller::With(role), Some(t)));
    }
    let rules = coordinator_bin::api::http::routes();
    assert!(
        rules.len() >= 19,
        "the route list is the router's: {rules:?}"
    );
    let mut table = String::from("| route | access |");
    for (caller, _) in &callers {
        table += &format!(" {} |", caller_name(*caller));
    }
    table += "\n";
    for rule in &rules {
        let path = concrete(rule, &build);
        table += &format!("| `{} {}` | {:?} |", rule.method, rule.path, rule.access);
        for (caller, token) in &callers {
            // Writes get a body that is refused after the check (so nothing is queued
            // or polled twice); the check comes first either way.
            let body = if rule.method == "GET" { "" } else { "{" };
            let (status, text) = http_as(token.as_deref(), port, rule.method.as_str(), &path, body);
            let want = expected(rule.access, *caller, anonymous_read);
            match want {
                // Let through: whatever the handler answers, it is not the auth
                // layer's refusal (the login form answers 401 for a bad token itself).
                Ok(()) => assert!(
                    !text.starts_with("401 unauthorized") && !text.starts_with("403 forbidden"),
                    "{caller:?} {} {path}: {status} {text}",
                    rule.method
                ),
                Err(s) => {
                    assert_eq!(status, s, "{caller:?} {} {path}: {text}", rule.method);
                    // The refusal names what is missing.
                    if let Access::Need(r) | Access::Write(r) = rule.access {
                        assert!(text.contains(r.as_str()), "{text}");
                    }
                }
            }
            table += &format!(" {status} |");
        }
        table += "\n";
    }
    // Unrouted paths and methods answer readers only.
    let (status, _) = http_as(None, port, "GET", "/no/such/page", "");
    assert_eq!(status, if anonymous_read { 404 } else { 401 });
    // Writes were audited with who, route, target and result; 403s too.
    let (status, audit) = http(port, "GET", "/api/audit", "");
    assert_eq!(status, 200, "{audit}");
    let v: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["who"] == "as-viewer"
            && e["route"] == "POST /api/poll"
            && e["status"] == 403
            && e["client"].as_str().unwrap().starts_with("127.0.0.1:")),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["who"] == "as-submitter"
            && e["route"] == "POST /api/builds"
            && e["target"] == "/api/builds"
            && e["status"] == 400),
        "{audit}"
    );
    assert!(
        !entries.iter().any(|e| e["who"] == "anonymous"),
        "writes without any token are not kept: {audit}"
    );
    table
}

fn caller_name(c: Caller) -> String {
    match c {
        Caller::Nobody => "no token".into(),
        Caller::With(r) => r.to_string(),
    }
}

#[test]
fn every_route_answers_only_the_roles_it_names_with_anonymous_reading() {
    let table = walk(true);
    eprintln!("roles × routes, anonymous reading on:\n{table}");
}

#[test]
fn with_anonymous_reading_off_only_healthz_answers_without_a_token() {
    let table = walk(false);
    eprintln!("roles × routes, anonymous reading off:\n{table}");
}

/// `coordinator token ARGS… --config CFG`.
fn token_cli(cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("token")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn a_token_works_until_it_is_revoked_then_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho built\n", "one commit");
    let cfg = config(dir.path(), &repo, "[auth]\nanonymous_read = false\n");
    let c = start(&cfg);
    let token = create_token(&cfg, "ci", &["submitter", "viewer"]);
    assert!(token.starts_with("xbt_") && token.len() == 68, "{token}");
    let (status, _) = http_as(Some(&token), c.port, "GET", "/status?mode=json", "");
    assert_eq!(status, 200);
    // Names are unique; listing shows the token without its secret.
    let again = token_cli(&cfg, &["create", "--name", "ci", "--role", "viewer"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let list = String::from_utf8(token_cli(&cfg, &["list"]).stdout).unwrap();
    assert!(
        list.contains("ci ") && list.contains("viewer,submitter"),
        "{list}"
    );
    assert!(
        !list.contains(&token[4..]),
        "the secret is never shown again"
    );
    // Revoked while the coordinator runs: the very next request is refused.
    assert!(token_cli(&cfg, &["revoke", "ci"]).status.success());
    let (status, text) = http_as(Some(&token), c.port, "GET", "/status?mode=json", "");
    assert_eq!(status, 401);
    assert!(text.contains("revoked"), "{text}");
    // Junk and unknown tokens are refused with what is wrong.
    let (status, text) = http_as(Some("hunter2"), c.port, "GET", "/", "");
    assert_eq!(status, 401);
    assert!(text.contains("not a coordinator token"), "{text}");
    let unknown = format!("xbt_{}", "0".repeat(64));
    let (status, text) = http_as(Some(&unknown), c.port, "GET", "/", "");
    assert_eq!(status, 401);
    assert!(text.contains("unknown token"), "{text}");
    // A token with a bad role is refused at creation, naming the valid ones.
    let bad = token_cli(&cfg, &["create", "--name", "x", "--role", "root"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("perf-uploader"));
}

#[test]
fn expensive_writes_are_rate_limited_per_token_and_bodies_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    repo_with_script(&repo, "#!/bin/sh\necho built\n", "one commit");
    let cfg = config(dir.path(), &repo, "[auth]\nwrites_per_minute = 3\n");
    let c = start(&cfg);
    let ci = create_token(&cfg, "ci", &["submitter"]);
    let other = create_token(&cfg, "other", &["submitter"]);
    // Three pass the limit (and are refused for their body, after it).
    for _ in 0..3 {
        let (status, text) = http_as(Some(&ci), c.port, "POST", "/api/builds", "{");
        assert_eq!(status, 400, "{text}");
    }
    let (status, text) = http_as(Some(&ci), c.port, "POST", "/api/builds", "{");
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("\"ci\"") && text.contains("3 times a minute") && text.contains("retry in"),
        "{text}"
    );
    // Another token has its own allowance; reads are not limited.
    let (status, _) = http_as(Some(&other), c.port, "POST", "/api/builds", "{");
    assert_eq!(status, 400);
    for _ in 0..5 {
        let (status, _) = http_as(Some(&ci), c.port, "GET", "/api/builds/Bnope", "");
        assert_eq!(status, 404);
    }
    // An enqueue body over its limit: 413 with the limit, nothing queued.
    let big = format!("{{\"source\":\"{}\"}}", "x".repeat(20_000));
    let (status, text) = http_as(Some(&other), c.port, "POST", "/api/builds", &big);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("16384 bytes"), "{text}");
}
