//! The seeded schedule of a torture run: its settings, when each receiver is offline, and when and how the
//! server is killed. Everything random in a run comes from one seed, drawn here (the server's own timing is
//! not: a seed replays the schedule, not every interleaving).
//! It does not touch sockets or processes: the run asks it what to do at each moment and does it.
//! Invariants: a kill slot ends in exactly one kill; the kills of the load phase number `kills - 1`, the last
//! kill lands in the final drain.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// The settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub seed: u64,
    /// Sender/receiver pairs (two provisioned users each).
    pub pairs: usize,
    /// SIGKILLs in the run, the last one during the final drain (at least 1).
    pub kills: u32,
    /// The load phase goes on until at least this many messages are ACKed (and the kills are done).
    pub acked_min: u64,
    /// The load phase stops here even if the targets are not met (a bound, not a measure).
    pub load_seconds_max: u64,
    /// The share of receivers offline at any moment (besides those held offline to build a drain).
    pub offline_share: f64,
    pub cores: u16,
    /// `--log-segment-bytes`: small, so segments rotate and compact all the time.
    pub segment_bytes: u64,
}

/// Segment sizes a run may draw (`--log-segment-bytes`): small ones rotate and compact all the time, large
/// ones keep many groups in one segment for replay to read.
const SEGMENT_BYTES_CHOICES: [u64; 4] = [16 * 1024, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024];

/// The segment size of a run with `seed`, drawn from `SEGMENT_BYTES_CHOICES` (by the seed alone, so a replay
/// gets the same).
pub fn segment_bytes_for(seed: u64) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5E6_0E47);
    SEGMENT_BYTES_CHOICES[rng.gen_range(0..SEGMENT_BYTES_CHOICES.len())]
}

/// Unanswered SENDs per sender, normally and during a burst.
pub const WINDOW: usize = 32;
pub const WINDOW_BURST: usize = 256;
/// Messages per sender that may wait for their receiver, normally and during a burst (below the server's
/// per-user queue limit, 10,000, so that no SEND is refused).
pub const UNDELIVERED_MAX: u64 = 400;
pub const UNDELIVERED_MAX_BURST: u64 = 4000;

/// Mean time a receiver stays online before it goes offline.
const ONLINE_MEAN: Duration = Duration::from_millis(3500);

/// A kill slot that does not reach its ACK count by then (senders stalled) kills anyway.
const SLOT_WAIT_MAX: Duration = Duration::from_secs(20);

/// How a kill is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KillMode {
    /// At a random ACK count under the steady load.
    Steady,
    /// During or right after a burst of SENDs (large windows: many groups, many segment rotations).
    Burst,
    /// While receivers held offline drain their queues after coming back at once.
    Drain,
    /// During the final drain, after the load stopped.
    Final,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for the ACK count `acked_at` (or `give_up_at`), then `mode` starts.
    Waiting { mode: KillMode, acked_at: u64, give_up_at: Instant },
    /// Senders burst until `until`; the kill comes at `kill_at`.
    Burst { until: Instant, kill_at: Instant },
    /// Some receivers are held offline until `release_at`; the kill comes `kill_delay` after.
    DrainHold { release_at: Instant, kill_delay: Duration },
    /// Everybody may be online; the kill comes at `kill_at`.
    KillAt { kill_at: Instant },
    /// No more kills.
    Done,
}

/// What the run does now.
#[derive(Debug, Default, Clone, Copy)]
pub struct Directives {
    pub kill: bool,
    pub burst: bool,
}

/// Kill modes used, for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KillCounts {
    pub steady: u32,
    pub burst: u32,
    pub drain: u32,
    pub last_in_final_drain: u32,
}

/// The schedule.
#[derive(Debug)]
pub struct Plan {
    rng: StdRng,
    stage: Stage,
    /// Mean ACKs between two kills of the load phase.
    acked_step: u64,
    kills_load: u32,
    pub kills_done: u32,
    pub kill_counts: KillCounts,
    /// Per receiver: online now by the offline schedule, and until when.
    online: Vec<bool>,
    toggle_at: Vec<Instant>,
    /// Per receiver: held offline to build up a drain.
    held: Vec<bool>,
    offline_mean: Duration,
    /// The load has stopped: everybody online, one last kill.
    final_drain: bool,
    /// The mode of the kill in progress.
    mode: KillMode,
}

impl Plan {
    pub fn new(config: &Config, now: Instant) -> Self {
        assert!(config.kills >= 1, "the last kill lands in the final drain");
        assert!((0.0..0.9).contains(&config.offline_share), "an offline share in [0, 0.9)");
        let mut rng = StdRng::seed_from_u64(config.seed);
        let offline_mean = ONLINE_MEAN.mul_f64(config.offline_share / (1.0 - config.offline_share));
        let kills_load = config.kills - 1;
        let acked_step = config.acked_min / u64::from(kills_load + 1);
        let mut online = Vec::with_capacity(config.pairs);
        let mut toggle_at = Vec::with_capacity(config.pairs);
        for _ in 0..config.pairs {
            let is_online = !rng.gen_bool(config.offline_share);
            let mean = if is_online { ONLINE_MEAN } else { offline_mean };
            online.push(is_online);
            toggle_at.push(now + mean.mul_f64(rng.gen_range(0.0..1.5)));
        }
        let mut plan = Self {
            rng,
            stage: Stage::Done,
            acked_step,
            kills_load,
            kills_done: 0,
            kill_counts: KillCounts::default(),
            online,
            toggle_at,
            held: vec![false; config.pairs],
            offline_mean,
            final_drain: false,
            mode: KillMode::Steady,
        };
        plan.stage = if kills_load > 0 { plan.next_slot(0, now) } else { Stage::Done };
        plan
    }

    fn next_slot(&mut self, acked: u64, now: Instant) -> Stage {
        let mode = match self.rng.gen_range(0..3) {
            0 => KillMode::Steady,
            1 => KillMode::Burst,
            _ => KillMode::Drain,
        };
        let step = (self.acked_step as f64 * self.rng.gen_range(0.3..1.7)) as u64;
        Stage::Waiting { mode, acked_at: acked + step.max(1), give_up_at: now + SLOT_WAIT_MAX }
    }

    /// Whether every kill of the load phase is done.
    pub fn load_kills_done(&self) -> bool {
        self.kills_done >= self.kills_load
    }

    /// Whether receiver `pair` should be connected now.
    pub fn online(&self, pair: usize) -> bool {
        self.final_drain || (self.online[pair] && !self.held[pair])
    }

    /// The load stopped: every receiver comes online and the last kill lands during the drain.
    pub fn start_final_drain(&mut self, now: Instant) {
        self.final_drain = true;
        self.held.fill(false);
        self.mode = KillMode::Final;
        self.stage = Stage::KillAt { kill_at: now + Duration::from_millis(self.rng.gen_range(50..1000)) };
    }

    /// Advances the schedule to `now` with `acked` messages ACKed so far.
    pub fn tick(&mut self, now: Instant, acked: u64) -> Directives {
        if !self.final_drain {
            self.toggle_receivers(now);
        }
        match self.stage {
            Stage::Waiting { mode, acked_at, give_up_at } if acked >= acked_at || now >= give_up_at => {
                self.mode = mode;
                self.stage = match mode {
                    KillMode::Burst => {
                        let length = Duration::from_millis(self.rng.gen_range(300..1500));
                        let kill_at = now + length.mul_f64(self.rng.gen_range(0.5..1.2));
                        Stage::Burst { until: now + length, kill_at }
                    }
                    KillMode::Drain => {
                        for held in &mut self.held {
                            *held = self.rng.gen_bool(0.5);
                        }
                        Stage::DrainHold {
                            release_at: now + Duration::from_millis(self.rng.gen_range(1000..3000)),
                            kill_delay: Duration::from_millis(self.rng.gen_range(0..500)),
                        }
                    }
                    KillMode::Steady | KillMode::Final => Stage::KillAt { kill_at: now },
                };
                self.tick(now, acked)
            }
            Stage::Burst { until, kill_at } => {
                if now >= kill_at {
                    return self.kill(now, acked);
                }
                Directives { kill: false, burst: now < until }
            }
            Stage::DrainHold { release_at, kill_delay } if now >= release_at => {
                self.held.fill(false);
                self.stage = Stage::KillAt { kill_at: now + kill_delay };
                self.tick(now, acked)
            }
            Stage::KillAt { kill_at } if now >= kill_at => self.kill(now, acked),
            _ => Directives::default(),
        }
    }

    fn kill(&mut self, now: Instant, acked: u64) -> Directives {
        self.kills_done += 1;
        let counts = &mut self.kill_counts;
        match self.mode {
            KillMode::Steady => counts.steady += 1,
            KillMode::Burst => counts.burst += 1,
            KillMode::Drain => counts.drain += 1,
            KillMode::Final => counts.last_in_final_drain += 1,
        }
        self.stage = if self.final_drain || self.load_kills_done() { Stage::Done } else { self.next_slot(acked, now) };
        Directives { kill: true, burst: false }
    }

    /// Each receiver goes offline after about `ONLINE_MEAN` online and comes back after about
    /// `offline_mean`, so that `offline_share` of them are offline at any moment.
    fn toggle_receivers(&mut self, now: Instant) {
        for pair in 0..self.online.len() {
            if now < self.toggle_at[pair] {
                continue;
            }
            self.online[pair] = !self.online[pair];
            let mean = if self.online[pair] { ONLINE_MEAN } else { self.offline_mean };
            self.toggle_at[pair] = now + mean.mul_f64(self.rng.gen_range(0.5..1.5));
        }
    }
}
