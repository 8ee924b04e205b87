//! What drives the sans-IO shard, written once for the runtime (`rt/`) and the simulator (`engine/tests/sim`):
//! each part is generic over what it needs from its host (sockets, clock), so the simulator runs the code the
//! runtime runs. Owns no I/O and no state between calls.
//!
//! - `connection`: one visit to a connection: flush, act on its status, bounded reads.

pub mod connection;
