//! Cross-core hand-off: what one message costs to cross from one core to another, by batch size. As in the
//! engine (`rt/mod.rs`, `rt/core.rs`): two glommio executors pinned to two CPUs, with the engine's executor I/O
//! memory, joined by a glommio `shared_channel` of `MESH_CHANNEL_CAPACITY` slots, each slot one `MeshBatch` of
//! `ShardMsg::Store` (the request every cross-core SEND makes) with `BODY_BYTES`-byte bodies. The sending side
//! does what the engine's pump does per batch (move the messages into a fresh batch, stamp `sent_at`, `send`),
//! the receiving side what its drain does before handing the batch to the shard (`recv`, read the hop time).
//!
//! Three groups, ids `{messages per batch}`, throughput in messages (so criterion prints time per message):
//! - `mesh_stream`: the sender pushes batches as fast as the channel takes them (it waits when all slots are
//!   full: the engine's backpressure), the receiver takes each and drops it. The cost per message when both
//!   cores are busy with the mesh.
//! - `mesh_round_trip`: one batch in flight: the receiver answers each batch on a second channel and the sender
//!   waits for the answer, so each core sleeps and is woken every time. Two hops (the batch, then its
//!   answer) per batch: what a batch costs when the mesh is idle between batches, as at low load.
//! - `mesh_batch_only`: the same batches built and dropped on one core with no channel: the part of the two
//!   above that is not the hand-off (allocating each body and the batch, freeing them).
//!
//! The receiver drops what it receives, so the bodies are freed on the other core (mimalloc's cross-thread
//! free); the engine instead moves them into the recipient's queue and frees them when they are acknowledged.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::{ExecutorJoinHandle, LocalExecutor};

use engine::rt::MeshBatch;
use ringline_benches::{core_executor, criterion_settings, store_message, two_core_placements};
use ringline_core::limits::MESH_CHANNEL_CAPACITY;
use ringline_core::shard::ShardMsg;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Messages per batch measured. The engine's pump sends whatever its outbox holds, up to
/// `MESH_BATCH_MESSAGES_MAX` (512), so the batch size follows the load.
const BATCH_SIZES: [usize; 5] = [1, 4, 16, 64, 256];

/// `messages` stores for users of the other core, as the sending core's outbox would hold them.
fn outbox(messages: usize) -> Vec<ShardMsg> {
    (0..messages as u64).map(|index| store_message(15_551_234_567, 15_550_000_000 + index, index)).collect()
}

/// What the engine's pump does per batch: the waiting messages into a new batch, the hop timestamp. The
/// clone allocates each body, as decoding the SEND did on the sending core.
fn batch_of(outbox: &[ShardMsg]) -> MeshBatch {
    MeshBatch { messages: outbox.to_vec(), sent_at: Some(Instant::now()), ..MeshBatch::default() }
}

/// The sending core (this thread's executor) with its channel ends, and the receiving core's thread.
struct Mesh {
    executor: LocalExecutor,
    batches: ConnectedSender<MeshBatch>,
    answers: ConnectedReceiver<u64>,
    answer_every_batch: Arc<AtomicBool>,
    receiver: ExecutorJoinHandle<()>,
    /// Messages sent so far, which the receiver's answers must match.
    sent: Cell<u64>,
}

/// The receiving core: takes batches until the channel closes. Answers with the messages received so far
/// after every batch if `answer_every_batch`, else only after an empty batch (the end of a stream).
async fn receive(batches: SharedReceiver<MeshBatch>, answers: SharedSender<u64>, answer_every_batch: Arc<AtomicBool>) {
    let batches = batches.connect().await;
    let answers = answers.connect().await;
    let mut received = 0u64;
    while let Some(batch) = batches.recv().await {
        let end_of_stream = batch.messages.is_empty();
        received += batch.messages.len() as u64;
        // The engine's drain reads the hop time for its metrics.
        black_box(batch.sent_at.map(|sent_at| sent_at.elapsed()));
        drop(batch);
        if (end_of_stream || answer_every_batch.load(Ordering::Acquire)) && answers.send(received).await.is_err() {
            return;
        }
    }
}

impl Mesh {
    fn start() -> Self {
        let [sending_cpu, receiving_cpu] = two_core_placements();
        let (batch_sender, batch_receiver) = shared_channel::new_bounded(MESH_CHANNEL_CAPACITY);
        let (answer_sender, answer_receiver) = shared_channel::new_bounded(1);
        let answer_every_batch = Arc::new(AtomicBool::new(false));
        let flag = answer_every_batch.clone();
        let receiver = core_executor(receiving_cpu, "mesh-receiver")
            .spawn(move || receive(batch_receiver, answer_sender, flag))
            .expect("starting the receiving core's executor");
        let executor = core_executor(sending_cpu, "mesh-sender").make().expect("starting the sending core's executor");
        // Connected in the same order as the receiver connects its ends.
        let (batches, answers) =
            executor.run(async { (batch_sender.connect().await, answer_receiver.connect().await) });
        Self { executor, batches, answers, answer_every_batch, receiver, sent: Cell::new(0) }
    }

    /// Streams `iters` batches built from `outbox`; returns when the receiver has taken them all.
    fn stream(&self, outbox: &[ShardMsg], iters: u64) -> Duration {
        self.answer_every_batch.store(false, Ordering::Release);
        self.executor.run(async {
            let started = Instant::now();
            for _ in 0..iters {
                self.batches.send(batch_of(outbox)).await.expect("the receiving core runs until the end");
            }
            self.batches.send(MeshBatch::default()).await.expect("the receiving core runs until the end");
            let received = self.answers.recv().await.expect("the receiving core answers the end of a stream");
            let took = started.elapsed();
            self.check_received(outbox.len() as u64 * iters, received);
            took
        })
    }

    /// Checks that the receiver got every message sent, `just_sent` of them since the last check.
    fn check_received(&self, just_sent: u64, received: u64) {
        self.sent.set(self.sent.get() + just_sent);
        assert_eq!(received, self.sent.get(), "the receiving core got every message sent");
    }

    /// Sends `iters` batches built from `outbox`, each after the answer to the previous one.
    fn round_trips(&self, outbox: &[ShardMsg], iters: u64) -> Duration {
        self.answer_every_batch.store(true, Ordering::Release);
        self.executor.run(async {
            let started = Instant::now();
            let mut received = 0;
            for _ in 0..iters {
                self.batches.send(batch_of(outbox)).await.expect("the receiving core runs until the end");
                received = self.answers.recv().await.expect("the receiving core answers every batch");
            }
            let took = started.elapsed();
            self.check_received(outbox.len() as u64 * iters, received);
            took
        })
    }

    /// Closes the channels (the receiving core's loop ends) and waits for the receiving core.
    fn stop(self) {
        let Self { executor, batches, answers, receiver, .. } = self;
        executor.run(async move {
            drop(batches);
            drop(answers);
        });
        receiver.join().expect("the receiving core stops cleanly");
    }
}

fn mesh(c: &mut Criterion) {
    let mesh = Mesh::start();
    let mut group = c.benchmark_group("mesh_stream");
    for messages in BATCH_SIZES {
        let outbox = outbox(messages);
        group.throughput(Throughput::Elements(messages as u64));
        group.bench_function(BenchmarkId::from_parameter(messages), |b| {
            b.iter_custom(|iters| mesh.stream(&outbox, iters))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("mesh_round_trip");
    for messages in BATCH_SIZES {
        let outbox = outbox(messages);
        group.throughput(Throughput::Elements(messages as u64));
        group.bench_function(BenchmarkId::from_parameter(messages), |b| {
            b.iter_custom(|iters| mesh.round_trips(&outbox, iters))
        });
    }
    group.finish();
    mesh.stop();

    let mut group = c.benchmark_group("mesh_batch_only");
    for messages in BATCH_SIZES {
        let outbox = outbox(messages);
        group.throughput(Throughput::Elements(messages as u64));
        group.bench_function(BenchmarkId::from_parameter(messages), |b| b.iter(|| drop(black_box(batch_of(&outbox)))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_settings(Duration::from_secs(2))
        .sample_size(20);
    targets = mesh
}
criterion_main!(benches);
