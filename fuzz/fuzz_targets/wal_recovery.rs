//! Fuzzes the log's read side the way an engine start meets it: `replay_segment` over one segment's bytes,
//! `Recovery` over the records it accepted, then each recovered core loaded into a `Shard`.
//!
//! The first input byte picks the mode and the new core count. Raw mode replays the rest as it is. Random bytes
//! almost never carry a valid CRC32C, so the other mode builds the segment from the rest as records
//! `[payload length byte][kind byte][payload]` and writes each one's length and checksum itself: the fuzzer then
//! reaches every record layout and every recovery rule with checksummed (so believed) contents.
//!
//! Checked: nothing panics, whatever the records say; the replay's write offset is page-aligned and no further
//! than a page past the data; every accepted record re-encodes to the bytes it was read from (the layout is
//! canonical); recovery never hands out more items than there were records; and the shard loads every core
//! recovery produced (item ids left to issue, items of any user).

#![no_main]

use engine::home::ShardId;
use engine::limits::LOG_RECORD_BYTES_MAX;
use engine::shard::Shard;
use engine::wal::{PAGE_BYTES, RECORD_HEADER_BYTES, Recovery, encode_record, replay_segment};
use libfuzzer_sys::fuzz_target;

#[path = "common/shard_config.rs"]
mod shard_config;
use shard_config::shard_config;

/// The recovery clock: "now" for the SEND dedup window.
const NOW_WALL_US: u64 = 1_700_000_000_000_000;
const DEDUP_WINDOW_US: u64 = 600_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cores = u16::from(mode >> 1 & 3) + 1;
    let segment = if mode & 1 == 0 { rest.to_vec() } else { checksummed_records(rest) };

    let replayed = replay_segment(&segment, LOG_RECORD_BYTES_MAX);
    let next = replayed.next_write_offset as usize;
    assert!(next.is_multiple_of(PAGE_BYTES), "write offset {next} is not page-aligned");
    assert!(next <= segment.len().next_multiple_of(PAGE_BYTES), "write offset {next} past the data");
    let mut at = 0;
    for record in &replayed.records {
        // Skip the zero padding the replay skipped: records resume on the next page.
        while segment[at..].first_chunk::<RECORD_HEADER_BYTES>().is_some_and(|header| header == &[0; 8]) {
            at = (at + 1).next_multiple_of(PAGE_BYTES);
        }
        let mut encoded = Vec::new();
        let len = encode_record(record, &mut encoded);
        assert_eq!(&segment[at..at + len], &encoded[..], "record {record:?} read from other bytes");
        at += len;
    }

    let records = replayed.records.len();
    let mut recovery = Recovery::new();
    for record in replayed.records {
        recovery.apply(record);
    }
    let Ok(per_core) = recovery.finish(cores, NOW_WALL_US, DEDUP_WINDOW_US) else {
        return;
    };
    assert_eq!(per_core.len(), usize::from(cores));
    let items: usize = per_core.iter().map(|core| core.items.len()).sum();
    assert!(items <= records, "{items} items recovered from {records} records");
    for (index, core) in per_core.into_iter().enumerate() {
        let mut shard = Shard::new(ShardId(index as u16), shard_config(cores));
        shard.recover(core, next as u64);
    }
});

/// A segment of records with valid lengths and checksums, from `[payload length][kind][payload]…`.
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
    }
    segment
}
