//! TLS for the test servers: a TLS-terminating proxy (rustls, ALPN `ringline/1`, TLS 1.3 tickets so clients
//! can resume; certificates from `test_cert.rs`) in front of any plaintext server, e.g. the fake server. Two threads per proxied connection, one lock over its TLS state.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::{ServerConfig, ServerConnection};

use super::test_cert::{TestCert, test_server_config};

/// Writes the certificate's PEM to `dir/name`.
pub fn write_pem(cert: &TestCert, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, &cert.pem).expect("write pem");
    path
}

/// Starts a TLS proxy on 127.0.0.1 that serves `cert` and forwards the plaintext to `backend`. Runs until the
/// test process ends.
pub fn start_tls_proxy(backend: SocketAddr, cert: &TestCert) -> SocketAddr {
    let config = test_server_config(cert, b"ringline/1");
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
