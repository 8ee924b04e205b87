//! Messages between cores, and the per-peer outbox they wait in. Owns the message types and the outbox's
//! request count; the runtime moves batches over the bounded channels, and `Shard` decides what to send.
//!
//! Requests (`Store`, `Receipt`) count against `MESH_OUTBOX_REQUESTS_MAX`: past it the connections that
//! want to add more are paused. Responses (`Stored`, `Refused`, `ReceiptStored`) always enter the outbox:
//! each answers one request of the peer, so they are bounded by the peer's outbox, and a core that drains
//! its inbound channels never waits on its outbound ones. That is why the mesh cannot deadlock.

use std::collections::VecDeque;

use wire::{ReceiptKind, RejectCode, UserId};

use super::connection::ConnId;

/// A message from one core to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMsg {
    /// Store `body` from `sender` in `to`'s queue (request, to `to`'s home core).
    Store { sender: UserId, client_msg_id: u64, origin: ConnId, to: UserId, body: Box<[u8]> },
    /// The message is stored (response, to the sender's home core).
    Stored { sender: UserId, client_msg_id: u64, origin: ConnId, server_id: u64, server_time_us: u64 },
    /// The message was refused (response, to the sender's home core).
    Refused { sender: UserId, client_msg_id: u64, origin: ConnId, code: RejectCode },
    /// Queue a receipt for `to` about message `server_id` it sent to `peer` (request, to `to`'s home core).
    /// A `Delivered` or `Expired` one is answered with `ReceiptStored`: the message waits for it on `peer`'s
    /// home core (`awaiting_receipts.rs`).
    Receipt { to: UserId, server_id: u64, peer: UserId, kind: ReceiptKind, time_us: u64 },
    /// The `Delivered` or `Expired` receipt about message `server_id` of `recipient` is durable (or has
    /// nobody to go to): the message may leave the log (response, to `recipient`'s home core).
    ReceiptStored { recipient: UserId, server_id: u64 },
}

impl ShardMsg {
    pub fn is_request(&self) -> bool {
        matches!(self, Self::Store { .. } | Self::Receipt { .. })
    }
}

/// Messages waiting for one peer core.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: VecDeque<ShardMsg>,
    requests: usize,
}

impl Outbox {
    pub fn push(&mut self, message: ShardMsg) {
        self.requests += usize::from(message.is_request());
        self.messages.push_back(message);
    }

    pub fn requests(&self) -> usize {
        self.requests
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Gives back the room a burst left behind (`memory_trim`). Returns whether it did.
    pub fn shrink_if_oversized(&mut self) -> bool {
        crate::memory_trim::shrink_if_oversized(&mut self.messages)
    }

    /// Moves up to `max` messages into `batch`, oldest first.
    pub fn take_batch(&mut self, batch: &mut Vec<ShardMsg>, max: usize) {
        let count = self.messages.len().min(max);
        for message in self.messages.drain(..count) {
            self.requests -= usize::from(message.is_request());
            batch.push(message);
        }
    }
}
