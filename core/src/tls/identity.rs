//! The server's TLS identity: a certificate chain and its private key from PEM, checked to belong together,
//! and the certificate resolver that presents them, refusing a client whose SNI names a host the certificate
//! does not cover (a client connecting by IP address sends no SNI and is served).
//!
//! Owns the parsed chain and signing key. Reads no file (the engine's `tls_files::load_identity` reads
//! the PEM files, at start and on a reload); does not decide when to reload (the runtime does).

use std::cell::Cell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why the TLS identity (or the settings built from it) could not be made. Each message names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("reading the TLS certificate {path}: {source}")]
    ReadCertificate { path: PathBuf, source: std::io::Error },
    #[error("the TLS certificate file {path} holds no PEM certificate: {message}")]
    NoCertificate { path: PathBuf, message: String },
    #[error("the TLS certificate {path} is not a certificate rustls can use: {error}")]
    BadCertificate { path: PathBuf, error: rustls::Error },
    #[error("reading the TLS key {path}: {source}")]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("the TLS key file {path} holds no PEM private key (PKCS#8, RSA or SEC1): {message}")]
    NoKey { path: PathBuf, message: String },
    #[error("the TLS key {path} is not a key rustls can sign with: {error}")]
    BadKey { path: PathBuf, error: rustls::Error },
    #[error("the TLS key {key} does not match the certificate {certificate}")]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    #[error("TLS settings: {0}")]
    Settings(rustls::Error),
}

/// The crypto rustls uses everywhere in the engine: ring (no C build of aws-lc).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain with its key, ready to serve.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    certified: Arc<CertifiedKey>,
    fingerprint: String,
}

impl ServerIdentity {
    /// Parses and checks a PEM chain and key; the paths only name them in errors.
    pub fn from_pem(chain_pem: &[u8], certificate: &Path, key_pem: &[u8], key: &Path) -> Result<Self, TlsSetupError> {
        let no_certificate = |message: String| TlsSetupError::NoCertificate { path: certificate.to_owned(), message };
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| no_certificate(pem_problem(&error)))?;
        let Some(end_entity) = chain.first() else {
            return Err(no_certificate("no CERTIFICATE section".to_owned()));
        };
        ParsedCertificate::try_from(end_entity)
            .map_err(|error| TlsSetupError::BadCertificate { path: certificate.to_owned(), error })?;
        let fingerprint = sha256_fingerprint(end_entity);
        let private_key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|error| TlsSetupError::NoKey { path: key.to_owned(), message: pem_problem(&error) })?;
        let signing_key = crypto_provider()
            .key_provider
            .load_private_key(private_key)
            .map_err(|error| TlsSetupError::BadKey { path: key.to_owned(), error })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            // ring's keys all know their public key; "unknown" cannot be checked, so it is let through.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(TlsSetupError::KeyMismatch { certificate: certificate.to_owned(), key: key.to_owned() });
            }
            Err(error) => return Err(TlsSetupError::BadCertificate { path: certificate.to_owned(), error }),
        }
        Ok(Self { certified: Arc::new(certified), fingerprint })
    }

    /// SHA-256 of the end-entity certificate (DER), as `AA:BB:...`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the end-entity certificate is valid for the DNS name `sni` (wildcards as in webpki).
    pub fn covers(&self, sni: &str) -> bool {
        let Ok(name) = ServerName::try_from(sni) else { return false };
        let Ok(end_entity) = self.certified.end_entity_cert() else { return false };
        let Ok(parsed) = ParsedCertificate::try_from(end_entity) else { return false };
        rustls::client::verify_server_name(&parsed, &name).is_ok()
    }

    /// The resolver that presents this identity.
    pub(super) fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::new(SniCheckedResolver { identity: self.clone() })
    }
}

/// What is wrong with a PEM file, in words (the library's own text quotes the marker as a byte list).
fn pem_problem(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { end_marker } => {
            format!("the {} section has no END line", String::from_utf8_lossy(end_marker).trim())
        }
        Error::IllegalSectionStart { line } => {
            format!("malformed section start `{}`", String::from_utf8_lossy(line).trim())
        }
        Error::NoItemsFound => "no section of that kind".to_owned(),
        other => other.to_string(),
    }
}

/// `AA:BB:...` of the SHA-256 of `der`.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut text = String::with_capacity(digest.as_ref().len() * 3);
    for (index, byte) in digest.as_ref().iter().enumerate() {
        if index > 0 {
            text.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02X}");
    }
    text
}

thread_local! {
    /// Set by the resolver when it refuses a client's SNI, read (and cleared) by the session that called
    /// rustls on this thread: rustls reports the refusal as a generic error, and the unbuffered connection
    /// does not expose the SNI afterwards. A core is one thread, and resolving runs inside its call to rustls.
    static SNI_REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the resolver refused an SNI on this thread since the last call.
pub(super) fn take_sni_refusal() -> bool {
    SNI_REFUSED.with(|refused| refused.replace(false))
}

#[derive(Debug)]
struct SniCheckedResolver {
    identity: ServerIdentity,
}

impl ResolvesServerCert for SniCheckedResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = client_hello.server_name()
            && !self.identity.covers(sni)
        {
            SNI_REFUSED.with(|refused| refused.set(true));
            return None;
        }
        Some(self.identity.certified.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::DevCertificate;

    #[test]
    fn a_matching_pair_loads_and_covers_its_names_only() {
        let dev = DevCertificate::generate(&["localhost".to_owned(), "*.chat.example".to_owned()]).expect("dev");
        let identity =
            ServerIdentity::from_pem(dev.cert_pem.as_bytes(), Path::new("c"), dev.key_pem.as_bytes(), Path::new("k"))
                .expect("loads");
        assert_eq!(identity.fingerprint(), dev.fingerprint);
        assert!(identity.covers("localhost"));
        assert!(identity.covers("eu.chat.example"));
        assert!(!identity.covers("chat.example"));
        assert!(!identity.covers("evil.example"));
        assert!(!identity.covers("not a name"));
    }

    #[test]
    fn bad_files_give_one_clear_error_each() {
        let first = DevCertificate::generate(&["localhost".to_owned()]).expect("dev");
        let second = DevCertificate::generate(&["localhost".to_owned()]).expect("dev");
        let (c, k) = (Path::new("cert.pem"), Path::new("key.pem"));
        let error =
            ServerIdentity::from_pem(first.cert_pem.as_bytes(), c, second.key_pem.as_bytes(), k).expect_err("mismatch");
        assert_eq!(error.to_string(), "the TLS key key.pem does not match the certificate cert.pem");
        let error = ServerIdentity::from_pem(b"hello", c, first.key_pem.as_bytes(), k).expect_err("no cert");
        assert!(matches!(error, TlsSetupError::NoCertificate { .. }), "{error}");
        let error = ServerIdentity::from_pem(first.key_pem.as_bytes(), c, first.key_pem.as_bytes(), k)
            .expect_err("a key is not a certificate");
        assert!(matches!(error, TlsSetupError::NoCertificate { .. }), "{error}");
        let error = ServerIdentity::from_pem(first.cert_pem.as_bytes(), c, first.cert_pem.as_bytes(), k)
            .expect_err("a certificate is not a key");
        assert!(matches!(error, TlsSetupError::NoKey { .. }), "{error}");
        let truncated = &first.cert_pem.as_bytes()[..first.cert_pem.len() / 2];
        let error = ServerIdentity::from_pem(truncated, c, first.key_pem.as_bytes(), k).expect_err("truncated");
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }

    #[test]
    fn fingerprints_are_colon_separated_upper_hex() {
        let text = sha256_fingerprint(b"abc");
        assert_eq!(&text[..8], "BA:78:16");
        assert_eq!(text.len(), 32 * 3 - 1);
    }
}
