//! One client connection of the native protocol as a sans-IO state machine: HELLO/WELCOME, SENDs with their
//! ACKs and REJECTs, DELIVER answered by DELIVERED, RECEIPT answered by DELIVERED, PING/PONG. It owns the
//! connection's outbound bytes, its partial inbound frame, its unacked SENDs (retried in order and with the same
//! client_msg_id after a reconnect, which the server deduplicates) and its backlog of scheduled SENDs.
//! It does not judge deliveries (the ledger does) and touches no socket or clock: the runtime feeds it bytes and
//! times (`handle_*`) and writes what `transmit` returns. Every queue it holds is bounded (`limits.rs`).

use std::collections::VecDeque;

use wire::{
    ClientFrame, DecodeError, Decoded, PROTOCOL_VERSION, ServerFrame, UserId, UserKey, decode_server, encode_client,
};

use crate::client::body::MessageBody;
use crate::client::driver::{ChatDriver, OutgoingMessage, SendRefused, SessionEvent, consume_written};
use crate::client::keepalive::KeepaliveClock;
use crate::client::send_backlog::SendBacklog;
use crate::limits::{FRAME_SIZE_MAX, OUTBOUND_BYTES_MAX, PARTIAL_FRAME_BYTES_MAX, UNACKED_SENDS_MAX};

/// Why a session cannot go on; the runtime closes the connection and reconnects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NativeError {
    #[error("server sent an undecodable frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("server sent a {kind:#04x} frame before WELCOME")]
    BeforeWelcome { kind: u8 },
    #[error("server sent a registration frame ({kind:#04x}) to a session that never registers")]
    UnexpectedRegistration { kind: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    /// No connection.
    Offline,
    /// HELLO written, WELCOME not yet read.
    AwaitingWelcome,
    Online,
    /// The server said GOAWAY or ERROR; the runtime should close.
    Closing,
}

/// The client side of one native-protocol connection (one user).
#[derive(Debug)]
pub struct ClientSession {
    user: UserKey,
    state: SessionState,
    body_bytes: u32,
    keepalive: KeepaliveClock,
    /// Bytes encoded and not yet written. Bounded by OUTBOUND_BYTES_MAX for SENDs; control frames may pass it
    /// by their small size.
    outbound: Vec<u8>,
    /// The start of a frame split across reads. Bounded by PARTIAL_FRAME_BYTES_MAX via the decoder's limit.
    partial_frame: Vec<u8>,
    /// SENDs written, neither ACKed nor REJECTed, in client_msg_id order. At most UNACKED_SENDS_MAX.
    unacked: VecDeque<OutgoingMessage>,
    /// SENDs scheduled and not written yet. At most SEND_BACKLOG_MAX.
    backlog: SendBacklog,
}

impl ClientSession {
    /// `client_msg_id_base` makes ids unique across runs (the server deduplicates them for minutes).
    pub fn new(user: UserKey, body_bytes: u32, ping_interval_us: u64, client_msg_id_base: u64) -> Self {
        Self {
            user,
            state: SessionState::Offline,
            body_bytes,
            keepalive: KeepaliveClock::new(ping_interval_us),
            outbound: Vec::new(),
            partial_frame: Vec::new(),
            unacked: VecDeque::new(),
            backlog: SendBacklog::new(client_msg_id_base),
        }
    }

    pub fn user(&self) -> UserId {
        self.user.user
    }

    pub fn is_online(&self) -> bool {
        self.state == SessionState::Online
    }

    /// The server said GOAWAY or ERROR: close the connection.
    pub fn is_closing(&self) -> bool {
        self.state == SessionState::Closing
    }

    /// SENDs scheduled and not yet answered (unacked or in the backlog).
    pub fn sends_pending(&self) -> usize {
        self.unacked.len() + self.backlog.len()
    }

    /// A connection is up: queue HELLO.
    pub fn handle_connected(&mut self, now_us: u64) {
        self.outbound.clear();
        self.partial_frame.clear();
        let hello = ClientFrame::Hello { version: PROTOCOL_VERSION, user: self.user.user, key: self.user.key };
        encode_client(&hello, &mut self.outbound);
        self.state = SessionState::AwaitingWelcome;
        self.keepalive.restart(now_us);
    }

    /// The connection is gone. Unacked SENDs stay and are retried first after the next WELCOME.
    pub fn handle_disconnected(&mut self) {
        self.state = SessionState::Offline;
        self.outbound = Vec::new();
        self.partial_frame = Vec::new();
    }

    /// Schedules a SEND. Written at once when online and within limits, else kept in the bounded backlog.
    pub fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        let message = self.backlog.push(body)?;
        self.promote_backlog();
        Ok(message)
    }

    /// Keepalive: PING when the interval has passed.
    pub fn handle_timeout(&mut self, now_us: u64) {
        if self.state == SessionState::Online && self.keepalive.take_due(now_us) {
            encode_client(&ClientFrame::Ping { nonce: now_us }, &mut self.outbound);
        }
    }

    /// Bytes to write now.
    pub fn transmit(&self) -> &[u8] {
        &self.outbound
    }

    /// `written` bytes of [`Self::transmit`] went out.
    pub fn handle_transmitted(&mut self, written: usize) {
        consume_written(&mut self.outbound, written);
    }

    /// Bytes read from the connection: decodes every whole frame, answers what needs answering (PONG,
    /// DELIVERED) and appends what happened to `events`.
    pub fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), NativeError> {
        if self.partial_frame.is_empty() {
            let consumed = self.decode_frames(input, events)?;
            self.partial_frame.extend_from_slice(&input[consumed..]);
        } else {
            let mut joined = std::mem::take(&mut self.partial_frame);
            joined.extend_from_slice(input);
            let consumed = self.decode_frames(&joined, events)?;
            joined.drain(..consumed);
            self.partial_frame = joined;
        }
        debug_assert!(self.partial_frame.len() <= PARTIAL_FRAME_BYTES_MAX + crate::limits::CORE_READ_BUFFER_BYTES);
        if self.partial_frame.is_empty() && self.partial_frame.capacity() > 0 {
            self.partial_frame = Vec::new();
        }
        Ok(())
    }

    fn decode_frames(&mut self, buf: &[u8], events: &mut Vec<SessionEvent>) -> Result<usize, NativeError> {
        let mut at = 0;
        while at < buf.len() && self.state != SessionState::Closing {
            match decode_server(&buf[at..], FRAME_SIZE_MAX)? {
                Decoded::Incomplete { .. } => break,
                Decoded::Frame { frame, consumed } => {
                    self.handle_frame(frame, events)?;
                    at += consumed;
                }
            }
        }
        if self.state == SessionState::Closing {
            return Ok(buf.len());
        }
        Ok(at)
    }

    fn handle_frame(&mut self, frame: ServerFrame<'_>, events: &mut Vec<SessionEvent>) -> Result<(), NativeError> {
        let awaiting = self.state == SessionState::AwaitingWelcome;
        match frame {
            ServerFrame::Welcome { queued, .. } => {
                self.state = SessionState::Online;
                events.push(SessionEvent::Welcome { queued });
                // Retry what the last connection left unanswered, in order, with the same ids.
                for message in &self.unacked {
                    encode_send(message, self.body_bytes, &mut self.outbound);
                }
                self.promote_backlog();
            }
            ServerFrame::Error { code, .. } => {
                self.state = SessionState::Closing;
                events.push(SessionEvent::ServerError { code });
            }
            ServerFrame::Goaway { reason } => {
                self.state = SessionState::Closing;
                events.push(SessionEvent::Goaway { reason });
            }
            other if awaiting => return Err(NativeError::BeforeWelcome { kind: other.kind() }),
            ServerFrame::Ping { nonce } => {
                encode_client(&ClientFrame::Pong { nonce }, &mut self.outbound);
            }
            ServerFrame::Pong { .. } => {}
            ServerFrame::Ack { client_msg_id, server_id, .. } => match self.take_unacked(client_msg_id) {
                Some(message) => {
                    events.push(SessionEvent::Acked { message, server_id });
                    self.promote_backlog();
                }
                None => events.push(SessionEvent::AnswerUnmatched { client_msg_id }),
            },
            ServerFrame::Reject { client_msg_id, code } => match self.take_unacked(client_msg_id) {
                Some(message) => {
                    events.push(SessionEvent::Rejected { message, code });
                    self.promote_backlog();
                }
                None => events.push(SessionEvent::AnswerUnmatched { client_msg_id }),
            },
            ServerFrame::Deliver { item_id, from, body, .. } => {
                encode_client(&ClientFrame::Delivered { item_id }, &mut self.outbound);
                events.push(SessionEvent::Delivered { item_id, from, body: MessageBody::decode(body) });
            }
            ServerFrame::Receipt { item_id, server_id, peer, kind, .. } => {
                encode_client(&ClientFrame::Delivered { item_id }, &mut self.outbound);
                events.push(SessionEvent::Receipt { server_id, peer, kind });
            }
            other @ (ServerFrame::PinSent { .. }
            | ServerFrame::Registered { .. }
            | ServerFrame::RegisterRefused { .. }) => {
                return Err(NativeError::UnexpectedRegistration { kind: other.kind() });
            }
        }
        Ok(())
    }

    fn take_unacked(&mut self, client_msg_id: u64) -> Option<OutgoingMessage> {
        let index = self.unacked.iter().position(|message| message.client_msg_id == client_msg_id)?;
        self.unacked.remove(index)
    }

    /// Writes backlog SENDs while online and within the outbound and unacked limits.
    fn promote_backlog(&mut self) {
        while self.state == SessionState::Online
            && self.unacked.len() < UNACKED_SENDS_MAX
            && self.outbound.len() < OUTBOUND_BYTES_MAX
        {
            let Some(message) = self.backlog.pop_front() else { break };
            encode_send(&message, self.body_bytes, &mut self.outbound);
            self.unacked.push_back(message);
        }
    }

    /// Forgets every unanswered SEND (the run is over); returns them for the ledger.
    pub fn drain_unanswered(&mut self) -> Vec<OutgoingMessage> {
        self.unacked.drain(..).chain(self.backlog.drain()).collect()
    }
}

fn encode_send(message: &OutgoingMessage, body_bytes: u32, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(body_bytes as usize);
    message.body.encode(body_bytes as usize, &mut body);
    let frame = ClientFrame::Send { client_msg_id: message.client_msg_id, to: message.body.recipient, body: &body };
    encode_client(&frame, out);
}

impl ChatDriver for ClientSession {
    type Error = NativeError;

    fn user(&self) -> u64 {
        ClientSession::user(self)
    }
    fn handle_connected(&mut self, now_us: u64) {
        ClientSession::handle_connected(self, now_us)
    }
    fn handle_disconnected(&mut self) {
        ClientSession::handle_disconnected(self)
    }
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), NativeError> {
        ClientSession::handle_input(self, input, events)
    }
    fn handle_timeout(&mut self, now_us: u64) {
        ClientSession::handle_timeout(self, now_us)
    }
    /// The native protocol has no goodbye: the server ends the session when the socket closes.
    fn handle_close(&mut self) {}
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused> {
        ClientSession::try_queue_send(self, body)
    }
    fn transmit(&self) -> &[u8] {
        ClientSession::transmit(self)
    }
    fn handle_transmitted(&mut self, written: usize) {
        ClientSession::handle_transmitted(self, written)
    }
    fn is_online(&self) -> bool {
        ClientSession::is_online(self)
    }
    fn is_closing(&self) -> bool {
        ClientSession::is_closing(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::SEND_BACKLOG_MAX;
    use wire::{GoawayReason, ReceiptKind, ServerFrame, decode_client, encode_server};

    fn session() -> ClientSession {
        ClientSession::new(UserKey { user: 1, key: [3; 32] }, 64, 1_000_000, 1 << 32)
    }

    fn body(seq: u64) -> MessageBody {
        MessageBody { run_id: 9, sender: 1, recipient: 2, pair_seq: seq, scheduled_us: 10 }
    }

    fn server_bytes(frames: &[ServerFrame<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            encode_server(frame, &mut out);
        }
        out
    }

    /// Decodes everything the session wants to write, as owned summaries.
    fn written(session: &mut ClientSession) -> Vec<String> {
        let bytes = session.transmit().to_vec();
        session.handle_transmitted(bytes.len());
        let mut at = 0;
        let mut frames = Vec::new();
        while at < bytes.len() {
            match decode_client(&bytes[at..], FRAME_SIZE_MAX).expect("valid") {
                Decoded::Frame { frame, consumed } => {
                    frames.push(match frame {
                        ClientFrame::Send { client_msg_id, to, .. } => format!("send {client_msg_id} {to}"),
                        other => format!("{other:?}"),
                    });
                    at += consumed;
                }
                Decoded::Incomplete { .. } => panic!("session wrote a partial frame"),
            }
        }
        frames
    }

    fn welcome(session: &mut ClientSession, events: &mut Vec<SessionEvent>) {
        let bytes = server_bytes(&[ServerFrame::Welcome { version: 1, server_time_us: 0, queued: 0 }]);
        session.handle_input(&bytes, events).expect("welcome");
    }

    #[test]
    fn hello_then_backlog_flushes_on_welcome() {
        let mut session = session();
        session.try_queue_send(body(1)).expect("room");
        session.handle_connected(0);
        let frames = written(&mut session);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].starts_with("Hello"));
        let mut events = Vec::new();
        welcome(&mut session, &mut events);
        assert_eq!(events, vec![SessionEvent::Welcome { queued: 0 }]);
        assert_eq!(written(&mut session), vec![format!("send {} 2", 1u64 << 32)]);
    }

    #[test]
    fn unacked_sends_are_retried_with_the_same_ids_after_reconnect() {
        let mut session = session();
        let mut events = Vec::new();
        session.handle_connected(0);
        welcome(&mut session, &mut events);
        let first = session.try_queue_send(body(1)).expect("room");
        let second = session.try_queue_send(body(2)).expect("room");
        written(&mut session);
        let ack =
            server_bytes(&[ServerFrame::Ack { client_msg_id: first.client_msg_id, server_id: 50, server_time_us: 0 }]);
        events.clear();
        session.handle_input(&ack, &mut events).expect("ack");
        assert_eq!(events, vec![SessionEvent::Acked { message: first, server_id: 50 }]);
        session.handle_disconnected();
        session.handle_connected(5);
        written(&mut session);
        welcome(&mut session, &mut events);
        assert_eq!(written(&mut session), vec![format!("send {} 2", second.client_msg_id)]);
        assert_eq!(session.sends_pending(), 1);
    }

    #[test]
    fn deliver_and_receipt_are_answered_and_frames_split_anywhere_decode() {
        let mut session = session();
        let mut events = Vec::new();
        session.handle_connected(0);
        written(&mut session);
        welcome(&mut session, &mut events);
        let mut encoded_body = Vec::new();
        body(1).encode(64, &mut encoded_body);
        let bytes = server_bytes(&[
            ServerFrame::Deliver { item_id: 7, from: 1, server_time_us: 0, body: &encoded_body },
            ServerFrame::Ping { nonce: 4 },
            ServerFrame::Receipt {
                item_id: 8,
                server_id: 70,
                peer: 2,
                kind: ReceiptKind::Delivered,
                server_time_us: 0,
            },
        ]);
        events.clear();
        for chunk in bytes.chunks(5) {
            session.handle_input(chunk, &mut events).expect("valid");
        }
        assert_eq!(
            events,
            vec![
                SessionEvent::Delivered { item_id: 7, from: 1, body: Ok(body(1)) },
                SessionEvent::Receipt { server_id: 70, peer: 2, kind: ReceiptKind::Delivered },
            ]
        );
        assert_eq!(
            written(&mut session),
            vec!["Delivered { item_id: 7 }", "Pong { nonce: 4 }", "Delivered { item_id: 8 }"]
        );
    }

    #[test]
    fn goaway_and_garbage() {
        let mut session = session();
        let mut events = Vec::new();
        session.handle_connected(0);
        let early = server_bytes(&[ServerFrame::Ping { nonce: 1 }]);
        assert_eq!(session.handle_input(&early, &mut events), Err(NativeError::BeforeWelcome { kind: 0x05 }));
        session.handle_connected(0);
        welcome(&mut session, &mut events);
        let bye = server_bytes(&[ServerFrame::Goaway { reason: GoawayReason::ShuttingDown }]);
        session.handle_input(&bye, &mut events).expect("valid");
        assert!(session.is_closing());
        let mut fresh = ClientSession::new(UserKey { user: 1, key: [0; 32] }, 64, 1, 0);
        fresh.handle_connected(0);
        let zero_length = [0u8, 0, 0, 0, 1];
        assert!(matches!(fresh.handle_input(&zero_length, &mut events), Err(NativeError::Decode(_))));
    }

    #[test]
    fn backlog_is_bounded() {
        let mut session = session();
        for seq in 0..SEND_BACKLOG_MAX as u64 {
            session.try_queue_send(body(seq)).expect("room");
        }
        assert_eq!(session.try_queue_send(body(0)), Err(SendRefused::BacklogFull));
    }

    #[test]
    fn keepalive_pings_after_the_interval() {
        let mut session = session();
        let mut events = Vec::new();
        session.handle_connected(0);
        written(&mut session);
        welcome(&mut session, &mut events);
        session.handle_timeout(999_999);
        assert!(written(&mut session).is_empty());
        session.handle_timeout(1_000_000);
        assert_eq!(written(&mut session), vec!["Ping { nonce: 1000000 }"]);
    }
}
