//! The per-core write-ahead log, sans-IO: what a record is on disk, how records are batched into page-aligned
//! writes for direct I/O (group commit), and how a segment's bytes are read back after a crash. Owns formats
//! and positions; does not open files, sync them, or decide what to log (the shard decides; the runtime does
//! the I/O with glommio's DMA files).
//!
//! Invariants: every record carries its length and a CRC32C of its kind and payload, checked when appended
//! (round-trip in debug builds) and when replayed; replay stops at the first record that is torn, corrupt or
//! zero padding, and reports where, so the tail can be truncated; log sequence numbers only increase.

mod record;
mod recover;
mod replay;
mod writer;

pub use record::{LogRecord, RECORD_HEADER_BYTES, RecordError, encode_record};
pub use recover::{ITEM_SEQ_MASK, RecoveredCore, RecoveredSend, Recovery, RecoveryError, send_fingerprint};
pub use replay::{ReplayEnd, ReplayedSegment, replay_segment};
pub use writer::{LogWriter, PAGE_BYTES, PendingWrite};
