//! The one place that turns a shard's outputs into effects: `drive` takes every `shard::Output` the shard has
//! and hands each to an `Effects` implementation, and the log, device-record and mesh steps around the shard
//! are plain functions here too. It is generic over the I/O (static dispatch, no allocation per output), so
//! the runtime (`rt`, on glommio) and the simulator (`engine/tests/sim`, over a simulated disk, links and
//! clock) run the same driving code. It touches no glommio, socket, file or clock itself: whoever implements
//! `Effects` does.
