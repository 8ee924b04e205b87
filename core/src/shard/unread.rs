//! What this core's users may send READ for: the messages delivered to them (acknowledged with DELIVERED, on
//! the user's home core, which is this core and where the messages were stored) and not read yet, each as
//! server id → sender. A READ names one of them or is refused, so a receipt can come only from the recipient
//! of a message, once. Owns this memory only; the shard decides what a refusal costs (a counter, a log line).
//!
//! Bounded per user (`UNREAD_PER_USER_MAX`) and per core (`UNREAD_PER_SHARD_MAX`): past either, the oldest
//! entry goes (its READ is refused later). Not logged: after a restart nothing is remembered.
//!
//! Invariants: `entries` is the number of entries over all users; a user with no entry has no key (an idle
//! user costs nothing); each user's entries are in increasing `seq`; every live entry has its record in
//! `order`, in `seq` order (other records are stale: their entry was read or evicted), and `order` holds at
//! most twice the core's bound (stale records are swept out when it would hold more).

use std::collections::{HashMap, VecDeque};

use wire::UserId;

/// Delivered, unread messages of this core's users.
#[derive(Debug)]
pub struct UnreadMessages {
    /// Per reader, (seq, server id, sender) in delivery order.
    by_user: HashMap<UserId, VecDeque<(u64, u64, UserId)>>,
    /// (reader, seq) in delivery order across the core, for the per-core bound.
    order: VecDeque<(UserId, u64)>,
    entries: usize,
    /// Numbers the entries in delivery order.
    seq: u64,
    per_user_max: usize,
    per_core_max: usize,
}

impl UnreadMessages {
    pub fn new(per_user_max: usize, per_core_max: usize) -> Self {
        assert!(per_user_max > 0 && per_core_max > 0, "room for at least one entry");
        Self { by_user: HashMap::new(), order: VecDeque::new(), entries: 0, seq: 0, per_user_max, per_core_max }
    }

    /// Messages remembered, all users together.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Messages remembered for `reader`.
    pub fn count(&self, reader: UserId) -> usize {
        self.by_user.get(&reader).map_or(0, VecDeque::len)
    }

    /// Message `server_id` from `sender` was delivered to `reader`: `reader` may READ it once.
    pub fn remember(&mut self, reader: UserId, server_id: u64, sender: UserId) {
        self.seq += 1;
        let unread = self.by_user.entry(reader).or_default();
        unread.push_back((self.seq, server_id, sender));
        self.order.push_back((reader, self.seq));
        self.entries += 1;
        if unread.len() > self.per_user_max {
            unread.pop_front();
            self.entries -= 1;
        }
        while self.entries > self.per_core_max {
            self.evict_oldest();
        }
        if self.order.len() > 2 * self.per_core_max {
            self.sweep_stale();
        }
    }

    /// `reader` READ message `server_id` from `sender`: whether it is one of its delivered, unread messages
    /// (it is forgotten, so a second READ is refused). A wrong `sender` leaves the entry.
    pub fn take(&mut self, reader: UserId, server_id: u64, sender: UserId) -> bool {
        let Some(unread) = self.by_user.get_mut(&reader) else { return false };
        let Some(index) = unread.iter().position(|&(_, id, from)| (id, from) == (server_id, sender)) else {
            return false;
        };
        unread.remove(index);
        self.entries -= 1;
        if unread.is_empty() {
            self.by_user.remove(&reader);
        }
        true
    }

    /// Drops the oldest live entry of the core (and the stale records before it).
    fn evict_oldest(&mut self) {
        while let Some((reader, seq)) = self.order.pop_front() {
            let Some(unread) = self.by_user.get_mut(&reader) else { continue };
            // The oldest record is live only if it is still its reader's oldest entry.
            if unread.front().is_some_and(|&(front, _, _)| front == seq) {
                unread.pop_front();
                self.entries -= 1;
                if unread.is_empty() {
                    self.by_user.remove(&reader);
                }
                return;
            }
        }
    }

    /// Keeps only the records of live entries: O(records × log entries per user), once per
    /// `per_core_max` remembered at most (afterwards `order` holds at most `per_core_max`).
    fn sweep_stale(&mut self) {
        let by_user = &self.by_user;
        self.order.retain(|(reader, seq)| {
            by_user.get(reader).is_some_and(|unread| unread.binary_search_by_key(seq, |&(s, _, _)| s).is_ok())
        });
        debug_assert_eq!(self.order.len(), self.entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_is_taken_once_and_only_from_its_reader_for_its_sender() {
        let mut unread = UnreadMessages::new(10, 100);
        unread.remember(2, 500, 1);
        assert!(!unread.take(3, 500, 1), "not delivered to user 3");
        assert!(!unread.take(2, 500, 9), "not sent by user 9");
        assert!(!unread.take(2, 501, 1), "no such message");
        assert!(unread.take(2, 500, 1));
        assert!(!unread.take(2, 500, 1), "one READ per message");
        assert_eq!(unread.len(), 0);
        assert!(unread.by_user.is_empty(), "a user with nothing unread has no entry");
    }

    #[test]
    fn the_oldest_entry_goes_past_the_per_user_bound() {
        let mut unread = UnreadMessages::new(3, 100);
        for server_id in 0..5 {
            unread.remember(2, server_id, 1);
        }
        assert_eq!(unread.len(), 3);
        assert!(!unread.take(2, 1, 1), "evicted");
        assert!(unread.take(2, 2, 1));
        assert!(unread.take(2, 4, 1));
    }

    #[test]
    fn the_oldest_entry_of_the_core_goes_past_the_per_core_bound_and_order_stays_bounded() {
        let mut unread = UnreadMessages::new(100, 4);
        for reader in 0..6 {
            unread.remember(reader, 1_000 + reader, 99);
        }
        assert_eq!(unread.len(), 4);
        assert!(!unread.take(0, 1_000, 99) && !unread.take(1, 1_001, 99), "the two oldest went");
        assert!(unread.take(2, 1_002, 99));
        for server_id in 0..100 {
            unread.remember(7, server_id, 99);
            assert!(unread.take(7, server_id, 99));
            assert!(unread.order.len() <= 8, "stale records are swept");
        }
        assert!(unread.take(3, 1_003, 99), "live entries outlast any number of stale records");
        assert!(unread.take(5, 1_005, 99));
        assert_eq!(unread.len(), 1);
    }
}
