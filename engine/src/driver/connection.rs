//! One visit to a connection: the loop that moves bytes between a connection's socket and its shard, the same
//! for the runtime (`rt/conn.rs`: a socket and, for TLS, its session) and for the simulator
//! (`engine/tests/sim/harness.rs`: a simulated socket). A visit writes what the shard queued for the connection
//! (bytes the transport holds of its own, such as TLS records, first), then acts on the connection's status
//! (close it, hand it off, or leave its input unread while the shard says so), then reads a bounded number of
//! times, handing what it reads to the shard, and flushes again after each read. It ends when the connection
//! has nothing to do until the next readiness edge or wake-up, or after `READS_PER_POLL_MAX` reads (the
//! transport then serves it again after the other connections of its core).
//!
//! Owns no protocol decision (the shard says what to write, when to stop reading, when to close and where a
//! connection goes) and no I/O: the `Transport` makes every system call (or simulated one) and keeps whatever
//! lies between the socket and the shard's plaintext. Generic, so a visit costs no dynamic call and no
//! allocation here; the system calls per visit are the transport's, one per write or read the loop asks for.
//!
//! Invariants: the shard's outbound bytes are consumed only as far as the transport took them, in order;
//! `Core::dispatch` runs after every shard call that can have effects, before the loop goes on; a connection
//! is read only while its status is `Open { may_read: true }`; a closed or handed-off connection is never
//! touched again in the visit.

use std::ops::DerefMut;

use ringline_core::limits::READS_PER_POLL_MAX;
use ringline_core::shard::{ConnId, ConnStatus, Handoff, Now, Shard};

/// How a connection leaves its core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Close the socket now.
    Abort,
    /// Its last frame is written: end it politely (FIN, after TLS close_notify) and let it linger.
    Graceful,
}

/// What writing the bytes a transport holds of its own did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBytes {
    /// None are left (a plain transport never holds any).
    AllWritten,
    /// Some are left for when the socket has room; room brings the connection back.
    NoRoom,
    /// The socket failed: close the connection.
    Failed,
}

/// What offering the shard's outbound bytes to a transport did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// The transport took the first `bytes`; `full`: the socket takes no more for now, and room brings the
    /// connection back.
    Wrote { bytes: usize, full: bool },
    /// The socket has no room: nothing taken; room brings the connection back.
    NoRoom,
    /// Nothing taken, and not for lack of room: the transport cannot carry the shard's bytes yet (a TLS
    /// handshake in progress).
    Withheld,
    /// The socket or the transport failed: close the connection.
    Failed,
}

/// What one read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Bytes were read and what they carry went to the shard (for TLS, possibly nothing yet).
    Received,
    /// Bytes were read and went to the shard, and the transport ended with them (TLS: close_notify, or a
    /// failure, counted): close the connection.
    ReceivedThenEnded,
    /// Nothing to read now: new input brings the connection back.
    Empty,
    /// End of input, or the socket failed: close the connection.
    Ended,
}

/// The core a connection belongs to, as its runtime holds it.
pub trait Core {
    /// The core's shard. The loop holds it only within one call: `dispatch` may need it.
    fn shard(&mut self) -> impl DerefMut<Target = Shard>;
    fn now(&self) -> Now;
    /// Carries out what the last shard calls asked for (wake-ups, pumps, PINs, the log).
    fn dispatch(&mut self);
}

/// One connection's socket, as the loop drives it during a visit. Reads hand what they carry to the shard
/// themselves (`Shard::handle_bytes`), since a TLS record can hold several pieces of plaintext.
pub trait Transport: Core {
    /// The connection this socket belongs to.
    fn conn(&self) -> ConnId;

    /// Writes the bytes the transport holds of its own, which go out before any more of the shard's (a TLS
    /// session's records).
    fn write_held(&mut self) -> HeldBytes {
        HeldBytes::AllWritten
    }

    /// Offers the shard's outbound bytes (`Shard::outbound`, not empty) to the socket. Consumes nothing: the
    /// loop consumes what was taken.
    fn write_outbound(&mut self) -> Write;

    /// Whether a read may find input (false once a read found the socket empty, until new input is
    /// announced). Saves a read that would find nothing.
    fn may_have_input(&self) -> bool;

    /// Reads once and hands what was read to the shard.
    fn read(&mut self) -> Read;

    /// The visit ends with input maybe left unread, to be fair to the core's other connections: serve this
    /// one again after them.
    fn come_back(&mut self);

    /// Takes the socket away from the connection id: news for the id no longer reaches it. `close` follows
    /// once the shard has forgotten the connection.
    fn detach(&mut self);

    /// Ends the socket `detach` took, as `how` says.
    fn close(&mut self, how: Close);

    /// Sends the socket to the core `handoff` names; the shard has forgotten the connection already.
    fn hand_off(&mut self, handoff: Handoff);
}

/// One visit to the connection of `transport`: flush, act on its status, read a bounded number of times.
pub fn serve(transport: &mut impl Transport) {
    let conn = transport.conn();
    let mut reads = 0;
    loop {
        let flushed = flush(transport);
        if flushed == Flush::Failed {
            return close(transport, Close::Abort);
        }
        let status = transport.shard().conn_status(conn);
        match status {
            ConnStatus::Gone | ConnStatus::CloseNow => return close(transport, Close::Abort),
            ConnStatus::CloseAfterFlush if flushed == Flush::WaitsForRoom => return,
            ConnStatus::CloseAfterFlush => return close(transport, Close::Graceful),
            ConnStatus::HandOff => return hand_off(transport),
            ConnStatus::Open { may_read: false } => return,
            ConnStatus::Open { may_read: true } => {}
        }
        if !transport.may_have_input() {
            return;
        }
        if reads == READS_PER_POLL_MAX {
            transport.come_back();
            return;
        }
        let read = transport.read();
        match read {
            Read::Received => {
                reads += 1;
                transport.dispatch();
            }
            Read::ReceivedThenEnded => {
                transport.dispatch();
                return close(transport, Close::Abort);
            }
            Read::Empty => return,
            Read::Ended => return close(transport, Close::Abort),
        }
    }
}

/// Ends the connection: the socket leaves it, the shard forgets it, the socket closes as `how` says.
pub fn close(transport: &mut impl Transport, how: Close) {
    let conn = transport.conn();
    transport.detach();
    transport.shard().handle_closed(conn);
    transport.dispatch();
    transport.close(how);
}

/// What a flush left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    /// Nothing waits for room in the socket (the shard's bytes may wait for a TLS handshake).
    Complete,
    /// Bytes wait for room; room brings the connection back.
    WaitsForRoom,
    Failed,
}

/// Writes what the transport holds, then the shard's outbound bytes, while the socket takes them (writing may
/// let the shard queue more: deliveries paused by a full buffer).
fn flush(transport: &mut impl Transport) -> Flush {
    let conn = transport.conn();
    loop {
        match transport.write_held() {
            HeldBytes::AllWritten => {}
            HeldBytes::NoRoom => return Flush::WaitsForRoom,
            HeldBytes::Failed => return Flush::Failed,
        }
        if transport.shard().outbound(conn).is_empty() {
            return Flush::Complete;
        }
        let written = transport.write_outbound();
        match written {
            Write::Wrote { bytes, full } => {
                let now = transport.now();
                transport.shard().consume_outbound(conn, bytes, now);
                transport.dispatch();
                if full {
                    return Flush::WaitsForRoom;
                }
            }
            Write::NoRoom => return Flush::WaitsForRoom,
            Write::Withheld => return Flush::Complete,
            Write::Failed => return Flush::Failed,
        }
    }
}

/// Sends the connection's socket to the core its user lives on, with what the shard hands over.
fn hand_off(transport: &mut impl Transport) {
    let conn = transport.conn();
    // The socket moves without a flush: a connection on its way must owe its client nothing.
    debug_assert!(transport.shard().outbound(conn).is_empty(), "a connection handed off with output");
    let handoff = transport.shard().take_handoff(conn);
    match handoff {
        Some(handoff) => transport.hand_off(handoff),
        None => close(transport, Close::Abort),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Arc;

    use ringline_core::account::{Directory, KeyAuthority, ProvisionBatch};
    use ringline_core::home::{ShardId, home_core};
    use wire::{ClientFrame, Decoded, ServerFrame};

    use super::*;
    use crate::config::{ServeArgs, ServeConfig, ShardAccounts};

    const NOW: Now = Now { mono_us: 1, wall_us: 1 };

    /// A socket that reads the pieces it is given, one a read, and takes writes up to its room.
    struct ScriptedSocket {
        shard: Shard,
        conn: ConnId,
        /// What each next read returns.
        input: VecDeque<Vec<u8>>,
        /// After the input, a read finds the end of input (else: nothing, for now).
        input_ends: bool,
        /// Bytes the socket takes before it is full.
        room: usize,
        written: Vec<u8>,
        reads: usize,
        came_back: bool,
        detached: bool,
        closed: Option<Close>,
        handed_off: Option<Handoff>,
    }

    impl ScriptedSocket {
        fn new(mut shard: Shard) -> Self {
            let conn = shard.handle_accept(NOW).expect("room for a connection");
            Self {
                shard,
                conn,
                input: VecDeque::new(),
                input_ends: false,
                room: usize::MAX,
                written: Vec::new(),
                reads: 0,
                came_back: false,
                detached: false,
                closed: None,
                handed_off: None,
            }
        }

        fn frames_written(&self) -> Vec<u8> {
            let mut kinds = Vec::new();
            let mut used = 0;
            while let Ok(Decoded::Frame { frame, consumed }) = wire::decode_server(&self.written[used..], 1 << 20) {
                kinds.push(frame.kind());
                used += consumed;
            }
            assert_eq!(used, self.written.len(), "whole frames written");
            kinds
        }
    }

    impl Core for ScriptedSocket {
        fn shard(&mut self) -> impl DerefMut<Target = Shard> {
            &mut self.shard
        }

        fn now(&self) -> Now {
            NOW
        }

        fn dispatch(&mut self) {
            // One connection and no other task: what the shard asks for is taken and left undone.
            while self.shard.poll_output().is_some() {}
        }
    }

    impl Transport for ScriptedSocket {
        fn conn(&self) -> ConnId {
            self.conn
        }

        fn write_outbound(&mut self) -> Write {
            assert!(!self.detached, "a write after the socket left");
            if self.room == 0 {
                return Write::NoRoom;
            }
            let outbound = self.shard.outbound(self.conn);
            let bytes = outbound.len().min(self.room);
            self.written.extend_from_slice(&outbound[..bytes]);
            self.room -= bytes;
            Write::Wrote { bytes, full: bytes < outbound.len() }
        }

        fn may_have_input(&self) -> bool {
            true
        }

        fn read(&mut self) -> Read {
            assert!(!self.detached, "a read after the socket left");
            let Some(piece) = self.input.pop_front() else {
                return if self.input_ends { Read::Ended } else { Read::Empty };
            };
            self.reads += 1;
            self.shard.handle_bytes(self.conn, &piece, NOW);
            Read::Received
        }

        fn come_back(&mut self) {
            self.came_back = true;
        }

        fn detach(&mut self) {
            self.detached = true;
        }

        fn close(&mut self, how: Close) {
            assert!(self.detached, "closed before it was detached");
            assert!(self.closed.replace(how).is_none(), "closed twice");
        }

        fn hand_off(&mut self, handoff: Handoff) {
            assert!(self.handed_off.replace(handoff).is_none(), "handed off twice");
        }
    }

    /// A shard of `cores` cores (this one is core 0) with ten provisioned users, configured as `serve` with
    /// its defaults configures one.
    fn shard(cores: u16) -> (Shard, KeyAuthority, ProvisionBatch) {
        let keys = KeyAuthority::new([7; 32]);
        let batch = ProvisionBatch { prefix: 1, width: 7, count: 10 };
        let args = ServeArgs { listen: Some("127.0.0.1:0".parse().expect("an address")), ..ServeArgs::default() };
        let accounts = ShardAccounts {
            keys: keys.clone(),
            directory: Arc::new(Directory::new(vec![batch])),
            generations: Arc::new(HashMap::new()),
        };
        let config = ServeConfig::resolve(&args).expect("the defaults are valid").shard_config(cores, accounts);
        (Shard::new(ShardId(0), config), keys, batch)
    }

    fn encoded(frame: &ClientFrame<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        wire::encode_client(frame, &mut bytes);
        bytes
    }

    #[test]
    fn a_visit_answers_each_read_and_stops_at_the_read_limit() {
        let (shard, _, _) = shard(1);
        let mut socket = ScriptedSocket::new(shard);
        let pings = READS_PER_POLL_MAX + 2;
        socket.input = (0..pings as u64).map(|nonce| encoded(&ClientFrame::Ping { nonce })).collect();

        serve(&mut socket);
        assert_eq!(socket.reads, READS_PER_POLL_MAX);
        assert!(socket.came_back, "input left: the connection is served again after the others");
        let pong = ServerFrame::Pong { nonce: 0 }.kind();
        assert_eq!(socket.frames_written(), vec![pong; READS_PER_POLL_MAX], "each read's answer flushed");

        socket.came_back = false;
        serve(&mut socket);
        assert_eq!(socket.reads, pings);
        assert!(!socket.came_back, "the input ran out: new input brings it back");
        assert_eq!(socket.frames_written().len(), pings);
        assert!(socket.closed.is_none() && !socket.detached);
    }

    #[test]
    fn a_connection_closing_after_its_last_frame_waits_for_room_then_closes_gracefully() {
        let (shard, _, _) = shard(1);
        let mut socket = ScriptedSocket::new(shard);
        // A frame longer than any the server takes: ERROR, then close after it.
        socket.input.push_back(vec![0xFF; 8]);
        socket.room = 3;

        serve(&mut socket);
        assert_eq!(socket.shard.conn_status(socket.conn), ConnStatus::CloseAfterFlush);
        assert_eq!(socket.written.len(), 3);
        assert!(!socket.detached && socket.closed.is_none(), "its ERROR is not all written yet");

        socket.room = usize::MAX;
        serve(&mut socket);
        assert_eq!(
            socket.frames_written(),
            vec![ServerFrame::Error { code: wire::ErrorCode::FrameTooLarge, text: "" }.kind()]
        );
        assert_eq!(socket.closed, Some(Close::Graceful));
        assert_eq!(socket.shard.conn_status(socket.conn), ConnStatus::Gone, "the shard forgot it");
    }

    #[test]
    fn an_end_of_input_aborts_the_connection() {
        let (shard, _, _) = shard(1);
        let mut socket = ScriptedSocket::new(shard);
        socket.input.push_back(encoded(&ClientFrame::Ping { nonce: 1 }));
        socket.input_ends = true;

        serve(&mut socket);
        assert_eq!(socket.reads, 1);
        assert_eq!(socket.frames_written().len(), 1, "the answer went out before the end was read");
        assert_eq!(socket.closed, Some(Close::Abort));
        assert_eq!(socket.shard.conn_status(socket.conn), ConnStatus::Gone);
    }

    #[test]
    fn a_login_for_another_core_hands_the_socket_over_without_closing_it() {
        let (shard, keys, batch) = shard(2);
        let user = (0..batch.count)
            .filter_map(|index| batch.user(index))
            .find(|&user| home_core(user, 2) != ShardId(0))
            .expect("a user homed on the other core");
        let mut socket = ScriptedSocket::new(shard);
        socket.input.push_back(encoded(&ClientFrame::Hello {
            version: wire::PROTOCOL_VERSION,
            user,
            key: keys.derive(user, 0),
        }));

        serve(&mut socket);
        let handoff = socket.handed_off.as_ref().expect("handed off");
        assert_eq!((handoff.to, handoff.user), (ShardId(1), user));
        assert!(socket.closed.is_none() && !socket.detached, "the socket goes on, open");
        assert_eq!(socket.shard.conn_status(socket.conn), ConnStatus::Gone, "the shard forgot it");
    }
}
