//! The coordinator's HMAC-SHA256 key (kept in the data directory) and what it signs:
//! URLs for its buildlets here (a reverse buildlet fetches its builder's bootstrap
//! archive from `/bootstrap/FILE` with no credentials of its own, so the coordinator
//! hands it a URL that carries an expiry and a tag of the path and expiry), and browser
//! sessions and their CSRF tokens ([`super::session`]), each under its own domain.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key's file name in the data directory.
pub const KEY_FILE: &str = "auth.key";

/// Signs and checks URLs, sessions and CSRF tokens with one key.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Signer {
    /// A signer with a fresh random key (tests).
    pub fn random() -> Signer {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("OS randomness");
        Signer { key }
    }

    /// The key in `dir/auth.key`, made (mode 0600) if absent.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Signer> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(b) if b.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&b);
                Ok(Signer { key })
            }
            Ok(_) => Err(std::io::Error::other(format!(
                "{} is not a 32-byte key; delete it to make a new one",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = Signer::random();
                let mut f = std::fs::OpenOptions::new();
                f.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
                std::io::Write::write_all(&mut f.open(&path)?, &s.key)?;
                Ok(s)
            }
            Err(e) => Err(e),
        }
    }

    /// An HMAC of `parts` under `domain` (so a tag made for one use, a URL, a session
    /// or a CSRF token, is never valid for another), one key for all.
    pub(crate) fn tagger(&self, domain: &str, parts: &[&str]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(domain.as_bytes());
        for p in parts {
            m.update(b"\n");
            m.update(p.as_bytes());
        }
        m
    }

    /// [`Signer::tagger`]'s tag, hex.
    pub(crate) fn tag(&self, domain: &str, parts: &[&str]) -> String {
        crate::hex::hex(&self.tagger(domain, parts).finalize().into_bytes())
    }

    /// Whether `tag` (hex) is `parts`' tag under `domain`, compared in constant time.
    pub(crate) fn check(&self, domain: &str, parts: &[&str], tag: &str) -> bool {
        unhex(tag).is_some_and(|t| self.tagger(domain, parts).verify_slice(&t).is_ok())
    }

    fn mac(&self, path: &str, exp: u64) -> Hmac<Sha256> {
        self.tagger("url", &[path, &exp.to_string()])
    }

    /// `path?exp=…&sig=…`, valid for `valid_for`.
    pub fn sign(&self, path: &str, valid_for: Duration) -> String {
        let exp = now() + valid_for.as_secs();
        let sig = crate::hex::hex(&self.mac(path, exp).finalize().into_bytes());
        format!("{path}?exp={exp}&sig={sig}")
    }

    /// Whether `query` carries an unexpired signature of `path` (compared in constant
    /// time).
    pub fn verify(&self, path: &str, query: Option<&str>) -> bool {
        let (mut exp, mut sig) = (None, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("exp", v)) => exp = v.parse::<u64>().ok(),
                Some(("sig", v)) => sig = unhex(v),
                _ => {}
            }
        }
        let (Some(exp), Some(sig)) = (exp, sig) else {
            return false;
        };
        exp >= now() && self.mac(path, exp).verify_slice(&sig).is_ok()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_its_path_and_expires() {
        let s = Signer::random();
        let url = s.sign("/bootstrap/go.tar.gz", Duration::from_secs(60));
        let (path, query) = url.split_once('?').unwrap();
        assert!(s.verify(path, Some(query)));
        assert!(
            !s.verify("/bootstrap/other.tar.gz", Some(query)),
            "another path"
        );
        assert!(!Signer::random().verify(path, Some(query)), "another key");
        assert!(!s.verify(path, None));
        let tampered = query.replace("exp=", "exp=9");
        assert!(!s.verify(path, Some(&tampered)), "a changed expiry");
        let old = format!(
            "exp=1&sig={}",
            crate::hex::hex(&s.mac(path, 1).finalize().into_bytes())
        );
        assert!(!s.verify(path, Some(&old)), "expired");
        assert!(!s.verify(path, Some("exp=1&sig=zz")));
    }

    #[test]
    fn the_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = Signer::load_or_create(dir.path()).unwrap();
        let b = Signer::load_or_create(dir.path()).unwrap();
        let url = a.sign("/x", Duration::from_secs(60));
        let (p, q) = url.split_once('?').unwrap();
        assert!(b.verify(p, Some(q)));
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(Signer::load_or_create(dir.path()).is_err());
    }
}
