//! Messages: a SEND checked and deduplicated, stored on the recipient's home core and logged, answered (ACK or
//! REJECT) on every connection that sent a copy once the message is stored (durable under `Durability::Sync`),
//! and delivered from the offline queue in order, within the delivery window. Receipts are `receipts.rs`'s.

use wire::{RejectCode, ServerFrame, UserId};

use crate::home::home_core;
use crate::limits::{DELIVERY_WINDOW_MAX, OUTBOUND_BYTES_MAX, SEND_INFLIGHT_MAX, SENDER_RECEIPTS_MAX};
use crate::wal::{ITEM_SEQ_MASK, LogRecord, send_fingerprint};

use super::connection::{ConnId, Stage};
use super::dedup::{PriorSend, Seen};
use super::mesh::ShardMsg;
use super::offline_queue::Item;
use super::{Flow, Now, Shard};

impl Shard {
    pub(super) fn handle_send(
        &mut self,
        conn: ConnId,
        sender: UserId,
        client_msg_id: u64,
        to: UserId,
        body: &[u8],
        now: Now,
    ) -> Flow {
        self.stats.messages_in += 1;
        if body.is_empty() {
            self.reject(conn, client_msg_id, RejectCode::BodyInvalid);
            return Flow::Continue;
        }
        let fingerprint = send_fingerprint(to, body);
        match self.dedup.look_up(sender, client_msg_id, fingerprint) {
            Seen::Answered(prior) => {
                self.stats.duplicates_suppressed += 1;
                self.answer(conn, client_msg_id, prior);
                return Flow::Continue;
            }
            Seen::InFlight => {
                // This copy is answered on its own connection when the first copy's answer comes.
                self.stats.duplicates_suppressed += 1;
                self.dedup.join(sender, client_msg_id, conn);
                if let Some(connection) = self.conns.get_mut(conn) {
                    connection.sends_inflight += 1;
                }
                return self.paused_flow(conn);
            }
            Seen::Reused => {
                self.reject(conn, client_msg_id, RejectCode::ClientMsgIdReused);
                return Flow::Continue;
            }
            Seen::New => {}
        }
        if self.queue.receipts(sender) >= SENDER_RECEIPTS_MAX {
            self.reject(conn, client_msg_id, RejectCode::SenderBacklogFull);
            return Flow::Continue;
        }
        self.dedup.begin(sender, client_msg_id, fingerprint, now.mono_us);
        if let Some(connection) = self.conns.get_mut(conn) {
            connection.sends_inflight += 1;
        }
        let store = ShardMsg::Store { sender, client_msg_id, origin: conn, to, body: body.into() };
        self.send_request(conn, to, store);
        self.paused_flow(conn)
    }

    /// Puts a message in `to`'s queue on this, `to`'s home core, and appends it to the log. Returns its
    /// server id, time and log sequence number.
    pub(super) fn store(
        &mut self,
        to: UserId,
        sender: UserId,
        client_msg_id: u64,
        body: Box<[u8]>,
        now: Now,
    ) -> Result<(u64, u64, u64), RejectCode> {
        debug_assert_eq!(home_core(to, self.config.cores), self.id);
        if !self.user_exists(to) {
            return Err(RejectCode::UnknownRecipient);
        }
        if self.log.is_failed() {
            return Err(RejectCode::StorageUnavailable);
        }
        self.queue.check_room(to, body.len(), self.awaiting.body_bytes())?;
        let id = self.next_item_id();
        let time_us = now.wall_us;
        let record = LogRecord::Message { item_id: id, to, sender, client_msg_id, time_us, body };
        let lsn = self.log.append_item(&record);
        self.note_undurable(lsn, id, to);
        let LogRecord::Message { body, .. } = record else { unreachable!("built as a message above") };
        self.queue.push(to, Item::Message { id, from: sender, client_msg_id, time_us, body });
        self.stats.messages_stored += 1;
        self.fill_deliveries(to);
        Ok((id, time_us, lsn))
    }

    /// The answer to a SEND came back: every copy of it is answered on the connection it came on, if that
    /// connection still serves the sender (a copy whose connection is gone is answered by the client's retry
    /// on its new one), and remembered for the copies still to come.
    pub(super) fn answer_copies(
        &mut self,
        sender: UserId,
        client_msg_id: u64,
        origin: ConnId,
        prior: PriorSend,
        now: Now,
    ) {
        let settled = self.dedup.settle(sender, client_msg_id, prior, now.mono_us);
        if let (PriorSend::Stored { .. }, Some(since_us)) = (prior, settled.since_us) {
            self.stats.send_stored_us.record(now.mono_us.saturating_sub(since_us));
        }
        // Answer all before settling any: during shutdown, settling the last SEND of a connection ends its
        // session with GOAWAY, and an answer written after that would be lost.
        for &conn in std::iter::once(&origin).chain(&settled.copies) {
            if self.conns.get(conn).is_some_and(|connection| connection.stage == (Stage::Active { user: sender })) {
                self.answer(conn, client_msg_id, prior);
            } else if let PriorSend::Refused { code } = prior {
                self.stats.count_reject(code);
            }
        }
        for &conn in std::iter::once(&origin).chain(&settled.copies) {
            self.settle_send(conn, now);
        }
    }

    /// Writes the ACK or REJECT that `prior` says to `conn`.
    fn answer(&mut self, conn: ConnId, client_msg_id: u64, prior: PriorSend) {
        match prior {
            PriorSend::Stored { server_id, server_time_us } => {
                self.write(conn, &ServerFrame::Ack { client_msg_id, server_id, server_time_us });
            }
            PriorSend::Refused { code } => self.reject(conn, client_msg_id, code),
        }
    }

    /// One SEND of `origin` was answered.
    fn settle_send(&mut self, origin: ConnId, now: Now) {
        let Some(connection) = self.conns.get_mut(origin) else { return };
        let was_blocked = connection.sends_inflight >= SEND_INFLIGHT_MAX;
        connection.sends_inflight = connection.sends_inflight.saturating_sub(1);
        if self.shutting_down {
            self.goaway_when_settled(origin);
        } else if was_blocked {
            self.resume(origin, now);
        }
    }

    pub(super) fn next_item_id(&mut self) -> u64 {
        self.item_seq += 1;
        assert!(self.item_seq <= ITEM_SEQ_MASK, "item ids of one core fit in 48 bits");
        (u64::from(self.id.0) << 48) | self.item_seq
    }

    /// Writes queued items to `user`'s session while the window and the outbound buffer allow.
    pub(super) fn fill_deliveries(&mut self, user: UserId) {
        let Some(&conn) = self.sessions.get(&user) else { return };
        let Some(connection) = self.conns.get_mut(conn) else { return };
        if connection.stage != (Stage::Active { user }) || self.shutting_down {
            return;
        }
        let was_empty = connection.outbound.is_empty();
        let (core, durable_seq) = (u64::from(self.id.0), self.durable_item_seq);
        let waits_for_sync = self.log.durability().waits_for_sync();
        // Items of other cores' ids were recovered, so durable; this core's are durable up to `durable_seq`.
        let durable =
            |item: &Item| !waits_for_sync || item.id() >> 48 != core || item.id() & ITEM_SEQ_MASK <= durable_seq;
        while connection.outbound.len() < OUTBOUND_BYTES_MAX && self.queue.unacknowledged(user) < DELIVERY_WINDOW_MAX {
            let Some(item) = self.queue.next_unwritten_if(user, durable) else { break };
            if connection.outbound.capacity() == 0 {
                connection.outbound = self.buffers.take();
            }
            let frame = match item {
                Item::Message { id, from, time_us, body, .. } => {
                    ServerFrame::Deliver { item_id: *id, from: *from, server_time_us: *time_us, body }
                }
                Item::Receipt { id, server_id, peer, kind, time_us } => ServerFrame::Receipt {
                    item_id: *id,
                    server_id: *server_id,
                    peer: *peer,
                    kind: *kind,
                    server_time_us: *time_us,
                },
            };
            wire::encode_server(&frame, &mut connection.outbound);
            self.stats.deliveries_written += u64::from(matches!(frame, ServerFrame::Deliver { .. }));
        }
        if was_empty && !connection.outbound.is_empty() && !std::mem::replace(&mut connection.queued_to_serve, true) {
            self.wakeups.push_back(conn);
        }
    }
}
