//! The agent's verdict: its cores' final reports merged into one `AgentFinal` (ledgers merged, histograms
//! merged bucket by bucket, counts summed, milestones at their latest), with what is known of a core that never
//! finished (its last progress, counted as `agent/core_unfinished`), and this process's own RSS peak and CPU
//! time. It reads no socket and writes nothing: `mod.rs` sends the result.

use loadgen::client::tls::HandshakeStats;
use loadgen::control::{AgentCounters, AgentFinal, TlsHandshakeLatency};
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::LedgerSummary;
use loadgen::report::CORE_UNFINISHED;

use super::relay::{CoresSeen, sum_counters};

/// The agent's final report from what its cores reported.
pub(super) fn agent_final(seen: &CoresSeen) -> anyhow::Result<AgentFinal> {
    let mut agent_final = AgentFinal {
        counters: AgentCounters::default(),
        connections_peak: 0,
        ledger: LedgerSummary::default(),
        latency_ack: String::new(),
        latency_delivery: String::new(),
        latency_offline_delivery: String::new(),
        errors: Default::default(),
        ramp_done_at_us: Some(0),
        storm_recovery_us: None,
        storm_dropped: 0,
        offline_drain_us: None,
        rss_peak_bytes: 0,
        cpu_ms: 0,
        tls_handshake_latency: None,
    };
    let mut handshakes: Option<HandshakeStats> = None;
    let (mut ack, mut delivery, mut offline) =
        (LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new());
    let mut counters = Vec::new();
    let finished: Vec<usize> = seen.finals.iter().map(|core_final| core_final.core_index).collect();
    for (core_index, last) in seen.latest.iter().enumerate() {
        if !finished.contains(&core_index) {
            counters.push(last.clone());
            agent_final.connections_peak += last.connections_up;
            agent_final.ramp_done_at_us = None;
            *agent_final.errors.entry(CORE_UNFINISHED.into()).or_default() += 1;
        }
    }
    for core_final in &seen.finals {
        counters.push(core_final.counters.clone());
        agent_final.connections_peak += core_final.connections_peak;
        agent_final.ledger.merge(&core_final.ledger);
        ack.merge(&core_final.latency_ack)?;
        delivery.merge(&core_final.latency_delivery)?;
        offline.merge(&core_final.latency_offline_delivery)?;
        for (kind, count) in &core_final.errors {
            *agent_final.errors.entry(kind.clone()).or_default() += count;
        }
        agent_final.ramp_done_at_us = match (agent_final.ramp_done_at_us, core_final.ramp_done_at_us) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        agent_final.storm_recovery_us = agent_final.storm_recovery_us.max(core_final.storm_recovery_us);
        agent_final.storm_dropped += core_final.storm_dropped;
        agent_final.offline_drain_us = agent_final.offline_drain_us.max(core_final.offline_drain_us);
        if let Some(core_handshakes) = &core_final.tls {
            handshakes.get_or_insert_with(HandshakeStats::new).merge(core_handshakes)?;
        }
    }
    if let Some(handshakes) = &handshakes {
        agent_final.tls_handshake_latency = Some(TlsHandshakeLatency {
            all: handshakes.latency.to_base64()?,
            full: handshakes.latency_full.to_base64()?,
            resumed: handshakes.latency_resumed.to_base64()?,
        });
    }
    agent_final.counters = sum_counters(&counters);
    agent_final.latency_ack = ack.to_base64()?;
    agent_final.latency_delivery = delivery.to_base64()?;
    agent_final.latency_offline_delivery = offline.to_base64()?;
    agent_final.rss_peak_bytes = crate::machine::own_rss_peak_bytes().unwrap_or(0);
    agent_final.cpu_ms = crate::machine::cpu_ms("self").unwrap_or(0);
    Ok(agent_final)
}
