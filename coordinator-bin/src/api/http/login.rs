//! `/login` and `/logout`: a browser session from an API token (see
//! [`crate::auth::session`]).

use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Reply, Shared, html};
use crate::auth::layer::{MAX_FORM, Viewer, client_of};
use crate::auth::{session, token};
use crate::store::AuditEntry;

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage {
    refresh: bool,
    /// Who is signed in (then the page offers to log out).
    signed_in: Option<String>,
    csrf: String,
    error: String,
    next: String,
}

/// `?next=`: where to go after logging in.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LoginParams {
    next: Option<String>,
}

/// Only a path of this coordinator: never `//host` or a scheme, which would make the
/// login page an open redirect.
fn local(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

pub(super) async fn page(
    viewer: Option<axum::Extension<Viewer>>,
    Query(p): Query<LoginParams>,
) -> Reply {
    let session = viewer.and_then(|v| {
        let v = v.0;
        v.csrf.map(|c| (v.identity.name, c))
    });
    html(LoginPage {
        refresh: false,
        signed_in: session.as_ref().map(|(n, _)| n.clone()),
        csrf: session.map(|(_, c)| c).unwrap_or_default(),
        error: String::new(),
        next: local(p.next.as_deref()),
    })
}

/// `POST /login` (form `token`, `next`): a session cookie and `303` to `next`, or the
/// form again with why not.
pub(super) async fn login(State(c): State<Shared>, req: Request) -> Response {
    let client = client_of(&req);
    let secure = c.base_url().starts_with("https://");
    let Ok(body) = axum::body::to_bytes(req.into_body(), MAX_FORM).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("413 the login form is at most {MAX_FORM} bytes\n"),
        )
            .into_response();
    };
    let (mut given, mut next) = (String::new(), None);
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "token" => given = v.trim().to_owned(),
            "next" => next = Some(v.into_owned()),
            _ => {}
        }
    }
    let next = local(next.as_deref());
    let record = if token::well_formed(&given) {
        c.access
            .token_by_hash(&token::hash(&given))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let Some(record) = record.filter(|r| r.revoked.is_none()) else {
        let page = html(LoginPage {
            refresh: false,
            signed_in: None,
            csrf: String::new(),
            error: "That token is unknown or revoked.".into(),
            next,
        });
        return match page {
            Ok(mut r) => {
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r
            }
            Err(e) => e.into_response(),
        };
    };
    let entry = AuditEntry {
        seq: 0,
        time: crate::store::sqlite::now(),
        who: record.name.clone(),
        roles: record.roles.join(","),
        route: "POST /login".into(),
        target: "/login".into(),
        status: 303,
        client,
    };
    if let Err(e) = c.access.add_audit(&entry).await {
        tracing::error!(error = %e, "could not record a login in the audit log");
    }
    let cookie = session::set_cookie(&session::issue(&c.signer, &record.id), secure);
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: ends the session (the cookie is cleared).
pub(super) async fn logout() -> Response {
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(super::local(Some("/build/B1?x=1")), "/build/B1?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "evil",
            "/\\evil",
            "",
        ] {
            assert_eq!(super::local(Some(bad)), "/", "{bad}");
        }
        assert_eq!(super::local(None), "/");
    }
}
