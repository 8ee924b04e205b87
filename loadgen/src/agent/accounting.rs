//! What one agent core counts: the delivery ledger, the latency histograms, errors by kind, connections up and
//! the ramp, storm and offline milestones. Turns session events into those figures; owns no socket and makes
//! no decision about connections (the core's loop in `core.rs` does).

use std::collections::BTreeMap;

use loadgen::client::driver::{ChatDriver, SessionEvent};
use loadgen::client::tls::HandshakeStats;
use loadgen::control::AgentCounters;
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::{DeliveryVerdict, Ledger, MessageKey};

use super::core::Slot;

#[derive(Default)]
pub(super) struct Storm {
    pub(super) dropped_at_us: u64,
    pub(super) dropped: u64,
    pub(super) up_before: u64,
    pub(super) recovered_at_us: Option<u64>,
}

/// Counters and histograms of a core.
pub(super) struct Accounting {
    pub(super) ledger: Ledger,
    pub(super) latency_ack: LatencyHistogram,
    pub(super) latency_delivery: LatencyHistogram,
    pub(super) latency_offline_delivery: LatencyHistogram,
    pub(super) interval_ack: LatencyHistogram,
    pub(super) interval_delivery: LatencyHistogram,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) connect_errors: u64,
    pub(super) connections_up: u64,
    pub(super) connections_peak: u64,
    pub(super) established: u64,
    pub(super) reconnects: u64,
    pub(super) established_expected: u64,
    pub(super) ramp_done_at_us: Option<u64>,
    pub(super) storm: Option<Storm>,
    pub(super) offline_back_at_us: Option<u64>,
    pub(super) offline_last_delivery_us: Option<u64>,
    /// TLS handshakes (with TLS).
    pub(super) tls: Option<HandshakeStats>,
}

impl Accounting {
    pub(super) fn new(run_id: u64, established_expected: u64, tls: bool) -> Self {
        Self {
            ledger: Ledger::new(run_id),
            latency_ack: LatencyHistogram::new(),
            latency_delivery: LatencyHistogram::new(),
            latency_offline_delivery: LatencyHistogram::new(),
            interval_ack: LatencyHistogram::new(),
            interval_delivery: LatencyHistogram::new(),
            errors: BTreeMap::new(),
            connect_errors: 0,
            connections_up: 0,
            connections_peak: 0,
            established: 0,
            reconnects: 0,
            established_expected,
            ramp_done_at_us: None,
            storm: None,
            offline_back_at_us: None,
            offline_last_delivery_us: None,
            tls: tls.then(HandshakeStats::new),
        }
    }

    pub(super) fn count_error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    pub(super) fn counters(&self) -> AgentCounters {
        let counts = self.ledger.counts();
        AgentCounters {
            connections_up: self.connections_up,
            connections_established: self.established,
            connect_errors: self.connect_errors,
            reconnects: self.reconnects,
            sent: counts.sent,
            acked: counts.acked,
            delivered: counts.delivered,
            tls_handshakes_full: self.tls.as_ref().map_or(0, |tls| tls.full),
            tls_handshakes_resumed: self.tls.as_ref().map_or(0, |tls| tls.resumed),
            tls_handshake_failures: self.tls.as_ref().map_or(0, |tls| tls.failures),
        }
    }

    pub(super) fn handle_events(&mut self, slot: &mut Slot, events: &mut Vec<SessionEvent>, now_us: u64) {
        for event in events.drain(..) {
            match event {
                SessionEvent::Welcome { .. } => {
                    slot.up = true;
                    self.connections_up += 1;
                    self.connections_peak = self.connections_peak.max(self.connections_up);
                    if slot.ever_up {
                        self.reconnects += 1;
                    } else {
                        slot.ever_up = true;
                        self.established += 1;
                        if self.established >= self.established_expected && self.ramp_done_at_us.is_none() {
                            self.ramp_done_at_us = Some(now_us);
                        }
                    }
                    if let Some(storm) = self.storm.as_mut()
                        && storm.recovered_at_us.is_none()
                        && self.connections_up >= storm.up_before
                    {
                        storm.recovered_at_us = Some(now_us);
                    }
                }
                SessionEvent::Acked { message, server_id } => {
                    if let Some(latency_us) = self.ledger.handle_ack(MessageKey::from(&message.body), server_id, now_us)
                    {
                        self.latency_ack.record(latency_us);
                        self.interval_ack.record(latency_us);
                    }
                }
                SessionEvent::Rejected { message, code } => {
                    self.ledger.handle_reject(MessageKey::from(&message.body), code);
                    self.count_error(format!("reject/{code:?}"));
                }
                SessionEvent::AnswerUnmatched { .. } => self.count_error("session/answer_unmatched".into()),
                SessionEvent::Delivered { item_id, body, .. } => {
                    match self.ledger.handle_deliver(body, item_id, now_us) {
                        DeliveryVerdict::First { latency_us, recipient_offline_at_send: true } => {
                            self.latency_offline_delivery.record(latency_us);
                            self.offline_last_delivery_us = Some(now_us);
                        }
                        DeliveryVerdict::First { latency_us, .. } => {
                            self.latency_delivery.record(latency_us);
                            self.interval_delivery.record(latency_us);
                        }
                        _ => {}
                    }
                }
                SessionEvent::Receipt { server_id, peer, kind } => {
                    self.ledger.handle_receipt(slot.session.user(), peer, server_id, kind);
                }
                SessionEvent::Goaway { reason } => self.count_error(format!("goaway/{reason:?}")),
                SessionEvent::ServerError { code } => self.count_error(format!("error/{code:?}")),
            }
        }
    }
}
