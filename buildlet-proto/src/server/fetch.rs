//! `/writetgz?url=`: fetching an archive over http or https. https trusts the system's
//! roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` override them, as for Go's `net/http` and
//! OpenSSL), so a bootstrap toolchain can come from any public server.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::response::Response;
use hyper_util::rt::TokioExecutor;

use super::reply::go_error;

/// An error and its causes, `outer: inner: innermost` (hyper's client errors say only
/// "client error (Connect)" on their own; the cause, a refused certificate say, is below).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The TLS client configuration with the system's roots, loaded once.
fn system_roots() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no trusted root certificates on this machine for https{why} \
                     (install ca-certificates, or point SSL_CERT_FILE at a PEM bundle)"
                ));
            }
            Ok(Arc::new(
                rustls::ClientConfig::builder()
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            ))
        })
        .clone()
}

/// How long `/writetgz?url=` waits to connect.
pub(crate) const FETCH_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long `/writetgz?url=` waits for the response head.
pub(crate) const FETCH_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The default of [`Config::fetch_idle_timeout`](super::Config::fetch_idle_timeout).
pub(crate) const FETCH_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Fetches `url` for `/writetgz` (http or https, up to 10 redirects, as upstream). Unlike
/// upstream, connecting, the response head and every pause in the body (`idle`) are
/// bounded, so a server that stops answering cannot hold an extraction, and its blocking
/// thread, forever.
pub(crate) async fn fetch(url: &str, idle: std::time::Duration) -> Result<Body, Response> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(FETCH_CONNECT_TIMEOUT));
    connector.enforce_http(false);
    let tls = system_roots().map_err(|e| go_error(500, format!("fetching URL {url}: {e}")))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    let mut current = url.to_owned();
    for _ in 0..=10 {
        let uri: hyper::Uri = current
            .parse()
            .map_err(|e| go_error(500, format!("fetching URL {url}: {e}")))?;
        let req = hyper::Request::get(uri.clone())
            .body(Body::empty())
            .map_err(|e| go_error(500, format!("fetching URL {url}: {e}")))?;
        let resp = tokio::time::timeout(FETCH_HEAD_TIMEOUT, client.request(req))
            .await
            .map_err(|_| {
                go_error(
                    500,
                    format!("fetching URL {url}: no response within {FETCH_HEAD_TIMEOUT:?}"),
                )
            })?
            .map_err(|e| go_error(500, format!("fetching URL {url}: {}", chain(&e))))?;
        let status = resp.status();
        if status.is_redirection() {
            let Some(loc) = resp
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                break;
            };
            current = join_location(&uri, loc);
            continue;
        }
        if status != hyper::StatusCode::OK {
            let line = format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            return Err(go_error(
                500,
                format!(
                    "writetgz: fetching provided URL {}: {line}",
                    crate::api::go_quote(url)
                ),
            ));
        }
        return Ok(Body::new(netguard::IdleBody::new(
            resp.into_body(),
            idle,
            "the URL",
        )));
    }
    Err(go_error(
        500,
        format!("fetching URL {url}: stopped after 10 redirects"),
    ))
}

fn join_location(base: &hyper::Uri, loc: &str) -> String {
    if loc.contains("://") {
        return loc.to_owned();
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let auth = base.authority().map_or("", |a| a.as_str());
    if loc.starts_with('/') {
        format!("{scheme}://{auth}{loc}")
    } else {
        let path = base.path();
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{scheme}://{auth}{dir}/{loc}")
    }
}
