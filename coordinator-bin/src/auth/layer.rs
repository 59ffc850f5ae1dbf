//! The middleware that checks every request against its route's [`Access`], before
//! routing, so that no handler runs for a caller it is not meant for, and that records
//! every write in the audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Access, Identity, Role, rate::RateLimiter, session, signed::Signer, token};
use crate::store::{AccessStore, AuditEntry};

/// One route as the policy sees it: method, path pattern (`{name}` matches one
/// segment; a trailing `/*` matches everything below), and what it asks of callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// The method (`GET` also covers `HEAD`).
    pub method: Method,
    /// The path pattern, as given to the router.
    pub path: &'static str,
    /// What the route asks of its caller.
    pub access: Access,
    /// Whether the route costs enough (a `git fetch`, a file parsed and stored) to be
    /// rate-limited per caller.
    pub limited: bool,
}

/// What the middleware needs: the rules, the token store, and the switches.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// Every route's rule.
    pub rules: Arc<Vec<RouteRule>>,
    /// Tokens and the audit log.
    pub store: Arc<dyn AccessStore>,
    /// Whether callers without credentials may read.
    pub anonymous_read: bool,
    /// Checks signed URLs ([`Access::Fetch`]).
    pub signer: Signer,
    /// The per-caller limit of [`RouteRule::limited`] routes.
    pub rate: Arc<RateLimiter>,
}

/// Whether `path` matches the pattern `pattern`.
fn matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return path.starts_with(prefix);
    }
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) => {
                let param = a.starts_with('{') && a.ends_with('}');
                if !(param && !b.is_empty() || a == b) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

impl AuthState {
    /// The rule for a request. A `GET` no rule covers is a reader's (it answers `404`);
    /// any other method no rule covers needs an admin.
    pub fn rule(&self, method: &Method, path: &str) -> (String, Access, bool) {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        if let Some(r) = self
            .rules
            .iter()
            .find(|r| r.method == *method && matches(r.path, path))
        {
            return (format!("{} {}", r.method, r.path), r.access, r.limited);
        }
        // Unrouted reads answer 404 or 405, to readers. Any other method on a path with
        // no rule needs an admin: a write route added without a rule fails safe.
        let access = if method == Method::GET {
            Access::Read
        } else {
            Access::Write(Role::Admin)
        };
        (format!("{method} (no rule)"), access, false)
    }

    /// The caller: from `Authorization: Bearer`, or else from a session cookie (with
    /// the cookie's value). Bad credentials in the header are refused; a session cookie
    /// that no longer holds (expired, forged, its token revoked) is as no cookie.
    async fn identify(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(Identity, Option<String>)>, Box<Response>> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(self.session(headers).await);
        };
        let bad = |why: &str| {
            Err(Box::new(refuse(
                StatusCode::UNAUTHORIZED,
                &format!("401 unauthorized: {why}\n"),
            )))
        };
        let Some(t) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return bad("the Authorization header must be `Bearer <token>`");
        };
        if !token::well_formed(t.trim()) {
            return bad("that is not a coordinator token (xbt_ and 64 hex digits)");
        }
        match self.store.token_by_hash(&token::hash(t.trim())).await {
            Ok(Some(rec)) if rec.revoked.is_none() => Ok(Some((identity_of(rec), None))),
            Ok(Some(rec)) => bad(&format!("token {:?} was revoked", rec.name)),
            Ok(None) => bad("unknown token"),
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                Err(Box::new(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 internal server error: token lookup failed\n",
                )))
            }
        }
    }

    async fn session(&self, headers: &HeaderMap) -> Option<(Identity, Option<String>)> {
        let value = session::cookie(headers)?;
        let id = session::verify(&self.signer, value)?;
        match self.store.token_by_id(&id).await {
            Ok(Some(rec)) if rec.revoked.is_none() => {
                Some((identity_of(rec), Some(value.to_owned())))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "session token lookup failed");
                None
            }
        }
    }
}

fn identity_of(rec: crate::store::TokenRecord) -> Identity {
    Identity {
        name: rec.name,
        roles: rec
            .roles
            .iter()
            .filter_map(|r| Role::parse(r).ok())
            .collect(),
    }
}

/// What pages know of their viewer: who, and the CSRF token their forms must carry
/// (for a browser session).
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The identity.
    pub identity: Identity,
    /// The session's CSRF token; `None` for a token in a header or an anonymous reader.
    pub csrf: Option<String>,
}

/// The largest form body read (for its CSRF field, or by the login form).
pub const MAX_FORM: usize = 16 << 10;

/// Whether a request is a browser's url-encoded form post.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The client's address as the audit log shows it (empty if the server set none).
pub fn client_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

/// Whether a session's write carries its CSRF token: in the header, or in the form
/// body (read, then put back for the handler).
async fn csrf_checked(a: &AuthState, session: &str, req: Request) -> Result<Request, Response> {
    let refused = || {
        refuse(
            StatusCode::FORBIDDEN,
            "403 forbidden: this form is missing its CSRF token or it is stale; reload the page and try again\n",
        )
    };
    // The header (scripts), or the action's query (multipart forms: perfstore's upload).
    let in_query = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == session::CSRF_FIELD)
            .map(|(_, v)| v.into_owned())
    });
    if let Some(given) = req
        .headers()
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(in_query)
    {
        return if session::csrf_ok(&a.signer, session, &given) {
            Ok(req)
        } else {
            Err(refused())
        };
    }
    if !is_form(req.headers()) {
        return Err(refused());
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("413 payload too large: a form is at most {MAX_FORM} bytes\n"),
        ));
    };
    let ok = form_urlencoded::parse(&bytes)
        .any(|(k, v)| k == session::CSRF_FIELD && session::csrf_ok(&a.signer, session, &v));
    if !ok {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.to_owned(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"coordinator\""),
        );
    }
    r
}

/// The middleware: identifies the caller, applies the route's rule (and a session's
/// CSRF check and the rate limit), and audits writes.
pub async fn authorize(State(a): State<AuthState>, mut req: Request, next: Next) -> Response {
    let (route, access, limited) = a.rule(req.method(), req.uri().path());
    let (identity, session) = match a.identify(req.headers()).await {
        Ok(Some((i, s))) => (Some(i), s),
        Ok(None) => (None, None),
        Err(refused) => return *refused,
    };
    let reader = identity
        .clone()
        .or_else(|| a.anonymous_read.then(Identity::anonymous_reader));
    // A person in a browser who must log in is sent to the login page.
    let browser = req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    let login = |role: Role, uri: &axum::http::Uri| {
        if browser {
            to_login(uri)
        } else {
            unauthorized(role, &route)
        }
    };
    let denied = match access {
        Access::Public => None,
        Access::Read | Access::Fetch => {
            let signed =
                access == Access::Fetch && a.signer.verify(req.uri().path(), req.uri().query());
            match &reader {
                _ if signed => None,
                Some(i) if i.has(Role::Viewer) => None,
                Some(i) => Some(forbidden(i, Role::Viewer, &route)),
                None => Some(login(Role::Viewer, req.uri())),
            }
        }
        Access::Need(role) | Access::Write(role) => match &identity {
            Some(i) if i.has(role) => None,
            Some(i) => Some(forbidden(i, role, &route)),
            None => return login(role, req.uri()),
        },
    };
    let client = client_of(&req);
    let target = req.uri().path().to_owned();
    if let Some(i) = &reader {
        let csrf = session.as_deref().map(|s| session::csrf(&a.signer, s));
        // perfstore's own hooks: who uploads (its `by` label) and its form's token.
        if identity.is_some() {
            req.extensions_mut()
                .insert(perfstore::http::User(i.name.clone()));
        }
        if let Some(t) = &csrf {
            req.extensions_mut()
                .insert(perfstore::http::FormToken(t.clone()));
        }
        req.extensions_mut().insert(Viewer {
            identity: i.clone(),
            csrf,
        });
    }
    let denied = denied.or_else(|| {
        let who = identity.as_ref().filter(|_| limited)?;
        let wait = a.rate.check(&who.name, std::time::Instant::now()).err()?;
        Some(too_many(&who.name, a.rate.per_minute(), &route, wait))
    });
    let response = match denied {
        Some(r) => r,
        None => match &session {
            Some(s) if access.is_write() => match csrf_checked(&a, s, req).await {
                Ok(req) => next.run(req).await,
                Err(refused) => refused,
            },
            _ => next.run(req).await,
        },
    };
    if access.is_write()
        && let Some(i) = &identity
    {
        let entry = AuditEntry {
            seq: 0,
            time: crate::store::sqlite::now(),
            who: i.name.clone(),
            roles: i.roles_text(),
            route,
            target,
            status: response.status().as_u16(),
            client,
        };
        if let Err(e) = a.store.add_audit(&entry).await {
            tracing::error!(error = %e, "could not record a write in the audit log");
        }
    }
    response
}

/// `303` to the login page, coming back to `uri` after.
fn to_login(uri: &axum::http::Uri) -> Response {
    let back = uri.path_and_query().map_or("/", |p| p.as_str());
    let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
    axum::response::Redirect::to(&format!("/login?next={next}")).into_response()
}

fn too_many(who: &str, per_minute: u32, route: &str, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + 1;
    let mut r = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "429 too many requests: token {who:?} may call {route} at most {per_minute} times \
             a minute; retry in {secs} s\n"
        ),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

fn unauthorized(role: Role, route: &str) -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        &format!(
            "401 unauthorized: {route} needs a token with the {role} role; send \
             `Authorization: Bearer <token>` (an admin makes one with `coordinator token \
             create --name NAME --role {role}`)\n"
        ),
    )
}

fn forbidden(i: &Identity, role: Role, route: &str) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        &format!(
            "403 forbidden: {route} needs the {role} role; token {:?} has {}\n",
            i.name,
            if i.roles.is_empty() {
                "none".to_owned()
            } else {
                i.roles_text()
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/api/builds/{id}/retry", "/api/builds/B1/retry"));
        assert!(!matches("/api/builds/{id}/retry", "/api/builds//retry"));
        assert!(!matches("/api/builds/{id}", "/api/builds/B1/retry"));
        assert!(!matches("/api/builds/{id}", "/api/builds"));
        assert!(matches("/", "/"));
        assert!(!matches("/", "/x"));
        assert!(matches("/perf/*", "/perf/upload"));
        assert!(!matches("/perf/*", "/perfx"));
    }

    #[test]
    fn admin_implies_every_role_and_any_role_reads() {
        let admin = Identity {
            name: "a".into(),
            roles: vec![Role::Admin],
        };
        assert!(Role::ALL.iter().all(|r| admin.has(*r)));
        let sub = Identity {
            name: "s".into(),
            roles: vec![Role::Submitter],
        };
        assert!(sub.has(Role::Viewer) && sub.has(Role::Submitter));
        assert!(!sub.has(Role::Admin) && !sub.has(Role::PerfUploader));
        let none = Identity {
            name: "n".into(),
            roles: vec![],
        };
        assert!(!none.has(Role::Viewer));
        assert_eq!(Role::parse("perf-uploader"), Ok(Role::PerfUploader));
        assert!(Role::parse("root").unwrap_err().contains("admin"));
    }
}
