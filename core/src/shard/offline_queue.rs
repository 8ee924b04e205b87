//! The per-core offline queue: every item (message or receipt) waiting for a user whose home is this core,
//! in arrival order, until the user's device acknowledges it. While the user is connected the same queue
//! feeds the connection: a cursor marks how many items were written and are not yet acknowledged.
//!
//! Owns the items, the per-user and per-core limits and the age index. Does not know about connections or
//! cores. Every operation is one a log can record (push, ack, expire) so the durable log of the durability
//! issue can back it without changing callers.
//!
//! Invariants: `cursor <= items.len()`; the byte and count totals equal the sums over the items; a user
//! with no items has no entry (an idle user costs nothing here); `by_age` holds exactly one key per waiting
//! user, the time of that user's oldest item, so age expiry costs O(waiting users) memory, not O(messages).

use std::collections::{BTreeSet, HashMap, VecDeque};

use wire::{ReceiptKind, RejectCode, UserId};

/// Something waiting for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message { id: u64, from: UserId, client_msg_id: u64, time_us: u64, body: Box<[u8]> },
    Receipt { id: u64, server_id: u64, peer: UserId, kind: ReceiptKind, time_us: u64 },
}

impl Item {
    pub fn id(&self) -> u64 {
        match self {
            Self::Message { id, .. } | Self::Receipt { id, .. } => *id,
        }
    }

    pub fn time_us(&self) -> u64 {
        match self {
            Self::Message { time_us, .. } | Self::Receipt { time_us, .. } => *time_us,
        }
    }

    /// Bytes of the message's body (a receipt has none).
    pub(super) fn body_bytes(&self) -> u64 {
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
    /// This inbox's key in `OfflineQueue::by_age`: its oldest item's time, or a later time once expiry
    /// found the oldest item written to a live connection.
    age_key: u64,
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
    /// (time of the oldest item, user) for every waiting user.
    by_age: BTreeSet<(u64, UserId)>,
}

impl OfflineQueue {
    pub fn new(limits: QueueLimits) -> Self {
        Self { inboxes: HashMap::new(), limits, body_bytes: 0, items: 0, by_age: BTreeSet::new() }
    }

    /// Items waiting for `user`.
    pub fn len(&self, user: UserId) -> usize {
        self.inboxes.get(&user).map_or(0, |inbox| inbox.items.len())
    }

    /// The time of the oldest item waiting for `user` (items are in arrival order), if any.
    pub fn oldest_time_us(&self, user: UserId) -> Option<u64> {
        self.inboxes.get(&user).and_then(|inbox| inbox.items.front()).map(Item::time_us)
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

    /// Gives back the room of the user table after many users' queues emptied (`memory_trim`). An inbox
    /// is freed whole when it empties, so only the table itself can be left oversized. Returns whether it
    /// shrank.
    pub fn shrink_if_oversized(&mut self) -> bool {
        crate::memory_trim::shrink_if_oversized(&mut self.inboxes)
    }

    /// Whether a message of `body_len` bytes for `user` fits, or which limit refuses it. `held_bytes` are
    /// body bytes the core holds outside the queue that count against its byte limit too.
    pub fn check_room(&self, user: UserId, body_len: usize, held_bytes: u64) -> Result<(), RejectCode> {
        let body_len = body_len as u64;
        if self.body_bytes + held_bytes + body_len > self.limits.bytes_per_core_max {
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
        if inbox.items.is_empty() {
            inbox.age_key = item.time_us();
            self.by_age.insert((inbox.age_key, user));
        }
        match &item {
            Item::Message { .. } => inbox.messages += 1,
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
    #[cfg(test)]
    pub fn next_unwritten(&mut self, user: UserId) -> Option<&Item> {
        self.next_unwritten_if(user, |_| true)
    }

    /// The next item to write to `user`'s connection if `ready` accepts it, advancing the cursor.
    pub fn next_unwritten_if(&mut self, user: UserId, ready: impl Fn(&Item) -> bool) -> Option<&Item> {
        let inbox = self.inboxes.get_mut(&user)?;
        let item = inbox.items.get(inbox.cursor).filter(|item| ready(item))?;
        inbox.cursor += 1;
        Some(item)
    }

    /// Removes the written item `item_id` that `user`'s device acknowledged. An id that is not among the
    /// written items (a repeated DELIVERED) changes nothing.
    pub fn acknowledge(&mut self, user: UserId, item_id: u64) -> Option<Item> {
        let inbox = self.inboxes.get_mut(&user)?;
        let index = inbox.items.iter().take(inbox.cursor).position(|item| item.id() == item_id)?;
        inbox.cursor -= 1;
        Some(self.remove_at(user, index))
    }

    /// Removes `user`'s item at `index`, keeping totals, the cursor and the age index right.
    fn remove_at(&mut self, user: UserId, index: usize) -> Item {
        let inbox = self.inboxes.get_mut(&user).expect("callers found the user's inbox");
        let item = inbox.items.remove(index).expect("callers found the index among the items");
        let bytes = item.body_bytes();
        inbox.body_bytes -= bytes;
        match item {
            Item::Message { .. } => inbox.messages -= 1,
            Item::Receipt { .. } => inbox.receipts -= 1,
        }
        self.body_bytes -= bytes;
        self.items -= 1;
        if index == 0 {
            self.by_age.remove(&(inbox.age_key, user));
            if let Some(front) = inbox.items.front() {
                inbox.age_key = front.time_us();
                self.by_age.insert((inbox.age_key, user));
            }
        }
        if inbox.items.is_empty() {
            self.inboxes.remove(&user);
        }
        item
    }

    /// Drops items stored longer than the age limit, oldest first, and returns the messages among them so
    /// their senders can be told (expired receipts need no notice). Items written to a live connection are
    /// not dropped: their acknowledgement is on the way; such a user is looked at again one age later.
    #[cfg(test)]
    pub fn expire(&mut self, now_us: u64) -> Vec<Expired> {
        self.expire_with(now_us, |_, _| {})
    }

    /// `expire`, handing `on_removed` every item it drops (messages and receipts).
    pub fn expire_with(&mut self, now_us: u64, mut on_removed: impl FnMut(UserId, Item)) -> Vec<Expired> {
        let mut expired = Vec::new();
        while let Some(&(oldest_us, user)) = self.by_age.first() {
            if oldest_us.saturating_add(self.limits.age_max_us) > now_us {
                break;
            }
            let Some(inbox) = self.inboxes.get_mut(&user) else {
                unreachable!("by_age holds keys of waiting users only");
            };
            if inbox.cursor > 0 {
                self.by_age.remove(&(oldest_us, user));
                inbox.age_key = now_us;
                self.by_age.insert((now_us, user));
                continue;
            }
            let item = self.remove_at(user, 0);
            if let Item::Message { id, from, .. } = item {
                expired.push(Expired { sender: from, recipient: user, server_id: id });
            }
            on_removed(user, item);
        }
        expired
    }

    /// Every queued item with its user, each user's in queue order (users in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (UserId, &Item)> {
        self.inboxes.iter().flat_map(|(user, inbox)| inbox.items.iter().map(move |item| (*user, item)))
    }

    /// Checks the invariants in O(items).
    #[cfg(test)]
    pub fn check_invariants(&self) {
        let mut bytes = 0;
        let mut items = 0;
        for (user, inbox) in &self.inboxes {
            assert!(!inbox.items.is_empty(), "user {user} has an empty inbox entry");
            assert!(inbox.cursor <= inbox.items.len());
            assert!(self.by_age.contains(&(inbox.age_key, *user)), "user {user} missing from the age index");
            assert!(inbox.items.front().is_some_and(|front| front.time_us() <= inbox.age_key));
            bytes += inbox.items.iter().map(Item::body_bytes).sum::<u64>();
            items += inbox.items.len();
        }
        assert_eq!(bytes, self.body_bytes);
        assert_eq!(items, self.items);
        assert_eq!(self.by_age.len(), self.inboxes.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: QueueLimits =
        QueueLimits { messages_per_user_max: 3, bytes_per_user_max: 10, bytes_per_core_max: 25, age_max_us: 100 };

    fn message(id: u64, len: usize, time_us: u64) -> Item {
        Item::Message { id, from: 1, client_msg_id: id, time_us, body: vec![0; len].into() }
    }

    #[test]
    fn limits_refuse_with_their_own_codes() {
        let mut queue = OfflineQueue::new(LIMITS);
        for id in 0..3 {
            queue.check_room(9, 2, 0).expect("room");
            queue.push(9, message(id, 2, 0));
        }
        assert_eq!(queue.check_room(9, 1, 0), Err(RejectCode::RecipientQueueFull));
        assert_eq!(queue.check_room(8, 1, 0), Ok(()));
        queue.push(8, message(10, 9, 0));
        assert_eq!(queue.check_room(8, 2, 0), Err(RejectCode::RecipientQueueBytesFull));
        queue.push(7, message(11, 9, 0));
        assert_eq!(queue.check_room(6, 2, 0), Err(RejectCode::ServerQueueFull));
        assert_eq!(queue.check_room(6, 1, 0), Ok(()));
        assert_eq!(queue.check_room(6, 1, 1), Err(RejectCode::ServerQueueFull), "held bytes count");
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
        queue.check_invariants();
        assert_eq!(queue.expire(150), vec![Expired { sender: 1, recipient: 9, server_id: 2 }]);
        assert_eq!(queue.items_total(), 1);
        assert_eq!(queue.expire(1_000), vec![], "still written: user 8 is looked at again one age later");
        queue.rewind(8);
        assert_eq!(queue.expire(1_099), vec![]);
        assert_eq!(queue.expire(1_100), vec![Expired { sender: 1, recipient: 8, server_id: 3 }]);
        queue.check_invariants();
        assert_eq!(queue.users_waiting(), 0);
    }

    #[test]
    fn the_age_index_follows_acknowledgements_and_holds_one_key_per_user() {
        let mut queue = OfflineQueue::new(QueueLimits { messages_per_user_max: 1000, ..LIMITS });
        for id in 0..100 {
            queue.push(9, message(id, 0, id));
        }
        for id in 0..100 {
            assert_eq!(queue.next_unwritten(9).map(Item::id), Some(id));
            assert!(queue.acknowledge(9, id).is_some());
            queue.check_invariants();
        }
        assert_eq!(queue.users_waiting(), 0, "nothing is kept for acknowledged messages");
        queue.push(9, message(200, 0, 5));
        queue.push(9, message(201, 0, 6));
        assert_eq!(queue.next_unwritten(9).map(Item::id), Some(200));
        assert_eq!(queue.next_unwritten(9).map(Item::id), Some(201));
        assert!(queue.acknowledge(9, 201).is_some(), "an ack behind the front keeps the front's age");
        queue.check_invariants();
        assert!(queue.acknowledge(9, 200).is_some());
        queue.check_invariants();
    }
}
