//! ringline's sans-IO core: everything a core knows and decides, with no runtime inside. Bytes, timeouts,
//! messages from other cores and the results of I/O go in; frames, log writes, messages for other cores and
//! other effects come out. `ringline` (the engine crate) performs those effects on glommio, sockets, files and
//! threads; the simulator (engine/tests/sim) performs them on a simulated network, clock and disk.
//!
//! This crate depends on no runtime (no glommio, io-uring, socket2, libc, mio, tiny_http): the compiler keeps it
//! sans-IO, and `.ci/core-deps` checks its dependency tree in CI.
//!
//! Map (docs/ARCHITECTURE.md has the whole picture):
//! - `shard`: the per-core state machine: sessions, offline queue, routing, receipts, registration decisions.
//! - `account`: device keys, the directory of provisioned users, registration by PIN (limits, PINs issued).
//! - `buffer_pool`: bounded per-core pools of byte buffers, lent while they hold bytes.
//! - `home`: which core owns a user.
//! - `limits`: every bound, in one place.
//! - `memory_trim`: when a container that a burst grew is shrunk again.
//! - `metrics`: histograms, per-core snapshots, alert thresholds, Prometheus text.
//! - `tls`: TLS for the native protocol: a connection's TLS layer, certificates from PEM, server settings.
//! - `wal`: the per-core log's format, group commit, replay and recovery rules.

pub mod account;
pub mod buffer_pool;
pub mod home;
pub mod limits;
pub mod memory_trim;
pub mod metrics;
pub mod shard;
pub mod tls;
pub mod wal;
