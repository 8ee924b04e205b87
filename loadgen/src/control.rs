//! The controller↔agent control protocol: JSON lines over one TCP connection that the controller opens to the
//! agent's `--listen` address. Each line is one object tagged by `"type"`; lines are at most
//! CONTROL_LINE_BYTES_MAX bytes.
//!
//! 0. controller → agent `{"type":"hello", token, sent_at_us}` as soon as the connection is up: the agent
//!    checks the token (`handshake.rs`) and, if it is missing or wrong, answers `failed` and closes;
//! 1. agent → controller `{"type":"ready", cores, connections_max, pid, version, protocol_version, clock_us}`:
//!    the controller checks the versions and the clock offset (`handshake.rs`) and closes on a mismatch;
//! 2. controller → agent `{"type":"start", ...RunPlan}`: the agent's users (with keys), targets and schedule
//!    (ramp steps and rate steps: a staged profile's rate changes travel here, in the plan), all times in µs
//!    since the Unix epoch (CLOCK_REALTIME);
//! 3. agent → controller `{"type":"progress", ...}` every second: counters and the interval's latency
//!    histograms;
//! 4. controller → agent `{"type":"stop"}` at any time (Ctrl-C): the agent drains briefly and finishes;
//! 5. agent → controller `{"type":"final", ...}` once: the merged ledger verdict, whole-run histograms and error
//!    counts of all its cores. Then the agent closes the connection and waits for the next controller.
//!
//! Histograms travel as base64 V2 HdrHistograms and are merged, never averaged. If the connection breaks, the
//! agent stops its run. Owns message shapes and line framing; no sockets of its own.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ledger::LedgerSummary;
use crate::limits::CONTROL_LINE_BYTES_MAX;
use crate::load_profile::RampStep;
use crate::scenario_file::BodySize;
use crate::schedule::{Arrivals, RateStep};
use crate::workload_mix::WorkloadShare;

/// Why a control line could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    #[error("control connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("control line over {CONTROL_LINE_BYTES_MAX} bytes")]
    LineTooLong,
    #[error("control line is not a valid message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Which workload a run applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Ramp up and hold the connections with PING keepalives; no messages.
    Idle,
    /// Every online user sends to its contacts at an open-loop total rate.
    Chat,
    /// A share of users is offline while others send to them; they come back halfway through.
    Offline,
    /// A share of connections is dropped at once a third of the way through and reconnects.
    ReconnectStorm,
}

impl Scenario {
    /// The workload's name, as the command line and a scenario file spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Chat => "chat",
            Self::Offline => "offline",
            Self::ReconnectStorm => "reconnect-storm",
        }
    }
}

/// Which client protocol the agents speak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolName {
    /// ringline's own binary protocol (`wire`).
    #[default]
    Native,
    /// XMPP client-to-server: SASL PLAIN, XEP-0198 acks, XEP-0184 receipts (ejabberd, prosody, …).
    Xmpp,
}

/// One user an agent is to connect as: id and hex device key, as in the keys file (native), or id and password
/// (XMPP; the JID comes from the plan's realm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanUser {
    pub user: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_hex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What one agent is to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run_id: u64,
    pub scenario: Scenario,
    pub users: Vec<PlanUser>,
    pub targets: Vec<SocketAddr>,
    pub source_cidrs: String,
    /// When its users connect: the ramp as shares of them (the same shares for the run, each agent and core).
    pub ramps: Vec<RampStep>,
    /// This agent's share of the message rate, from each step's time on (`--stages` changes it mid-run).
    pub rates: Vec<RateStep>,
    pub arrivals: Arrivals,
    pub offline_share: f64,
    pub storm_share: f64,
    pub contacts_per_user: usize,
    pub body_bytes: u32,
    /// A message size mix (a scenario file's `body_bytes_mix`) instead of `body_bytes`: each user sends one
    /// size, the first share of the users the first size, and so on. Empty: every user sends `body_bytes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_bytes_mix: Vec<BodySize>,
    /// A workload mix (a scenario file's `workload_mix`) instead of `scenario`: each user runs one workload,
    /// by its index among the plan's users (`workload_mix::workload_of`). Empty: every user runs `scenario`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload_mix: Vec<WorkloadShare>,
    pub ping_interval_s: u64,
    pub connect_timeout_ms: u64,
    pub start_at_us: u64,
    /// Sends start here (the planned end of the ramp).
    pub hold_start_at_us: u64,
    /// Sends stop here; the drain follows.
    pub hold_end_at_us: u64,
    /// The agent finishes at the latest here, drained or not.
    pub drain_deadline_us: u64,
    /// Cores (one pinned thread each) to use; `None` for every core of the agent's machine.
    pub cores: Option<usize>,
    /// Where the agent's core 0 pins (core i pins to CPU `(first_cpu + i) % CPUs`): agents sharing a machine
    /// start at different CPUs, so that one-core agents spread over the machine.
    #[serde(default)]
    pub first_cpu: usize,
    #[serde(default)]
    pub protocol: ProtocolName,
    /// The JIDs' prefix and domain (`--protocol xmpp`). Boxed: a native plan carries `None` in 8 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xmpp_realm: Option<Box<crate::client::xmpp::XmppRealm>>,
    /// TLS on every connection (`--tls`); `None` for plaintext. Boxed like the realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Box<TlsPlan>>,
}

/// How an agent's connections speak TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPlan {
    /// The PEM certificates to trust (the `--ca` file's text, or the spawned engines' dev certificate): they
    /// travel in the plan, so a remote agent needs no file.
    pub roots_pem: String,
    /// The name to verify the certificate against and send as SNI; `None`: the target's IP address, no SNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Reconnects resume with the user's ticket (false: `--tls-no-resumption`).
    #[serde(default = "resumption_default")]
    pub resumption: bool,
}

fn resumption_default() -> bool {
    true
}

/// Counters an agent reports; sums over agents are meaningful.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounters {
    pub connections_up: u64,
    /// Users that completed HELLO/WELCOME at least once.
    pub connections_established: u64,
    pub connect_errors: u64,
    pub reconnects: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    /// TLS handshakes finished, by kind, and handshakes that failed after the TCP connection was up.
    #[serde(default)]
    pub tls_handshakes_full: u64,
    #[serde(default)]
    pub tls_handshakes_resumed: u64,
    #[serde(default)]
    pub tls_handshake_failures: u64,
}

/// TLS handshake latencies (µs from the TCP connect to the handshake done), base64 V2 HdrHistograms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsHandshakeLatency {
    pub all: String,
    pub full: String,
    pub resumed: String,
}

/// A message from the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerMessage {
    /// The greeting, first on every connection.
    Hello(ControllerHello),
    /// Boxed: the plan is large and `Stop` is nothing.
    Start(Box<RunPlan>),
    Stop,
}

/// The controller's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerHello {
    /// The shared agent token (`--agent-token`); `None` for an agent that needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The controller's clock when it sent this, µs since the Unix epoch.
    pub sent_at_us: u64,
}

/// The agent's answer to the greeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReady {
    pub cores: usize,
    pub connections_max: u64,
    pub pid: u32,
    /// The agent's crate version and control protocol version (empty and 0 from builds older than both).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub protocol_version: u32,
    /// The agent's clock when it answered, µs since the Unix epoch.
    #[serde(default)]
    pub clock_us: u64,
}

/// Once a second while running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProgress {
    pub at_us: u64,
    pub counters: AgentCounters,
    /// Latencies recorded during the last interval, base64 V2 HdrHistograms.
    pub interval_latency_ack: String,
    pub interval_latency_delivery: String,
}

/// The agent's verdict once its run is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFinal {
    pub counters: AgentCounters,
    pub connections_peak: u64,
    pub ledger: LedgerSummary,
    pub latency_ack: String,
    pub latency_delivery: String,
    /// Deliveries to users that were offline when the message was sent (offline drain).
    pub latency_offline_delivery: String,
    /// Errors by kind, e.g. `connect/refused`, `reject/ServerQueueFull`, `goaway/ShuttingDown`.
    pub errors: BTreeMap<String, u64>,
    /// When every user that should be online had completed its first WELCOME.
    pub ramp_done_at_us: Option<u64>,
    /// From the storm's drop until every dropped connection was back.
    pub storm_recovery_us: Option<u64>,
    pub storm_dropped: u64,
    /// From the offline users' return until the last message queued for them was delivered.
    pub offline_drain_us: Option<u64>,
    /// The agent process's own peak resident set and CPU time (user + system) over the run.
    #[serde(default)]
    pub rss_peak_bytes: u64,
    #[serde(default)]
    pub cpu_ms: u64,
    /// Handshake latencies of a TLS run (`None` without TLS); the counts are in `counters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake_latency: Option<TlsHandshakeLatency>,
}

/// A message from an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Ready(AgentReady),
    Progress(AgentProgress),
    Final(Box<AgentFinal>),
    /// The agent could not run the plan.
    Failed {
        error: String,
    },
}

/// Writes one message as one line and flushes.
pub fn write_message<T: Serialize>(out: &mut impl Write, message: &T) -> Result<(), ControlError> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()?;
    Ok(())
}

/// Reads one message; `Ok(None)` when the peer closed the connection.
pub fn read_message<T: for<'de> Deserialize<'de>>(input: &mut impl BufRead) -> Result<Option<T>, ControlError> {
    let mut line = Vec::new();
    let mut limited = input.by_ref().take(CONTROL_LINE_BYTES_MAX as u64 + 1);
    let read = limited.read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.len() > CONTROL_LINE_BYTES_MAX {
        return Err(ControlError::LineTooLong);
    }
    Ok(Some(serde_json::from_slice(&line)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::LatencyHistogram;

    fn plan() -> RunPlan {
        RunPlan {
            run_id: 1,
            scenario: Scenario::Offline,
            users: vec![
                PlanUser { user: 15_550_000_000, key_hex: "ab".repeat(32), password: None },
                PlanUser { user: 7, key_hex: String::new(), password: Some("pw".into()) },
            ],
            targets: vec!["127.0.0.1:7000".parse().expect("literal")],
            source_cidrs: "127.0.1.0/24".into(),
            ramps: vec![RampStep { start_at_us: 10, end_at_us: 20, share_from: 0.0, share_to: 1.0 }],
            rates: vec![RateStep { at_us: 20, msgs_per_s: 50.0 }, RateStep { at_us: 25, msgs_per_s: 80.0 }],
            arrivals: Arrivals::Poisson,
            offline_share: 0.2,
            storm_share: 0.5,
            contacts_per_user: 4,
            body_bytes: 64,
            body_bytes_mix: vec![BodySize { bytes: 64, share: 0.5 }, BodySize { bytes: 512, share: 0.5 }],
            workload_mix: vec![
                WorkloadShare { workload: Scenario::Chat, share: 0.8 },
                WorkloadShare { workload: Scenario::Idle, share: 0.2 },
            ],
            ping_interval_s: 60,
            connect_timeout_ms: 5_000,
            start_at_us: 10,
            hold_start_at_us: 20,
            hold_end_at_us: 30,
            drain_deadline_us: 40,
            cores: Some(2),
            first_cpu: 1,
            protocol: ProtocolName::Xmpp,
            xmpp_realm: Some(Box::new(crate::client::xmpp::XmppRealm {
                user_prefix: "user".into(),
                domain: "localhost".into(),
            })),
            tls: Some(Box::new(TlsPlan {
                roots_pem: "-----BEGIN CERTIFICATE-----".into(),
                server_name: None,
                resumption: false,
            })),
        }
    }

    #[test]
    fn messages_round_trip_as_lines() {
        let mut histogram = LatencyHistogram::new();
        histogram.record(1234);
        let final_message = AgentMessage::Final(Box::new(AgentFinal {
            counters: AgentCounters { connections_up: 3, sent: 9, ..Default::default() },
            connections_peak: 3,
            ledger: LedgerSummary { lost: 1, ..Default::default() },
            latency_ack: histogram.to_base64().expect("serialises"),
            latency_delivery: String::new(),
            latency_offline_delivery: String::new(),
            errors: BTreeMap::from([("connect/refused".to_owned(), 2)]),
            ramp_done_at_us: Some(5),
            storm_recovery_us: None,
            storm_dropped: 0,
            offline_drain_us: None,
            rss_peak_bytes: 80 << 20,
            cpu_ms: 1234,
            tls_handshake_latency: Some(TlsHandshakeLatency {
                all: histogram.to_base64().expect("serialises"),
                ..Default::default()
            }),
        }));
        let ready = AgentMessage::Ready(AgentReady {
            cores: 2,
            connections_max: 19_900,
            pid: 7,
            version: "1.2.3".into(),
            protocol_version: 2,
            clock_us: 99,
        });
        let hello = ControllerMessage::Hello(ControllerHello { token: Some("t".into()), sent_at_us: 98 });
        let mut wire = Vec::new();
        write_message(&mut wire, &hello).expect("writes");
        write_message(&mut wire, &ready).expect("writes");
        write_message(&mut wire, &final_message).expect("writes");
        write_message(&mut wire, &ControllerMessage::Start(Box::new(plan()))).expect("writes");
        write_message(&mut wire, &ControllerMessage::Stop).expect("writes");
        let text = String::from_utf8(wire.clone()).expect("utf-8");
        assert!(text.starts_with("{\"type\":\"hello\",\"token\":\"t\""), "{text}");
        let mut input = wire.as_slice();
        assert_eq!(read_message::<ControllerMessage>(&mut input).expect("reads"), Some(hello));
        assert_eq!(read_message::<AgentMessage>(&mut input).expect("reads"), Some(ready));
        let read_final = read_message::<AgentMessage>(&mut input).expect("reads");
        assert_eq!(read_final, Some(final_message.clone()));
        if let Some(AgentMessage::Final(agent_final)) = read_final {
            let travelled = LatencyHistogram::from_base64(&agent_final.latency_ack).expect("histogram");
            assert_eq!(travelled.summary(), histogram.summary());
        }
        assert_eq!(
            read_message::<ControllerMessage>(&mut input).expect("reads"),
            Some(ControllerMessage::Start(Box::new(plan())))
        );
        assert_eq!(read_message::<ControllerMessage>(&mut input).expect("reads"), Some(ControllerMessage::Stop));
        assert_eq!(read_message::<ControllerMessage>(&mut input).expect("eof"), None);
    }

    #[test]
    fn garbage_lines_are_typed_errors() {
        let mut input: &[u8] = b"{\"type\":\"launch\"}\n";
        assert!(matches!(read_message::<ControllerMessage>(&mut input), Err(ControlError::Json(_))));
    }
}
