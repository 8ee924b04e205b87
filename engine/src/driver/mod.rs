//! The one place that drives the sans-IO shard, written once for the runtime (`rt`, on glommio) and the
//! simulator (`engine/tests/sim`, over simulated sockets, links, disk and clock): `drive` takes every
//! `shard::Output` the shard has and hands each to an `Effects` implementation; a connection's visit, the log's
//! turn, the device-record and mesh steps around the shard are plain functions here too. Everything is generic
//! over what it needs from its host (static dispatch, no allocation per output or visit), so the simulator runs
//! the code the runtime runs. It touches no glommio, socket, file or clock itself and keeps no state between
//! calls: whoever implements the traits does, and owns the tasks, timers and buffers around them.
//!
//! - `effects`: the `Effects` trait and `drive`, which every step ends with.
//! - `connection`: one visit to a connection: flush, act on its status, bounded reads.
//! - `log`: the log's turn: take the next group, report it durable (or failed).
//! - `device_records`: a batch of device generations reported durable (or failed).
//! - `mesh`: the pump's step (a batch out of the outbox) and the drain's (sockets adopted, a batch handed in).

pub mod connection;
pub mod device_records;
pub mod effects;
pub mod log;
pub mod mesh;

pub use effects::{Effects, drive};
