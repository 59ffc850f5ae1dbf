//! Browser sessions: after the login form took a token, a cookie names that token (by
//! id, never the secret) with an expiry and an HMAC, HttpOnly and SameSite=Strict. Each
//! request looks the token up again, so revoking it ends its sessions at once. A write
//! made with a session must also carry the page's CSRF token (a hidden form field
//! `csrf`, or the `X-CSRF-Token` header), an HMAC of the session cookie: another site
//! can make a browser send the cookie, but cannot read a page to learn the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};

use super::signed::Signer;

/// The cookie's name.
pub const COOKIE: &str = "xb_session";
/// How long a session lasts.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The header that carries it for scripts.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A session cookie's value for token `id`: `id.expiry.tag`.
pub fn issue(signer: &Signer, id: &str) -> String {
    let exp = (now() + LIFETIME.as_secs()).to_string();
    format!("{id}.{exp}.{}", signer.tag("session", &[id, &exp]))
}

/// The token id a session cookie value names, if its tag is right and it has not
/// expired.
pub fn verify(signer: &Signer, value: &str) -> Option<String> {
    let mut it = value.splitn(3, '.');
    let (id, exp, tag) = (it.next()?, it.next()?, it.next()?);
    let live = exp.parse::<u64>().is_ok_and(|e| e >= now());
    (live && signer.check("session", &[id, exp], tag)).then(|| id.to_owned())
}

/// The CSRF token of a session.
pub fn csrf(signer: &Signer, session: &str) -> String {
    signer.tag("csrf", &[session])
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_ok(signer: &Signer, session: &str, given: &str) -> bool {
    signer.check("csrf", &[session], given)
}

/// The session cookie's value in a request, if there is one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that starts a session (`secure` over TLS).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_csrf_tokens_are_bound_to_their_key_and_session() {
        let s = Signer::random();
        let v = issue(&s, "0123abcd");
        assert_eq!(verify(&s, &v).as_deref(), Some("0123abcd"));
        assert_eq!(verify(&Signer::random(), &v), None, "another key");
        let forged = v.replacen("0123abcd", "ffffffff", 1);
        assert_eq!(verify(&s, &forged), None, "another token id");
        assert_eq!(verify(&s, "x"), None);
        let stale = format!("id.1.{}", s.tag("session", &["id", "1"]));
        assert_eq!(verify(&s, &stale), None, "expired");
        let t = csrf(&s, &v);
        assert!(csrf_ok(&s, &v, &t));
        assert!(!csrf_ok(&s, &issue(&s, "other"), &t), "another session");
        assert!(!csrf_ok(&s, &v, "00"));
        // A URL signature is not a session tag, though one key makes both.
        assert!(!s.check("session", &["/x", "1"], &s.tag("url", &["/x", "1"])));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={v}; c=d").parse().unwrap(),
        );
        assert_eq!(cookie(&h), Some(v.as_str()));
    }
}
