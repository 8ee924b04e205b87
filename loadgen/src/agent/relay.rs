//! Relaying the cores' progress to the controller while the run lasts: each core's latest counters and the
//! merged latency of the last second go out as one `Progress` message a second. Collects the cores' final
//! reports as they come, until all are in or the plan's drain deadline and `FINAL_GRACE` have passed. It
//! merges no final report (`verdict.rs` does); a controller that cannot be written to stops the run.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use loadgen::control::{AgentCounters, AgentMessage, AgentProgress, write_message};
use loadgen::latency::LatencyHistogram;

use super::core::{CoreFinal, CoreReport};
use super::start::Cores;
use crate::machine::now_us;

/// How long past the plan's drain deadline the main thread waits for the cores' final reports.
const FINAL_GRACE: Duration = Duration::from_secs(15);

/// What the cores reported by the end of the relay.
pub(super) struct CoresSeen {
    /// Each core's latest progress counters, by core index.
    pub(super) latest: Vec<AgentCounters>,
    /// The final reports that came in, in arrival order.
    pub(super) finals: Vec<CoreFinal>,
}

/// Relays progress until every core has sent its final report, the cores are gone, or the deadline passed.
pub(super) fn relay_progress(cores: &Cores, writer: &mut TcpStream, stop: &AtomicBool) -> anyhow::Result<CoresSeen> {
    let core_count = cores.threads.len();
    let mut seen = CoresSeen { latest: vec![AgentCounters::default(); core_count], finals: Vec::new() };
    let mut interval_ack = LatencyHistogram::new();
    let mut interval_delivery = LatencyHistogram::new();
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    let deadline_us = cores.plan.drain_deadline_us + FINAL_GRACE.as_micros() as u64;
    while seen.finals.len() < core_count && now_us() < deadline_us {
        match cores.reports.recv_timeout(Duration::from_millis(100)) {
            Ok(CoreReport::Progress(progress)) => {
                seen.latest[progress.core_index] = progress.counters;
                interval_ack.merge(&progress.interval_ack)?;
                interval_delivery.merge(&progress.interval_delivery)?;
            }
            Ok(CoreReport::Final(core_final)) => seen.finals.push(*core_final),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            let progress = AgentProgress {
                at_us: now_us(),
                counters: sum_counters(&seen.latest),
                interval_latency_ack: interval_ack.to_base64()?,
                interval_latency_delivery: interval_delivery.to_base64()?,
            };
            interval_ack.reset();
            interval_delivery.reset();
            if write_message(writer, &AgentMessage::Progress(progress)).is_err() {
                stop.store(true, Ordering::Relaxed);
            }
        }
    }
    Ok(seen)
}

/// The sum of the cores' counters.
pub(super) fn sum_counters(all: &[AgentCounters]) -> AgentCounters {
    let mut sum = AgentCounters::default();
    for counters in all {
        sum.connections_up += counters.connections_up;
        sum.connections_established += counters.connections_established;
        sum.connect_errors += counters.connect_errors;
        sum.reconnects += counters.reconnects;
        sum.sent += counters.sent;
        sum.acked += counters.acked;
        sum.delivered += counters.delivered;
        sum.tls_handshakes_full += counters.tls_handshakes_full;
        sum.tls_handshakes_resumed += counters.tls_handshakes_resumed;
        sum.tls_handshake_failures += counters.tls_handshake_failures;
    }
    sum
}
