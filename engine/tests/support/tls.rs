//! TLS test support: a development certificate made by the real `ringline tls dev-cert`, and a blocking
//! rustls client (`StreamOwned` over a std `TcpStream`) with its trust and ALPN chosen per test.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use wire::{ClientFrame, DeviceKey, UserId};

use super::{READ_TIMEOUT, TestClient, TestServer};

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A certificate and key on disk.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// What `ringline tls dev-cert` printed.
    pub fingerprint: String,
}

impl TlsFiles {
    /// The certificate, DER, as a client trusts it.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&self.cert).expect("certificate PEM")
    }
}

/// Runs `ringline tls dev-cert --out-dir DIR` and checks what it prints.
pub fn dev_cert(dir: &Path) -> TlsFiles {
    let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["tls", "dev-cert", "--out-dir"])
        .arg(dir)
        .output()
        .expect("run ringline tls dev-cert");
    assert!(output.status.success(), "dev-cert: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines = stdout.lines();
    let fingerprint = lines
        .next()
        .and_then(|line| line.strip_prefix("sha256 fingerprint "))
        .unwrap_or_else(|| panic!("expected the fingerprint first: {stdout:?}"))
        .to_owned();
    assert!(lines.next().is_some_and(|line| line.contains("cert.pem")), "then where the files are: {stdout:?}");
    TlsFiles { dir: dir.to_owned(), cert: dir.join("cert.pem"), key: dir.join("key.pem"), fingerprint }
}

/// A client trusting `roots` and offering `alpn`.
pub fn client_config(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// Connects to `addr` as `name` (a DNS name is sent as SNI, an IP address is not) and completes the
/// handshake, with `early` written first (it follows the client's Finished, in the same flight).
pub fn handshake(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &str,
    early: &[u8],
) -> Result<TlsStream, rustls::Error> {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let mut connection = ClientConnection::new(config.clone(), name)?;
    connection.writer().write_all(early).expect("buffer early plaintext");
    let socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    socket.set_nodelay(true).expect("nodelay");
    let mut stream = StreamOwned::new(connection, socket);
    while stream.conn.is_handshaking() {
        if let Err(error) = stream.conn.complete_io(&mut stream.sock) {
            return Err(match error.into_inner().map(|inner| inner.downcast::<rustls::Error>()) {
                Some(Ok(error)) => *error,
                other => rustls::Error::General(format!("handshake I/O: {other:?}")),
            });
        }
    }
    Ok(stream)
}

/// HELLO followed by `more` frames, as one write.
pub fn hello_then(user: UserId, key: DeviceKey, more: &[ClientFrame<'_>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode_client(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key }, &mut bytes);
    for frame in more {
        wire::encode_client(frame, &mut bytes);
    }
    bytes
}

impl TestServer {
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr.expect("started with TLS")
    }

    /// A client of this server's certificate, offering ALPN `ringline/1`.
    pub fn tls_client_config(&self) -> Arc<ClientConfig> {
        let files = self.tls_files.as_ref().expect("started with start_tls");
        client_config(&[files.cert_der()], &[wire::TLS_ALPN_PROTOCOL])
    }

    /// A TLS connection as `localhost`, handshake done.
    pub fn tls_connect(&self, config: &Arc<ClientConfig>) -> TestClient<TlsStream> {
        TestClient::over(handshake(self.tls_addr(), config, "localhost", &[]).expect("TLS handshake"))
    }

    /// A TLS connection logged in as `user`.
    pub fn tls_login(&self, config: &Arc<ClientConfig>, (user, key): (UserId, DeviceKey)) -> TestClient<TlsStream> {
        let mut client = self.tls_connect(config);
        client.queued_at_login = client.hello(user, key);
        client
    }
}
