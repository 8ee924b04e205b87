//! ringline's criterion benchmarks live in `benches/` (`cargo bench -p ringline-benches`); the benchmark
//! drivers in `src/bin/` (`login_storm`, `tls_handshakes`, `idle_hold`, `tls_session_bytes`) share the small
//! non-blocking client in `client` and the command-line reading in `flags`. This library also holds what several bench targets share: the messages and
//! log records they feed the engine, and executors placed and sized the way the engine places and sizes its
//! cores. It measures nothing itself. Results go to `results/bench-*/`.

pub mod client;
pub mod flags;

use glommio::{LocalExecutorBuilder, Placement};

use ringline_core::shard::{ConnId, ShardMsg};
use ringline_core::wal::LogRecord;
use wire::UserId;

/// Body bytes of the messages the benches move: the load generator's default `--body-bytes`.
pub const BODY_BYTES: usize = 64;

/// Bootstrap resamples criterion draws per analysis: a tenth of its default. Built without its `rayon` feature,
/// criterion spends seconds of one CPU per benchmark on the default 100,000, longer than the measurement.
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The criterion settings every bench target starts from: `BOOTSTRAP_RESAMPLES`, a 0.5 s warm-up, and
/// `measurement` per benchmark. Short, so that `cargo bench -p ringline-benches` takes minutes; the command line's
/// `--warm-up-time` and `--measurement-time` override them (use 10 s or more to compare commits).
pub fn criterion_settings(measurement: std::time::Duration) -> criterion::Criterion {
    criterion::Criterion::default()
        .nresamples(BOOTSTRAP_RESAMPLES)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(measurement)
}

/// Memory glommio reserves per executor for its I/O buffers: the engine's value (`rt/mod.rs`,
/// `EXECUTOR_IO_MEMORY_BYTES`), kept small because RLIMIT_MEMLOCK may be 8 MiB for the whole process.
pub const EXECUTOR_IO_MEMORY_BYTES: usize = 512 * 1024;

/// The request a cross-core SEND makes: store a `BODY_BYTES` message from `sender` for `to`.
pub fn store_message(sender: UserId, to: UserId, client_msg_id: u64) -> ShardMsg {
    ShardMsg::Store {
        sender,
        client_msg_id,
        origin: ConnId { index: 7, generation: 1 },
        to,
        body: vec![0xA5; BODY_BYTES].into_boxed_slice(),
    }
}

/// The log record a stored `BODY_BYTES` message appends on its recipient's home core.
pub fn message_record(item_id: u64, to: UserId) -> LogRecord {
    LogRecord::Message {
        item_id,
        to,
        sender: 15_551_234_567,
        client_msg_id: item_id,
        time_us: 1_700_000_000_000_000 + item_id,
        body: vec![0xA5; BODY_BYTES].into_boxed_slice(),
    }
}

/// Where two cores' executors go: the first two CPUs this process may use, each pinned (the engine's
/// `Placement::Fixed` per core), or unpinned, with a note on stderr, if there are fewer than two.
pub fn two_core_placements() -> [Placement; 2] {
    match tuning::cpus::allowed_cpus() {
        Ok(cpus) if cpus.len() >= 2 => [Placement::Fixed(cpus[0]), Placement::Fixed(cpus[1])],
        other => {
            eprintln!("fewer than two CPUs to pin to ({other:?}): running both executors unpinned");
            [Placement::Unbound, Placement::Unbound]
        }
    }
}

/// An executor built as the engine builds one per core: `placement`, `EXECUTOR_IO_MEMORY_BYTES`.
pub fn core_executor(placement: Placement, name: &str) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(placement).name(name).io_memory(EXECUTOR_IO_MEMORY_BYTES)
}
