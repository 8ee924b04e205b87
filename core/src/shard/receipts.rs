//! Receipts: DELIVERED and READ from a recipient, checked (only the recipient makes them, READ only of a
//! message it acknowledged), turned into a receipt for the sender's home core, queued and logged there, and the
//! message removed from the recipient's log once its Delivered (or Expired) receipt is durable.

use wire::{ReceiptKind, UserId};

use crate::home::ShardId;

use super::connection::ConnId;
use super::mesh::ShardMsg;
use super::offline_queue::Item;
use super::{Now, Shard, durability};

impl Shard {
    pub(super) fn handle_delivered(&mut self, conn: ConnId, user: UserId, item_id: u64, now: Now) {
        let Some(item) = self.queue.acknowledge(user, item_id) else {
            self.stats.delivered_refused += 1;
            tracing::debug!(core = %self.id, user, item_id, "DELIVERED refused: no such item written to this connection");
            return;
        };
        match item {
            Item::Message { id, from, .. } => {
                self.stats.messages_delivered += 1;
                self.unread.remember(user, id, from);
                let receipt = ShardMsg::Receipt {
                    to: from,
                    server_id: id,
                    peer: user,
                    kind: ReceiptKind::Delivered,
                    time_us: now.wall_us,
                };
                self.send_request(conn, from, receipt);
                // Its `Removed` record waits for the receipt's record to be durable (`ReceiptStored`).
                self.awaiting.hold(user, item);
            }
            Item::Receipt { .. } => {
                self.log.append_removed(user, &item);
            }
        }
        self.fill_deliveries(user);
    }

    /// READ from `user`: a Read receipt for `sender` only if `server_id` is a message from `sender`
    /// delivered to `user` and not read yet (this core stored and delivered it: the user's home core).
    pub(super) fn handle_read(&mut self, conn: ConnId, user: UserId, server_id: u64, sender: UserId, now: Now) {
        if !self.unread.take(user, server_id, sender) {
            self.stats.read_refused += 1;
            tracing::debug!(
                core = %self.id, user, server_id, sender,
                "READ refused: not a message from that sender delivered to this user and unread"
            );
            return;
        }
        let receipt =
            ShardMsg::Receipt { to: sender, server_id, peer: user, kind: ReceiptKind::Read, time_us: now.wall_us };
        self.send_request(conn, sender, receipt);
    }

    /// On the sender's home core: a receipt for `to` (the sender) about `server_id`, from its recipient `peer`
    /// (via `from`, the recipient's home core). Queued and logged for the sender; a Delivered or Expired one
    /// is answered with `ReceiptStored` once durable, which lets the recipient's core drop the message.
    pub(super) fn store_receipt(
        &mut self,
        from: ShardId,
        to: UserId,
        server_id: u64,
        peer: UserId,
        kind: ReceiptKind,
        time_us: u64,
    ) {
        // The message waits on `peer`'s home core until this receipt is durable (Read ones do not).
        let answer = matches!(kind, ReceiptKind::Delivered | ReceiptKind::Expired)
            .then_some(ShardMsg::ReceiptStored { recipient: peer, server_id });
        if !self.user_exists(to) {
            // A sender that no longer exists: nobody to tell.
            if let Some(answer) = answer {
                self.send_to_shard(from, answer);
            }
            return;
        }
        self.stats.receipts_queued += 1;
        let id = self.next_item_id();
        let item = Item::Receipt { id, server_id, peer, kind, time_us };
        let lsn = self.log.append_item(&durability::item_record(to, &item));
        self.note_undurable(lsn, id, to);
        self.queue.push(to, item);
        self.fill_deliveries(to);
        if let Some((to, answer)) = answer.and_then(|answer| self.log.answer_when_durable(lsn, from, answer)) {
            self.send_to_shard(to, answer);
        }
    }

    /// On the recipient's home core: the sender's core holds the receipt for `server_id` durably, so the
    /// message leaves the log.
    pub(super) fn release_receipted(&mut self, recipient: UserId, server_id: u64) {
        if let Some(item) = self.awaiting.release(recipient, server_id) {
            self.log.append_removed(recipient, &item);
        }
    }
}
