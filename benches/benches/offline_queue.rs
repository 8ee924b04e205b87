//! The per-core offline queue (`ringline_core::shard::OfflineQueue`) with the engine's default limits: appending
//! messages and draining them, per message. Append is what the home core does per stored message
//! (`check_room`, then `push`); drain is what delivery does per item: take the next unwritten item while fewer
//! than `DELIVERY_WINDOW_MAX` are unacknowledged (the shard encodes a DELIVER from it), then remove it when its
//! DELIVERED arrives (`acknowledge`, which drops it).
//!
//! Groups `offline_queue_append` and `offline_queue_drain`, ids `one_user/{messages}` (all messages for one
//! user: one inbox growing) and `users/{users}` (one message each for that many users: an inbox and an
//! age-index entry created and removed per message). Throughput in messages. The items (with their
//! `BODY_BYTES`-byte bodies) and, for drain, the filled queue are built before the clock starts.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use criterion::{black_box, measurement::WallTime};

use ringline_benches::{BODY_BYTES, criterion_settings};
use ringline_core::limits::{
    CORE_QUEUE_BYTES_MAX_DEFAULT, DELIVERY_WINDOW_MAX, OFFLINE_AGE_MAX_DEFAULT, OFFLINE_QUEUE_BYTES_MAX_DEFAULT,
    OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT,
};
use ringline_core::shard::{Item, OfflineQueue, QueueLimits};
use wire::UserId;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Messages for one user measured (the default per-user limit is 10,000).
const ONE_USER_MESSAGES: [usize; 4] = [1, 16, 256, 4096];

/// Users with one message each measured.
const USERS: [usize; 2] = [1_000, 100_000];

const FIRST_USER: UserId = 15_550_000_000;

const LIMITS: QueueLimits = QueueLimits {
    messages_per_user_max: OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT,
    bytes_per_user_max: OFFLINE_QUEUE_BYTES_MAX_DEFAULT,
    bytes_per_core_max: CORE_QUEUE_BYTES_MAX_DEFAULT,
    age_max_us: OFFLINE_AGE_MAX_DEFAULT.as_micros() as u64,
};

fn message(id: u64) -> Item {
    Item::Message {
        id,
        from: 15_551_234_567,
        client_msg_id: id,
        time_us: 1_700_000_000_000_000 + id,
        body: vec![0xA5; BODY_BYTES].into_boxed_slice(),
    }
}

/// `(user, item)` pairs: `messages` for one user, or one each for `users` users.
fn workload(shape: Shape, count: usize) -> Vec<(UserId, Item)> {
    (0..count as u64)
        .map(|index| match shape {
            Shape::OneUser => (FIRST_USER, message(index)),
            Shape::Users => (FIRST_USER + index, message(index)),
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Shape {
    OneUser,
    Users,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Self::OneUser => "one_user",
            Self::Users => "users",
        }
    }
}

fn append(queue: &mut OfflineQueue, items: Vec<(UserId, Item)>) {
    for (user, item) in items {
        let body_len = match &item {
            Item::Message { body, .. } => body.len(),
            Item::Receipt { .. } => 0,
        };
        queue.check_room(user, body_len, 0).expect("the workload stays within the default limits");
        queue.push(user, item);
    }
}

/// Delivers and acknowledges everything for `users`, a window of up to `DELIVERY_WINDOW_MAX` items at a time.
/// Returns the items delivered.
fn drain(queue: &mut OfflineQueue, users: &[UserId], written: &mut Vec<u64>) -> usize {
    let mut delivered = 0;
    for &user in users {
        loop {
            while queue.unacknowledged(user) < DELIVERY_WINDOW_MAX
                && let Some(item) = queue.next_unwritten_if(user, |_| true)
            {
                written.push(black_box(item).id());
            }
            if written.is_empty() {
                break;
            }
            for id in written.drain(..) {
                drop(black_box(queue.acknowledge(user, id)).expect("a written item is acknowledged once"));
                delivered += 1;
            }
        }
    }
    delivered
}

fn batch_size(count: usize) -> BatchSize {
    if count >= 256 { BatchSize::LargeInput } else { BatchSize::SmallInput }
}

fn bench_append(group: &mut BenchmarkGroup<'_, WallTime>, shape: Shape, count: usize) {
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function(BenchmarkId::new(shape.name(), count), |b| {
        b.iter_batched(
            || (OfflineQueue::new(LIMITS), workload(shape, count)),
            |(mut queue, items)| {
                append(&mut queue, items);
                queue
            },
            batch_size(count),
        )
    });
}

fn bench_drain(group: &mut BenchmarkGroup<'_, WallTime>, shape: Shape, count: usize) {
    let users: Vec<UserId> = match shape {
        Shape::OneUser => vec![FIRST_USER],
        Shape::Users => (0..count as u64).map(|index| FIRST_USER + index).collect(),
    };
    let mut written = Vec::with_capacity(DELIVERY_WINDOW_MAX);
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function(BenchmarkId::new(shape.name(), count), |b| {
        b.iter_batched(
            || {
                let mut queue = OfflineQueue::new(LIMITS);
                append(&mut queue, workload(shape, count));
                queue
            },
            |mut queue| {
                assert_eq!(drain(&mut queue, &users, &mut written), count, "every item is delivered");
                assert_eq!(queue.items_total(), 0);
                queue
            },
            batch_size(count),
        )
    });
}

fn offline_queue(c: &mut Criterion) {
    let cases: Vec<(Shape, usize)> = ONE_USER_MESSAGES
        .iter()
        .map(|&count| (Shape::OneUser, count))
        .chain(USERS.iter().map(|&count| (Shape::Users, count)))
        .collect();
    let mut group = c.benchmark_group("offline_queue_append");
    for &(shape, count) in &cases {
        bench_append(&mut group, shape, count);
    }
    group.finish();
    let mut group = c.benchmark_group("offline_queue_drain");
    for &(shape, count) in &cases {
        bench_drain(&mut group, shape, count);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_settings(Duration::from_secs(2))
        .sample_size(20);
    targets = offline_queue
}
criterion_main!(benches);
