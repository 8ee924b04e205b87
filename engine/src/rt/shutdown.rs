//! Watching an orderly shutdown: each core publishes here, in atomics, that it still ticks and what keeps it
//! from quiescing (its tick loop, and its I/O loop after every round, so a core too busy to tick still shows
//! progress); the main thread, which waits for the cores, reads it once SIGTERM came, logs what is left at
//! intervals, and gives up with an error naming each core's state when a core has made no progress for
//! `SHUTDOWN_STUCK_AFTER` after the grace, instead of hanging until someone sends SIGKILL. Progress, not a
//! fixed deadline: at a million connections on two cores the whole box closes two million sockets at once and
//! a core may get little CPU for many seconds, yet closes a few hundred connections every second
//! (results/capacity/shutdown/README.md).
//!
//! Each core also publishes, once per tick during the shutdown, how long its executor thread has run on a CPU
//! and waited for one (the kernel's `schedstat`), so that a slow shutdown says whether the core was working,
//! waiting for a CPU (the host's other processes: results/engine/2026-12-06-sigterm/README.md), or neither
//! (waiting for something of its own, as the lost-wake-up bug in glommio did).
//!
//! Owns only these counters and the watchdog's decisions; it does not close anything itself (the cores do,
//! `rt::core`), and it never blocks a core.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringline_core::shard::ShutdownLeft;

/// What one core last said about its shutdown.
#[derive(Debug)]
pub struct CoreShutdownState {
    ticks: AtomicU64,
    began: AtomicBool,
    connections: AtomicUsize,
    local_messages: AtomicUsize,
    outbox_messages: AtomicUsize,
    log_busy: AtomicBool,
    device_records: AtomicUsize,
    done: AtomicBool,
    /// The executor thread's time on a CPU and waiting for one, in ns: at its first reading during the
    /// shutdown, and at the last (`u64::MAX`: none yet).
    cpu_first: [AtomicU64; 2],
    cpu_last: [AtomicU64; 2],
}

impl Default for CoreShutdownState {
    fn default() -> Self {
        Self {
            ticks: AtomicU64::new(0),
            began: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            local_messages: AtomicUsize::new(0),
            outbox_messages: AtomicUsize::new(0),
            log_busy: AtomicBool::new(false),
            device_records: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            cpu_first: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            cpu_last: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
        }
    }
}

/// A thread's time on a CPU and waiting in a run queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCpu {
    pub run_ns: u64,
    pub wait_ns: u64,
}

impl ThreadCpu {
    /// The calling thread's, from `/proc/thread-self/schedstat` (`None` where the kernel does not keep it).
    pub fn of_this_thread() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
    }

    /// `schedstat`'s text: time on a CPU (ns), time waiting for one (ns), time slices.
    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
        Some(Self { run_ns: fields.next()?.ok()?, wait_ns: fields.next()?.ok()? })
    }
}

impl CoreShutdownState {
    /// Called by the core's tick loop on every tick.
    pub fn record_tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// Ticks so far (the systemd watchdog pings only while every core's count advances).
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Called once the core's shutdown began, as often as it likes: what is left.
    pub fn record_left(&self, left: ShutdownLeft) {
        self.connections.store(left.connections, Ordering::Relaxed);
        self.local_messages.store(left.local_messages, Ordering::Relaxed);
        self.outbox_messages.store(left.outbox_messages, Ordering::Relaxed);
        self.log_busy.store(left.log_busy, Ordering::Relaxed);
        self.device_records.store(left.device_records, Ordering::Relaxed);
        self.began.store(true, Ordering::Release);
    }

    /// Called by the core's tick loop, on the executor thread, once its shutdown began.
    pub fn record_cpu(&self, cpu: ThreadCpu) {
        for (slot, value) in [(0, cpu.run_ns), (1, cpu.wait_ns)] {
            // The first reading stays; `u64::MAX` marks "none yet" (no thread has run for 584 years).
            let _ = self.cpu_first[slot].compare_exchange(u64::MAX, value, Ordering::Relaxed, Ordering::Relaxed);
            self.cpu_last[slot].store(value, Ordering::Relaxed);
        }
    }

    /// Time on a CPU and waiting for one between the first and the last reading of the shutdown.
    pub fn cpu_since_shutdown(&self) -> Option<ThreadCpu> {
        let [run_first, wait_first] = self.cpu_first.each_ref().map(|slot| slot.load(Ordering::Relaxed));
        let [run_last, wait_last] = self.cpu_last.each_ref().map(|slot| slot.load(Ordering::Relaxed));
        if run_first == u64::MAX || run_last == u64::MAX {
            return None;
        }
        Some(ThreadCpu { run_ns: run_last.saturating_sub(run_first), wait_ns: wait_last.saturating_sub(wait_first) })
    }

    /// The core's tasks are over (its executor is about to end).
    pub fn record_done(&self) {
        self.done.store(true, Ordering::Release);
    }

    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// What is left, once the core's shutdown began.
    fn left(&self) -> Option<ShutdownLeft> {
        self.began.load(Ordering::Acquire).then(|| ShutdownLeft {
            connections: self.connections.load(Ordering::Relaxed),
            local_messages: self.local_messages.load(Ordering::Relaxed),
            outbox_messages: self.outbox_messages.load(Ordering::Relaxed),
            log_busy: self.log_busy.load(Ordering::Relaxed),
            device_records: self.device_records.load(Ordering::Relaxed),
        })
    }
}

/// How long the watchdog waits, and how often it reports.
#[derive(Debug, Clone, Copy)]
pub struct WatchTimes {
    /// The shutdown grace: no verdict of "stuck" before it is over.
    pub grace: Duration,
    /// A core without progress this long after the grace is stuck.
    pub stuck_after: Duration,
    /// Time between two reports while waiting.
    pub report_every: Duration,
}

/// One core as the watchdog last saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    ticks: u64,
    ticked_at: Instant,
    left: Option<ShutdownLeft>,
    changed_at: Instant,
}

/// The main thread's view of every core during a shutdown.
#[derive(Debug)]
pub struct ShutdownWatch {
    started: Instant,
    seen: Vec<Seen>,
    last_report: Instant,
}

/// What the watchdog concluded on one look.
#[derive(Debug, PartialEq, Eq)]
pub enum WatchVerdict {
    /// Every core is done.
    Done,
    /// Still going; maybe a line worth logging.
    Waiting { report: Option<String> },
    /// A core made no progress for too long: the state of every core that is not done.
    Stuck { report: String },
}

impl ShutdownWatch {
    pub fn new(cores: usize, now: Instant) -> Self {
        let seen = Seen { ticks: 0, ticked_at: now, left: None, changed_at: now };
        Self { started: now, seen: vec![seen; cores], last_report: now }
    }

    /// Looks at the cores at `now`.
    pub fn look(&mut self, cores: &[CoreShutdownState], now: Instant, times: WatchTimes) -> WatchVerdict {
        for (state, seen) in cores.iter().zip(&mut self.seen) {
            let ticks = state.ticks.load(Ordering::Relaxed);
            if ticks != seen.ticks {
                seen.ticks = ticks;
                seen.ticked_at = now;
            }
            let left = state.left();
            if left != seen.left {
                seen.left = left;
                seen.changed_at = now;
            }
        }
        if cores.iter().all(CoreShutdownState::is_done) {
            return WatchVerdict::Done;
        }
        let grace_over = self.started + times.grace;
        let stuck = cores.iter().zip(&self.seen).any(|(state, seen)| {
            let quiesced = seen.left.is_some_and(|left| left.is_empty());
            !state.is_done() && !quiesced && now >= seen.changed_at.max(grace_over) + times.stuck_after
        });
        if stuck {
            return WatchVerdict::Stuck { report: self.describe(cores, now) };
        }
        if now.duration_since(self.last_report) >= times.report_every {
            self.last_report = now;
            return WatchVerdict::Waiting { report: Some(self.describe(cores, now)) };
        }
        WatchVerdict::Waiting { report: None }
    }

    fn describe(&self, cores: &[CoreShutdownState], now: Instant) -> String {
        let mut parts = Vec::new();
        for (index, (state, seen)) in cores.iter().zip(&self.seen).enumerate() {
            if state.is_done() {
                continue;
            }
            let silent = now.duration_since(seen.ticked_at);
            let ticking = if silent >= Duration::from_secs(2) {
                format!("no tick for {:.1} s", silent.as_secs_f64())
            } else {
                "ticking".to_owned()
            };
            let waiting = match seen.left {
                None => "has not begun its shutdown".to_owned(),
                Some(left) if left.is_empty() => "quiesced, waiting for the other cores".to_owned(),
                Some(left) => {
                    format!("{left}, unchanged for {:.1} s", now.duration_since(seen.changed_at).as_secs_f64())
                }
            };
            let cpu = match state.cpu_since_shutdown() {
                Some(cpu) => format!(
                    "; since its shutdown began it ran {:.2} s on a CPU and waited {:.2} s for one",
                    cpu.run_ns as f64 / 1e9,
                    cpu.wait_ns as f64 / 1e9
                ),
                None => String::new(),
            };
            parts.push(format!("core {index}: {ticking}; {waiting}{cpu}"));
        }
        format!(
            "{:.1} s after the shutdown began: {}",
            now.duration_since(self.started).as_secs_f64(),
            parts.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(connections: usize, log_busy: bool) -> ShutdownLeft {
        ShutdownLeft { connections, local_messages: 0, outbox_messages: 0, log_busy, device_records: 0 }
    }

    const TIMES: WatchTimes = WatchTimes {
        grace: Duration::from_secs(10),
        stuck_after: Duration::from_secs(10),
        report_every: Duration::from_secs(5),
    };

    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn reports_what_each_core_waits_for_and_a_done_core_is_not_listed() {
        let start = Instant::now();
        let cores: Vec<CoreShutdownState> = (0..3).map(|_| CoreShutdownState::default()).collect();
        let mut watch = ShutdownWatch::new(3, start);
        cores[0].record_tick();
        cores[0].record_left(left(0, false));
        cores[1].record_left(left(7, true));
        cores[2].record_done();
        assert_eq!(watch.look(&cores, at(start, 1), TIMES), WatchVerdict::Waiting { report: None });
        cores[0].record_tick();
        let WatchVerdict::Waiting { report: Some(report) } = watch.look(&cores, at(start, 6), TIMES) else {
            panic!("a report is due");
        };
        assert!(report.starts_with("6.0 s after the shutdown began"), "{report}");
        assert!(report.contains("core 0: ticking; quiesced, waiting for the other cores"), "{report}");
        assert!(report.contains("core 1: no tick for 6.0 s; 7 connections"), "{report}");
        assert!(report.contains("log busy, unchanged for 5.0 s"), "{report}");
        assert!(!report.contains("core 2"), "{report}");
        cores[0].record_done();
        cores[1].record_done();
        assert_eq!(watch.look(&cores, at(start, 7), TIMES), WatchVerdict::Done);
    }

    #[test]
    fn a_core_that_keeps_closing_is_waited_for_and_one_that_stops_is_stuck() {
        let start = Instant::now();
        let cores: Vec<CoreShutdownState> = (0..2).map(|_| CoreShutdownState::default()).collect();
        let mut watch = ShutdownWatch::new(2, start);
        // Core 0 never ticks (starved) but closes connections every second; core 1 has not even begun.
        for second in 0..30 {
            cores[0].record_left(left(1000 - second as usize * 10, false));
            let verdict = watch.look(&cores, at(start, second), TIMES);
            if second < 20 {
                assert!(matches!(verdict, WatchVerdict::Waiting { .. }), "{second} s: {verdict:?}");
            } else {
                let WatchVerdict::Stuck { report } = verdict else { panic!("core 1 never began: {verdict:?}") };
                assert!(report.contains("core 1: no tick for 20.0 s; has not begun its shutdown"), "{report}");
                assert!(!report.contains("core 0: ticking"), "{report}");
                return;
            }
        }
    }

    #[test]
    fn the_report_says_how_long_a_core_ran_and_waited_for_a_cpu() {
        assert_eq!(
            ThreadCpu::parse("1500000000 4000000000 77\n"),
            Some(ThreadCpu { run_ns: 1_500_000_000, wait_ns: 4e9 as u64 })
        );
        assert_eq!(ThreadCpu::parse("12"), None, "a short line is no reading");
        assert_eq!(ThreadCpu::parse("x 1 2"), None);
        let reading = ThreadCpu::of_this_thread().expect("Linux keeps schedstat");
        assert!(ThreadCpu::of_this_thread().expect("again").run_ns >= reading.run_ns, "time on a CPU only grows");

        let start = Instant::now();
        let cores = [CoreShutdownState::default(), CoreShutdownState::default()];
        let mut watch = ShutdownWatch::new(2, start);
        cores[0].record_left(left(100, false));
        cores[1].record_left(left(100, false));
        cores[0].record_cpu(ThreadCpu { run_ns: 2_000_000_000, wait_ns: 1_000_000_000 });
        cores[0].record_cpu(ThreadCpu { run_ns: 2_100_000_000, wait_ns: 5_900_000_000 });
        let WatchVerdict::Waiting { report: Some(report) } = watch.look(&cores, at(start, 5), TIMES) else {
            panic!("a report is due");
        };
        assert!(
            report.contains(
                "log idle, unchanged for 0.0 s; since its shutdown began it ran 0.10 s on a CPU and waited 4.90 s for \
                 one; core 1"
            ),
            "{report}"
        );
        assert!(!report.ends_with("for one"), "no reading from core 1, nothing said: {report}");
    }

    #[test]
    fn no_progress_after_the_grace_is_stuck_but_not_before() {
        let start = Instant::now();
        let cores = [CoreShutdownState::default()];
        let mut watch = ShutdownWatch::new(1, start);
        cores[0].record_left(left(5, false));
        // Unchanged from the start: stuck only once the grace and then `stuck_after` have passed.
        assert!(matches!(watch.look(&cores, at(start, 19), TIMES), WatchVerdict::Waiting { .. }));
        // A change at 19 s restarts the clock.
        cores[0].record_left(left(4, false));
        assert!(matches!(watch.look(&cores, at(start, 19), TIMES), WatchVerdict::Waiting { .. }));
        assert!(matches!(watch.look(&cores, at(start, 28), TIMES), WatchVerdict::Waiting { .. }));
        let WatchVerdict::Stuck { report } = watch.look(&cores, at(start, 29), TIMES) else { panic!("stuck") };
        assert!(
            report.contains(
                "4 connections, 0 local messages, 0 messages for other cores, 0 device records, log idle, \
                 unchanged for 10.0 s"
            ),
            "{report}"
        );
    }
}
