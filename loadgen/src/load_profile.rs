//! A run's load over time: when connections ramp and how fast, when messages flow and at what rate. Built
//! from `--connections --ramp --duration --rate` (one ramp, then a hold) or from `--stages` / a scenario file
//! (any number of ramps, holds and rate changes), and cut into what every agent's plan carries: ramp steps
//! as shares of its users, and rate steps as its share of the rate. Sans-IO: times are offsets until the
//! controller picks the start, then µs since the epoch; owns no clock.
//!
//! Invariants: ramp steps follow each other and their shares rise to exactly 1 (all users); rate steps are in
//! time order; sending starts when the first ramp ends (as without stages, the opening ramp sends nothing).

use serde::{Deserialize, Serialize};

use crate::schedule::RateStep;
use crate::stages::{Stage, Stages};

/// A stretch of the ramp: between `start_at_us` and `end_at_us` the connections grow evenly from
/// `share_from` to `share_to` of the users (of the run, of an agent or of a core: the same shares).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RampStep {
    pub start_at_us: u64,
    pub end_at_us: u64,
    pub share_from: f64,
    pub share_to: f64,
}

/// The run's load, times in µs from its start.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProfile {
    ramps: Vec<RampStep>,
    rates: Vec<RateStep>,
    /// The most connections up at once.
    pub connections: u64,
    /// When messages start to flow: the end of the opening ramp.
    pub hold_start_us: u64,
    /// When the last stage ends (sends stop, the drain begins).
    pub end_us: u64,
}

impl LoadProfile {
    /// `--connections --ramp --duration --rate`: ramp every connection at `connects_per_s`, then hold them
    /// `hold_us` sending `msgs_per_s`.
    pub fn steady(connections: u64, connects_per_s: f64, hold_us: u64, msgs_per_s: f64) -> Self {
        let ramp_us = (connections as f64 / connects_per_s * 1e6) as u64;
        Self {
            ramps: vec![RampStep { start_at_us: 0, end_at_us: ramp_us, share_from: 0.0, share_to: 1.0 }],
            rates: vec![RateStep { at_us: ramp_us, msgs_per_s }],
            connections,
            hold_start_us: ramp_us,
            end_us: ramp_us + hold_us,
        }
    }

    /// `--stages`: `msgs_per_s` (`--rate`) flows from the end of the opening ramp until a `rate` stage
    /// changes it.
    pub fn from_stages(stages: &Stages, msgs_per_s: f64) -> Self {
        let connections = stages.connections_max();
        let total = connections.max(1) as f64;
        let mut profile = Self { ramps: Vec::new(), rates: Vec::new(), connections, hold_start_us: 0, end_us: 0 };
        let mut up = 0;
        let mut stage_start_us = 0;
        for stage in stages.as_slice() {
            match *stage {
                Stage::Ramp { connections: to, connects_per_s, .. } => {
                    let ramp_us = ((to - up) as f64 / connects_per_s * 1e6) as u64;
                    profile.ramps.push(RampStep {
                        start_at_us: stage_start_us,
                        end_at_us: stage_start_us + ramp_us,
                        share_from: up as f64 / total,
                        share_to: to as f64 / total,
                    });
                    if up == 0 {
                        profile.hold_start_us = stage_start_us + ramp_us;
                    }
                    up = to;
                }
                Stage::Hold { .. } => {}
                // Stages checks that a profile opens with a ramp, which ends within its stage: a rate stage
                // starts after the hold does.
                Stage::Rate { msgs_per_s, .. } => profile.rates.push(RateStep { at_us: stage_start_us, msgs_per_s }),
            }
            stage_start_us += stage.duration_us();
        }
        profile.rates.insert(0, RateStep { at_us: profile.hold_start_us, msgs_per_s });
        profile.end_us = stage_start_us;
        profile
    }

    /// When the last ramp ends, µs from the start.
    pub fn ramp_us(&self) -> u64 {
        self.ramps.last().map_or(0, |ramp| ramp.end_at_us)
    }

    /// The ramp steps of a run that starts at `start_at_us` (µs since the epoch).
    pub fn ramps_at(&self, start_at_us: u64) -> Vec<RampStep> {
        let shift = |ramp: &RampStep| RampStep {
            start_at_us: start_at_us + ramp.start_at_us,
            end_at_us: start_at_us + ramp.end_at_us,
            ..*ramp
        };
        self.ramps.iter().map(shift).collect()
    }

    /// The rate steps of a run that starts at `start_at_us`, for `share` of the run's messages.
    pub fn rates_at(&self, start_at_us: u64, share: f64) -> Vec<RateStep> {
        scale_rates(&self.rates, share)
            .into_iter()
            .map(|step| RateStep { at_us: start_at_us + step.at_us, ..step })
            .collect()
    }

    /// The rate steps, offsets from the start, in total messages per second (for the report).
    pub fn rates(&self) -> &[RateStep] {
        &self.rates
    }
}

/// Why a plan's ramp or rate steps cannot be run (a plan from a controller of another build, or corrupted).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanStepsError {
    #[error("the plan has no ramp step")]
    NoRamp,
    #[error("ramp step {index}: shares must rise from the last step's, within 0 to 1, and end after they start")]
    BadRamp { index: usize },
    #[error("rate step {index}: rates are 0 or more, finite, and in time order")]
    BadRate { index: usize },
}

/// Checks the steps an agent is handed before its cores run them: ramps that follow each other with rising
/// shares ending at 1, and rates that are finite, not negative and in time order.
pub fn check_plan_steps(ramps: &[RampStep], rates: &[RateStep]) -> Result<(), PlanStepsError> {
    let mut share = 0.0;
    for (index, ramp) in ramps.iter().enumerate() {
        let rises = ramp.share_from >= share - 1e-9 && ramp.share_to > ramp.share_from && ramp.share_to <= 1.0 + 1e-9;
        if !rises || ramp.end_at_us < ramp.start_at_us {
            return Err(PlanStepsError::BadRamp { index });
        }
        share = ramp.share_to;
    }
    if ramps.is_empty() {
        return Err(PlanStepsError::NoRamp);
    }
    let mut at_us = 0;
    for (index, rate) in rates.iter().enumerate() {
        if !(rate.msgs_per_s.is_finite() && rate.msgs_per_s >= 0.0) || rate.at_us < at_us {
            return Err(PlanStepsError::BadRate { index });
        }
        at_us = rate.at_us;
    }
    Ok(())
}

/// `share` of each step's rate (an agent's or a core's part of the sends).
pub fn scale_rates(rates: &[RateStep], share: f64) -> Vec<RateStep> {
    rates.iter().map(|step| RateStep { msgs_per_s: step.msgs_per_s * share, ..*step }).collect()
}

/// When slot `index` of `slots` connects first: where the ramp reaches the share `index / slots`. Slots past
/// the ramp's last share (none, when the shares rise to 1) connect when it ends.
pub fn slot_start_us(ramps: &[RampStep], index: usize, slots: usize) -> u64 {
    let share = index as f64 / slots.max(1) as f64;
    let Some(ramp) = ramps.iter().find(|ramp| share < ramp.share_to) else {
        return ramps.last().map_or(0, |ramp| ramp.end_at_us);
    };
    let part = ((share - ramp.share_from) / (ramp.share_to - ramp.share_from)).clamp(0.0, 1.0);
    ramp.start_at_us + (part * (ramp.end_at_us - ramp.start_at_us) as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_make_steps_an_agent_accepts_and_bad_steps_are_refused() {
        let stages: Stages = "10s:100@10/s,10s:rate 50,20s:300@20/s,5s:hold".parse().expect("valid");
        let profile = LoadProfile::from_stages(&stages, 5.0);
        assert_eq!(check_plan_steps(&profile.ramps_at(7), &profile.rates_at(7, 0.5)), Ok(()));
        let ramp = RampStep { start_at_us: 10, end_at_us: 20, share_from: 0.0, share_to: 1.0 };
        assert_eq!(check_plan_steps(&[], &[]), Err(PlanStepsError::NoRamp));
        let backwards = RampStep { share_from: 0.5, share_to: 0.2, ..ramp };
        assert_eq!(check_plan_steps(&[backwards], &[]), Err(PlanStepsError::BadRamp { index: 0 }));
        let rates = [RateStep { at_us: 20, msgs_per_s: 1.0 }, RateStep { at_us: 10, msgs_per_s: 1.0 }];
        assert_eq!(check_plan_steps(&[ramp], &rates), Err(PlanStepsError::BadRate { index: 1 }));
        let rates = [RateStep { at_us: 20, msgs_per_s: f64::NAN }];
        assert_eq!(check_plan_steps(&[ramp], &rates), Err(PlanStepsError::BadRate { index: 0 }));
    }

    #[test]
    fn a_steady_profile_ramps_then_sends_as_the_flags_always_did() {
        let profile = LoadProfile::steady(1_000, 100.0, 30_000_000, 500.0);
        assert_eq!(profile.hold_start_us, 10_000_000);
        assert_eq!(profile.end_us, 40_000_000);
        let ramps = profile.ramps_at(5);
        // The old rule: slot i of a core with share f starts at start + i / (ramp × f).
        for (index, slots) in [(0, 250), (1, 250), (125, 250), (249, 250)] {
            let old = 5 + (index as f64 * 1e6 / (100.0 * slots as f64 / 1_000.0)) as u64;
            assert!(slot_start_us(&ramps, index, slots).abs_diff(old) <= 1, "{index}/{slots}");
        }
        assert_eq!(profile.rates_at(5, 0.25), vec![RateStep { at_us: 10_000_005, msgs_per_s: 125.0 }]);
    }

    #[test]
    fn the_issues_stages_become_one_ramp_and_two_rates() {
        let stages: Stages = "60s:100000@5000/s,120s:hold,30s:rate 20000".parse().expect("valid");
        let profile = LoadProfile::from_stages(&stages, 1_000.0);
        assert_eq!(profile.connections, 100_000);
        assert_eq!(profile.hold_start_us, 20_000_000);
        assert_eq!(profile.end_us, 210_000_000);
        assert_eq!(profile.ramp_us(), 20_000_000);
        assert_eq!(
            profile.rates(),
            &[
                RateStep { at_us: 20_000_000, msgs_per_s: 1_000.0 },
                RateStep { at_us: 180_000_000, msgs_per_s: 20_000.0 },
            ]
        );
        let ramps = profile.ramps_at(0);
        assert_eq!(slot_start_us(&ramps, 50, 100), 10_000_000);
    }

    #[test]
    fn a_second_ramp_starts_with_its_stage_and_slots_follow_the_shares() {
        let stages: Stages = "10s:100@10/s,10s:rate 50,20s:300@20/s,5s:hold".parse().expect("valid");
        let profile = LoadProfile::from_stages(&stages, 0.0);
        let ramps = profile.ramps_at(1_000);
        assert_eq!(ramps.len(), 2);
        assert_eq!(ramps[1].start_at_us, 1_000 + 20_000_000);
        assert_eq!(ramps[1].end_at_us, 1_000 + 30_000_000);
        assert!((ramps[0].share_to - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(ramps[1].share_to, 1.0);
        // Of 3 slots: the first at the start, the second right as the second ramp starts, the third halfway.
        assert_eq!(slot_start_us(&ramps, 0, 3), 1_000);
        assert_eq!(slot_start_us(&ramps, 1, 3), 1_000 + 20_000_000);
        assert!(slot_start_us(&ramps, 2, 3).abs_diff(1_000 + 25_000_000) <= 1);
        let starts: Vec<u64> = (0..300).map(|index| slot_start_us(&ramps, index, 300)).collect();
        assert!(starts.windows(2).all(|pair| pair[0] <= pair[1]), "slots start in index order");
        assert_eq!(profile.hold_start_us, 10_000_000);
        assert_eq!(
            profile.rates(),
            &[RateStep { at_us: 10_000_000, msgs_per_s: 0.0 }, RateStep { at_us: 10_000_000, msgs_per_s: 50.0 }]
        );
        assert_eq!(profile.end_us, 45_000_000);
    }
}
