//! The runtime's side of `driver::Effects` for one core: a connection to serve goes into the socket table's
//! ready queue (and the I/O loop is woken once per drive), a peer with messages gets its pump woken, log
//! records wake the log task, freed segments and device generations are queued for the log and
//! device-record tasks, and a PIN goes to the PIN sender. Every call returns at once; the tasks do the work.
//! Sockets another core moved here are attached to this core's socket table and readiness (`Adopter`).
//!
//! Owns nothing but the borrow of the socket table while a drive queues connections. The queues it fills are
//! the context's and bounded by what the shard hands out: segments to delete by the segments on disk,
//! device records by `DEVICE_RECORDS_PENDING_MAX`.

use std::cell::RefMut;
use std::os::fd::OwnedFd;

use ringline_core::account::IssuedPin;
use ringline_core::home::ShardId;
use ringline_core::shard::{AdminAnswer, AdminTicket, ConnId, ConnectionsFull, DeviceRecord, Now, Shard};
use ringline_core::tls::TlsSession;

use crate::driver::Effects;
use crate::driver::mesh::Adopter;

use super::context::CoreContext;
use super::sockets::SocketTable;

/// `driver::Effects` over one core's context. Make one per drive (`CoreContext::effects`); dropping it wakes
/// the I/O loop if a connection was queued.
pub struct CoreEffects<'a> {
    core: &'a CoreContext,
    /// Borrowed at the first connection to serve, held until the drive ends.
    sockets: Option<RefMut<'a, SocketTable>>,
}

impl<'a> CoreEffects<'a> {
    pub fn new(core: &'a CoreContext) -> Self {
        Self { core, sockets: None }
    }
}

impl Effects for CoreEffects<'_> {
    fn now(&mut self) -> Now {
        self.core.now()
    }

    fn serve(&mut self, conn: ConnId) {
        self.sockets.get_or_insert_with(|| self.core.sockets.borrow_mut()).enqueue(conn);
    }

    fn notify_pump(&mut self, peer: ShardId) {
        self.core.pumps[peer.index()].notify();
    }

    fn wake_log(&mut self) {
        self.core.log_wake.notify();
    }

    fn delete_segment(&mut self, segment: u64) {
        self.core.segments_to_delete.borrow_mut().push(segment);
    }

    fn record_device(&mut self, record: DeviceRecord) {
        self.core.device_records_out.borrow_mut().push(record);
        self.core.device_wake.notify();
    }

    fn hand_pin_over(&mut self, pin: IssuedPin) -> bool {
        self.core.pin_sender().send(pin).is_ok()
    }

    fn answer_admin(&mut self, ticket: AdminTicket, answer: AdminAnswer) {
        self.core.admin.answer(ticket, answer);
    }
}

impl CoreEffects<'_> {
    /// Ends the borrow of the socket table, waking the I/O loop if a connection was queued.
    fn release_sockets(&mut self) {
        if self.sockets.take().is_some() {
            self.core.io_wake.notify();
        }
    }
}

impl Drop for CoreEffects<'_> {
    fn drop(&mut self) {
        self.release_sockets();
    }
}

/// A socket another core moved here, with its TLS session if it is a TLS connection.
pub type MovedSocket = (OwnedFd, Option<Box<TlsSession>>);

impl Adopter<MovedSocket> for CoreEffects<'_> {
    fn attach(&mut self, shard: &mut Shard, conn: ConnId, (fd, tls): MovedSocket) {
        // Attaching takes the socket table itself.
        self.release_sockets();
        self.core.attach_connection(shard, conn, fd, tls);
    }

    fn refuse(&mut self, from: ShardId, full: ConnectionsFull, socket: MovedSocket) {
        tracing::warn!(%full, "refusing a connection handed over from {from}");
        drop(socket);
    }
}
