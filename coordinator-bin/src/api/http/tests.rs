//! Every route, called with `oneshot` on the real router over a real coordinator (SQLite,
//! a git mirror of a generated repository, local buildlets); workers are not started, so
//! builds are put in each state through the store.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::Coordinator;
use crate::model::{Event, State};
use crate::store::{Detail, Step};
use crate::testing::{Fixture, fixture};

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

/// A request as the fixture's admin.
async fn call(f: &Fixture, method: &str, uri: &str, body: &str) -> Reply {
    call_with(f, Request::builder().method(method).uri(uri), body).await
}

/// A request as the fixture's admin, unless it names other credentials.
async fn call_with(f: &Fixture, mut req: axum::http::request::Builder, body: &str) -> Reply {
    if !req
        .headers_ref()
        .is_some_and(|h| h.contains_key(header::AUTHORIZATION))
    {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", f.admin));
    }
    call_as(&f.c, req, body).await
}

/// A request exactly as given.
async fn call_as(c: &Arc<Coordinator>, req: axum::http::request::Builder, body: &str) -> Reply {
    let resp = super::router(c.clone())
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Queues a build through the API; returns its id.
async fn enqueue(f: &Fixture, rev: &str) -> String {
    let r = call(
        f,
        "POST",
        "/api/builds",
        &format!(r#"{{"source":"repo","rev":"{rev}","builder":"local-quick"}}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// A build that ran and failed at its second step.
async fn failed_build(f: &Fixture, rev: &str) -> String {
    let id = enqueue(f, rev).await;
    let s = &f.c.store;
    assert!(s.apply(&id, Event::Claim, Detail::default()).await.unwrap());
    assert!(
        s.apply(&id, Event::Leased, Detail::buildlet("local-host-local-0"))
            .await
            .unwrap()
    );
    for (i, (name, result)) in [("push source", "ok"), ("$ make test", "exit status 2")]
        .into_iter()
        .enumerate()
    {
        s.add_step(
            &id,
            &Step {
                attempt: 1,
                index: i as i64,
                name: name.into(),
                started: "2026-01-01T00:00:00Z".into(),
                millis: 1500,
                result: result.into(),
            },
        )
        .await
        .unwrap();
    }
    assert!(
        s.apply(
            &id,
            Event::Finish(State::Failed),
            Detail::log(b"$ make test\nFAIL\n".to_vec())
        )
        .await
        .unwrap()
    );
    id
}

#[tokio::test]
async fn grid_pages_and_json() {
    let f = fixture().await;
    let r = call(&f, "GET", "/", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("No builds yet"), "{}", r.body);
    let failed = failed_build(&f, &f.rev).await;
    let r = call(&f, "GET", "/", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/html"));
    assert!(r.body.contains(&f.rev[..10]), "{}", r.body);
    assert!(
        r.body.contains(&format!("/build/{failed}#failed")),
        "{}",
        r.body
    );
    assert!(r.body.contains("first commit"));
    let r = call(&f, "GET", "/?mode=json", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["revisions"][0]["revision"], f.rev.as_str());
    assert!(
        v["revisions"][0]["results"][0]
            .as_str()
            .unwrap()
            .ends_with(&format!("/log/{failed}")),
        "{v}"
    );
    let r = call(&f, "GET", "/?page=1", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("No older commits"), "{}", r.body);
    assert!(r.body.contains("newer"), "{}", r.body);
    for bad in ["/?mode=xml", "/?page=-1", "/?page=x"] {
        let r = call(&f, "GET", bad, "").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
}

#[tokio::test]
async fn build_page_log_and_json() {
    let f = fixture().await;
    let id = failed_build(&f, &f.rev).await;
    let r = call(&f, "GET", &format!("/build/{id}"), "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"id="failed""#), "{}", r.body);
    assert!(r.body.contains("$ make test") && r.body.contains("exit status 2"));
    assert!(
        r.body.contains("1.5s"),
        "step durations are shown: {}",
        r.body
    );
    let r = call(&f, "GET", &format!("/log/{id}"), "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("result: failed") && r.body.contains("FAIL"));
    let r = call(&f, "GET", &format!("/api/builds/{id}"), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["state"], "failed");
    assert_eq!(v["buildlet"], "local-host-local-0");
    let r = call(&f, "GET", &format!("/api/builds/{id}/record"), "").await;
    assert_eq!(r.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["Result"], "fail");
    for path in [
        "/build/Bnope",
        "/log/Bnope",
        "/api/builds/Bnope",
        "/api/builds/Bnope/record",
    ] {
        let r = call(&f, "GET", path, "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.body.contains("no build Bnope"), "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn write_routes() {
    let f = fixture().await;
    let id = enqueue(&f, "main").await;
    let b = f.c.store.get(&id).await.unwrap().unwrap();
    assert_eq!((b.rev(), b.branch.as_str()), (f.rev.as_str(), "main"));
    // Malformed requests are 400s; well-formed ones naming what does not exist, 404s.
    for (body, want, status) in [
        ("not json", "bad request", StatusCode::BAD_REQUEST),
        (
            r#"{"source":"repo","rev":"main","builder":"nope"}"#,
            "unknown builder",
            StatusCode::NOT_FOUND,
        ),
        (
            r#"{"source":"nope","rev":"main","builder":"local-quick"}"#,
            "unknown source",
            StatusCode::NOT_FOUND,
        ),
        (
            r#"{"source":"repo","rev":"--output=x","builder":"local-quick"}"#,
            "unknown revision",
            StatusCode::NOT_FOUND,
        ),
        (
            r#"{"source":"repo","rev":"main","builder":"local-quick","x":1}"#,
            "unknown field",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = call(&f, "POST", "/api/builds", body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(want), "{body}: {}", r.body);
    }
    let r = call(&f, "POST", &format!("/api/builds/{id}/retry"), "").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = call(&f, "POST", &format!("/api/builds/{id}/cancel"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(&f, "POST", &format!("/api/builds/{id}/cancel"), "").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("canceled"), "{}", r.body);
    for path in ["/api/builds/Bnope/cancel", "/api/builds/Bnope/retry"] {
        let r = call(&f, "POST", path, "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    let r = call(&f, "POST", "/api/poll", "").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn status_in_html_and_json() {
    let f = fixture().await;
    let queued = enqueue(&f, &f.rev).await;
    let r = call(&f, "GET", "/status", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("host-local"), "{}", r.body);
    assert!(r.body.contains(&format!("/build/{queued}")), "{}", r.body);
    let r = call(&f, "GET", "/status?mode=json", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["queue"][0]["id"], queued.as_str());
    assert_eq!(v["queue"][0]["position"], 1);
    assert_eq!(v["pools"][0]["host_type"], "host-local");
    let r = call(&f, "GET", "/status?mode=yaml", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn source_archives() {
    let f = fixture().await;
    for rev in [f.rev.as_str(), "main"] {
        let r = call(&f, "GET", &format!("/src/repo/+archive/{rev}.tar.gz"), "").await;
        assert_eq!(r.status, StatusCode::OK, "{rev}");
        assert_eq!(r.content_type, "application/x-gzip");
    }
    let resp = super::router(f.c.clone())
        .oneshot(
            Request::get(format!("/src/repo/+archive/{}.tar.gz", f.rev))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
    for (path, status) in [
        ("/src/repo/+archive/main.zip", StatusCode::NOT_FOUND),
        ("/src/nope/+archive/main.tar.gz", StatusCode::NOT_FOUND),
        ("/src/repo/+archive/nope.tar.gz", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(call(&f, "GET", path, "").await.status, status, "{path}");
    }
}

#[tokio::test]
async fn metrics_health_perf_and_fallbacks() {
    let f = fixture().await;
    let r = call(&f, "GET", "/metrics", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("text/plain"));
    assert!(
        r.body
            .contains("coordinator_pool_machines{host_type=\"host-local\",state=\"connected\"} 1"),
        "{}",
        r.body
    );
    f.c.metrics
        .queue_wait("b", std::time::Duration::from_secs(3));
    f.c.metrics
        .finished("b", State::Succeeded, std::time::Duration::from_secs(70));
    f.c.metrics.lease_failed("host-local");
    let r = call_with(
        &f,
        Request::get("/metrics").header(header::ACCEPT, "application/openmetrics-text"),
        "",
    )
    .await;
    assert!(r.content_type.starts_with("application/openmetrics-text"));
    for want in [
        "coordinator_queue_wait_seconds_bucket{le=\"5.0\",builder=\"b\"} 1",
        "coordinator_build_duration_seconds_count{builder=\"b\"} 1",
        "coordinator_lease_failures_total{host_type=\"host-local\"} 1",
    ] {
        assert!(r.body.contains(want), "{want}:\n{}", r.body);
    }
    let r = call(&f, "GET", "/healthz", "").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok\n"));
    let r = call(&f, "GET", "/perf", "").await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    let r = call(&f, "GET", "/perf/", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(&f, "GET", "/nope", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("/nope"));
    let r = call(&f, "DELETE", "/", "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.body.contains("DELETE"));
}

#[tokio::test]
async fn bootstrap_files_are_served_from_the_data_dir() {
    let f = fixture().await;
    let folder = f.c.config.data_dir.join("bootstrap");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("go1.22.tar.gz"), b"archive bytes").unwrap();
    let r = call(&f, "GET", "/bootstrap/go1.22.tar.gz", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "archive bytes")
    );
    let r = call(&f, "GET", "/bootstrap/missing.tar.gz", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for bad in [
        "/bootstrap/..",
        "/bootstrap/.hidden",
        "/bootstrap/a%2F..%2Fb",
        "/bootstrap/%2Fetc%2Fpasswd",
    ] {
        let r = call(&f, "GET", bad, "").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
}
