//! Reading parameters the way Go's `net/http` does: FormValue (urlencoded body first, then
//! the query), PostForm (body only) and the raw query (spec §2.1).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use http_body_util::BodyExt;

use crate::api::{Pairs, parse_form};

/// Go's `ParseForm` reads at most 10 MB of urlencoded body.
const MAX_FORM: usize = 10 << 20;

/// The query and (for urlencoded POST/PUT/PATCH bodies) the body's pairs.
pub(crate) struct Params {
    pub(crate) query: Pairs,
    pub(crate) body: Pairs,
}

impl Params {
    /// FormValue: the body's first value, else the query's, else "".
    pub(crate) fn value(&self, key: &str) -> &str {
        crate::api::first(&self.body, key)
            .or_else(|| crate::api::first(&self.query, key))
            .unwrap_or("")
    }

    /// Every value of `key`, body values first then query values (Go's `r.Form[key]`).
    pub(crate) fn values(&self, key: &str) -> Vec<&str> {
        let mut v = crate::api::all(&self.body, key);
        v.extend(crate::api::all(&self.query, key));
        v
    }
}

/// The query pairs only.
pub(crate) fn query(req: &Request) -> Pairs {
    parse_form(req.uri().query().unwrap_or("").as_bytes())
}

/// Reads the query and, if the request has an urlencoded body, the body.
pub(crate) async fn read(req: Request) -> Result<Params, String> {
    let query = query(&req);
    let urlencoded = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().unwrap_or("").trim() == "application/x-www-form-urlencoded"
        });
    let has_body = matches!(req.method().as_str(), "POST" | "PUT" | "PATCH");
    if !(urlencoded && has_body) {
        return Ok(Params {
            query,
            body: Vec::new(),
        });
    }
    let body = limited(req.into_body(), MAX_FORM).await?;
    Ok(Params {
        query,
        body: parse_form(&body),
    })
}

async fn limited(body: Body, max: usize) -> Result<Vec<u8>, String> {
    let limited = http_body_util::Limited::new(body, max);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(e) => Err(format!("http: request body too large or unreadable: {e}")),
    }
}
