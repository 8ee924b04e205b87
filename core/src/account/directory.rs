//! The directory of provisioned users: ranges of ids created in bulk by `ringline users provision`. Checking
//! whether a user exists costs a few comparisons and no memory per user, so a million provisioned users cost
//! nothing until they connect. Owns membership only; keys and generations live elsewhere.

use wire::UserId;

/// One `provision` call's users: ids `prefix × 10^width + i` for `i` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionBatch {
    pub prefix: u64,
    pub width: u32,
    pub count: u64,
}

impl ProvisionBatch {
    /// The batch's first id, or `None` if `prefix × 10^width` does not fit in a user id.
    pub fn first(&self) -> Option<UserId> {
        10u64.checked_pow(self.width)?.checked_mul(self.prefix)
    }

    /// One past the batch's last id.
    pub fn end(&self) -> Option<UserId> {
        self.first()?.checked_add(self.count)
    }

    /// The id of the batch's `index`-th user.
    pub fn user(&self, index: u64) -> Option<UserId> {
        (index < self.count).then(|| self.first()?.checked_add(index)).flatten()
    }

    pub fn contains(&self, user: UserId) -> bool {
        matches!((self.first(), self.end()), (Some(first), Some(end)) if (first..end).contains(&user))
    }

    /// The id width for `count` users: the digits of `count - 1`, at least 7.
    pub fn width_for(count: u64) -> u32 {
        count.saturating_sub(1).checked_ilog10().map_or(1, |digits| digits + 1).max(7)
    }
}

/// Every provisioned user of this data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    batches: Vec<ProvisionBatch>,
}

impl Directory {
    pub fn new(batches: Vec<ProvisionBatch>) -> Self {
        Self { batches }
    }

    pub fn batches(&self) -> &[ProvisionBatch] {
        &self.batches
    }

    pub fn contains(&self, user: UserId) -> bool {
        self.batches.iter().any(|batch| batch.contains(user))
    }

    /// Users in all batches.
    pub fn len(&self) -> u64 {
        self.batches.iter().map(|batch| batch.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_prefix_then_index() {
        let batch = ProvisionBatch { prefix: 1555, width: ProvisionBatch::width_for(1000), count: 1000 };
        assert_eq!(batch.width, 7);
        assert_eq!(batch.user(0), Some(15_550_000_000));
        assert_eq!(batch.user(999), Some(15_550_000_999));
        assert_eq!(batch.user(1000), None);
        assert!(batch.contains(15_550_000_999));
        assert!(!batch.contains(15_550_001_000));
        assert!(!batch.contains(15_549_999_999));
        assert_eq!(ProvisionBatch::width_for(100_000_000), 8);
        assert_eq!(ProvisionBatch::width_for(100_000_001), 9);
        assert_eq!(ProvisionBatch::width_for(0), 7);
    }

    #[test]
    fn overflowing_batches_contain_nobody() {
        let batch = ProvisionBatch { prefix: u64::MAX, width: 7, count: 10 };
        assert_eq!(batch.first(), None);
        assert!(!batch.contains(0));
        assert_eq!(batch.user(0), None);
    }

    #[test]
    fn directory_checks_every_batch() {
        let directory = Directory::new(vec![
            ProvisionBatch { prefix: 1, width: 7, count: 5 },
            ProvisionBatch { prefix: 2, width: 7, count: 5 },
        ]);
        assert!(directory.contains(10_000_004));
        assert!(directory.contains(20_000_000));
        assert!(!directory.contains(20_000_005));
        assert_eq!(directory.len(), 10);
    }
}
