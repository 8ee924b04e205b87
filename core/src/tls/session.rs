//! One connection's TLS layer, sans-IO: TLS records read from the socket go in, the native protocol's bytes
//! come out to a callback; the native protocol's bytes go in, TLS records for the socket come out. It wraps
//! rustls' unbuffered server connection, so the caller owns every buffer: records are decrypted where they
//! were read (the core's read buffer), and only the start of a record still incomplete (`incoming`) and
//! records not yet written to the socket (`outgoing`) are kept, in buffers lent by the core's `BufferPool`
//! and given back the moment they are empty. An established, idle TLS connection therefore holds no
//! buffer: only rustls' state (keys, sequence numbers), boxed beside its socket.
//!
//! Owns: that rustls state and the two buffers. Does no I/O, reads no clock (times come in) and knows nothing
//! of the shard: the runtime passes decrypted bytes to the shard and the shard's outbound bytes to `encrypt`.
//!
//! It moves with its socket: `TlsSession` is `Send`, and a connection handed to its user's home core carries
//! it whole, keys, incomplete record and unwritten records included; the plaintext it decrypted before the
//! hand-off is already with the shard (in the hand-off's leftover bytes), so nothing is lost or reordered.
//!
//! Limits: `incoming` holds at most `TLS_INCOMPLETE_BYTES_MAX` (rustls bounds records and handshake messages
//! well below it; past it the connection fails). `outgoing` holds what one `encrypt` of the shard's outbound
//! buffer makes plus handshake records: the runtime encrypts only when it is empty, so it is bounded by
//! `OUTBOUND_BYTES_MAX` plus record overhead.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError, WriteTraffic};

use crate::buffer_pool::BufferPool;
use crate::limits::TLS_INCOMPLETE_BYTES_MAX;

use super::identity::take_sni_refusal;
use super::stats::TlsFailure;

/// The content type of a TLS handshake record: the first byte every TLS client sends.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Bytes a TLS record adds to the data it carries, at most: header 5, TLS 1.2 explicit nonce 8, tag 16, TLS 1.3
/// inner content type 1, with room to spare.
const RECORD_OVERHEAD_BYTES_MAX: usize = 64;

/// Records rustls may have queued when it fails (an alert; kept small so a failure costs little).
const ALERT_RECORDS_MAX: usize = 4;

/// Largest plaintext in one record.
const RECORD_PLAINTEXT_BYTES_MAX: usize = 16 * 1024;

/// Why a TLS connection cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("plaintext on the TLS port (first byte {first:#04x}, a TLS client starts with 0x16)")]
    Plaintext { first: u8 },
    #[error("the client's SNI names a host the certificate does not cover")]
    WrongSni,
    #[error("the client offers ALPN protocols, none of them ringline/1")]
    NoAlpn,
    #[error("TLS handshake failed: {0}")]
    BadHandshake(rustls::Error),
    #[error("TLS failed after the handshake: {0}")]
    BadRecord(rustls::Error),
    #[error("more than {max} bytes of incomplete TLS records")]
    IncompleteTooLarge { max: usize },
}

impl TlsError {
    /// The metrics reason.
    pub fn failure(&self) -> TlsFailure {
        match self {
            Self::Plaintext { .. } => TlsFailure::Plaintext,
            Self::WrongSni => TlsFailure::WrongSni,
            Self::NoAlpn => TlsFailure::NoAlpn,
            Self::BadHandshake(_) | Self::IncompleteTooLarge { .. } => TlsFailure::BadHandshake,
            Self::BadRecord(_) => TlsFailure::BadRecord,
        }
    }
}

/// What one `receive` did besides handing plaintext to the callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// The handshake completed in this call.
    pub handshake_done: Option<HandshakeDone>,
    /// The client sent close_notify: no more input will come.
    pub peer_closed: bool,
}

/// A completed handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeDone {
    /// A session was resumed (no certificate, no signature).
    pub resumed: bool,
    /// Time from accept to completion.
    pub took_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing received yet: the first byte decides whether this is TLS at all.
    AwaitingFirstByte,
    Handshaking,
    Established,
}

/// The TLS layer of one server connection.
pub struct TlsSession {
    connection: UnbufferedServerConnection,
    /// Received bytes not yet processed: an incomplete record (or handshake message). Empty, and without
    /// allocation, between records.
    incoming: Vec<u8>,
    /// Records for the socket, not yet written. Empty, and without allocation, when all are written.
    outgoing: Vec<u8>,
    phase: Phase,
    accepted_us: u64,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("phase", &self.phase)
            .field("incoming", &self.incoming.len())
            .field("outgoing", &self.outgoing.len())
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A connection accepted at `now_us`, to be served with `config`.
    pub fn new(config: Arc<ServerConfig>, now_us: u64) -> Result<Self, rustls::Error> {
        Ok(Self {
            connection: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            phase: Phase::AwaitingFirstByte,
            accepted_us: now_us,
        })
    }

    /// The handshake has not completed (it may not have started).
    pub fn is_handshaking(&self) -> bool {
        self.phase != Phase::Established
    }

    /// Application data may flow both ways.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// When the connection was accepted (the handshake deadline counts from it).
    pub fn accepted_us(&self) -> u64 {
        self.accepted_us
    }

    /// The ALPN protocol agreed on, if the client offered any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.connection.alpn_protocol()
    }

    /// Records waiting for the socket.
    pub fn outgoing(&self) -> &[u8] {
        &self.outgoing
    }

    /// The socket took the first `written` bytes of `outgoing`.
    pub fn consume_outgoing(&mut self, written: usize, pool: &mut BufferPool) {
        self.outgoing.drain(..written.min(self.outgoing.len()));
        if self.outgoing.is_empty() {
            pool.give(std::mem::take(&mut self.outgoing));
        }
    }

    /// Gives the buffers back before the session is dropped.
    pub fn release(mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.incoming));
        pool.give(std::mem::take(&mut self.outgoing));
    }

    /// Processes `records`, bytes just read from the socket (decrypted in place, hence `mut`), after what is
    /// left of earlier reads. Application data goes to `deliver` in order; handshake records to send go to
    /// `outgoing`. On an error the session is finished; `outgoing` may hold an alert for the client.
    pub fn receive(
        &mut self,
        records: &mut [u8],
        now_us: u64,
        pool: &mut BufferPool,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<Received, TlsError> {
        let Some(&first) = records.first() else { return Ok(Received::default()) };
        if self.phase == Phase::AwaitingFirstByte {
            if first != HANDSHAKE_RECORD {
                return Err(TlsError::Plaintext { first });
            }
            self.phase = Phase::Handshaking;
        }
        take_sni_refusal();
        let mut kept = std::mem::take(&mut self.incoming);
        let processed = if kept.is_empty() {
            let (used, processed) = self.process(records, pool, deliver);
            if processed.is_ok() && used < records.len() {
                kept = pool.take();
                kept.extend_from_slice(&records[used..]);
            }
            processed
        } else {
            kept.extend_from_slice(records);
            let (used, processed) = self.process(&mut kept, pool, deliver);
            kept.drain(..used.min(kept.len()));
            processed
        };
        let peer_closed = match processed {
            Ok(peer_closed) => peer_closed,
            Err(error) => {
                pool.give(kept);
                return Err(self.fail(error, pool));
            }
        };
        if kept.len() > TLS_INCOMPLETE_BYTES_MAX {
            pool.give(kept);
            return Err(TlsError::IncompleteTooLarge { max: TLS_INCOMPLETE_BYTES_MAX });
        }
        if kept.is_empty() {
            pool.give(kept);
        } else {
            self.incoming = kept;
        }
        let mut received = Received { handshake_done: None, peer_closed };
        if self.phase == Phase::Handshaking && !self.connection.is_handshaking() {
            self.phase = Phase::Established;
            let resumed = self.connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            received.handshake_done = Some(HandshakeDone { resumed, took_us: now_us.saturating_sub(self.accepted_us) });
        }
        Ok(received)
    }

    /// Runs rustls over `buffer` until it needs more input. Returns the bytes it is done with and whether the
    /// client closed.
    fn process(
        &mut self,
        buffer: &mut [u8],
        pool: &mut BufferPool,
        deliver: &mut dyn FnMut(&[u8]),
    ) -> (usize, Result<bool, rustls::Error>) {
        let mut used = 0;
        loop {
            let status = self.connection.process_tls_records(&mut buffer[used..]);
            let mut discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(error) => return (used + discard, Err(error)),
            };
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                deliver(record.payload);
                            }
                            Err(error) => return (used + discard, Err(error)),
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    if let Err(error) = append(&mut self.outgoing, pool, 0, |out| match encode.encode(out) {
                        Ok(written) => Ok(written),
                        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                            Err(Some(required_size))
                        }
                        Err(_) => Err(None),
                    }) {
                        return (used + discard, Err(error));
                    }
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_) => {
                    return (used + discard, Ok(false));
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => return (used + discard, Ok(true)),
                _ => {
                    // Early data is off, so nothing else can come.
                    let error = rustls::Error::General("unexpected TLS connection state".to_owned());
                    return (used + discard, Err(error));
                }
            }
            used += discard;
        }
    }

    /// Classifies a rustls error and queues the alert rustls made for the client, if any.
    fn fail(&mut self, error: rustls::Error, pool: &mut BufferPool) -> TlsError {
        let sni_refused = take_sni_refusal();
        // The alert rustls queued for the client (not every error has one). A queued record is handed out
        // before rustls looks at any input, so no input buffer is needed for it, and only then.
        for _ in 0..ALERT_RECORDS_MAX {
            if !self.connection.wants_write() {
                break;
            }
            let status = self.connection.process_tls_records(&mut []);
            let Ok(ConnectionState::EncodeTlsData(mut encode)) = status.state else { break };
            if append(&mut self.outgoing, pool, 0, |out| encode.encode(out).map_err(|_| None)).is_err() {
                break;
            }
        }
        match error {
            _ if sni_refused => TlsError::WrongSni,
            rustls::Error::NoApplicationProtocol => TlsError::NoAlpn,
            error if self.phase == Phase::Established => TlsError::BadRecord(error),
            error => TlsError::BadHandshake(error),
        }
    }

    /// Encrypts `plaintext` into records appended to `outgoing`. Only once the handshake is done.
    pub fn encrypt(&mut self, plaintext: &[u8], pool: &mut BufferPool) -> Result<(), TlsError> {
        if plaintext.is_empty() {
            return Ok(());
        }
        let records = plaintext.len().div_ceil(RECORD_PLAINTEXT_BYTES_MAX);
        let estimate = plaintext.len() + records * RECORD_OVERHEAD_BYTES_MAX;
        self.with_write_traffic(pool, |write, outgoing, pool| {
            append(outgoing, pool, estimate, |out| match write.encrypt(plaintext, out) {
                Ok(written) => Ok(written),
                Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    Err(Some(required_size))
                }
                Err(_) => Err(None),
            })
        })
    }

    /// Queues close_notify: the last record of a connection the server closes. Only once the handshake is done.
    pub fn close_notify(&mut self, pool: &mut BufferPool) -> Result<(), TlsError> {
        self.with_write_traffic(pool, |write, outgoing, pool| {
            append(outgoing, pool, RECORD_OVERHEAD_BYTES_MAX, |out| match write.queue_close_notify(out) {
                Ok(written) => Ok(written),
                Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                    Err(Some(required_size))
                }
                Err(_) => Err(None),
            })
        })
    }

    /// Brings rustls to the state where it encrypts (writing any record it owes first, e.g. a key update) and
    /// runs `write` there.
    fn with_write_traffic(
        &mut self,
        pool: &mut BufferPool,
        write: impl FnOnce(
            &mut WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
            &mut BufferPool,
        ) -> Result<(), rustls::Error>,
    ) -> Result<(), TlsError> {
        if self.phase != Phase::Established {
            return Err(TlsError::BadRecord(rustls::Error::HandshakeNotComplete));
        }
        let mut write = Some(write);
        // rustls is handed the incomplete record it saw last, so its view of the input stays the same; it
        // holds no complete record (`receive` processed them all), so nothing is decrypted here.
        let mut incoming = std::mem::take(&mut self.incoming);
        let result = loop {
            let status = self.connection.process_tls_records(&mut incoming);
            debug_assert_eq!(status.discard, 0, "no complete record is left between calls");
            match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    let Some(write) = write.take() else { break Ok(()) };
                    break write(&mut traffic, &mut self.outgoing, pool);
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    if let Err(error) = append(&mut self.outgoing, pool, 0, |out| match encode.encode(out) {
                        Ok(written) => Ok(written),
                        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                            Err(Some(required_size))
                        }
                        Err(_) => Err(None),
                    }) {
                        break Err(error);
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                Ok(state) => {
                    break Err(rustls::Error::General(format!("cannot write in TLS connection state {state:?}")));
                }
                Err(error) => break Err(error),
            }
        };
        self.incoming = incoming;
        result.map_err(TlsError::BadRecord)
    }
}

/// Appends what `write` puts into a slice of `out` (taking a pooled buffer if `out` has none): first with
/// `estimate` bytes of room (or the spare capacity), then, if `write` says how much it needs
/// (`Err(Some(n))`), with that.
fn append(
    out: &mut Vec<u8>,
    pool: &mut BufferPool,
    estimate: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> Result<(), rustls::Error> {
    if out.capacity() == 0 {
        *out = pool.take();
    }
    let start = out.len();
    let mut room = estimate.max(out.capacity() - start).max(RECORD_OVERHEAD_BYTES_MAX);
    for _ in 0..2 {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(written) => {
                out.truncate(start + written);
                return Ok(());
            }
            Err(Some(required)) if required > room => room = required,
            Err(_) => break,
        }
    }
    out.truncate(start);
    Err(rustls::Error::General("cannot encode a TLS record".to_owned()))
}

#[cfg(test)]
mod tests;
