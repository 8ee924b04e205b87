//! Messages this core took out of its users' queues (acknowledged with DELIVERED, or expired) whose receipt
//! the sender's home core has not yet reported durable (`ShardMsg::ReceiptStored`). Until then the message
//! keeps its place in the log: no `Removed` record is appended, and compaction snapshots list it (before
//! the user's queued items). So a crash between the two steps delivers (or expires) the message again, with
//! the same item id, and its receipt is made again: a receipt may come twice, never not at all.
//!
//! Owns the held items and their body bytes, which count against the core's queue byte limit like queued
//! ones (the shard adds them in). Does not deliver them, expire them or write the log: the shard does.
//!
//! Invariants: an item id is held at most once; `body_bytes` is the sum of the held messages' bodies; every
//! held item has exactly one `Receipt` request on its way to (or held by) its sender's home core, whose
//! answer releases it.

use std::collections::BTreeMap;

use wire::UserId;

use super::offline_queue::Item;

/// Messages waiting for their receipt to be durable, by item id (so in the order this core issued them).
#[derive(Debug, Default)]
pub struct AwaitingReceipts {
    items: BTreeMap<u64, (UserId, Item)>,
    body_bytes: u64,
}

impl AwaitingReceipts {
    /// Items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Body bytes of the held messages.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Holds `user`'s `item` until its receipt is durable.
    pub fn hold(&mut self, user: UserId, item: Item) {
        let bytes = item.body_bytes();
        let previous = self.items.insert(item.id(), (user, item));
        assert!(previous.is_none(), "an item leaves its queue once");
        self.body_bytes += bytes;
    }

    /// The receipt about `user`'s item `item_id` is durable: returns the item, for its `Removed` record.
    /// An id that is not held, or held for another user, changes nothing.
    pub fn release(&mut self, user: UserId, item_id: u64) -> Option<Item> {
        if self.items.get(&item_id).is_none_or(|(holder, _)| *holder != user) {
            return None;
        }
        let (_, item) = self.items.remove(&item_id)?;
        self.body_bytes -= item.body_bytes();
        Some(item)
    }

    /// Every held item with its user, in item id order.
    pub fn iter(&self) -> impl Iterator<Item = (UserId, &Item)> {
        self.items.values().map(|(user, item)| (*user, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, len: usize) -> Item {
        Item::Message { id, from: 1, client_msg_id: id, time_us: 0, body: vec![0; len].into() }
    }

    #[test]
    fn holds_until_released_by_its_own_user_and_counts_bytes() {
        let mut awaiting = AwaitingReceipts::default();
        awaiting.hold(9, message(2, 5));
        awaiting.hold(8, message(1, 3));
        assert_eq!(awaiting.body_bytes(), 8);
        assert_eq!(awaiting.iter().map(|(user, item)| (user, item.id())).collect::<Vec<_>>(), vec![(8, 1), (9, 2)]);
        assert_eq!(awaiting.release(8, 2), None, "item 2 is user 9's");
        assert_eq!(awaiting.release(9, 2).map(|item| item.id()), Some(2));
        assert_eq!(awaiting.release(9, 2), None, "released once");
        assert_eq!((awaiting.len(), awaiting.body_bytes()), (1, 3));
    }
}
