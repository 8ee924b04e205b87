//! Giving back memory that a burst left behind. A `Vec`, `VecDeque` or `HashMap` keeps the capacity its
//! largest moment needed: after a flood of SENDs the core's dedup table, its outboxes and its scratch lists
//! stay sized for the flood long after it is over. This module owns the rule for when such a container is
//! shrunk, and nothing else: the shard decides which containers to look at and the runtime when
//! (`Shard::trim_memory`, every `MEMORY_TRIM_INTERVAL`).
//!
//! Rule: a container is oversized when its capacity exceeds `MEMORY_TRIM_CAPACITY_MIN` entries and
//! `MEMORY_TRIM_SLACK_FACTOR` times its length; it is then shrunk to twice its length, so a container
//! that is refilled to its steady size does not grow again at once. Shrinking costs O(length), and only
//! containers that shrank a lot since they grew pay it: a steady container is never touched.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

use crate::limits::{MEMORY_TRIM_CAPACITY_MIN, MEMORY_TRIM_SLACK_FACTOR};

/// A container whose capacity can be given back.
pub trait Shrinkable {
    /// Entries held now.
    fn entries(&self) -> usize;
    /// Entries it has room for without allocating.
    fn room(&self) -> usize;
    /// Keeps room for at least `entries` (and for what it holds).
    fn shrink_room_to(&mut self, entries: usize);
}

/// The std containers share the three methods by name.
macro_rules! impl_shrinkable {
    ([$($generics:tt)*] $container:ty) => {
        impl<$($generics)*> Shrinkable for $container {
            fn entries(&self) -> usize {
                self.len()
            }
            fn room(&self) -> usize {
                self.capacity()
            }
            fn shrink_room_to(&mut self, entries: usize) {
                self.shrink_to(entries);
            }
        }
    };
}

impl_shrinkable!([T] Vec<T>);
impl_shrinkable!([T] VecDeque<T>);
impl_shrinkable!([K: Eq + Hash, V, S: BuildHasher] HashMap<K, V, S>);

/// Shrinks `container` if it is oversized (see the module's rule). Returns whether it did.
pub fn shrink_if_oversized(container: &mut impl Shrinkable) -> bool {
    let (entries, room) = (container.entries(), container.room());
    if room <= MEMORY_TRIM_CAPACITY_MIN || room / MEMORY_TRIM_SLACK_FACTOR <= entries {
        return false;
    }
    container.shrink_room_to(entries.saturating_mul(2));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_container_far_above_its_length_is_shrunk() {
        let mut small: Vec<u64> = Vec::with_capacity(MEMORY_TRIM_CAPACITY_MIN);
        assert!(!shrink_if_oversized(&mut small), "small containers are left alone");

        let mut drained: VecDeque<u64> = (0..100_000).collect();
        drained.drain(..99_000);
        assert!(shrink_if_oversized(&mut drained));
        assert!(drained.capacity() < 100_000 / MEMORY_TRIM_SLACK_FACTOR, "{}", drained.capacity());
        assert!(drained.capacity() >= 1_000 && drained.len() == 1_000, "what it holds stays");
        assert!(!shrink_if_oversized(&mut drained), "a second look finds nothing to give back");

        let mut steady: HashMap<u64, u64> = (0..10_000).map(|key| (key, key)).collect();
        let room = steady.capacity();
        steady.retain(|&key, _| key < 5_000);
        assert!(!shrink_if_oversized(&mut steady), "half full is steady, not a burst's leftover");
        steady.retain(|&key, _| key < 10);
        assert!(shrink_if_oversized(&mut steady));
        assert!(steady.capacity() < room / MEMORY_TRIM_SLACK_FACTOR);
        assert_eq!(steady.len(), 10);
    }
}
