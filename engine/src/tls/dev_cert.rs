//! The development certificate of `ringline tls dev-cert`: a self-signed certificate made with rcgen for a few
//! names (DNS names or IP addresses), its key, and its SHA-256 fingerprint; and writing them as PEM files,
//! the key readable by its owner only. For tests, local runs and the load generator; production uses a
//! certificate from a real CA.
//!
//! Owns nothing once written. Never overwrites a file in place: each is written aside and renamed, so a
//! running server reloading the pair never reads half a file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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

    /// Writes `DIR/cert.pem` and `DIR/key.pem` (mode 0600), creating `DIR` if needed. Returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), DevCertError> {
        std::fs::create_dir_all(dir).map_err(|source| DevCertError::Write { path: dir.to_owned(), source })?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        write_replacing(&key, self.key_pem.as_bytes(), 0o600)?;
        write_replacing(&cert, self.cert_pem.as_bytes(), 0o644)?;
        Ok((cert, key))
    }
}

/// Writes `bytes` to a new file beside `path` with `mode`, then renames it over `path`.
fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DevCertError> {
    let error = |source| DevCertError::Write { path: path.to_owned(), source };
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{}.tmp", std::process::id()));
    let aside = PathBuf::from(aside);
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&aside).map_err(error)?;
    // `mode` applies only to a new file; the aside file might be a leftover of a crash.
    std::fs::set_permissions(&aside, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    std::fs::rename(&aside, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::tls::ServerIdentity;

    #[test]
    fn a_written_pair_loads_back_with_a_private_key_file() {
        let dir = std::env::temp_dir().join(format!("ringline-dev-cert-{}", std::process::id()));
        let names: Vec<String> = DEV_CERT_DEFAULT_NAMES.iter().map(|name| (*name).to_owned()).collect();
        let dev = DevCertificate::generate(&names).expect("generate");
        let (cert, key) = dev.write(&dir).expect("write");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let identity = ServerIdentity::load(&cert, &key).expect("loads");
        assert_eq!(identity.fingerprint(), dev.fingerprint);
        assert!(identity.covers("localhost"));
        // Written again over the first pair: the new one replaces it.
        let again = DevCertificate::generate(&names).expect("generate");
        again.write(&dir).expect("write");
        assert_eq!(ServerIdentity::load(&cert, &key).expect("loads").fingerprint(), again.fingerprint);
        assert_ne!(again.fingerprint, dev.fingerprint);
        let _ = std::fs::remove_dir_all(dir);
    }
}
