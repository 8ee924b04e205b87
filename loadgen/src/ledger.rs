//! The message ledger: every message one core's users send, tracked from schedule to ACK, delivery and
//! receipt, and the verdict at the end (sent, acked, delivered, receipts, lost, duplicated, reordered).
//! Sans-IO: it is fed events and times by the core's runtime and never reads a clock or a socket.
//!
//! Both ends of every pair live on the same core (see `contacts.rs`), so one ledger sees both sides. A message
//! is identified by (sender, recipient, pair_seq) as carried in its body. It is retired once it is acked,
//! delivered and its receipt is in: the server has wiped it then and can never deliver it again, so memory stays
//! proportional to messages in flight. Delivery semantics, after docs/PROTOCOL.md:
//! - the same item_id twice is a *redelivery* (the protocol resends after a reconnect): counted, not an error;
//! - the same (sender, recipient, pair_seq) under a different item_id, or after retirement, is a *duplicate*;
//! - a first delivery whose pair_seq is below one already delivered on that pair is *reordered*;
//! - at the end, a message ACKed and never delivered is *lost*.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use wire::{ReceiptKind, RejectCode, UserId};

use crate::client::body::MessageBody;
use crate::limits::{PROBLEMS_NAMED_MAX, RETIRED_REMEMBERED_MAX};

/// One message, as the ledger names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    pub sender: UserId,
    pub recipient: UserId,
    pub pair_seq: u64,
}

impl From<&MessageBody> for MessageKey {
    fn from(body: &MessageBody) -> Self {
        Self { sender: body.sender, recipient: body.recipient, pair_seq: body.pair_seq }
    }
}

/// What went wrong with one named message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Lost,
    Duplicated,
    Reordered,
}

/// A message named in the report because it was lost, duplicated or reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: MessageKey,
    /// The server's id for it, where known (ACK's server_id or the delivery's item_id).
    pub server_id: Option<u64>,
    /// For duplicates: the second item id; for reorders: the highest pair_seq delivered before it.
    pub detail: Option<u64>,
}

/// Counters of a ledger; sums over cores and agents are meaningful (all are counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounts {
    /// Messages scheduled and handed to a connection (retries are not counted again).
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    /// First deliveries to the application.
    pub delivered: u64,
    /// The same item delivered again after a reconnect (expected; deduplicated by item_id).
    pub redelivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// First RECEIPT(Delivered) per message.
    pub receipts: u64,
    /// RECEIPTs for a message whose receipt was already in (the receipt item was redelivered).
    pub receipts_repeated: u64,
    /// RECEIPTs that match no message of this run (e.g. left over from an earlier run).
    pub receipts_unmatched: u64,
    /// RECEIPT(Expired): the server dropped a message at its age limit and said so.
    pub expired: u64,
    /// Deliveries carrying another run's id: left in the server by an earlier run, acknowledged and ignored.
    pub stale_deliveries: u64,
    /// Deliveries whose body is not a loadgen body.
    pub foreign_deliveries: u64,
    /// Deliveries of a pair_seq this run never sent.
    pub unknown_deliveries: u64,
    /// ACKs that match no unresolved message (e.g. the first ACK of a retried SEND arrived twice).
    pub acks_repeated: u64,
    /// REJECTs by code name.
    pub rejected_by_code: BTreeMap<String, u64>,
}

/// The verdict of a ledger (or of many, merged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSummary {
    pub counts: LedgerCounts,
    /// ACKed and never delivered.
    pub lost: u64,
    /// Sent and neither ACKed, REJECTed nor delivered when the run ended.
    pub unresolved: u64,
    /// Delivered, but the sender never got the receipt.
    pub receipts_missing: u64,
    /// The first few lost, duplicated and reordered messages, per kind.
    pub problems: Vec<Problem>,
}

impl LedgerSummary {
    /// Adds `other` into `self`; named problems stay bounded per kind.
    pub fn merge(&mut self, other: &LedgerSummary) {
        let (a, b) = (&mut self.counts, &other.counts);
        a.sent += b.sent;
        a.acked += b.acked;
        a.rejected += b.rejected;
        a.delivered += b.delivered;
        a.redelivered += b.redelivered;
        a.duplicated += b.duplicated;
        a.reordered += b.reordered;
        a.receipts += b.receipts;
        a.receipts_repeated += b.receipts_repeated;
        a.receipts_unmatched += b.receipts_unmatched;
        a.expired += b.expired;
        a.stale_deliveries += b.stale_deliveries;
        a.foreign_deliveries += b.foreign_deliveries;
        a.unknown_deliveries += b.unknown_deliveries;
        a.acks_repeated += b.acks_repeated;
        for (code, count) in &b.rejected_by_code {
            *a.rejected_by_code.entry(code.clone()).or_default() += count;
        }
        self.lost += other.lost;
        self.unresolved += other.unresolved;
        self.receipts_missing += other.receipts_missing;
        for problem in &other.problems {
            push_problem(&mut self.problems, problem.clone());
        }
    }

    /// True when the run lost, duplicated or reordered nothing.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.counts.duplicated == 0 && self.counts.reordered == 0
    }
}

fn push_problem(problems: &mut Vec<Problem>, problem: Problem) {
    let same_kind = problems.iter().filter(|known| known.kind == problem.kind).count();
    if same_kind < PROBLEMS_NAMED_MAX {
        problems.push(problem);
    }
}

/// What the ledger knows of one unretired message.
#[derive(Debug, Clone)]
struct MessageRecord {
    scheduled_us: u64,
    recipient_offline_at_send: bool,
    /// From the ACK.
    server_id: Option<u64>,
    /// From the first delivery.
    delivered_item: Option<u64>,
    receipt: bool,
}

/// One sender→recipient pair.
#[derive(Debug, Default)]
struct PairLedger {
    /// The next pair_seq to hand out; every seq below it was sent.
    next_seq: u64,
    highest_delivered_seq: u64,
    records: BTreeMap<u64, MessageRecord>,
}

/// How a delivery was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// The first delivery of a message of this run; `latency_us` is from its scheduled send time.
    First {
        latency_us: u64,
        recipient_offline_at_send: bool,
    },
    Redelivered,
    Duplicated,
    /// Another run's message, or not a loadgen message, or a pair_seq never sent.
    NotOurs,
}

/// The ledger of one core.
#[derive(Debug)]
pub struct Ledger {
    run_id: u64,
    pairs: HashMap<(UserId, UserId), PairLedger>,
    counts: LedgerCounts,
    problems: Vec<Problem>,
    /// The item ids of the most recently retired messages, oldest first in `retired_order`: after a crash the
    /// server may deliver a message again whose receipt already came (its wipe was not durable yet), with the
    /// same item id; that is a redelivery, not a duplicate.
    retired: HashMap<MessageKey, u64>,
    retired_order: VecDeque<MessageKey>,
}

impl Ledger {
    pub fn new(run_id: u64) -> Self {
        Self {
            run_id,
            pairs: HashMap::new(),
            counts: LedgerCounts::default(),
            problems: Vec::new(),
            retired: HashMap::new(),
            retired_order: VecDeque::new(),
        }
    }

    pub fn counts(&self) -> &LedgerCounts {
        &self.counts
    }

    /// Messages not yet retired (sent and not yet acked, delivered and receipted, or rejected).
    pub fn outstanding(&self) -> usize {
        self.pairs.values().map(|pair| pair.records.len()).sum()
    }

    /// A message is scheduled from `sender` to `recipient` at `scheduled_us`: assigns its pair_seq and returns the
    /// body to send. `recipient_offline_at_send` keeps its delivery latency apart from online deliveries.
    pub fn handle_send(
        &mut self,
        sender: UserId,
        recipient: UserId,
        scheduled_us: u64,
        recipient_offline_at_send: bool,
    ) -> MessageBody {
        let pair = self.pairs.entry((sender, recipient)).or_default();
        pair.next_seq += 1;
        let pair_seq = pair.next_seq;
        let record = MessageRecord {
            scheduled_us,
            recipient_offline_at_send,
            server_id: None,
            delivered_item: None,
            receipt: false,
        };
        pair.records.insert(pair_seq, record);
        self.counts.sent += 1;
        MessageBody { run_id: self.run_id, sender, recipient, pair_seq, scheduled_us }
    }

    /// A scheduled message was never handed to the server (the connection's backlog was full): forget it.
    pub fn handle_send_abandoned(&mut self, key: MessageKey) {
        if let Some(pair) = self.pairs.get_mut(&(key.sender, key.recipient))
            && pair.records.remove(&key.pair_seq).is_some()
        {
            self.counts.sent -= 1;
        }
    }

    /// The server ACKed `key` as `server_id` at local time `now_us`. Returns the latency from the scheduled send
    /// time for the first ACK of the message, `None` for a repeated one.
    pub fn handle_ack(&mut self, key: MessageKey, server_id: u64, now_us: u64) -> Option<u64> {
        let Some(record) = self.record_mut(key) else {
            self.counts.acks_repeated += 1;
            return None;
        };
        if record.server_id.is_some() {
            self.counts.acks_repeated += 1;
            return None;
        }
        record.server_id = Some(server_id);
        let latency_us = now_us.saturating_sub(record.scheduled_us);
        self.counts.acked += 1;
        self.retire_if_done(key);
        Some(latency_us)
    }

    /// The server refused `key`: it was not stored and will not be delivered.
    pub fn handle_reject(&mut self, key: MessageKey, code: RejectCode) {
        let Some(pair) = self.pairs.get_mut(&(key.sender, key.recipient)) else { return };
        if pair.records.remove(&key.pair_seq).is_some() {
            self.counts.rejected += 1;
            *self.counts.rejected_by_code.entry(format!("{code:?}")).or_default() += 1;
        }
    }

    /// A DELIVER reached the application: `body` as decoded (or why not), `item_id` the server's id.
    pub fn handle_deliver(
        &mut self,
        body: Result<MessageBody, crate::client::body::BodyError>,
        item_id: u64,
        now_us: u64,
    ) -> DeliveryVerdict {
        let Ok(body) = body else {
            self.counts.foreign_deliveries += 1;
            return DeliveryVerdict::NotOurs;
        };
        if body.run_id != self.run_id {
            self.counts.stale_deliveries += 1;
            return DeliveryVerdict::NotOurs;
        }
        let key = MessageKey::from(&body);
        let Some(pair) = self.pairs.get_mut(&(key.sender, key.recipient)) else {
            self.counts.unknown_deliveries += 1;
            return DeliveryVerdict::NotOurs;
        };
        if key.pair_seq == 0 || key.pair_seq > pair.next_seq {
            self.counts.unknown_deliveries += 1;
            return DeliveryVerdict::NotOurs;
        }
        let highest_before = pair.highest_delivered_seq;
        let Some(record) = pair.records.get_mut(&key.pair_seq) else {
            if self.retired.get(&key) == Some(&item_id) {
                // Retired moments before a crash took the server's wipe: the same item again.
                self.counts.redelivered += 1;
                return DeliveryVerdict::Redelivered;
            }
            // Retired (acked, delivered and receipted: the server wiped it) or rejected: a second copy.
            self.counts.duplicated += 1;
            let problem =
                Problem { kind: ProblemKind::Duplicated, message: key, server_id: None, detail: Some(item_id) };
            push_problem(&mut self.problems, problem);
            return DeliveryVerdict::Duplicated;
        };
        match record.delivered_item {
            Some(first_item) if first_item == item_id => {
                self.counts.redelivered += 1;
                DeliveryVerdict::Redelivered
            }
            Some(first_item) => {
                self.counts.duplicated += 1;
                let problem = Problem {
                    kind: ProblemKind::Duplicated,
                    message: key,
                    server_id: Some(first_item),
                    detail: Some(item_id),
                };
                push_problem(&mut self.problems, problem);
                DeliveryVerdict::Duplicated
            }
            None => {
                record.delivered_item = Some(item_id);
                let verdict = DeliveryVerdict::First {
                    latency_us: now_us.saturating_sub(record.scheduled_us),
                    recipient_offline_at_send: record.recipient_offline_at_send,
                };
                self.counts.delivered += 1;
                if key.pair_seq < highest_before {
                    self.counts.reordered += 1;
                    let problem = Problem {
                        kind: ProblemKind::Reordered,
                        message: key,
                        server_id: Some(item_id),
                        detail: Some(highest_before),
                    };
                    push_problem(&mut self.problems, problem);
                } else {
                    pair.highest_delivered_seq = key.pair_seq;
                }
                self.retire_if_done(key);
                verdict
            }
        }
    }

    /// A RECEIPT reached `sender`: message `server_id` it sent to `peer`.
    pub fn handle_receipt(&mut self, sender: UserId, peer: UserId, server_id: u64, kind: ReceiptKind) {
        let Some(pair) = self.pairs.get_mut(&(sender, peer)) else {
            self.counts.receipts_unmatched += 1;
            return;
        };
        let found = pair
            .records
            .iter_mut()
            .find(|(_, record)| record.server_id == Some(server_id) || record.delivered_item == Some(server_id));
        let Some((&pair_seq, record)) = found else {
            // Retirement needs the receipt, so a receipt for a retired message is a repeat.
            if server_id != 0 && pair.next_seq > 0 {
                self.counts.receipts_repeated += 1;
            } else {
                self.counts.receipts_unmatched += 1;
            }
            return;
        };
        match kind {
            ReceiptKind::Expired => {
                self.counts.expired += 1;
                pair.records.remove(&pair_seq);
            }
            ReceiptKind::Delivered => {
                if record.receipt {
                    self.counts.receipts_repeated += 1;
                } else {
                    record.receipt = true;
                    self.counts.receipts += 1;
                    self.retire_if_done(MessageKey { sender, recipient: peer, pair_seq });
                }
            }
            _ => {}
        }
    }

    /// The verdict now: whatever is acked and not delivered counts as lost.
    pub fn summary(&self) -> LedgerSummary {
        let mut summary = LedgerSummary {
            counts: self.counts.clone(),
            lost: 0,
            unresolved: 0,
            receipts_missing: 0,
            problems: self.problems.clone(),
        };
        let mut keys: Vec<_> = self.pairs.keys().copied().collect();
        keys.sort_unstable();
        for (sender, recipient) in keys {
            let pair = &self.pairs[&(sender, recipient)];
            for (&pair_seq, record) in &pair.records {
                match (record.server_id, record.delivered_item) {
                    (Some(server_id), None) => {
                        summary.lost += 1;
                        let message = MessageKey { sender, recipient, pair_seq };
                        let problem =
                            Problem { kind: ProblemKind::Lost, message, server_id: Some(server_id), detail: None };
                        push_problem(&mut summary.problems, problem);
                    }
                    (None, None) => summary.unresolved += 1,
                    (_, Some(_)) if !record.receipt => summary.receipts_missing += 1,
                    _ => {}
                }
            }
        }
        summary
    }

    fn record_mut(&mut self, key: MessageKey) -> Option<&mut MessageRecord> {
        self.pairs.get_mut(&(key.sender, key.recipient))?.records.get_mut(&key.pair_seq)
    }

    fn retire_if_done(&mut self, key: MessageKey) {
        let Some(pair) = self.pairs.get_mut(&(key.sender, key.recipient)) else { return };
        let done = pair
            .records
            .get(&key.pair_seq)
            .is_some_and(|record| record.server_id.is_some() && record.delivered_item.is_some() && record.receipt);
        if !done {
            return;
        }
        let Some(item_id) = pair.records.remove(&key.pair_seq).and_then(|record| record.delivered_item) else {
            return;
        };
        if self.retired_order.len() >= RETIRED_REMEMBERED_MAX
            && let Some(oldest) = self.retired_order.pop_front()
        {
            self.retired.remove(&oldest);
        }
        self.retired.insert(key, item_id);
        self.retired_order.push_back(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{ReceiptKind, RejectCode};

    const RUN: u64 = 42;

    #[test]
    fn a_retired_message_delivered_again_with_its_item_id_is_a_redelivery_and_with_another_a_duplicate() {
        let mut ledger = Ledger::new(RUN);
        let body = ledger.handle_send(1, 2, 1_000, false);
        ledger.handle_ack(MessageKey::from(&body), 9, 1_100);
        assert!(matches!(deliver(&mut ledger, body, 9), DeliveryVerdict::First { .. }));
        ledger.handle_receipt(1, 2, 9, ReceiptKind::Delivered);
        assert_eq!(ledger.outstanding(), 0, "acked, delivered and receipted: retired");
        assert_eq!(deliver(&mut ledger, body, 9), DeliveryVerdict::Redelivered);
        assert_eq!(deliver(&mut ledger, body, 10), DeliveryVerdict::Duplicated);
        assert_eq!((ledger.counts().redelivered, ledger.counts().duplicated), (1, 1));
    }

    fn deliver(ledger: &mut Ledger, body: MessageBody, item_id: u64) -> DeliveryVerdict {
        ledger.handle_deliver(Ok(body), item_id, body.scheduled_us + 500)
    }

    #[test]
    fn a_full_life_retires_the_message() {
        let mut ledger = Ledger::new(RUN);
        let body = ledger.handle_send(1, 2, 1_000, false);
        assert_eq!(body.pair_seq, 1);
        assert_eq!(ledger.handle_ack(MessageKey::from(&body), 77, 1_300), Some(300));
        assert_eq!(
            deliver(&mut ledger, body, 77),
            DeliveryVerdict::First { latency_us: 500, recipient_offline_at_send: false }
        );
        ledger.handle_receipt(1, 2, 77, ReceiptKind::Delivered);
        assert_eq!(ledger.outstanding(), 0);
        let summary = ledger.summary();
        assert!(summary.is_clean());
        assert_eq!((summary.counts.sent, summary.counts.acked, summary.counts.delivered), (1, 1, 1));
        assert_eq!(summary.counts.receipts, 1);
        assert_eq!((summary.lost, summary.unresolved, summary.receipts_missing), (0, 0, 0));
    }

    #[test]
    fn acked_but_never_delivered_is_lost_and_named() {
        let mut ledger = Ledger::new(RUN);
        let body = ledger.handle_send(1, 2, 1_000, false);
        ledger.handle_ack(MessageKey::from(&body), 9, 2_000);
        let unacked = ledger.handle_send(1, 2, 1_100, false);
        let summary = ledger.summary();
        assert_eq!(summary.lost, 1);
        assert_eq!(summary.unresolved, 1, "sent without ACK is unresolved, not lost: {unacked:?}");
        assert!(!summary.is_clean());
        assert_eq!(summary.problems.len(), 1);
        assert_eq!(summary.problems[0].kind, ProblemKind::Lost);
        assert_eq!(summary.problems[0].message, MessageKey { sender: 1, recipient: 2, pair_seq: 1 });
        assert_eq!(summary.problems[0].server_id, Some(9));
    }

    #[test]
    fn same_item_again_is_a_redelivery_not_a_duplicate() {
        let mut ledger = Ledger::new(RUN);
        let body = ledger.handle_send(1, 2, 1_000, false);
        ledger.handle_ack(MessageKey::from(&body), 5, 1_100);
        assert!(matches!(deliver(&mut ledger, body, 5), DeliveryVerdict::First { .. }));
        assert_eq!(deliver(&mut ledger, body, 5), DeliveryVerdict::Redelivered);
        let summary = ledger.summary();
        assert_eq!(summary.counts.redelivered, 1);
        assert_eq!(summary.counts.duplicated, 0);
        assert_eq!(summary.counts.delivered, 1);
        assert!(summary.is_clean());
    }

    #[test]
    fn same_message_under_another_item_is_a_duplicate() {
        let mut ledger = Ledger::new(RUN);
        let body = ledger.handle_send(1, 2, 1_000, false);
        ledger.handle_ack(MessageKey::from(&body), 5, 1_100);
        deliver(&mut ledger, body, 5);
        assert_eq!(deliver(&mut ledger, body, 6), DeliveryVerdict::Duplicated);
        let summary = ledger.summary();
        assert_eq!(summary.counts.duplicated, 1);
        assert!(!summary.is_clean());
        assert_eq!(summary.problems[0].kind, ProblemKind::Duplicated);
        assert_eq!(summary.problems[0].detail, Some(6));
    }

    #[test]
    fn an_earlier_seq_after_a_later_one_is_reordered() {
        let mut ledger = Ledger::new(RUN);
        let first = ledger.handle_send(1, 2, 1_000, false);
        let second = ledger.handle_send(1, 2, 1_001, false);
        let other_pair = ledger.handle_send(3, 2, 1_002, false);
        for (body, id) in [(first, 10), (second, 11), (other_pair, 12)] {
            ledger.handle_ack(MessageKey::from(&body), id, 2_000);
        }
        deliver(&mut ledger, other_pair, 12);
        deliver(&mut ledger, second, 11);
        deliver(&mut ledger, first, 10);
        let summary = ledger.summary();
        assert_eq!(summary.counts.reordered, 1);
        assert_eq!(summary.counts.delivered, 3);
        let problem = &summary.problems[0];
        assert_eq!(problem.kind, ProblemKind::Reordered);
        assert_eq!(problem.message.pair_seq, 1);
        assert_eq!(problem.detail, Some(2));
    }

    #[test]
    fn rejected_skips_are_not_reorders_and_counted_by_code() {
        let mut ledger = Ledger::new(RUN);
        let first = ledger.handle_send(1, 2, 1_000, false);
        let second = ledger.handle_send(1, 2, 1_001, false);
        ledger.handle_reject(MessageKey::from(&first), RejectCode::RecipientQueueFull);
        ledger.handle_ack(MessageKey::from(&second), 11, 2_000);
        deliver(&mut ledger, second, 11);
        let summary = ledger.summary();
        assert!(summary.is_clean());
        assert_eq!(summary.counts.rejected, 1);
        assert_eq!(summary.counts.rejected_by_code.get("RecipientQueueFull"), Some(&1));
    }

    #[test]
    fn other_runs_and_foreign_bodies_are_not_ours() {
        let mut ledger = Ledger::new(RUN);
        let stale = MessageBody { run_id: RUN + 1, sender: 1, recipient: 2, pair_seq: 1, scheduled_us: 0 };
        assert_eq!(deliver(&mut ledger, stale, 1), DeliveryVerdict::NotOurs);
        let never_sent = MessageBody { run_id: RUN, ..stale };
        assert_eq!(deliver(&mut ledger, never_sent, 1), DeliveryVerdict::NotOurs);
        let foreign = ledger.handle_deliver(Err(crate::client::body::BodyError::BadMagic), 3, 0);
        assert_eq!(foreign, DeliveryVerdict::NotOurs);
        let counts = ledger.counts();
        assert_eq!((counts.stale_deliveries, counts.unknown_deliveries, counts.foreign_deliveries), (1, 1, 1));
    }

    #[test]
    fn receipt_before_the_retried_ack_still_matches_by_item_id() {
        let mut ledger = Ledger::new(RUN);
        let body = ledger.handle_send(1, 2, 1_000, false);
        deliver(&mut ledger, body, 8);
        ledger.handle_receipt(1, 2, 8, ReceiptKind::Delivered);
        assert_eq!(ledger.outstanding(), 1, "not retired before its ACK");
        assert!(ledger.handle_ack(MessageKey::from(&body), 8, 3_000).is_some());
        assert_eq!(ledger.outstanding(), 0);
        assert!(ledger.summary().is_clean());
    }

    #[test]
    fn summaries_merge_by_sum_and_keep_named_problems_bounded() {
        let mut ledger = Ledger::new(RUN);
        for index in 0..(PROBLEMS_NAMED_MAX as u64 + 5) {
            let body = ledger.handle_send(1, 2 + index, 1_000, false);
            ledger.handle_ack(MessageKey::from(&body), index + 1, 2_000);
        }
        let one = ledger.summary();
        let mut merged = LedgerSummary::default();
        merged.merge(&one);
        merged.merge(&one);
        assert_eq!(merged.lost, 2 * one.lost);
        assert_eq!(merged.counts.sent, 2 * one.counts.sent);
        assert_eq!(merged.problems.len(), PROBLEMS_NAMED_MAX);
    }
}
