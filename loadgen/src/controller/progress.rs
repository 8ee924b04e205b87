//! Watching a started run until every agent has reported its verdict (or is gone, or the deadline passed): the
//! agents' messages in, one progress line a second out (connections up, connect errors, acks per second, p99
//! latencies of the last second, agents alive, TLS handshakes), the timeline the report and plot keep, and
//! the figures only the run's middle shows (memory and CPU at the hold's plateau). It stops the agents early on
//! Ctrl-C or when the host's memory falls to the floor. It merges no final report: `verdict.rs` does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use loadgen::cli::RunArgs;
use loadgen::control::{AgentCounters, AgentMessage};
use loadgen::latency::LatencyHistogram;
use loadgen::memory_floor::{MemoryFloor, default_floor_mib};
use loadgen::report::{Report, TimelinePoint};

use super::agents::{AgentLink, Incoming, stop_agents};
use super::outputs::IntervalLogFile;
use super::spawn::Started;
use crate::machine::HostMemory;
use crate::machine::now_us;

/// How long after the plan's drain deadline the controller waits for final reports.
const FINAL_WAIT: Duration = Duration::from_secs(30);

/// What watching the run saw, for the verdict.
pub(super) struct Watched {
    /// The most connections the progress lines saw up at once: a lower bound of the peak that holds even when
    /// an agent's final report is lost.
    pub(super) peak_seen: u64,
    /// The server's RSS at the most connections seen during the hold: (connections, bytes).
    pub(super) rss_plateau: Option<(u64, u64)>,
    /// The host's memory at the most connections seen during the hold.
    pub(super) host_plateau: Option<(u64, HostMemory)>,
    /// CPU times at the first and the last progress line inside the hold.
    pub(super) cpu_at_hold_start: Option<Vec<(u64, u64)>>,
    pub(super) cpu_at_hold_end: Option<Vec<(u64, u64)>>,
    pub(super) memory_floor: MemoryFloor,
    /// One line per agent that failed or went away without its final report.
    pub(super) agent_failures: Vec<String>,
}

/// The watch's state between progress lines.
struct Watch<'a> {
    args: &'a RunArgs,
    started: &'a mut Started,
    /// `--hlog`: the interval log, a line pair a second.
    interval_log: Option<&'a mut IntervalLogFile>,
    /// This host's CPU times at the last progress line, for the second's CPU busy.
    cpu_times_before: Vec<(u64, u64)>,
    interval_delivery: LatencyHistogram,
    interval_ack: LatencyHistogram,
    next_line_us: u64,
    stop_sent: bool,
    watched: Watched,
}

/// Runs the watch until every agent has its final report in or is gone, or the drain deadline and
/// `FINAL_WAIT` have passed.
pub(super) fn watch(
    args: &RunArgs,
    started: &mut Started,
    interval_log: Option<&mut IntervalLogFile>,
    interrupted: &AtomicBool,
    report: &mut Report,
) -> Watched {
    let hard_deadline_us = started.times.drain_deadline_us + FINAL_WAIT.as_micros() as u64;
    let memory_floor =
        MemoryFloor::new(args.memory_floor_mib.unwrap_or_else(|| default_floor_mib(report.machine.memory_bytes)));
    let mut watch = Watch {
        args,
        next_line_us: started.times.start_at_us + 1_000_000,
        started,
        interval_log,
        cpu_times_before: crate::machine::cpu_times(),
        interval_delivery: LatencyHistogram::new(),
        interval_ack: LatencyHistogram::new(),
        stop_sent: false,
        watched: Watched {
            peak_seen: 0,
            rss_plateau: None,
            host_plateau: None,
            cpu_at_hold_start: None,
            cpu_at_hold_end: None,
            memory_floor,
            agent_failures: Vec::new(),
        },
    };
    loop {
        let finished = watch.started.links.iter().all(|link| link.final_report.is_some() || !link.alive);
        if finished || now_us() > hard_deadline_us {
            break;
        }
        if interrupted.load(Ordering::Relaxed) && !watch.stop_sent {
            watch.stop_sent = true;
            report.stopped_early = Some("interrupted (Ctrl-C): agents drained briefly and reported".into());
            println!("stopping: waiting for the agents' final reports");
            stop_agents(&mut watch.started.links);
        }
        match watch.started.incoming.recv_timeout(Duration::from_millis(100)) {
            Ok(incoming) => watch.handle_incoming(incoming),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = now_us();
        if now >= watch.next_line_us {
            watch.next_line_us += 1_000_000;
            watch.handle_second(now, report);
        }
    }
    watch.watched
}

impl Watch<'_> {
    /// One agent's message, or its going away.
    fn handle_incoming(&mut self, incoming: Incoming) {
        let links = &mut self.started.links;
        match incoming {
            Incoming::Message(index, AgentMessage::Progress(progress)) => {
                let link = &mut links[index];
                let now = now_us();
                if link.latest_at_us != 0 && now > link.latest_at_us {
                    let acked = progress.counters.acked.saturating_sub(link.latest.acked);
                    link.acked_per_s = acked as f64 * 1e6 / (now - link.latest_at_us) as f64;
                }
                link.latest = progress.counters;
                link.latest_at_us = now;
                if let Ok(histogram) = LatencyHistogram::from_base64(&progress.interval_latency_delivery) {
                    let _ = self.interval_delivery.merge(&histogram);
                }
                if let Ok(histogram) = LatencyHistogram::from_base64(&progress.interval_latency_ack) {
                    let _ = self.interval_ack.merge(&histogram);
                }
            }
            Incoming::Message(index, AgentMessage::Final(agent_final)) => links[index].final_report = Some(agent_final),
            Incoming::Message(index, AgentMessage::Failed { error }) => {
                links[index].alive = false;
                self.watched.agent_failures.push(format!("agent {index} failed: {error}"));
            }
            Incoming::Message(_, AgentMessage::Ready(_)) => {}
            Incoming::Gone(index, why) => {
                if links[index].final_report.is_none() {
                    self.watched.agent_failures.push(format!("agent {index} {why}"));
                }
                links[index].alive = false;
            }
        }
    }

    /// A second has passed: the memory floor, the progress line, the timeline point, and during the hold the
    /// plateau figures.
    fn handle_second(&mut self, now: u64, report: &mut Report) {
        let args = self.args;
        let times = self.started.times;
        let links = &self.started.links;
        let up: u64 = links.iter().map(|link| link.latest.connections_up).sum();
        self.watched.peak_seen = self.watched.peak_seen.max(up);
        // One reading a line serves the memory floor and, during the hold, the plateau figures.
        let memory = crate::machine::host_memory();
        if let Some(why) = self.watched.memory_floor.observe(memory.headroom_bytes, up)
            && !self.stop_sent
        {
            self.stop_sent = true;
            println!("stopping: {why}");
            report.stopped_early = Some(why);
            stop_agents(&mut self.started.links);
        }
        self.print_line(now);
        let links = &self.started.links;
        let delivery = self.interval_delivery.summary();
        let ack = self.interval_ack.summary();
        let sum = |count: fn(&AgentCounters) -> u64| links.iter().map(|link| count(&link.latest)).sum::<u64>();
        let cpu_times = crate::machine::cpu_times();
        let busy = crate::machine::cpu_busy_between(&self.cpu_times_before, &cpu_times);
        self.cpu_times_before = cpu_times;
        let t_s = now.saturating_sub(times.start_at_us) as f64 / 1e6;
        report.timeline.push(TimelinePoint {
            t_s,
            connections_up: up,
            msgs_per_s: msgs_per_s(links) as f64,
            latency_delivery_p50_us: delivery.p50,
            latency_delivery_p99_us: delivery.p99,
            latency_delivery_p999_us: delivery.p999,
            latency_ack_p50_us: ack.p50,
            latency_ack_p99_us: ack.p99,
            latency_ack_p999_us: ack.p999,
            sent: sum(|counters| counters.sent),
            acked: sum(|counters| counters.acked),
            delivered: sum(|counters| counters.delivered),
            connect_errors: sum(|counters| counters.connect_errors),
            host_cpu_busy: busy.iter().sum::<f64>() / busy.len().max(1) as f64,
            host_memory_headroom_bytes: memory.headroom_bytes,
        });
        if let Some(log) = self.interval_log.as_deref_mut() {
            log.write_second(t_s, &self.interval_ack, &self.interval_delivery);
        }
        self.interval_delivery.reset();
        self.interval_ack.reset();
        let in_hold = now >= times.hold_start_at_us && now <= times.hold_end_at_us;
        if in_hold
            && self.watched.rss_plateau.is_none_or(|(connections_then, _)| up >= connections_then)
            && let Some(rss) = self.started.server_rss_bytes(&args.server_pid)
        {
            self.watched.rss_plateau = Some((up, rss));
        }
        if in_hold && self.watched.host_plateau.is_none_or(|(connections_then, _)| up >= connections_then) {
            self.watched.host_plateau = Some((up, memory));
        }
        // CPU busy over the hold: the first and the last progress line inside it.
        if in_hold {
            let times = crate::machine::cpu_times();
            if self.watched.cpu_at_hold_start.is_none() {
                self.watched.cpu_at_hold_start = Some(times);
            } else {
                self.watched.cpu_at_hold_end = Some(times);
            }
        }
    }

    /// The progress line of the second that ends at `now`.
    fn print_line(&self, now: u64) {
        let links = &self.started.links;
        let up: u64 = links.iter().map(|link| link.latest.connections_up).sum();
        let connections = self.started.connections;
        let errors: u64 = links.iter().map(|link| link.latest.connect_errors).sum();
        let msgs_per_s = msgs_per_s(links);
        let alive = links.iter().filter(|link| link.alive).count();
        let agent_count = links.len();
        let t_s = now.saturating_sub(self.started.times.start_at_us) as f64 / 1e6;
        let tls = if self.args.tls {
            let sum = |count: fn(&AgentCounters) -> u64| links.iter().map(|link| count(&link.latest)).sum::<u64>();
            format!(
                " tls full {} resumed {} failed {}",
                sum(|counters| counters.tls_handshakes_full),
                sum(|counters| counters.tls_handshakes_resumed),
                sum(|counters| counters.tls_handshake_failures)
            )
        } else {
            String::new()
        };
        println!(
            "[{t_s:6.1}s] conns {up}/{connections} connect_err {errors} msgs/s {msgs_per_s} p99 ack {:.2}ms deliver {:.2}ms agents {alive}/{agent_count}{tls}",
            self.interval_ack.summary().p99 as f64 / 1e3,
            self.interval_delivery.summary().p99 as f64 / 1e3
        );
    }
}

/// Acks per second: each live agent's own rate over its last report interval (the line and the reports are
/// not in phase).
fn msgs_per_s(links: &[AgentLink]) -> u64 {
    links.iter().filter(|link| link.alive).map(|link| link.acked_per_s).sum::<f64>().round() as u64
}
