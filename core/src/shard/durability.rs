//! The shard's side of its core's write-ahead log, sans-IO: which records to append, which answers wait for
//! which write, which segments may go. Owns the `LogWriter` (group commit), the answers held until their
//! record is durable, the failure state and the compaction bookkeeping. The runtime (`rt::log`) does the
//! writes and fdatasyncs and deletes the files it is told to.
//!
//! Invariants:
//! - Under `Durability::Sync`, a `Stored` answer leaves this core only once the log is durable up to the
//!   `Message` record it answers, so the sender's ACK implies the message survives a crash of the engine.
//! - A segment is deleted only after a compaction snapshot written after it is durable: the snapshot holds
//!   every item still queued and the sequence floor, so the deleted segments held nothing else of value.
//! - While a write fails (disk full, I/O error) the core stores no new message; the failed write is retried
//!   until it succeeds, and everything appended meanwhile follows it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use wire::UserId;

use crate::home::ShardId;
use crate::wal::{LogRecord, LogWriter, PendingWrite};

use super::mesh::ShardMsg;
use super::offline_queue::Item;

/// What an ACK promises about the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The ACK is sent once the message's record is written and fdatasync'ed on the recipient's home core
    /// (group commit: one write and one sync for everything appended meanwhile). An ACKed message survives
    /// a crash of the engine or of the machine.
    Sync,
    /// The ACK is sent once the recipient's home core holds the message in memory; the log is written and
    /// synced every `flush_interval`. A crash of the engine or machine loses the messages ACKed in the last
    /// interval or so.
    Async { flush_interval: Duration },
}

impl Durability {
    pub fn waits_for_sync(self) -> bool {
        self == Self::Sync
    }
}

/// The log record that keeps `item` (queued for `user`) across a restart.
pub fn item_record(user: UserId, item: &Item) -> LogRecord {
    match item {
        Item::Message { id, from, client_msg_id, time_us, body } => LogRecord::Message {
            item_id: *id,
            to: user,
            sender: *from,
            client_msg_id: *client_msg_id,
            time_us: *time_us,
            body: body.clone(),
        },
        Item::Receipt { id, server_id, peer, kind, time_us } => LogRecord::Receipt {
            item_id: *id,
            to: user,
            server_id: *server_id,
            peer: *peer,
            kind: *kind,
            time_us: *time_us,
        },
    }
}

/// The queued item a recovered record stands for, and its user.
pub fn record_item(record: LogRecord) -> Option<(UserId, Item)> {
    match record {
        LogRecord::Message { item_id, to, sender, client_msg_id, time_us, body } => {
            Some((to, Item::Message { id: item_id, from: sender, client_msg_id, time_us, body }))
        }
        LogRecord::Receipt { item_id, to, server_id, peer, kind, time_us } => {
            Some((to, Item::Receipt { id: item_id, server_id, peer, kind, time_us }))
        }
        LogRecord::Removed { .. }
        | LogRecord::Generation { .. }
        | LogRecord::Sequence { .. }
        | LogRecord::Sent { .. } => None,
    }
}

/// Bytes the record of a queued item takes in the log.
pub fn item_record_bytes(item: &Item) -> u64 {
    let payload = match item {
        Item::Message { body, .. } => 40 + body.len(),
        Item::Receipt { .. } => 41,
    };
    (crate::wal::RECORD_HEADER_BYTES + 1 + payload) as u64
}

#[derive(Debug, Clone, Copy)]
struct Compaction {
    /// The snapshot's last record.
    lsn: u64,
    /// Segments before this one go once the snapshot is durable.
    first_kept_segment: u64,
}

/// One core's log state.
#[derive(Debug)]
pub struct ShardLog {
    writer: LogWriter,
    durability: Durability,
    /// Answers waiting for the log to be durable up to their sequence number, in that order.
    held: VecDeque<(u64, ShardId, ShardMsg)>,
    failed: bool,
    /// Bytes written per segment still on disk.
    segments: BTreeMap<u64, u64>,
    log_bytes: u64,
    /// Bytes the records of the items still queued take: what a compaction would write.
    live_bytes: u64,
    segment_bytes_max: u64,
    compaction: Option<Compaction>,
    /// Segments to delete, oldest first; at most the segments on disk.
    deletions: VecDeque<u64>,
    stats: LogStats,
}

/// Counters of one core's log since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Groups made durable (one write and one fdatasync each).
    pub writes: u64,
    /// Records made durable.
    pub records: u64,
    /// Bytes written, padding included.
    pub bytes: u64,
    /// Writes that failed (each retried).
    pub failures: u64,
    /// Compactions finished, and segments they deleted.
    pub compactions: u64,
    pub segments_deleted: u64,
}

impl ShardLog {
    /// A log whose next write goes to `first_segment` (earlier segments hold the recovered state).
    pub fn new(durability: Durability, segment_bytes_max: u64, first_segment: u64) -> Self {
        Self {
            writer: LogWriter::new(first_segment, 0, 0, segment_bytes_max),
            durability,
            held: VecDeque::new(),
            failed: false,
            segments: BTreeMap::new(),
            log_bytes: 0,
            live_bytes: 0,
            segment_bytes_max,
            compaction: None,
            deletions: VecDeque::new(),
            stats: LogStats::default(),
        }
    }

    /// Recovery wrote segment 0 with `log_id`, its last record `lsn`: the writer goes on in that log (before any
    /// append), so replay can tell this writer's groups after damage (`wal::replay`).
    pub fn continue_log(&mut self, log_id: u64, lsn: u64) {
        assert_eq!(self.writer.appended_lsn(), 0, "recovery comes before any record");
        let segment = self.writer.segment();
        self.writer = LogWriter::with_log_id(segment, 0, lsn, self.segment_bytes_max, log_id);
    }

    pub fn stats(&self) -> LogStats {
        self.stats
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// A segment written before this process started (by recovery) holds `bytes`.
    pub fn note_segment(&mut self, segment: u64, bytes: u64) {
        *self.segments.entry(segment).or_default() += bytes;
        self.log_bytes += bytes;
    }

    /// An item recovered from the log (already in a segment) is queued again.
    pub fn note_recovered_item(&mut self, item: &Item) {
        self.live_bytes += item_record_bytes(item);
    }

    /// Appends the record of an item just queued; returns its sequence number.
    pub fn append_item(&mut self, record: &LogRecord) -> u64 {
        self.live_bytes += record.encoded_len() as u64;
        self.writer.append(record)
    }

    /// Appends that `user`'s `item` left the queue.
    pub fn append_removed(&mut self, user: UserId, item: &Item) -> u64 {
        self.live_bytes = self.live_bytes.saturating_sub(item_record_bytes(item));
        self.writer.append(&LogRecord::Removed { user, item_id: item.id() })
    }

    /// `message` answers a request whose record has sequence number `lsn`: returns it if it may go now,
    /// or holds it until that record is durable.
    pub fn answer_when_durable(&mut self, lsn: u64, to: ShardId, message: ShardMsg) -> Option<(ShardId, ShardMsg)> {
        if !self.durability.waits_for_sync() || lsn <= self.writer.durable_lsn() {
            return Some((to, message));
        }
        debug_assert!(self.held.back().is_none_or(|&(last, _, _)| last <= lsn), "held in sequence order");
        self.held.push_back((lsn, to, message));
        None
    }

    /// The next group to write, if none is in flight.
    pub fn poll_write(&mut self) -> Option<PendingWrite> {
        let write = self.writer.poll_write()?;
        self.stats.bytes += write.bytes.len() as u64;
        *self.segments.entry(write.segment).or_default() += write.bytes.len() as u64;
        self.log_bytes += write.bytes.len() as u64;
        Some(write)
    }

    /// The write up to `lsn` is durable: moves the answers it releases into `released`.
    pub fn handle_write_done(&mut self, lsn: u64, released: &mut Vec<(ShardId, ShardMsg)>) {
        self.stats.writes += 1;
        self.stats.records += lsn - self.writer.durable_lsn();
        self.writer.handle_write_done(lsn);
        self.failed = false;
        while let Some(&(held_lsn, _, _)) = self.held.front() {
            if held_lsn > lsn {
                break;
            }
            let (_, to, message) = self.held.pop_front().expect("front exists");
            released.push((to, message));
        }
        if let Some(compaction) = self.compaction
            && lsn >= compaction.lsn
        {
            self.compaction = None;
            self.stats.compactions += 1;
            let kept = self.segments.split_off(&compaction.first_kept_segment);
            let reclaimed = std::mem::replace(&mut self.segments, kept);
            for (segment, bytes) in reclaimed {
                self.log_bytes -= bytes;
                self.deletions.push_back(segment);
                self.stats.segments_deleted += 1;
            }
        }
    }

    /// The write in flight failed; the runtime retries it. New messages are refused meanwhile.
    pub fn handle_write_failed(&mut self) {
        self.stats.failures += 1;
        self.failed = true;
    }

    /// Whether the last write failed and no write has succeeded since.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether the log holds enough reclaimable bytes that a compaction should start.
    pub fn wants_compaction(&self) -> bool {
        self.compaction.is_none()
            && !self.failed
            && self.log_bytes > self.segment_bytes_max.max(self.live_bytes.saturating_mul(2))
    }

    /// Starts a compaction: a new segment with the sequence floor and every queued item, after which all
    /// earlier segments can go. `items` must list every queued item, each user's in queue order.
    pub fn compact<'a>(&mut self, item_seq_next: u64, items: impl Iterator<Item = (UserId, &'a Item)>) {
        assert!(self.compaction.is_none(), "one compaction at a time");
        let first_kept_segment = self.writer.rotate();
        self.writer.append(&LogRecord::Sequence { item_seq_next });
        for (user, item) in items {
            self.writer.append(&item_record(user, item));
        }
        self.compaction = Some(Compaction { lsn: self.writer.appended_lsn(), first_kept_segment });
    }

    /// The next segment that may be deleted now, oldest first.
    pub fn next_deletion(&mut self) -> Option<u64> {
        self.deletions.pop_front()
    }

    /// Whether records wait for a write.
    pub fn has_pending(&self) -> bool {
        self.writer.pending_bytes() > 0
    }

    /// Nothing to write and nothing held, or the disk refuses writes (shutdown cannot wait for it).
    pub fn is_idle(&self) -> bool {
        self.failed || (!self.has_pending() && !self.writer.is_writing() && self.held.is_empty())
    }

    /// Bytes in segments on disk, and bytes the queued items' records take.
    pub fn bytes(&self) -> (u64, u64) {
        (self.log_bytes, self.live_bytes)
    }
}

#[cfg(test)]
mod tests {
    use wire::RejectCode;

    use super::*;
    use crate::shard::ConnId;

    fn refused(n: u64) -> ShardMsg {
        ShardMsg::Refused {
            sender: n,
            client_msg_id: n,
            origin: ConnId { index: 0, generation: 0 },
            code: RejectCode::BodyInvalid,
        }
    }

    fn message(id: u64, len: usize) -> Item {
        Item::Message { id, from: 1, client_msg_id: id, time_us: 0, body: vec![0; len].into() }
    }

    #[test]
    fn answers_wait_for_their_record_under_sync_only() {
        let mut log = ShardLog::new(Durability::Sync, 1 << 20, 1);
        let first = log.append_item(&item_record(9, &message(1, 3)));
        assert_eq!(log.answer_when_durable(first, ShardId(1), refused(1)), None);
        let write = log.poll_write().expect("a write");
        let second = log.append_item(&item_record(9, &message(2, 3)));
        assert_eq!(log.answer_when_durable(second, ShardId(1), refused(2)), None);
        let mut released = Vec::new();
        log.handle_write_done(write.lsn, &mut released);
        assert_eq!(released, vec![(ShardId(1), refused(1))], "the second record is not durable yet");
        let write = log.poll_write().expect("the next group");
        log.handle_write_done(write.lsn, &mut released);
        assert_eq!(released.len(), 2);
        assert!(log.is_idle());

        let mut log = ShardLog::new(Durability::Async { flush_interval: Duration::from_millis(5) }, 1 << 20, 1);
        let lsn = log.append_item(&item_record(9, &message(1, 3)));
        assert!(log.answer_when_durable(lsn, ShardId(0), refused(1)).is_some(), "async answers at once");
    }

    #[test]
    fn a_failed_write_is_reported_until_a_write_succeeds() {
        let mut log = ShardLog::new(Durability::Sync, 1 << 20, 1);
        log.append_item(&item_record(9, &message(1, 3)));
        let write = log.poll_write().expect("a write");
        log.handle_write_failed();
        assert!(log.is_failed());
        assert!(!log.wants_compaction());
        assert!(log.is_idle(), "shutdown does not wait for a failing disk");
        assert_eq!(log.poll_write(), None, "the runtime retries the write in flight");
        log.handle_write_done(write.lsn, &mut Vec::new());
        assert!(!log.is_failed());
    }

    #[test]
    fn compaction_reclaims_the_segments_before_its_snapshot_once_durable() {
        let mut log = ShardLog::new(Durability::Sync, 4096, 1);
        log.note_segment(0, 4096);
        let items: Vec<Item> = (1..=3).map(|id| message(id, 3000)).collect();
        let mut released = Vec::new();
        for item in &items {
            log.append_item(&item_record(9, item));
            let write = log.poll_write().expect("write");
            log.handle_write_done(write.lsn, &mut released);
        }
        for item in &items[..2] {
            log.append_removed(9, item);
        }
        assert!(log.wants_compaction(), "{:?}", log.bytes());
        log.compact(4, items[2..].iter().map(|item| (9, item)));
        let snapshot = log.poll_write().expect("the removals and the snapshot");
        assert_eq!(snapshot.segment, 4, "a fresh segment after 1, 2 and 3");
        assert_eq!(log.next_deletion(), None, "nothing goes before the snapshot is durable");
        log.handle_write_done(snapshot.lsn, &mut released);
        let deleted: Vec<u64> = std::iter::from_fn(|| log.next_deletion()).collect();
        assert_eq!(deleted, vec![0, 1, 2, 3]);
        assert_eq!(log.bytes().0, snapshot.bytes.len() as u64);
        assert!(!log.wants_compaction());
    }
}
