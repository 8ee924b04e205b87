//! The run report: the JSON written by `--report` (its field names are a contract with whoever reads it) and the
//! human summary printed at the end. Owns the shape and the rendering; the controller fills it in.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::control::Scenario;
use crate::latency::LatencySummary;
use crate::ledger::{LedgerCounts, Problem};

/// The error kind an agent counts for each of its cores that missed the deadline for its final report.
pub const CORE_UNFINISHED: &str = "agent/core_unfinished";

/// The machine the controller ran on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub hostname: String,
}

/// One second of the run, for the plot, the CSV and the HTML report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub t_s: f64,
    pub connections_up: u64,
    pub msgs_per_s: f64,
    pub latency_delivery_p50_us: u64,
    pub latency_delivery_p99_us: u64,
    pub latency_delivery_p999_us: u64,
    /// ACK latency of the second (from the scheduled send time to the server's ACK).
    #[serde(default)]
    pub latency_ack_p50_us: u64,
    #[serde(default)]
    pub latency_ack_p99_us: u64,
    #[serde(default)]
    pub latency_ack_p999_us: u64,
    /// Counts since the start of the run, as the agents last reported them.
    #[serde(default)]
    pub sent: u64,
    #[serde(default)]
    pub acked: u64,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub connect_errors: u64,
    /// This host's CPUs busy during the second, on average (0 to 1).
    #[serde(default)]
    pub host_cpu_busy: f64,
    /// This host's free memory and page cache at the second's end, bytes.
    #[serde(default)]
    pub host_memory_headroom_bytes: u64,
}

/// Everything a run found out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The exact command line, argv as given.
    pub command_line: Vec<String>,
    pub machine: MachineInfo,
    pub scenario: Option<Scenario>,
    /// Users per workload of a workload mix (`workload_mix` of a scenario file), by workload name; empty without
    /// a mix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workload_users: BTreeMap<String, u64>,
    pub connections_target: u64,
    /// Users that completed HELLO/WELCOME at least once.
    pub connections_established: u64,
    /// Most connections up at once.
    pub connections_peak: u64,
    pub connect_errors: u64,
    /// From the start until every user that should be online was connected; `None` if that never happened.
    pub ramp_seconds: Option<f64>,
    pub hold_seconds: f64,
    pub messages_sent: u64,
    pub messages_acked: u64,
    pub messages_delivered: u64,
    pub messages_rejected: u64,
    pub receipts: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Same item delivered again after a reconnect: expected, deduplicated, not an error.
    pub redelivered: u64,
    /// Sent and never answered when the run ended.
    pub unresolved: u64,
    pub receipts_missing: u64,
    pub latency_ack_us: LatencySummary,
    pub latency_delivery_us: LatencySummary,
    /// Deliveries to users that were offline when the message was sent.
    pub latency_offline_delivery_us: LatencySummary,
    /// Messages delivered per second of the hold.
    pub throughput_msgs_per_s: f64,
    /// VmRSS of the local engine processes at the plateau (sum).
    pub server_rss_bytes: Option<u64>,
    /// VmRSS of the local engine processes before any connection (sum).
    pub server_rss_baseline_bytes: Option<u64>,
    /// (plateau − baseline) / connections at the plateau.
    pub server_rss_per_connection_bytes: Option<f64>,
    /// Host kernel slab and memory in use, before the first connection and at the connection plateau, and
    /// their growth per connection (a connection here is a client and a server socket when both are local).
    pub host_slab_bytes_baseline: u64,
    pub host_slab_bytes: u64,
    pub host_slab_per_connection_bytes: Option<f64>,
    pub host_used_per_connection_bytes: Option<f64>,
    /// TCP socket buffer memory at the plateau (/proc/net/sockstat).
    pub host_tcp_buffer_bytes: u64,
    /// This host's lowest memory headroom during the run (MemFree + Active(file) + Inactive(file), read once a
    /// second), bytes.
    pub host_memory_headroom_min_bytes: Option<u64>,
    /// Share of each CPU busy during the hold (all processes, this host).
    pub cpu_busy_per_core: Vec<f64>,
    /// CPU seconds (user + system) the local engine processes used from their start to the end of the run.
    pub server_cpu_seconds: Option<f64>,
    /// The agents' own peak resident set (sum) and CPU seconds: the load generator's cost, to show it is not
    /// the limit of a run.
    pub loadgen_rss_peak_bytes: u64,
    pub loadgen_cpu_seconds: f64,
    /// Wall-clock seconds from the start of the ramp to the agents' final reports.
    pub run_seconds: f64,
    pub storm_dropped: u64,
    pub storm_recovery_seconds: Option<f64>,
    pub offline_drain_seconds: Option<f64>,
    /// Errors by kind: `connect/<errno>`, `io/<errno>`, `error/<code>`, `goaway/<reason>`, `reject/<code>`.
    pub errors: BTreeMap<String, u64>,
    /// The first few lost, duplicated and reordered messages.
    pub problems: Vec<Problem>,
    pub ledger: LedgerCounts,
    pub agents: u64,
    /// Agents whose final report never came (crashed or unreachable).
    pub agents_lost: u64,
    /// Why the run ended before its plan (Ctrl-C, or the host memory floor), if it did.
    pub stopped_early: Option<String>,
    /// Notes printed during the run that the reader should know (e.g. a defaulted connection count).
    pub notes: Vec<String>,
    pub timeline: Vec<TimelinePoint>,
    /// The run spoke TLS (`--tls`).
    #[serde(default)]
    pub tls: bool,
    /// TLS handshakes, full and resumed together: µs from the start of the TCP connect to the handshake done.
    #[serde(default)]
    pub tls_handshake_latency: LatencySummary,
    /// The same for full handshakes only, and for resumed ones only.
    #[serde(default)]
    pub tls_handshake_latency_full: LatencySummary,
    #[serde(default)]
    pub tls_handshake_latency_resumed: LatencySummary,
    /// Handshakes with a certificate (a user's first connect, or a reconnect without a ticket).
    #[serde(default)]
    pub tls_handshakes_full: u64,
    /// Handshakes that resumed with the user's ticket from an earlier connection.
    #[serde(default)]
    pub tls_handshakes_resumed: u64,
    /// Handshakes that did not finish once the TCP connection was up (certificate refused, alert, close or
    /// timeout mid-handshake); their kinds are in `errors` as `connect/tls/<kind>`.
    #[serde(default)]
    pub tls_handshake_failures: u64,
}

impl Report {
    /// True when nothing was lost, duplicated or reordered, every agent reported, every connection was up at
    /// once and the run went to the end of its plan.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.agents_lost == 0
            && self.cores_unfinished() == 0
            && self.connections_reached()
            && self.stopped_early.is_none()
    }

    /// Agent cores that missed the deadline for their final report: their ledgers are unknown.
    pub fn cores_unfinished(&self) -> u64 {
        self.errors.get(CORE_UNFINISHED).copied().unwrap_or(0)
    }

    /// Whether every asked-for connection was up at the same time at some point of the run.
    pub fn connections_reached(&self) -> bool {
        self.connections_peak >= self.connections_target
    }

    /// With TLS, when no handshake finished and some failed: which failure, and what to check.
    pub fn tls_failure_note(&self) -> Option<String> {
        if !self.tls || self.tls_handshakes_full + self.tls_handshakes_resumed > 0 || self.tls_handshake_failures == 0 {
            return None;
        }
        let (kind, count) = self
            .errors
            .iter()
            .filter(|(kind, _)| kind.contains("/tls/"))
            .max_by_key(|(_, count)| **count)
            .map(|(kind, count)| (kind.as_str(), *count))?;
        let hint = if kind.contains("/tls/certificate_") {
            "the server's certificate was refused: does --ca hold it or its issuer, is it valid now, and does it \
             name the target's address (or --tls-server-name)?"
        } else {
            "does the target speak TLS with ALPN ringline/1?"
        };
        Some(format!("every TLS handshake failed, most often {kind} ({count}): {hint}"))
    }

    /// The summary printed at the end of a run.
    pub fn render_summary(&self) -> String {
        let mut out = String::new();
        let latency = |summary: &LatencySummary| {
            format!(
                "p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples)",
                us(summary.p50),
                us(summary.p90),
                us(summary.p99),
                us(summary.p999),
                us(summary.max),
                summary.count
            )
        };
        let _ = writeln!(out, "== ringline-loadgen summary ==");
        if let Some(scenario) = self.scenario {
            let _ =
                writeln!(out, "scenario        {scenario:?}, hold {:.0} s, {} agents", self.hold_seconds, self.agents);
        }
        if !self.workload_users.is_empty() {
            let mix: Vec<String> =
                self.workload_users.iter().map(|(workload, users)| format!("{workload} {users} users")).collect();
            let _ = writeln!(out, "workload mix    {}", mix.join(", "));
        }
        let ramp = self.ramp_seconds.map_or("not reached".to_owned(), |seconds| format!("{seconds:.1} s"));
        let _ = writeln!(
            out,
            "connections     {} established of {} (peak {}), ramp {ramp}, {} connect errors",
            self.connections_established, self.connections_target, self.connections_peak, self.connect_errors
        );
        let _ = writeln!(
            out,
            "messages        {} sent, {} acked, {} rejected, {} delivered, {} receipts, {:.0} msgs/s",
            self.messages_sent,
            self.messages_acked,
            self.messages_rejected,
            self.messages_delivered,
            self.receipts,
            self.throughput_msgs_per_s
        );
        let _ = writeln!(
            out,
            "ledger          lost {} duplicated {} reordered {} (redelivered {}, unresolved {}, receipts missing {})",
            self.lost, self.duplicated, self.reordered, self.redelivered, self.unresolved, self.receipts_missing
        );
        let _ = writeln!(out, "latency ack     {}", latency(&self.latency_ack_us));
        let _ = writeln!(out, "latency deliver {}", latency(&self.latency_delivery_us));
        if self.latency_offline_delivery_us.count > 0 {
            let _ = writeln!(out, "offline deliver {}", latency(&self.latency_offline_delivery_us));
        }
        if self.tls {
            let _ = writeln!(
                out,
                "tls handshakes  {} full, {} resumed, {} failed",
                self.tls_handshakes_full, self.tls_handshakes_resumed, self.tls_handshake_failures
            );
            let _ = writeln!(out, "tls handshake   {}", latency(&self.tls_handshake_latency));
            if self.tls_handshakes_resumed > 0 {
                let _ = writeln!(out, "  full          {}", latency(&self.tls_handshake_latency_full));
                let _ = writeln!(out, "  resumed       {}", latency(&self.tls_handshake_latency_resumed));
            }
        }
        if let Some(seconds) = self.offline_drain_seconds {
            let _ = writeln!(out, "offline drain   {seconds:.2} s after the users came back");
        }
        if self.storm_dropped > 0 {
            let recovery = self.storm_recovery_seconds.map_or("not recovered".to_owned(), |s| format!("{s:.2} s"));
            let _ = writeln!(out, "storm           {} dropped, recovered in {recovery}", self.storm_dropped);
        }
        if let (Some(rss), Some(per_connection)) = (self.server_rss_bytes, self.server_rss_per_connection_bytes) {
            let _ = writeln!(out, "server rss      {} MiB, {per_connection:.0} bytes per connection", rss >> 20);
        }
        if self.loadgen_rss_peak_bytes > 0 || self.loadgen_cpu_seconds > 0.0 {
            let per_connection = self.loadgen_rss_peak_bytes as f64 / self.connections_peak.max(1) as f64;
            let _ = writeln!(
                out,
                "loadgen cost    {} MiB peak RSS ({per_connection:.0} B per connection), {:.1} CPU s in {:.1} s",
                self.loadgen_rss_peak_bytes >> 20,
                self.loadgen_cpu_seconds,
                self.run_seconds
            );
        }
        if let (Some(slab), Some(used)) = (self.host_slab_per_connection_bytes, self.host_used_per_connection_bytes) {
            let _ = writeln!(out, "host memory     {slab:.0} B slab and {used:.0} B in all per connection (both ends)");
        }
        if let Some(lowest) = self.host_memory_headroom_min_bytes {
            let _ = writeln!(out, "host headroom   {} MiB at the lowest (free memory and page cache)", lowest >> 20);
        }
        if !self.cpu_busy_per_core.is_empty() {
            let busy: Vec<String> =
                self.cpu_busy_per_core.iter().map(|share| format!("{:.0}%", share * 100.0)).collect();
            let _ = writeln!(out, "cpu busy        {} (per core, during the hold)", busy.join(" "));
        }
        if let Some(cpu) = self.server_cpu_seconds {
            let _ = writeln!(out, "server cpu      {cpu:.1} CPU s in {:.1} s", self.run_seconds);
        }
        if !self.errors.is_empty() {
            let listed: Vec<String> = self.errors.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
            let _ = writeln!(out, "errors          {}", listed.join(", "));
        }
        for note in &self.notes {
            let _ = writeln!(out, "note            {note}");
        }
        if let Some(reason) = &self.stopped_early {
            let _ = writeln!(out, "stopped early   {reason}");
        }
        if self.agents_lost > 0 {
            let _ = writeln!(out, "AGENTS LOST     {} agents never sent their final report", self.agents_lost);
        }
        for problem in &self.problems {
            let message = &problem.message;
            let _ = writeln!(
                out,
                "{:?} message {}->{} #{} (server id {:?}, detail {:?})",
                problem.kind, message.sender, message.recipient, message.pair_seq, problem.server_id, problem.detail
            );
        }
        let verdict = if self.is_clean() {
            "PASS: nothing lost, duplicated or reordered".to_owned()
        } else if self.cores_unfinished() > 0 {
            format!(
                "FAIL: {} agent cores never sent their verdict, so their messages are not accounted for",
                self.cores_unfinished()
            )
        } else if let Some(reason) = &self.stopped_early {
            format!("FAIL: stopped before the end of the plan ({reason})")
        } else if !self.connections_reached() {
            format!(
                "FAIL: at most {} of the {} connections were up at once",
                self.connections_peak, self.connections_target
            )
        } else {
            "FAIL".to_owned()
        };
        let _ = writeln!(out, "verdict         {verdict}");
        out
    }
}

fn us(value: u64) -> String {
    if value >= 1_000_000 {
        format!("{:.2}s", value as f64 / 1e6)
    } else if value >= 1_000 {
        format!("{:.2}ms", value as f64 / 1e3)
    } else {
        format!("{value}µs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_has_the_contracted_field_names() {
        let report =
            Report { server_rss_bytes: Some(1), server_rss_per_connection_bytes: Some(2.0), ..Default::default() };
        let value = serde_json::to_value(&report).expect("serialises");
        for field in [
            "connections_target",
            "connections_established",
            "connect_errors",
            "ramp_seconds",
            "messages_sent",
            "messages_acked",
            "messages_delivered",
            "lost",
            "duplicated",
            "reordered",
            "latency_ack_us",
            "latency_delivery_us",
            "throughput_msgs_per_s",
            "server_rss_bytes",
            "server_rss_per_connection_bytes",
            "command_line",
            "machine",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        for latency in ["latency_ack_us", "latency_delivery_us"] {
            for percentile in ["p50", "p90", "p99", "p999", "max"] {
                assert!(value[latency].get(percentile).is_some(), "missing {latency}.{percentile}");
            }
        }
        for field in
            ["tls", "tls_handshake_latency", "tls_handshakes_full", "tls_handshakes_resumed", "tls_handshake_failures"]
        {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        for percentile in ["count", "p50", "p90", "p99", "p999", "max"] {
            assert!(
                value["tls_handshake_latency"].get(percentile).is_some(),
                "missing tls_handshake_latency.{percentile}"
            );
        }
        for machine in ["cores", "memory_bytes", "kernel"] {
            assert!(value["machine"].get(machine).is_some(), "missing machine.{machine}");
        }
    }

    #[test]
    fn summary_names_the_verdict_and_problems() {
        let clean = Report::default();
        assert!(clean.render_summary().contains("PASS"));
        let lost = Report {
            lost: 1,
            problems: vec![Problem {
                kind: crate::ledger::ProblemKind::Lost,
                message: crate::ledger::MessageKey { sender: 1, recipient: 2, pair_seq: 3 },
                server_id: Some(4),
                detail: None,
            }],
            ..Default::default()
        };
        let text = lost.render_summary();
        assert!(text.contains("FAIL"));
        let short = Report { connections_target: 10, connections_peak: 9, ..Default::default() };
        assert!(!short.is_clean());
        assert!(short.render_summary().contains("FAIL: at most 9 of the 10 connections"), "{}", short.render_summary());
        assert!(text.contains("Lost message 1->2 #3"), "{text}");
    }

    #[test]
    fn a_run_stopped_before_the_end_of_its_plan_fails_and_says_why() {
        let stopped = Report { stopped_early: Some("host memory: …".into()), ..Default::default() };
        assert!(!stopped.is_clean());
        let text = stopped.render_summary();
        assert!(text.contains("FAIL: stopped before the end of the plan (host memory: …)"), "{text}");
    }

    #[test]
    fn unfinished_agent_cores_fail_the_run() {
        let unfinished = Report { errors: BTreeMap::from([(CORE_UNFINISHED.to_owned(), 2)]), ..Default::default() };
        assert!(!unfinished.is_clean());
        assert!(unfinished.render_summary().contains("FAIL: 2 agent cores never sent their verdict"));
    }

    #[test]
    fn tls_runs_show_their_handshakes_and_name_a_refused_certificate() {
        let plain = Report::default();
        assert!(!plain.render_summary().contains("tls"));
        assert_eq!(plain.tls_failure_note(), None);
        let resumed = Report {
            tls: true,
            tls_handshakes_full: 10,
            tls_handshakes_resumed: 4,
            tls_handshake_latency: LatencySummary { count: 14, p50: 900, ..Default::default() },
            ..Default::default()
        };
        let text = resumed.render_summary();
        assert!(text.contains("tls handshakes  10 full, 4 resumed, 0 failed"), "{text}");
        assert!(text.contains("resumed       p50"), "{text}");
        assert_eq!(resumed.tls_failure_note(), None);
        let refused = Report {
            tls: true,
            tls_handshake_failures: 7,
            errors: BTreeMap::from([
                ("connect/tls/certificate_unknown_issuer".to_owned(), 7),
                ("connect/refused".to_owned(), 9),
            ]),
            ..Default::default()
        };
        let note = refused.tls_failure_note().expect("a note");
        assert!(note.contains("connect/tls/certificate_unknown_issuer (7)"), "{note}");
        assert!(note.contains("--ca"), "{note}");
    }
}
