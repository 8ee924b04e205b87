//! One agent core: a glommio LocalExecutor pinned to a CPU, holding this core's share of the agent's users, one
//! small task per connection plus one driver task. Owns the core's sockets, its sessions, its ledger and its
//! histograms; shares nothing with other cores (it reports to the agent's main thread over a bounded channel
//! and reads one stop flag).
//!
//! Memory per connection is kept small: a connection task holds its socket and nothing else; its session lives
//! in the core's slot table; reads go into the one per-core read buffer while the task is polled (glommio's
//! unbuffered TcpStream reads with a non-blocking recv and otherwise waits on a poll, holding no buffer), and a
//! partial frame is the only inbound bytes kept between reads. Timers are per core (the driver ticks), not per
//! connection, except while a connection waits to start or to retry.
//!
//! With TLS (`--tls`) a connection's task also holds its `TlsConnection` (sans-IO, `loadgen::tls`) between the
//! socket and the driver: ciphertext is read into the same per-core buffer and handed to the driver as
//! plaintext within the same poll. Each user keeps its `SessionTickets` in its slot between connections, so
//! a reconnect resumes. A plaintext run takes none of these paths.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::future::poll_fn;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

use loadgen::contacts::{ContactGraph, in_share};
use loadgen::control::{AgentCounters, RunPlan, Scenario};
use loadgen::driver::{AnyDriver, ChatDriver, DriverUser};
use loadgen::error_kind::io_error_name;
use loadgen::latency::LatencyHistogram;
use loadgen::ledger::{DeliveryVerdict, Ledger, LedgerSummary, MessageKey};
use loadgen::limits::{CORE_READ_BUFFER_BYTES, SENDS_PER_TICK_MAX};
use loadgen::schedule::SendSchedule;
use loadgen::session::SessionEvent;
use loadgen::tls::{HandshakeStats, SessionTickets, TlsClient, TlsConnection, TlsError, TlsInputError};

/// The protocol driver connections speak (`--protocol`). The runtime calls only methods that
/// `loadgen::driver::ChatDriver` has.
type Driver = AnyDriver;
use loadgen::source_addr::SourceAddresses;

/// Reads one connection may do per poll before it yields to the others.
const READS_PER_POLL: usize = 16;
/// How long the driver sleeps between ticks while it has sends to release, and otherwise.
const TICK_SENDING: Duration = Duration::from_millis(1);
const TICK_IDLE: Duration = Duration::from_millis(20);
/// After a stop request the core drains this long at most.
const STOP_DRAIN_US: u64 = 2_000_000;
/// How long the core waits for its connection tasks to close their sockets at the end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Reconnect backoff: jittered exponential from the first to the cap.
const BACKOFF_FIRST_MS: u64 = 50;
const BACKOFF_CAP_MS: u64 = 5_000;

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
    pub ramp_per_s: f64,
    pub rate_per_s: f64,
    /// The agent's TLS client (`--tls`), shared by its cores.
    pub tls: Option<Arc<TlsClient>>,
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

/// Microseconds since the Unix epoch (CLOCK_REALTIME): the clock every agent on a host shares.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// One user's connection as the core tracks it.
struct Slot {
    session: Driver,
    waker: Option<Waker>,
    want_online: bool,
    up: bool,
    ever_up: bool,
    drop_requested: bool,
    /// The user's TLS sessions between its connections (with TLS, from its first connect on).
    tls_tickets: Option<Arc<SessionTickets>>,
}

impl Slot {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn register(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }
}

#[derive(Default)]
struct Storm {
    dropped_at_us: u64,
    dropped: u64,
    up_before: u64,
    recovered_at_us: Option<u64>,
}

/// Counters and histograms of a core.
struct Accounting {
    ledger: Ledger,
    latency_ack: LatencyHistogram,
    latency_delivery: LatencyHistogram,
    latency_offline_delivery: LatencyHistogram,
    interval_ack: LatencyHistogram,
    interval_delivery: LatencyHistogram,
    errors: BTreeMap<String, u64>,
    connect_errors: u64,
    connections_up: u64,
    connections_peak: u64,
    established: u64,
    reconnects: u64,
    established_expected: u64,
    ramp_done_at_us: Option<u64>,
    storm: Option<Storm>,
    offline_back_at_us: Option<u64>,
    offline_last_delivery_us: Option<u64>,
    /// TLS handshakes (with TLS).
    tls: Option<HandshakeStats>,
}

impl Accounting {
    fn count_error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    fn counters(&self) -> AgentCounters {
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

    fn handle_events(&mut self, slot: &mut Slot, events: &mut Vec<SessionEvent>, now_us: u64) {
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

struct CoreState {
    slots: Vec<Slot>,
    read_buffer: Box<[u8]>,
    events: Vec<SessionEvent>,
    accounting: Accounting,
    stopping: bool,
    tasks_alive: usize,
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
    sources: SourceAddresses,
    source_offset: u64,
    ramp_per_s: f64,
    rate_per_s: f64,
    core_index: usize,
    tls: Option<Arc<TlsClient>>,
    state: RefCell<CoreState>,
}

/// Runs one core until its run is over; called on the core's executor.
pub async fn run_core(core_plan: CorePlan, stop: Arc<AtomicBool>, reports: SyncSender<CoreReport>) {
    let plan = core_plan.plan.clone();
    let users = core_plan.users.len();
    let offline_share = if plan.scenario == Scenario::Offline { plan.offline_share } else { 0.0 };
    let client_msg_id_base = (plan.run_id & 0xffff_ffff) << 32;
    let slots: Vec<Slot> = core_plan
        .users
        .iter()
        .enumerate()
        .map(|(index, user)| Slot {
            session: Driver::new(user, plan.body_bytes, plan.ping_interval_s * 1_000_000, client_msg_id_base),
            waker: None,
            want_online: !in_share(index, offline_share),
            up: false,
            ever_up: false,
            drop_requested: false,
            tls_tickets: None,
        })
        .collect();
    let established_expected = slots.iter().filter(|slot| slot.want_online).count() as u64;
    let accounting = Accounting {
        ledger: Ledger::new(plan.run_id),
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
        tls: core_plan.tls.as_ref().map(|_| HandshakeStats::new()),
    };
    let core = Rc::new(Core {
        graph: ContactGraph::new(users, plan.targets.len(), plan.contacts_per_user),
        plan,
        sources: core_plan.sources,
        source_offset: core_plan.source_offset,
        ramp_per_s: core_plan.ramp_per_s,
        rate_per_s: core_plan.rate_per_s,
        core_index: core_plan.core_index,
        tls: core_plan.tls,
        state: RefCell::new(CoreState {
            slots,
            read_buffer: vec![0u8; CORE_READ_BUFFER_BYTES].into_boxed_slice(),
            events: Vec::new(),
            accounting,
            stopping: false,
            tasks_alive: users,
        }),
    });
    for index in 0..users {
        glommio::spawn_local(run_connection(core.clone(), index)).detach();
    }
    drive_core(&core, &stop, &reports).await;
    let final_report = {
        let mut state = core.state.borrow_mut();
        let state = &mut *state;
        let accounting = &mut state.accounting;
        let storm = accounting.storm.take();
        CoreFinal {
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
    };
    // The main thread waits for this; blocking the executor at the very end is fine.
    let _ = reports.send(CoreReport::Final(Box::new(final_report)));
}

async fn drive_core(core: &Rc<Core>, stop: &AtomicBool, reports: &SyncSender<CoreReport>) {
    let plan = &core.plan;
    let sending = matches!(plan.scenario, Scenario::Chat | Scenario::Offline | Scenario::ReconnectStorm);
    let rate = if sending { core.rate_per_s } else { 0.0 };
    let seed = plan.run_id ^ ((core.core_index as u64 + 1) * 0x9E37_79B9);
    let mut schedule = SendSchedule::new(plan.arrivals, rate, plan.hold_start_at_us, plan.hold_end_at_us, seed);
    let mut rng = SmallRng::seed_from_u64(seed.rotate_left(17));
    let hold_us = plan.hold_end_at_us.saturating_sub(plan.hold_start_at_us);
    let mut offline_back_at_us = (plan.scenario == Scenario::Offline).then_some(plan.hold_start_at_us + hold_us / 2);
    let mut storm_at_us = (plan.scenario == Scenario::ReconnectStorm).then_some(plan.hold_start_at_us + hold_us / 3);
    let mut next_second_us = now_us() + 1_000_000;
    let mut stop_deadline_us: Option<u64> = None;
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
            core.bring_everyone_online(now);
        }
        if let Some(at) = storm_at_us
            && now >= at
        {
            storm_at_us = None;
            if stop_deadline_us.is_none() {
                core.start_storm(now);
            }
        }
        let mut released = 0;
        while released < SENDS_PER_TICK_MAX {
            let Some(scheduled_us) = schedule.poll_due(now) else { break };
            released += 1;
            core.send_one(scheduled_us, &mut rng);
        }
        if now >= next_second_us {
            next_second_us = now + 1_000_000;
            core.keepalive_and_report(now, reports);
        }
        let hold_over = now >= plan.hold_end_at_us || stop_deadline_us.is_some();
        if hold_over {
            let settled = core.state.borrow().accounting.ledger.outstanding() == 0;
            let deadline = stop_deadline_us.unwrap_or(plan.drain_deadline_us).min(plan.drain_deadline_us);
            if settled || now >= deadline {
                break;
            }
        }
        let tick = if schedule.poll_timeout().is_some() { TICK_SENDING } else { TICK_IDLE };
        glommio::timer::sleep(tick).await;
    }
    // Close every connection and wait (bounded) for the tasks to let go of their sockets.
    {
        let mut state = core.state.borrow_mut();
        state.stopping = true;
        for slot in &mut state.slots {
            slot.wake();
        }
    }
    let waited_since = std::time::Instant::now();
    while core.state.borrow().tasks_alive > 0 && waited_since.elapsed() < CLOSE_WAIT {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

impl Core {
    fn slot_start_us(&self, index: usize) -> u64 {
        self.plan.start_at_us + (index as f64 * 1e6 / self.ramp_per_s) as u64
    }

    fn bring_everyone_online(&self, now: u64) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let mut any = false;
        for slot in &mut state.slots {
            if !slot.want_online {
                slot.want_online = true;
                slot.wake();
                any = true;
            }
        }
        if any {
            state.accounting.offline_back_at_us = Some(now);
        }
    }

    fn start_storm(&self, now: u64) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let mut dropped = 0;
        for (index, slot) in state.slots.iter_mut().enumerate() {
            if slot.up && in_share(index, self.plan.storm_share) {
                slot.drop_requested = true;
                slot.wake();
                dropped += 1;
            }
        }
        let up_before = state.accounting.connections_up;
        state.accounting.storm = Some(Storm { dropped_at_us: now, dropped, up_before, recovered_at_us: None });
    }

    fn send_one(&self, scheduled_us: u64, rng: &mut SmallRng) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let users = state.slots.len();
        if users == 0 {
            return;
        }
        // Pick an online-minded sender with contacts; a few tries, then the tick's send is skipped and counted.
        let sender = (0..16)
            .map(|_| rng.gen_range(0..users))
            .find(|&index| state.slots[index].want_online && self.graph.contact_count(index) > 0);
        let Some(sender) = sender else {
            state.accounting.count_error("send/no_online_sender".into());
            return;
        };
        let nth = rng.gen_range(0..self.graph.contact_count(sender));
        let Some(recipient) = self.graph.contact(sender, nth) else { return };
        let recipient_offline = !state.slots[recipient].want_online;
        let sender_user = state.slots[sender].session.user();
        let recipient_user = state.slots[recipient].session.user();
        let body = state.accounting.ledger.handle_send(sender_user, recipient_user, scheduled_us, recipient_offline);
        match state.slots[sender].session.try_queue_send(body) {
            Ok(_) => state.slots[sender].wake(),
            Err(_) => {
                state.accounting.ledger.handle_send_abandoned(MessageKey::from(&body));
                state.accounting.count_error("send/backlog_full".into());
            }
        }
    }

    fn keepalive_and_report(&self, now: u64, reports: &SyncSender<CoreReport>) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        for slot in &mut state.slots {
            if slot.up {
                slot.session.handle_timeout(now);
                if !slot.session.transmit().is_empty() {
                    slot.wake();
                }
            }
        }
        let accounting = &mut state.accounting;
        let report = CoreReport::Progress(Box::new(CoreProgress {
            core_index: self.core_index,
            counters: accounting.counters(),
            interval_ack: std::mem::take(&mut accounting.interval_ack),
            interval_delivery: std::mem::take(&mut accounting.interval_delivery),
        }));
        // Never block the executor: a progress report the main thread has no room for is dropped.
        let _ = reports.try_send(report);
    }

    fn poll_connection(
        &self,
        cx: &mut Context<'_>,
        index: usize,
        stream: &mut TcpStream,
        welcomed: &mut bool,
        mut tls: Option<&mut TlsConnection>,
    ) -> Poll<Exit> {
        let mut state = self.state.borrow_mut();
        let CoreState { slots, read_buffer, events, accounting, stopping, .. } = &mut *state;
        let slot = &mut slots[index];
        if *stopping {
            say_goodbye(&mut slot.session, tls, stream);
            return Poll::Ready(Exit::Stopped);
        }
        if slot.drop_requested {
            return Poll::Ready(Exit::Dropped);
        }
        slot.register(cx);
        let mut reads = 0;
        loop {
            if reads == READS_PER_POLL {
                // Yield to the other connections; come back at once.
                cx.waker().wake_by_ref();
                break;
            }
            match Pin::new(&mut *stream).poll_read(cx, read_buffer) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Exit::Closed),
                Poll::Ready(Ok(read)) => {
                    reads += 1;
                    let now = now_us();
                    let input = &read_buffer[..read];
                    let result = match tls.as_deref_mut() {
                        None => {
                            slot.session.handle_input(input, events).map_err(|error| Exit::Session(error.to_string()))
                        }
                        Some(tls) => handle_tls_input(tls, input, now, &mut slot.session, events, accounting),
                    };
                    accounting.handle_events(slot, events, now);
                    if let Err(exit) = result {
                        return Poll::Ready(exit);
                    }
                    if slot.session.is_closing() {
                        return Poll::Ready(Exit::ServerClosed);
                    }
                    if tls.as_deref().is_some_and(TlsConnection::peer_closed) {
                        return Poll::Ready(Exit::Closed);
                    }
                    if slot.up && !*welcomed {
                        // Clear the handshake timeouts before the next read is submitted: a read already
                        // pending keeps the timeout it was submitted with, and would fail an idle session.
                        *welcomed = true;
                        let _ = stream.set_read_timeout(None);
                        let _ = stream.set_write_timeout(None);
                    }
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Exit::Io(error)),
                Poll::Pending => break,
            }
        }
        loop {
            let outbound = match tls.as_deref_mut() {
                None => slot.session.transmit(),
                Some(tls) => {
                    let plaintext = slot.session.transmit();
                    if !plaintext.is_empty() {
                        let taken = tls.write_plaintext(plaintext);
                        slot.session.handle_transmitted(taken);
                    }
                    tls.transmit()
                }
            };
            if outbound.is_empty() {
                break;
            }
            match Pin::new(&mut *stream).poll_write(cx, outbound) {
                Poll::Ready(Ok(written)) => match tls.as_deref_mut() {
                    None => slot.session.handle_transmitted(written),
                    Some(tls) => tls.handle_transmitted(written),
                },
                Poll::Ready(Err(error)) => return Poll::Ready(Exit::Io(error)),
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }

    /// The TLS side of a new connection of user `index` (with TLS), resuming with the user's tickets.
    fn start_tls(
        &self,
        index: usize,
        target: SocketAddr,
        connect_started_us: u64,
    ) -> Result<Option<Box<TlsConnection>>, TlsError> {
        let Some(client) = &self.tls else { return Ok(None) };
        let tickets = {
            let mut state = self.state.borrow_mut();
            let slot = &mut state.slots[index];
            slot.tls_tickets.get_or_insert_with(|| Arc::new(SessionTickets::new())).clone()
        };
        client.connect(target, &tickets, connect_started_us).map(|tls| Some(Box::new(tls)))
    }

    /// A TLS connection ended: a handshake that never finished once bytes went through the socket counts as a
    /// failure (a stop or a storm drop in the middle of one does not).
    fn account_tls_end(&self, tls: Option<&TlsConnection>, exit: &Exit) {
        let Some(tls) = tls else { return };
        let failed = tls.is_handshaking()
            && (tls.bytes_exchanged() || matches!(exit, Exit::Tls(_)))
            && !matches!(exit, Exit::Stopped | Exit::Dropped);
        if failed && let Some(stats) = self.state.borrow_mut().accounting.tls.as_mut() {
            stats.record_failure();
        }
    }

    /// Sleeps for `delay`, or less if the core stops.
    async fn sleep_or_stop(&self, index: usize, delay: Duration) {
        let stopped = poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.stopping {
                return Poll::Ready(());
            }
            state.slots[index].register(cx);
            Poll::Pending
        });
        futures_lite::future::or(glommio::timer::sleep(delay), stopped).await;
    }

    /// Waits until the user should be online; false when the core stops instead.
    async fn wait_until_wanted(&self, index: usize) -> bool {
        poll_fn(|cx| {
            let mut state = self.state.borrow_mut();
            if state.stopping {
                return Poll::Ready(false);
            }
            let slot = &mut state.slots[index];
            if slot.want_online {
                return Poll::Ready(true);
            }
            slot.register(cx);
            Poll::Pending
        })
        .await
    }

    fn source_for(&self, index: usize) -> Ipv4Addr {
        self.sources.nth(self.source_offset + index as u64)
    }
}

/// One connection's whole life: wait for its ramp slot, connect, serve, reconnect with backoff, until the end.
async fn run_connection(core: Rc<Core>, index: usize) {
    let start_in_us = core.slot_start_us(index).saturating_sub(now_us());
    core.sleep_or_stop(index, Duration::from_micros(start_in_us)).await;
    let mut rng = SmallRng::seed_from_u64(core.plan.run_id ^ (index as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut failures: u32 = 0;
    let connect_timeout = Duration::from_millis(core.plan.connect_timeout_ms);
    loop {
        if !core.wait_until_wanted(index).await {
            break;
        }
        let target = core.plan.targets[core.graph.target_of(index)];
        let connect_started_us = now_us();
        let exit = match open_socket(core.source_for(index), target) {
            Err(error) => Exit::ConnectFailed(error),
            Ok(socket) => {
                // SAFETY: the fd comes from a socket we own and hand over whole; nothing else closes it.
                let mut stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
                let _ = stream.set_write_timeout(Some(connect_timeout));
                let _ = stream.set_read_timeout(Some(connect_timeout));
                match core.start_tls(index, target, connect_started_us) {
                    Err(error) => Exit::Tls(error),
                    Ok(mut tls) => {
                        core.state.borrow_mut().slots[index].session.handle_connected(now_us());
                        let mut welcomed = false;
                        let exit = poll_fn(|cx| {
                            core.poll_connection(cx, index, &mut stream, &mut welcomed, tls.as_deref_mut())
                        })
                        .await;
                        core.account_tls_end(tls.as_deref(), &exit);
                        exit
                    }
                }
            }
        };
        let retry_after = {
            let mut state = core.state.borrow_mut();
            let CoreState { slots, accounting, .. } = &mut *state;
            let slot = &mut slots[index];
            let was_up = slot.up;
            slot.session.handle_disconnected();
            if was_up {
                slot.up = false;
                accounting.connections_up -= 1;
            }
            let phase = if was_up { "io" } else { "connect" };
            if !was_up && !matches!(exit, Exit::Stopped | Exit::Dropped) {
                accounting.connect_errors += 1;
            }
            match &exit {
                Exit::Stopped => break,
                Exit::Dropped => {
                    slot.drop_requested = false;
                    None
                }
                Exit::ConnectFailed(error) | Exit::Io(error) => {
                    accounting.count_error(format!("{phase}/{}", io_error_name(error)));
                    Some(was_up)
                }
                Exit::Closed => {
                    accounting.count_error(format!("{phase}/closed"));
                    Some(was_up)
                }
                Exit::ServerClosed => Some(was_up),
                Exit::Tls(error) => {
                    accounting.count_error(format!("{phase}/tls/{}", error.name()));
                    Some(was_up)
                }
                Exit::Session(text) => {
                    accounting.count_error(format!("{phase}/protocol"));
                    if accounting.errors.len() < 64 {
                        accounting.count_error(format!("{phase}/protocol: {text}"));
                    }
                    Some(was_up)
                }
            }
        };
        if let Some(was_up) = retry_after {
            failures = if was_up { 1 } else { failures.saturating_add(1) };
            let ceiling_ms = (BACKOFF_FIRST_MS << failures.min(16)).min(BACKOFF_CAP_MS);
            let delay_ms = rng.gen_range(ceiling_ms / 2..=ceiling_ms);
            core.sleep_or_stop(index, Duration::from_millis(delay_ms)).await;
        }
    }
    core.state.borrow_mut().tasks_alive -= 1;
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
            let plaintext = session.transmit();
            if !plaintext.is_empty() {
                let taken = tls.write_plaintext(plaintext);
                session.handle_transmitted(taken);
            }
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
