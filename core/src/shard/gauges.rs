//! What a core's health shows of its shard: counts, sizes and backlogs for the metrics snapshot and the
//! shutdown watchdog, read-only. Owns nothing; decides nothing.

use wire::UserId;

use crate::home::ShardId;
use crate::limits::OUTBOUND_BYTES_MAX;

use super::Shard;
use super::mesh::Outbox;
use super::stats::ShardStats;

impl Shard {
    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// One log group took `us` to write and sync (retries included): the log sync latency histogram.
    pub fn record_wal_sync(&mut self, us: u64) {
        self.stats.wal_sync_us.record(us);
    }

    /// Connections on this core (any stage).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Logged-in users on this core.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Items waiting in this core's offline queue.
    pub fn queued_items(&self) -> usize {
        self.queue.items_total()
    }

    /// Body bytes waiting in this core's offline queue.
    pub fn queued_bytes(&self) -> u64 {
        self.queue.bytes_total()
    }

    /// Users with something waiting in this core's offline queue.
    pub fn users_waiting(&self) -> usize {
        self.queue.users_waiting()
    }

    /// Free buffers in this core's pool (outbound bytes, partial frames).
    pub fn pooled_buffers(&self) -> usize {
        self.buffers.len()
    }

    /// SENDs remembered for deduplicating retries.
    pub fn dedup_entries(&self) -> usize {
        self.dedup.len()
    }

    /// Messages delivered to this core's users and not READ yet, remembered so a READ can be checked.
    pub fn unread_messages(&self) -> usize {
        self.unread.len()
    }

    /// Messages acknowledged or expired whose receipt the sender's home core has not reported durable yet.
    pub fn receipts_awaited(&self) -> usize {
        self.awaiting.len()
    }

    /// Items waiting for `user` (on its home core).
    pub fn queued_for(&self, user: UserId) -> usize {
        self.queue.len(user)
    }

    /// Cores of the engine.
    pub fn cores(&self) -> u16 {
        self.config.cores
    }

    /// Bytes waiting in connections' outbound buffers, and connections whose buffer is full (metrics; O(n)).
    pub fn outbound_backlog(&self) -> (u64, u64) {
        self.conns.outbound_totals(OUTBOUND_BYTES_MAX)
    }

    /// Messages waiting in the outbox for `peer`.
    pub fn outbox_len(&self, peer: ShardId) -> usize {
        self.outboxes.get(peer.index()).map_or(0, Outbox::len)
    }

    /// Requests among the messages waiting in the outbox for `peer` (what `MESH_OUTBOX_REQUESTS_MAX` bounds).
    pub fn outbox_requests(&self, peer: ShardId) -> usize {
        self.outboxes.get(peer.index()).map_or(0, Outbox::requests)
    }

    /// A count that moves whenever the core does work for clients (connections accepted and closed, SENDs,
    /// deliveries, messages from other cores): equal counts at two moments mean the core was quiet between.
    pub fn activity(&self) -> u64 {
        let stats = &self.stats;
        stats.accepted
            + stats.adopted
            + stats.closed
            + stats.messages_in
            + stats.deliveries_written
            + stats.mesh_received
    }
}
