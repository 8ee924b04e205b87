//! Recovery, sans-IO: folds the records of every core's log, read back in order at start, into what each
//! core of the new process starts with. Owns the rules that make a log mean a queue; the runtime reads the
//! files and writes the result, the shard loads it.
//!
//! Rules:
//! - A `Message` or `Receipt` record puts its item in the queue of its user at the record's position; a
//!   later record for the same item id (compaction rewrote it) moves it to that later position, so a
//!   compaction snapshot (which lists each user's whole queue in order) defines the order from there on.
//! - `Removed` takes the item out; a `Removed` for an unknown id changes nothing (its item's segment was
//!   reclaimed first).
//! - Item ids are never reused: every core of the new process continues after the largest sequence number
//!   seen in any id or `Sequence` record. Logs that leave no sequence number to issue (records with
//!   checksums but impossible contents) are refused with [`RecoveryError`], before anything is rewritten.
//! - Each item goes to its user's home core for the *new* core count (re-homing), in its old order: all of
//!   a user's records were in one core's log (its home then), so the order between cores does not matter.
//! - `Message` and `Sent` records within the dedup window rebuild the SEND dedup memory on the sender's home
//!   core, so a SEND retried across a restart is answered with its first ACK instead of being stored twice.
//!   Segment 0 of the new epoch holds a `Sent` record for each SEND so remembered whose `Message` it does not
//!   hold (its item was delivered): the memory survives the next restart too. A core keeps the newest
//!   `DEDUP_ENTRIES_PER_SHARD_MAX` of them, as its memory would. Each carries the fingerprint of its
//!   recipient and body, so a reuse of the id for another message is told apart.

use std::collections::{HashMap, HashSet};

use wire::UserId;

use super::record::LogRecord;
use super::writer::LogWriter;
use crate::home::home_core;
use crate::limits::DEDUP_ENTRIES_PER_SHARD_MAX;

/// The low bits of an item id that count items; the high bits name the core that issued it.
pub const ITEM_SEQ_MASK: u64 = (1 << 48) - 1;

/// Why the logs' records cannot make a starting state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    #[error(
        "the logs use item sequence numbers up to {} or beyond, the end of the 48-bit item id space, so no \
         core could issue a new item id: the logs were not written by ringline, or are corrupt behind valid \
         checksums",
        item_seq_next.saturating_sub(1)
    )]
    ItemIdsExhausted { item_seq_next: u64 },
}

/// A SEND found in the log: enough to answer its retry with the first ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredSend {
    pub sender: UserId,
    pub client_msg_id: u64,
    pub server_id: u64,
    pub server_time_us: u64,
    /// `send_fingerprint` of the message's recipient and body.
    pub fingerprint: u64,
}

/// What tells two SENDs with one `client_msg_id` apart: a hash of the recipient and the body, the same in
/// every process and version (BLAKE3, first 8 bytes), so the dedup memory rebuilt after a restart agrees with
/// the one the SENDs were first checked against.
pub fn send_fingerprint(to: UserId, body: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&to.to_le_bytes());
    hasher.update(body);
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// What one core of the new process starts with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveredCore {
    /// Queued items (`Message` and `Receipt` records) of this core's users, in queue order per user.
    pub items: Vec<LogRecord>,
    /// SENDs of this core's users whose retries must be recognised.
    pub sends: Vec<RecoveredSend>,
    /// The first item sequence number this core may issue.
    pub item_seq_next: u64,
    /// The log id of this core's log in the new epoch (random, secret to the log: `wal::group`): segment 0 is
    /// written with it and the core's writer goes on with it, so every later group has a reference to be
    /// recognised by after damage.
    pub log_id: u64,
}

impl RecoveredCore {
    /// Segment 0 of this core's log in the new epoch: one group, the sequence floor, every item in order, then
    /// a `Sent` record for each remembered SEND whose `Message` is not among the items.
    pub fn first_segment_bytes(&self) -> Vec<u8> {
        let mut writer = LogWriter::with_log_id(0, 0, 0, u64::MAX, self.log_id);
        writer.append(&LogRecord::Sequence { item_seq_next: self.item_seq_next });
        for record in self.items.iter().chain(&self.sent_records()) {
            writer.append(record);
        }
        let write = writer.poll_write().expect("a sequence record is always pending");
        debug_assert_eq!(write.lsn, self.first_segment_last_lsn());
        write.bytes
    }

    /// The sequence number of segment 0's last record: the core's writer continues after it.
    pub fn first_segment_last_lsn(&self) -> u64 {
        (1 + self.items.len() + self.sent_records().len()) as u64
    }

    fn sent_records(&self) -> Vec<LogRecord> {
        let stored: HashSet<(UserId, u64)> = self
            .items
            .iter()
            .filter_map(|record| match record {
                LogRecord::Message { sender, client_msg_id, .. } => Some((*sender, *client_msg_id)),
                _ => None,
            })
            .collect();
        self.sends
            .iter()
            .filter(|send| !stored.contains(&(send.sender, send.client_msg_id)))
            .map(|send| LogRecord::Sent {
                sender: send.sender,
                client_msg_id: send.client_msg_id,
                server_id: send.server_id,
                time_us: send.server_time_us,
                fingerprint: send.fingerprint,
            })
            .collect()
    }
}

#[derive(Debug)]
struct Live {
    order: u64,
    user: UserId,
    record: LogRecord,
}

/// Records applied so far.
#[derive(Debug, Default)]
pub struct Recovery {
    live: HashMap<u64, Live>,
    sends: HashMap<(UserId, u64), RecoveredSend>,
    next_order: u64,
    item_seq_next: u64,
    records: u64,
}

impl Recovery {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records applied.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Items live so far.
    pub fn live_items(&self) -> usize {
        self.live.len()
    }

    fn saw_id(&mut self, id: u64) {
        self.item_seq_next = self.item_seq_next.max((id & ITEM_SEQ_MASK) + 1);
    }

    /// Applies the next record of a log, in log order.
    pub fn apply(&mut self, record: LogRecord) {
        self.records += 1;
        self.next_order += 1;
        let order = self.next_order;
        match record {
            LogRecord::Message { item_id, to, sender, client_msg_id, time_us, ref body } => {
                self.saw_id(item_id);
                let fingerprint = send_fingerprint(to, body);
                let send =
                    RecoveredSend { sender, client_msg_id, server_id: item_id, server_time_us: time_us, fingerprint };
                self.sends.insert((sender, client_msg_id), send);
                self.live.insert(item_id, Live { order, user: to, record });
            }
            LogRecord::Receipt { item_id, to, server_id, .. } => {
                self.saw_id(item_id);
                self.saw_id(server_id);
                self.live.insert(item_id, Live { order, user: to, record });
            }
            LogRecord::Removed { item_id, .. } => {
                self.saw_id(item_id);
                self.live.remove(&item_id);
            }
            LogRecord::Sequence { item_seq_next } => self.item_seq_next = self.item_seq_next.max(item_seq_next),
            LogRecord::Sent { sender, client_msg_id, server_id, time_us, fingerprint } => {
                self.saw_id(server_id);
                let send = RecoveredSend { sender, client_msg_id, server_id, server_time_us: time_us, fingerprint };
                self.sends.insert((sender, client_msg_id), send);
            }
            LogRecord::Generation { .. } => {}
        }
    }

    /// Splits the state between `cores` cores by home core. SENDs older than `dedup_window_us` at
    /// `now_wall_us` are forgotten, as they would have been without the restart. Every core's
    /// `item_seq_next` is at most `ITEM_SEQ_MASK`, or this is an error.
    pub fn finish(
        self,
        cores: u16,
        now_wall_us: u64,
        dedup_window_us: u64,
    ) -> Result<Vec<RecoveredCore>, RecoveryError> {
        let item_seq_next = self.item_seq_next.max(1);
        if item_seq_next > ITEM_SEQ_MASK {
            return Err(RecoveryError::ItemIdsExhausted { item_seq_next });
        }
        let mut out: Vec<RecoveredCore> = (0..cores)
            .map(|_| RecoveredCore { item_seq_next, log_id: rand::random(), ..RecoveredCore::default() })
            .collect();
        let mut live: Vec<Live> = self.live.into_values().collect();
        live.sort_unstable_by_key(|live| live.order);
        for item in live {
            out[home_core(item.user, cores).index()].items.push(item.record);
        }
        let mut sends: Vec<RecoveredSend> = self
            .sends
            .into_values()
            .filter(|send| send.server_time_us.saturating_add(dedup_window_us) > now_wall_us)
            .collect();
        sends.sort_unstable_by_key(|send| send.server_time_us);
        for send in sends {
            out[home_core(send.sender, cores).index()].sends.push(send);
        }
        for core in &mut out {
            // A core remembers at most this many (the oldest go first), so segment 0 holds no more.
            let excess = core.sends.len().saturating_sub(DEDUP_ENTRIES_PER_SHARD_MAX);
            core.sends.drain(..excess);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(item_id: u64, to: UserId, client_msg_id: u64) -> LogRecord {
        LogRecord::Message { item_id, to, sender: 500, client_msg_id, time_us: 1_000, body: vec![1].into() }
    }

    fn ids(core: &RecoveredCore) -> Vec<u64> {
        core.items
            .iter()
            .map(|record| match record {
                LogRecord::Message { item_id, .. } | LogRecord::Receipt { item_id, .. } => *item_id,
                other => panic!("not an item: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn removed_items_are_gone_and_the_rest_keep_their_order() {
        let mut recovery = Recovery::new();
        for id in 1..=5 {
            recovery.apply(message(id, 7, id));
        }
        recovery.apply(LogRecord::Removed { user: 7, item_id: 2 });
        recovery.apply(LogRecord::Removed { user: 7, item_id: 99 });
        let cores = recovery.finish(1, 2_000, 10_000).expect("recoverable");
        assert_eq!(ids(&cores[0]), vec![1, 3, 4, 5]);
        assert_eq!(cores[0].item_seq_next, 100, "ids of removed items are not issued again");
        assert_eq!(cores[0].sends.len(), 5, "every SEND in the window is remembered, delivered or not");
    }

    #[test]
    fn a_snapshot_defines_the_order_after_it() {
        let mut recovery = Recovery::new();
        // Segment 0 (old): item 1. Head: item 2 (appended before the snapshot), then the snapshot [1, 2].
        recovery.apply(message(1, 7, 1));
        recovery.apply(message(2, 7, 2));
        recovery.apply(LogRecord::Sequence { item_seq_next: 40 });
        recovery.apply(message(1, 7, 1));
        recovery.apply(message(2, 7, 2));
        recovery.apply(message(3, 7, 3));
        assert_eq!(ids(&recovery.finish(1, 0, 10).expect("recoverable")[0]), vec![1, 2, 3]);

        // The same log after the old segment was reclaimed.
        let mut recovery = Recovery::new();
        for record in [message(2, 7, 2), LogRecord::Sequence { item_seq_next: 40 }, message(1, 7, 1), message(2, 7, 2)]
        {
            recovery.apply(record);
        }
        let cores = recovery.finish(1, 0, 10).expect("recoverable");
        assert_eq!(ids(&cores[0]), vec![1, 2]);
        assert_eq!(cores[0].item_seq_next, 40);
    }

    #[test]
    fn items_and_sends_move_to_their_new_home_core() {
        let mut recovery = Recovery::new();
        for user in 100..200u64 {
            recovery.apply(LogRecord::Message {
                item_id: (3 << 48) | user,
                to: user,
                sender: user + 1000,
                client_msg_id: 1,
                time_us: 50,
                body: Box::default(),
            });
        }
        let cores = recovery.finish(3, 60, 100).expect("recoverable");
        assert_eq!(cores.iter().map(|core| core.items.len()).sum::<usize>(), 100);
        for (index, core) in cores.iter().enumerate() {
            for record in &core.items {
                let LogRecord::Message { to, .. } = record else { panic!("a message") };
                assert_eq!(home_core(*to, 3).index(), index);
            }
            for send in &core.sends {
                assert_eq!(home_core(send.sender, 3).index(), index);
            }
            assert_eq!(core.item_seq_next, 200);
        }
        assert_eq!(cores.iter().map(|core| core.sends.len()).sum::<usize>(), 100);
        assert!(Recovery::new().finish(2, 1_000, 10).expect("recoverable").iter().all(|core| core.sends.is_empty()));
        let mut old = Recovery::new();
        old.apply(message(1, 7, 1));
        assert!(old.finish(1, 1_000 + 10, 10).expect("recoverable")[0].sends.is_empty(), "out of the dedup window");
    }

    #[test]
    fn a_delivered_send_is_remembered_across_two_restarts() {
        // Stored, delivered (removed), its ACK lost: a retry after the first restart, or after a second one,
        // must get the first server id.
        let mut recovery = Recovery::new();
        recovery.apply(message(1, 7, 11));
        recovery.apply(message(2, 7, 12));
        recovery.apply(LogRecord::Removed { user: 7, item_id: 1 });
        let first = recovery.finish(1, 2_000, 10_000).expect("recoverable");
        assert_eq!(ids(&first[0]), vec![2]);
        let mut again = Recovery::new();
        let mut reader = super::super::replay::LogReader::new(1 << 20);
        let outcome = reader.recover_segment(&first[0].first_segment_bytes(), true, &mut again);
        assert_eq!(outcome.records as u64, first[0].first_segment_last_lsn(), "one Sent record, for item 1 only");
        let second = again.finish(1, 3_000, 10_000).expect("recoverable");
        assert_eq!(ids(&second[0]), vec![2]);
        let by_id = |core: &RecoveredCore| {
            let mut sends = core.sends.clone();
            sends.sort_unstable_by_key(|send| send.client_msg_id);
            sends
        };
        let sends = by_id(&second[0]);
        assert_eq!(sends, by_id(&first[0]), "the same SENDs remembered, with their server ids");
        assert_eq!(sends.iter().map(|send| send.server_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(second[0].item_seq_next, 3);
    }

    #[test]
    fn logs_that_leave_no_item_id_to_issue_are_refused() {
        let exhausted = |record: LogRecord| {
            let mut recovery = Recovery::new();
            recovery.apply(message(1, 7, 1));
            recovery.apply(record);
            recovery.finish(2, 0, 10)
        };
        // The last id a core may issue is ITEM_SEQ_MASK: seen, nothing is left.
        let error = exhausted(message((5 << 48) | ITEM_SEQ_MASK, 7, 2)).expect_err("no id left");
        assert_eq!(error, RecoveryError::ItemIdsExhausted { item_seq_next: ITEM_SEQ_MASK + 1 });
        assert!(error.to_string().contains("the end of the 48-bit item id space"), "{error}");
        assert!(exhausted(LogRecord::Sequence { item_seq_next: ITEM_SEQ_MASK + 1 }).is_err());
        assert!(exhausted(LogRecord::Sequence { item_seq_next: u64::MAX }).is_err());
        // One id short of the end is fine: the cores start at the last one.
        let cores = exhausted(message(ITEM_SEQ_MASK - 1, 7, 2)).expect("one id left");
        assert!(cores.iter().all(|core| core.item_seq_next == ITEM_SEQ_MASK));
    }
}
