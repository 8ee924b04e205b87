//! The per-core write-ahead log by group size (records per group commit), per record: what group commit
//! saves. Each record is the `Message` record of a stored `BODY_BYTES`-byte message (113 bytes).
//!
//! - `wal_append/{records}`: the sans-IO part (`ringline_core::wal::LogWriter`): encode the records with their
//!   CRC32C into the group, write the group header (with the CRC32C of the records), pad it to whole pages and
//!   hand it out as one write (`poll_write`), mark it done.
//! - `wal_write_sync_dma/{records}`: that plus the I/O the engine's log task does per group, through the
//!   engine's own `engine::rt::log_segment::SegmentWriter` (a new segment every `LOG_SEGMENT_BYTES_DEFAULT`,
//!   its directory synced; a page-aligned copy, one `pwritev2(RWF_DSYNC)` on the O_DIRECT `DmaFile`, on the
//!   executor's blocking thread, unpinned); the bench deletes each segment it closes so its disk use stays
//!   bounded.
//! - `wal_write_sync_std/{records}`: the same groups with a plain `std::fs::File` (buffered `pwrite`, then
//!   `sync_data`) on the bench thread, for comparison.
//!
//! The files go to `$RINGLINE_BENCH_DIR` if set, else the system temp directory; the figure is the disk's
//! (and its filesystem's) as much as the engine's, so record which one. The synced groups are written one
//! after the other, as under load: the engine's next group forms while one is in flight, so its groups grow
//! with the load and the cost per record falls with them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use glommio::LocalExecutor;
use glommio::io::Directory;

use engine::rt::log_segment::{SegmentWriter, segment_path};
use ringline_benches::{core_executor, criterion_settings, message_record, two_core_placements};
use ringline_core::limits::LOG_SEGMENT_BYTES_DEFAULT;
use ringline_core::wal::{LogRecord, LogWriter, PendingWrite};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per group measured.
const GROUP_RECORDS: [usize; 4] = [1, 16, 64, 256];

fn records() -> Vec<LogRecord> {
    (0..*GROUP_RECORDS.iter().max().expect("sizes") as u64)
        .map(|item_id| message_record(item_id, 15_550_000_000 + item_id))
        .collect()
}

/// Appends `records` as one group and takes its write.
fn group_write(writer: &mut LogWriter, records: &[LogRecord]) -> PendingWrite {
    for record in records {
        writer.append(black_box(record));
    }
    writer.poll_write().expect("records are pending and no write is in flight")
}

fn wal_append(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("wal_append");
    for size in GROUP_RECORDS {
        let mut writer = LogWriter::new(0, 0, 0, u64::MAX);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                let write = group_write(&mut writer, &records[..size]);
                writer.handle_write_done(write.lsn);
                black_box(write.bytes)
            })
        });
    }
    group.finish();
}

/// A directory for log segments, removed when dropped.
struct BenchDir {
    path: PathBuf,
}

impl BenchDir {
    fn create(name: &str) -> Self {
        let base = std::env::var_os("RINGLINE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        // Absolute: glommio's io_uring `openat` fails on a relative path (`rt/mod.rs` says the same).
        let base = std::fs::canonicalize(&base).expect("RINGLINE_BENCH_DIR or the temp directory exists");
        let path = base.join(format!("ringline-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating the bench's log directory");
        eprintln!("{name}: log segments in {}", path.display());
        Self { path }
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The engine's segment writer (`rt::log_segment`); the bench deletes each segment it closes, where the engine
/// waits for compaction to free it.
async fn write_durably_dma(
    dir: &Directory,
    paths: &BenchDir,
    segments: &mut SegmentWriter,
    write: &PendingWrite,
) -> io::Result<()> {
    if let Some(closed) = segments.write(dir, write).await? {
        std::fs::remove_file(segment_path(&paths.path, closed))?;
    }
    Ok(())
}

/// One log of the DMA variant: its writer, files and executor state.
struct DmaLog {
    writer: LogWriter,
    dir: Directory,
    segments: SegmentWriter,
    paths: BenchDir,
}

fn bench_dma(group: &mut BenchmarkGroup<'_, WallTime>, executor: &LocalExecutor, records: &[LogRecord]) {
    for size in GROUP_RECORDS {
        let paths = BenchDir::create(&format!("wal-dma-{size}"));
        let dir = executor.run(Directory::open(paths.path.clone())).expect("opening the log directory");
        let segments = SegmentWriter::new(paths.path.clone());
        let mut log = DmaLog { writer: LogWriter::new(0, 0, 0, LOG_SEGMENT_BYTES_DEFAULT), dir, segments, paths };
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter_custom(|iters| {
                executor.run(async {
                    let DmaLog { writer, dir, segments, paths } = &mut log;
                    let started = Instant::now();
                    for _ in 0..iters {
                        let write = group_write(writer, &records[..size]);
                        write_durably_dma(dir, paths, segments, &write).await.expect("writing the bench's log");
                        writer.handle_write_done(write.lsn);
                    }
                    started.elapsed()
                })
            })
        });
        let DmaLog { dir, mut segments, .. } = log;
        executor.run(async move {
            segments.close().await.expect("closing the bench's log segment");
            dir.close().await.expect("closing the bench's log directory");
        });
    }
}

/// The std variant of `write_durably_dma`: buffered `pwrite`, `sync_data`.
fn write_durably_std(paths: &BenchDir, open: &mut Option<(u64, File)>, write: &PendingWrite) -> io::Result<()> {
    if open.as_ref().is_none_or(|(segment, _)| *segment != write.segment) {
        if let Some((previous, _)) = open.take() {
            std::fs::remove_file(segment_path(&paths.path, previous))?;
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(segment_path(&paths.path, write.segment))?;
        File::open(&paths.path)?.sync_all()?;
        *open = Some((write.segment, file));
    }
    let (_, file) = open.as_ref().expect("opened above");
    file.write_all_at(&write.bytes, write.offset)?;
    file.sync_data()
}

fn bench_std(group: &mut BenchmarkGroup<'_, WallTime>, records: &[LogRecord]) {
    for size in GROUP_RECORDS {
        let paths = BenchDir::create(&format!("wal-std-{size}"));
        let mut writer = LogWriter::new(0, 0, 0, LOG_SEGMENT_BYTES_DEFAULT);
        let mut open = None;
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                let write = group_write(&mut writer, &records[..size]);
                write_durably_std(&paths, &mut open, &write).expect("writing the bench's log");
                writer.handle_write_done(write.lsn);
            })
        });
    }
}

fn wal_write_sync(c: &mut Criterion) {
    let records = records();
    let [cpu, _] = two_core_placements();
    let executor = core_executor(cpu, "wal").make().expect("starting the log's executor");
    let mut group = c.benchmark_group("wal_write_sync_dma");
    bench_dma(&mut group, &executor, &records);
    group.finish();
    let mut group = c.benchmark_group("wal_write_sync_std");
    bench_std(&mut group, &records);
    group.finish();
}

criterion_group! {
    name = append;
    config = criterion_settings(Duration::from_secs(1))
        .sample_size(20);
    targets = wal_append
}
criterion_group! {
    name = write_sync;
    config = criterion_settings(Duration::from_secs(3))
        .sample_size(10);
    targets = wal_write_sync
}
criterion_main!(append, write_sync);
