//! API tokens: made from 32 random bytes, shown once, kept as SHA-256.

use sha2::{Digest, Sha256};

/// What every token starts with, so a leaked one is recognisable (secret scanners).
pub const PREFIX: &str = "xbt_";

/// A new token: [`PREFIX`] and 64 hex digits (256 random bits).
pub fn generate() -> String {
    format!("{PREFIX}{}", crate::hex::random_hex(32))
}

/// The stored form of a token: its SHA-256, hex.
///
/// Lookups are by this hash: with 256 random bits, the time a lookup takes says
/// nothing an attacker can use, and the database never holds a usable token.
pub fn hash(token: &str) -> String {
    crate::hex::hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `s` has a token's shape (checked before any lookup, so junk never reaches
/// the database and error messages can say what is wrong).
pub fn well_formed(s: &str) -> bool {
    s.strip_prefix(PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Makes a token named `name` with `roles` in `store` and returns it: the only time it
/// is ever seen. Names are 1–64 of `A-Z a-z 0-9 . _ -`; roles at least one.
pub async fn create(
    store: &dyn crate::store::AccessStore,
    name: &str,
    roles: &[String],
) -> Result<String, crate::Error> {
    use crate::Error;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !name_ok {
        return Err(Error::BadRequest(format!(
            "token name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )));
    }
    if roles.is_empty() {
        return Err(Error::BadRequest(
            "a token needs at least one --role (viewer, submitter, gomote, perf-uploader, admin)"
                .into(),
        ));
    }
    let mut parsed = roles
        .iter()
        .map(|r| super::Role::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::BadRequest)?;
    parsed.sort();
    parsed.dedup();
    let token = generate();
    let record = crate::store::TokenRecord {
        id: crate::hex::random_hex(8),
        name: name.to_owned(),
        roles: parsed.iter().map(|r| r.as_str().to_owned()).collect(),
        hash: hash(&token),
        created: crate::store::sqlite::now(),
        revoked: None,
    };
    store.add_token(&record).await.map_err(|e| {
        if e.0.contains("exists already") {
            Error::Conflict(e.0)
        } else {
            Error::Store(e)
        }
    })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_hashed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&b));
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
        for bad in [
            "",
            "xbt_",
            "xbt_12",
            &a[1..],
            &format!("{a}0"),
            "Bearer xbt_",
        ] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
