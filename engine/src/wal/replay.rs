//! Reading a segment back after a restart. Records are read in order; zero padding skips to the next page
//! (each write ends on a page boundary); a page that starts with zeros ends the data. The first torn or
//! corrupt record ends the segment too, and its offset is where the runtime truncates it (with a log line):
//! everything before it is intact, nothing after it was ever acknowledged.

use super::record::{LogRecord, RECORD_HEADER_BYTES, RecordError, decode_record};
use super::writer::PAGE_BYTES;

/// How a segment's data ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Clean end: zeros (or the end of the file) where the next record would be.
    Clean,
    /// A record at `offset` is torn or corrupt; the segment's valid data ends there.
    Damaged { offset: u64, error: RecordError },
}

/// What a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedSegment {
    pub records: Vec<LogRecord>,
    /// Where the next write may start: the page after the last valid record.
    pub next_write_offset: u64,
    pub end: ReplayEnd,
}

/// Reads every valid record of one segment's bytes.
pub fn replay_segment(bytes: &[u8], record_size_max: usize) -> ReplayedSegment {
    let mut records = Vec::new();
    let mut at = 0usize;
    let mut data_end = 0usize;
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
                data_end = at;
            }
            Ok(None) => {
                // Padding to the end of this write's last page; data, if any, resumes on the next page.
                let next_page = (at + 1).next_multiple_of(PAGE_BYTES);
                if at.is_multiple_of(PAGE_BYTES) || next_page >= bytes.len() {
                    break ReplayEnd::Clean;
                }
                if bytes[at..next_page].iter().any(|&byte| byte != 0) {
                    break ReplayEnd::Damaged {
                        offset: at as u64,
                        error: RecordError::TornHeader { available: next_page - at },
                    };
                }
                at = next_page;
            }
            Err(error) => break ReplayEnd::Damaged { offset: at as u64, error },
        }
    };
    ReplayedSegment { records, next_write_offset: data_end.next_multiple_of(PAGE_BYTES) as u64, end }
}

/// Whether `rest`, the bytes from offset `at` on, starts with the zero padding of a write's last page that is
/// too short to hold a record header.
fn is_short_padding(rest: &[u8], at: usize) -> bool {
    let to_page_end = at.next_multiple_of(PAGE_BYTES) - at;
    to_page_end < RECORD_HEADER_BYTES && rest.iter().take(to_page_end).all(|&byte| byte == 0)
}

#[cfg(test)]
mod tests {
    use super::super::writer::LogWriter;
    use super::*;

    fn segment_of(groups: &[Vec<LogRecord>]) -> Vec<u8> {
        let mut writer = LogWriter::new(0, 0, 0, 1 << 30);
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

    fn removed(item_id: u64) -> LogRecord {
        LogRecord::Removed { user: 7, item_id }
    }

    #[test]
    fn groups_read_back_in_order_across_padding() {
        let groups = vec![vec![removed(1), removed(2)], vec![removed(3)], (4..500).map(removed).collect()];
        let bytes = segment_of(&groups);
        let replayed = replay_segment(&bytes, 1 << 20);
        assert_eq!(replayed.end, ReplayEnd::Clean);
        assert_eq!(replayed.records, groups.concat());
        assert_eq!(replayed.next_write_offset as usize, bytes.len());
    }

    fn message_of_len(item_id: u64, encoded_len: usize) -> LogRecord {
        let body = vec![0x4E; encoded_len - RECORD_HEADER_BYTES - 1 - 40];
        let record =
            LogRecord::Message { item_id, to: 7, sender: 9, client_msg_id: item_id, time_us: 1, body: body.into() };
        assert_eq!(record.encoded_len(), encoded_len);
        record
    }

    #[test]
    fn a_group_ending_less_than_a_header_before_a_page_boundary_is_followed_by_the_next_group() {
        // Issue 17: a group whose records end 1..7 bytes before a page boundary leaves padding shorter than a
        // record header; every later group must still be read.
        for short in 1..=2 * RECORD_HEADER_BYTES {
            let first = message_of_len(1, 2 * PAGE_BYTES - short - removed(100).encoded_len());
            let groups = vec![vec![removed(100), first], vec![message_of_len(2, 78)], vec![removed(3), removed(4)]];
            let bytes = segment_of(&groups);
            let replayed = replay_segment(&bytes, 1 << 20);
            assert_eq!(replayed.end, ReplayEnd::Clean, "{short} bytes of padding");
            assert_eq!(replayed.records, groups.concat(), "{short} bytes of padding");
        }
    }

    #[test]
    fn a_record_straddling_a_page_boundary_with_zeros_before_it_is_a_record_not_padding() {
        // A record's length field may start with zero bytes (256 = 00 01 00 00): starting 1 or 2 bytes before a
        // page boundary, inside a group, it looks like short padding until it is decoded.
        for (before_boundary, len_field) in [(1, 256), (2, 1 << 16)] {
            let filler = message_of_len(1, PAGE_BYTES - before_boundary - removed(100).encoded_len());
            let straddling = message_of_len(2, RECORD_HEADER_BYTES + len_field);
            let groups = vec![vec![removed(100), filler, straddling, removed(5)], vec![removed(6)]];
            let bytes = segment_of(&groups);
            assert!(bytes[PAGE_BYTES - before_boundary..PAGE_BYTES].iter().all(|&byte| byte == 0));
            let replayed = replay_segment(&bytes, 1 << 20);
            assert_eq!(replayed.end, ReplayEnd::Clean);
            assert_eq!(replayed.records, groups.concat(), "{before_boundary} bytes before the boundary");
        }
    }

    #[test]
    fn a_torn_last_write_keeps_everything_before_it() {
        let groups = vec![vec![removed(1)], (2..400).map(removed).collect()];
        let mut bytes = segment_of(&groups);
        // The second write reached the disk only partly: its tail is garbage.
        let torn_at = PAGE_BYTES + 1000;
        for byte in &mut bytes[torn_at..] {
            *byte = 0xAB;
        }
        let replayed = replay_segment(&bytes, 1 << 20);
        assert!(matches!(replayed.end, ReplayEnd::Damaged { .. }));
        assert_eq!(replayed.records[0], removed(1));
        assert!(replayed.records.len() < 400);
        assert_eq!(replayed.records, groups.concat()[..replayed.records.len()].to_vec(), "a prefix, in order");
        assert_eq!(replayed.next_write_offset % PAGE_BYTES as u64, 0);
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_that_record() {
        let groups = vec![(1..50).map(removed).collect::<Vec<_>>()];
        let mut bytes = segment_of(&groups);
        bytes[25 * 10 + 12] ^= 1;
        let replayed = replay_segment(&bytes, 1 << 20);
        assert_eq!(replayed.records, groups.concat()[..10].to_vec());
        assert!(matches!(replayed.end, ReplayEnd::Damaged { offset: 250, error: RecordError::Checksum { .. } }));
    }

    #[test]
    fn empty_and_all_zero_segments_are_clean() {
        assert_eq!(replay_segment(&[], 1 << 20).end, ReplayEnd::Clean);
        let zeros = vec![0; 3 * PAGE_BYTES];
        let replayed = replay_segment(&zeros, 1 << 20);
        assert_eq!((replayed.records.len(), replayed.next_write_offset, replayed.end), (0, 0, ReplayEnd::Clean));
    }
}
