//! The one place that turns a shard's outputs into effects: `drive` takes every `shard::Output` the shard has
//! and hands each to an `Effects` implementation, and the log, device-record and mesh steps around the shard
//! are plain functions here too. It is generic over the I/O (static dispatch, no allocation per output), so
//! the runtime (`rt`, on glommio) and the simulator (`engine/tests/sim`, over a simulated disk, links and
//! clock) run the same driving code. It touches no glommio, socket, file or clock itself: whoever implements
//! `Effects` (and the small traits of the steps) does, and owns the tasks, timers and buffers around it.
//!
//! - `effects`: the `Effects` trait and `drive`, which every step ends with.
//! - `log`: the log's turn: take the next group, report it durable (or failed).
//! - `device_records`: a batch of device generations reported durable (or failed).
//! - `mesh`: the pump's step (a batch out of the outbox) and the drain's (sockets adopted, a batch handed in).

pub mod device_records;
pub mod effects;
pub mod log;
pub mod mesh;

pub use effects::{Effects, drive};
