//! Telling systemd (a `Type=notify` unit, deploy/systemd/ringline.service) how the server is doing, through
//! sd_notify(3): `READY=1` once every core listens and the logs are recovered, `WATCHDOG=1` from the main
//! thread at half of `WATCHDOG_USEC` while every core's tick advances, `STOPPING=1` when the shutdown begins,
//! and `STATUS=` lines a person reads in `systemctl status`.
//!
//! Owns the decision when to ping the watchdog (`WatchdogPing`, pure: tick counts and a clock in, a verdict
//! out) and the sending. It does nothing, and sends nothing, unless `NOTIFY_SOCKET` is set. It never blocks a
//! core: it only reads the per-core tick counters `shutdown.rs` keeps. A failed send is logged once and the
//! server goes on: systemd's own timeouts then say what is wrong.

use std::time::{Duration, Instant};

/// Whether to ping the watchdog now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogVerdict {
    /// Every core ticked lately and half the watchdog period has passed since the last ping: ping.
    Ping,
    /// Nothing to send yet.
    Wait,
    /// `core` has not ticked for longer than the watchdog period: no ping, so systemd restarts the server.
    Stuck { core: usize, silent: Duration },
}

/// One core as the watchdog last saw it.
#[derive(Debug, Clone, Copy)]
struct CoreTicks {
    ticks: u64,
    ticked_at: Instant,
}

/// When to send `WATCHDOG=1`: every half period (`WATCHDOG_USEC / 2`), as long as no core has gone a whole
/// period without a tick. A core that has stopped (its executor ended) counts as ticking: the shutdown
/// watchdog in `shutdown.rs` judges those.
#[derive(Debug)]
pub struct WatchdogPing {
    period: Duration,
    last_ping: Option<Instant>,
    cores: Vec<CoreTicks>,
}

impl WatchdogPing {
    pub fn new(period: Duration, cores: usize, now: Instant) -> Self {
        Self { period, last_ping: None, cores: vec![CoreTicks { ticks: 0, ticked_at: now }; cores] }
    }

    /// Looks at each core's tick count (`None`: the core is done) at `now`.
    pub fn look(&mut self, ticks: impl IntoIterator<Item = Option<u64>>, now: Instant) -> WatchdogVerdict {
        let mut stuck = None;
        for (core, (seen, ticks)) in self.cores.iter_mut().zip(ticks).enumerate() {
            let Some(ticks) = ticks else { continue };
            if ticks != seen.ticks {
                seen.ticks = ticks;
                seen.ticked_at = now;
            }
            let silent = now.saturating_duration_since(seen.ticked_at);
            if stuck.is_none() && silent > self.period {
                stuck = Some(WatchdogVerdict::Stuck { core, silent });
            }
        }
        if let Some(stuck) = stuck {
            return stuck;
        }
        match self.last_ping {
            Some(last) if now.saturating_duration_since(last) < self.period / 2 => WatchdogVerdict::Wait,
            _ => {
                self.last_ping = Some(now);
                WatchdogVerdict::Ping
            }
        }
    }
}

/// The connection to systemd's notification socket, if the server runs under one (`NOTIFY_SOCKET` set).
#[derive(Debug)]
pub struct SystemdNotifier {
    watchdog: Option<WatchdogPing>,
    /// The core last reported stuck, so the log says it once, not every look.
    stuck_reported: Option<usize>,
    send_failed: bool,
}

impl SystemdNotifier {
    /// `None` unless `NOTIFY_SOCKET` is set. The watchdog is on when systemd set `WATCHDOG_USEC` (for this
    /// process, `WATCHDOG_PID`).
    pub fn from_env(cores: usize) -> Option<Self> {
        std::env::var_os("NOTIFY_SOCKET")?;
        let watchdog = sd_notify::watchdog_enabled()
            .filter(|period| !period.is_zero())
            .map(|period| WatchdogPing::new(period, cores, Instant::now()));
        Some(Self { watchdog, stuck_reported: None, send_failed: false })
    }

    /// `READY=1` and a status line: every core listens, the logs are recovered.
    pub fn ready(&mut self, status: &str) {
        self.send(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
    }

    /// `STOPPING=1`: the orderly shutdown began.
    pub fn stopping(&mut self, status: &str) {
        self.send(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status(status)]);
    }

    /// A `STATUS=` line.
    pub fn status(&mut self, status: &str) {
        self.send(&[sd_notify::NotifyState::Status(status)]);
    }

    /// Pings the watchdog if it is on, due, and every core ticks (`ticks`: each core's count, `None` when done).
    pub fn watchdog(&mut self, ticks: impl IntoIterator<Item = Option<u64>>) {
        let Some(watchdog) = &mut self.watchdog else { return };
        match watchdog.look(ticks, Instant::now()) {
            WatchdogVerdict::Ping => {
                self.stuck_reported = None;
                self.send(&[sd_notify::NotifyState::Watchdog]);
            }
            WatchdogVerdict::Wait => {}
            WatchdogVerdict::Stuck { core, silent } => {
                if self.stuck_reported != Some(core) {
                    self.stuck_reported = Some(core);
                    tracing::error!(core, ?silent, "a core stopped ticking: no more watchdog pings to systemd");
                    let status = format!("core {core} has not ticked for {:.1} s", silent.as_secs_f64());
                    self.send(&[sd_notify::NotifyState::Status(&status)]);
                }
            }
        }
    }

    fn send(&mut self, states: &[sd_notify::NotifyState<'_>]) {
        if let Err(error) = sd_notify::notify(states) {
            if !self.send_failed {
                tracing::warn!(%error, "cannot notify systemd (NOTIFY_SOCKET); going on without it");
            }
            self.send_failed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(10);

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn pings_at_once_then_every_half_period_while_the_cores_tick() {
        let start = Instant::now();
        let mut ping = WatchdogPing::new(PERIOD, 2, start);
        assert_eq!(ping.look([Some(1), Some(1)], start), WatchdogVerdict::Ping);
        assert_eq!(ping.look([Some(2), Some(2)], at(start, 4_999)), WatchdogVerdict::Wait);
        assert_eq!(ping.look([Some(3), Some(3)], at(start, 5_000)), WatchdogVerdict::Ping);
        assert_eq!(ping.look([Some(4), Some(4)], at(start, 6_000)), WatchdogVerdict::Wait);
        assert_eq!(ping.look([Some(5), Some(5)], at(start, 10_000)), WatchdogVerdict::Ping);
    }

    #[test]
    fn a_core_without_a_tick_for_a_period_stops_the_pings_until_it_ticks_again() {
        let start = Instant::now();
        let mut ping = WatchdogPing::new(PERIOD, 2, start);
        assert_eq!(ping.look([Some(1), Some(1)], start), WatchdogVerdict::Ping);
        // Core 1 stays at 1 tick.
        assert_eq!(ping.look([Some(2), Some(1)], at(start, 5_000)), WatchdogVerdict::Ping);
        assert_eq!(ping.look([Some(3), Some(1)], at(start, 10_000)), WatchdogVerdict::Ping, "a period exactly");
        assert_eq!(
            ping.look([Some(4), Some(1)], at(start, 10_001)),
            WatchdogVerdict::Stuck { core: 1, silent: Duration::from_millis(10_001) }
        );
        assert!(matches!(ping.look([Some(5), Some(1)], at(start, 20_000)), WatchdogVerdict::Stuck { core: 1, .. }));
        assert_eq!(ping.look([Some(6), Some(2)], at(start, 20_100)), WatchdogVerdict::Ping, "it ticks again");
    }

    #[test]
    fn a_core_that_is_done_does_not_hold_the_pings_back() {
        let start = Instant::now();
        let mut ping = WatchdogPing::new(PERIOD, 2, start);
        assert_eq!(ping.look([Some(1), None], at(start, 30_000)), WatchdogVerdict::Ping);
        assert_eq!(
            ping.look([None, Some(0)], at(start, 40_000)),
            WatchdogVerdict::Stuck { core: 1, silent: Duration::from_secs(40) },
            "core 1 never ticked"
        );
    }
}
