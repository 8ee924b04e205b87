//! `tls_session_bytes`: heap bytes one idle TLS connection's state holds on the server, counted exactly by
//! a counting allocator, in process (no sockets): N server sessions each do a handshake with a rustls
//! client, take one message and send one, then the clients are dropped and what the N sessions still hold
//! is divided by N. Compares ringline's `TlsSession` (rustls' unbuffered API, buffers lent only while they
//! hold bytes) with rustls' buffered `ServerConnection`, for each TLS 1.3 cipher suite, and with the
//! session resumed instead of full.
//!
//! Bytes asked of the allocator; its own rounding and per-allocation overhead come on top (the engine's RSS
//! measurement, `idle_hold`, includes them).
//!
//! Usage: tls_session_bytes [--count N]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use ringline_core::buffer_pool::BufferPool;
use ringline_core::tls::{DevCertificate, Resumption, ServerIdentity, TlsSession, server_config};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn client_config(root: &CertificateDer<'static>, suite: SupportedCipherSuite, resume: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).expect("root");
    let provider = CryptoProvider { cipher_suites: vec![suite], ..rustls::crypto::ring::default_provider() };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![wire::TLS_ALPN_PROTOCOL.to_vec()];
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

/// The server side of one connection, either way.
trait ServerSide {
    /// Takes the client's records; returns the server's.
    fn exchange(&mut self, records: &mut [u8], pool: &mut BufferPool) -> Vec<u8>;
    /// Encrypts `plaintext`; returns the records.
    fn send(&mut self, plaintext: &[u8], pool: &mut BufferPool) -> Vec<u8>;
}

impl ServerSide for Box<TlsSession> {
    fn exchange(&mut self, records: &mut [u8], pool: &mut BufferPool) -> Vec<u8> {
        self.receive(records, 0, pool, &mut |_| {}).expect("server receive");
        let out = self.outgoing().to_vec();
        self.consume_outgoing(out.len(), pool);
        out
    }

    fn send(&mut self, plaintext: &[u8], pool: &mut BufferPool) -> Vec<u8> {
        self.encrypt(plaintext, pool).expect("encrypt");
        let out = self.outgoing().to_vec();
        self.consume_outgoing(out.len(), pool);
        out
    }
}

impl ServerSide for ServerConnection {
    fn exchange(&mut self, records: &mut [u8], _: &mut BufferPool) -> Vec<u8> {
        let mut reader = &records[..];
        while !reader.is_empty() {
            self.read_tls(&mut reader).expect("read_tls");
            self.process_new_packets().expect("server process");
        }
        let mut plaintext = Vec::new();
        let _ = self.reader().read_to_end(&mut plaintext);
        let mut out = Vec::new();
        while self.wants_write() {
            self.write_tls(&mut out).expect("write_tls");
        }
        out
    }

    fn send(&mut self, plaintext: &[u8], pool: &mut BufferPool) -> Vec<u8> {
        self.writer().write_all(plaintext).expect("write");
        self.exchange(&mut [], pool)
    }
}

/// Handshake, one message each way; the client is dropped, the server side kept.
fn connect<S: ServerSide>(mut server: S, client: &Arc<ClientConfig>, pool: &mut BufferPool) -> (S, bool) {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client.clone(), name).expect("client");
    let mut hello_sent = false;
    loop {
        let mut records = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut records).expect("client write");
        }
        if records.is_empty() && hello_sent {
            break;
        }
        let reply = server.exchange(&mut records, pool);
        let mut reader = &reply[..];
        while !reader.is_empty() {
            client.read_tls(&mut reader).expect("client read");
            client.process_new_packets().expect("client process");
        }
        if !client.is_handshaking() && !hello_sent {
            // A HELLO's size: 4 + 1 + 2 + 8 + 32 bytes.
            client.writer().write_all(&[0u8; 47]).expect("write");
            hello_sent = true;
        }
    }
    // A WELCOME's size.
    let records = server.send(&[0u8; 19], pool);
    let mut reader = &records[..];
    while !reader.is_empty() {
        client.read_tls(&mut reader).expect("client read");
        client.process_new_packets().expect("client process");
    }
    let mut plaintext = Vec::new();
    let _ = client.reader().read_to_end(&mut plaintext);
    let resumed = client.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    (server, resumed)
}

fn measure<S: ServerSide>(
    label: &str,
    count: usize,
    client: &Arc<ClientConfig>,
    mut make: impl FnMut() -> S,
    warm_up: bool,
) {
    let mut pool = BufferPool::default();
    if warm_up {
        // Tickets for the client to resume with (the client keeps 8 per server name).
        for _ in 0..8 {
            drop(connect(make(), client, &mut pool));
        }
    }
    let mut servers = Vec::with_capacity(count);
    let before = live();
    let mut resumed = 0;
    for _ in 0..count {
        let (server, was_resumed) = connect(make(), client, &mut pool);
        resumed += usize::from(was_resumed);
        servers.push(server);
        if warm_up {
            // Keep the client's ticket store full so every connection resumes.
            drop(connect(make(), client, &mut pool));
        }
    }
    drop(pool);
    let after = live();
    let per = (after - before) as f64 / count as f64 - std::mem::size_of::<S>() as f64;
    println!(
        "{label}: {:.0} bytes per idle connection on the heap ({} inline + {per:.0} owned), {resumed}/{count} resumed",
        per + std::mem::size_of::<S>() as f64,
        std::mem::size_of::<S>()
    );
    drop(servers);
}

fn main() {
    let mut count = 1000usize;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--count", Some(value)) => count = value.parse().unwrap_or(count),
            _ => {
                eprintln!("usage: tls_session_bytes [--count N]");
                std::process::exit(2);
            }
        }
    }
    let dev = DevCertificate::generate(&["localhost".to_owned()]).expect("dev certificate");
    let identity =
        ServerIdentity::from_pem(dev.cert_pem.as_bytes(), Path::new("-"), dev.key_pem.as_bytes(), Path::new("-"))
            .expect("identity");
    let server: Arc<ServerConfig> = server_config(&identity, &Resumption::new().expect("resumption")).expect("config");
    let root = CertificateDer::from(dev.cert_der.clone());
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    for (name, suite) in [
        ("AES-256-GCM", TLS13_AES_256_GCM_SHA384),
        ("AES-128-GCM", TLS13_AES_128_GCM_SHA256),
        ("ChaCha20-Poly1305", TLS13_CHACHA20_POLY1305_SHA256),
    ] {
        let full = client_config(&root, suite, false);
        measure(
            &format!("ringline TlsSession (unbuffered), {name}, full"),
            count,
            &full,
            || Box::new(TlsSession::new(server.clone(), 0).expect("session")),
            false,
        );
        measure(
            &format!("rustls ServerConnection (buffered), {name}, full"),
            count,
            &full,
            || ServerConnection::new(server.clone()).expect("connection"),
            false,
        );
    }
    let resuming = client_config(&root, TLS13_AES_256_GCM_SHA384, true);
    measure(
        "ringline TlsSession (unbuffered), AES-256-GCM, resumed",
        count,
        &resuming,
        || Box::new(TlsSession::new(server.clone(), 0).expect("session")),
        true,
    );
}
