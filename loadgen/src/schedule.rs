//! The open-loop send schedule of one core: when each message *should* be sent, at a fixed total rate or as a
//! Poisson process. Sans-IO: the caller passes the time; the schedule hands out every scheduled time that is
//! due, however late the caller is. The caller stamps each message with its scheduled time and latency is
//! measured from it, not from when the send actually happened: a stalled sender shows up as latency instead of
//! silently sending less (coordinated omission). The rate may change during the run (`--stages`' `rate N`):
//! the schedule follows a list of [`RateStep`]s, each in force from its time until the next.

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

/// How gaps between scheduled sends are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Exponential gaps with the given mean: a Poisson process.
    Poisson,
    /// Equal gaps.
    Fixed,
}

/// From `at_us` (µs since the epoch) on, send `msgs_per_s` (until the next step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateStep {
    pub at_us: u64,
    pub msgs_per_s: f64,
}

/// One core's schedule of sends.
#[derive(Debug)]
pub struct SendSchedule {
    arrivals: Arrivals,
    /// The rate steps in time order; those before `next_step` are in force or over.
    steps: Vec<RateStep>,
    next_step: usize,
    gap_mean_us: f64,
    /// The next scheduled time, µs since the epoch, as f64 so that gaps under 1 µs accumulate exactly enough.
    next_us: f64,
    end_us: u64,
    rng: SmallRng,
}

impl SendSchedule {
    /// Sends at `rate_per_s` from `start_us` until (excluding) `end_us`. A rate of 0 schedules nothing.
    pub fn steady(arrivals: Arrivals, rate_per_s: f64, start_us: u64, end_us: u64, seed: u64) -> Self {
        Self::new(arrivals, vec![RateStep { at_us: start_us, msgs_per_s: rate_per_s }], end_us, seed)
    }

    /// Sends at each step's rate from its time on, until (excluding) `end_us`; nothing before the first step.
    /// Steps must be in time order.
    pub fn new(arrivals: Arrivals, steps: Vec<RateStep>, end_us: u64, seed: u64) -> Self {
        debug_assert!(steps.windows(2).all(|pair| pair[0].at_us <= pair[1].at_us), "rate steps in time order");
        let mut schedule = Self {
            arrivals,
            steps,
            next_step: 0,
            gap_mean_us: f64::INFINITY,
            next_us: 0.0,
            end_us,
            rng: SmallRng::seed_from_u64(seed),
        };
        schedule.schedule_after(0.0);
        schedule
    }

    /// Sets the next scheduled time, one gap after `from_us` at the rate in force; a gap that crosses a rate
    /// step starts over from the step (gaps are memoryless for Poisson arrivals; fixed ones restart there).
    fn schedule_after(&mut self, from_us: f64) {
        let mut next = from_us + self.gap();
        while let Some(step) = self.steps.get(self.next_step)
            && next >= step.at_us as f64
        {
            self.next_step += 1;
            self.gap_mean_us = if step.msgs_per_s > 0.0 { 1e6 / step.msgs_per_s } else { f64::INFINITY };
            next = step.at_us as f64 + self.gap();
        }
        self.next_us = next;
    }

    fn gap(&mut self) -> f64 {
        match self.arrivals {
            Arrivals::Fixed => self.gap_mean_us,
            Arrivals::Poisson => {
                let uniform: f64 = self.rng.gen_range(f64::EPSILON..1.0);
                -uniform.ln() * self.gap_mean_us
            }
        }
    }

    /// The next scheduled time that is due at `now_us`, if any. Call until `None` (or a per-tick cap).
    pub fn poll_due(&mut self, now_us: u64) -> Option<u64> {
        let next = self.next_us;
        if !next.is_finite() || next >= self.end_us as f64 || next > now_us as f64 {
            return None;
        }
        self.schedule_after(next);
        Some(next as u64)
    }

    /// When the next send is due (µs), or `None` when the schedule is over.
    pub fn poll_timeout(&self) -> Option<u64> {
        (self.next_us.is_finite() && self.next_us < self.end_us as f64).then_some(self.next_us as u64)
    }

    /// Sends scheduled from now on are cancelled (the run is stopping).
    pub fn handle_stop(&mut self) {
        self.end_us = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencyHistogram;
    use crate::ledger::{Ledger, MessageKey};

    #[test]
    fn fixed_rate_hands_out_every_slot_even_when_polled_late() {
        let mut schedule = SendSchedule::steady(Arrivals::Fixed, 1_000.0, 0, 1_000_000, 1);
        let mut due = Vec::new();
        while let Some(at) = schedule.poll_due(100_000) {
            due.push(at);
        }
        assert_eq!(due.len(), 100);
        assert_eq!(due[0], 1_000);
        assert_eq!(due[99], 100_000);
        assert_eq!(schedule.poll_timeout(), Some(101_000));
    }

    #[test]
    fn poisson_rate_is_near_the_mean_and_the_schedule_ends() {
        let mut schedule = SendSchedule::steady(Arrivals::Poisson, 10_000.0, 0, 1_000_000, 7);
        let mut count = 0;
        while schedule.poll_due(u64::MAX).is_some() {
            count += 1;
        }
        assert!((9_000..11_000).contains(&count), "{count}");
        assert_eq!(schedule.poll_timeout(), None);
    }

    #[test]
    fn zero_rate_and_stop_schedule_nothing() {
        let mut idle = SendSchedule::steady(Arrivals::Fixed, 0.0, 0, 1_000_000, 1);
        assert_eq!(idle.poll_due(u64::MAX), None);
        let mut stopped = SendSchedule::steady(Arrivals::Fixed, 1_000.0, 0, 1_000_000, 1);
        stopped.handle_stop();
        assert_eq!(stopped.poll_due(u64::MAX), None);
    }

    #[test]
    fn rate_steps_change_the_rate_where_they_say() {
        let steps = vec![
            RateStep { at_us: 1_000_000, msgs_per_s: 1_000.0 },
            RateStep { at_us: 2_000_000, msgs_per_s: 0.0 },
            RateStep { at_us: 3_000_000, msgs_per_s: 4_000.0 },
        ];
        let mut schedule = SendSchedule::new(Arrivals::Fixed, steps, 4_000_000, 1);
        assert_eq!(schedule.poll_timeout(), Some(1_001_000));
        let mut due = Vec::new();
        while let Some(at) = schedule.poll_due(u64::MAX) {
            due.push(at);
        }
        let in_second = |second: u64| due.iter().filter(|at| **at / 1_000_000 == second).count();
        assert_eq!(in_second(0), 0);
        assert!((999..=1_000).contains(&in_second(1)), "{}", in_second(1));
        assert_eq!(in_second(2), 0);
        assert!((3_999..=4_000).contains(&in_second(3)), "{}", in_second(3));
        assert!(due.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    /// Coordinated omission: the sender stalls for 200 ms; the messages it then sends late are answered at once,
    /// yet their recorded latency runs from their scheduled times, so the stall is in the histogram.
    #[test]
    fn a_stalled_schedule_records_latency_from_the_scheduled_time() {
        let start_us = 1_000_000;
        let mut schedule = SendSchedule::steady(Arrivals::Fixed, 1_000.0, start_us, start_us + 1_000_000, 1);
        let mut ledger = Ledger::new(1);
        let mut histogram = LatencyHistogram::new();
        let stalled_until_us = start_us + 200_000;
        let mut server_id = 0;
        while let Some(scheduled_us) = schedule.poll_due(stalled_until_us) {
            let body = ledger.handle_send(1, 2, scheduled_us, false);
            server_id += 1;
            // The server answers 100 µs after the (late) send.
            let latency = ledger.handle_ack(MessageKey::from(&body), server_id, stalled_until_us + 100);
            histogram.record(latency.expect("first ack"));
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 200);
        assert!(summary.max >= 199_000, "the first message waited the whole stall: {summary:?}");
        assert!(summary.p50 >= 99_000, "half the messages waited at least half the stall: {summary:?}");
    }
}
