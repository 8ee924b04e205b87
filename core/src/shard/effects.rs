//! The shard's outputs as one contract: `Output`, what the shard asks the runtime to do, given one at a time
//! by `Shard::poll_output`. The runtime calls `poll_output` until it says `None` after every input call
//! (`handle_*`, `consume_outbound`, `poll_mesh`, `begin_shutdown`, ...) and answers each output as its
//! variant says; the engine's `driver::drive` is the one place that does.
//!
//! Not outputs but queries and takes, made while the runtime serves a connection or runs a pump or the log:
//! `outbound(conn)` and `consume_outbound` (bytes to write), `conn_status(conn)` (what to do with the
//! socket), `take_handoff(conn)` (where a socket goes), `poll_mesh(peer, ..)` (a batch for a peer's channel,
//! taken when the channel has room) and `poll_wal_write` (the log's next group, taken when the log is free).
//!
//! Every queue behind `poll_output` is bounded: connections to serve by the connections of this core, plus
//! those closed since the runtime last took its outputs (each connection is queued at most once until it is
//! given out, `Connection::queued_to_serve`), peers by the core count, PINs by the connections (one
//! per connection at a time), device records by `DEVICE_RECORDS_PENDING_MAX`, admin answers by
//! `ADMIN_REQUESTS_PENDING_MAX` (plus the refusals of one drive), segments to delete by the
//! segments on disk. Owns only the order outputs are given in; the queues belong to the concerns that fill
//! them.

use crate::account::IssuedPin;
use crate::home::ShardId;

use super::Shard;
use super::admin::{AdminAnswer, AdminTicket};
use super::connection::ConnId;
use super::device_records::DeviceRecord;

/// One thing the shard asks the runtime to do, with the answer the runtime owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Hand `pin` to the PIN sender without waiting, then answer at once: `handle_pin_handed_over` if it took
    /// it, else `handle_pin_not_handed_over`. The connection reads nothing more until the answer.
    SendPin { conn: ConnId, pin: IssuedPin },
    /// The connection has news: bytes in `outbound(conn)`, a change of `conn_status(conn)`, or it may read
    /// again. Serve it soon (write, look at its status, read while it may); no answer beyond that.
    Serve(ConnId),
    /// Messages wait for core `ShardId`: its pump takes them with `poll_mesh` when the channel has room, until
    /// `poll_mesh` says nothing more waits.
    MeshReady(ShardId),
    /// Log records wait: the log takes the next group with `poll_wal_write` when no write is in flight (under
    /// `Durability::Async`, at its next flush), and answers it with `handle_wal_done` once durable or
    /// `handle_wal_failed` (then retries the same write). Given again only after a `poll_wal_write` took what
    /// waited, so the group grows until the log takes it.
    LogReady,
    /// A compaction made this log segment redundant: delete its file. No answer.
    DeleteSegment(u64),
    /// Append this device generation to the core's device log and make it durable (off the executor
    /// thread), then answer `handle_device_recorded`, or `handle_device_record_failed`. Each record is given
    /// once, in the order they were made.
    RecordDevice(DeviceRecord),
    /// The answer to the admin request `ticket` (`handle_admin`): hand it to whoever asked. No answer. Each
    /// ticket is answered once.
    AdminAnswer { ticket: AdminTicket, answer: AdminAnswer },
}

impl Shard {
    /// The next thing the runtime should do, or `None` once there is nothing. Call it until `None` after
    /// every input call (see the module documentation for the answers owed).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some((conn, pin)) = self.pins_to_send.pop_front() {
            return Some(Output::SendPin { conn, pin });
        }
        if let Some(conn) = self.wakeups.pop_front() {
            if let Some(connection) = self.conns.get_mut(conn) {
                connection.queued_to_serve = false;
            }
            return Some(Output::Serve(conn));
        }
        if let Some(peer) = self.mesh_ready_peers.pop() {
            self.mesh_ready[peer.index()] = false;
            return Some(Output::MeshReady(peer));
        }
        if !self.log_announced && self.log.has_pending() {
            self.log_announced = true;
            return Some(Output::LogReady);
        }
        if let Some(segment) = self.log.next_deletion() {
            return Some(Output::DeleteSegment(segment));
        }
        if let Some(record) = self.device_records.next_unpolled() {
            return Some(Output::RecordDevice(record));
        }
        self.admin.next().map(|(ticket, answer)| Output::AdminAnswer { ticket, answer })
    }
}
