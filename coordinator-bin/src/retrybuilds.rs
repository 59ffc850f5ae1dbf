//! `coordinator retry`: upstream's `cmd/retrybuilds` as a client of the coordinator's API
//! (with a token): builds one, every failed build of a builder, or every build of a
//! revision again, after a dry run if asked.
//!
//! For each (builder, revision) only the newest build counts: a failure already retried
//! and now green is not retried again, and history is never queued twice.

use std::collections::BTreeSet;

use std::path::Path;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// What to build again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One build, by id.
    Build(String),
    /// Every failed build of a builder (its newest per revision).
    FailedOf(String),
    /// Every finished build of a revision (the newest per builder).
    Revision(String),
}

/// A build as the API lists it (the fields used here).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Listed {
    /// Id.
    pub id: String,
    /// Builder.
    pub builder: String,
    /// Commit hash.
    pub rev: String,
    /// State.
    pub state: String,
}

/// A client of one coordinator's API.
#[derive(Debug)]
pub struct ApiClient {
    base: String,
    token: String,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The roots an https coordinator is checked against: `ca` (a coordinator's generated
/// `tls/ca.pem`), or the system's (and `SSL_CERT_FILE`).
fn tls_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("--ca {}: {e}", path.display()))?;
            for c in certs {
                roots.add(c)?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl ApiClient {
    /// A client of `base` (`http://` or `https://host:port`) acting with `token`,
    /// trusting `ca` for https (else the system's roots).
    pub fn new(base: &str, token: &str, ca: Option<&Path>) -> anyhow::Result<ApiClient> {
        if !base.starts_with("http://") && !base.starts_with("https://") {
            anyhow::bail!(
                "--url {base:?}: give http(s)://HOST:PORT of the coordinator's web listener"
            );
        }
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca)?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            http: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    async fn call(&self, method: &str, path: &str) -> anyhow::Result<(u16, Bytes)> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .body(Full::new(Bytes::new()))?;
        let res = self
            .http
            .request(req)
            .await
            .map_err(|e| anyhow::anyhow!("{method} {}{path}: {e}", self.base))?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn ok(&self, method: &str, path: &str) -> anyhow::Result<Bytes> {
        let (status, body) = self.call(method, path).await?;
        if !(200..300).contains(&status) {
            anyhow::bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        Ok(body)
    }

    /// The builds `sel` names, newest first.
    pub async fn select(&self, sel: &Selection) -> anyhow::Result<Vec<Listed>> {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let listed: Vec<Listed> = match sel {
            Selection::Build(id) => {
                let body = self.ok("GET", &format!("/api/builds/{}", enc(id))).await?;
                return Ok(vec![serde_json::from_slice(&body)?]);
            }
            Selection::FailedOf(builder) => serde_json::from_slice(
                &self
                    .ok(
                        "GET",
                        &format!("/api/builds?builder={}&limit=1000", enc(builder)),
                    )
                    .await?,
            )?,
            Selection::Revision(rev) => serde_json::from_slice(
                &self
                    .ok("GET", &format!("/api/builds?rev={}&limit=1000", enc(rev)))
                    .await?,
            )?,
        };
        // The newest build per (builder, revision) decides.
        let mut seen = BTreeSet::new();
        Ok(listed
            .into_iter()
            .filter(|b| seen.insert((b.builder.clone(), b.rev.clone())))
            .filter(|b| match sel {
                Selection::FailedOf(_) => b.state == "failed",
                _ => matches!(b.state.as_str(), "succeeded" | "failed" | "canceled"),
            })
            .collect())
    }

    /// Queues `b` again; returns the new build's id.
    pub async fn retry(&self, b: &Listed) -> anyhow::Result<String> {
        let body = self
            .ok("POST", &format!("/api/builds/{}/retry", b.id))
            .await?;
        Ok(serde_json::from_slice::<Listed>(&body)?.id)
    }
}
