//! The development certificate of `ringline tls dev-cert`: a self-signed certificate made with rcgen for a few
//! names (DNS names or IP addresses), its key, and its SHA-256 fingerprint, as PEM text (the engine's
//! `tls_files::write_dev_certificate` writes them, the key readable by its owner only). For tests, local runs and the load generator; production uses a
//! certificate from a real CA.
//!
//! Owns nothing once made; writes no file.

use std::path::PathBuf;

use super::identity::sha256_fingerprint;

/// Names a development certificate covers when none are given.
pub const DEV_CERT_DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long a development certificate is valid (from an hour ago, for clocks slightly behind).
const DEV_CERT_VALIDITY: time::Duration = time::Duration::days(365);

/// Why a development certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCertError {
    #[error("making the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A self-signed certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct DevCertificate {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate, DER (what clients trust as their root).
    pub cert_der: Vec<u8>,
    /// SHA-256 of `cert_der`, `AA:BB:...`.
    pub fingerprint: String,
}

impl DevCertificate {
    /// A new key pair (ECDSA P-256) and a certificate for `names` (an entry that parses as an IP address
    /// becomes an IP address name), valid for a year.
    pub fn generate(names: &[String]) -> Result<Self, DevCertError> {
        let now = time::OffsetDateTime::now_utc();
        Self::generate_valid(names, now - time::Duration::hours(1), now + DEV_CERT_VALIDITY)
    }

    /// A certificate valid from `not_before` to `not_after` (tests make expired ones).
    pub fn generate_valid(
        names: &[String],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<Self, DevCertError> {
        let key_pair = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        params.not_before = not_before;
        params.not_after = not_after;
        // A name of its own, so a client trusting another development certificate reports an unknown
        // issuer rather than a bad signature from a namesake.
        let name = format!("ringline development certificate {:08x}", rand::random::<u32>());
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key_pair)?;
        let cert_der = cert.der().to_vec();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key_pair.serialize_pem(),
            fingerprint: sha256_fingerprint(&cert_der),
            cert_der,
        })
    }
}
