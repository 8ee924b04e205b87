//! Who talks to whom, and who is where, among the users of one agent core. Both ends of every pair live on the
//! same core, so one ledger sees a message's send, ACK, delivery and receipt without any cross-core or
//! cross-agent traffic. With several targets (engine processes that do not share queues), a user's contacts
//! are on the same target: user `i` connects to target `i % targets`, and its contacts are the next users of
//! the same residue class. Pure functions of indexes: no state, no allocation per user.

/// The contact graph of one core's `users` users over `targets` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactGraph {
    users: usize,
    targets: usize,
    contacts_per_user: usize,
}

impl ContactGraph {
    pub fn new(users: usize, targets: usize, contacts_per_user: usize) -> Self {
        Self { users, targets: targets.max(1), contacts_per_user }
    }

    /// The target (index into the target list) that user `index` connects to.
    pub fn target_of(&self, index: usize) -> usize {
        index % self.targets
    }

    /// How many users share user `index`'s target on this core.
    fn class_size(&self, index: usize) -> usize {
        let class = index % self.targets;
        (self.users.saturating_sub(class)).div_ceil(self.targets)
    }

    /// How many contacts user `index` has (fewer than asked when its target has few users here).
    pub fn contact_count(&self, index: usize) -> usize {
        self.contacts_per_user.min(self.class_size(index).saturating_sub(1))
    }

    /// User `index`'s contact number `nth` (< `contact_count`): a user on the same target.
    pub fn contact(&self, index: usize, nth: usize) -> Option<usize> {
        if nth >= self.contact_count(index) {
            return None;
        }
        let class = index % self.targets;
        let size = self.class_size(index);
        let position = index / self.targets;
        let contact_position = (position + 1 + nth) % size;
        Some(class + contact_position * self.targets)
    }
}

/// Whether user `index` belongs to the `share` of users that start offline (or are dropped in a storm): a
/// deterministic spread, so every run of the same plan picks the same users.
pub fn in_share(index: usize, share: f64) -> bool {
    let spread = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    (spread as f64) < share * (1u64 << 24) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_share_the_target_and_are_never_self() {
        let graph = ContactGraph::new(103, 3, 4);
        for index in 0..103 {
            assert_eq!(graph.contact_count(index), 4);
            for nth in 0..4 {
                let contact = graph.contact(index, nth).expect("in range");
                assert!(contact < 103);
                assert_ne!(contact, index);
                assert_eq!(graph.target_of(contact), graph.target_of(index));
            }
            assert_eq!(graph.contact(index, 4), None);
        }
    }

    #[test]
    fn small_classes_have_fewer_contacts() {
        let graph = ContactGraph::new(3, 2, 4);
        assert_eq!(graph.contact_count(0), 1);
        assert_eq!(graph.contact(0, 0), Some(2));
        assert_eq!(graph.contact_count(1), 0);
        assert_eq!(graph.contact(1, 0), None);
    }

    #[test]
    fn share_picks_about_that_share() {
        let picked = (0..100_000).filter(|index| in_share(*index, 0.2)).count();
        assert!((18_000..22_000).contains(&picked), "{picked}");
        assert!(!(0..1000).any(|index| in_share(index, 0.0)));
        assert!((0..1000).all(|index| in_share(index, 1.0)));
    }
}
