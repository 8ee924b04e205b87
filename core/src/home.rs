//! Home cores: which core owns a user. A pure function of the user id and the core count, computed the same
//! way by every core, so no table and no lock is needed to route a user's traffic. Owns only that function;
//! moving state between cores is the runtime's and the shard's business.
//!
//! Jump consistent hashing (Lamping & Veach, 2014) keeps most users on their core when the core count
//! changes, which makes re-homing after a restart with a different `--cores` cheap.

use wire::UserId;

/// A core's index within one engine process, `0..cores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    /// The index as a `usize`, for indexing per-core tables.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "core {}", self.0)
    }
}

/// The core that owns `user` in a process of `cores` cores (`cores` ≥ 1).
pub fn home_core(user: UserId, cores: u16) -> ShardId {
    assert!(cores >= 1, "an engine has at least one core");
    // SplitMix64 finaliser: spreads consecutive ids (provisioned users are consecutive) before jumping.
    let mut key = user.wrapping_add(0x9E37_79B9_7F4A_7C15);
    key = (key ^ (key >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    key = (key ^ (key >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    key ^= key >> 31;
    let (mut bucket, mut jump) = (-1i64, 0i64);
    while jump < i64::from(cores) {
        bucket = jump;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        jump = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    ShardId(u16::try_from(bucket).expect("jump hash returns a bucket below `cores`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_is_stable_and_in_range() {
        for user in 0..10_000u64 {
            let home = home_core(user, 7);
            assert!(home.0 < 7);
            assert_eq!(home, home_core(user, 7));
            assert_eq!(home_core(user, 1), ShardId(0));
        }
    }

    #[test]
    fn consecutive_users_spread_evenly() {
        let mut counts = [0u32; 4];
        for user in 15_550_000_000..15_550_040_000u64 {
            counts[home_core(user, 4).index()] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn growing_the_core_count_moves_few_users() {
        let moved = (0..20_000u64).filter(|&user| home_core(user, 8) != home_core(user, 9)).count();
        // Consistent hashing moves about 1/9 of the users; a modulo hash would move about 8/9.
        assert!(moved < 20_000 / 5, "moved {moved}");
    }
}
