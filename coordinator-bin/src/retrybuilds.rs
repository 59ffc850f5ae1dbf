//! `coordinator retry`: upstream's `cmd/retrybuilds` as a client of the coordinator's API
//! (with a token): builds one, every failed build of a builder, or every build of a
//! revision again, after a dry run if asked.
//!
//! For each (builder, revision) only the newest build counts: a failure already retried
//! and now green is not retried again, and history is never queued twice.

use std::collections::BTreeSet;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ApiClient {
    /// A client of `base` (`http://host:port`) acting with `token`.
    pub fn new(base: &str, token: &str) -> anyhow::Result<ApiClient> {
        if !base.starts_with("http://") {
            anyhow::bail!(
                "--url {base:?}: give http://HOST:PORT of the coordinator's web listener"
            );
        }
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            http: Client::builder(TokioExecutor::new()).build_http(),
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
