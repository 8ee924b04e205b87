//! What a shard needs to know that is the same on every core: the core count, the protocol, queue and
//! registration limits, and the shared account data (keys, directory, device generations). Built once from
//! the engine's command line; owns no state. The device log and the PIN sender are the runtime's: the shard
//! only says what to record and which PIN to send.

use std::sync::Arc;

use std::collections::HashMap;

use wire::UserId;

use crate::account::{Directory, KeyAuthority, RegistrationLimits};

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
    /// Device generations issued by registration so far (all users; each shard keeps its own).
    pub generations: Arc<HashMap<UserId, u32>>,
    pub registration: RegistrationLimits,
}
