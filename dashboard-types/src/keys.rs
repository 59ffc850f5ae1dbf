//! Builder keys: `lowercase_hex(HMAC-MD5(master key, name))`, used by reverse buildlets
//! (`X-Go-Builder-Key`, name = host type) and by dashboard result posts (name = builder).

use hmac::{Hmac, Mac};
use md5::Md5;
use subtle::ConstantTimeEq;

/// The master key upstream uses in development mode.
pub const DEV_MASTER_KEY: &str = "gophers rule";

/// The key for `name` under `master`: 32 lowercase hex digits.
pub fn builder_key(master: &[u8], name: &str) -> String {
    let mut mac = Hmac::<Md5>::new_from_slice(master).expect("HMAC accepts keys of any length");
    mac.update(name.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two secrets in time that depends only on their lengths.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `given` is the key for `name` under `master`, compared in constant time.
pub fn verify_builder_key(master: &[u8], name: &str, given: &str) -> bool {
    secrets_equal(builder_key(master, name).as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vectors of spec buildlet-protocol §5.3.
    #[test]
    fn spec_test_vectors() {
        let m = DEV_MASTER_KEY.as_bytes();
        assert_eq!(
            builder_key(m, "test-reverse-dial"),
            "bf016c9ac63d1fabc7a60b55728fce32"
        );
        assert_eq!(
            builder_key(m, "darwin-amd64"),
            "f75e7f898ef1ca17a2584589ee2ebb44"
        );
        assert_eq!(
            builder_key(m, "host-linux-amd64-bullseye"),
            "d9076100b6218dfe9fa7b05f89ddfd74"
        );
        assert!(verify_builder_key(
            m,
            "darwin-amd64",
            "f75e7f898ef1ca17a2584589ee2ebb44"
        ));
        assert!(!verify_builder_key(
            m,
            "darwin-amd64",
            "F75E7F898EF1CA17A2584589EE2EBB44"
        ));
        assert!(!verify_builder_key(m, "darwin-amd64", ""));
    }
}
