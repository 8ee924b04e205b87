//! A workload mix (a scenario file's `workload_mix`): which workload each user runs, by share of the users,
//! e.g. 80 % chat and 20 % idle. Owns the mix's checks and the rule that gives user `index` of `users` its
//! workload: the first share of the users runs the first workload, and so on, with the boundaries rounded to
//! whole users (the same rule on the controller, which counts the users of each workload for the report, and
//! on every agent, which runs them). Pure functions of indexes: no state, no IO.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::control::Scenario;

/// Workloads in one mix (there are four workloads; a mix may name one twice, split).
pub const WORKLOAD_MIX_ENTRIES_MAX: usize = 8;
/// How far the shares' sum may be from 1.
pub const WORKLOAD_SHARE_SUM_TOLERANCE: f64 = 1e-9;

/// One entry of a workload mix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadShare {
    pub workload: Scenario,
    /// Share of the users that run this workload, in (0, 1].
    pub share: f64,
}

/// Why a workload mix was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadMixError {
    #[error("expected 1 to {WORKLOAD_MIX_ENTRIES_MAX} entries, not {0}")]
    Entries(usize),
    #[error("entry {index} ({workload:?}): share {share} is not in (0, 1]")]
    Share { index: usize, workload: Scenario, share: f64 },
    #[error("shares sum to {0}, not 1")]
    Sum(f64),
}

/// Checks a mix: 1 to WORKLOAD_MIX_ENTRIES_MAX entries, each share in (0, 1], summing to 1. Entries are
/// numbered from 1 in errors, as a file's reader counts them.
pub fn check_workload_mix(mix: &[WorkloadShare]) -> Result<(), WorkloadMixError> {
    if mix.is_empty() || mix.len() > WORKLOAD_MIX_ENTRIES_MAX {
        return Err(WorkloadMixError::Entries(mix.len()));
    }
    if let Some((position, entry)) =
        mix.iter().enumerate().find(|(_, entry)| !(entry.share > 0.0 && entry.share <= 1.0))
    {
        return Err(WorkloadMixError::Share { index: position + 1, workload: entry.workload, share: entry.share });
    }
    let total: f64 = mix.iter().map(|entry| entry.share).sum();
    if (total - 1.0).abs() > WORKLOAD_SHARE_SUM_TOLERANCE {
        return Err(WorkloadMixError::Sum(total));
    }
    Ok(())
}

/// The users of each entry of `mix` among `users` users, as index ranges in the mix's order: they follow each
/// other, cover `0..users`, and each holds its share of the users rounded to whole users.
pub fn workload_ranges(mix: &[WorkloadShare], users: usize) -> Vec<(Scenario, Range<usize>)> {
    let mut ranges = Vec::with_capacity(mix.len());
    let mut upto = 0.0;
    let mut start = 0;
    for (position, entry) in mix.iter().enumerate() {
        upto += entry.share;
        let end = if position + 1 == mix.len() { users } else { ((upto * users as f64).round() as usize).min(users) };
        let end = end.max(start);
        ranges.push((entry.workload, start..end));
        start = end;
    }
    ranges
}

/// The workload of user `index` of `users` under `mix`; `single` when the mix is empty.
pub fn workload_of(mix: &[WorkloadShare], single: Scenario, index: usize, users: usize) -> Scenario {
    workload_ranges(mix, users)
        .into_iter()
        .find(|(_, range)| range.contains(&index))
        .map_or(single, |(workload, _)| workload)
}

/// The workloads of the users `within` (a core's) of `users` (an agent plan's) under `mix`, as ranges of
/// indexes counted from `within.start`, in the mix's order; `single` for all of them without a mix.
pub fn workload_ranges_within(
    mix: &[WorkloadShare],
    single: Scenario,
    users: usize,
    within: Range<usize>,
) -> Vec<(Scenario, Range<usize>)> {
    if mix.is_empty() {
        return vec![(single, 0..within.len())];
    }
    workload_ranges(mix, users)
        .into_iter()
        .map(|(workload, range)| {
            let start = range.start.clamp(within.start, within.end) - within.start;
            let end = range.end.clamp(within.start, within.end) - within.start;
            (workload, start..end)
        })
        .collect()
}

/// The ranges of users of `ranges` whose workload sends, the empty ones left out.
pub fn sender_ranges(ranges: &[(Scenario, Range<usize>)]) -> Vec<Range<usize>> {
    ranges
        .iter()
        .filter(|(workload, range)| sends(*workload) && !range.is_empty())
        .map(|(_, range)| range.clone())
        .collect()
}

/// The index of sender number `nth` (< the senders' count) over `senders` ranges, counted in their order.
pub fn nth_sender(senders: &[Range<usize>], mut nth: usize) -> usize {
    for range in senders {
        if nth < range.len() {
            return range.start + nth;
        }
        nth -= range.len();
    }
    senders.last().map_or(0, |range| range.end.saturating_sub(1))
}

/// Whether a user running `workload` sends messages (idle users only keep their connection and read).
pub fn sends(workload: Scenario) -> bool {
    workload != Scenario::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(entries: &[(Scenario, f64)]) -> Vec<WorkloadShare> {
        entries.iter().map(|&(workload, share)| WorkloadShare { workload, share }).collect()
    }

    #[test]
    fn each_user_gets_one_workload_by_share() {
        let mix = mix(&[(Scenario::Chat, 0.8), (Scenario::Idle, 0.2)]);
        for users in [1usize, 2, 3, 7, 10, 99, 1000, 12_345] {
            let workloads: Vec<Scenario> =
                (0..users).map(|index| workload_of(&mix, Scenario::Offline, index, users)).collect();
            let chat = workloads.iter().filter(|&&workload| workload == Scenario::Chat).count();
            let idle = workloads.iter().filter(|&&workload| workload == Scenario::Idle).count();
            assert_eq!(chat + idle, users, "every user runs a workload of the mix");
            assert!((chat as f64 - 0.8 * users as f64).abs() <= 0.5, "{chat} chat users of {users}");
            let ranges = workload_ranges(&mix, users);
            assert_eq!(ranges[0].1.len(), chat);
            assert_eq!(ranges[1].1, chat..users);
        }
        let three = self::mix(&[(Scenario::Chat, 0.5), (Scenario::Offline, 0.25), (Scenario::ReconnectStorm, 0.25)]);
        let workloads: Vec<Scenario> = (0..8).map(|index| workload_of(&three, Scenario::Idle, index, 8)).collect();
        use Scenario::{Chat, Offline, ReconnectStorm};
        assert_eq!(workloads, [Chat, Chat, Chat, Chat, Offline, Offline, ReconnectStorm, ReconnectStorm]);
        assert_eq!(workload_of(&[], Scenario::Idle, 3, 8), Scenario::Idle);
    }

    #[test]
    fn a_cores_users_get_their_share_of_the_plans_ranges() {
        let mix = mix(&[(Scenario::Chat, 0.8), (Scenario::Idle, 0.2)]);
        // 40 users in two cores of 20: the first all chat, the second 12 chat and 8 idle.
        let first = workload_ranges_within(&mix, Scenario::Offline, 40, 0..20);
        assert_eq!(first, [(Scenario::Chat, 0..20), (Scenario::Idle, 20..20)]);
        let second = workload_ranges_within(&mix, Scenario::Offline, 40, 20..40);
        assert_eq!(second, [(Scenario::Chat, 0..12), (Scenario::Idle, 12..20)]);
        assert_eq!(sender_ranges(&second), vec![Range { start: 0, end: 12 }]);
        assert_eq!(workload_ranges_within(&[], Scenario::Offline, 40, 20..40), [(Scenario::Offline, 0..20)]);
        let senders = sender_ranges(&workload_ranges_within(
            &self::mix(&[(Scenario::Chat, 0.25), (Scenario::Idle, 0.5), (Scenario::Offline, 0.25)]),
            Scenario::Idle,
            8,
            0..8,
        ));
        assert_eq!(senders, [0..2, 6..8]);
        let picked: Vec<usize> = (0..4).map(|nth| nth_sender(&senders, nth)).collect();
        assert_eq!(picked, [0, 1, 6, 7]);
    }

    #[test]
    fn bad_mixes_name_the_entry() {
        assert_eq!(check_workload_mix(&mix(&[(Scenario::Chat, 0.8), (Scenario::Idle, 0.2)])), Ok(()));
        assert_eq!(check_workload_mix(&[]), Err(WorkloadMixError::Entries(0)));
        let nine = vec![WorkloadShare { workload: Scenario::Chat, share: 1.0 / 9.0 }; 9];
        assert_eq!(check_workload_mix(&nine), Err(WorkloadMixError::Entries(9)));
        let error = check_workload_mix(&mix(&[(Scenario::Chat, 1.0), (Scenario::Idle, 0.0)])).expect_err("zero");
        assert_eq!(error.to_string(), "entry 2 (Idle): share 0 is not in (0, 1]");
        let nan = check_workload_mix(&mix(&[(Scenario::Chat, f64::NAN)]));
        assert!(matches!(nan, Err(WorkloadMixError::Share { index: 1, .. })));
        let short = check_workload_mix(&mix(&[(Scenario::Chat, 0.8), (Scenario::Idle, 0.1)]));
        assert!(matches!(short, Err(WorkloadMixError::Sum(_))));
        let barely = check_workload_mix(&mix(&[(Scenario::Chat, 0.8), (Scenario::Idle, 0.2 + 1e-8)]));
        assert!(matches!(barely, Err(WorkloadMixError::Sum(_))));
    }
}
