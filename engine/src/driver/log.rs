//! The log's turn around the shard: take the next group of records (`next_write`), and once the I/O side made
//! it durable report it (`write_done`), or report that it failed (`write_failed`) and retry the same write.
//! The write itself, its retries and its timing (at once under `Durability::Sync`, one group per flush
//! interval under `Async`) are the caller's; what the shard does with the answer, and the segments it then
//! frees (`Effects::delete_segment`), go through `drive`.

use ringline_core::shard::{Now, Shard};
use ringline_core::wal::PendingWrite;

use super::effects::{Effects, drive};

/// The next group to write and make durable, if records wait and no write is in flight.
pub fn next_write(shard: &mut Shard) -> Option<PendingWrite> {
    shard.poll_wal_write()
}

/// The write ending at `lsn` is durable: the answers it held go out, and whatever that asks for is done
/// (segments a compaction freed are deleted through `effects`).
pub fn write_done(shard: &mut Shard, effects: &mut impl Effects, lsn: u64, now: Now) {
    shard.handle_wal_done(lsn, now);
    drive(shard, effects);
}

/// The write in flight failed: the shard refuses new messages until a write succeeds. The caller retries
/// the same write.
pub fn write_failed(shard: &mut Shard, effects: &mut impl Effects) {
    shard.handle_wal_failed();
    drive(shard, effects);
}
