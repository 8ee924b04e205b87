//! A connection's output: frames encoded into its outbound buffer (bounded), bytes the runtime wrote taken off,
//! and what the runtime should do with the connection (`conn_status`), whom to serve (`Output::Serve`), which
//! socket to hand to another core. GOAWAY and closing after a flush live here; deciding to send them does not.

use wire::{ErrorCode, GoawayReason, RejectCode, ServerFrame};

use crate::limits::OUTBOUND_BYTES_MAX;

use super::connection::{ConnId, Stage};
use super::{ConnStatus, Handoff, Now, Shard};

impl Shard {
    /// The runtime wrote the first `written` bytes of `outbound(conn)`.
    pub fn consume_outbound(&mut self, conn: ConnId, written: usize, now: Now) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        let was_full = connection.outbound.len() >= OUTBOUND_BYTES_MAX;
        if written > 0 {
            connection.last_written_us = now.mono_us;
        }
        connection.outbound.drain(..written.min(connection.outbound.len()));
        if connection.outbound.is_empty() {
            // An idle connection owns no buffer.
            self.buffers.give(std::mem::take(&mut connection.outbound));
        }
        if let Some(user) = connection.user() {
            self.fill_deliveries(user);
        }
        if was_full {
            self.resume(conn, now);
        }
        self.run_local(now);
    }

    /// Encoded frames waiting to be written to `conn`.
    pub fn outbound(&self, conn: ConnId) -> &[u8] {
        self.conns.get(conn).map_or(&[], |connection| &connection.outbound)
    }

    pub fn conn_status(&self, conn: ConnId) -> ConnStatus {
        let Some(connection) = self.conns.get(conn) else { return ConnStatus::Gone };
        if connection.close_now {
            return ConnStatus::CloseNow;
        }
        match connection.stage {
            Stage::Closing => ConnStatus::CloseAfterFlush,
            Stage::HandingOff => ConnStatus::HandOff,
            Stage::Handshaking | Stage::Active { .. } => ConnStatus::Open { may_read: self.may_read(connection) },
        }
    }

    /// Removes a connection in `HandOff` status and returns where its socket goes. The runtime sends the
    /// socket and this handoff to that core, which calls `handle_adopt`.
    pub fn take_handoff(&mut self, conn: ConnId) -> Option<Handoff> {
        let handoff = self.handoffs.remove(&conn)?;
        if let Some(connection) = self.conns.remove(conn) {
            self.buffers.give(connection.outbound);
            self.buffers.give(connection.partial);
        }
        self.stats.handoffs_out += 1;
        Some(handoff)
    }

    pub(super) fn write(&mut self, conn: ConnId, frame: &ServerFrame<'_>) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        if connection.outbound.is_empty() {
            if !std::mem::replace(&mut connection.queued_to_serve, true) {
                self.wakeups.push_back(conn);
            }
            if connection.outbound.capacity() == 0 {
                connection.outbound = self.buffers.take();
            }
        }
        wire::encode_server(frame, &mut connection.outbound);
    }

    /// `conn` has news for the runtime (`Output::Serve`): bytes to write, reading resumed, its status changed.
    pub(super) fn serve_soon(&mut self, conn: ConnId) {
        if let Some(connection) = self.conns.get_mut(conn)
            && !std::mem::replace(&mut connection.queued_to_serve, true)
        {
            self.wakeups.push_back(conn);
        }
    }

    pub(super) fn reject(&mut self, conn: ConnId, client_msg_id: u64, code: RejectCode) {
        self.stats.count_reject(code);
        self.write(conn, &ServerFrame::Reject { client_msg_id, code });
    }

    /// Writes ERROR and closes the connection after it.
    pub(super) fn fail(&mut self, conn: ConnId, code: ErrorCode, text: &str) {
        self.stats.count_error(code);
        self.write(conn, &ServerFrame::Error { code, text });
        self.close_after_flush(conn);
    }

    /// Writes GOAWAY and closes the connection after it.
    pub(super) fn goaway(&mut self, conn: ConnId, reason: GoawayReason) {
        if self.conns.get(conn).is_none_or(|c| c.stage == Stage::Closing) {
            return;
        }
        self.write(conn, &ServerFrame::Goaway { reason });
        self.close_after_flush(conn);
    }

    /// During shutdown: GOAWAY once no SEND of the connection waits for an answer.
    pub(super) fn goaway_when_settled(&mut self, conn: ConnId) {
        match self.conns.get(conn) {
            Some(connection) if connection.sends_inflight == 0 && !connection.awaits_registration_answer() => {
                self.goaway(conn, GoawayReason::ShuttingDown)
            }
            _ => {}
        }
    }

    pub(super) fn close_after_flush(&mut self, conn: ConnId) {
        let Some(connection) = self.conns.get_mut(conn) else { return };
        let previous = std::mem::replace(&mut connection.stage, Stage::Closing);
        self.buffers.give(std::mem::take(&mut connection.partial));
        self.handoffs.remove(&conn);
        self.serve_soon(conn);
        if let Stage::Active { user } = previous {
            self.end_session(user, conn);
        }
    }
}
