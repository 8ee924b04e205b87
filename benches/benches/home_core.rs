//! The home core's sans-IO work for messages routed to it: a batch of `ShardMsg::Store` from another core into
//! the real `Shard`, as the engine's drain hands it over (`handle_mesh`), then what the core's log task and
//! pump do next, minus their I/O: take the log group (`poll_wal_write`), report it durable at once
//! (`handle_wal_done`, which releases the held `Stored` answers under `Durability::Sync`), and take the
//! outputs (`poll_output`) and the answers for the other core (`poll_mesh`). Each message is checked against
//! the directory and the queue limits, gets an item id, a log record and a place in its recipient's queue, and
//! a `Stored` answer.
//!
//! Group `home_core_store`, ids `{messages per batch}`, throughput in messages. The recipients are offline
//! (their queues grow; nothing is delivered), spread over 500,000 users of the core so no queue nears its
//! limit. Each sample starts from a fresh shard; the batches are built before the clock starts. The log's
//! segment size is the largest allowed so that compaction (a snapshot of every pending item, which an
//! offline backlog triggers once the padded groups pass a segment) stays out of the figure.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use ringline_benches::{criterion_settings, store_message};
use ringline_core::account::{Directory, KeyAuthority, ProvisionBatch, RegistrationLimits};
use ringline_core::home::{ShardId, home_core};
use ringline_core::limits::{
    CORE_QUEUE_BYTES_MAX_DEFAULT, DEDUP_ENTRIES_PER_SHARD_MAX, DEDUP_WINDOW, FRAME_SIZE_MAX_DEFAULT,
    HANDSHAKE_TIMEOUT_DEFAULT, IDLE_TIMEOUT_DEFAULT, LOG_SEGMENT_BYTES_MAX, OFFLINE_AGE_MAX_DEFAULT,
    OFFLINE_QUEUE_BYTES_MAX_DEFAULT, OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT, PIN_TTL_DEFAULT,
};
use ringline_core::shard::{Durability, Now, QueueLimits, Shard, ShardConfig, ShardMsg};
use wire::UserId;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Messages per batch measured (the mesh bench's sizes).
const BATCH_SIZES: [usize; 5] = [1, 4, 16, 64, 256];

/// Provisioned users; about half have the measured core as their home.
const USERS: u64 = 1_000_000;

const CORES: u16 = 2;
const HOME: ShardId = ShardId(0);
const PEER: ShardId = ShardId(1);

const NOW: Now = Now { mono_us: 1_000_000, wall_us: 1_700_000_000_000_000 };

fn shard_config() -> ShardConfig {
    let directory = Directory::new(vec![ProvisionBatch { prefix: 1555, width: 7, count: USERS }]);
    ShardConfig {
        cores: CORES,
        frame_size_max: FRAME_SIZE_MAX_DEFAULT,
        handshake_timeout_us: HANDSHAKE_TIMEOUT_DEFAULT.as_micros() as u64,
        idle_timeout_us: IDLE_TIMEOUT_DEFAULT.as_micros() as u64,
        queue: QueueLimits {
            messages_per_user_max: OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT,
            bytes_per_user_max: OFFLINE_QUEUE_BYTES_MAX_DEFAULT,
            bytes_per_core_max: CORE_QUEUE_BYTES_MAX_DEFAULT,
            age_max_us: OFFLINE_AGE_MAX_DEFAULT.as_micros() as u64,
        },
        dedup_entries_max: DEDUP_ENTRIES_PER_SHARD_MAX,
        dedup_window_us: DEDUP_WINDOW.as_micros() as u64,
        durability: Durability::Sync,
        log_segment_bytes_max: LOG_SEGMENT_BYTES_MAX,
        keys: KeyAuthority::new([7; 32]),
        directory: Arc::new(directory),
        generations: Arc::new(HashMap::new()),
        registration: RegistrationLimits::standard(PIN_TTL_DEFAULT.as_micros() as u64),
    }
}

/// The provisioned users whose home is `HOME`.
fn home_users(config: &ShardConfig) -> Vec<UserId> {
    let batch = config.directory.batches()[0];
    (0..USERS).filter_map(|index| batch.user(index)).filter(|&user| home_core(user, CORES) == HOME).collect()
}

/// Runs `iters` batches of `messages` stores through a fresh shard; returns the time they took.
fn store_batches(config: &ShardConfig, recipients: &[UserId], messages: usize, iters: u64) -> Duration {
    let mut shard = Shard::new(HOME, config.clone());
    let mut next = 0usize;
    let batches: Vec<Vec<ShardMsg>> = (0..iters)
        .map(|_| {
            (0..messages)
                .map(|_| {
                    next += 1;
                    store_message(15_551_234_567, recipients[next % recipients.len()], next as u64)
                })
                .collect()
        })
        .collect();
    let mut answers = Vec::with_capacity(messages);
    let mut answered = 0usize;

    let started = Instant::now();
    for batch in batches {
        shard.handle_mesh(PEER, batch, NOW);
        while let Some(write) = shard.poll_wal_write() {
            shard.handle_wal_done(write.lsn, NOW);
        }
        // The outputs (the pump to wake, connections to serve): taken, as the runtime's drive does.
        while shard.poll_output().is_some() {}
        while shard.poll_mesh(PEER, &mut answers, NOW) {}
        answered += answers.len();
        answers.clear();
    }
    let took = started.elapsed();

    assert_eq!(answered, next, "every store is answered");
    assert_eq!(shard.stats().messages_stored, next as u64, "every store is stored, none refused");
    took
}

fn home_core_store(c: &mut Criterion) {
    let config = shard_config();
    let recipients = home_users(&config);
    let mut group = c.benchmark_group("home_core_store");
    for messages in BATCH_SIZES {
        group.throughput(Throughput::Elements(messages as u64));
        group.bench_function(BenchmarkId::from_parameter(messages), |b| {
            b.iter_custom(|iters| store_batches(&config, &recipients, messages, iters))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_settings(Duration::from_secs(2))
        .sample_size(20);
    targets = home_core_store
}
criterion_main!(benches);
