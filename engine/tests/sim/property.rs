//! Seeded randomized runs: random cores, users, devices, sends, disconnects, reconnects, second logins,
//! stalled readers, tiny mesh channels, tight queue limits and partial I/O; then every user reconnects and
//! the system drains, and whole-system invariants are checked on what the clients saw:
//! - every SEND is answered, ACK or REJECT, never both for one client id (retries included); all ACKs of one
//!   client id carry one server id; a connection gets at most one answer per copy of a SEND written on it;
//! - every ACKed message reaches its recipient exactly once (by server id) (without expiry; with it, at most
//!   once);
//! - nothing REJECTed is delivered, and nothing is delivered that was not ACKed;
//! - per sender→recipient, delivery order is ACK order (server ids increase);
//! - each delivered message gives its sender one RECEIPT(Delivered); READ receipts name real messages;
//! - no ERROR is ever sent to a well-behaved client; queues, outboxes and channels end empty.
//!
//! One seed in four instead shuts every core down mid-run, lets the clients go on, and checks that every core
//! quiesces, every connection is closed, and every ACKed message is delivered or still queued.
//!
//! `RINGLINE_SEED=n` runs seed n alone; `RINGLINE_SEEDS=n` runs n seeds from `RINGLINE_SEED_FIRST` (0).

use std::collections::{BTreeMap, HashMap, HashSet};

use ringline_core::shard::QueueLimits;
use wire::{ClientFrame, ReceiptKind, RejectCode, UserId};

use super::harness::*;

/// What one user's devices, together, have seen and sent.
#[derive(Debug, Default)]
struct Account {
    devices: Vec<ClientId>,
    next_client_msg_id: u64,
    /// client_msg_id → (recipient, body).
    sent: BTreeMap<u64, (UserId, Vec<u8>)>,
    acks: HashMap<u64, Vec<u64>>,
    rejects: HashMap<u64, Vec<RejectCode>>,
    items_seen: HashSet<u64>,
    /// DELIVERs, first copy of each item id, in the order first seen: (item_id, from, body).
    deliveries: Vec<(u64, UserId, Vec<u8>)>,
    /// RECEIPTs, first copy of each item id: (server_id, peer, kind).
    receipts: Vec<(u64, UserId, ReceiptKind)>,
    /// Server ids this user sent READ for, with their sender.
    reads_sent: HashSet<(u64, UserId)>,
}

impl Account {
    fn pending(&self) -> Vec<u64> {
        self.sent.keys().copied().filter(|id| !self.acks.contains_key(id) && !self.rejects.contains_key(id)).collect()
    }
}

/// A message body names its sender and client id, so the recipient's view can be joined to the sender's.
fn make_body(sender: UserId, client_msg_id: u64, padding: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + padding);
    body.extend_from_slice(&sender.to_le_bytes());
    body.extend_from_slice(&client_msg_id.to_le_bytes());
    body.resize(16 + padding, 0xAB);
    body
}

fn parse_body(body: &[u8]) -> (UserId, u64) {
    let sender = u64::from_le_bytes(body[..8].try_into().expect("a body starts with its sender"));
    let id = u64::from_le_bytes(body[8..16].try_into().expect("then its client id"));
    (sender, id)
}

struct World {
    sim: Sim,
    rng: Rng,
    accounts: BTreeMap<UserId, Account>,
    owner: Vec<UserId>,
    frames_seen: Vec<usize>,
    /// Per device: the index in its frames at which each of its connections began (frames before the first
    /// entry came on no connection of this run: there are none).
    connection_starts: Vec<Vec<usize>>,
    /// (device, connection number, client id) → SEND copies written on that connection, and answers got.
    copies: HashMap<(ClientId, usize, u64), u32>,
    answers: HashMap<(ClientId, usize, u64), u32>,
    logged_in: Vec<bool>,
    expiry: bool,
    /// Chance per round, in percent, that the clock ticks.
    tick_percent: u64,
    /// Per device: chance per round, in percent, that it does anything while connected (quiet devices
    /// meet the idle timeout).
    activity_percent: Vec<u64>,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0x5EED_0FCA_FE00);
        let cores = rng.range(1, 4) as u16;
        let users = rng.range(2, 8) as u64;
        let mut config = SimConfig::new(seed, cores, users);
        config.mesh_capacity = rng.range(1, 4);
        config.drain_batches_max = rng.range(1, 3);
        config.write_chunk_max = *[3, 7, 64, 4096].get(rng.range(0, 3)).expect("in range");
        config.read_chunk_max = *[2, 5, 100, 65_536].get(rng.range(0, 3)).expect("in range");
        config.client_read_chunk_max = *[1, 13, 4096].get(rng.range(0, 2)).expect("in range");
        config.socket_window_bytes = *[64, 1024, 65_536].get(rng.range(0, 2)).expect("in range");
        config.idle_timeout_us = rng.range(5, 100) as u64 * 100_000;
        if rng.chance(50) {
            config.queue = QueueLimits {
                messages_per_user_max: rng.range(1, 30),
                bytes_per_user_max: rng.range(50, 3_000) as u64,
                bytes_per_core_max: rng.range(100, 10_000) as u64,
                age_max_us: config.queue.age_max_us,
            };
        }
        let expiry = rng.chance(20);
        if expiry {
            config.queue.age_max_us = rng.range(1, 5) as u64 * 1_000_000;
        }
        let tick_percent = rng.range(5, 40) as u64;
        let mut sim = Sim::new(config);
        let mut accounts = BTreeMap::new();
        let mut owner = Vec::new();
        for index in 0..users {
            let user = sim.user(index);
            let mut account = Account::default();
            for _ in 0..rng.range(1, 2) {
                account.devices.push(sim.client(user));
                owner.push(user);
            }
            accounts.insert(user, account);
        }
        let clients = owner.len();
        let activity_percent = (0..clients).map(|_| *[100, 30, 2].get(rng.range(0, 2)).expect("in range")).collect();
        Self {
            sim,
            rng,
            accounts,
            owner,
            frames_seen: vec![0; clients],
            connection_starts: vec![Vec::new(); clients],
            copies: HashMap::new(),
            answers: HashMap::new(),
            logged_in: vec![false; clients],
            expiry,
            tick_percent,
            activity_percent,
        }
    }

    /// Takes in what every device received since the last call, in the order the devices received it.
    fn absorb(&mut self) {
        let mut news: Vec<(u64, ClientId, usize)> = Vec::new();
        for client in 0..self.owner.len() {
            let state = &self.sim.clients[client];
            for index in self.frames_seen[client]..state.frames.len() {
                news.push((state.frame_order[index], client, index));
            }
            self.frames_seen[client] = state.frames.len();
        }
        news.sort_unstable();
        for (_, client, index) in news {
            let account = self.accounts.get_mut(&self.owner[client]).expect("every device has an account");
            let frame = &self.sim.clients[client].frames[index];
            if let Frame::Server(OwnedServerFrame::Ack { client_msg_id, .. })
            | Frame::Server(OwnedServerFrame::Reject { client_msg_id, .. }) = *frame
            {
                let connection = self.connection_starts[client].partition_point(|&start| start <= index);
                let key = (client, connection, client_msg_id);
                let answers = self.answers.entry(key).or_default();
                *answers += 1;
                let copies = self.copies.get(&key).copied().unwrap_or(0);
                assert!(
                    *answers <= copies,
                    "device {client}, connection {connection}: {answers} answers to {copies} copies of SEND {client_msg_id}"
                );
            }
            match frame {
                Frame::Server(OwnedServerFrame::Welcome { .. }) => self.logged_in[client] = true,
                Frame::Server(OwnedServerFrame::Ack { client_msg_id, server_id, .. }) => {
                    account.acks.entry(*client_msg_id).or_default().push(*server_id);
                }
                Frame::Server(OwnedServerFrame::Reject { client_msg_id, code }) => {
                    account.rejects.entry(*client_msg_id).or_default().push(*code);
                }
                Frame::Server(OwnedServerFrame::Deliver { item_id, from, body, .. }) => {
                    if account.items_seen.insert(*item_id) {
                        account.deliveries.push((*item_id, *from, body.clone()));
                    }
                }
                Frame::Server(OwnedServerFrame::Receipt { item_id, server_id, peer, kind, .. }) => {
                    if account.items_seen.insert(*item_id) {
                        account.receipts.push((*server_id, *peer, *kind));
                    }
                }
                Frame::Server(OwnedServerFrame::Error { code, .. }) => panic!("client {client} got ERROR {code:?}"),
                Frame::Server(
                    registration @ (OwnedServerFrame::PinSent { .. } | OwnedServerFrame::RegisterRefused { .. }),
                ) => panic!("client {client} got registration frame {registration:?}"),
                Frame::Server(OwnedServerFrame::Registered { .. }) => panic!("client {client} got REGISTERED"),
                Frame::Server(OwnedServerFrame::Goaway { .. }) | Frame::Closed => self.logged_in[client] = false,
                Frame::Server(OwnedServerFrame::Ping { .. }) | Frame::Server(OwnedServerFrame::Pong { .. }) => {}
            }
        }
    }

    /// Connects `client` to a random core, says HELLO and retries every unanswered SEND of its user.
    fn connect(&mut self, client: ClientId) {
        let shard = self.rng.range(0, self.sim.shards.len() - 1);
        self.logged_in[client] = false;
        self.connection_starts[client].push(self.sim.clients[client].frames.len());
        self.sim.connect(client, shard);
        let account = &self.accounts[&self.owner[client]];
        if account.devices[0] != client {
            // Only a user's first device sends: order is promised per connection stream, and two devices
            // sending at once have no order between them.
            return;
        }
        let retries: Vec<(u64, UserId, Vec<u8>)> = account
            .pending()
            .into_iter()
            .map(|id| {
                let (to, body) = &account.sent[&id];
                (id, *to, body.clone())
            })
            .collect();
        for (id, to, body) in retries {
            self.send_copy(client, id, to, &body);
        }
    }

    fn send_new(&mut self, client: ClientId) {
        let sender = self.owner[client];
        let users: Vec<UserId> = self.accounts.keys().copied().collect();
        let to = if self.rng.chance(3) { 42 } else { users[self.rng.range(0, users.len() - 1)] };
        let account = self.accounts.get_mut(&sender).expect("account");
        let id = account.next_client_msg_id;
        account.next_client_msg_id += 1;
        let body = if self.rng.chance(2) { Vec::new() } else { make_body(sender, id, self.rng.range(0, 300)) };
        account.sent.insert(id, (to, body.clone()));
        self.send_copy(client, id, to, &body);
    }

    /// Writes a copy of SEND `id` on `client`'s connection, counting it for that connection.
    fn send_copy(&mut self, client: ClientId, id: u64, to: UserId, body: &[u8]) {
        *self.copies.entry((client, self.connection_starts[client].len(), id)).or_default() += 1;
        self.sim.send(client, id, to, body);
    }

    fn read_something(&mut self, client: ClientId) {
        let account = self.accounts.get_mut(&self.owner[client]).expect("account");
        let unread: Vec<(u64, UserId)> = account
            .deliveries
            .iter()
            .map(|&(item_id, from, _)| (item_id, from))
            .filter(|read| !account.reads_sent.contains(read))
            .collect();
        if let Some(&(server_id, sender)) = unread.first() {
            account.reads_sent.insert((server_id, sender));
            self.sim.write_frame(client, &ClientFrame::Read { server_id, sender });
        }
    }

    fn act(&mut self, client: ClientId) {
        if !self.sim.is_connected(client) {
            if self.rng.chance(20) {
                self.connect(client);
            }
            return;
        }
        if !self.rng.chance(self.activity_percent[client]) {
            return;
        }
        let roll = self.rng.range(0, 99);
        match roll {
            0..=24 if self.accounts[&self.owner[client]].devices[0] == client => self.send_new(client),
            25..=29 => {
                let nonce = self.rng.next_u64();
                self.sim.write_frame(client, &ClientFrame::Ping { nonce });
            }
            30..=34 if self.logged_in[client] => self.read_something(client),
            35..=37 => self.sim.disconnect(client),
            38..=40 => {
                let state = &mut self.sim.clients[client];
                state.reading = !state.reading;
                state.read_chunk_max = *[1, 9, 4096].get(self.rng.range(0, 2)).expect("in range");
            }
            _ => {}
        }
    }

    fn run(&mut self, rounds: usize) {
        let clients: Vec<ClientId> = (0..self.owner.len()).collect();
        for _ in 0..rounds {
            let mut order = clients.clone();
            self.rng.shuffle(&mut order);
            for client in order {
                self.act(client);
            }
            for _ in 0..self.rng.range(1, 3) {
                self.sim.step();
            }
            if self.rng.chance(self.tick_percent) {
                self.sim.tick();
            }
            self.check_outbound_bound();
            self.check_queue_bounds();
            self.absorb();
        }
    }

    /// No queue over its limit: body bytes per core, items per user (messages plus receipts).
    fn check_queue_bounds(&self) {
        let limits = self.sim.config.queue;
        for (index, shard) in self.sim.shards.iter().enumerate() {
            assert!(shard.queued_bytes() <= limits.bytes_per_core_max, "core {index} over its byte limit");
        }
        for &user in self.accounts.keys() {
            let queued = self.sim.shards[self.sim.home(user)].queued_for(user);
            assert!(queued <= limits.messages_per_user_max + ringline_core::limits::SENDER_RECEIPTS_MAX, "user {user}");
        }
    }

    fn check_outbound_bound(&self) {
        let bound = self.sim.outbound_bound();
        assert!(self.sim.outbound_bytes_seen_max <= bound, "outbound {} > {bound}", self.sim.outbound_bytes_seen_max);
    }

    /// Everyone reads again, reconnects one device and retries what is unanswered, until all is answered.
    fn drain(&mut self) {
        for client in 0..self.owner.len() {
            self.sim.disconnect(client);
            self.sim.clients[client].reading = true;
            self.sim.clients[client].read_chunk_max = 4096;
        }
        self.sim.run();
        self.absorb();
        for attempt in 0.. {
            assert!(attempt < 3, "SENDs still unanswered after reconnecting everyone three times");
            let devices: Vec<ClientId> = self.accounts.values().map(|account| account.devices[0]).collect();
            for client in devices {
                self.connect(client);
            }
            self.sim.run();
            self.absorb();
            if self.accounts.values().all(|account| account.pending().is_empty()) {
                break;
            }
            for client in 0..self.owner.len() {
                self.sim.disconnect(client);
            }
            self.sim.run();
            self.absorb();
        }
    }

    fn check(&self) {
        self.sim.assert_settled();
        self.check_outbound_bound();
        for (index, shard) in self.sim.shards.iter().enumerate() {
            assert_eq!(shard.queued_items(), 0, "core {index} still queues items");
            assert_eq!(shard.queued_bytes(), 0, "core {index} still queues bytes");
            assert_eq!(shard.receipts_awaited(), 0, "core {index} still holds messages for their receipts");
        }
        // server id → (sender, client id, recipient), from the senders' side.
        let mut acked: HashMap<u64, (UserId, u64, UserId)> = HashMap::new();
        let mut expired: HashSet<u64> = HashSet::new();
        for (&sender, account) in &self.accounts {
            assert!(account.pending().is_empty(), "user {sender}: unanswered {:?}", account.pending());
            for (&id, server_ids) in &account.acks {
                assert!(!account.rejects.contains_key(&id), "user {sender} id {id}: both ACK and REJECT");
                assert!(server_ids.iter().all(|&sid| sid == server_ids[0]), "user {sender} id {id}: {server_ids:?}");
                let (to, _) = &account.sent[&id];
                let previous = acked.insert(server_ids[0], (sender, id, *to));
                assert!(previous.is_none(), "server id {} ACKed twice: {previous:?}", server_ids[0]);
            }
            for (&id, codes) in &account.rejects {
                let (to, body) = &account.sent[&id];
                if body.is_empty() {
                    assert!(codes.iter().all(|&code| code == RejectCode::BodyInvalid), "{codes:?}");
                }
                if *to == 42 && !body.is_empty() {
                    assert!(codes.iter().all(|&code| code == RejectCode::UnknownRecipient), "{codes:?}");
                }
            }
            for &(server_id, _, kind) in &account.receipts {
                if kind == ReceiptKind::Expired {
                    expired.insert(server_id);
                }
            }
        }
        // The recipients' side.
        let mut delivered: HashSet<u64> = HashSet::new();
        for (&recipient, account) in &self.accounts {
            let mut last_from: HashMap<UserId, u64> = HashMap::new();
            let mut by_send: HashSet<(UserId, u64)> = HashSet::new();
            for (item_id, from, body) in &account.deliveries {
                let (sender, id) = parse_body(body);
                assert_eq!(sender, *from, "DELIVER names the sender");
                assert!(by_send.insert((sender, id)), "user {recipient} got {sender}'s {id} under two item ids");
                let sender_account = &self.accounts[&sender];
                assert!(!sender_account.rejects.contains_key(&id), "{sender}'s {id} was REJECTed and delivered");
                assert_eq!(
                    acked.get(item_id),
                    Some(&(sender, id, recipient)),
                    "delivered {item_id} was not ACKed: ACKs {:?}, REJECTs {:?}",
                    sender_account.acks.get(&id),
                    sender_account.rejects.get(&id)
                );
                assert_eq!(&sender_account.sent[&id].1, body, "the body arrives as sent");
                // Delivery order is ACK order, that is storage order on the recipient's home core, where server
                // ids increase. (Client id order is not promised: a refusal whose REJECT found the sender
                // offline is retried and stored after later SENDs.) Across devices this holds for the first
                // copies only without expiry: an item one device holds unread may expire before the other
                // device's connection gets to it.
                if let Some(&last_item) = last_from.get(&sender)
                    && !self.expiry
                {
                    assert!(last_item < *item_id, "{sender}→{recipient}: server id {last_item} then {item_id}");
                }
                last_from.insert(sender, *item_id);
                delivered.insert(*item_id);
            }
        }
        // On every connection, from each sender, items come in increasing server id.
        for (client, state) in self.sim.clients.iter().enumerate() {
            let mut last_from: HashMap<UserId, u64> = HashMap::new();
            for frame in &state.frames {
                match *frame {
                    Frame::Server(OwnedServerFrame::Welcome { .. }) => last_from.clear(),
                    Frame::Server(OwnedServerFrame::Deliver { item_id, from, .. }) => {
                        if let Some(last_item) = last_from.insert(from, item_id) {
                            assert!(last_item < item_id, "client {client}, from {from}: {last_item} then {item_id}");
                        }
                    }
                    _ => {}
                }
            }
        }
        // With expiry on, a message may expire and so may its RECEIPT(Expired) while its sender stays away
        // longer than the age limit (receipts age out silently: offline_queue.rs), so only without expiry is
        // every ACKed message accounted for.
        for (&server_id, &(sender, id, recipient)) in acked.iter().filter(|_| !self.expiry) {
            assert!(
                delivered.contains(&server_id) || expired.contains(&server_id),
                "{sender}'s {id} to {recipient} (server id {server_id}) was ACKed and neither delivered nor expired"
            );
        }
        for (&sender, account) in &self.accounts {
            let mut delivered_receipts = HashSet::new();
            for &(server_id, peer, kind) in &account.receipts {
                let Some(&(from, _, recipient)) = acked.get(&server_id) else {
                    panic!("user {sender} got a {kind:?} receipt for {server_id}, which it was not ACKed")
                };
                assert_eq!((from, recipient), (sender, peer), "receipt {server_id}");
                match kind {
                    ReceiptKind::Delivered => {
                        assert!(delivered_receipts.insert(server_id), "two Delivered receipts for {server_id}");
                        assert!(!expired.contains(&server_id), "{server_id} both delivered and expired");
                    }
                    ReceiptKind::Read => {
                        assert!(self.accounts[&peer].reads_sent.contains(&(server_id, sender)), "unasked READ");
                    }
                    ReceiptKind::Expired => assert!(self.expiry),
                    ReceiptKind::Other(other) => panic!("receipt kind {other}"),
                }
            }
            if !self.expiry {
                let sent_and_delivered: HashSet<u64> =
                    acked.iter().filter(|(_, (from, _, _))| *from == sender).map(|(&sid, _)| sid).collect();
                assert_eq!(delivered_receipts, sent_and_delivered, "user {sender}: one Delivered receipt each");
            }
        }
    }
}

impl World {
    /// Shuts every core down mid-run while clients go on (and try to reconnect), then lets all settle.
    fn shut_down(&mut self, rounds: usize) {
        self.sim.begin_shutdown();
        self.run(rounds);
        for client in &mut self.sim.clients {
            client.reading = true;
        }
        self.sim.run();
        self.absorb();
    }

    /// After a shutdown: every core quiesced, every client told GOAWAY(ShuttingDown) or gone, and every
    /// ACKed message delivered or still queued on its recipient's home core.
    fn check_after_shutdown(&self) {
        self.sim.assert_settled();
        self.check_outbound_bound();
        for (index, shard) in self.sim.shards.iter().enumerate() {
            assert!(shard.is_quiesced(), "core {index} is not quiesced: {shard:?}");
        }
        for (client, state) in self.sim.clients.iter().enumerate() {
            assert!(!self.sim.is_connected(client), "client {client} still connected: {:?}", state.frames.last());
        }
        let mut undelivered: HashMap<UserId, usize> = HashMap::new();
        for (&sender, account) in &self.accounts {
            for (&id, server_ids) in &account.acks {
                assert!(!account.rejects.contains_key(&id), "user {sender} id {id}: both ACK and REJECT");
                assert!(server_ids.iter().all(|&sid| sid == server_ids[0]), "user {sender} id {id}: {server_ids:?}");
                let (to, _) = &account.sent[&id];
                if !self.accounts[to].items_seen.contains(&server_ids[0]) {
                    *undelivered.entry(*to).or_default() += 1;
                }
            }
        }
        if !self.expiry {
            for (&recipient, &count) in &undelivered {
                let queued = self.sim.shards[self.sim.home(recipient)].queued_for(recipient);
                assert!(queued >= count, "user {recipient}: {count} ACKed messages undelivered, {queued} queued");
            }
        }
    }
}

fn run_seed(seed: u64, rounds: usize) {
    run_seeded(seed, || {
        let mut world = World::new(seed);
        world.run(rounds);
        if (seed / 4) % 4 == 3 {
            world.shut_down(rounds / 4);
            world.check_after_shutdown();
            return;
        }
        world.drain();
        world.check();
    });
}

/// Runs this part's share of the seeds (parts run as separate tests, so in parallel).
fn run_part(part: u64, parts: u64) {
    if let Some(seed) = std::env::var("RINGLINE_SEED").ok().and_then(|seed| seed.parse().ok()) {
        if part == 0 {
            run_seed(seed, 200);
        }
        return;
    }
    let seeds = std::env::var("RINGLINE_SEEDS").ok().and_then(|count| count.parse().ok()).unwrap_or(200);
    let first: u64 = std::env::var("RINGLINE_SEED_FIRST").ok().and_then(|first| first.parse().ok()).unwrap_or(0);
    for seed in (first..first + seeds).filter(|seed| seed % parts == part) {
        run_seed(seed, 200);
    }
}

#[test]
fn random_runs_keep_every_promise_part_0() {
    run_part(0, 4);
}

#[test]
fn random_runs_keep_every_promise_part_1() {
    run_part(1, 4);
}

#[test]
fn random_runs_keep_every_promise_part_2() {
    run_part(2, 4);
}

#[test]
fn random_runs_keep_every_promise_part_3() {
    run_part(3, 4);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let frames = |seed| {
        let mut world = World::new(seed);
        world.run(150);
        world.drain();
        world.sim.clients.iter().map(|client| client.frames.clone()).collect::<Vec<_>>()
    };
    assert_eq!(frames(7), frames(7));
    assert_ne!(frames(7), frames(8));
}

#[test]
fn random_runs_reach_the_interesting_cases() {
    // Guards the generator: were it to stop producing these, the invariants above would hold vacuously.
    let mut total = ringline_core::shard::ShardStats::default();
    for seed in 0..40 {
        let mut world = World::new(seed);
        world.run(200);
        world.drain();
        for shard in &world.sim.shards {
            let stats = shard.stats();
            total.handoffs_out += stats.handoffs_out;
            total.replaced += stats.replaced;
            total.timeouts_idle += stats.timeouts_idle;
            total.expired += stats.expired;
            total.rejects_queue_full += stats.rejects_queue_full;
            total.duplicates_suppressed += stats.duplicates_suppressed;
            total.messages_delivered += stats.messages_delivered;
        }
    }
    assert!(total.handoffs_out > 0, "{total:?}");
    assert!(total.replaced > 0, "{total:?}");
    assert!(total.timeouts_idle > 0, "{total:?}");
    assert!(total.expired > 0, "{total:?}");
    assert!(total.rejects_queue_full > 0, "{total:?}");
    assert!(total.duplicates_suppressed > 0, "{total:?}");
    assert!(total.messages_delivered > 1_000, "{total:?}");
}
