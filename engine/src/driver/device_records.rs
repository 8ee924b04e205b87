//! The device log's answer around the shard: a batch of device generations (each handed out by
//! `Effects::record_device`) is durable, or could not be made so; each record is reported to the shard, then
//! what that releases (REGISTERED, REGISTER_REFUSED) is driven. Writing the batch, off the executor thread,
//! is the caller's.

use ringline_core::shard::{DeviceRecord, Now, Shard};

use super::effects::{Effects, drive};

/// The device log took `batch` (`durable`) or failed to: reports each record, oldest first, and empties
/// `batch` for reuse.
pub fn recorded(shard: &mut Shard, effects: &mut impl Effects, batch: &mut Vec<DeviceRecord>, durable: bool, now: Now) {
    for record in batch.drain(..) {
        if durable {
            shard.handle_device_recorded(record, now);
        } else {
            shard.handle_device_record_failed(record, now);
        }
    }
    drive(shard, effects);
}
