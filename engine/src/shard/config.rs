//! What a shard needs to know that is the same on every core: the core count, the protocol limits and the
//! queue limits. Built once from the command line (`crate::config`); owns no state.

use std::sync::Arc;

use crate::account::{Directory, KeyAuthority};

use super::durability::Durability;
use super::offline_queue::QueueLimits;

#[derive(Debug, Clone)]
pub struct ShardConfig {
    pub cores: u16,
    pub frame_size_max: usize,
    pub handshake_timeout_us: u64,
    pub idle_timeout_us: u64,
    pub queue: QueueLimits,
    pub dedup_entries_max: usize,
    pub dedup_window_us: u64,
    /// When an ACK may go, relative to the log.
    pub durability: Durability,
    /// Size after which a log segment is closed and the next one started.
    pub log_segment_bytes_max: u64,
    pub keys: KeyAuthority,
    pub directory: Arc<Directory>,
}
