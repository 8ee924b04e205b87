//! The one-core-per-shard configuration the engine fuzz targets build their `Shard`s with: four provisioned
//! users (`USER_BASE` and up), small frame, queue and dedup limits so short inputs reach them, and the key
//! authority whose keys the targets derive. Included by each target with `#[path]`; not every target uses
//! every item.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use ringline_core::account::{Directory, KeyAuthority, ProvisionBatch, RegistrationLimits};
use ringline_core::shard::{Durability, QueueLimits, ShardConfig};
use wire::UserId;

/// First provisioned user: users are `USER_BASE + 0..USERS`.
pub const USER_BASE: UserId = 15_550_000_000;
pub const USERS: u64 = 4;
/// Small, so that the frame limit is reached by short inputs.
pub const FRAME_SIZE_MAX: usize = 512;

/// The secret of the targets' key authority.
pub fn keys() -> KeyAuthority {
    KeyAuthority::new([7; 32])
}

pub fn shard_config(cores: u16) -> ShardConfig {
    ShardConfig {
        cores,
        frame_size_max: FRAME_SIZE_MAX,
        handshake_timeout_us: 10_000_000,
        idle_timeout_us: 180_000_000,
        queue: QueueLimits {
            messages_per_user_max: 16,
            bytes_per_user_max: 4 * 1024,
            bytes_per_core_max: 16 * 1024,
            age_max_us: 3_600_000_000,
        },
        dedup_entries_max: 64,
        dedup_window_us: 600_000_000,
        durability: Durability::Sync,
        log_segment_bytes_max: 64 * 1024,
        keys: keys(),
        directory: Arc::new(Directory::new(vec![ProvisionBatch { prefix: 1555, width: 7, count: USERS }])),
        generations: Arc::new(HashMap::new()),
        registration: RegistrationLimits::standard(600_000_000),
    }
}
