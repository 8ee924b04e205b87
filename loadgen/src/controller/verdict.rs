//! The run's outcome: the agents' final reports merged into the report (counts summed, histograms merged
//! bucket by bucket, an agent without a final report counted as lost), the figures over the hold that
//! happened (throughput, memory per connection at the plateau, CPU busy), and then the report written
//! (`--report` JSON, `--plot` SVG, the summary on stdout) and the exit code: non-zero when anything was lost,
//! duplicated or reordered. It starts and stops nothing.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use loadgen::cli::RunArgs;
use loadgen::client::tls::HandshakeStats;
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::LedgerSummary;
use loadgen::report::Report;

use super::outputs::RunHistograms;
use super::progress::Watched;
use super::spawn::Started;
use crate::machine::now_us;

/// What the agents' final reports add up to, beside the counts summed straight into the report.
struct Merged {
    ledger: LedgerSummary,
    latency_ack: LatencyHistogram,
    latency_delivery: LatencyHistogram,
    latency_offline: LatencyHistogram,
    handshakes: HandshakeStats,
    /// When the last agent finished its ramp; unknown when any agent did not say.
    ramp_done_at_us: Option<u64>,
}

/// Fills the report from the agents' final reports and what the watch saw; hands back the merged latency
/// histograms for the report files.
pub(super) fn judge(started: &Started, watched: Watched, report: &mut Report) -> anyhow::Result<RunHistograms> {
    let Watched {
        peak_seen,
        rss_plateau,
        host_plateau,
        cpu_at_hold_start,
        cpu_at_hold_end,
        memory_floor,
        mut agent_failures,
    } = watched;
    let times = started.times;
    let merged = merge_finals(started, &mut agent_failures, report)?;
    report.connections_peak = report.connections_peak.max(peak_seen);
    report.host_memory_headroom_min_bytes = memory_floor.lowest_bytes();
    report.notes.extend(agent_failures);
    report.ramp_seconds = merged.ramp_done_at_us.map(|at| at.saturating_sub(times.start_at_us) as f64 / 1e6);
    let ledger = &merged.ledger;
    report.messages_sent = ledger.counts.sent;
    report.messages_acked = ledger.counts.acked;
    report.messages_delivered = ledger.counts.delivered;
    report.messages_rejected = ledger.counts.rejected;
    report.receipts = ledger.counts.receipts;
    report.lost = ledger.lost;
    report.duplicated = ledger.counts.duplicated;
    report.reordered = ledger.counts.reordered;
    report.redelivered = ledger.counts.redelivered;
    report.unresolved = ledger.unresolved;
    report.receipts_missing = ledger.receipts_missing;
    report.problems = ledger.problems.clone();
    report.ledger = ledger.counts.clone();
    report.latency_ack_us = merged.latency_ack.summary();
    report.latency_delivery_us = merged.latency_delivery.summary();
    report.latency_offline_delivery_us = merged.latency_offline.summary();
    let handshakes = &merged.handshakes;
    report.tls_handshakes_full = handshakes.full;
    report.tls_handshakes_resumed = handshakes.resumed;
    report.tls_handshake_failures = handshakes.failures;
    report.tls_handshake_latency = handshakes.latency.summary();
    report.tls_handshake_latency_full = handshakes.latency_full.summary();
    report.tls_handshake_latency_resumed = handshakes.latency_resumed.summary();
    if let Some(note) = report.tls_failure_note() {
        report.notes.push(note);
    }
    // Over the hold that actually happened (a Ctrl-C shortens it).
    let hold_elapsed_us = now_us().min(times.hold_end_at_us).saturating_sub(times.hold_start_at_us).max(1);
    report.hold_seconds = hold_elapsed_us as f64 / 1e6;
    report.throughput_msgs_per_s = report.messages_delivered as f64 / report.hold_seconds;
    if let Some((connections, memory)) = host_plateau
        && connections > 0
    {
        let baseline = started.host_baseline;
        report.host_slab_bytes = memory.slab_bytes;
        report.host_tcp_buffer_bytes = memory.tcp_buffer_bytes;
        report.host_slab_per_connection_bytes =
            Some(memory.slab_bytes.saturating_sub(baseline.slab_bytes) as f64 / connections as f64);
        report.host_used_per_connection_bytes =
            Some(memory.used_bytes.saturating_sub(baseline.used_bytes) as f64 / connections as f64);
    }
    if let (Some(start), Some(end)) = (&cpu_at_hold_start, &cpu_at_hold_end) {
        report.cpu_busy_per_core = crate::machine::cpu_busy_between(start, end);
    }
    if let Some((plateau_connections, rss)) = rss_plateau {
        report.server_rss_bytes = Some(rss);
        if let Some(baseline) = report.server_rss_baseline_bytes
            && plateau_connections > 0
        {
            report.server_rss_per_connection_bytes =
                Some(rss.saturating_sub(baseline) as f64 / plateau_connections as f64);
        }
    }
    report.run_seconds = now_us().saturating_sub(times.start_at_us) as f64 / 1e6;
    Ok(RunHistograms { latency_ack: merged.latency_ack, latency_delivery: merged.latency_delivery })
}

/// Merges every agent's final report: counts go straight into the report, the ledger and the histograms into
/// [`Merged`]; an agent without one is counted as lost (with a failure line, unless it has one already).
fn merge_finals(started: &Started, agent_failures: &mut Vec<String>, report: &mut Report) -> anyhow::Result<Merged> {
    let mut merged = Merged {
        ledger: LedgerSummary::default(),
        latency_ack: LatencyHistogram::new(),
        latency_delivery: LatencyHistogram::new(),
        latency_offline: LatencyHistogram::new(),
        handshakes: HandshakeStats::new(),
        ramp_done_at_us: Some(0),
    };
    for (index, link) in started.links.iter().enumerate() {
        let Some(agent_final) = &link.final_report else {
            report.agents_lost += 1;
            merged.ramp_done_at_us = None;
            if !agent_failures.iter().any(|failure| failure.starts_with(&format!("agent {index} "))) {
                agent_failures.push(format!("agent {index} sent no final report"));
            }
            continue;
        };
        merged.ledger.merge(&agent_final.ledger);
        merged.latency_ack.merge(&LatencyHistogram::from_base64(&agent_final.latency_ack)?)?;
        merged.latency_delivery.merge(&LatencyHistogram::from_base64(&agent_final.latency_delivery)?)?;
        merged.latency_offline.merge(&LatencyHistogram::from_base64(&agent_final.latency_offline_delivery)?)?;
        let handshakes = &mut merged.handshakes;
        handshakes.full += agent_final.counters.tls_handshakes_full;
        handshakes.resumed += agent_final.counters.tls_handshakes_resumed;
        handshakes.failures += agent_final.counters.tls_handshake_failures;
        if let Some(tls) = &agent_final.tls_handshake_latency {
            handshakes.latency.merge(&LatencyHistogram::from_base64(&tls.all)?)?;
            handshakes.latency_full.merge(&LatencyHistogram::from_base64(&tls.full)?)?;
            handshakes.latency_resumed.merge(&LatencyHistogram::from_base64(&tls.resumed)?)?;
        }
        report.connections_established += agent_final.counters.connections_established;
        report.connections_peak += agent_final.connections_peak;
        report.connect_errors += agent_final.counters.connect_errors;
        for (kind, count) in &agent_final.errors {
            *report.errors.entry(kind.clone()).or_default() += count;
        }
        merged.ramp_done_at_us = match (merged.ramp_done_at_us, agent_final.ramp_done_at_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        report.storm_dropped += agent_final.storm_dropped;
        report.loadgen_rss_peak_bytes += agent_final.rss_peak_bytes;
        report.loadgen_cpu_seconds += agent_final.cpu_ms as f64 / 1e3;
        report.storm_recovery_seconds = max_seconds(report.storm_recovery_seconds, agent_final.storm_recovery_us);
        report.offline_drain_seconds = max_seconds(report.offline_drain_seconds, agent_final.offline_drain_us);
    }
    Ok(merged)
}

/// Writes the report where asked (`--report`, `--plot`) and its summary to stdout; the exit code says whether
/// the run was clean.
pub(super) fn publish(args: &RunArgs, report: &Report) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(report).context("serialising the report")?;
        std::fs::write(path, json).with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        crate::plot::write_plot(path, &report.timeline, &format!("{:?}", args.scenario()))?;
    }
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(report.render_summary().as_bytes());
    let _ = stdout.flush();
    Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn max_seconds(seconds: Option<f64>, us: Option<u64>) -> Option<f64> {
    match (seconds, us.map(|us| us as f64 / 1e6)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
