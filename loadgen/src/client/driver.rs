//! The seam between the agent runtime and a chat protocol: the [`ChatDriver`] trait and the protocol-neutral
//! words both sides speak ([`SessionEvent`]: welcome, acked, rejected, delivered, receipt, goaway, error;
//! [`OutgoingMessage`]; [`SendRefused`]). The runtime (`agent/core.rs`) owns sockets, timers and accounting; a
//! driver owns one connection's protocol state. Drivers (`native/`, `xmpp/`) depend on this file and on
//! nothing of each other; this file knows no driver, no TLS and no runtime.
//! Drivers are sans-IO: bytes and times in, bytes and events out.

use wire::{ErrorCode, GoawayReason, ReceiptKind, RejectCode, UserId};

use super::body::{BodyError, MessageBody};
use crate::limits::{OUTBOUND_KEEP_BYTES_MAX, SEND_BACKLOG_MAX};

/// A message a session is to send, with the id the server deduplicates retries by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub client_msg_id: u64,
    pub body: MessageBody,
}

/// What the server told a session, for the runtime to account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Welcome {
        queued: u32,
    },
    Acked {
        message: OutgoingMessage,
        server_id: u64,
    },
    Rejected {
        message: OutgoingMessage,
        code: RejectCode,
    },
    /// An ACK or REJECT for no SEND this session has outstanding.
    AnswerUnmatched {
        client_msg_id: u64,
    },
    Delivered {
        item_id: u64,
        from: UserId,
        body: Result<MessageBody, BodyError>,
    },
    Receipt {
        server_id: u64,
        peer: UserId,
        kind: ReceiptKind,
    },
    Goaway {
        reason: GoawayReason,
    },
    ServerError {
        code: ErrorCode,
    },
}

/// Why a scheduled SEND was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendRefused {
    #[error("the connection's send backlog is full ({SEND_BACKLOG_MAX} messages)")]
    BacklogFull,
}

/// Drops the first `written` bytes of a driver's outbound buffer, and frees the buffer once it is empty and
/// larger than `OUTBOUND_KEEP_BYTES_MAX`. Every driver's `handle_transmitted` is this.
pub fn consume_written(outbound: &mut Vec<u8>, written: usize) {
    let written = written.min(outbound.len());
    outbound.drain(..written);
    if outbound.is_empty() && outbound.capacity() > OUTBOUND_KEEP_BYTES_MAX {
        *outbound = Vec::new();
    }
}

/// One client connection of some chat protocol, as the agent runtime drives it.
pub trait ChatDriver {
    /// Why the connection cannot go on (the runtime closes it, counts the error by its text, and reconnects).
    type Error: std::error::Error;

    /// The user this connection logs in as.
    fn user(&self) -> u64;
    /// A TCP connection is up: queue the login.
    fn handle_connected(&mut self, now_us: u64);
    /// The connection is gone; unacknowledged sends stay and are retried after the next login.
    fn handle_disconnected(&mut self);
    /// Bytes arrived; events for the runtime are appended to `events`.
    fn handle_input(&mut self, input: &[u8], events: &mut Vec<SessionEvent>) -> Result<(), Self::Error>;
    /// Time passed: keepalives.
    fn handle_timeout(&mut self, now_us: u64);
    /// The runtime is about to close the connection on purpose (end of the run): queue the protocol's goodbye,
    /// if it has one, for one last best-effort write.
    fn handle_close(&mut self);
    /// Schedules a message; refused when the driver's bounded backlog is full.
    fn try_queue_send(&mut self, body: MessageBody) -> Result<OutgoingMessage, SendRefused>;
    /// Bytes to write now, and how many were written.
    fn transmit(&self) -> &[u8];
    fn handle_transmitted(&mut self, written: usize);
    /// Logged in and serving.
    fn is_online(&self) -> bool;
    /// The server is closing the connection on purpose (GOAWAY, ERROR, or the protocol's equivalent).
    fn is_closing(&self) -> bool;
}
