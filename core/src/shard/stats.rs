//! Counters of one shard, read by the runtime for logs and metrics. Owns numbers only; plain `u64`s updated
//! on the core's own thread, never shared.

use wire::{ErrorCode, RejectCode};

use crate::metrics::LatencyHistogram;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    pub accepted: u64,
    pub logins: u64,
    pub handoffs_out: u64,
    pub adopted: u64,
    pub replaced: u64,
    pub closed: u64,
    pub messages_in: u64,
    pub messages_stored: u64,
    pub messages_delivered: u64,
    pub receipts_queued: u64,
    pub duplicates_suppressed: u64,
    /// READ frames refused: not about a message delivered to this user and not yet read (forged, repeated,
    /// past the unread memory, or from before a restart).
    pub read_refused: u64,
    /// DELIVERED frames refused: not about an item written to this connection and not yet acknowledged.
    pub delivered_refused: u64,
    pub expired: u64,
    pub rejects: u64,
    pub rejects_queue_full: u64,
    pub errors_sent: u64,
    pub errors_auth: u64,
    pub errors_malformed: u64,
    pub timeouts_handshake: u64,
    pub timeouts_idle: u64,
    pub mesh_sent: u64,
    pub mesh_received: u64,
    pub pins_sent: u64,
    pub registrations: u64,
    pub registrations_refused: u64,
    pub revoked: u64,
    /// DELIVER frames written to connections of this core.
    pub deliveries_written: u64,
    /// Time from a SEND received to its `Stored` reply, on the sender's home core.
    pub send_stored_us: LatencyHistogram,
    /// Time of one write-ahead log sync; fed by the WAL once it is wired into the shard.
    pub wal_sync_us: LatencyHistogram,
}

impl ShardStats {
    pub(super) fn count_reject(&mut self, code: RejectCode) {
        self.rejects += 1;
        if matches!(
            code,
            RejectCode::RecipientQueueFull | RejectCode::RecipientQueueBytesFull | RejectCode::ServerQueueFull
        ) {
            self.rejects_queue_full += 1;
        }
    }

    pub(super) fn count_error(&mut self, code: ErrorCode) {
        self.errors_sent += 1;
        match code {
            ErrorCode::AuthFailed | ErrorCode::UnsupportedVersion => self.errors_auth += 1,
            ErrorCode::Malformed | ErrorCode::FrameTooLarge | ErrorCode::UnexpectedFrame => self.errors_malformed += 1,
            ErrorCode::HandshakeTimeout => self.timeouts_handshake += 1,
            _ => {}
        }
    }
}
