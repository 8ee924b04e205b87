//! ringline's engine: a messaging edge server, one shard per core, shared-nothing by home core.
//!
//! Map (docs/ARCHITECTURE.md has the whole picture):
//! - `shard`: the per-core state machine (sans-IO): sessions, offline queue, routing, receipts.
//! - `account`: device keys, provisioned users, their files.
//! - `buffer_pool`: bounded per-core pools of byte buffers, lent while they hold bytes.
//! - `home`: which core owns a user.
//! - `limits`: every bound, in one place.
//! - `memory_trim`: when a container that a burst grew is shrunk again.
//! - `config`: the `serve` command line, turned into per-core configuration.
//! - `metrics`: histograms, per-core snapshots, alert thresholds, Prometheus text (sans-IO).
//! - `top`: the `ringline top` client: scrape, parse, rates, table.
//! - `tls`: TLS for the native protocol (sans-IO): a connection's TLS layer, certificates, server settings.
//! - `wal`: the per-core log's format, group commit, replay and recovery rules (sans-IO).
//! - `rt`: the only code that touches glommio, sockets, files and threads.

pub mod account;
pub mod buffer_pool;
pub mod config;
pub mod home;
pub mod limits;
pub mod memory_trim;
pub mod metrics;
pub mod rt;
pub mod shard;
pub mod tls;
pub mod top;
pub mod wal;
