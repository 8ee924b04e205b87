//! The mesh steps around the shard: a pump takes a batch for its peer out of the shard's outbox
//! (`take_batch`), and a drain hands what a peer sent to the shard (`arrive`): the sockets it moves here
//! first, adopted and given to the I/O side (`Adopter`), then its messages. Moving batches over the bounded
//! channels, and waiting for room, are the caller's.

use ringline_core::home::ShardId;
use ringline_core::shard::{ConnId, ConnectionsFull, Handoff, Now, Shard, ShardMsg};

use super::effects::{Effects, drive};

/// Moves up to a batch of messages for `peer` into `messages` (connections paused for room in that outbox
/// may go on), and drives what that asks for. Returns whether more messages wait.
pub fn take_batch(
    shard: &mut Shard,
    effects: &mut impl Effects,
    peer: ShardId,
    messages: &mut Vec<ShardMsg>,
    now: Now,
) -> bool {
    let more = shard.poll_mesh(peer, messages, now);
    drive(shard, effects);
    more
}

/// Where the sockets another core hands over go: `S` is the I/O side's socket (a file descriptor and its
/// TLS session in the runtime, a simulated socket in the simulator).
pub trait Adopter<S> {
    /// The shard adopted the socket as `conn`: serve it from now on.
    fn attach(&mut self, shard: &mut Shard, conn: ConnId, socket: S);
    /// The shard holds its maximum of connections: `socket` is closed.
    fn refuse(&mut self, from: ShardId, full: ConnectionsFull, socket: S);
}

/// A batch from core `from` arrived: adopts the sockets it moves here (before its messages, which may be
/// for them), hands the shard the messages, and drives what that asks for. `io` is both the core's effects
/// and where adopted sockets go.
pub fn arrive<S>(
    shard: &mut Shard,
    io: &mut (impl Effects + Adopter<S>),
    from: ShardId,
    adopts: impl IntoIterator<Item = (Handoff, S)>,
    messages: Vec<ShardMsg>,
    now: Now,
) {
    for (handoff, socket) in adopts {
        match shard.handle_adopt(handoff, now) {
            Ok(conn) => io.attach(shard, conn, socket),
            Err(full) => io.refuse(from, full, socket),
        }
    }
    shard.handle_mesh(from, messages, now);
    drive(shard, io);
}
