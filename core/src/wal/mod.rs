//! The per-core write-ahead log, sans-IO: what a record is on disk, how records are batched into page-aligned
//! writes for direct I/O (group commit, each write one group with its header), and how a core's segments are
//! read back after a crash (replay) and folded into what each new core starts with (recovery). Owns formats,
//! positions and the recovery rules; does not open files, sync them, or decide what to log (the shard decides;
//! the runtime does the I/O with glommio's DMA files, the simulator with its simulated disk, both through this
//! code).
//!
//! Invariants: every record carries its length and a CRC32C of its kind and payload, checked when appended
//! (round-trip in debug builds) and when replayed; every write starts with a group header whose CRC32C covers
//! its records; recovery never discards a record that was acknowledged: damage followed by a later group of
//! the same log is skipped, only the log's last write can be a torn tail and only its prefix up to the first
//! hole is kept (docs/ARCHITECTURE.md, "Durability"); log sequence numbers only increase.

mod group;
mod record;
mod recover;
mod replay;
#[cfg(test)]
mod torn_write_tests;
mod writer;

pub use group::{GROUP_HEADER_BYTES, GroupHeader};
pub use record::{LogRecord, RECORD_HEADER_BYTES, RecordError, encode_record};
pub use recover::{ITEM_SEQ_MASK, RecoveredCore, RecoveredSend, Recovery, RecoveryError, send_fingerprint};
pub use replay::{LogReader, ReplayEnd, ReplayedSegment, SegmentFormat, SegmentOutcome, SkippedDamage, replay_segment};
pub use writer::{LogWriter, PAGE_BYTES, PendingWrite};
