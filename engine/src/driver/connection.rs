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
