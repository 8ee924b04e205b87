//! Reading a core's log back after a restart, sans-IO: segment bytes in, the records to apply (in log order)
//! and what to do about damage out. The runtime reads the files and truncates what it is told; the simulator
//! runs this same code over its simulated disk.
//!
//! The rule (docs/ARCHITECTURE.md, "Durability"): recovery never discards a record that was acknowledged.
//! One write is in flight per core and the next starts only after it is durable, so only the log's last write
//! can be torn by a crash, its pages landing in any subset and order. Hence:
//! - damage followed by a later group of the same writer (a valid group header with the same log id and a
//!   later sequence number) is not a tail: that write started, so the damaged one had completed and was
//!   acknowledged. Its valid records before the damage are kept, the
//!   damaged bytes are skipped to that later group, the loss is reported, and nothing after it is dropped;
//! - damage with no group after it in the segment is the torn last write when this is the log's last
//!   segment (never acknowledged: its valid prefix is kept, nothing after its first hole, and the runtime
//!   truncates there); in an earlier segment (a later segment exists, so the write completed) it is reported as
//!   lost acknowledged data, and the later segments are read on.
//!
//! Segments written before group headers (`SegmentFormat::Legacy`, by an older binary: the newest epoch may be
//! one) are read record by record: zero padding, however short (less than a record header at a page's end),
//! skips to the next page, and the first torn or corrupt record ends the segment.

use super::group::{GROUP_HEADER_BYTES, GroupHeader};
use super::record::{LogRecord, RECORD_HEADER_BYTES, RecordError, decode_record};
use super::recover::Recovery;
use super::writer::PAGE_BYTES;

/// How a segment is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentFormat {
    /// Every write starts with a group header.
    Grouped,
    /// Written by a binary from before group headers: records and padding only.
    Legacy,
}

/// How a segment's data ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Clean end: zeros (or the end of the file) where the next write would be.
    Clean,
    /// The log's last write, cut by the crash and never acknowledged, is damaged from `offset` on: the records
    /// before it are kept, the segment is truncated there.
    Torn { offset: u64, error: RecordError },
    /// A segment that is not the log's last is damaged from `offset` on, with no group after it: the
    /// write completed (a later segment exists), so acknowledged records after `offset` are lost. Not truncated.
    Damaged { offset: u64, error: RecordError },
}

/// Damage inside the log that a later group of the same writer follows: skipped, never a tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDamage {
    /// Where the damage starts (after the damaged group's valid records).
    pub offset: u64,
    /// Where the next group starts: reading resumed there.
    pub resumed_at: u64,
    pub error: RecordError,
    /// Records lost between the last one kept and the resumed group (by sequence number).
    pub records_lost: u64,
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedSegment {
    pub format: SegmentFormat,
    pub records: Vec<LogRecord>,
    pub skipped: Vec<SkippedDamage>,
    pub end: ReplayEnd,
}

impl ReplayEnd {
    /// Where the runtime truncates the segment: at a torn last write, only.
    pub fn truncate_to(&self) -> Option<u64> {
        match *self {
            Self::Torn { offset, .. } => Some(offset),
            Self::Clean | Self::Damaged { .. } => None,
        }
    }
}

impl ReplayedSegment {
    /// Where the runtime truncates the segment: at a torn last write, only.
    pub fn truncate_to(&self) -> Option<u64> {
        self.end.truncate_to()
    }
}

/// `ReplayedSegment` once its records went into a `Recovery`: what the runtime logs and truncates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOutcome {
    pub format: SegmentFormat,
    /// Records applied.
    pub records: usize,
    pub skipped: Vec<SkippedDamage>,
    pub end: ReplayEnd,
}

impl SegmentOutcome {
    /// Where the runtime truncates the segment: at a torn last write, only.
    pub fn truncate_to(&self) -> Option<u64> {
        self.end.truncate_to()
    }
}

/// The last whole group read: a group found after damage must be this writer's, and later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trail {
    log_id: u64,
    next_lsn: u64,
}

/// Reads one core's segments, oldest first.
#[derive(Debug)]
pub struct LogReader {
    record_size_max: usize,
    trail: Option<Trail>,
}

/// One group read from its first byte.
enum GroupRead {
    Whole {
        header: GroupHeader,
        records: Vec<LogRecord>,
    },
    /// Not whole: `records` decoded before the damage, which starts `kept_bytes` after the group's start.
    Broken {
        header: Option<GroupHeader>,
        records: Vec<LogRecord>,
        kept_bytes: usize,
        error: RecordError,
    },
}

impl LogReader {
    pub fn new(record_size_max: usize) -> Self {
        Self { record_size_max, trail: None }
    }

    /// Reads the next segment of the log; `last_segment` says whether it is the newest (the only one a crash can
    /// have torn).
    pub fn read_segment(&mut self, bytes: &[u8], last_segment: bool) -> ReplayedSegment {
        if self.is_grouped(bytes) {
            self.read_grouped(bytes, last_segment)
        } else {
            self.trail = None;
            read_legacy(bytes, self.record_size_max, last_segment)
        }
    }

    /// `read_segment`, its records applied to `recovery` in order.
    pub fn recover_segment(&mut self, bytes: &[u8], last_segment: bool, recovery: &mut Recovery) -> SegmentOutcome {
        let replayed = self.read_segment(bytes, last_segment);
        let records = replayed.records.len();
        for record in replayed.records {
            recovery.apply(record);
        }
        SegmentOutcome { format: replayed.format, records, skipped: replayed.skipped, end: replayed.end }
    }

    /// A segment is grouped if it starts with a group header, or holds one of the writer read so far (its first
    /// group damaged).
    fn is_grouped(&self, bytes: &[u8]) -> bool {
        GroupHeader::decode(bytes).is_ok() || self.trail.is_some_and(|trail| next_group(bytes, 0, trail).is_some())
    }

    fn read_grouped(&mut self, bytes: &[u8], last_segment: bool) -> ReplayedSegment {
        let mut out = ReplayedSegment {
            format: SegmentFormat::Grouped,
            records: Vec::new(),
            skipped: Vec::new(),
            end: ReplayEnd::Clean,
        };
        let mut at = 0usize;
        while at < bytes.len() {
            match self.read_group(&bytes[at..]) {
                GroupRead::Whole { header, records } => {
                    out.records.extend(records);
                    self.trail = Some(Trail { log_id: header.log_id, next_lsn: header.next_lsn() });
                    at += header.data_bytes().next_multiple_of(PAGE_BYTES);
                }
                GroupRead::Broken { header, records, kept_bytes, error } => {
                    let damage_at = at + kept_bytes;
                    let kept = records.len() as u64;
                    out.records.extend(records);
                    // Where a later group of the same writer must start its sequence numbers.
                    let expected = match header {
                        Some(header) => Some(Trail { log_id: header.log_id, next_lsn: header.next_lsn() }),
                        None => self.trail,
                    };
                    let resume_lsn = match header {
                        Some(header) => header.first_lsn.saturating_add(kept),
                        None => self.trail.map_or(0, |trail| trail.next_lsn),
                    };
                    let next = expected.and_then(|expected| next_group(bytes, at + PAGE_BYTES, expected));
                    if let Some((next_at, next_header)) = next {
                        out.skipped.push(SkippedDamage {
                            offset: damage_at as u64,
                            resumed_at: next_at as u64,
                            error,
                            records_lost: next_header.first_lsn.saturating_sub(resume_lsn),
                        });
                        at = next_at;
                        continue;
                    }
                    let nothing_here = header.is_none() && bytes[at..].iter().all(|&byte| byte == 0);
                    out.end = if nothing_here {
                        ReplayEnd::Clean
                    } else if last_segment {
                        ReplayEnd::Torn { offset: damage_at as u64, error }
                    } else {
                        ReplayEnd::Damaged { offset: damage_at as u64, error }
                    };
                    break;
                }
            }
        }
        out
    }

    /// The group starting at `bytes[0]`.
    fn read_group(&self, bytes: &[u8]) -> GroupRead {
        let header = match GroupHeader::decode(bytes) {
            Ok(header) => header,
            Err(error) => return GroupRead::Broken { header: None, records: Vec::new(), kept_bytes: 0, error },
        };
        let whole = header.check_records(bytes);
        let end = header.data_bytes().min(bytes.len());
        let mut records = Vec::new();
        let mut at = GROUP_HEADER_BYTES;
        let mut record_error = None;
        while at < end {
            match decode_record(&bytes[at..end], self.record_size_max) {
                Ok(Some((record, len))) => {
                    records.push(record);
                    at += len;
                }
                // Zeros inside a group: a hole (a page that never landed).
                Ok(None) => break,
                Err(error) => {
                    record_error = Some(error);
                    break;
                }
            }
        }
        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
        match whole {
            Ok(()) if record_error.is_none() && at == end && count == header.records => {
                GroupRead::Whole { header, records }
            }
            // The records' checksum matched but they are not the records the header counts: a writer's bug or a
            // collision; keep what decoded, as for any damage.
            Ok(()) => GroupRead::Broken {
                header: Some(header),
                records,
                kept_bytes: at,
                error: record_error.unwrap_or(RecordError::GroupRecords { expected: header.records, found: count }),
            },
            Err(error) => GroupRead::Broken {
                header: Some(header),
                records,
                kept_bytes: at,
                error: record_error.unwrap_or(error),
            },
        }
    }
}

/// The first group at a page boundary from `from` on that `expected`'s writer wrote, at or after its next
/// sequence number. Its header is enough: that write started, so every write before it had completed (its
/// records may still be torn, if it is the last write; reading it tells).
fn next_group(bytes: &[u8], from: usize, expected: Trail) -> Option<(usize, GroupHeader)> {
    (from.next_multiple_of(PAGE_BYTES)..bytes.len()).step_by(PAGE_BYTES).find_map(|at| {
        let header = GroupHeader::decode(&bytes[at..]).ok()?;
        (header.log_id == expected.log_id && header.first_lsn >= expected.next_lsn).then_some((at, header))
    })
}

/// Reads every valid record of one segment's bytes, as the log's last segment (what a crash can tear).
pub fn replay_segment(bytes: &[u8], record_size_max: usize) -> ReplayedSegment {
    LogReader::new(record_size_max).read_segment(bytes, true)
}

/// A segment without group headers: records in order; zero padding skips to the next page (each write ended
/// on a page boundary); a page that starts with zeros ends the data; the first torn or corrupt record ends it
/// too.
fn read_legacy(bytes: &[u8], record_size_max: usize, last_segment: bool) -> ReplayedSegment {
    let mut records = Vec::new();
    let mut at = 0usize;
    let end = loop {
        if at >= bytes.len() {
            break ReplayEnd::Clean;
        }
        let decoded = match decode_record(&bytes[at..], record_size_max) {
            // Fewer than a header's bytes left in the page, all zeros, and no record starting there: padding. (A
            // record may straddle the page boundary: then it decoded. Read as a header, the zeros and the next
            // page's first bytes make no valid record but for a CRC32C collision.)
            Err(_) if is_short_padding(&bytes[at..], at) => Ok(None),
            decoded => decoded,
        };
        match decoded {
            Ok(Some((record, len))) => {
                records.push(record);
                at += len;
            }
            Ok(None) => {
                // Padding to the end of this write's last page; data, if any, resumes on the next page.
                let next_page = (at + 1).next_multiple_of(PAGE_BYTES);
                if at.is_multiple_of(PAGE_BYTES) || next_page >= bytes.len() {
                    break ReplayEnd::Clean;
                }
                if bytes[at..next_page].iter().any(|&byte| byte != 0) {
                    break damaged(at, RecordError::TornHeader { available: next_page - at }, last_segment);
                }
                at = next_page;
            }
            Err(error) => break damaged(at, error, last_segment),
        }
    };
    ReplayedSegment { format: SegmentFormat::Legacy, records, skipped: Vec::new(), end }
}

fn damaged(at: usize, error: RecordError, last_segment: bool) -> ReplayEnd {
    if last_segment {
        ReplayEnd::Torn { offset: at as u64, error }
    } else {
        ReplayEnd::Damaged { offset: at as u64, error }
    }
}

/// Whether `rest`, the bytes from offset `at` on, starts with the zero padding of a write's last page that is
/// too short to hold a record header.
fn is_short_padding(rest: &[u8], at: usize) -> bool {
    let to_page_end = at.next_multiple_of(PAGE_BYTES) - at;
    to_page_end > 0 && to_page_end < RECORD_HEADER_BYTES && rest.iter().take(to_page_end).all(|&byte| byte == 0)
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_record;
    use super::super::writer::LogWriter;
    use super::*;

    const LOG_ID: u64 = 0x5EED;

    /// A segment as the writer lays it out, one write per group.
    pub(crate) fn segment_of(groups: &[Vec<LogRecord>]) -> Vec<u8> {
        let mut writer = LogWriter::with_log_id(0, 0, 0, 1 << 30, LOG_ID);
        let mut bytes = Vec::new();
        for group in groups {
            for record in group {
                writer.append(record);
            }
            let write = writer.poll_write().expect("write");
            assert_eq!(write.offset as usize, bytes.len());
            bytes.extend_from_slice(&write.bytes);
            writer.handle_write_done(write.lsn);
        }
        bytes
    }

    /// A segment as writers before group headers laid it out: records, zero padding to a page per group.
    fn legacy_segment_of(groups: &[Vec<LogRecord>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for group in groups {
            for record in group {
                encode_record(record, &mut bytes);
            }
            bytes.resize(bytes.len().next_multiple_of(PAGE_BYTES), 0);
        }
        bytes
    }

    fn removed(item_id: u64) -> LogRecord {
        LogRecord::Removed { user: 7, item_id }
    }

    fn message_of_len(item_id: u64, encoded_len: usize) -> LogRecord {
        let body = vec![0x4E; encoded_len - RECORD_HEADER_BYTES - 1 - 40];
        let record =
            LogRecord::Message { item_id, to: 7, sender: 9, client_msg_id: item_id, time_us: 1, body: body.into() };
        assert_eq!(record.encoded_len(), encoded_len);
        record
    }

    fn both_formats(groups: &[Vec<LogRecord>]) -> [(SegmentFormat, Vec<u8>); 2] {
        [(SegmentFormat::Grouped, segment_of(groups)), (SegmentFormat::Legacy, legacy_segment_of(groups))]
    }

    #[test]
    fn groups_read_back_in_order_across_padding() {
        let groups = vec![vec![removed(1), removed(2)], vec![removed(3)], (4..500).map(removed).collect()];
        for (format, bytes) in both_formats(&groups) {
            let replayed = replay_segment(&bytes, 1 << 20);
            assert_eq!((replayed.format, &replayed.end), (format, &ReplayEnd::Clean));
            assert_eq!(replayed.records, groups.concat());
        }
    }

    #[test]
    fn a_group_ending_less_than_a_header_before_a_page_boundary_is_followed_by_the_next_group() {
        // Issue 17: a group whose records end 1..7 bytes before a page boundary leaves padding shorter than a
        // record header; every later group must still be read, in logs written before group headers too.
        for short in 1..=2 * GROUP_HEADER_BYTES {
            for (format, header) in [(SegmentFormat::Grouped, GROUP_HEADER_BYTES), (SegmentFormat::Legacy, 0)] {
                let first = message_of_len(1, 2 * PAGE_BYTES - short - header - removed(100).encoded_len());
                let groups = vec![vec![removed(100), first], vec![message_of_len(2, 78)], vec![removed(3), removed(4)]];
                let bytes =
                    if format == SegmentFormat::Grouped { segment_of(&groups) } else { legacy_segment_of(&groups) };
                assert!(bytes[2 * PAGE_BYTES - short..2 * PAGE_BYTES].iter().all(|&byte| byte == 0));
                let replayed = replay_segment(&bytes, 1 << 20);
                assert_eq!(replayed.end, ReplayEnd::Clean, "{format:?}, {short} bytes of padding");
                assert_eq!(replayed.records, groups.concat(), "{format:?}, {short} bytes of padding");
            }
        }
    }

    #[test]
    fn a_record_straddling_a_page_boundary_with_zeros_before_it_is_a_record_not_padding() {
        // A record's length field may start with zero bytes (256 = 00 01 00 00): starting 1 or 2 bytes before a
        // page boundary, inside a group, it looks like short padding until it is decoded.
        for (before_boundary, len_field) in [(1, 256), (2, 1 << 16)] {
            for (format, header) in [(SegmentFormat::Grouped, GROUP_HEADER_BYTES), (SegmentFormat::Legacy, 0)] {
                let filler = message_of_len(1, PAGE_BYTES - before_boundary - header - removed(100).encoded_len());
                let straddling = message_of_len(2, RECORD_HEADER_BYTES + len_field);
                let groups = vec![vec![removed(100), filler, straddling, removed(5)], vec![removed(6)]];
                let bytes =
                    if format == SegmentFormat::Grouped { segment_of(&groups) } else { legacy_segment_of(&groups) };
                assert!(bytes[PAGE_BYTES - before_boundary..PAGE_BYTES].iter().all(|&byte| byte == 0));
                let replayed = replay_segment(&bytes, 1 << 20);
                assert_eq!(replayed.end, ReplayEnd::Clean);
                assert_eq!(
                    replayed.records,
                    groups.concat(),
                    "{format:?}, {before_boundary} bytes before the boundary"
                );
            }
        }
    }

    #[test]
    fn a_torn_last_write_keeps_a_prefix_and_is_truncated() {
        let groups = vec![vec![removed(1)], (2..400).map(removed).collect()];
        for (format, mut bytes) in both_formats(&groups) {
            // The second write reached the disk only partly: its tail is garbage.
            let torn_at = PAGE_BYTES + 1000;
            for byte in &mut bytes[torn_at..] {
                *byte = 0xAB;
            }
            let replayed = replay_segment(&bytes, 1 << 20);
            let Some(offset) = replayed.truncate_to() else { panic!("{format:?}: {:?}", replayed.end) };
            assert!(
                offset as usize <= torn_at && offset as usize > torn_at - 25,
                "{format:?}: at the first torn record"
            );
            assert_eq!(replayed.records[0], removed(1));
            assert!(replayed.records.len() < 400 && replayed.records.len() > 30, "{format:?}");
            assert_eq!(replayed.records, groups.concat()[..replayed.records.len()].to_vec(), "a prefix, in order");
            assert!(replayed.skipped.is_empty());
        }
    }

    #[test]
    fn damage_followed_by_a_later_group_is_skipped_not_a_tail() {
        let groups: Vec<Vec<LogRecord>> =
            (0..6u64).map(|group| (group * 300..group * 300 + 250).map(removed).collect()).collect();
        let clean = segment_of(&groups);
        let group_bytes = GROUP_HEADER_BYTES + 250 * removed(0).encoded_len();
        let stride = group_bytes.next_multiple_of(PAGE_BYTES);
        // A flipped bit in group 2's 10th record; group 3 zeroed whole; group 4's header garbage.
        let mut bytes = clean.clone();
        bytes[2 * stride + GROUP_HEADER_BYTES + 9 * 25 + 12] ^= 1;
        bytes[3 * stride..4 * stride].fill(0);
        bytes[4 * stride + 3] ^= 0xFF;
        for last_segment in [true, false] {
            let replayed = LogReader::new(1 << 20).read_segment(&bytes, last_segment);
            let mut expected = groups[0].clone();
            expected.extend_from_slice(&groups[1]);
            expected.extend_from_slice(&groups[2][..9]);
            expected.extend_from_slice(&groups[5]);
            assert_eq!(replayed.records, expected, "every record of every whole group, in order");
            assert_eq!(replayed.end, ReplayEnd::Clean, "not a tail");
            assert_eq!(replayed.truncate_to(), None);
            assert_eq!(replayed.skipped.len(), 1, "one damaged stretch, from group 2 to group 5");
            let skipped = &replayed.skipped[0];
            assert_eq!(skipped.offset as usize, 2 * stride + GROUP_HEADER_BYTES + 9 * 25);
            assert_eq!(skipped.resumed_at as usize, 5 * stride);
            assert_eq!(skipped.records_lost, 241 + 250 + 250);
            assert!(matches!(skipped.error, RecordError::Checksum { .. }));
        }
    }

    #[test]
    fn damage_at_the_end_of_an_earlier_segment_is_lost_data_not_a_torn_tail() {
        let first = segment_of(&[(1..100).map(removed).collect(), (100..200).map(removed).collect()]);
        let mut damaged = first.clone();
        damaged[PAGE_BYTES + 200] ^= 0x40;
        let mut reader = LogReader::new(1 << 20);
        let replayed = reader.read_segment(&damaged, false);
        assert!(matches!(replayed.end, ReplayEnd::Damaged { .. }), "{:?}", replayed.end);
        assert_eq!(replayed.truncate_to(), None, "not truncated: it held acknowledged records");
        assert_eq!(replayed.records.len(), 99 + (200 - GROUP_HEADER_BYTES) / 25);
        // The next segment, whose first group is damaged, is still read past it with the writer's log id.
        let mut writer = LogWriter::with_log_id(1, 0, 199, 1 << 30, LOG_ID);
        let mut second = Vec::new();
        for group in [200..210u64, 210..220] {
            for record in group.map(removed) {
                writer.append(&record);
            }
            let write = writer.poll_write().expect("write");
            second.extend_from_slice(&write.bytes);
            writer.handle_write_done(write.lsn);
        }
        second[5] ^= 0x01;
        let replayed = reader.read_segment(&second, true);
        assert_eq!(replayed.format, SegmentFormat::Grouped);
        assert_eq!(replayed.records, (210..220).map(removed).collect::<Vec<_>>());
        assert_eq!((replayed.skipped.len(), replayed.end), (1, ReplayEnd::Clean));
    }

    #[test]
    fn with_no_earlier_group_of_its_writer_damage_to_a_first_group_ends_the_log() {
        // The limit of the rule: a group found after damage is trusted only by the log id of a group read before
        // it. Segment 0 (recovery's, written and synced before the epoch is used) gives the core's log one.
        let groups = vec![vec![removed(1)], vec![removed(2)]];
        let mut bytes = segment_of(&groups);
        bytes[3] ^= 0x01;
        let replayed = replay_segment(&bytes, 1 << 20);
        assert_eq!((replayed.records.len(), replayed.truncate_to()), (0, Some(0)));
        let mut reader = LogReader::new(1 << 20);
        reader.read_segment(&segment_of(&[vec![removed(0)]]), false);
        assert_eq!(reader.read_segment(&bytes, true).records, vec![removed(2)], "with segment 0 read first");
    }

    #[test]
    fn a_forged_group_in_a_message_body_is_not_trusted() {
        // A client's body holds a whole group of a stranger's log id at a page boundary; the write that holds it
        // is torn at its first page. Replay must not resume at the forged group.
        let mut forged_writer = LogWriter::with_log_id(0, 0, 1_000, 1 << 30, 0xBAD);
        forged_writer.append(&removed(666));
        let forged = forged_writer.poll_write().expect("write").bytes;
        let mut body = vec![0u8; 2 * PAGE_BYTES];
        let start_in_body = PAGE_BYTES - (GROUP_HEADER_BYTES + RECORD_HEADER_BYTES + 1 + 40) % PAGE_BYTES;
        body[start_in_body..start_in_body + 100].copy_from_slice(&forged[..100]);
        let message =
            LogRecord::Message { item_id: 5, to: 7, sender: 9, client_msg_id: 1, time_us: 1, body: body.into() };
        let groups = vec![vec![removed(1)], vec![message]];
        let mut bytes = segment_of(&groups);
        assert_eq!(GroupHeader::decode(&bytes[2 * PAGE_BYTES..]).map(|header| header.log_id), Ok(0xBAD));
        bytes[PAGE_BYTES..2 * PAGE_BYTES].fill(0);
        let replayed = replay_segment(&bytes, 1 << 20);
        assert_eq!(replayed.records, vec![removed(1)]);
        assert_eq!(replayed.truncate_to(), Some(PAGE_BYTES as u64));
    }

    #[test]
    fn a_flipped_bit_in_a_legacy_segment_stops_replay_at_that_record() {
        let groups = vec![(1..50).map(removed).collect::<Vec<_>>()];
        let mut bytes = legacy_segment_of(&groups);
        bytes[25 * 10 + 12] ^= 1;
        let replayed = replay_segment(&bytes, 1 << 20);
        assert_eq!(replayed.records, groups.concat()[..10].to_vec());
        assert!(matches!(replayed.end, ReplayEnd::Torn { offset: 250, error: RecordError::Checksum { .. } }));
    }

    #[test]
    fn empty_and_all_zero_segments_are_clean() {
        assert_eq!(replay_segment(&[], 1 << 20).end, ReplayEnd::Clean);
        let zeros = vec![0; 3 * PAGE_BYTES];
        let replayed = replay_segment(&zeros, 1 << 20);
        assert_eq!((replayed.records.len(), replayed.end), (0, ReplayEnd::Clean));
        // Zeros after whole groups: the clean end of the data.
        let mut bytes = segment_of(&[vec![removed(1)]]);
        bytes.resize(4 * PAGE_BYTES, 0);
        assert_eq!(replay_segment(&bytes, 1 << 20).end, ReplayEnd::Clean);
    }
}
