//! Device generations on their way to the device log. Registration (or an operator's revocation) decides a
//! user's next generation (the shard does); this holds it, with who waits for it (the connection waiting for
//! REGISTERED, or the admin request waiting for its answer), until the runtime reports the
//! record durable (`Output::RecordDevice` out, `Shard::handle_device_recorded` or
//! `Shard::handle_device_record_failed` in). Owns only that bookkeeping: it writes nothing (the runtime does,
//! off the executor thread, `rt::device_records`) and decides nothing about generations or answers.
//!
//! Invariants: at most one record per phone is pending, and at most `DEVICE_RECORDS_PENDING_MAX` in all; a
//! record is handed to the runtime once, in the order it was made; a generation becomes current (its key
//! accepted, older keys revoked, REGISTERED written) only once the runtime said its record is durable.

use std::collections::{HashMap, VecDeque};

use wire::UserId;

use crate::limits::DEVICE_RECORDS_PENDING_MAX;

use super::admin::AdminTicket;
use super::connection::ConnId;

/// One device generation to append to this core's device log and make durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRecord {
    pub phone: UserId,
    pub generation: u32,
}

/// Who waits for a record to be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordWaiter {
    /// A registering connection, for REGISTERED (or REGISTER_REFUSED).
    Registration(ConnId),
    /// An operator's revocation (`Shard::handle_admin`), for its answer.
    Admin(AdminTicket),
}

/// Why a record could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NotTaken {
    /// A record for this phone is pending already.
    PhoneBusy,
    /// `DEVICE_RECORDS_PENDING_MAX` records are pending.
    Full,
}

/// The records of one core that are not durable yet.
#[derive(Debug, Default)]
pub(super) struct DeviceRecords {
    /// Made and not yet handed to the runtime, oldest first.
    unpolled: VecDeque<DeviceRecord>,
    /// Every pending record (handed out or not): phone → (generation, who waits for it).
    pending: HashMap<UserId, (u32, RecordWaiter)>,
}

impl DeviceRecords {
    /// Whether a record for `phone` is pending.
    pub(super) fn is_pending(&self, phone: UserId) -> bool {
        self.pending.contains_key(&phone)
    }

    /// Records pending (for the shutdown's count).
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Takes `record`, to be answered to `waiter` once durable.
    pub(super) fn try_add(&mut self, record: DeviceRecord, waiter: RecordWaiter) -> Result<(), NotTaken> {
        if self.pending.contains_key(&record.phone) {
            return Err(NotTaken::PhoneBusy);
        }
        if self.pending.len() >= DEVICE_RECORDS_PENDING_MAX {
            return Err(NotTaken::Full);
        }
        self.pending.insert(record.phone, (record.generation, waiter));
        self.unpolled.push_back(record);
        assert!(self.unpolled.len() <= self.pending.len(), "every unpolled record is pending");
        Ok(())
    }

    /// The oldest record not handed out yet; each is handed out once.
    pub(super) fn next_unpolled(&mut self) -> Option<DeviceRecord> {
        self.unpolled.pop_front()
    }

    /// `record` is settled (durable or failed): forgets it and returns who waits for it, or `None` if no such
    /// record is pending (an answer for a record never handed out is a runtime bug, ignored).
    pub(super) fn settle(&mut self, record: DeviceRecord) -> Option<RecordWaiter> {
        match self.pending.get(&record.phone) {
            Some(&(generation, waiter)) if generation == record.generation => {
                debug_assert!(!self.unpolled.contains(&record), "a record is settled only after it was polled");
                self.pending.remove(&record.phone);
                Some(waiter)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONN: RecordWaiter = RecordWaiter::Registration(ConnId { index: 3, generation: 1 });

    #[test]
    fn one_record_per_phone_handed_out_once_and_settled_once() {
        let mut records = DeviceRecords::default();
        let first = DeviceRecord { phone: 15_550_000_001, generation: 1 };
        assert_eq!(records.try_add(first, CONN), Ok(()));
        assert_eq!(records.try_add(DeviceRecord { generation: 2, ..first }, CONN), Err(NotTaken::PhoneBusy));
        assert!(records.is_pending(first.phone));
        assert_eq!(records.next_unpolled(), Some(first));
        assert_eq!(records.next_unpolled(), None, "handed out once");
        assert_eq!(records.settle(DeviceRecord { generation: 9, ..first }), None, "another generation");
        assert_eq!(records.settle(first), Some(CONN));
        assert_eq!(records.settle(first), None, "settled once");
        assert_eq!(records.len(), 0);
        assert!(!records.is_pending(first.phone));
    }

    #[test]
    fn past_the_limit_records_are_refused() {
        let mut records = DeviceRecords::default();
        for phone in 0..DEVICE_RECORDS_PENDING_MAX as u64 {
            assert_eq!(records.try_add(DeviceRecord { phone, generation: 1 }, CONN), Ok(()));
        }
        let one_more = DeviceRecord { phone: u64::MAX, generation: 1 };
        assert_eq!(records.try_add(one_more, CONN), Err(NotTaken::Full));
        assert_eq!(records.len(), DEVICE_RECORDS_PENDING_MAX);
    }
}
