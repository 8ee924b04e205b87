//! A deterministic simulated runtime for `Shard`s: N shards, simulated clients speaking the wire codec, a
//! virtual clock, bounded mesh channels between every ordered pair of shards, hand-off of sockets, and
//! partial reads and writes of random sizes. Everything random comes from one seeded generator, so a seed
//! replays a run exactly.
//!
//! It drives each `Shard` with the engine's own driver (`engine::driver`), as `engine/src/rt` does, over its
//! own `Effects` (`SimEffects`: simulated sockets, links, disk and clock):
//! - a connection task runs the runtime's own connection loop (`engine::driver::connection::serve`, as
//!   `rt/conn.rs` does) over a simulated socket (`SimSocket`): writes of random sizes within the socket's
//!   window, at most `WRITES_PER_POLL_MAX` per poll, reads of random sizes, a client's reset. It runs when
//!   the shard asked for it (`Output::Serve`), when its socket became readable after a read found nothing, or
//!   writable after a write found no room, or again after the loop's read limit;
//! - a pump per ordered core pair (`rt/core.rs`) waits for `Output::MeshReady`, then moves
//!   `driver::mesh::take_batch` batches (and sockets handed over) into a channel of `mesh_capacity` batches,
//!   holding one batch while the channel is full;
//! - a drain per ordered core pair hands each batch to `driver::mesh::arrive` (sockets adopted first);
//! - a tick calls `handle_timeout` on every shard;
//! - a log task per core (`rt/log.rs`), woken by `Output::LogReady`, takes the shard's next group
//!   (`driver::log::next_write`), writes it to the core's simulated disk (`disk.rs`), which makes it durable
//!   after a seeded delay, then reports it (`driver::log::write_done`), which deletes the segments compaction
//!   freed;
//! - a device-record task per core appends the generations `Output::RecordDevice` handed out to the
//!   in-memory device log and reports them (`driver::device_records::recorded`).
//!
//! At start, and at each `crash_and_restart`, the engine's recovery runs over the disks (as
//! `rt::log::recover`: replay, fold, a new segment 0 per core, `Shard::recover`).
//!
//! Each `step` runs every task that can make progress once, in a seeded random order.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::ops::DerefMut;
use std::sync::Arc;

use engine::data_dir::DeviceLog;
use engine::driver::connection::{self, Close, Read, Transport, Write};
use engine::driver::{self, Effects, mesh::Adopter};
use engine::rt::pin_sender::PinSender;
use ringline_core::account::{Directory, IssuedPin, KeyAuthority, ProvisionBatch, RegistrationLimits};
use ringline_core::home::{ShardId, home_core};
use ringline_core::limits::{OUTBOUND_BYTES_MAX, READ_BUFFER_BYTES};
use ringline_core::shard::{
    AdminAnswer, AdminTicket, ConnId, ConnectionsFull, DeviceRecord, Durability, Handoff, Now, QueueLimits, Shard,
    ShardConfig, ShardMsg,
};
use ringline_core::wal::{RecoveredCore, Recovery, SegmentOutcome};
use wire::{ClientFrame, Decoded, DeviceKey, UserId};

use super::disk::{SimDisk, Tear};

/// Writes one poll of a connection's task makes before its socket counts as full for the moment: keeps a
/// poll short when writes are tiny, and models a socket buffer that fills faster than the peer reads.
const WRITES_PER_POLL_MAX: usize = 16;

/// SplitMix64: small, fast, and the same on every platform and crate version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        assert!(low <= high);
        low + (self.next_u64() % (high - low + 1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for index in (1..items.len()).rev() {
            let other = self.range(0, index);
            items.swap(index, other);
        }
    }
}

/// First provisioned user id: users are `USER_BASE + i`.
pub const USER_BASE: UserId = 15_550_000_000;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub cores: u16,
    pub users: u64,
    /// Batches one core-pair channel holds.
    pub mesh_capacity: usize,
    /// Largest piece a runtime write moves from `outbound` to the client's socket.
    pub write_chunk_max: usize,
    /// Largest piece one runtime read takes from the socket.
    pub read_chunk_max: usize,
    /// Largest piece a client reads from its socket at once.
    pub client_read_chunk_max: usize,
    /// Bytes in flight from server to client (socket buffers): a write finds no room past it.
    pub socket_window_bytes: usize,
    /// Largest number of batches a drain takes from a channel in one step.
    pub drain_batches_max: usize,
    pub frame_size_max: usize,
    pub handshake_timeout_us: u64,
    pub idle_timeout_us: u64,
    pub tick_us: u64,
    pub queue: QueueLimits,
    pub dedup_entries_max: usize,
    pub dedup_window_us: u64,
    /// Steps `run` may take before it declares a livelock.
    pub steps_max: usize,
    /// Largest number of log-task steps a write takes to become durable (0: at once, drawing nothing from the
    /// generator).
    pub write_delay_steps_max: usize,
    /// Segment size at which each core's log rotates.
    pub log_segment_bytes_max: u64,
}

impl SimConfig {
    pub fn new(seed: u64, cores: u16, users: u64) -> Self {
        Self {
            seed,
            cores,
            users,
            mesh_capacity: 4,
            write_chunk_max: 4096,
            read_chunk_max: READ_BUFFER_BYTES,
            client_read_chunk_max: 4096,
            socket_window_bytes: 64 * 1024,
            drain_batches_max: 2,
            frame_size_max: wire::FRAME_SIZE_MAX_DEFAULT,
            handshake_timeout_us: 10_000_000,
            idle_timeout_us: 180_000_000,
            tick_us: 100_000,
            queue: QueueLimits {
                messages_per_user_max: 10_000,
                bytes_per_user_max: 16 * 1024 * 1024,
                bytes_per_core_max: 1 << 32,
                age_max_us: 30 * 24 * 3600 * 1_000_000,
            },
            dedup_entries_max: 1 << 20,
            dedup_window_us: 600_000_000,
            steps_max: 200_000,
            write_delay_steps_max: 0,
            log_segment_bytes_max: 1 << 30,
        }
    }
}

pub use wire::OwnedServerFrame;

/// What a simulated client received: a server frame (owned, every field kept), or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Server(OwnedServerFrame),
    /// The server closed the socket and the client has read everything before that.
    Closed,
}

pub type ClientId = usize;
type SockId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Attached {
        shard: usize,
        conn: ConnId,
    },
    /// Taken by `take_handoff`, on its way to the home core.
    InTransit,
    /// The server side closed it (`handle_closed` was called).
    Closed,
}

/// One TCP connection: both directions of bytes, and the server-side task's wake-up state.
#[derive(Debug)]
struct Sock {
    place: Place,
    client: ClientId,
    /// Written by the client, not yet read by the server.
    to_server: VecDeque<u8>,
    /// Written by the server, not yet read by the client.
    to_client: VecDeque<u8>,
    /// The client closed (reset) the socket: the server reads EOF and writes fail.
    client_closed: bool,
    /// The server task must poll (a shard wake-up, or its own yield).
    wake: bool,
    /// The last poll found nothing to read: new bytes wake the task.
    want_read: bool,
    /// The last poll found no room to write: room wakes the task.
    want_write: bool,
}

#[derive(Debug)]
pub struct Client {
    pub user: UserId,
    pub key: DeviceKey,
    sock: Option<SockId>,
    /// Bytes read from the socket, not yet a whole frame.
    decode: Vec<u8>,
    /// Every frame received, over all connections, in order.
    pub frames: Vec<Frame>,
    /// For each of `frames`, its place in the order all clients received frames in.
    pub frame_order: Vec<u64>,
    /// Answer every DELIVER and RECEIPT with DELIVERED as soon as it is read.
    pub auto_delivered: bool,
    /// Read from the socket at all (false: a reader that stopped reading).
    pub reading: bool,
    /// Largest piece read at once (a slow reader reads little).
    pub read_chunk_max: usize,
}

/// Batches in one ordered core-pair channel, and the pump that fills it.
#[derive(Debug, Default)]
struct Link {
    channel: VecDeque<Batch>,
    /// `Output::MeshReady` named this peer, or a socket waits to be handed over.
    notified: bool,
    /// The pump is in its inner loop (it took a batch and the outbox said "more").
    running: bool,
    /// A batch the pump holds while the channel is full, and whether the outbox had more.
    held: Option<(Batch, bool)>,
    adopts: Vec<(SockId, Handoff)>,
}

#[derive(Debug, Default)]
struct Batch {
    messages: Vec<ShardMsg>,
    adopts: Vec<(SockId, Handoff)>,
}

#[derive(Debug, Clone, Copy)]
enum Task {
    Poll(SockId),
    Pump(usize, usize),
    Drain(usize, usize),
    ClientRead(ClientId),
    /// The core's log task: issue the shard's next group to the core's disk, or move the write in flight on.
    Log(usize),
    /// The core's device-record task: append the new device generations to the (in-memory) device log and
    /// report them durable, at a random point among the other tasks, as the runtime's blocking thread does.
    DeviceRecords(usize),
}

pub struct Sim {
    pub config: SimConfig,
    pub rng: Rng,
    pub now: Now,
    pub shards: Vec<Shard>,
    /// Each core's log, on the simulated disk.
    pub disks: Vec<SimDisk>,
    /// Per core: `Output::LogReady` woke the log task and it has not taken the records yet.
    log_woken: Vec<bool>,
    /// Per core: device generations handed out (`Output::RecordDevice`) for the device-record task.
    device_records_out: Vec<Vec<DeviceRecord>>,
    shard_config: ShardConfig,
    pub clients: Vec<Client>,
    keys: KeyAuthority,
    pin_sender: Arc<PinSender>,
    /// Where the device-record task appends (the runtime's is one file per core).
    device_log: DeviceLog,
    socks: Vec<Sock>,
    by_conn: HashMap<(usize, ConnId), SockId>,
    links: Vec<Vec<Link>>,
    /// Largest `outbound` seen on any connection.
    pub outbound_bytes_seen_max: usize,
    /// Largest number of requests waiting in one outbox (for one peer) seen by a pump; responses are bounded by
    /// the peer's requests.
    pub outbox_seen_max: usize,
    /// Largest number of batches seen in one channel.
    pub channel_batches_seen_max: usize,
    /// Steps taken so far.
    pub steps: usize,
    /// Frames received by all clients so far.
    frames_received: u64,
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let keys = KeyAuthority::new([7; 32]);
        let directory = Arc::new(Directory::new(vec![ProvisionBatch { prefix: 1555, width: 7, count: config.users }]));
        assert_eq!(directory.batches()[0].first(), Some(USER_BASE), "USER_BASE matches the provisioning");
        let pin_sender = Arc::new(PinSender::in_memory());
        let shard_config = ShardConfig {
            cores: config.cores,
            frame_size_max: config.frame_size_max,
            handshake_timeout_us: config.handshake_timeout_us,
            idle_timeout_us: config.idle_timeout_us,
            queue: config.queue,
            dedup_entries_max: config.dedup_entries_max,
            dedup_window_us: config.dedup_window_us,
            keys: keys.clone(),
            directory,
            durability: Durability::Sync,
            log_segment_bytes_max: config.log_segment_bytes_max,
            generations: Arc::new(HashMap::new()),
            registration: RegistrationLimits::standard(600_000_000),
        };
        let cores = usize::from(config.cores);
        let now = Now { mono_us: 1_000_000, wall_us: 1_700_000_000_000_000 };
        // A fresh data directory: recovery of an empty log still writes each core's segment 0.
        let recovered =
            Recovery::new().finish(config.cores, now.wall_us, config.dedup_window_us).expect("an empty log recovers");
        let (shards, disks) = start_cores(&shard_config, recovered);
        Self {
            rng: Rng::new(config.seed),
            now,
            shards,
            disks,
            log_woken: vec![false; cores],
            device_records_out: vec![Vec::new(); cores],
            shard_config,
            clients: Vec::new(),
            keys,
            pin_sender,
            device_log: DeviceLog::in_memory(),
            socks: Vec::new(),
            by_conn: HashMap::new(),
            links: (0..cores).map(|_| (0..cores).map(|_| Link::default()).collect()).collect(),
            outbound_bytes_seen_max: 0,
            outbox_seen_max: 0,
            channel_batches_seen_max: 0,
            steps: 0,
            frames_received: 0,
            config,
        }
    }

    // ---- users and clients ----------------------------------------------------------------------------

    pub fn user(&self, index: u64) -> UserId {
        assert!(index < self.config.users);
        USER_BASE + index
    }

    pub fn home(&self, user: UserId) -> usize {
        home_core(user, self.config.cores).index()
    }

    /// The `nth` provisioned user whose home is `shard`.
    pub fn user_homed_at(&self, shard: usize, nth: usize) -> UserId {
        (0..self.config.users)
            .map(|index| self.user(index))
            .filter(|&user| self.home(user) == shard)
            .nth(nth)
            .expect("enough users provisioned for this home")
    }

    /// The PINs the shards handed to the PIN sender so far, oldest first.
    pub fn pins(&self) -> Vec<ringline_core::account::IssuedPin> {
        self.pin_sender.memory_pins()
    }

    /// A client device of `user` with its right key.
    pub fn client(&mut self, user: UserId) -> ClientId {
        let key = self.keys.derive(user, 0);
        self.client_with_key(user, key)
    }

    pub fn client_with_key(&mut self, user: UserId, key: DeviceKey) -> ClientId {
        self.clients.push(Client {
            user,
            key,
            sock: None,
            decode: Vec::new(),
            frames: Vec::new(),
            frame_order: Vec::new(),
            auto_delivered: true,
            reading: true,
            read_chunk_max: self.config.client_read_chunk_max,
        });
        self.clients.len() - 1
    }

    pub fn is_connected(&self, client: ClientId) -> bool {
        self.clients[client].sock.is_some()
    }

    /// Opens a socket to `shard` (as if SO_REUSEPORT picked it) without saying anything.
    pub fn connect_silent(&mut self, client: ClientId, shard: usize) {
        assert!(self.clients[client].sock.is_none(), "client {client} is connected already");
        let conn = self.shards[shard].handle_accept(self.now).expect("room for a connection");
        let sock = self.socks.len();
        self.socks.push(Sock {
            place: Place::Attached { shard, conn },
            client,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            client_closed: false,
            wake: true,
            want_read: false,
            want_write: false,
        });
        self.by_conn.insert((shard, conn), sock);
        let state = &mut self.clients[client];
        state.sock = Some(sock);
        state.decode.clear();
        self.dispatch(shard);
    }

    /// Connects to `shard` and sends HELLO.
    pub fn connect(&mut self, client: ClientId, shard: usize) {
        self.connect_silent(client, shard);
        let (user, key) = (self.clients[client].user, self.clients[client].key);
        self.write_frame(client, &ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key });
    }

    /// The client resets its socket: unread bytes in both directions are lost.
    pub fn disconnect(&mut self, client: ClientId) {
        let Some(sock) = self.clients[client].sock.take() else { return };
        self.clients[client].decode.clear();
        let state = &mut self.socks[sock];
        state.client_closed = true;
        state.to_server.clear();
        state.to_client.clear();
        state.wake = true;
    }

    pub fn write_frame(&mut self, client: ClientId, frame: &ClientFrame<'_>) {
        let mut bytes = Vec::new();
        wire::encode_client(frame, &mut bytes);
        self.write_raw(client, &bytes);
    }

    pub fn send(&mut self, client: ClientId, client_msg_id: u64, to: UserId, body: &[u8]) {
        self.write_frame(client, &ClientFrame::Send { client_msg_id, to, body });
    }

    /// Bytes from the client to its socket (never refused: the client's send buffer is unbounded here, so
    /// only the server's not reading holds them back).
    pub fn write_raw(&mut self, client: ClientId, bytes: &[u8]) {
        let sock = self.clients[client].sock.expect("the client is connected");
        let state = &mut self.socks[sock];
        state.to_server.extend(bytes);
        if state.want_read {
            state.wake = true;
        }
    }

    /// Bytes the client wrote that the server has not read yet.
    pub fn unread_by_server(&self, client: ClientId) -> usize {
        self.clients[client].sock.map_or(0, |sock| self.socks[sock].to_server.len())
    }

    pub fn frames(&self, client: ClientId) -> &[Frame] {
        &self.clients[client].frames
    }

    pub fn take_frames(&mut self, client: ClientId) -> Vec<Frame> {
        self.clients[client].frame_order.clear();
        std::mem::take(&mut self.clients[client].frames)
    }

    /// The connection serving `client` now: shard and handle (not while it is handed over).
    pub fn server_side(&self, client: ClientId) -> Option<(usize, ConnId)> {
        match self.socks[self.clients[client].sock?].place {
            Place::Attached { shard, conn } => Some((shard, conn)),
            Place::InTransit | Place::Closed => None,
        }
    }

    // ---- time -----------------------------------------------------------------------------------------

    /// One tick: the clock moves by `tick_us` and every shard runs its timers.
    pub fn tick(&mut self) {
        self.now.mono_us += self.config.tick_us;
        self.now.wall_us += self.config.tick_us;
        for shard in 0..self.shards.len() {
            self.shards[shard].handle_timeout(self.now);
            self.dispatch(shard);
        }
    }

    /// Lets `us` of virtual time pass, tick by tick, running the tasks between ticks.
    pub fn advance(&mut self, us: u64) {
        let ticks = us.div_ceil(self.config.tick_us);
        for _ in 0..ticks {
            self.tick();
            self.run();
        }
    }

    /// SIGTERM on every core at once (what the tick loop does when the shutdown flag is set).
    pub fn begin_shutdown(&mut self) {
        for shard in 0..self.shards.len() {
            self.shards[shard].begin_shutdown(self.now);
            self.dispatch(shard);
        }
    }

    // ---- running --------------------------------------------------------------------------------------

    /// Steps until no task can make progress. Panics past `steps_max` steps (a livelock).
    pub fn run(&mut self) {
        let mut steps = 0;
        while self.step() {
            steps += 1;
            assert!(steps < self.config.steps_max, "no quiescence after {steps} steps (livelock?)");
        }
    }

    /// Runs every task that can make progress once, in a random order. Returns whether any could.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        let mut tasks = Vec::new();
        for (sock, state) in self.socks.iter().enumerate() {
            if state.wake && matches!(state.place, Place::Attached { .. }) {
                tasks.push(Task::Poll(sock));
            }
        }
        let cores = self.shards.len();
        for from in 0..cores {
            for to in 0..cores {
                let link = &self.links[from][to];
                let pump_can = match &link.held {
                    Some(_) => link.channel.len() < self.config.mesh_capacity,
                    None => link.notified || link.running,
                };
                if pump_can {
                    tasks.push(Task::Pump(from, to));
                }
                if !link.channel.is_empty() {
                    tasks.push(Task::Drain(from, to));
                }
            }
        }
        for (client, state) in self.clients.iter().enumerate() {
            if state.reading
                && let Some(sock) = state.sock
            {
                let sock = &self.socks[sock];
                if !sock.to_client.is_empty() || sock.place == Place::Closed {
                    tasks.push(Task::ClientRead(client));
                }
            }
        }
        for shard in 0..cores {
            if self.log_woken[shard] || self.disks[shard].is_writing() {
                tasks.push(Task::Log(shard));
            }
            if !self.device_records_out[shard].is_empty() {
                tasks.push(Task::DeviceRecords(shard));
            }
        }
        if tasks.is_empty() {
            return false;
        }
        self.rng.shuffle(&mut tasks);
        for task in tasks {
            match task {
                Task::Poll(sock) => self.poll_sock(sock),
                Task::Pump(from, to) => self.pump(from, to),
                Task::Drain(from, to) => {
                    let count = self.rng.range(1, self.config.drain_batches_max.max(1));
                    self.drain(from, to, count);
                }
                Task::ClientRead(client) => self.client_read(client),
                Task::Log(shard) => self.run_log(shard),
                Task::DeviceRecords(shard) => self.record_devices(shard),
            }
        }
        true
    }

    /// One turn of core `shard`'s log task, as `rt/log.rs` `run_log`: a write in flight moves on (and once
    /// durable, its answers go out and freed segments go); else the shard's next group is issued.
    fn run_log(&mut self, shard: usize) {
        if !self.disks[shard].is_writing() {
            self.log_woken[shard] = false;
            let Some(write) = driver::log::next_write(&mut self.shards[shard]) else { return };
            let delay = match self.config.write_delay_steps_max {
                0 => 0,
                max => self.rng.range(0, max),
            };
            self.disks[shard].start(write, delay);
        }
        let Some(lsn) = self.disks[shard].step() else { return };
        let now = self.now;
        let (core, mut effects) = self.core(shard);
        driver::log::write_done(core, &mut effects, lsn, now);
    }

    /// What the device-record task does (`rt::device_records`): one batch to the device log, then each record
    /// reported durable.
    fn record_devices(&mut self, shard: usize) {
        let mut batch = std::mem::take(&mut self.device_records_out[shard]);
        let lines: Vec<_> = batch.iter().map(|record| (record.phone, record.generation)).collect();
        self.device_log.record(shard, &lines).expect("the in-memory device log takes every record");
        let now = self.now;
        let (core, mut effects) = self.core(shard);
        driver::device_records::recorded(core, &mut effects, &mut batch, true, now);
    }

    /// kill -9 and a restart on the same disks: every write in flight is torn (`SimDisk::crash`), every socket
    /// and channel is gone (clients see their connection close), and the cores start again from what the
    /// engine's recovery makes of the disks. Returns what each core's replay found and what each crash tore.
    pub fn crash_and_restart(&mut self) -> Restart {
        let tears = self.disks.iter_mut().map(|disk| disk.crash(&mut self.rng)).collect();
        for client in 0..self.clients.len() {
            if self.clients[client].sock.take().is_some() {
                let state = &mut self.clients[client];
                state.decode.clear();
                state.frames.push(Frame::Closed);
                state.frame_order.push(self.frames_received);
                self.frames_received += 1;
            }
        }
        for sock in &mut self.socks {
            sock.place = Place::Closed;
            sock.to_server.clear();
            sock.to_client.clear();
            sock.wake = false;
        }
        self.by_conn.clear();
        let cores = usize::from(self.config.cores);
        self.links = (0..cores).map(|_| (0..cores).map(|_| Link::default()).collect()).collect();
        let mut recovery = Recovery::new();
        let outcomes = self.disks.iter_mut().map(|disk| disk.recover_into(&mut recovery)).collect();
        let recovered = recovery
            .finish(self.config.cores, self.now.wall_us, self.config.dedup_window_us)
            .expect("logs this engine wrote recover");
        (self.shards, self.disks) = start_cores(&self.shard_config, recovered);
        self.log_woken = vec![false; cores];
        self.device_records_out = vec![Vec::new(); cores];
        Restart { tears, outcomes }
    }

    /// Device generations recorded so far (phone, generation), in the order they were made durable.
    pub fn device_records(&self) -> Vec<(UserId, u32)> {
        self.device_log.memory_records()
    }

    /// What `CoreContext::dispatch` does: `driver::drive` over this core's simulated effects.
    fn dispatch(&mut self, shard: usize) {
        let (core, mut effects) = self.core(shard);
        driver::drive(core, &mut effects);
    }

    /// Core `shard`'s shard, and its effects over the simulated sockets, links, disk and device-record queue.
    fn core(&mut self, shard: usize) -> (&mut Shard, SimEffects<'_>) {
        let effects = SimEffects {
            shard,
            now: self.now,
            socks: &mut self.socks,
            by_conn: &mut self.by_conn,
            links: &mut self.links[shard],
            log_woken: &mut self.log_woken[shard],
            device_records_out: &mut self.device_records_out[shard],
            disk: &mut self.disks[shard],
            pin_sender: &self.pin_sender,
        };
        (&mut self.shards[shard], effects)
    }

    /// One poll of a connection's task: the connection loop the runtime runs (`driver::connection::serve`),
    /// over the simulated socket.
    fn poll_sock(&mut self, sock: SockId) {
        let Place::Attached { shard, conn } = self.socks[sock].place else { return };
        let state = &mut self.socks[sock];
        state.wake = false;
        state.want_read = false;
        state.want_write = false;
        connection::serve(&mut SimSocket { sim: self, sock, shard, conn, writes: 0 });
    }

    /// The pump from `from` to `to`, as `rt/core.rs` `pump`.
    fn pump(&mut self, from: usize, to: usize) {
        let link = &mut self.links[from][to];
        if link.held.is_none() {
            if !link.running {
                if !std::mem::take(&mut link.notified) {
                    return;
                }
                link.running = true;
            }
            self.outbox_seen_max = self.outbox_seen_max.max(self.shards[from].outbox_requests(ShardId(to as u16)));
            let mut batch = Batch::default();
            let now = self.now;
            let (core, mut effects) = self.core(from);
            let more = driver::mesh::take_batch(core, &mut effects, ShardId(to as u16), &mut batch.messages, now);
            batch.adopts = std::mem::take(&mut self.links[from][to].adopts);
            let link = &mut self.links[from][to];
            if batch.messages.is_empty() && batch.adopts.is_empty() {
                link.running = false;
                return;
            }
            link.held = Some((batch, more));
        }
        let link = &mut self.links[from][to];
        if link.channel.len() < self.config.mesh_capacity
            && let Some((batch, more)) = link.held.take()
        {
            link.channel.push_back(batch);
            self.channel_batches_seen_max = self.channel_batches_seen_max.max(link.channel.len());
            link.running = more;
        }
    }

    /// The drain of channel `from` → `to`, as `rt/core.rs` `drain`, for up to `count` batches.
    fn drain(&mut self, from: usize, to: usize, count: usize) {
        for _ in 0..count {
            let Some(batch) = self.links[from][to].channel.pop_front() else { return };
            let adopts = batch.adopts.into_iter().map(|(sock, handoff)| (handoff, sock));
            let now = self.now;
            let (core, mut effects) = self.core(to);
            driver::mesh::arrive(core, &mut effects, ShardId(from as u16), adopts, batch.messages, now);
        }
    }

    /// The client reads a random piece of what the server wrote and handles the whole frames in it.
    fn client_read(&mut self, client: ClientId) {
        let Some(sock) = self.clients[client].sock else { return };
        let available = self.socks[sock].to_client.len();
        if available > 0 {
            let chunk_max = self.clients[client].read_chunk_max.max(1);
            let read = self.rng.range(1, available.min(chunk_max));
            let state = &mut self.socks[sock];
            self.clients[client].decode.extend(state.to_client.drain(..read));
            if state.want_write {
                state.wake = true;
            }
        }
        let mut answers = Vec::new();
        let state = &mut self.clients[client];
        let mut used = 0;
        loop {
            match wire::decode_server(&state.decode[used..], usize::MAX / 2) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    used += consumed;
                    let frame = Frame::Server(frame.into_owned());
                    if state.auto_delivered {
                        match frame {
                            Frame::Server(OwnedServerFrame::Deliver { item_id, .. })
                            | Frame::Server(OwnedServerFrame::Receipt { item_id, .. }) => {
                                answers.push(item_id);
                            }
                            _ => {}
                        }
                    }
                    state.frames.push(frame);
                    state.frame_order.push(self.frames_received);
                    self.frames_received += 1;
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(error) => panic!("client {client} got bytes that are no server frame: {error}"),
            }
        }
        state.decode.drain(..used);
        let closed = self.socks[sock].place == Place::Closed && self.socks[sock].to_client.is_empty();
        if closed {
            assert!(state.decode.is_empty(), "the server closed in the middle of a frame");
            state.frames.push(Frame::Closed);
            state.frame_order.push(self.frames_received);
            self.frames_received += 1;
            state.sock = None;
            return;
        }
        for item_id in answers {
            self.write_frame(client, &ClientFrame::Delivered { item_id });
        }
    }

    // ---- whole-system checks --------------------------------------------------------------------------

    /// Nothing left to move anywhere: no socket task to run, no batch in a channel or pump, no byte unread.
    pub fn assert_settled(&self) {
        for (from, links) in self.links.iter().enumerate() {
            for (to, link) in links.iter().enumerate() {
                assert!(link.channel.is_empty() && link.held.is_none(), "channel {from}→{to} still holds batches");
                assert!(self.shards[from].outbox_len(ShardId(to as u16)) == 0, "outbox {from}→{to} not empty");
            }
        }
    }

    /// The bound on any connection's outbound bytes: a full buffer plus one frame, plus the answers to one
    /// read's worth of frames (PONG, ACK, REJECT), which are written whatever the buffer holds.
    pub fn outbound_bound(&self) -> usize {
        OUTBOUND_BYTES_MAX + wire::LENGTH_PREFIX_BYTES + self.config.frame_size_max + READ_BUFFER_BYTES
    }
}

/// A simulated socket during one poll of its connection's task, as the connection loop drives it: writes of
/// random sizes up to the room in the socket's window (and at most `WRITES_PER_POLL_MAX` per poll), reads of
/// random sizes, a client's reset seen as end of input and as a failed write.
struct SimSocket<'s> {
    sim: &'s mut Sim,
    sock: SockId,
    shard: usize,
    conn: ConnId,
    /// Writes this poll made.
    writes: usize,
}

impl connection::Core for SimSocket<'_> {
    fn shard(&mut self) -> impl DerefMut<Target = Shard> {
        &mut self.sim.shards[self.shard]
    }

    fn now(&self) -> Now {
        self.sim.now
    }

    fn dispatch(&mut self) {
        self.sim.dispatch(self.shard);
    }
}

impl Transport for SimSocket<'_> {
    fn conn(&self) -> ConnId {
        self.conn
    }

    fn write_outbound(&mut self) -> Write {
        let sim = &mut *self.sim;
        let outbound = sim.shards[self.shard].outbound(self.conn);
        sim.outbound_bytes_seen_max = sim.outbound_bytes_seen_max.max(outbound.len());
        let state = &mut sim.socks[self.sock];
        if state.client_closed {
            return Write::Failed;
        }
        let room = sim.config.socket_window_bytes.saturating_sub(state.to_client.len());
        if room == 0 || self.writes == WRITES_PER_POLL_MAX {
            // No room (or, past a few writes, a socket buffer that is full for a moment): the write is pending,
            // and room wakes the task.
            state.want_write = true;
            if room > 0 {
                state.wake = true;
            }
            return Write::NoRoom;
        }
        self.writes += 1;
        let written = sim.rng.range(1, outbound.len().min(room).min(sim.config.write_chunk_max));
        state.to_client.extend(&outbound[..written]);
        Write::Wrote { bytes: written, full: false }
    }

    /// A simulated read tells an empty socket by itself.
    fn may_have_input(&self) -> bool {
        true
    }

    fn read(&mut self) -> Read {
        let sim = &mut *self.sim;
        let state = &mut sim.socks[self.sock];
        if state.to_server.is_empty() {
            if state.client_closed {
                return Read::Ended;
            }
            state.want_read = true;
            return Read::Empty;
        }
        let read = sim.rng.range(1, state.to_server.len().min(sim.config.read_chunk_max));
        let bytes: Vec<u8> = state.to_server.drain(..read).collect();
        sim.shards[self.shard].handle_bytes(self.conn, &bytes, sim.now);
        Read::Received
    }

    fn come_back(&mut self) {
        self.sim.socks[self.sock].wake = true;
    }

    fn detach(&mut self) {
        self.sim.by_conn.remove(&(self.shard, self.conn));
        self.sim.socks[self.sock].place = Place::Closed;
    }

    /// The client sees the end once it has read what was written before it; no linger to model.
    fn close(&mut self, _how: Close) {}

    fn hand_off(&mut self, handoff: Handoff) {
        let sim = &mut *self.sim;
        sim.by_conn.remove(&(self.shard, self.conn));
        sim.socks[self.sock].place = Place::InTransit;
        let link = &mut sim.links[self.shard][handoff.to.index()];
        link.adopts.push((self.sock, handoff));
        link.notified = true;
    }
}

/// What a crash and restart did: per core, the tear of its write in flight (if one was), and what replay found in
/// each segment.
#[derive(Debug)]
pub struct Restart {
    pub tears: Vec<Option<Tear>>,
    pub outcomes: Vec<Vec<(u64, SegmentOutcome)>>,
}

/// `driver::Effects` of one simulated core, as `rt::effects::CoreEffects` is the runtime's: a connection to
/// serve wakes its socket's task, a peer with messages its pump, log records the log task; freed segments
/// leave the simulated disk at once; device records wait for the device-record task; PINs go to the
/// in-memory PIN sender; adopted sockets are attached here.
struct SimEffects<'a> {
    shard: usize,
    now: Now,
    socks: &'a mut [Sock],
    by_conn: &'a mut HashMap<(usize, ConnId), SockId>,
    /// This core's links, by peer.
    links: &'a mut [Link],
    log_woken: &'a mut bool,
    device_records_out: &'a mut Vec<DeviceRecord>,
    disk: &'a mut SimDisk,
    pin_sender: &'a PinSender,
}

impl Effects for SimEffects<'_> {
    fn now(&mut self) -> Now {
        self.now
    }

    fn serve(&mut self, conn: ConnId) {
        if let Some(&sock) = self.by_conn.get(&(self.shard, conn)) {
            self.socks[sock].wake = true;
        }
    }

    fn notify_pump(&mut self, peer: ShardId) {
        self.links[peer.index()].notified = true;
    }

    fn wake_log(&mut self) {
        *self.log_woken = true;
    }

    fn delete_segment(&mut self, segment: u64) {
        self.disk.delete(segment);
    }

    fn record_device(&mut self, record: DeviceRecord) {
        self.device_records_out.push(record);
    }

    fn hand_pin_over(&mut self, pin: IssuedPin) -> bool {
        self.pin_sender.send(pin).is_ok()
    }

    fn answer_admin(&mut self, ticket: AdminTicket, answer: AdminAnswer) {
        panic!("the simulator asks no admin request, yet {ticket:?} was answered: {answer:?}");
    }
}

impl Adopter<SockId> for SimEffects<'_> {
    fn attach(&mut self, _shard: &mut Shard, conn: ConnId, sock: SockId) {
        self.socks[sock].place = Place::Attached { shard: self.shard, conn };
        self.socks[sock].wake = true;
        self.by_conn.insert((self.shard, conn), sock);
    }

    fn refuse(&mut self, _from: ShardId, full: ConnectionsFull, _sock: SockId) {
        panic!("{full}");
    }
}

/// The shards and disks of a process starting with `recovered` (as `rt` does after `rt::log::recover`).
fn start_cores(config: &ShardConfig, recovered: Vec<RecoveredCore>) -> (Vec<Shard>, Vec<SimDisk>) {
    recovered
        .into_iter()
        .enumerate()
        .map(|(index, core)| {
            let disk = SimDisk::recovered(&core);
            let mut shard = Shard::new(ShardId(index as u16), config.clone());
            shard.recover(core, disk.segments[&0].len() as u64);
            (shard, disk)
        })
        .unzip()
}

/// Runs `run` for `seed`; a panic in it panics again naming the seed and how to replay it.
pub fn run_seeded<T>(seed: u64, run: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    std::panic::catch_unwind(run).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        panic!("seed {seed} failed (replay: RINGLINE_SEED={seed}): {message}");
    })
}

/// `RINGLINE_SEED` if set, else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var("RINGLINE_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(default)
}
