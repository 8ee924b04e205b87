//! What the I/O side provides to carry out a shard's outputs (`Effects`), and `drive`, which takes every
//! output the shard has (`Shard::poll_output`) and hands each to it. The runtime and the simulator each
//! implement `Effects`; the mapping from output to effect, and the answers given back to the shard, are here
//! once. Owns no state: queues of work handed over (connections to serve, records to write) belong to the
//! implementation, bounded by what the shard hands out (see `shard::Output`).

use ringline_core::account::IssuedPin;
use ringline_core::home::ShardId;
use ringline_core::shard::{AdminAnswer, AdminTicket, ConnId, DeviceRecord, Now, Output, Shard};

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
    /// Hand `answer` to whoever asked admin request `ticket` (`Shard::handle_admin`), without waiting.
    fn answer_admin(&mut self, ticket: AdminTicket, answer: AdminAnswer);
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
            Output::AdminAnswer { ticket, answer } => effects.answer_admin(ticket, answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use ringline_core::account::{Directory, KeyAuthority, ProvisionBatch};
    use wire::{ClientFrame, Decoded, RegisterRefusal, ServerFrame};

    use super::*;
    use crate::config::{ServeArgs, ServeConfig, ShardAccounts};

    const NOW: Now = Now { mono_us: 1_000_000, wall_us: 1_700_000_000_000_000 };

    /// Effects that record what `drive` asked for; the PIN sender refuses every PIN (its queue full).
    #[derive(Default)]
    struct Recorded {
        clock_reads: usize,
        served: Vec<ConnId>,
        pins_offered: usize,
    }

    impl Effects for Recorded {
        fn now(&mut self) -> Now {
            self.clock_reads += 1;
            NOW
        }
        fn serve(&mut self, conn: ConnId) {
            self.served.push(conn);
        }
        fn notify_pump(&mut self, peer: ShardId) {
            panic!("one core has no peer, yet {peer} was notified");
        }
        fn wake_log(&mut self) {}
        fn delete_segment(&mut self, segment: u64) {
            panic!("segment {segment} deleted without a compaction");
        }
        fn record_device(&mut self, record: DeviceRecord) {
            panic!("{record:?} recorded without a registration");
        }
        fn hand_pin_over(&mut self, _pin: IssuedPin) -> bool {
            self.pins_offered += 1;
            false
        }
        fn answer_admin(&mut self, ticket: AdminTicket, answer: AdminAnswer) {
            panic!("{ticket:?} answered without a request: {answer:?}");
        }
    }

    /// One core's shard as `ringline serve` configures it by default, with ten provisioned users.
    fn one_core_shard() -> Shard {
        let args = ServeArgs { listen: Some("127.0.0.1:0".parse().expect("an address")), ..ServeArgs::default() };
        let accounts = ShardAccounts {
            keys: KeyAuthority::new([7; 32]),
            directory: Arc::new(Directory::new(vec![ProvisionBatch { prefix: 1555, width: 7, count: 10 }])),
            generations: Arc::new(HashMap::new()),
        };
        Shard::new(ShardId(0), ServeConfig::resolve(&args).expect("the defaults").shard_config(1, accounts))
    }

    #[test]
    fn a_pin_the_sender_refuses_is_answered_within_the_drive_which_reads_the_clock_only_for_it() {
        let mut shard = one_core_shard();
        let mut effects = Recorded::default();
        let conn = shard.handle_accept(NOW).expect("room");
        drive(&mut shard, &mut effects);
        assert_eq!(effects.clock_reads, 0, "nothing to answer, no clock");

        let mut bytes = Vec::new();
        wire::encode_client(&ClientFrame::RegisterRequest { phone: 15_550_000_001 }, &mut bytes);
        shard.handle_bytes(conn, &bytes, NOW);
        drive(&mut shard, &mut effects);
        assert_eq!((effects.pins_offered, effects.clock_reads), (1, 1));
        assert_eq!(effects.served, [conn], "the answer is written in the same drive");
        let Ok(Decoded::Frame { frame, .. }) = wire::decode_server(shard.outbound(conn), usize::MAX) else {
            panic!("a frame for the connection");
        };
        assert!(
            matches!(frame, ServerFrame::RegisterRefused { code: RegisterRefusal::Unavailable, retry_after_s: 5, .. }),
            "{frame:?}"
        );

        drive(&mut shard, &mut effects);
        assert_eq!((effects.pins_offered, effects.clock_reads, effects.served.len()), (1, 1, 1), "each output once");
    }
}
