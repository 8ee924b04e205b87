//! TLS for the test servers: certificates made on the spot (rcgen; valid, from another issuer, or expired) and a
//! TLS-terminating proxy (rustls, ALPN `ringline/1`, TLS 1.3 tickets so clients can resume) in front of any
//! plaintext server, e.g. the fake server. Two threads per proxied connection, one lock over its TLS state.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

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

/// Writes the certificate's PEM to `dir/name`.
pub fn write_pem(cert: &TestCert, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, &cert.pem).expect("write pem");
    path
}

/// Starts a TLS proxy on 127.0.0.1 that serves `cert` and forwards the plaintext to `backend`. Runs until the
/// test process ends.
pub fn start_tls_proxy(backend: SocketAddr, cert: &TestCert) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der.clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"ringline/1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let config = config.clone();
            std::thread::spawn(move || proxy_connection(client, backend, config));
        }
    });
    address
}

fn proxy_connection(mut client: TcpStream, backend: SocketAddr, config: Arc<ServerConfig>) {
    let _ = client.set_nodelay(true);
    let Ok(mut backend) = TcpStream::connect(backend) else { return };
    let _ = backend.set_nodelay(true);
    let tls = Arc::new(Mutex::new(ServerConnection::new(config).expect("server connection")));
    // Backend → TLS → client.
    {
        let tls = tls.clone();
        let mut client = client.try_clone().expect("clone");
        let mut backend = backend.try_clone().expect("clone");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                let read = match backend.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => read,
                };
                let mut tls = tls.lock().expect("lock");
                if tls.writer().write_all(&buffer[..read]).is_err() || flush(&mut tls, &mut client).is_err() {
                    break;
                }
            }
            let _ = client.shutdown(Shutdown::Both);
        });
    }
    // Client → TLS → backend.
    let mut buffer = [0u8; 16 * 1024];
    'connection: loop {
        let read = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let mut input = &buffer[..read];
        let mut tls = tls.lock().expect("lock");
        while !input.is_empty() {
            if tls.read_tls(&mut input).is_err() {
                break 'connection;
            }
            let processed = tls.process_new_packets();
            let mut plaintext = Vec::new();
            let _ = tls.reader().read_to_end(&mut plaintext);
            if backend.write_all(&plaintext).is_err() || flush(&mut tls, &mut client).is_err() || processed.is_err() {
                break 'connection;
            }
        }
    }
    let _ = backend.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

fn flush(tls: &mut ServerConnection, client: &mut TcpStream) -> std::io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(client)?;
    }
    Ok(())
}
