//! The buildlet password check (spec §5.1): HTTP Basic, user name ignored, password
//! compared in constant time; failures get 403 `invalid password` with no
//! `WWW-Authenticate`. An empty configured password disables the check.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use super::AppState;
use super::reply::go_error;

/// The password from an `Authorization: Basic …` value, if well formed.
pub fn basic_password(value: &[u8]) -> Option<Vec<u8>> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    Some(raw[colon + 1..].to_vec())
}

/// Whether `authorization` carries `password` (always true when no password is set).
pub fn check(password: &str, authorization: Option<&[u8]>) -> bool {
    if password.is_empty() {
        return true;
    }
    authorization
        .and_then(basic_password)
        .is_some_and(|got| dashboard_secrets_equal(got.as_slice(), password.as_bytes()))
}

fn dashboard_secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Middleware: 403 unless the request carries the password.
pub(crate) async fn require_password(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if check(&st.cfg.password, auth) {
        next.run(req).await
    } else {
        go_error(403, "invalid password")
    }
}
