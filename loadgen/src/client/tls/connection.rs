//! [`TlsConnection`]: the TLS state of one client connection, sans-IO, between the socket and the protocol
//! driver. Ciphertext read from the socket goes in ([`TlsConnection::handle_input`]) and comes out as plaintext
//! to the driver; the driver's plaintext goes in ([`TlsConnection::write_plaintext`]) and ciphertext comes out
//! ([`TlsConnection::transmit`] / [`TlsConnection::handle_transmitted`]), the same shape as a driver's own
//! outbound buffer. It notices when the handshake is done and says how (full or resumed) and how long it took
//! from the TCP connect.
//!
//! Bounded: rustls holds at most TLS_BUFFER_BYTES_MAX of unsent plaintext and records, and this layer takes at
//! most TLS_CIPHERTEXT_PENDING_BYTES_MAX more out of it for the socket; plaintext the layer cannot take yet
//! stays in the driver's outbound buffer. Received plaintext is handed on within the same call, never kept.
//! Owns no socket and no clock: times come in as arguments.

use std::io::{BufRead, Write};

use rustls::ClientConnection;

use super::TlsError;
use crate::limits::{TLS_BUFFER_BYTES_MAX, TLS_CIPHERTEXT_PENDING_BYTES_MAX};

/// How a handshake went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Certificate verified, new keys agreed (with or without a HelloRetryRequest).
    Full,
    /// A ticket from an earlier connection was accepted: no certificate.
    Resumed,
}

/// A handshake that just finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeDone {
    pub kind: HandshakeKind,
    /// From the start of the TCP connect to the handshake done (the server's Finished processed), µs.
    pub latency_us: u64,
}

/// Why input could not be handled: TLS itself, or the driver refusing the plaintext it was given.
#[derive(Debug)]
pub enum TlsInputError<E> {
    Tls(TlsError),
    Plaintext(E),
}

/// One connection's TLS state (client side).
#[derive(Debug)]
pub struct TlsConnection {
    connection: ClientConnection,
    /// Ciphertext taken from rustls and not yet written to the socket.
    outbound: Vec<u8>,
    connect_started_us: u64,
    handshake_done: bool,
    /// Bytes went through the socket, either way: a failure after this is a TLS failure, not a TCP one.
    bytes_exchanged: bool,
    /// The server sent close_notify.
    peer_closed: bool,
}

impl TlsConnection {
    pub(super) fn new(mut connection: ClientConnection, connect_started_us: u64) -> Self {
        connection.set_buffer_limit(Some(TLS_BUFFER_BYTES_MAX));
        let mut tls = Self {
            connection,
            outbound: Vec::new(),
            connect_started_us,
            handshake_done: false,
            bytes_exchanged: false,
            peer_closed: false,
        };
        tls.collect_records();
        tls
    }

    /// Ciphertext from the socket: decrypts every whole record, hands the plaintext to `deliver` in order (the
    /// driver's `handle_input`), and queues what TLS answers (handshake messages, alerts) for [`Self::transmit`].
    /// Returns the handshake if it finished during this call. Records split anywhere are fine.
    pub fn handle_input<E>(
        &mut self,
        mut ciphertext: &[u8],
        now_us: u64,
        mut deliver: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Option<HandshakeDone>, TlsInputError<E>> {
        if !ciphertext.is_empty() {
            self.bytes_exchanged = true;
        }
        let mut finished = None;
        while !ciphertext.is_empty() {
            // Reading from a slice advances it; rustls takes what fits in its record buffer.
            let read = match self.connection.read_tls(&mut ciphertext) {
                Ok(read) => read,
                Err(error) => return Err(TlsInputError::Tls(TlsError::InputRefused(error))),
            };
            let state = match self.connection.process_new_packets() {
                Ok(state) => state,
                Err(error) => {
                    // rustls queued an alert for the server; take it so a last write can carry it.
                    self.collect_records();
                    return Err(TlsInputError::Tls(TlsError::Protocol(error)));
                }
            };
            if !self.handshake_done && !self.connection.is_handshaking() {
                self.handshake_done = true;
                finished = Some(HandshakeDone {
                    kind: match self.connection.handshake_kind() {
                        Some(rustls::HandshakeKind::Resumed) => HandshakeKind::Resumed,
                        _ => HandshakeKind::Full,
                    },
                    latency_us: now_us.saturating_sub(self.connect_started_us),
                });
            }
            let mut reader = self.connection.reader();
            loop {
                // Err(WouldBlock): nothing more now; Ok(empty): the server closed (close_notify).
                let chunk = match reader.fill_buf() {
                    Ok(chunk) if !chunk.is_empty() => chunk,
                    _ => break,
                };
                let length = chunk.len();
                deliver(chunk).map_err(TlsInputError::Plaintext)?;
                reader.consume(length);
            }
            if state.peer_has_closed() {
                self.peer_closed = true;
            }
            if read == 0 {
                // rustls takes nothing more after a close_notify.
                break;
            }
        }
        self.collect_records();
        Ok(finished)
    }

    /// Plaintext from the driver: returns how many bytes TLS took (all of them unless rustls's buffer is
    /// full; the driver keeps the rest). Before the handshake is done they wait inside rustls.
    pub fn write_plaintext(&mut self, plaintext: &[u8]) -> usize {
        // rustls's writer never fails; it takes fewer bytes when its buffer is full.
        let taken = self.connection.writer().write(plaintext).unwrap_or(0);
        self.collect_records();
        taken
    }

    /// Ciphertext to write to the socket now.
    pub fn transmit(&self) -> &[u8] {
        &self.outbound
    }

    /// `written` bytes of [`Self::transmit`] went out.
    pub fn handle_transmitted(&mut self, written: usize) {
        if written > 0 {
            self.bytes_exchanged = true;
        }
        crate::client::driver::consume_written(&mut self.outbound, written);
        self.collect_records();
    }

    /// The run is closing the connection on purpose: queue close_notify for one last write.
    pub fn handle_close(&mut self) {
        self.connection.send_close_notify();
        self.collect_records();
    }

    pub fn is_handshaking(&self) -> bool {
        !self.handshake_done
    }

    /// Bytes went through the socket either way (the TCP connection was up).
    pub fn bytes_exchanged(&self) -> bool {
        self.bytes_exchanged
    }

    /// The server closed the TLS session (close_notify).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.connection.alpn_protocol()
    }

    /// Moves TLS records from rustls into `outbound`, up to its bound.
    fn collect_records(&mut self) {
        while self.connection.wants_write() && self.outbound.len() < TLS_CIPHERTEXT_PENDING_BYTES_MAX {
            match self.connection.write_tls(&mut self.outbound) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// The test certificate maker the integration tests use too (one copy).
#[cfg(test)]
#[path = "../../../tests/support/test_cert.rs"]
mod test_cert;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{ServerConfig, ServerConnection};

    use super::test_cert::{TestCert, expired_test_certificate, test_certificate, test_server_config};
    use super::*;
    use crate::client::tls::{ALPN_RINGLINE, SessionTickets, TlsClient};

    /// An in-memory server.
    struct Server {
        connection: ServerConnection,
        received: Vec<u8>,
    }

    impl Server {
        fn new(config: &Arc<ServerConfig>) -> Self {
            Self { connection: ServerConnection::new(config.clone()).expect("server"), received: Vec::new() }
        }

        /// Takes everything the client has for the server; returns the server's answer.
        fn exchange(&mut self, client: &mut TlsConnection) -> Result<Vec<u8>, rustls::Error> {
            let input = client.transmit().to_vec();
            client.handle_transmitted(input.len());
            let mut slice = input.as_slice();
            while !slice.is_empty() {
                self.connection.read_tls(&mut slice).expect("server reads");
                let result = self.connection.process_new_packets();
                let mut plaintext = Vec::new();
                let _ = std::io::Read::read_to_end(&mut self.connection.reader(), &mut plaintext);
                self.received.extend_from_slice(&plaintext);
                result?;
            }
            let mut out = Vec::new();
            while self.connection.wants_write() {
                self.connection.write_tls(&mut out).expect("to a vec");
            }
            Ok(out)
        }
    }

    /// Exchanges bytes until neither side has more to say; the server's bytes reach the client `chunk` bytes at
    /// a time, and the client's plaintext is appended to `plaintext`.
    fn pump(
        client: &mut TlsConnection,
        server: &mut Server,
        chunk: usize,
        now_us: u64,
        plaintext: &mut Vec<u8>,
    ) -> Result<Option<HandshakeDone>, TlsInputError<()>> {
        let mut done = None;
        for _ in 0..16 {
            let answer = server.exchange(client).map_err(|error| TlsInputError::Tls(TlsError::Protocol(error)))?;
            if answer.is_empty() && client.transmit().is_empty() {
                return Ok(done);
            }
            for piece in answer.chunks(chunk) {
                let finished = client.handle_input(piece, now_us, |bytes| {
                    plaintext.extend_from_slice(bytes);
                    Ok(())
                })?;
                if let Some(finished) = finished {
                    assert!(done.is_none(), "one handshake, reported once");
                    done = Some(finished);
                }
            }
        }
        panic!("the client and the server never went quiet")
    }

    fn client(cert_pem: &str) -> TlsClient {
        TlsClient::new(cert_pem.as_bytes(), None).expect("client")
    }

    fn target() -> std::net::SocketAddr {
        "127.0.0.1:7443".parse().expect("literal")
    }

    /// A handshake (the client writes `hello` before it is done) and a `welcome` from the server, the server's
    /// bytes fed to the client `chunk` bytes at a time. Returns the handshake, the client's plaintext, the server.
    fn handshake(
        tls_client: &TlsClient,
        tickets: &Arc<SessionTickets>,
        server_config: &Arc<ServerConfig>,
        chunk: usize,
    ) -> (HandshakeDone, Vec<u8>, Server, TlsConnection) {
        let mut client = tls_client.connect(target(), tickets, 1_000).expect("connect");
        assert!(client.is_handshaking());
        assert!(!client.transmit().is_empty(), "the ClientHello is ready at once");
        assert_eq!(client.write_plaintext(b"hello"), 5);
        let mut server = Server::new(server_config);
        let mut plaintext = Vec::new();
        let done = pump(&mut client, &mut server, chunk, 5_000, &mut plaintext).expect("handshake");
        server.connection.writer().write_all(b"welcome").expect("server writes");
        let later = pump(&mut client, &mut server, chunk, 6_000, &mut plaintext).expect("data");
        assert!(later.is_none());
        assert_eq!(client.alpn_protocol(), Some(ALPN_RINGLINE));
        assert!(!client.is_handshaking());
        assert!(client.bytes_exchanged());
        (done.expect("the handshake finished"), plaintext, server, client)
    }

    #[test]
    fn full_handshake_then_resumed_with_the_same_users_tickets() {
        let cert = test_certificate();
        let server_config = test_server_config(&cert, ALPN_RINGLINE);
        let tls_client = client(&cert.pem);
        let tickets = Arc::new(SessionTickets::new());
        let (done, plaintext, server, _) = handshake(&tls_client, &tickets, &server_config, usize::MAX);
        assert_eq!(done, HandshakeDone { kind: HandshakeKind::Full, latency_us: 4_000 });
        assert_eq!(plaintext, b"welcome");
        assert_eq!(server.received, b"hello", "plaintext written before the handshake goes out after it");
        assert!(tickets.tickets() > 0, "the server's tickets are remembered");
        assert!(tickets.tickets() <= crate::limits::TLS_TICKETS_PER_USER_MAX);

        let (again, plaintext, _, _) = handshake(&tls_client, &tickets, &server_config, 7);
        assert_eq!(again.kind, HandshakeKind::Resumed, "a reconnect of the same user resumes");
        assert_eq!(plaintext, b"welcome", "records split anywhere decode");

        let stranger = Arc::new(SessionTickets::new());
        let (first, _, _, _) = handshake(&tls_client, &stranger, &server_config, 100);
        assert_eq!(first.kind, HandshakeKind::Full, "another user's first connect does not use those tickets");

        let never = client(&cert.pem).without_resumption();
        let (first, _, _, _) = handshake(&never, &tickets, &server_config, 100);
        assert_eq!(first.kind, HandshakeKind::Full, "without resumption the tickets are not offered");
    }

    fn failed_handshake(client_trusts: &TestCert, server_cert: &TestCert, alpn: &[u8]) -> TlsError {
        let tls_client = client(&client_trusts.pem);
        let tickets = Arc::new(SessionTickets::new());
        let mut client = tls_client.connect(target(), &tickets, 0).expect("connect");
        let mut server = Server::new(&test_server_config(server_cert, alpn));
        match pump(&mut client, &mut server, usize::MAX, 1, &mut Vec::new()) {
            Err(TlsInputError::Tls(error)) => {
                assert!(client.is_handshaking());
                assert!(!client.transmit().is_empty(), "an alert is queued for the server");
                error
            }
            other => panic!("the client accepted the handshake: {other:?}"),
        }
    }

    #[test]
    fn untrusted_and_expired_certificates_are_refused() {
        let trusted = test_certificate();
        // Each certificate names its own issuer.
        let other = test_certificate();
        let untrusted = failed_handshake(&trusted, &other, ALPN_RINGLINE);
        assert_eq!(untrusted.name(), "certificate_unknown_issuer", "{untrusted}");
        assert!(untrusted.is_certificate_error());
        let expired = expired_test_certificate();
        let refused = failed_handshake(&expired, &expired, ALPN_RINGLINE);
        assert_eq!(refused.name(), "certificate_expired", "{refused}");
    }

    #[test]
    fn a_server_without_the_ringline_protocol_is_refused() {
        let cert = test_certificate();
        let tls_client = client(&cert.pem);
        let tickets = Arc::new(SessionTickets::new());
        let mut client = tls_client.connect(target(), &tickets, 0).expect("connect");
        let mut server = Server::new(&test_server_config(&cert, b"h2"));
        let refused = server.exchange(&mut client).expect_err("no common ALPN protocol");
        assert_eq!(refused, rustls::Error::NoApplicationProtocol);
    }

    #[test]
    fn plaintext_taken_is_bounded_and_the_rest_stays_with_the_driver() {
        let cert = test_certificate();
        let tls_client = client(&cert.pem);
        let tickets = Arc::new(SessionTickets::new());
        let mut client = tls_client.connect(target(), &tickets, 0).expect("connect");
        let big = vec![7u8; 4 * TLS_BUFFER_BYTES_MAX];
        let taken = client.write_plaintext(&big);
        assert!(taken <= TLS_BUFFER_BYTES_MAX, "took {taken}");
        assert!(client.write_plaintext(&big) == 0, "nothing more before the handshake");
        assert!(client.transmit().len() <= TLS_CIPHERTEXT_PENDING_BYTES_MAX);
    }

    #[test]
    fn garbage_from_the_server_is_a_tls_error_not_a_panic() {
        let cert = test_certificate();
        let tls_client = client(&cert.pem);
        let tickets = Arc::new(SessionTickets::new());
        let mut client = tls_client.connect(target(), &tickets, 0).expect("connect");
        let result = client.handle_input(b"HTTP/1.1 400 Bad Request\r\n\r\n", 1, |_| Ok::<(), ()>(()));
        assert!(matches!(result, Err(TlsInputError::Tls(TlsError::Protocol(_)))), "{result:?}");
    }

    #[test]
    fn a_driver_error_stops_input_and_is_returned() {
        let cert = test_certificate();
        let server_config = test_server_config(&cert, ALPN_RINGLINE);
        let (_, _, mut server, mut client) =
            handshake(&client(&cert.pem), &Arc::new(SessionTickets::new()), &server_config, 64);
        server.connection.writer().write_all(b"bad").expect("server writes");
        let answer = server.exchange(&mut client).expect("server accepts");
        let outcome = client.handle_input(&answer, 1, |_| Err("driver refused"));
        assert!(matches!(outcome, Err(TlsInputError::Plaintext("driver refused"))), "{outcome:?}");
    }

    #[test]
    fn close_notify_is_queued_and_the_servers_close_is_seen() {
        let cert = test_certificate();
        let server_config = test_server_config(&cert, ALPN_RINGLINE);
        let (_, _, mut server, mut client) =
            handshake(&client(&cert.pem), &Arc::new(SessionTickets::new()), &server_config, 64);
        server.connection.send_close_notify();
        let bye = server.exchange(&mut client).expect("server writes");
        client.handle_input(&bye, 2, |_| Ok::<(), ()>(())).expect("client accepts");
        assert!(client.peer_closed());
        client.handle_close();
        assert!(!client.transmit().is_empty(), "close_notify queued");
    }
}
