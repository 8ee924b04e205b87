//! Certificates for tests, made by the engine's own maker (`ringline_core::tls::DevCertificate`, what
//! `ringline tls dev-cert` writes): valid now, or expired. Each certificate names an issuer of its own, so one
//! never vouches for another. And a rustls server configuration that serves one. Shared by the TLS layer's
//! unit tests (`src/client/tls/connection.rs`, which includes this file by path) and the integration tests'
//! TLS proxy (`support/tls.rs`). Test code only: it panics on any failure.

use std::sync::Arc;

use ringline_core::tls::{DEV_CERT_DEFAULT_NAMES, DevCertificate};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A self-signed certificate and its key.
pub struct TestCert {
    pub pem: String,
    der: CertificateDer<'static>,
    key_pem: String,
}

impl From<DevCertificate> for TestCert {
    fn from(dev: DevCertificate) -> Self {
        Self { pem: dev.cert_pem, der: CertificateDer::from(dev.cert_der), key_pem: dev.key_pem }
    }
}

fn names() -> Vec<String> {
    DEV_CERT_DEFAULT_NAMES.iter().map(|name| (*name).to_owned()).collect()
}

/// A self-signed certificate for `localhost`, 127.0.0.1 and ::1, valid now.
pub fn test_certificate() -> TestCert {
    DevCertificate::generate(&names()).expect("certificate").into()
}

/// The same, but valid only from two years ago until one year ago.
pub fn expired_test_certificate() -> TestCert {
    let now = time::OffsetDateTime::now_utc();
    let year = time::Duration::days(365);
    DevCertificate::generate_valid(&names(), now - year * 2, now - year).expect("certificate").into()
}

/// A server configuration (ring provider) that serves `cert`, offers `alpn` and issues TLS 1.3 tickets, so
/// clients can resume.
pub fn test_server_config(cert: &TestCert, alpn: &[u8]) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key PEM");
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![alpn.to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    Arc::new(config)
}
