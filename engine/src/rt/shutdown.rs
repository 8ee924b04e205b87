//! Watching an orderly shutdown: each core's tick loop publishes here, in atomics, that it still ticks and what
//! keeps it from quiescing; the main thread, which waits for the cores, reads it once SIGTERM came, logs what
//! is left at intervals, and gives up with an error naming each core's state when the shutdown outlasts the
//! grace by `SHUTDOWN_STUCK_AFTER`, instead of hanging until someone sends SIGKILL.
//!
//! Owns only these counters and the watchdog's decisions; it does not close anything itself (the cores do,
//! `rt::core`), and it never blocks a core.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::shard::ShutdownLeft;

/// What one core last said about its shutdown.
#[derive(Debug, Default)]
pub struct CoreShutdownState {
    ticks: AtomicU64,
    connections: AtomicUsize,
    local_messages: AtomicUsize,
    outbox_messages: AtomicUsize,
    log_busy: AtomicBool,
    quiesced: AtomicBool,
    done: AtomicBool,
}

impl CoreShutdownState {
    /// Called by the core on every tick; `left` only once the shutdown started.
    pub fn record_tick(&self, left: Option<ShutdownLeft>) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        if let Some(left) = left {
            self.connections.store(left.connections, Ordering::Relaxed);
            self.local_messages.store(left.local_messages, Ordering::Relaxed);
            self.outbox_messages.store(left.outbox_messages, Ordering::Relaxed);
            self.log_busy.store(left.log_busy, Ordering::Relaxed);
            self.quiesced.store(left.is_empty(), Ordering::Relaxed);
        }
    }

    /// The core's tasks are over (its executor is about to end).
    pub fn record_done(&self) {
        self.done.store(true, Ordering::Release);
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn left(&self) -> ShutdownLeft {
        ShutdownLeft {
            connections: self.connections.load(Ordering::Relaxed),
            local_messages: self.local_messages.load(Ordering::Relaxed),
            outbox_messages: self.outbox_messages.load(Ordering::Relaxed),
            log_busy: self.log_busy.load(Ordering::Relaxed),
        }
    }
}

/// The main thread's view of every core during a shutdown.
#[derive(Debug)]
pub struct ShutdownWatch {
    started: Instant,
    /// Each core's tick count when last looked at, and when it last changed.
    last_ticks: Vec<(u64, Instant)>,
    last_report: Instant,
}

/// What the watchdog concluded on one look.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchVerdict {
    /// Every core is done.
    Done,
    /// Still going; maybe a line worth logging.
    Waiting { report: Option<String> },
    /// Past the deadline: the state of every core that is not done.
    Stuck { report: String },
}

impl ShutdownWatch {
    pub fn new(cores: usize, now: Instant) -> Self {
        Self { started: now, last_ticks: vec![(0, now); cores], last_report: now }
    }

    /// Looks at the cores at `now`: `Stuck` once `deadline` after the start has passed, a report every
    /// `report_every` while waiting.
    pub fn look(
        &mut self,
        cores: &[CoreShutdownState],
        now: Instant,
        report_every: Duration,
        deadline: Duration,
    ) -> WatchVerdict {
        for (state, last) in cores.iter().zip(&mut self.last_ticks) {
            let ticks = state.ticks.load(Ordering::Relaxed);
            if ticks != last.0 {
                *last = (ticks, now);
            }
        }
        if cores.iter().all(CoreShutdownState::is_done) {
            return WatchVerdict::Done;
        }
        let elapsed = now.duration_since(self.started);
        if elapsed >= deadline {
            return WatchVerdict::Stuck { report: self.describe(cores, now) };
        }
        if now.duration_since(self.last_report) >= report_every {
            self.last_report = now;
            return WatchVerdict::Waiting { report: Some(self.describe(cores, now)) };
        }
        WatchVerdict::Waiting { report: None }
    }

    fn describe(&self, cores: &[CoreShutdownState], now: Instant) -> String {
        let elapsed = now.duration_since(self.started);
        let mut parts = Vec::new();
        for (index, (state, (_, changed))) in cores.iter().zip(&self.last_ticks).enumerate() {
            if state.is_done() {
                continue;
            }
            let silent = now.duration_since(*changed);
            let ticking = if silent >= Duration::from_secs(2) {
                format!("no tick for {:.1} s (stuck outside its tick loop)", silent.as_secs_f64())
            } else {
                "ticking".to_owned()
            };
            let waiting = if state.quiesced.load(Ordering::Relaxed) {
                "quiesced, waiting for the other cores".to_owned()
            } else {
                state.left().to_string()
            };
            parts.push(format!("core {index}: {ticking}; {waiting}"));
        }
        format!("{:.1} s after the shutdown began: {}", elapsed.as_secs_f64(), parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(connections: usize, log_busy: bool) -> ShutdownLeft {
        ShutdownLeft { connections, local_messages: 0, outbox_messages: 0, log_busy }
    }

    #[test]
    fn reports_what_each_core_waits_for_and_gives_up_at_the_deadline() {
        let start = Instant::now();
        let cores: Vec<CoreShutdownState> = (0..3).map(|_| CoreShutdownState::default()).collect();
        let mut watch = ShutdownWatch::new(3, start);
        let every = Duration::from_secs(5);
        let deadline = Duration::from_secs(20);
        cores[0].record_tick(Some(left(0, false)));
        cores[1].record_tick(Some(left(7, true)));
        cores[2].record_tick(Some(left(0, false)));
        cores[2].record_done();
        assert_eq!(
            watch.look(&cores, start + Duration::from_secs(1), every, deadline),
            WatchVerdict::Waiting { report: None }
        );
        // Core 0 keeps ticking, core 1 falls silent.
        cores[0].record_tick(Some(left(0, false)));
        let WatchVerdict::Waiting { report: Some(report) } =
            watch.look(&cores, start + Duration::from_secs(6), every, deadline)
        else {
            panic!("a report is due");
        };
        assert!(report.contains("core 0: ticking; quiesced, waiting for the other cores"), "{report}");
        assert!(report.contains("core 1: no tick for 5.0 s (stuck outside its tick loop); 7 connections"), "{report}");
        assert!(report.contains("log busy"), "{report}");
        assert!(!report.contains("core 2"), "a done core is not listed: {report}");
        let WatchVerdict::Stuck { report } = watch.look(&cores, start + Duration::from_secs(20), every, deadline)
        else {
            panic!("past the deadline");
        };
        assert!(report.starts_with("20.0 s after the shutdown began"), "{report}");
        cores[0].record_done();
        cores[1].record_done();
        assert_eq!(watch.look(&cores, start + Duration::from_secs(21), every, deadline), WatchVerdict::Done);
    }
}
