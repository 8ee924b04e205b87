//! What the I/O side provides to carry out a shard's outputs (`Effects`), and `drive`, which takes every
//! output the shard has (`Shard::poll_output`) and hands each to it. The runtime and the simulator each
//! implement `Effects`; the mapping from output to effect, and the answers given back to the shard, are here
//! once. Owns no state: queues of work handed over (connections to serve, records to write) belong to the
//! implementation, bounded by what the shard hands out (see `shard::Output`).

use ringline_core::account::IssuedPin;
use ringline_core::home::ShardId;
use ringline_core::shard::{ConnId, DeviceRecord, Now, Output, Shard};

/// What the I/O side does for one core's shard. Each call returns at once: work that takes time (a write, a
/// sync) is queued for a task of the implementation, which answers the shard later through this module's
/// sibling steps (`log::write_done`, `device_records::recorded`).
pub trait Effects {
    /// The time now, for answers `drive` gives at once (a PIN handed over). Asked only when needed: most
    /// drives have none.
    fn now(&mut self) -> Now;
    /// Serve `conn` soon (write its outbound bytes, look at its status, read while it may).
    fn serve(&mut self, conn: ConnId);
    /// Messages wait for `peer`: wake that peer's pump, which takes them with `mesh::take_batch`.
    fn notify_pump(&mut self, peer: ShardId);
    /// Log records wait: wake the log, which takes the next group with `log::next_write` when it is free.
    fn wake_log(&mut self);
    /// Delete log segment `segment`: a compaction made it redundant.
    fn delete_segment(&mut self, segment: u64);
    /// Append `record` to the core's device log and make it durable, then answer with
    /// `device_records::recorded`.
    fn record_device(&mut self, record: DeviceRecord);
    /// Hand `pin` to the PIN sender without waiting. Returns whether it took it.
    fn hand_pin_over(&mut self, pin: IssuedPin) -> bool;
}

/// Carries out everything the shard asks for now, answering at once what is answered at once (PIN
/// handovers). Call it after every input to the shard.
pub fn drive(shard: &mut Shard, effects: &mut impl Effects) {
    let mut now = None;
    while let Some(output) = shard.poll_output() {
        match output {
            Output::SendPin { conn, pin } => {
                let now = *now.get_or_insert_with(|| effects.now());
                if effects.hand_pin_over(pin) {
                    shard.handle_pin_handed_over(conn, pin, now);
                } else {
                    shard.handle_pin_not_handed_over(conn, pin, now);
                }
            }
            Output::Serve(conn) => effects.serve(conn),
            Output::MeshReady(peer) => effects.notify_pump(peer),
            Output::LogReady => effects.wake_log(),
            Output::DeleteSegment(segment) => effects.delete_segment(segment),
            Output::RecordDevice(record) => effects.record_device(record),
        }
    }
}
