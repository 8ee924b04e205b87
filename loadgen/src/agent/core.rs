//! One agent core: a thread pinned to a CPU that holds this core's share of the agent's users in one
//! edge-triggered epoll loop (mio), with no task, timer or buffer per connection. Owns the core's sockets, its
//! sessions, its ledger and its histograms; shares nothing with other cores (it reports to the agent's main
//! thread over a bounded channel and reads one stop flag).
//!
//! Memory per connection is what decides how many a host can hold, so a connection is a slot: its session
//! (protocol state, unacked sends, a partial frame), its socket and a few flags. Reads go into the core's one
//! read buffer; timers are per core: the ramp is a cursor over the slots (their start times rise with the
//! index), reconnect backoffs wait in one heap, and connect timeouts and keepalives are checked by a scan that
//! visits every slot once a second, a fiftieth of them every 20 ms: a scan of all at once sent a second's
//! keepalives in one burst, and the engines' queueing behind it set the latency's tail. Wake-ups cost the same whether the core holds ten connections or a hundred thousand (a glommio
//! task per connection made every wake-up walk io_uring's poll table, which grew with the connections).
//!
//! With TLS (`--tls`) a connection's slot also holds its `TlsConnection` (sans-IO, `loadgen::client::tls`) between the
//! socket and the driver: ciphertext is read into the same per-core buffer and handed to the driver as plaintext
//! in the same visit. Each user keeps its `SessionTickets` in its slot between connections, so a reconnect
//! resumes. A plaintext run takes none of these paths.
//!
//! Must not block: every socket is non-blocking, and a connection that has more to read than one visit allows
//! is visited again before the next wait.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

use loadgen::client::any_driver::{AnyDriver, DriverUser};
use loadgen::client::driver::{ChatDriver, SessionEvent};
use loadgen::client::tls::{HandshakeStats, SessionTickets, TlsClient, TlsConnection, TlsError, TlsInputError};
use loadgen::contacts::{ContactGraph, in_share};
use loadgen::control::{AgentCounters, RunPlan, Scenario};
use loadgen::error_kind::io_error_name;
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::{LedgerSummary, MessageKey};
use loadgen::limits::{CONNECTS_PER_ROUND_MAX, CORE_READ_BUFFER_BYTES, EVENTS_PER_WAIT, SENDS_PER_TICK_MAX};
use loadgen::load_profile::slot_start_us;
use loadgen::scenario_file::body_bytes_of;
use loadgen::schedule::{RateStep, SendSchedule};
use loadgen::source_addr::SourceAddresses;
use loadgen::workload_mix::{nth_sender, sender_ranges, workload_ranges_within};

use super::accounting::{Accounting, Storm};
use crate::machine::now_us;

/// The protocol driver connections speak (`--protocol`). The runtime calls only methods that
/// `loadgen::client::driver::ChatDriver` has.
type Driver = AnyDriver;

/// Reads one connection may do per visit before the others get their turn.
const READS_PER_VISIT: usize = 16;
/// How long the loop waits at most while it has sends to release, and otherwise.
const TICK_SENDING_US: u64 = 1_000;
const TICK_IDLE_US: u64 = 20_000;
/// The timer scan visits every slot once a second, in this many slices spread over the second.
const TIMER_SLICES_PER_SECOND: u64 = 50;
const TIMER_SLICE_US: u64 = 1_000_000 / TIMER_SLICES_PER_SECOND;
/// After a stop request the core drains this long at most.
const STOP_DRAIN_US: u64 = 2_000_000;
/// Reconnect backoff: jittered exponential from the first to the cap. The cap is long, as a real client's is: a
/// generator that retries failed logins every few seconds turns an overloaded server into a retry storm.
const BACKOFF_FIRST_MS: u64 = 50;
const BACKOFF_CAP_MS: u64 = 30_000;

/// What the agent's main thread gives a core.
#[derive(Debug)]
pub struct CorePlan {
    pub core_index: usize,
    pub cpu: usize,
    pub users: Vec<DriverUser>,
    pub plan: Arc<RunPlan>,
    pub sources: SourceAddresses,
    /// Where this core starts in the source address list, so cores and agents spread over it.
    pub source_offset: u64,
    /// This core's share of the agent's message rate, step by step.
    pub rates: Vec<RateStep>,
    /// The agent's TLS client (`--tls`), shared by its cores.
    pub tls: Option<Arc<TlsClient>>,
    /// Where this core's users start among the plan's users, and how many those are: a workload mix gives
    /// workloads by the index among the plan's users.
    pub plan_user_offset: usize,
    pub plan_users: usize,
}

/// What a core tells the agent's main thread.
#[derive(Debug)]
pub enum CoreReport {
    Progress(Box<CoreProgress>),
    Final(Box<CoreFinal>),
}

/// A core's progress over the last second.
#[derive(Debug)]
pub struct CoreProgress {
    pub core_index: usize,
    pub counters: AgentCounters,
    pub interval_ack: LatencyHistogram,
    pub interval_delivery: LatencyHistogram,
}

/// A core's verdict.
#[derive(Debug)]
pub struct CoreFinal {
    pub core_index: usize,
    pub counters: AgentCounters,
    pub connections_peak: u64,
    pub ledger: LedgerSummary,
    pub latency_ack: LatencyHistogram,
    pub latency_delivery: LatencyHistogram,
    pub latency_offline_delivery: LatencyHistogram,
    pub errors: BTreeMap<String, u64>,
    pub ramp_done_at_us: Option<u64>,
    pub storm_recovery_us: Option<u64>,
    pub storm_dropped: u64,
    pub offline_drain_us: Option<u64>,
    /// TLS handshakes (with TLS).
    pub tls: Option<HandshakeStats>,
}

/// One user's connection as the core tracks it.
pub(super) struct Slot {
    pub(super) session: Driver,
    /// The socket while connecting or connected.
    stream: Option<TcpStream>,
    /// The connection's TLS state (with TLS), beside its socket.
    tls: Option<Box<TlsConnection>>,
    /// The user's TLS sessions between its connections (with TLS, from its first connect on).
    tls_tickets: Option<Arc<SessionTickets>>,
    /// Bumped on every connect, and part of the socket's epoll token, so an event for an earlier socket
    /// (in the same batch as its close) is not taken for the current one.
    generation: u32,
    /// TCP is connected (the session's bytes may be written).
    tcp_connected: bool,
    /// When the connect (through WELCOME) times out; 0 when not connecting.
    connect_deadline_us: u64,
    /// Consecutive failed attempts, for the backoff.
    failures: u32,
    /// Its ramp time has come.
    started: bool,
    /// A reconnect waits in the backoff heap.
    retry_pending: bool,
    /// In the list of connections with something to write.
    queued_to_write: bool,
    pub(super) want_online: bool,
    pub(super) up: bool,
    pub(super) ever_up: bool,
}

/// Why a connection ended.
enum Exit {
    Stopped,
    Dropped,
    ConnectFailed(io::Error),
    Io(io::Error),
    Closed,
    ServerClosed,
    Session(String),
    Tls(TlsError),
}

struct Core {
    plan: Arc<RunPlan>,
    graph: ContactGraph,
    /// Which slots run which workload: ranges of slot indexes that follow each other and cover the slots.
    workloads: Vec<(Scenario, Range<usize>)>,
    /// The slots whose workload sends (`workloads` less the idle ones); senders are picked among them.
    senders: Vec<Range<usize>>,
    sources: SourceAddresses,
    source_offset: u64,
    /// This core's rate steps, until the loop hands them to its send schedule.
    rates: Vec<RateStep>,
    core_index: usize,
    connect_timeout_us: u64,
    tls_client: Option<Arc<TlsClient>>,
    poll: Poll,
    slots: Vec<Slot>,
    read_buffer: Box<[u8]>,
    events: Vec<SessionEvent>,
    accounting: Accounting,
    /// Reconnects waiting out their backoff: (when, slot). At most one per slot.
    retries: BinaryHeap<Reverse<(u64, usize)>>,
    /// Connections with something to write, each once.
    to_write: Vec<usize>,
    /// Connections that stopped reading at the per-visit bound and have more.
    to_read: Vec<usize>,
    /// The next slot in ramp order that has not started.
    next_start: usize,
    /// The next slot the timer scan looks at.
    timer_cursor: usize,
    stopping: bool,
    rng: SmallRng,
}

/// Runs one core until its run is over, on the calling thread (which it pins to `core_plan.cpu`). Fails only
/// when the core cannot start (no epoll instance); connection errors are counted, not returned.
pub fn run_core(core_plan: CorePlan, stop: &AtomicBool, reports: &SyncSender<CoreReport>) -> io::Result<()> {
    if let Err(error) = tuning::cpus::set_cpu_affinity([core_plan.cpu]) {
        eprintln!("ringline-loadgen agent: core {} runs unpinned: {error}", core_plan.core_index);
    }
    let mut core = Core::new(core_plan)?;
    core.drive(stop, reports);
    // The verdict goes first: closing every connection can take longer than the deadline for it.
    // The main thread waits for this; blocking at the very end is fine.
    let _ = reports.send(CoreReport::Final(Box::new(core.final_report())));
    core.close_all();
    Ok(())
}

/// The workload of slot `index` (`single` for a slot no range holds, which `workload_ranges_within` never
/// leaves).
fn workload_at(workloads: &[(Scenario, Range<usize>)], single: Scenario, index: usize) -> Scenario {
    workloads.iter().find(|(_, range)| range.contains(&index)).map_or(single, |(workload, _)| *workload)
}

fn token_of(index: usize, generation: u32) -> Token {
    Token((u64::from(generation) << 32 | index as u64) as usize)
}

fn slot_of(token: Token) -> (usize, u32) {
    let raw = token.0 as u64;
    ((raw & 0xffff_ffff) as usize, (raw >> 32) as u32)
}

impl Core {
    fn new(core_plan: CorePlan) -> io::Result<Self> {
        let plan = core_plan.plan;
        let users = core_plan.users.len();
        let core_users = core_plan.plan_user_offset..core_plan.plan_user_offset + users;
        let workloads = workload_ranges_within(&plan.workload_mix, plan.scenario, core_plan.plan_users, core_users);
        let senders = sender_ranges(&workloads);
        let client_msg_id_base = (plan.run_id & 0xffff_ffff) << 32;
        let slots: Vec<Slot> = core_plan
            .users
            .iter()
            .enumerate()
            .map(|(index, user)| Slot {
                session: Driver::new(
                    user,
                    body_bytes_of(&plan.body_bytes_mix, index, users).unwrap_or(plan.body_bytes),
                    plan.ping_interval_s * 1_000_000,
                    client_msg_id_base,
                ),
                stream: None,
                tls: None,
                tls_tickets: None,
                generation: 0,
                tcp_connected: false,
                connect_deadline_us: 0,
                failures: 0,
                started: false,
                retry_pending: false,
                queued_to_write: false,
                want_online: !(workload_at(&workloads, plan.scenario, index) == Scenario::Offline
                    && in_share(index, plan.offline_share)),
                up: false,
                ever_up: false,
            })
            .collect();
        let established_expected = slots.iter().filter(|slot| slot.want_online).count() as u64;
        let seed = plan.run_id ^ ((core_plan.core_index as u64 + 1) * 0x2545_F491_4F6C_DD1D);
        Ok(Self {
            graph: ContactGraph::new(users, plan.targets.len(), plan.contacts_per_user),
            workloads,
            senders,
            accounting: Accounting::new(plan.run_id, established_expected, core_plan.tls.is_some()),
            tls_client: core_plan.tls,
            connect_timeout_us: plan.connect_timeout_ms * 1_000,
            plan,
            sources: core_plan.sources,
            source_offset: core_plan.source_offset,
            rates: core_plan.rates,
            core_index: core_plan.core_index,
            poll: Poll::new()?,
            slots,
            read_buffer: vec![0u8; CORE_READ_BUFFER_BYTES].into_boxed_slice(),
            events: Vec::new(),
            retries: BinaryHeap::new(),
            to_write: Vec::new(),
            to_read: Vec::new(),
            next_start: 0,
            timer_cursor: 0,
            stopping: false,
            rng: SmallRng::seed_from_u64(seed),
        })
    }

    /// Whether some slot of this core runs `workload`.
    fn runs(&self, workload: Scenario) -> bool {
        self.workloads.iter().any(|(each, range)| *each == workload && !range.is_empty())
    }

    fn slot_start_us(&self, index: usize) -> u64 {
        slot_start_us(&self.plan.ramps, index, self.slots.len())
    }

    fn source_for(&self, index: usize) -> Ipv4Addr {
        self.sources.nth(self.source_offset + index as u64)
    }

    /// The loop: ramp, reconnects, sends, keepalives, then one wait for socket events; until the run is over.
    fn drive(&mut self, stop: &AtomicBool, reports: &SyncSender<CoreReport>) {
        let plan = self.plan.clone();
        let sending = !self.senders.is_empty();
        let rates = if sending { std::mem::take(&mut self.rates) } else { Vec::new() };
        let seed = plan.run_id ^ ((self.core_index as u64 + 1) * 0x9E37_79B9);
        let mut schedule = SendSchedule::new(plan.arrivals, rates, plan.hold_end_at_us, seed);
        let mut send_rng = SmallRng::seed_from_u64(seed.rotate_left(17));
        let hold_us = plan.hold_end_at_us.saturating_sub(plan.hold_start_at_us);
        let mut offline_back_at_us = self.runs(Scenario::Offline).then_some(plan.hold_start_at_us + hold_us / 2);
        let mut storm_at_us = self.runs(Scenario::ReconnectStorm).then_some(plan.hold_start_at_us + hold_us / 3);
        let mut next_second_us = now_us() + 1_000_000;
        let mut next_slice_us = now_us() + TIMER_SLICE_US;
        let mut stop_deadline_us: Option<u64> = None;
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        loop {
            let now = now_us();
            if stop_deadline_us.is_none() && stop.load(Ordering::Relaxed) {
                schedule.handle_stop();
                stop_deadline_us = Some(now + STOP_DRAIN_US);
            }
            if let Some(at) = offline_back_at_us
                && (now >= at || stop_deadline_us.is_some())
            {
                offline_back_at_us = None;
                self.bring_everyone_online(now);
            }
            if let Some(at) = storm_at_us
                && now >= at
            {
                storm_at_us = None;
                if stop_deadline_us.is_none() {
                    self.start_storm(now);
                }
            }
            self.start_due(now);
            let mut released = 0;
            while released < SENDS_PER_TICK_MAX {
                let Some(scheduled_us) = schedule.poll_due(now) else { break };
                released += 1;
                self.send_one(scheduled_us, &mut send_rng);
            }
            if now >= next_slice_us {
                next_slice_us = now + TIMER_SLICE_US;
                self.check_timers_slice(now);
            }
            if now >= next_second_us {
                next_second_us = now + 1_000_000;
                self.report_progress(reports);
            }
            self.write_queued(now);
            for index in std::mem::take(&mut self.to_read) {
                self.visit(index, now);
            }
            let hold_over = now >= plan.hold_end_at_us || stop_deadline_us.is_some();
            if hold_over {
                let settled = self.accounting.ledger.outstanding() == 0;
                let deadline = stop_deadline_us.unwrap_or(plan.drain_deadline_us).min(plan.drain_deadline_us);
                if settled || now >= deadline {
                    break;
                }
            }
            let tick = if schedule.poll_timeout().is_some() { TICK_SENDING_US } else { TICK_IDLE_US };
            let mut wake_at = (now + tick).min(next_slice_us);
            if self.next_start < self.slots.len() {
                wake_at = wake_at.min(self.slot_start_us(self.next_start));
            }
            if let Some(Reverse((at, _))) = self.retries.peek() {
                wake_at = wake_at.min(*at);
            }
            let timeout_us = if self.to_read.is_empty() { wake_at.saturating_sub(now) } else { 0 };
            if let Err(error) = self.poll.poll(&mut events, Some(Duration::from_micros(timeout_us))) {
                if error.kind() != io::ErrorKind::Interrupted {
                    self.accounting.count_error(format!("core/epoll_wait/{}", io_error_name(&error)));
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            let now = now_us();
            for event in events.iter() {
                let (index, generation) = slot_of(event.token());
                let Some(slot) = self.slots.get_mut(index) else { continue };
                if slot.generation != generation || slot.stream.is_none() {
                    continue;
                }
                if !slot.tcp_connected {
                    match connect_result(slot) {
                        Ok(true) => slot.tcp_connected = true,
                        Ok(false) => continue,
                        Err(error) => {
                            self.end(index, Exit::ConnectFailed(error), now);
                            continue;
                        }
                    }
                }
                self.visit(index, now);
            }
        }
    }

    /// Starts the connections whose ramp time has come, a bounded number per round.
    fn start_due(&mut self, now: u64) {
        let mut started = 0;
        while self.next_start < self.slots.len()
            && started < CONNECTS_PER_ROUND_MAX
            && self.slot_start_us(self.next_start) <= now
        {
            let index = self.next_start;
            self.next_start += 1;
            started += 1;
            self.slots[index].started = true;
            self.connect(index, now);
        }
        while started < CONNECTS_PER_ROUND_MAX
            && let Some(Reverse((at, index))) = self.retries.peek().copied()
            && at <= now
        {
            self.retries.pop();
            started += 1;
            self.slots[index].retry_pending = false;
            self.connect(index, now);
        }
    }

    /// Opens the connection of a slot that should be online (a slot that should not waits, parked, until
    /// `bring_everyone_online`).
    fn connect(&mut self, index: usize, now: u64) {
        let slot = &self.slots[index];
        if self.stopping || !slot.want_online || !slot.started || slot.stream.is_some() || slot.retry_pending {
            return;
        }
        let target = self.plan.targets[self.graph.target_of(index)];
        let socket = match open_socket(self.source_for(index), target) {
            Ok(socket) => socket,
            Err(error) => return self.end(index, Exit::ConnectFailed(error), now),
        };
        let mut stream = TcpStream::from_std(std::net::TcpStream::from(socket));
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        let token = token_of(index, slot.generation);
        if let Err(error) = self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            return self.end(index, Exit::ConnectFailed(error), now);
        }
        slot.stream = Some(stream);
        slot.tcp_connected = false;
        slot.connect_deadline_us = now + self.connect_timeout_us;
        if let Some(client) = &self.tls_client {
            let tickets = slot.tls_tickets.get_or_insert_with(|| Arc::new(SessionTickets::new())).clone();
            match client.connect(target, &tickets, now) {
                Ok(tls) => slot.tls = Some(Box::new(tls)),
                Err(error) => return self.end(index, Exit::Tls(error), now),
            }
        }
        // The login is queued now and written once the socket reports the connect done.
        slot.session.handle_connected(now);
    }

    /// Reads what a connection has (bounded), hands it to its session, and writes what the session has.
    fn visit(&mut self, index: usize, now: u64) {
        if let Err(exit) = self.serve(index, now) {
            self.end(index, exit, now);
        }
    }

    fn serve(&mut self, index: usize, now: u64) -> Result<(), Exit> {
        let Self { slots, read_buffer, events, accounting, to_read, .. } = self;
        let slot = &mut slots[index];
        let Some(mut stream) = slot.stream.take() else { return Ok(()) };
        let mut tls = slot.tls.take();
        let result = (|| {
            if !slot.tcp_connected {
                return Ok(());
            }
            for reads in 0.. {
                if reads == READS_PER_VISIT {
                    to_read.push(index);
                    break;
                }
                let read = match stream.read(read_buffer) {
                    Ok(0) => return Err(Exit::Closed),
                    Ok(read) => read,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => return Err(Exit::Io(error)),
                };
                let input = &read_buffer[..read];
                let handled = match tls.as_deref_mut() {
                    None => slot.session.handle_input(input, events).map_err(|error| Exit::Session(error.to_string())),
                    Some(tls) => handle_tls_input(tls, input, now, &mut slot.session, events, accounting),
                };
                accounting.handle_events(slot, events, now);
                handled?;
                if slot.session.is_closing() {
                    return Err(Exit::ServerClosed);
                }
                if tls.as_deref().is_some_and(TlsConnection::peer_closed) {
                    return Err(Exit::Closed);
                }
                if slot.up {
                    slot.connect_deadline_us = 0;
                }
                if read < read_buffer.len() {
                    // A short read took all the socket had; new bytes raise a new edge.
                    break;
                }
            }
            write_out(&mut slot.session, tls.as_deref_mut(), &mut stream)
        })();
        slot.stream = Some(stream);
        slot.tls = tls;
        result
    }

    /// Writes the connections that have something queued since their last visit.
    fn write_queued(&mut self, now: u64) {
        for index in std::mem::take(&mut self.to_write) {
            let slot = &mut self.slots[index];
            slot.queued_to_write = false;
            if !slot.tcp_connected {
                continue;
            }
            let Some(stream) = slot.stream.as_mut() else { continue };
            if let Err(exit) = write_out(&mut slot.session, slot.tls.as_deref_mut(), stream) {
                self.end(index, exit, now);
            }
        }
    }

    fn queue_write(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if !slot.queued_to_write && slot.stream.is_some() {
            slot.queued_to_write = true;
            self.to_write.push(index);
        }
    }

    /// A connection ended: close it, count why, and schedule what comes next (a reconnect after a backoff, at
    /// once after a storm drop, nothing when the core stops).
    fn end(&mut self, index: usize, exit: Exit, now: u64) {
        let slot = &mut self.slots[index];
        // A handshake that never finished once bytes went through the socket counts as a failure (a stop or a
        // storm drop in the middle of one does not).
        if let Some(tls) = slot.tls.take()
            && tls.is_handshaking()
            && (tls.bytes_exchanged() || matches!(exit, Exit::Tls(_)))
            && !matches!(exit, Exit::Stopped | Exit::Dropped)
            && let Some(stats) = self.accounting.tls.as_mut()
        {
            stats.record_failure();
        }
        // Closing the socket also takes it out of the epoll set.
        drop(slot.stream.take());
        slot.tcp_connected = false;
        slot.connect_deadline_us = 0;
        slot.session.handle_disconnected();
        let was_up = slot.up;
        if was_up {
            slot.up = false;
            self.accounting.connections_up -= 1;
        }
        let phase = if was_up { "io" } else { "connect" };
        if !was_up && !matches!(exit, Exit::Stopped | Exit::Dropped) {
            self.accounting.connect_errors += 1;
        }
        match &exit {
            Exit::Stopped => return,
            Exit::Dropped => return self.connect(index, now),
            Exit::ConnectFailed(error) | Exit::Io(error) => {
                self.accounting.count_error(format!("{phase}/{}", io_error_name(error)));
            }
            Exit::Closed => self.accounting.count_error(format!("{phase}/closed")),
            Exit::ServerClosed => {}
            Exit::Tls(error) => self.accounting.count_error(format!("{phase}/tls/{}", error.name())),
            Exit::Session(text) => {
                self.accounting.count_error(format!("{phase}/protocol"));
                if self.accounting.errors.len() < 64 {
                    self.accounting.count_error(format!("{phase}/protocol: {text}"));
                }
            }
        }
        if self.stopping {
            return;
        }
        let slot = &mut self.slots[index];
        slot.failures = if was_up { 1 } else { slot.failures.saturating_add(1) };
        let ceiling_ms = (BACKOFF_FIRST_MS << slot.failures.min(16)).min(BACKOFF_CAP_MS);
        let delay_ms = self.rng.gen_range(ceiling_ms / 2..=ceiling_ms);
        slot.retry_pending = true;
        self.retries.push(Reverse((now + delay_ms * 1_000, index)));
    }

    fn bring_everyone_online(&mut self, now: u64) {
        let mut any = false;
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if !slot.want_online {
                slot.want_online = true;
                any = true;
                self.connect(index, now);
            }
        }
        if any {
            self.accounting.offline_back_at_us = Some(now);
        }
    }

    fn start_storm(&mut self, now: u64) {
        let up_before = self.accounting.connections_up;
        let mut dropped = 0;
        for index in 0..self.slots.len() {
            if self.slots[index].up
                && workload_at(&self.workloads, self.plan.scenario, index) == Scenario::ReconnectStorm
                && in_share(index, self.plan.storm_share)
            {
                dropped += 1;
                self.end(index, Exit::Dropped, now);
            }
        }
        self.accounting.storm = Some(Storm { dropped_at_us: now, dropped, up_before, recovered_at_us: None });
    }

    fn send_one(&mut self, scheduled_us: u64, rng: &mut SmallRng) {
        let senders: usize = self.senders.iter().map(ExactSizeIterator::len).sum();
        if senders == 0 {
            return;
        }
        // Pick an online-minded sender with contacts among the sending users; a few tries, then the tick's send
        // is skipped and counted.
        let sender = (0..16)
            .map(|_| nth_sender(&self.senders, rng.gen_range(0..senders)))
            .find(|&index| self.slots[index].want_online && self.graph.contact_count(index) > 0);
        let Some(sender) = sender else {
            self.accounting.count_error("send/no_online_sender".into());
            return;
        };
        let nth = rng.gen_range(0..self.graph.contact_count(sender));
        let Some(recipient) = self.graph.contact(sender, nth) else { return };
        let recipient_offline = !self.slots[recipient].want_online;
        let sender_user = self.slots[sender].session.user();
        let recipient_user = self.slots[recipient].session.user();
        let body = self.accounting.ledger.handle_send(sender_user, recipient_user, scheduled_us, recipient_offline);
        match self.slots[sender].session.try_queue_send(body) {
            Ok(_) => self.queue_write(sender),
            Err(_) => {
                self.accounting.ledger.handle_send_abandoned(MessageKey::from(&body));
                self.accounting.count_error("send/backlog_full".into());
            }
        }
    }

    /// Every timer slice: keepalives and connect timeouts of the next fiftieth of the slots, so that each
    /// slot is looked at once a second.
    fn check_timers_slice(&mut self, now: u64) {
        if self.slots.is_empty() {
            return;
        }
        let count = self.slots.len().div_ceil(TIMER_SLICES_PER_SECOND as usize);
        for _ in 0..count {
            let index = self.timer_cursor;
            self.timer_cursor = (self.timer_cursor + 1) % self.slots.len();
            let slot = &mut self.slots[index];
            if slot.up {
                slot.session.handle_timeout(now);
                if !slot.session.transmit().is_empty() {
                    self.queue_write(index);
                }
            } else if slot.connect_deadline_us != 0 && now >= slot.connect_deadline_us {
                self.end(index, Exit::Io(io::Error::from(io::ErrorKind::TimedOut)), now);
            }
        }
    }

    /// Once a second: a progress report.
    fn report_progress(&mut self, reports: &SyncSender<CoreReport>) {
        let accounting = &mut self.accounting;
        let report = CoreReport::Progress(Box::new(CoreProgress {
            core_index: self.core_index,
            counters: accounting.counters(),
            interval_ack: std::mem::take(&mut accounting.interval_ack),
            interval_delivery: std::mem::take(&mut accounting.interval_delivery),
        }));
        // Never block the loop: a progress report the main thread has no room for is dropped.
        let _ = reports.try_send(report);
    }

    /// The end of the run: every connection says goodbye (best effort) and closes.
    fn close_all(&mut self) {
        self.stopping = true;
        let now = now_us();
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if let Some(stream) = slot.stream.as_ref() {
                if slot.tcp_connected {
                    say_goodbye(&mut slot.session, slot.tls.as_deref_mut(), stream);
                }
                self.end(index, Exit::Stopped, now);
            }
        }
    }

    fn final_report(&mut self) -> CoreFinal {
        let accounting = &mut self.accounting;
        let storm = accounting.storm.take();
        CoreFinal {
            core_index: self.core_index,
            counters: accounting.counters(),
            connections_peak: accounting.connections_peak,
            ledger: accounting.ledger.summary(),
            latency_ack: std::mem::take(&mut accounting.latency_ack),
            latency_delivery: std::mem::take(&mut accounting.latency_delivery),
            latency_offline_delivery: std::mem::take(&mut accounting.latency_offline_delivery),
            errors: std::mem::take(&mut accounting.errors),
            ramp_done_at_us: accounting.ramp_done_at_us,
            storm_recovery_us: storm
                .as_ref()
                .and_then(|storm| storm.recovered_at_us.map(|at| at.saturating_sub(storm.dropped_at_us))),
            storm_dropped: storm.as_ref().map_or(0, |storm| storm.dropped),
            offline_drain_us: match (accounting.offline_back_at_us, accounting.offline_last_delivery_us) {
                (Some(back), Some(last)) if last >= back => Some(last - back),
                (Some(_), _) => Some(0),
                _ => None,
            },
            tls: accounting.tls.take(),
        }
    }
}

/// Whether a connecting socket is connected now (`Ok(false)`: not yet), or why its connect failed.
fn connect_result(slot: &Slot) -> io::Result<bool> {
    let Some(stream) = slot.stream.as_ref() else { return Ok(false) };
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes what the session has queued until it is all out or the socket is full.
fn write_out(session: &mut Driver, mut tls: Option<&mut TlsConnection>, stream: &mut TcpStream) -> Result<(), Exit> {
    loop {
        let outbound = match tls.as_deref_mut() {
            None => session.transmit(),
            Some(tls) => {
                seal(session, tls);
                tls.transmit()
            }
        };
        if outbound.is_empty() {
            return Ok(());
        }
        match stream.write(outbound) {
            Ok(written) => match tls.as_deref_mut() {
                None => session.handle_transmitted(written),
                Some(tls) => tls.handle_transmitted(written),
            },
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(Exit::Io(error)),
        }
    }
}

/// Moves what the session has queued into TLS (as much as TLS takes), to go out as ciphertext.
fn seal(session: &mut Driver, tls: &mut TlsConnection) {
    let plaintext = session.transmit();
    if !plaintext.is_empty() {
        let taken = tls.write_plaintext(plaintext);
        session.handle_transmitted(taken);
    }
}

/// Ciphertext in, plaintext on to the driver; a handshake that finishes is counted.
fn handle_tls_input(
    tls: &mut TlsConnection,
    input: &[u8],
    now: u64,
    session: &mut Driver,
    events: &mut Vec<SessionEvent>,
    accounting: &mut Accounting,
) -> Result<(), Exit> {
    match tls.handle_input(input, now, |plaintext| session.handle_input(plaintext, events)) {
        Ok(handshake) => {
            if let (Some(done), Some(stats)) = (handshake, accounting.tls.as_mut()) {
                stats.record(done);
            }
            Ok(())
        }
        Err(TlsInputError::Tls(error)) => Err(Exit::Tls(error)),
        Err(TlsInputError::Plaintext(error)) => Err(Exit::Session(error.to_string())),
    }
}

/// Best effort at the end of a run: queues the driver's goodbye (XMPP `</stream:stream>`; nothing for the native
/// protocol) and, with TLS, close_notify, and writes them with one non-blocking send before the socket is closed,
/// so a server ends the session at once instead of keeping it for a resumption that will not come. Whatever does
/// not fit is dropped.
fn say_goodbye(session: &mut Driver, tls: Option<&mut TlsConnection>, stream: &TcpStream) {
    session.handle_close();
    let bytes = match tls {
        None => session.transmit(),
        Some(tls) => {
            seal(session, tls);
            tls.handle_close();
            tls.transmit()
        }
    };
    if bytes.is_empty() {
        return;
    }
    // SAFETY: a connected socket fd that `stream` owns for the whole call, and a buffer valid for `bytes.len()`.
    let _ = unsafe {
        libc::send(stream.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
}

/// A non-blocking TCP socket bound to `source` (port chosen at connect time) and connecting to `target`.
fn open_socket(source: Ipv4Addr, target: SocketAddr) -> io::Result<Socket> {
    let domain = if target.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if target.is_ipv4() {
        let enable: libc::c_int = 1;
        // SAFETY: a valid socket fd, option pointer and length of a c_int that outlives the call.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&enable as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => Ok(socket),
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(error) => Err(error),
    }
}
