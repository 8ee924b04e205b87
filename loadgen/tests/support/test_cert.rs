//! Certificates for tests, made on the spot (rcgen; valid, from another issuer, or expired), and a rustls server
//! configuration that serves one. Shared by the TLS layer's unit tests (`src/client/tls/connection.rs`, which
//! includes this file by path) and the integration tests' TLS proxy (`support/tls.rs`), so there is one maker.
//! Test code only: it panics on any failure.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate and its key.
pub struct TestCert {
    pub pem: String,
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

/// A self-signed certificate for `localhost` and 127.0.0.1 with `subject` as its common name; `expired`: valid
/// in 2001 only.
pub fn test_certificate(subject: &str, expired: bool) -> TestCert {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("valid names");
    params.distinguished_name.push(rcgen::DnType::CommonName, subject);
    if expired {
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    TestCert { pem: cert.pem(), der: cert.der().clone(), key: key.serialize_der() }
}

/// A server configuration (ring provider) that serves `cert`, offers `alpn` and issues TLS 1.3 tickets, so
/// clients can resume.
pub fn test_server_config(cert: &TestCert, alpn: &[u8]) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
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
