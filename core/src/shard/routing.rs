//! What crosses between cores: messages for other cores batched into per-peer outboxes (bounded, with
//! connections paused while one is full, the runtime told with `Output::MeshReady`), batches taken by the
//! runtime's pumps (`poll_mesh`), batches from other cores handed to the concern that owns each message, and
//! messages to this core's own users run locally.

use wire::UserId;

use crate::home::{ShardId, home_core};
use crate::limits::{MESH_BATCH_MESSAGES_MAX, MESH_OUTBOX_REQUESTS_MAX};

use super::connection::ConnId;
use super::dedup::PriorSend;
use super::mesh::ShardMsg;
use super::{Now, Shard};

impl Shard {
    /// A batch of messages from core `from`.
    pub fn handle_mesh(&mut self, from: ShardId, batch: Vec<ShardMsg>, now: Now) {
        self.stats.mesh_received += batch.len() as u64;
        for message in batch {
            self.handle_message(from, message, now);
        }
        self.run_local(now);
    }

    fn handle_message(&mut self, from: ShardId, message: ShardMsg, now: Now) {
        match message {
            ShardMsg::Store { sender, client_msg_id, origin, to, body } => {
                match self.store(to, sender, client_msg_id, body, now) {
                    Ok((server_id, server_time_us, lsn)) => {
                        let answer = ShardMsg::Stored { sender, client_msg_id, origin, server_id, server_time_us };
                        if let Some((to, answer)) = self.log.answer_when_durable(lsn, from, answer) {
                            self.send_to_shard(to, answer);
                        }
                    }
                    Err(code) => self.send_to_shard(from, ShardMsg::Refused { sender, client_msg_id, origin, code }),
                }
            }
            ShardMsg::Stored { sender, client_msg_id, origin, server_id, server_time_us } => {
                let prior = PriorSend::Stored { server_id, server_time_us };
                self.answer_copies(sender, client_msg_id, origin, prior, now);
            }
            ShardMsg::Refused { sender, client_msg_id, origin, code } => {
                // Remembered, not forgotten: a retry already on its way (sent from a new connection before
                // this REJECT reached the client) would otherwise be tried afresh and could be stored, and if
                // its ACK were lost the client would hold a REJECT for a message that is delivered.
                self.answer_copies(sender, client_msg_id, origin, PriorSend::Refused { code }, now);
            }
            ShardMsg::Receipt { to, server_id, peer, kind, time_us } => {
                self.store_receipt(from, to, server_id, peer, kind, time_us);
            }
            ShardMsg::ReceiptStored { recipient, server_id } => self.release_receipted(recipient, server_id),
        }
    }

    /// Moves up to a batch of messages for `peer` into `batch`. Returns whether more are waiting.
    pub fn poll_mesh(&mut self, peer: ShardId, batch: &mut Vec<ShardMsg>, now: Now) -> bool {
        let Some(outbox) = self.outboxes.get_mut(peer.index()) else { return false };
        let before = outbox.len();
        outbox.take_batch(batch, MESH_BATCH_MESSAGES_MAX);
        self.stats.mesh_sent += (before - outbox.len()) as u64;
        let more = !outbox.is_empty();
        if outbox.requests() < MESH_OUTBOX_REQUESTS_MAX {
            for conn in std::mem::take(&mut self.mesh_waiters[peer.index()]) {
                if let Some(connection) = self.conns.get_mut(conn) {
                    connection.paused_for_mesh = false;
                }
                self.resume(conn, now);
            }
            self.run_local(now);
        }
        more
    }

    /// Queues a request for `user`'s home core on behalf of `conn`, pausing `conn` if that outbox is full.
    pub(super) fn send_request(&mut self, conn: ConnId, user: UserId, message: ShardMsg) {
        let home = home_core(user, self.config.cores);
        self.send_to_shard(home, message);
        if home != self.id
            && self.outboxes[home.index()].requests() >= MESH_OUTBOX_REQUESTS_MAX
            && let Some(connection) = self.conns.get_mut(conn)
        {
            connection.paused_for_mesh = true;
            self.mesh_waiters[home.index()].push(conn);
        }
    }

    pub(super) fn send_to_home(&mut self, user: UserId, message: ShardMsg) {
        self.send_to_shard(home_core(user, self.config.cores), message);
    }

    pub(super) fn send_to_shard(&mut self, shard: ShardId, message: ShardMsg) {
        if shard == self.id {
            self.local.push_back(message);
        } else {
            self.outboxes[shard.index()].push(message);
            if !std::mem::replace(&mut self.mesh_ready[shard.index()], true) {
                self.mesh_ready_peers.push(shard);
            }
        }
    }

    /// Handles messages this core sent to itself.
    pub(super) fn run_local(&mut self, now: Now) {
        while let Some(message) = self.local.pop_front() {
            self.handle_message(self.id, message, now);
        }
    }
}
