//! The shard's side of its log: record groups out to the runtime (`Output::LogReady`, then `poll_wal_write`),
//! durable LSNs in (`handle_wal_done`), failures, segment deletions (`Output::DeleteSegment`), and the items that
//! wait for their record to be durable before anyone may see them. The log's bookkeeping is `durability.rs`'s, its format `crate::wal`'s.

use wire::UserId;

use crate::wal::{ITEM_SEQ_MASK, PendingWrite};

use super::durability::{Durability, LogStats};
use super::{Now, Shard};

impl Shard {
    /// The next group of log records to write and fdatasync, if no write is in flight: a take, made by the log
    /// after `Output::LogReady` (or at its flush interval). The runtime calls `handle_wal_done` once it is
    /// durable, or `handle_wal_failed` and retries the same write.
    pub fn poll_wal_write(&mut self) -> Option<PendingWrite> {
        let write = self.log.poll_write();
        // Records appended from now on are announced again; records that wait behind a write in flight were
        // announced already and go with the next take.
        self.log_announced &= self.log.has_pending();
        write
    }

    /// What an ACK promises on this core.
    pub fn durability(&self) -> Durability {
        self.log.durability()
    }

    /// The log is durable up to `lsn`: answers held for it go out; a compaction may start.
    pub fn handle_wal_done(&mut self, lsn: u64, now: Now) {
        let mut released = std::mem::take(&mut self.released_scratch);
        self.log.handle_write_done(lsn, &mut released);
        for (to, message) in released.drain(..) {
            self.send_to_shard(to, message);
        }
        self.released_scratch = released;
        let mut users = std::mem::take(&mut self.users_scratch);
        while let Some(&(item_lsn, seq, user)) = self.undurable_items.front() {
            if item_lsn > lsn {
                break;
            }
            self.undurable_items.pop_front();
            debug_assert!(seq > self.durable_item_seq, "item sequence numbers only increase");
            self.durable_item_seq = seq;
            users.push(user);
        }
        users.sort_unstable();
        users.dedup();
        for user in users.drain(..) {
            self.fill_deliveries(user);
        }
        self.users_scratch = users;
        if self.log.wants_compaction() {
            self.log.compact(self.item_seq + 1, self.awaiting.iter().chain(self.queue.iter()));
        }
        self.run_local(now);
    }

    /// The write in flight failed (disk full, I/O error). Until a write succeeds, new messages for this
    /// core's users are refused with `StorageUnavailable`; deliveries go on.
    pub fn handle_wal_failed(&mut self) {
        self.log.handle_write_failed();
    }

    /// Whether log writes are failing.
    pub fn wal_failed(&self) -> bool {
        self.log.is_failed()
    }

    /// Counters of this core's log.
    pub fn wal_stats(&self) -> LogStats {
        self.log.stats()
    }

    /// Bytes in this core's log segments, and bytes the queued items' records take.
    pub fn wal_bytes(&self) -> (u64, u64) {
        self.log.bytes()
    }

    /// Item `id` of `user`, made here, waits for its record (`lsn`) before it is delivered.
    pub(super) fn note_undurable(&mut self, lsn: u64, id: u64, user: UserId) {
        if self.log.durability().waits_for_sync() {
            self.undurable_items.push_back((lsn, id & ITEM_SEQ_MASK, user));
        }
    }
}
