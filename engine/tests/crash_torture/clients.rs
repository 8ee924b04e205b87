//! The torture run's clients, written from docs/PROTOCOL.md: a sender per pair that numbers its messages and
//! retries every unanswered SEND with the same `client_msg_id` (and the same body) after it reconnects, and a
//! receiver per pair that answers every DELIVER with DELIVERED. Each owns at most one non-blocking connection
//! (a `Link`) and its protocol state; it reports what it sees to the `Ledger`.
//! It does not decide when to connect, go offline or kill the server: the run does.
//! Invariants: a sequence number is written with the same body every time; a DELIVERED counts as sent only once
//! its last byte has been handed to the kernel; nothing read from the server is trusted unchecked.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use serde::Serialize;
use wire::{ClientFrame, DeviceKey, ReceiptKind, UserId};

use crate::ledger::Ledger;
use crate::support::{Frame, Got, own};

/// Largest frame the clients accept from the server (a DELIVER carries at most one body).
const SERVER_FRAME_BYTES_MAX: usize = 1 << 20;

/// Bytes a link keeps queued for writing before its sender stops adding SENDs (the socket is full).
const OUTBOUND_QUEUED_BYTES_MAX: usize = 64 * 1024;

/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Longest padding of a body, so bodies vary in size and segments fill unevenly.
const BODY_PADDING_BYTES_MAX: u64 = 400;

/// What happened to the connections (not to the messages: that is the ledger's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkCounts {
    pub connects: u64,
    pub connect_failures: u64,
    /// ERROR frames by code (each closes its connection).
    pub errors: HashMap<String, u64>,
    /// GOAWAY frames by reason.
    pub goaways: HashMap<String, u64>,
    /// Frames the clients could not decode (the connection is dropped).
    pub malformed: u64,
}

/// The body of sender `pair`'s message `seq`: its numbers, then padding whose length depends on them only,
/// so that a retry carries exactly the bytes of the first copy.
pub fn body(pair: usize, seq: u64) -> Vec<u8> {
    let mut mixed = (pair as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed ^= mixed >> 31;
    let padding = usize::try_from(mixed % (BODY_PADDING_BYTES_MAX + 1)).expect("at most 400");
    let mut body = format!("torture {pair} {seq} ").into_bytes();
    body.resize(body.len() + padding, b'.');
    body
}

/// The (pair, seq) a body names, if this run wrote it.
pub fn parse_body(body: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut words = text.split(' ');
    if words.next()? != "torture" {
        return None;
    }
    let pair = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    (body == self::body(pair, seq).as_slice()).then_some((pair, seq))
}

/// One connection: its socket, what was read and not yet decoded, and what waits to be written.
pub struct Link {
    stream: TcpStream,
    inbound: Vec<u8>,
    /// Bytes of `inbound` already decoded.
    inbound_decoded: usize,
    outbound: Vec<u8>,
    /// Bytes of `outbound` already written.
    outbound_written: usize,
    /// DELIVERED frames in `outbound`: where each ends, and the message it acknowledges (pair, seq).
    delivered_marks: VecDeque<(usize, usize, u64)>,
    welcomed: bool,
    closed: bool,
}

impl Link {
    /// Connects to `addr` (loopback: the connect completes at once), registers with `registry` and queues
    /// HELLO.
    fn open(
        addr: SocketAddr,
        token: Token,
        registry: &Registry,
        user: UserId,
        key: DeviceKey,
    ) -> std::io::Result<Self> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let mut link = Self {
            stream,
            inbound: Vec::new(),
            inbound_decoded: 0,
            outbound: Vec::new(),
            outbound_written: 0,
            delivered_marks: VecDeque::new(),
            welcomed: false,
            closed: false,
        };
        link.queue(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key });
        Ok(link)
    }

    /// `open`, counting the connect or its failure (then `None`: the run tries again in its next round).
    fn open_counted(
        addr: SocketAddr,
        token: Token,
        registry: &Registry,
        (user, key): (UserId, DeviceKey),
        counts: &mut LinkCounts,
    ) -> Option<Self> {
        match Self::open(addr, token, registry, user, key) {
            Ok(link) => {
                counts.connects += 1;
                Some(link)
            }
            Err(_) => {
                counts.connect_failures += 1;
                None
            }
        }
    }

    fn queue(&mut self, frame: &ClientFrame<'_>) {
        wire::encode_client(frame, &mut self.outbound);
    }

    /// Queues DELIVERED(item_id), which acknowledges message (pair, seq) once written.
    fn queue_delivered(&mut self, item_id: u64, message: Option<(usize, u64)>) {
        self.queue(&ClientFrame::Delivered { item_id });
        if let Some((pair, seq)) = message {
            self.delivered_marks.push_back((self.outbound.len(), pair, seq));
        }
    }

    /// Reads what the socket holds (until it would block); marks the link closed at its end or on an error.
    fn read(&mut self) {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    return;
                }
                Ok(read) => self.inbound.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// The next whole frame read, or `None`. A frame the clients cannot decode closes the link.
    fn next_frame(&mut self, counts: &mut LinkCounts) -> Option<Got> {
        match wire::decode_server(&self.inbound[self.inbound_decoded..], SERVER_FRAME_BYTES_MAX) {
            Ok(wire::Decoded::Frame { frame, consumed }) => {
                let got = own(frame);
                self.inbound_decoded += consumed;
                Some(got)
            }
            Ok(wire::Decoded::Incomplete { .. }) => {
                self.inbound.drain(..self.inbound_decoded);
                self.inbound_decoded = 0;
                None
            }
            Err(_) => {
                counts.malformed += 1;
                self.closed = true;
                None
            }
        }
    }

    /// Writes what is queued (until the socket would block) and reports each DELIVERED whose last byte is
    /// written.
    fn flush(&mut self, ledger: &mut Ledger) {
        while self.outbound_written < self.outbound.len() && !self.closed {
            match self.stream.write(&self.outbound[self.outbound_written..]) {
                Ok(0) => self.closed = true,
                Ok(written) => self.outbound_written += written,
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        while let Some(&(end, pair, seq)) = self.delivered_marks.front() {
            if end > self.outbound_written {
                break;
            }
            ledger.delivered_sent(pair, seq);
            self.delivered_marks.pop_front();
        }
        if self.outbound_written == self.outbound.len() {
            self.outbound.clear();
            self.outbound_written = 0;
        }
    }

    fn outbound_queued(&self) -> usize {
        self.outbound.len() - self.outbound_written
    }
}

/// The frames both roles answer the same way. Returns the frame if it is not one of them.
fn handle_common(link: &mut Link, got: Got, counts: &mut LinkCounts) -> Option<Got> {
    match got {
        Got::Frame(Frame::Welcome { .. }) => link.welcomed = true,
        Got::Frame(Frame::Ping { nonce }) => link.queue(&ClientFrame::Pong { nonce }),
        Got::Frame(Frame::Pong { .. }) => {}
        Got::Frame(Frame::Error { code, .. }) => *counts.errors.entry(format!("{code:?}")).or_default() += 1,
        Got::Frame(Frame::Goaway { reason }) => *counts.goaways.entry(format!("{reason:?}")).or_default() += 1,
        other => return Some(other),
    }
    None
}

/// A sender: writes messages `0, 1, 2, …` to its receiver.
pub struct Sender {
    pub pair: usize,
    pub user: (UserId, DeviceKey),
    pub to: UserId,
    pub link: Option<Link>,
    next_seq: u64,
    /// Messages written and not yet answered (ACK or REJECT): sent again after every reconnect.
    unanswered: BTreeSet<u64>,
}

impl Sender {
    pub fn new(pair: usize, user: (UserId, DeviceKey), to: UserId) -> Self {
        Self { pair, user, to, link: None, next_seq: 0, unanswered: BTreeSet::new() }
    }

    pub fn connect(&mut self, addr: SocketAddr, registry: &Registry, counts: &mut LinkCounts) {
        self.link = Link::open_counted(addr, sender_token(self.pair), registry, self.user, counts);
    }

    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }

    /// Reads and handles what arrived.
    pub fn pump(&mut self, ledger: &mut Ledger, counts: &mut LinkCounts) {
        let Some(link) = self.link.as_mut() else { return };
        link.read();
        while let Some(got) = link.next_frame(counts) {
            let was_welcomed = link.welcomed;
            let Some(got) = handle_common(link, got, counts) else {
                if link.welcomed && !was_welcomed {
                    // A new session: every unanswered SEND again, same id and body, oldest first.
                    for &seq in &self.unanswered {
                        let body = body(self.pair, seq);
                        link.queue(&ClientFrame::Send { client_msg_id: seq, to: self.to, body: &body });
                    }
                }
                continue;
            };
            match got {
                Got::Frame(Frame::Ack { client_msg_id, server_id, .. }) => {
                    let answered_before = !self.unanswered.remove(&client_msg_id);
                    ledger.acked(self.pair, client_msg_id, server_id, answered_before);
                }
                Got::Frame(Frame::Reject { client_msg_id, code }) => {
                    self.unanswered.remove(&client_msg_id);
                    ledger.rejected(self.pair, client_msg_id, code);
                }
                Got::Frame(Frame::Receipt { item_id, server_id, peer, kind, .. }) => {
                    if kind == ReceiptKind::Delivered && peer == self.to {
                        ledger.receipt(self.pair, server_id);
                    } else {
                        ledger.receipt_unexpected();
                    }
                    link.queue_delivered(item_id, None);
                }
                Got::Frame(Frame::Deliver { item_id, .. }) => {
                    ledger.delivery_unexpected();
                    link.queue_delivered(item_id, None);
                }
                _ => ledger.delivery_unexpected(),
            }
        }
    }

    /// Writes new messages while fewer than `window` are unanswered and fewer than `undelivered_max` wait for
    /// the receiver (so the receiver's queue never reaches its limit).
    pub fn top_up(&mut self, ledger: &mut Ledger, window: usize, undelivered_max: u64) {
        let Some(link) = self.link.as_mut().filter(|link| link.welcomed && !link.closed) else { return };
        while self.unanswered.len() < window
            && ledger.undelivered(self.pair) < undelivered_max
            && link.outbound_queued() < OUTBOUND_QUEUED_BYTES_MAX
        {
            let seq = self.next_seq;
            self.next_seq += 1;
            ledger.sent(self.pair, seq);
            self.unanswered.insert(seq);
            let body = body(self.pair, seq);
            link.queue(&ClientFrame::Send { client_msg_id: seq, to: self.to, body: &body });
        }
    }
}

/// A receiver: takes what its sender wrote and acknowledges each item.
pub struct Receiver {
    pub pair: usize,
    pub user: (UserId, DeviceKey),
    pub from: UserId,
    pub link: Option<Link>,
}

impl Receiver {
    pub fn new(pair: usize, user: (UserId, DeviceKey), from: UserId) -> Self {
        Self { pair, user, from, link: None }
    }

    pub fn connect(&mut self, addr: SocketAddr, registry: &Registry, counts: &mut LinkCounts) {
        self.link = Link::open_counted(addr, receiver_token(self.pair), registry, self.user, counts);
    }

    /// Reads and handles what arrived.
    pub fn pump(&mut self, ledger: &mut Ledger, counts: &mut LinkCounts) {
        let Some(link) = self.link.as_mut() else { return };
        link.read();
        while let Some(got) = link.next_frame(counts) {
            let Some(got) = handle_common(link, got, counts) else { continue };
            match got {
                Got::Frame(Frame::Deliver { item_id, from, body, .. }) => {
                    let message = match parse_body(&body) {
                        Some((pair, seq)) if pair == self.pair && from == self.from => {
                            // False (and counted there) for a sequence number the sender never wrote.
                            ledger.delivered(pair, seq, item_id).then_some((pair, seq))
                        }
                        _ => {
                            ledger.delivery_unexpected();
                            None
                        }
                    };
                    link.queue_delivered(item_id, message);
                }
                Got::Frame(Frame::Receipt { item_id, .. }) => {
                    ledger.receipt_unexpected();
                    link.queue_delivered(item_id, None);
                }
                _ => ledger.delivery_unexpected(),
            }
        }
    }
}

/// Flushes `link` and drops it once closed. Returns whether it is still there.
pub fn flush_or_drop(link: &mut Option<Link>, ledger: &mut Ledger) -> bool {
    if let Some(open) = link.as_mut() {
        open.flush(ledger);
        if open.closed {
            *link = None;
        }
    }
    link.is_some()
}

/// Whether `link` has bytes waiting to be written.
pub fn has_outbound(link: &Option<Link>) -> bool {
    link.as_ref().is_some_and(|link| link.outbound_queued() > 0)
}

pub fn sender_token(pair: usize) -> Token {
    Token(pair * 2)
}

pub fn receiver_token(pair: usize) -> Token {
    Token(pair * 2 + 1)
}

/// (pair, is the receiver) of a token.
pub fn token_owner(token: Token) -> (usize, bool) {
    (token.0 / 2, token.0 % 2 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_names_its_message_and_only_the_exact_bytes_parse() {
        let written = body(7, 123_456);
        assert_eq!(parse_body(&written), Some((7, 123_456)));
        assert_eq!(body(7, 123_456), written, "a retry carries the same bytes");
        let mut damaged = written.clone();
        damaged.push(b'.');
        assert_eq!(parse_body(&damaged), None);
        assert_eq!(parse_body(b"torture 7"), None);
        assert_eq!(parse_body(&[0xff, 0xfe]), None);
    }
}
