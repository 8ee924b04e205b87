//! The torture run's own ledger: what the clients saw, kept apart from anything the server counts. It owns one
//! record per message a sender wrote (by the sender's pair index and sequence number, which is also the SEND's
//! `client_msg_id` and is written in the body), and it judges the run from those records alone.
//! It does not talk to the server and does not decide what to send: the clients report to it.
//! Invariants: a sequence number is recorded once per sender; an ACK or a delivery is compared with what was
//! recorded for that message before, and every disagreement is counted, never overwritten.

use std::collections::HashMap;

use serde::Serialize;
use wire::RejectCode;

/// What is known of one message (one sender's sequence number).
#[derive(Debug, Clone, Copy, Default)]
struct MessageRecord {
    /// The server id of the first ACK (0: not ACKed).
    acked_server_id: u64,
    /// The item id of the first delivery (0: never delivered).
    delivered_item_id: u64,
    /// The receiver handed DELIVERED(item) for it to the kernel, on a connection of its own.
    delivered_sent: bool,
    /// The sender got RECEIPT(kind = Delivered) for it.
    receipt_seen: bool,
    /// The server refused it (REJECT): it is not stored, and not expected anywhere.
    rejected: bool,
    /// When it was first ACKed, in milliseconds since the run started (to place it against the kills).
    acked_ms: u32,
    /// When its DELIVERED was first handed to the kernel, in milliseconds since the run started.
    delivered_sent_ms: u32,
}

/// One sender's messages, indexed by sequence number.
#[derive(Debug, Default)]
struct SenderLedger {
    messages: Vec<MessageRecord>,
    /// Server id → sequence number, for the receipts (which name the message by server id).
    by_server_id: HashMap<u64, u64>,
    /// The highest sequence number delivered under a new item id so far (order check).
    delivered_seq_max: Option<u64>,
    /// Messages delivered at least once, or refused: what no longer waits for its receiver.
    settled: u64,
}

impl SenderLedger {
    /// The record of `seq`, made if it is new. Callers pass only sequence numbers this run issued (or checked
    /// against `messages.len()` first), never one read from the server unchecked.
    fn record(&mut self, seq: u64) -> &mut MessageRecord {
        let index = usize::try_from(seq).expect("a sequence number this run issued fits in memory");
        if self.messages.len() <= index {
            self.messages.resize(index + 1, MessageRecord::default());
        }
        &mut self.messages[index]
    }
}

/// A message the verdict names, to find it in the server's log.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub pair: usize,
    pub seq: u64,
    pub server_id: u64,
    /// When the event that makes it count happened (its ACK for a lost message, its DELIVERED for a missing
    /// receipt), in milliseconds since the run started; 0 when not known.
    pub at_ms: u32,
}

/// Disagreements kept by name (the first few of each kind) for the report.
const NAMED_PER_KIND_MAX: usize = 20;

/// The counts of a run, judged from the ledger alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Distinct messages the senders wrote (sequence numbers issued).
    pub sent: u64,
    /// Distinct messages ACKed.
    pub acked: u64,
    /// Distinct messages refused with REJECT, by code.
    pub rejected: HashMap<String, u64>,
    /// ACKs for a message already answered (a second answer to a retried SEND), same server id.
    pub acks_repeated: u64,
    /// Distinct messages delivered.
    pub delivered: u64,
    /// Deliveries of an item id seen before (after a reconnect or a crash): allowed, counted.
    pub redelivered: u64,
    /// DELIVERED frames the receivers handed to the kernel (each message counted once).
    pub delivered_sent: u64,
    /// Distinct Delivered receipts the senders got.
    pub receipts: u64,
    /// Receipts for a message whose receipt had come before (same server id): allowed, counted.
    pub receipts_repeated: u64,
    /// ACKed and never delivered. Must be 0.
    pub lost: u64,
    /// Delivered under a second item id (stored twice). Must be 0.
    pub delivered_under_two_ids: u64,
    /// ACKed under one server id, delivered under another. Must be 0.
    pub ack_delivery_mismatch: u64,
    /// A message delivered (under a new item id) after a later message of the same sender. Must be 0.
    pub order_violations: u64,
    /// DELIVERED sent, no Delivered receipt by the end. Must be 0.
    pub receipts_missing: u64,
    /// Receipts naming a server id the sender was never told of, or another peer, or of an unexpected kind.
    /// Must be 0.
    pub receipts_unexpected: u64,
    /// Deliveries whose body this run did not write, or whose `from` is not its sender. Must be 0.
    pub deliveries_unexpected: u64,
    /// ACKs and REJECTs for a `client_msg_id` the sender never used. Must be 0.
    pub answers_unexpected: u64,
}

/// The ledger of one run.
#[derive(Debug, Default)]
pub struct Ledger {
    senders: Vec<SenderLedger>,
    /// Milliseconds since the run started, as last told by the run.
    pub clock_ms: u32,
    counts: Counts,
    /// The first few disagreements by kind, for the report.
    pub named: HashMap<&'static str, Vec<Named>>,
    /// Every lost message and every missing receipt, once `verdict` ran.
    pub lost: Vec<Named>,
    pub receipts_missing: Vec<Named>,
}

impl Ledger {
    pub fn new(pairs: usize) -> Self {
        Self { senders: (0..pairs).map(|_| SenderLedger::default()).collect(), ..Self::default() }
    }

    fn name(&mut self, kind: &'static str, pair: usize, seq: u64, server_id: u64) {
        let at_ms = self.clock_ms;
        self.name_at(kind, Named { pair, seq, server_id, at_ms });
    }

    fn name_at(&mut self, kind: &'static str, named: Named) {
        let list = self.named.entry(kind).or_default();
        if list.len() < NAMED_PER_KIND_MAX {
            list.push(named);
        }
    }

    /// Sender `pair` wrote its message `seq` for the first time.
    pub fn sent(&mut self, pair: usize, seq: u64) {
        self.senders[pair].record(seq);
        self.counts.sent += 1;
    }

    /// Whether sender `pair` wrote its message `seq`.
    fn was_sent(&self, pair: usize, seq: u64) -> bool {
        seq < self.senders[pair].messages.len() as u64
    }

    /// Messages of `pair` written and not yet delivered (nor refused): what waits in its receiver's queue or
    /// on the way there.
    pub fn undelivered(&self, pair: usize) -> u64 {
        let sender = &self.senders[pair];
        sender.messages.len() as u64 - sender.settled
    }

    /// ACK(seq, server_id) reached sender `pair`. `answered_before`: the sender had this SEND answered already.
    pub fn acked(&mut self, pair: usize, seq: u64, server_id: u64, answered_before: bool) {
        if !self.was_sent(pair, seq) {
            self.counts.answers_unexpected += 1;
            self.name("ack_for_unsent", pair, seq, server_id);
            return;
        }
        let record = *self.senders[pair].record(seq);
        if record.acked_server_id == 0 {
            self.counts.acked += 1;
            let clock_ms = self.clock_ms;
            let record = self.senders[pair].record(seq);
            (record.acked_server_id, record.acked_ms) = (server_id, clock_ms);
            self.senders[pair].by_server_id.insert(server_id, seq);
        } else if record.acked_server_id != server_id {
            self.counts.ack_delivery_mismatch += 1;
            self.name("acked_under_two_ids", pair, seq, server_id);
        } else if answered_before {
            self.counts.acks_repeated += 1;
        }
        if record.delivered_item_id != 0 && record.delivered_item_id != server_id {
            self.counts.ack_delivery_mismatch += 1;
            self.name("ack_delivery_mismatch", pair, seq, server_id);
        }
    }

    /// REJECT(seq, code) reached sender `pair`.
    pub fn rejected(&mut self, pair: usize, seq: u64, code: RejectCode) {
        if !self.was_sent(pair, seq) {
            self.counts.answers_unexpected += 1;
            self.name("reject_for_unsent", pair, seq, 0);
            return;
        }
        let record = self.senders[pair].record(seq);
        if !record.rejected && record.delivered_item_id == 0 {
            record.rejected = true;
            self.senders[pair].settled += 1;
        }
        *self.counts.rejected.entry(format!("{code:?}")).or_default() += 1;
    }

    /// The receiver of `pair` got DELIVER(item_id) with sender `pair`'s message `seq`. False if sender `pair`
    /// never wrote `seq` (counted as unexpected).
    pub fn delivered(&mut self, pair: usize, seq: u64, item_id: u64) -> bool {
        if !self.was_sent(pair, seq) {
            self.counts.deliveries_unexpected += 1;
            self.name("delivery_of_unsent", pair, seq, item_id);
            return false;
        }
        let sender = &mut self.senders[pair];
        let record = *sender.record(seq);
        if record.delivered_item_id == item_id {
            self.counts.redelivered += 1;
            return true;
        }
        // A new item id for this receiver. A message it had under another id is a duplicate (counted as such,
        // not also as out of order); a message it never had must come after every earlier one of its sender.
        if record.delivered_item_id != 0 {
            sender.by_server_id.entry(item_id).or_insert(seq);
            self.counts.delivered_under_two_ids += 1;
            self.name("delivered_under_two_ids", pair, seq, item_id);
            return true;
        }
        if sender.delivered_seq_max.is_some_and(|max| seq <= max) {
            self.counts.order_violations += 1;
            self.name("order_violation", pair, seq, item_id);
        }
        let sender = &mut self.senders[pair];
        sender.delivered_seq_max = Some(sender.delivered_seq_max.map_or(seq, |max| max.max(seq)));
        sender.record(seq).delivered_item_id = item_id;
        sender.by_server_id.entry(item_id).or_insert(seq);
        if !record.rejected {
            sender.settled += 1;
        }
        self.counts.delivered += 1;
        if record.acked_server_id != 0 && record.acked_server_id != item_id {
            self.counts.ack_delivery_mismatch += 1;
            self.name("ack_delivery_mismatch", pair, seq, item_id);
        }
        true
    }

    /// A delivery that this run cannot have caused (a body it did not write, a wrong `from`).
    pub fn delivery_unexpected(&mut self) {
        self.counts.deliveries_unexpected += 1;
    }

    /// The receiver of `pair` handed DELIVERED(item) for message `seq` (one `delivered` accepted) to the kernel.
    pub fn delivered_sent(&mut self, pair: usize, seq: u64) {
        let clock_ms = self.clock_ms;
        let record = self.senders[pair].record(seq);
        if !record.delivered_sent {
            (record.delivered_sent, record.delivered_sent_ms) = (true, clock_ms);
            self.counts.delivered_sent += 1;
        }
    }

    /// Sender `pair` got RECEIPT(kind = Delivered) for `server_id`.
    pub fn receipt(&mut self, pair: usize, server_id: u64) {
        let Some(&seq) = self.senders[pair].by_server_id.get(&server_id) else {
            self.counts.receipts_unexpected += 1;
            self.name("receipt_for_unknown_server_id", pair, u64::MAX, server_id);
            return;
        };
        let record = self.senders[pair].record(seq);
        if record.receipt_seen {
            self.counts.receipts_repeated += 1;
        } else {
            record.receipt_seen = true;
            self.counts.receipts += 1;
        }
    }

    /// A receipt of a kind or for a peer this run cannot have caused.
    pub fn receipt_unexpected(&mut self) {
        self.counts.receipts_unexpected += 1;
    }

    /// Whether everything is settled: every ACKed message delivered and every DELIVERED sent answered by its
    /// receipt. (The run's end condition when nothing is wrong; the verdict does not depend on it.)
    pub fn complete(&self) -> bool {
        self.senders.iter().all(|sender| {
            sender.messages.iter().all(|record| {
                (record.acked_server_id == 0 || record.delivered_item_id != 0)
                    && (!record.delivered_sent || record.receipt_seen)
            })
        })
    }

    /// Progress made: a number that grows whenever something new is learned (for the liveness guard).
    pub fn progress(&self) -> u64 {
        let counts = &self.counts;
        counts.acked + counts.delivered + counts.delivered_sent + counts.receipts + counts.redelivered
    }

    pub fn acked_count(&self) -> u64 {
        self.counts.acked
    }

    /// The final counts: lost and missing receipts are known only now.
    pub fn verdict(&mut self) -> Counts {
        let mut lost = Vec::new();
        let mut receipts_missing = Vec::new();
        for (pair, sender) in self.senders.iter().enumerate() {
            for (seq, record) in sender.messages.iter().enumerate() {
                let seq = seq as u64;
                if record.acked_server_id != 0 && record.delivered_item_id == 0 {
                    lost.push(Named { pair, seq, server_id: record.acked_server_id, at_ms: record.acked_ms });
                }
                if record.delivered_sent && !record.receipt_seen {
                    let server_id = record.delivered_item_id;
                    receipts_missing.push(Named { pair, seq, server_id, at_ms: record.delivered_sent_ms });
                }
            }
        }
        self.counts.lost = lost.len() as u64;
        self.counts.receipts_missing = receipts_missing.len() as u64;
        for named in &lost {
            self.name_at("lost", named.clone());
        }
        for named in &receipts_missing {
            self.name_at("receipt_missing", named.clone());
        }
        self.lost = lost;
        self.receipts_missing = receipts_missing;
        self.counts.clone()
    }
}

impl Counts {
    /// Whether the run kept every promise.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.delivered_under_two_ids == 0
            && self.ack_delivery_mismatch == 0
            && self.order_violations == 0
            && self.receipts_missing == 0
            && self.receipts_unexpected == 0
            && self.deliveries_unexpected == 0
            && self.answers_unexpected == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acked_message_never_delivered_is_lost_and_a_redelivery_is_only_counted() {
        let mut ledger = Ledger::new(1);
        for seq in 0..3 {
            ledger.sent(0, seq);
            ledger.acked(0, seq, 100 + seq, false);
        }
        ledger.delivered(0, 0, 100);
        ledger.delivered(0, 0, 100);
        ledger.delivered(0, 2, 102);
        let counts = ledger.verdict();
        assert_eq!((counts.lost, counts.redelivered, counts.order_violations), (1, 1, 0));
        assert!(!counts.passed());
        assert_eq!(ledger.named["lost"][0].seq, 1);
    }

    #[test]
    fn a_second_item_id_an_earlier_message_after_a_later_one_and_a_missing_receipt_fail() {
        let mut ledger = Ledger::new(1);
        for seq in 0..2 {
            ledger.sent(0, seq);
            ledger.acked(0, seq, 100 + seq, false);
        }
        ledger.delivered(0, 1, 101);
        ledger.delivered(0, 0, 100);
        ledger.delivered(0, 0, 200);
        ledger.delivered_sent(0, 0);
        ledger.delivered_sent(0, 1);
        ledger.receipt(0, 101);
        let counts = ledger.verdict();
        assert_eq!(counts.order_violations, 1, "seq 0 after seq 1");
        assert_eq!(counts.delivered_under_two_ids, 1, "seq 0 again under 200");
        assert_eq!(counts.receipts_missing, 1);
        assert!(!counts.passed());
    }

    #[test]
    fn a_complete_run_passes() {
        let mut ledger = Ledger::new(2);
        for pair in 0..2 {
            ledger.sent(pair, 0);
            ledger.acked(pair, 0, 7 + pair as u64, false);
            ledger.delivered(pair, 0, 7 + pair as u64);
            ledger.delivered_sent(pair, 0);
            ledger.receipt(pair, 7 + pair as u64);
            ledger.receipt(pair, 7 + pair as u64);
        }
        assert!(ledger.complete());
        let counts = ledger.verdict();
        assert!(counts.passed(), "{counts:?}");
        assert_eq!((counts.acked, counts.receipts, counts.receipts_repeated), (2, 2, 2));
    }
}
