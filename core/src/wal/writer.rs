//! Group commit. Records appended between two writes go out together in one page-aligned write (direct I/O
//! needs aligned offsets and lengths), and the sequence number of the last one tells the shard which
//! acknowledgements that write makes safe. One write is in flight at a time; records appended meanwhile
//! form the next group, so the batch grows with the load.
//!
//! Each write is one group: a group header (`wal::group`: the writer's log id, the first record's sequence
//! number, the count and bytes of the records and their CRC32C), the records, and zero padding to a page
//! boundary; the next write starts on the next page. So a reader knows where each group ends (the padding,
//! however short, is never read as a record) and whether it is whole; a page that holds durable records is
//! never written again, so a torn write can damage only records not yet acknowledged. Segments rotate once
//! they pass their size limit (a soft limit: a group is never split).

use super::group::{GROUP_HEADER_BYTES, GroupHeader};
use super::record::{LogRecord, encode_record};

/// Alignment and granularity of log writes.
pub const PAGE_BYTES: usize = 4096;

/// One write the runtime must make durable (write, then fdatasync) before calling `handle_write_done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    /// Segment number; a segment not written before starts empty.
    pub segment: u64,
    /// Offset in the segment, a multiple of `PAGE_BYTES`.
    pub offset: u64,
    /// Whole pages: the group header, the records and zero padding.
    pub bytes: Vec<u8>,
    /// Sequence number of the last record in `bytes`.
    pub lsn: u64,
}

/// The write side of one core's log.
#[derive(Debug)]
pub struct LogWriter {
    segment: u64,
    /// Where the next write starts in `segment`.
    offset: u64,
    segment_size_max: u64,
    /// Random, written in every group header: tells this writer's groups from bytes that only look like one.
    log_id: u64,
    /// Room for the next group's header, then the records appended since the last write.
    pending: Vec<u8>,
    pending_records: u32,
    appended_lsn: u64,
    pending_lsn: u64,
    durable_lsn: u64,
    in_flight: Option<u64>,
    /// The next write starts a new segment even if this one has room (compaction asked for it).
    rotate_requested: bool,
}

impl LogWriter {
    /// A writer continuing after `segment`/`offset` (from recovery), with `lsn` the last durable sequence.
    pub fn new(segment: u64, offset: u64, lsn: u64, segment_size_max: u64) -> Self {
        Self::with_log_id(segment, offset, lsn, segment_size_max, rand::random())
    }

    /// `new` with a chosen log id (tests and simulations that replay a seed exactly).
    pub fn with_log_id(segment: u64, offset: u64, lsn: u64, segment_size_max: u64, log_id: u64) -> Self {
        assert!(offset.is_multiple_of(PAGE_BYTES as u64), "writes start on a page boundary");
        assert!(segment_size_max >= PAGE_BYTES as u64);
        Self {
            segment,
            offset,
            segment_size_max,
            log_id,
            pending: vec![0; GROUP_HEADER_BYTES],
            pending_records: 0,
            appended_lsn: lsn,
            pending_lsn: lsn,
            durable_lsn: lsn,
            in_flight: None,
            rotate_requested: false,
        }
    }

    /// Adds a record to the next group; returns its sequence number.
    pub fn append(&mut self, record: &LogRecord) -> u64 {
        encode_record(record, &mut self.pending);
        self.pending_records = self.pending_records.checked_add(1).expect("a group holds far fewer records");
        self.appended_lsn += 1;
        self.pending_lsn = self.appended_lsn;
        self.appended_lsn
    }

    /// The next group to write, if none is in flight and any record waits.
    pub fn poll_write(&mut self) -> Option<PendingWrite> {
        if self.in_flight.is_some() || self.pending_records == 0 {
            return None;
        }
        if self.offset >= self.segment_size_max || (self.rotate_requested && self.offset > 0) {
            self.segment += 1;
            self.offset = 0;
        }
        self.rotate_requested = false;
        let mut bytes = std::mem::replace(&mut self.pending, vec![0; GROUP_HEADER_BYTES]);
        let records = std::mem::take(&mut self.pending_records);
        let first_lsn = self.pending_lsn + 1 - u64::from(records);
        let (header, record_bytes) = bytes.split_at_mut(GROUP_HEADER_BYTES);
        let header_bytes: &mut [u8; GROUP_HEADER_BYTES] = header.try_into().expect("split at the header's size");
        GroupHeader::of(self.log_id, first_lsn, records, record_bytes).encode(header_bytes);
        let padded = bytes.len().next_multiple_of(PAGE_BYTES);
        bytes.resize(padded, 0);
        let write = PendingWrite { segment: self.segment, offset: self.offset, bytes, lsn: self.pending_lsn };
        self.offset += padded as u64;
        self.in_flight = Some(self.pending_lsn);
        Some(write)
    }

    /// Makes the next write start a new segment, so that everything appended from now on (and everything
    /// still pending) lands in segments after the current one. Returns that next segment's number.
    pub fn rotate(&mut self) -> u64 {
        self.rotate_requested = true;
        if self.offset > 0 { self.segment + 1 } else { self.segment }
    }

    /// Whether a write is in flight.
    pub fn is_writing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The write up to `lsn` is durable.
    pub fn handle_write_done(&mut self, lsn: u64) {
        assert_eq!(self.in_flight, Some(lsn), "completions arrive for the write in flight");
        assert!(lsn >= self.durable_lsn, "sequence numbers only increase");
        self.in_flight = None;
        self.durable_lsn = lsn;
    }

    /// Every record up to this sequence number is durable.
    pub fn durable_lsn(&self) -> u64 {
        self.durable_lsn
    }

    /// The last sequence number handed out.
    pub fn appended_lsn(&self) -> u64 {
        self.appended_lsn
    }

    /// The segment the next write goes to (after rotation, if due).
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Bytes of records waiting for the next write.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len() - GROUP_HEADER_BYTES
    }

    /// The id this writer puts in its group headers.
    pub fn log_id(&self) -> u64 {
        self.log_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(item_id: u64) -> LogRecord {
        LogRecord::Removed { user: 1, item_id }
    }

    #[test]
    fn records_appended_during_a_write_form_the_next_group() {
        let mut writer = LogWriter::new(0, 0, 0, 1 << 20);
        assert_eq!(writer.poll_write(), None);
        assert_eq!(writer.append(&removed(1)), 1);
        assert_eq!(writer.append(&removed(2)), 2);
        let first = writer.poll_write().expect("a group");
        assert_eq!((first.segment, first.offset, first.bytes.len(), first.lsn), (0, 0, PAGE_BYTES, 2));
        let header = GroupHeader::decode(&first.bytes).expect("a write starts with its group header");
        assert_eq!((header.log_id, header.first_lsn, header.records), (writer.log_id(), 1, 2));
        assert_eq!(header.check_records(&first.bytes), Ok(()));
        assert_eq!(header.records_bytes as usize, 2 * removed(1).encoded_len());
        writer.append(&removed(3));
        assert_eq!(writer.poll_write(), None, "one write in flight at a time");
        assert_eq!(writer.durable_lsn(), 0);
        writer.handle_write_done(2);
        assert_eq!(writer.durable_lsn(), 2);
        let second = writer.poll_write().expect("the next group");
        assert_eq!((second.offset, second.lsn), (PAGE_BYTES as u64, 3), "never rewrites a durable page");
    }

    #[test]
    fn segments_rotate_past_their_size() {
        let mut writer = LogWriter::new(4, 0, 10, PAGE_BYTES as u64);
        writer.append(&removed(1));
        let write = writer.poll_write().expect("write");
        assert_eq!((write.segment, write.lsn), (4, 11));
        writer.handle_write_done(11);
        writer.append(&removed(2));
        let write = writer.poll_write().expect("write");
        assert_eq!((write.segment, write.offset), (5, 0));
    }

    #[test]
    fn rotate_moves_pending_and_later_records_to_a_new_segment() {
        let mut writer = LogWriter::new(2, 0, 0, 1 << 20);
        assert_eq!(writer.rotate(), 2, "an empty segment is reused");
        writer.append(&removed(1));
        let write = writer.poll_write().expect("write");
        assert_eq!((write.segment, write.offset), (2, 0));
        writer.append(&removed(2));
        assert_eq!(writer.rotate(), 3);
        writer.handle_write_done(1);
        let write = writer.poll_write().expect("write");
        assert_eq!((write.segment, write.offset, write.lsn), (3, 0, 2));
        writer.handle_write_done(2);
        writer.append(&removed(3));
        let write = writer.poll_write().expect("write");
        assert_eq!((write.segment, write.offset), (3, PAGE_BYTES as u64), "one rotation per request");
    }

    #[test]
    fn a_large_group_is_one_padded_write() {
        let mut writer = LogWriter::new(0, 0, 0, 1 << 30);
        for item_id in 0..1000 {
            writer.append(&removed(item_id));
        }
        let write = writer.poll_write().expect("write");
        assert_eq!(write.bytes.len() % PAGE_BYTES, 0);
        assert!(write.bytes.len() >= 1000 * 25);
        assert_eq!(write.lsn, 1000);
    }
}
