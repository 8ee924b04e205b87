//! The per-core offline queue: every item (message or receipt) waiting for a user whose home is this core,
//! in arrival order, until the user's device acknowledges it. While the user is connected the same queue
//! feeds the connection: a cursor marks how many items were written and are not yet acknowledged.
//!
//! Owns the items, the per-user and per-core limits and the age index. Does not know about connections or
//! cores. Every operation is one a log can record (push, ack, expire) so the durable log of the durability
//! issue can back it without changing callers.
//!
//! Invariants: `cursor <= items.len()`; the byte and count totals equal the sums over the items; a user
//! with no items has no entry (an idle user costs nothing here).

use std::collections::{HashMap, VecDeque};

use wire::{ReceiptKind, RejectCode, UserId};

/// Something waiting for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message { id: u64, from: UserId, time_us: u64, body: Box<[u8]> },
    Receipt { id: u64, server_id: u64, peer: UserId, kind: ReceiptKind, time_us: u64 },
}

impl Item {
    pub fn id(&self) -> u64 {
        match self {
            Self::Message { id, .. } | Self::Receipt { id, .. } => *id,
        }
    }

    fn body_bytes(&self) -> u64 {
        match self {
            Self::Message { body, .. } => body.len() as u64,
            Self::Receipt { .. } => 0,
        }
    }
}

/// Limits on what may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub messages_per_user_max: usize,
    pub bytes_per_user_max: u64,
    pub bytes_per_core_max: u64,
    pub age_max_us: u64,
}

#[derive(Debug, Default)]
struct Inbox {
    items: VecDeque<Item>,
    body_bytes: u64,
    messages: usize,
    receipts: usize,
    cursor: usize,
}

/// A message dropped for age: its sender must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub sender: UserId,
    pub recipient: UserId,
    pub server_id: u64,
}

/// Items waiting for this core's users.
#[derive(Debug)]
pub struct OfflineQueue {
    inboxes: HashMap<UserId, Inbox>,
    limits: QueueLimits,
    body_bytes: u64,
    items: usize,
    /// (stored at, recipient, item id) for messages, oldest first.
    ages: VecDeque<(u64, UserId, u64)>,
}

impl OfflineQueue {
    pub fn new(limits: QueueLimits) -> Self {
        Self { inboxes: HashMap::new(), limits, body_bytes: 0, items: 0, ages: VecDeque::new() }
    }

    /// Items waiting for `user`.
    pub fn len(&self, user: UserId) -> usize {
        self.inboxes.get(&user).map_or(0, |inbox| inbox.items.len())
    }

    /// Receipts waiting for `user`.
    pub fn receipts(&self, user: UserId) -> usize {
        self.inboxes.get(&user).map_or(0, |inbox| inbox.receipts)
    }

    /// Items waiting on this core.
    pub fn items_total(&self) -> usize {
        self.items
    }

    /// Body bytes waiting on this core.
    pub fn bytes_total(&self) -> u64 {
        self.body_bytes
    }

    /// Users with something waiting.
    pub fn users_waiting(&self) -> usize {
        self.inboxes.len()
    }

    /// Whether a message of `body_len` bytes for `user` fits, or which limit refuses it.
    pub fn check_room(&self, user: UserId, body_len: usize) -> Result<(), RejectCode> {
        let body_len = body_len as u64;
        if self.body_bytes + body_len > self.limits.bytes_per_core_max {
            return Err(RejectCode::ServerQueueFull);
        }
        let Some(inbox) = self.inboxes.get(&user) else { return Ok(()) };
        if inbox.messages >= self.limits.messages_per_user_max {
            return Err(RejectCode::RecipientQueueFull);
        }
        if inbox.body_bytes + body_len > self.limits.bytes_per_user_max {
            return Err(RejectCode::RecipientQueueBytesFull);
        }
        Ok(())
    }

    /// Appends `item` to `user`'s queue. Limits are the caller's to check first (`check_room`); receipts
    /// are bounded by the sender-side check instead.
    pub fn push(&mut self, user: UserId, item: Item) {
        let inbox = self.inboxes.entry(user).or_default();
        let bytes = item.body_bytes();
        match &item {
            Item::Message { id, time_us, .. } => {
                inbox.messages += 1;
                self.ages.push_back((*time_us, user, *id));
            }
            Item::Receipt { .. } => inbox.receipts += 1,
        }
        inbox.body_bytes += bytes;
        inbox.items.push_back(item);
        self.body_bytes += bytes;
        self.items += 1;
    }

    /// Starts a new delivery pass for `user`: nothing is considered written (a new connection gets all).
    pub fn rewind(&mut self, user: UserId) {
        if let Some(inbox) = self.inboxes.get_mut(&user) {
            inbox.cursor = 0;
        }
    }

    /// Items written and not yet acknowledged.
    pub fn unacknowledged(&self, user: UserId) -> usize {
        self.inboxes.get(&user).map_or(0, |inbox| inbox.cursor)
    }

    /// The next item to write to `user`'s connection, advancing the cursor.
    pub fn next_unwritten(&mut self, user: UserId) -> Option<&Item> {
        let inbox = self.inboxes.get_mut(&user)?;
        let item = inbox.items.get(inbox.cursor)?;
        inbox.cursor += 1;
        Some(item)
    }

    /// Removes the written item `item_id` that `user`'s device acknowledged. An id that is not among the
    /// written items (a repeated DELIVERED) changes nothing.
    pub fn acknowledge(&mut self, user: UserId, item_id: u64) -> Option<Item> {
        let inbox = self.inboxes.get_mut(&user)?;
        let index = inbox.items.iter().take(inbox.cursor).position(|item| item.id() == item_id)?;
        let item = inbox.items.remove(index).expect("index found among the items");
        inbox.cursor -= 1;
        self.forget(user, &item);
        Some(item)
    }

    fn forget(&mut self, user: UserId, item: &Item) {
        let bytes = item.body_bytes();
        self.body_bytes -= bytes;
        self.items -= 1;
        if let Some(inbox) = self.inboxes.get_mut(&user) {
            inbox.body_bytes -= bytes;
            match item {
                Item::Message { .. } => inbox.messages -= 1,
                Item::Receipt { .. } => inbox.receipts -= 1,
            }
            if inbox.items.is_empty() {
                self.inboxes.remove(&user);
            }
        }
    }

    /// Drops messages stored longer than the age limit that are not written to a live connection, and
    /// returns them so their senders can be told. Messages already acknowledged are skipped.
    pub fn expire(&mut self, now_us: u64) -> Vec<Expired> {
        let mut expired = Vec::new();
        while let Some(&(stored_us, user, id)) = self.ages.front() {
            if stored_us.saturating_add(self.limits.age_max_us) > now_us {
                break;
            }
            self.ages.pop_front();
            let Some(inbox) = self.inboxes.get_mut(&user) else { continue };
            let Some(index) = inbox.items.iter().position(|item| item.id() == id) else { continue };
            if index < inbox.cursor {
                // Written to the live connection: its acknowledgement is on the way.
                continue;
            }
            let item = inbox.items.remove(index).expect("index found among the items");
            if let Item::Message { from, .. } = item {
                expired.push(Expired { sender: from, recipient: user, server_id: id });
            }
            self.forget(user, &item);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QueueLimits =
        QueueLimits { messages_per_user_max: 3, bytes_per_user_max: 10, bytes_per_core_max: 25, age_max_us: 100 };

    fn message(id: u64, len: usize, time_us: u64) -> Item {
        Item::Message { id, from: 1, time_us, body: vec![0; len].into() }
    }

    #[test]
    fn limits_refuse_with_their_own_codes() {
        let mut queue = OfflineQueue::new(LIMITS);
        for id in 0..3 {
            queue.check_room(9, 2).expect("room");
            queue.push(9, message(id, 2, 0));
        }
        assert_eq!(queue.check_room(9, 1), Err(RejectCode::RecipientQueueFull));
        assert_eq!(queue.check_room(8, 1), Ok(()));
        queue.push(8, message(10, 9, 0));
        assert_eq!(queue.check_room(8, 2), Err(RejectCode::RecipientQueueBytesFull));
        queue.push(7, message(11, 9, 0));
        assert_eq!(queue.check_room(6, 2), Err(RejectCode::ServerQueueFull));
        assert_eq!(queue.bytes_total(), 24);
        assert_eq!(queue.items_total(), 5);
    }

    #[test]
    fn delivery_is_in_order_and_acks_wipe() {
        let mut queue = OfflineQueue::new(LIMITS);
        queue.push(9, message(1, 1, 0));
        queue.push(9, Item::Receipt { id: 2, server_id: 77, peer: 3, kind: ReceiptKind::Delivered, time_us: 0 });
        assert_eq!(queue.acknowledge(9, 1), None, "not written yet");
        assert_eq!(queue.next_unwritten(9).map(Item::id), Some(1));
        assert_eq!(queue.next_unwritten(9).map(Item::id), Some(2));
        assert_eq!(queue.next_unwritten(9), None);
        assert_eq!(queue.acknowledge(9, 2).map(|item| item.id()), Some(2));
        assert_eq!(queue.receipts(9), 0);
        queue.rewind(9);
        assert_eq!(queue.next_unwritten(9).map(Item::id), Some(1), "a new pass starts over");
        assert!(queue.acknowledge(9, 1).is_some());
        assert_eq!(queue.acknowledge(9, 1), None, "a repeated ack changes nothing");
        assert_eq!(queue.users_waiting(), 0, "an empty inbox is gone");
        assert_eq!(queue.bytes_total(), 0);
    }

    #[test]
    fn old_unwritten_messages_expire_and_name_their_sender() {
        let mut queue = OfflineQueue::new(LIMITS);
        queue.push(9, message(1, 1, 0));
        queue.push(9, message(2, 1, 50));
        queue.push(8, message(3, 1, 0));
        assert_eq!(queue.next_unwritten(8).map(Item::id), Some(3));
        assert_eq!(queue.expire(99), vec![]);
        assert_eq!(queue.expire(100), vec![Expired { sender: 1, recipient: 9, server_id: 1 }]);
        assert_eq!(queue.len(8), 1, "written to a live connection: kept");
        assert_eq!(queue.expire(1_000), vec![Expired { sender: 1, recipient: 9, server_id: 2 }]);
        assert_eq!(queue.items_total(), 1);
    }
}
