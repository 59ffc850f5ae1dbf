//! Server-certificate checks for the two ways a buildlet party skips WebPKI: upstream's
//! dev mode (any certificate) and direct-mode key pinning (spec §5.2). Handshake
//! signatures are always verified, so the peer must hold the key it presents.

use tokio_rustls::rustls::DigitallySignedStruct;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// One DER TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&len0, b) = b.split_first()?;
    let (len, b) = if len0 < 0x80 {
        (usize::from(len0), b)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let len = b[..n]
            .iter()
            .fold(0usize, |a, &x| (a << 8) | usize::from(x));
        (len, &b[n..])
    };
    (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
}

/// The SubjectPublicKeyInfo (whole TLV) of an X.509 certificate.
pub(crate) fn spki(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, cert, _) = tlv(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    if let (0xa0, _, r) = tlv(rest)? {
        rest = r; // explicit version
    }
    for _ in 0..5 {
        rest = tlv(rest)?.2; // serial, signature, issuer, validity, subject
    }
    let (tag, _, after) = tlv(rest)?;
    (tag == 0x30).then(|| &rest[..rest.len() - after.len()])
}

/// Accepts any certificate (`pinned: None`) or only one whose public key is `pinned`.
#[derive(Debug)]
pub(crate) struct KeyCheck {
    pinned: Option<Vec<u8>>,
    provider: CryptoProvider,
}

impl KeyCheck {
    /// Upstream's dev mode: any certificate.
    pub(crate) fn any() -> Self {
        KeyCheck {
            pinned: None,
            provider: tokio_rustls::rustls::crypto::ring::default_provider(),
        }
    }

    /// Only the key with this SubjectPublicKeyInfo.
    pub(crate) fn pinned(spki: Vec<u8>) -> Self {
        KeyCheck {
            pinned: Some(spki),
            ..Self::any()
        }
    }
}

impl ServerCertVerifier for KeyCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        match &self.pinned {
            Some(want) if spki(end_entity) != Some(want.as_slice()) => Err(
                tokio_rustls::rustls::Error::General("unexpected TLS certificate".into()),
            ),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<tokio_rustls::rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
