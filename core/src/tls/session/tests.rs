//! `TlsSession` against rustls' own client, in memory: records split at every byte, plaintext and garbage
//! on the TLS port, SNI and ALPN refusals, resumption, moving a session to another thread mid-record.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;
use crate::tls::{DevCertificate, Resumption, ServerIdentity, server_config};

struct Fixture {
    dev: DevCertificate,
    server: Arc<ServerConfig>,
}

fn fixture() -> Fixture {
    let dev = DevCertificate::generate(&["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("dev cert");
    let identity =
        ServerIdentity::from_pem(dev.cert_pem.as_bytes(), Path::new("c"), dev.key_pem.as_bytes(), Path::new("k"))
            .expect("identity");
    let server = server_config(&identity, &Resumption::new().expect("resumption")).expect("config");
    Fixture { dev, server }
}

fn client_config(fixture: &Fixture, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(fixture.dev.cert_der.clone())).expect("root");
    let mut config = ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// A client and a server session connected in memory.
struct Pair {
    client: ClientConnection,
    server: TlsSession,
    pool: BufferPool,
    /// What the server session delivered.
    delivered: Vec<u8>,
    /// What the client decrypted.
    client_received: Vec<u8>,
    /// How the client's bytes are cut before the server sees them.
    chunk: usize,
}

impl Pair {
    fn new(fixture: &Fixture, client: Arc<ClientConfig>, name: &str) -> Self {
        let name = ServerName::try_from(name.to_owned()).expect("name");
        Self {
            client: ClientConnection::new(client, name).expect("client"),
            server: TlsSession::new(fixture.server.clone(), 1_000).expect("session"),
            pool: BufferPool::default(),
            delivered: Vec::new(),
            client_received: Vec::new(),
            chunk: usize::MAX,
        }
    }

    /// Moves the client's records to the server, `chunk` bytes per `receive`.
    fn deliver_to_server(&mut self, now_us: u64) -> Result<Vec<Received>, TlsError> {
        let mut records = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut records).expect("client write");
        }
        let mut results = Vec::new();
        let delivered = &mut self.delivered;
        for piece in records.chunks_mut(self.chunk.max(1)) {
            results.push(
                self.server.receive(piece, now_us, &mut self.pool, &mut |bytes| delivered.extend_from_slice(bytes))?,
            );
        }
        Ok(results)
    }

    /// Moves the server's records to the client.
    fn deliver_to_client(&mut self) -> Result<(), rustls::Error> {
        let records = self.server.outgoing().to_vec();
        self.server.consume_outgoing(records.len(), &mut self.pool);
        let mut reader = &records[..];
        while !reader.is_empty() {
            self.client.read_tls(&mut reader).expect("client read");
            self.client.process_new_packets()?;
            self.read_plaintext();
        }
        Ok(())
    }

    /// Runs the handshake; returns how it ended on the server side.
    fn handshake(&mut self) -> Result<HandshakeDone, TlsError> {
        for _ in 0..10 {
            for received in self.deliver_to_server(5_000)? {
                if let Some(done) = received.handshake_done {
                    self.deliver_to_client().expect("client takes the tickets");
                    return Ok(done);
                }
            }
            self.deliver_to_client().expect("client takes the server's flight");
        }
        panic!("the handshake did not finish");
    }

    /// Moves what the client decrypted into `client_received`.
    fn read_plaintext(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            match self.client.reader().read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => self.client_received.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("client read: {error}"),
            }
        }
    }

    fn client_plaintext(&mut self) -> Vec<u8> {
        self.read_plaintext();
        std::mem::take(&mut self.client_received)
    }
}

#[test]
fn a_session_is_send_so_it_can_move_to_the_home_core() {
    fn assert_send<T: Send>() {}
    assert_send::<TlsSession>();
    assert_send::<Box<TlsSession>>();
}

#[test]
fn handshake_and_data_flow_however_records_are_cut_and_an_idle_session_holds_no_buffer() {
    let fixture = fixture();
    for chunk in [1, 2, 5, 100, usize::MAX] {
        let mut pair = Pair::new(&fixture, client_config(&fixture, &[wire::TLS_ALPN_PROTOCOL]), "localhost");
        pair.chunk = chunk;
        // Written before the handshake ends: it follows the client's Finished, maybe in the same read.
        pair.client.writer().write_all(b"HELLO and a pipelined SEND").expect("write");
        let done = pair.handshake().expect("handshake");
        assert!(!done.resumed);
        assert_eq!(done.took_us, 4_000);
        assert!(pair.server.is_established());
        assert_eq!(pair.server.alpn_protocol(), Some(wire::TLS_ALPN_PROTOCOL));
        pair.deliver_to_server(6_000).expect("rest");
        assert_eq!(pair.delivered, b"HELLO and a pipelined SEND", "chunk {chunk}");

        let big = vec![7u8; 40_000];
        pair.server.encrypt(b"WELCOME", &mut pair.pool).expect("encrypt");
        pair.server.encrypt(&big, &mut pair.pool).expect("encrypt");
        pair.deliver_to_client().expect("client");
        let plaintext = pair.client_plaintext();
        assert_eq!(&plaintext[..7], b"WELCOME");
        assert_eq!(&plaintext[7..], &big[..]);

        assert_eq!(pair.server.incoming.capacity(), 0, "no incomplete record, no buffer");
        assert_eq!(pair.server.outgoing.capacity(), 0, "everything written, no buffer");
    }
}

#[test]
fn an_incomplete_record_waits_for_its_end_even_on_another_thread() {
    let fixture = fixture();
    let mut pair = Pair::new(&fixture, client_config(&fixture, &[]), "localhost");
    pair.handshake().expect("handshake");
    pair.client.writer().write_all(b"frames after the hand-off").expect("write");
    let mut records = Vec::new();
    pair.client.write_tls(&mut records).expect("client write");
    let (head, tail) = records.split_at_mut(9);
    let mut delivered = Vec::new();
    let mut session = Box::new(pair.server);
    let mut pool = BufferPool::default();
    session.receive(head, 7_000, &mut pool, &mut |bytes| delivered.extend_from_slice(bytes)).expect("head");
    assert!(delivered.is_empty(), "not a whole record yet");
    let mut tail = tail.to_vec();
    let delivered = std::thread::spawn(move || {
        let mut pool = BufferPool::default();
        let mut delivered = Vec::new();
        session.receive(&mut tail, 8_000, &mut pool, &mut |bytes| delivered.extend_from_slice(bytes)).expect("tail");
        delivered
    })
    .join()
    .expect("thread");
    assert_eq!(delivered, b"frames after the hand-off");
}

#[test]
fn plaintext_on_the_tls_port_is_refused_at_the_first_byte() {
    let fixture = fixture();
    for (input, first) in [(&b"GET / HTTP/1.1\r\n\r\n"[..], b'G'), (&[0x25, 0, 0, 0, 1][..], 0x25)] {
        let mut session = TlsSession::new(fixture.server.clone(), 0).expect("session");
        let mut input = input.to_vec();
        let error = session
            .receive(&mut input, 0, &mut BufferPool::default(), &mut |_| panic!("nothing is delivered"))
            .expect_err("plaintext");
        assert!(matches!(error, TlsError::Plaintext { first: got } if got == first), "{error}");
        assert_eq!(error.failure(), TlsFailure::Plaintext);
    }
}

#[test]
fn garbage_after_a_handshake_byte_is_a_bad_handshake_with_an_alert_when_rustls_has_one() {
    let fixture = fixture();
    // A record longer than TLS allows: rustls answers with a record_overflow alert.
    let mut session = TlsSession::new(fixture.server.clone(), 0).expect("session");
    let mut pool = BufferPool::default();
    let mut oversized = vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01];
    let error = session.receive(&mut oversized, 0, &mut pool, &mut |_| {}).expect_err("oversized");
    assert_eq!(error.failure(), TlsFailure::BadHandshake, "{error}");
    assert!(!session.outgoing().is_empty(), "an alert for the client");
    // A handshake record holding no valid message: refused (rustls sends no alert for this one).
    let mut session = TlsSession::new(fixture.server.clone(), 0).expect("session");
    let mut garbage = vec![0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff];
    let error = session.receive(&mut garbage, 0, &mut pool, &mut |_| {}).expect_err("garbage");
    assert_eq!(error.failure(), TlsFailure::BadHandshake, "{error}");
}

#[test]
fn a_wrong_sni_and_a_foreign_alpn_are_refused_and_told_apart() {
    let fixture = fixture();
    let mut wrong_name = Pair::new(&fixture, client_config(&fixture, &[]), "evil.example");
    let error = wrong_name.handshake().expect_err("wrong SNI");
    assert!(matches!(error, TlsError::WrongSni), "{error}");
    assert!(matches!(wrong_name.deliver_to_client(), Err(rustls::Error::AlertReceived(_))), "the client is told");

    let mut foreign = Pair::new(&fixture, client_config(&fixture, &[b"h2", b"http/1.1"]), "localhost");
    let error = foreign.handshake().expect_err("no ALPN match");
    assert!(matches!(error, TlsError::NoAlpn), "{error}");
    let told = foreign.deliver_to_client();
    assert!(
        matches!(told, Err(rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol))),
        "{told:?}"
    );

    // Offering ringline/1 among others, or no ALPN at all, or no SNI (an IP address): served.
    for (alpn, name) in [(&[&b"h2"[..], wire::TLS_ALPN_PROTOCOL][..], "localhost"), (&[][..], "127.0.0.1")] {
        let mut pair = Pair::new(&fixture, client_config(&fixture, alpn), name);
        pair.handshake().expect("served");
        let expected = if alpn.is_empty() { None } else { Some(wire::TLS_ALPN_PROTOCOL) };
        assert_eq!(pair.server.alpn_protocol(), expected);
    }
}

#[test]
fn a_second_connection_with_the_same_client_resumes() {
    let fixture = fixture();
    let client = client_config(&fixture, &[wire::TLS_ALPN_PROTOCOL]);
    let mut first = Pair::new(&fixture, client.clone(), "localhost");
    assert!(!first.handshake().expect("full").resumed);
    let mut second = Pair::new(&fixture, client.clone(), "localhost");
    assert!(second.handshake().expect("resumed").resumed);
    assert_eq!(second.client.handshake_kind(), Some(rustls::HandshakeKind::Resumed));

    // A TLS 1.2 client resumes too (a ticket or the session cache).
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(fixture.dev.cert_der.clone())).expect("root");
    let tls12 = Arc::new(
        ClientConfig::builder_with_provider(crate::tls::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut first = Pair::new(&fixture, tls12.clone(), "localhost");
    assert!(!first.handshake().expect("full").resumed);
    first.client.writer().write_all(b"over TLS 1.2").expect("write");
    first.deliver_to_server(9_000).expect("data");
    assert_eq!(first.delivered, b"over TLS 1.2");
    let mut second = Pair::new(&fixture, tls12, "localhost");
    assert!(second.handshake().expect("resumed").resumed);
}

#[test]
fn a_tampered_record_after_the_handshake_is_a_bad_record() {
    let fixture = fixture();
    let mut pair = Pair::new(&fixture, client_config(&fixture, &[]), "localhost");
    pair.handshake().expect("handshake");
    pair.client.writer().write_all(b"an honest frame").expect("write");
    let mut records = Vec::new();
    pair.client.write_tls(&mut records).expect("client write");
    let last = records.len() - 1;
    records[last] ^= 0x55;
    let error =
        pair.server.receive(&mut records, 0, &mut pair.pool, &mut |_| panic!("not delivered")).expect_err("bad");
    assert_eq!(error.failure(), TlsFailure::BadRecord, "{error}");
}

#[test]
fn close_notify_ends_the_stream_for_the_client_and_the_client_s_ends_it_for_us() {
    let fixture = fixture();
    let mut pair = Pair::new(&fixture, client_config(&fixture, &[]), "localhost");
    pair.handshake().expect("handshake");
    pair.server.encrypt(b"GOAWAY", &mut pair.pool).expect("encrypt");
    pair.server.close_notify(&mut pair.pool).expect("close_notify");
    pair.deliver_to_client().expect("client");
    assert_eq!(pair.client_plaintext(), b"GOAWAY");
    assert!(matches!(pair.client.reader().read(&mut [0u8; 8]), Ok(0)), "clean end of stream");

    let mut pair = Pair::new(&fixture, client_config(&fixture, &[]), "localhost");
    pair.handshake().expect("handshake");
    pair.client.send_close_notify();
    let received = pair.deliver_to_server(0).expect("close");
    assert!(received.iter().any(|received| received.peer_closed));
}

#[test]
fn nothing_is_encrypted_before_the_handshake() {
    let fixture = fixture();
    let mut session = TlsSession::new(fixture.server.clone(), 0).expect("session");
    let mut pool = BufferPool::default();
    assert!(session.encrypt(b"GOAWAY", &mut pool).is_err());
    assert!(session.outgoing().is_empty());
}

#[test]
fn the_server_picks_aes_128_gcm_first_and_serves_a_client_without_it() {
    let fixture = fixture();
    let mut pair = Pair::new(&fixture, client_config(&fixture, &[]), "localhost");
    pair.handshake().expect("handshake");
    let suite = pair.client.negotiated_cipher_suite().expect("suite").suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256, "a rustls client lists AES-256 first");

    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(fixture.dev.cert_der.clone())).expect("root");
    let chacha_only = rustls::crypto::CryptoProvider {
        cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256],
        ..rustls::crypto::ring::default_provider()
    };
    let client = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(chacha_only))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut pair = Pair::new(&fixture, client, "localhost");
    pair.handshake().expect("handshake");
    let suite = pair.client.negotiated_cipher_suite().expect("suite").suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
}
