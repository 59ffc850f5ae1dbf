//! The coordinator's TLS identity for reverse buildlets, and its master key.
//!
//! On first start a self-signed certificate for `localhost` and `127.0.0.1` is generated and
//! kept in `<data>/tls/`; its SHA-256 fingerprint is printed so operators can check what
//! buildlets connect to, and `<data>/tls/ca.pem` is what a buildlet's `--coordinator-ca`
//! takes. The master key (from which every host type's builder key derives) is random and
//! kept in `<data>/master.key` unless the configuration names another file.

use std::path::{Path, PathBuf};

use pool::tls::ServerTls;
use sha2::{Digest, Sha256};

/// The certificate the reverse listener presents.
pub struct Identity {
    /// The TLS server.
    pub acceptor: ServerTls,
    /// SHA-256 of the certificate (DER), colon-separated hex.
    pub fingerprint: String,
    /// The certificate as PEM, for buildlets' `--coordinator-ca`.
    pub ca_path: PathBuf,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field("ca_path", &self.ca_path)
            .finish_non_exhaustive()
    }
}

/// The names of the generated certificate: loopback, and the names by which Podman's
/// and Docker's containers reach their host (the container pool's buildlets verify the
/// reverse port's certificate against the name they dial).
pub const SELF_SIGNED_NAMES: [&str; 4] = [
    "localhost",
    "127.0.0.1",
    "host.containers.internal",
    "host.docker.internal",
];

/// Loads `<dir>/cert.pem` and `<dir>/key.pem`, creating them on first use.
pub fn load_or_create(dir: &Path) -> anyhow::Result<Identity> {
    std::fs::create_dir_all(dir)?;
    let (cert_path, key_path, ca_path) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    if !cert_path.exists() || !key_path.exists() {
        let cert =
            rcgen::generate_simple_self_signed(SELF_SIGNED_NAMES.map(String::from).to_vec())?;
        write_private(&key_path, cert.key_pair.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, cert.cert.pem())?;
        tracing::info!(path = %cert_path.display(), "generated a self-signed certificate for reverse buildlets");
    }
    let cert_pem = std::fs::read_to_string(&cert_path)?;
    std::fs::write(&ca_path, &cert_pem)?;
    let der = pem_block(&cert_pem, "CERTIFICATE")?;
    let acceptor = ServerTls::from_pem(cert_pem.as_bytes(), &std::fs::read(&key_path)?)?;
    let fingerprint = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok(Identity {
        acceptor,
        fingerprint,
        ca_path,
    })
}

/// The DER bytes of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| anyhow::anyhow!("no {label} in PEM"))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| anyhow::anyhow!("unterminated {label} in PEM"))?
        + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(b64)?)
}

/// Writes a file only the owner can read.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    Ok(())
}

/// Reads the master key from `path` (trimmed), creating a random one if missing.
pub fn master_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    if !path.exists() {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let hex = crate::hex::hex(&raw);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_private(path, hex.as_bytes())?;
        tracing::info!(path = %path.display(), "generated a master key");
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading master key {}: {e}", path.display()))?;
    Ok(text.trim().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_key_are_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(&dir.path().join("tls")).unwrap();
        let b = load_or_create(&dir.path().join("tls")).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let k1 = master_key(&dir.path().join("master.key")).unwrap();
        let k2 = master_key(&dir.path().join("master.key")).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 48);
    }
}
