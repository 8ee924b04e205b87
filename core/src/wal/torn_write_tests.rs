//! The durability rule (docs/ARCHITECTURE.md, "Durability") checked over what a crash can leave of the log's
//! last write, and what a disk can do to an earlier one: every page (exhaustively, for writes of up to four
//! pages) or every 512-byte sector (seeded, randomized) persisted, never landed (zeros, or past the end of the
//! file) or garbage, in any combination (so in any order of landing). Checked on the replay:
//! - every record of every completed write comes back, in order;
//! - of the torn last write, only a prefix: the records wholly before its first changed byte, none after a hole;
//! - damage to an earlier, completed write loses only the records it touched: every later write is kept.

use super::group::GROUP_HEADER_BYTES;
use super::record::{LogRecord, RECORD_HEADER_BYTES};
use super::replay::{LogReader, ReplayEnd};
use super::writer::{LogWriter, PAGE_BYTES};

const SECTOR_BYTES: usize = 512;

/// SplitMix64, as the simulator's: seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// One write of the log: where it starts, its bytes, and its records with where each ends (from the write's start).
struct Write {
    offset: usize,
    bytes: Vec<u8>,
    records: Vec<(LogRecord, usize)>,
}

/// Segment 0 as recovery writes it (one group), then writes of random groups to segment 1 by the same log (bodies
/// of 0..3000 bytes, so records straddle pages and groups end anywhere in a page).
fn writes(rng: &mut Rng, count: usize) -> (Vec<u8>, Vec<Write>) {
    let mut writer = LogWriter::with_log_id(0, 0, 0, 1 << 40, rng.next_u64());
    writer.append(&LogRecord::Sequence { item_seq_next: 1 });
    let first_segment = writer.poll_write().expect("segment 0");
    writer.handle_write_done(first_segment.lsn);
    writer.rotate();
    let mut out = Vec::new();
    let mut item_id = 0;
    for _ in 0..count {
        let mut records = Vec::new();
        let mut end = GROUP_HEADER_BYTES;
        for _ in 0..1 + rng.below(6) {
            item_id += 1;
            // One record in three ends on a page boundary, so that the next starts a page: a reader that resumed
            // after a hole would find it.
            let empty_message = RECORD_HEADER_BYTES + 1 + 40;
            let to_page_end = (end + empty_message).next_multiple_of(PAGE_BYTES) - (end + empty_message);
            let body_len = if rng.below(3) == 0 && to_page_end < 3000 { to_page_end } else { rng.below(3000) };
            let body = vec![(item_id % 251) as u8 + 1; body_len];
            let record = LogRecord::Message {
                item_id,
                to: 7,
                sender: 9,
                client_msg_id: item_id,
                time_us: item_id,
                body: body.into(),
            };
            writer.append(&record);
            end += record.encoded_len();
            records.push((record, end));
        }
        let write = writer.poll_write().expect("a group");
        writer.handle_write_done(write.lsn);
        assert_eq!(write.segment, 1);
        out.push(Write { offset: write.offset as usize, bytes: write.bytes, records });
    }
    (first_segment.bytes, out)
}

/// What became of one unit (page or sector) of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Landed,
    /// Never landed: the file reads zeros there.
    Zeroed,
    /// Garbage landed instead.
    Garbage,
}

/// The disk image: every write whole, then `fates` applied to the units of write `damaged`. Trailing units that
/// never landed in the last write may be absent (the file was not extended): `shorten`.
fn image(writes: &[Write], damaged: usize, unit: usize, fates: &[Fate], rng: &mut Rng, shorten: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for write in writes {
        assert_eq!(write.offset, bytes.len());
        bytes.extend_from_slice(&write.bytes);
    }
    let start = writes[damaged].offset;
    for (index, fate) in fates.iter().enumerate() {
        let range = start + index * unit..start + (index + 1) * unit;
        match fate {
            Fate::Landed => {}
            Fate::Zeroed => bytes[range].fill(0),
            Fate::Garbage => {
                for byte in &mut bytes[range] {
                    // Never the byte that was meant: xor with a non-zero value.
                    *byte ^= (rng.below(255) + 1) as u8;
                }
            }
        }
    }
    if shorten && damaged + 1 == writes.len() {
        let kept = fates.iter().rposition(|&fate| fate != Fate::Zeroed).map_or(0, |last| last + 1);
        bytes.truncate(start + kept * unit);
    }
    bytes
}

/// The records a replay must return: all of every write but `damaged`; of `damaged`, those wholly before its first
/// changed byte (none if the header changed); `bytes` is the image.
fn expected(writes: &[Write], damaged: usize, bytes: &[u8]) -> Vec<LogRecord> {
    let write = &writes[damaged];
    let end = write.offset + write.bytes.len();
    let first_changed = (write.offset..end)
        .find(|&at| bytes.get(at) != Some(&write.bytes[at - write.offset]))
        .map_or(write.bytes.len(), |at| at - write.offset);
    let mut out = Vec::new();
    for (index, write) in writes.iter().enumerate() {
        if index != damaged {
            out.extend(write.records.iter().map(|(record, _)| record.clone()));
        } else if first_changed >= GROUP_HEADER_BYTES {
            out.extend(write.records.iter().take_while(|(_, end)| *end <= first_changed).map(|(r, _)| r.clone()));
        }
    }
    out
}

fn check(first_segment: &[u8], writes: &[Write], damaged: usize, bytes: &[u8], what: &str) {
    let mut reader = LogReader::new(1 << 20);
    assert_eq!(reader.read_segment(first_segment, false).records, vec![LogRecord::Sequence { item_seq_next: 1 }]);
    let replayed = reader.read_segment(bytes, true);
    assert_eq!(replayed.records, expected(writes, damaged, bytes), "{what}");
    if damaged + 1 < writes.len() {
        assert!(replayed.truncate_to().is_none(), "{what}: damage before a later write is no tail");
    } else if let Some(offset) = replayed.truncate_to() {
        assert!(offset as usize >= writes[damaged].offset, "{what}: truncated before the torn write");
    }
    if let ReplayEnd::Damaged { .. } = replayed.end {
        panic!("{what}: the last segment is never 'damaged before its end'");
    }
}

#[test]
fn every_page_subset_of_the_last_write_landed_zeroed_or_garbage() {
    let mut cases = 0;
    for seed in 0..48 {
        let mut rng = Rng(seed);
        let (first_segment, writes) = writes(&mut rng, 4);
        let last = writes.len() - 1;
        let pages = writes[last].bytes.len() / PAGE_BYTES;
        if pages > 4 {
            continue;
        }
        for combination in 0..3usize.pow(pages as u32) {
            let fates: Vec<Fate> = (0..pages)
                .map(|page| [Fate::Landed, Fate::Zeroed, Fate::Garbage][combination / 3usize.pow(page as u32) % 3])
                .collect();
            for shorten in [false, true] {
                let bytes = image(&writes, last, PAGE_BYTES, &fates, &mut rng, shorten);
                check(
                    &first_segment,
                    &writes,
                    last,
                    &bytes,
                    &format!("seed {seed}, pages {fates:?}, shortened {shorten}"),
                );
                cases += 1;
            }
        }
    }
    assert!(cases > 600, "only {cases} cases");
}

#[test]
fn random_sectors_of_the_last_write_landed_zeroed_or_garbage() {
    for seed in 0..300 {
        let mut rng = Rng(1000 + seed);
        let (first_segment, writes) = writes(&mut rng, 3);
        let last = writes.len() - 1;
        let sectors = writes[last].bytes.len() / SECTOR_BYTES;
        let fates: Vec<Fate> = (0..sectors)
            .map(|_| match rng.below(10) {
                0..=5 => Fate::Landed,
                6..=8 => Fate::Zeroed,
                _ => Fate::Garbage,
            })
            .collect();
        let shorten = rng.below(2) == 0;
        let bytes = image(&writes, last, SECTOR_BYTES, &fates, &mut rng, shorten);
        check(&first_segment, &writes, last, &bytes, &format!("seed {seed}, sectors {fates:?}"));
    }
}

#[test]
fn damage_to_an_earlier_completed_write_loses_only_what_it_touched() {
    for seed in 0..300 {
        let mut rng = Rng(5000 + seed);
        let (first_segment, writes) = writes(&mut rng, 5);
        let damaged = rng.below(writes.len() - 1);
        let sectors = writes[damaged].bytes.len() / SECTOR_BYTES;
        let mut fates = vec![Fate::Landed; sectors];
        for _ in 0..1 + rng.below(3) {
            fates[rng.below(sectors)] = if rng.below(2) == 0 { Fate::Zeroed } else { Fate::Garbage };
        }
        let bytes = image(&writes, damaged, SECTOR_BYTES, &fates, &mut rng, false);
        check(&first_segment, &writes, damaged, &bytes, &format!("seed {seed}, write {damaged}, sectors {fates:?}"));
    }
}
