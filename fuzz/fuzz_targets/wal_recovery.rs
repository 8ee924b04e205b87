//! Fuzzes the log's read side the way an engine start meets it: `wal::LogReader` over a core's segment bytes,
//! `Recovery` over the records it accepted, then each recovered core loaded into a `Shard`.
//!
//! The first input byte picks the mode and the new core count:
//! - raw: the rest is one segment as it is (legacy or grouped, whatever the bytes look like);
//! - legacy: the rest as records `[payload length byte][kind byte][payload]…`, each given its length and
//!   checksum by the target and laid out as a binary before group headers wrote them (random bytes almost never
//!   carry a valid CRC32C, so this reaches every record layout and recovery rule with believed contents);
//! - grouped: the rest describes groups of records, written by the engine's `LogWriter` after a segment 0 as
//!   recovery writes it, then damage to one group (a range of bytes zeroed, flipped, or cut off the file's end),
//!   as a crash (the last group) or a bad disk (an earlier one) leaves it.
//!
//! Checked: nothing panics, whatever the bytes say; every accepted record re-encodes to bytes that decode to it
//! (the layout is canonical); recovery never hands out more items than there were records. In grouped mode, the
//! durability rule (docs/ARCHITECTURE.md, "Durability"): the records read are the written ones in order, less
//! some; every record of every group before the damaged one is read; every record of every group after it is
//! read (damage followed by a later group is no tail); a damaged last group gives a prefix only.

#![no_main]

use ringline_core::home::ShardId;
use ringline_core::limits::LOG_RECORD_BYTES_MAX;
use ringline_core::shard::Shard;
use ringline_core::wal::{LogReader, LogRecord, LogWriter, PAGE_BYTES, Recovery, encode_record, replay_segment};
use libfuzzer_sys::fuzz_target;

#[path = "common/shard_config.rs"]
mod shard_config;
use shard_config::shard_config;

/// The recovery clock: "now" for the SEND dedup window.
const NOW_WALL_US: u64 = 1_700_000_000_000_000;
const DEDUP_WINDOW_US: u64 = 600_000_000;
const LOG_ID: u64 = 0x0123_4567_89AB_CDEF;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cores = u16::from(mode >> 2 & 3) + 1;
    let records = match mode & 3 {
        0 => replay_segment(rest, LOG_RECORD_BYTES_MAX).records,
        1 => replay_segment(&checksummed_records(rest), LOG_RECORD_BYTES_MAX).records,
        _ => grouped(rest),
    };
    for record in &records {
        let mut encoded = Vec::new();
        let len = encode_record(record, &mut encoded);
        assert_eq!(len, record.encoded_len());
        let again = replay_segment(&encoded, LOG_RECORD_BYTES_MAX).records;
        assert_eq!(again.as_slice(), std::slice::from_ref(record), "record {record:?} does not round-trip");
    }

    let count = records.len();
    let mut recovery = Recovery::new();
    for record in records {
        recovery.apply(record);
    }
    let Ok(per_core) = recovery.finish(cores, NOW_WALL_US, DEDUP_WINDOW_US) else {
        return;
    };
    assert_eq!(per_core.len(), usize::from(cores));
    let items: usize = per_core.iter().map(|core| core.items.len()).sum();
    assert!(items <= count, "{items} items recovered from {count} records");
    for (index, core) in per_core.into_iter().enumerate() {
        let segment = core.first_segment_bytes();
        let mut shard = Shard::new(ShardId(index as u16), shard_config(cores));
        shard.recover(core, segment.len() as u64);
    }
});

/// A legacy segment of records with valid lengths and checksums, from `[payload length][kind][payload]…`.
fn checksummed_records(mut rest: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    while let Some((&payload_len, after)) = rest.split_first() {
        let Some((&kind, after)) = after.split_first() else { break };
        let payload = &after[..usize::from(payload_len).min(after.len())];
        rest = &after[payload.len()..];
        let mut body = Vec::with_capacity(1 + payload.len());
        body.push(kind);
        body.extend_from_slice(payload);
        segment.extend_from_slice(&(body.len() as u32).to_le_bytes());
        segment.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        segment.extend_from_slice(&body);
        // A write's end, now and then: zero padding to the page boundary.
        if kind & 0x80 != 0 {
            segment.resize(segment.len().next_multiple_of(PAGE_BYTES), 0);
        }
    }
    segment
}

/// Takes the next byte of `rest`, 0 when it is used up.
fn next(rest: &mut &[u8]) -> u8 {
    let Some((&byte, after)) = rest.split_first() else { return 0 };
    *rest = after;
    byte
}

/// Builds segment 0 and segment 1 from `rest` (`[group count]`, then per group `[records]` and per record
/// `[body length / 8]`, then the damage: `[group][start hi][start lo][length hi][length lo][how]`), reads them as
/// recovery does, checks the durability rule, and returns the records read.
fn grouped(mut rest: &[u8]) -> Vec<LogRecord> {
    let rest = &mut rest;
    let mut writer = LogWriter::with_log_id(0, 0, 0, u64::MAX, LOG_ID);
    writer.append(&LogRecord::Sequence { item_seq_next: 1 });
    let first_segment = writer.poll_write().expect("segment 0");
    writer.handle_write_done(first_segment.lsn);
    writer.rotate();
    let mut groups: Vec<(usize, Vec<LogRecord>)> = Vec::new();
    let mut segment = Vec::new();
    let mut item_id = 0u64;
    for _ in 0..1 + next(rest) % 8 {
        let mut records = Vec::new();
        for _ in 0..1 + next(rest) % 8 {
            item_id += 1;
            let body = vec![item_id as u8; usize::from(next(rest)) * 8];
            let record = LogRecord::Message {
                item_id,
                to: 15_550_000_000,
                sender: 15_550_000_001,
                client_msg_id: item_id,
                time_us: 1,
                body: body.into(),
            };
            writer.append(&record);
            records.push(record);
        }
        let write = writer.poll_write().expect("a group");
        assert_eq!(write.offset as usize, segment.len());
        groups.push((segment.len(), records));
        segment.extend_from_slice(&write.bytes);
        writer.handle_write_done(write.lsn);
    }

    let damaged = usize::from(next(rest)) % groups.len();
    let group_start = groups[damaged].0;
    let group_end = groups.get(damaged + 1).map_or(segment.len(), |(start, _)| *start);
    let start = group_start + usize::from(u16::from_be_bytes([next(rest), next(rest)])) % (group_end - group_start);
    let end = (start + 1 + usize::from(u16::from_be_bytes([next(rest), next(rest)]))).min(group_end);
    let is_last = damaged + 1 == groups.len();
    match next(rest) % 3 {
        0 => segment[start..end].fill(0),
        1 => segment[start..end].iter_mut().for_each(|byte| *byte ^= 0x5A),
        // Cut off the file's end: only the last write can be.
        _ if is_last => segment.truncate(start),
        _ => segment[start..end].fill(0),
    }

    let mut reader = LogReader::new(LOG_RECORD_BYTES_MAX);
    let mut records = reader.read_segment(&first_segment.bytes, false).records;
    assert_eq!(records, vec![LogRecord::Sequence { item_seq_next: 1 }]);
    let replayed = reader.read_segment(&segment, true);
    assert!(replayed.truncate_to().is_none() || is_last, "damage before a later group is no tail: {replayed:?}");

    let written: Vec<&LogRecord> = groups.iter().flat_map(|(_, records)| records).collect();
    let before: usize = groups[..damaged].iter().map(|(_, records)| records.len()).sum();
    let after: usize = groups[damaged + 1..].iter().map(|(_, records)| records.len()).sum();
    let read = &replayed.records;
    assert!(read.len() >= before + after, "{} records read, {before} before and {after} after the damage", read.len());
    assert!(
        read.iter().zip(&written).take(before).all(|(read, written)| read == *written),
        "a group before the damage"
    );
    let tail = &read[read.len() - after..];
    assert!(
        tail.iter().zip(&written[written.len() - after..]).all(|(read, written)| read == *written),
        "a later group"
    );
    let damaged_records = &read[before..read.len() - after];
    let damaged_written = &groups[damaged].1;
    assert!(damaged_records.len() <= damaged_written.len());
    assert_eq!(damaged_records, &damaged_written[..damaged_records.len()], "of the damaged group, a prefix only");
    records.extend(replayed.records);
    records
}
