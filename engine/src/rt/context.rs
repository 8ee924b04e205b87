//! One core's runtime context, shared by the core's tasks (never across cores): the shard, the sockets of its
//! connections and their readiness, the shared read buffer, its TLS state, the wake-ups of its tasks and the
//! work queued for them, and `dispatch`, which carries out what the last shard calls asked for (through
//! `driver::drive`, with `rt::effects`). Also what crosses cores beside shard
//! messages (`MeshBatch`, `Adopt`) and the process-wide `Coordination`.
//!
//! Depends on no task module (`conn`, `log`, `core`, `device_records`): they depend on it, which keeps the
//! runtime free of cycles. (`effects` depends on it too, and it names `effects` only to make one.)

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use ringline_core::limits::READ_BUFFER_BYTES;
use ringline_core::shard::{ConnId, DeviceRecord, Handoff, Now, Shard, ShardMsg};
use ringline_core::tls::TlsSession;

use crate::data_dir::DeviceLog;
use crate::driver;

use super::admin_inbox::AdminInbox;
use super::effects::CoreEffects;
use super::linger::Lingering;
use super::metrics::{CoreMetrics, MetricsHub};
use super::notify::Notify;
use super::pin_sender::PinSender;
use super::readiness::Readiness;
use super::shutdown::CoreShutdownState;
use super::sockets::SocketTable;
use super::tls::CoreTls;
use super::tls_reload::TlsCertificates;
use super::token::Token;

/// A socket moving to its user's home core, with what that core needs to adopt it.
#[derive(Debug)]
pub struct Adopt {
    pub fd: OwnedFd,
    pub handoff: Handoff,
    /// A TLS connection's session (keys, an incomplete record, records not yet written): it moves with the
    /// socket, so the home core goes on where this one stopped. The plaintext decrypted here and not yet
    /// processed is in `handoff.leftover`.
    pub tls: Option<Box<TlsSession>>,
}

/// What a core needs to serve TLS.
pub struct CoreTlsSetup {
    pub listener: socket2::Socket,
    pub certificates: Arc<TlsCertificates>,
    pub handshake_timeout: Duration,
}

/// What one core sends another in one channel slot.
#[derive(Debug, Default)]
pub struct MeshBatch {
    pub messages: Vec<ShardMsg>,
    pub adopts: Vec<Adopt>,
    /// When the pump handed the batch to the channel (for the hop latency metric).
    pub sent_at: Option<Instant>,
}

/// The channel ends of one core: to and from every other core (`None` at its own index).
pub struct MeshEnds {
    pub senders: Vec<Option<SharedSender<MeshBatch>>>,
    pub receivers: Vec<Option<SharedReceiver<MeshBatch>>>,
}

/// Process-wide state every core reads: the shutdown flag and the quiescence count.
#[derive(Debug)]
pub struct Coordination {
    pub shutdown: Arc<AtomicBool>,
    pub quiesced: AtomicUsize,
    pub cores: usize,
    pub shutdown_grace: Duration,
    pub metrics: Arc<MetricsHub>,
    /// Each core's shutdown progress, for the main thread (`rt::shutdown`).
    pub shutdown_states: Vec<CoreShutdownState>,
    /// Where new device generations go, one file per core (`rt::device_records` writes it).
    pub device_log: Arc<DeviceLog>,
    /// Where the PINs the shards issue go (a worker thread; handing one over never waits).
    pub pin_sender: PinSender,
}

/// The state of one core's runtime, shared by its tasks (never across cores).
pub struct CoreContext {
    pub shard: RefCell<Shard>,
    /// The one read buffer of the core, lent to each read in turn.
    pub read_buffer: RefCell<Box<[u8]>>,
    pub sockets: RefCell<SocketTable>,
    pub lingering: RefCell<Lingering>,
    pub readiness: Readiness,
    listener: RefCell<Option<OwnedFd>>,
    /// The listener may have connections waiting (an edge was seen, or the tick asks for a retry).
    pub accept_pending: Cell<bool>,
    tls_listener: RefCell<Option<OwnedFd>>,
    /// The same for the TLS listener.
    pub tls_accept_pending: Cell<bool>,
    /// TLS settings, handshakes in progress and counters, if the engine serves TLS.
    pub tls: Option<CoreTls>,
    /// Wakes the I/O loop: epoll has events, a connection has news, or a socket arrived.
    pub io_wake: Notify,
    /// The I/O loop took every event epoll had: the readiness watcher may arm again.
    pub epoll_drained: Notify,
    pub(super) pumps: Vec<Notify>,
    pub(super) adopts_out: RefCell<Vec<Vec<Adopt>>>,
    /// Set when the shard has log records waiting for the log task.
    pub log_wake: Notify,
    /// Log segments a compaction freed, for the log task to delete (at most the segments on disk).
    pub segments_to_delete: RefCell<Vec<u64>>,
    /// Set when device records wait in `device_records_out` for the device-record task.
    pub device_wake: Notify,
    /// Device generations to record, oldest first (at most `DEVICE_RECORDS_PENDING_MAX`: the shard's limit).
    pub device_records_out: RefCell<Vec<DeviceRecord>>,
    /// Admin requests from the control socket for the users whose home is this core, and their replies.
    pub admin: AdminInbox,
    started: Instant,
    pub metrics: CoreMetrics,
    coordination: Arc<Coordination>,
}

impl CoreContext {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        shard: Shard,
        cores: usize,
        readiness: Readiness,
        listeners: (OwnedFd, Option<OwnedFd>),
        tls: Option<CoreTls>,
        metrics: CoreMetrics,
        admin: AdminInbox,
        coordination: Arc<Coordination>,
    ) -> Self {
        let (listener, tls_listener) = listeners;
        Self {
            shard: RefCell::new(shard),
            read_buffer: RefCell::new(vec![0u8; READ_BUFFER_BYTES].into_boxed_slice()),
            sockets: RefCell::new(SocketTable::default()),
            lingering: RefCell::new(Lingering::default()),
            readiness,
            listener: RefCell::new(Some(listener)),
            accept_pending: Cell::new(true),
            tls_accept_pending: Cell::new(tls_listener.is_some()),
            tls_listener: RefCell::new(tls_listener),
            tls,
            io_wake: Notify::default(),
            epoll_drained: Notify::default(),
            pumps: (0..cores).map(|_| Notify::default()).collect(),
            adopts_out: RefCell::new((0..cores).map(|_| Vec::new()).collect()),
            log_wake: Notify::default(),
            segments_to_delete: RefCell::new(Vec::new()),
            device_wake: Notify::default(),
            device_records_out: RefCell::new(Vec::new()),
            admin,
            started: Instant::now(),
            metrics,
            coordination,
        }
    }

    /// Once the shutdown began: tells the main thread's watchdog what is left (`rt::shutdown`).
    pub fn record_shutdown_progress(&self) {
        let shard = self.shard.borrow();
        if shard.is_shutting_down() {
            self.coordination.shutdown_states[shard.id().index()].record_left(shard.shutdown_left());
        }
    }

    pub fn now(&self) -> Now {
        let wall_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_micros() as u64);
        Now { mono_us: self.started.elapsed().as_micros() as u64, wall_us }
    }

    /// Carries out what the last shard calls asked for (`driver::drive`): hand PINs to the PIN sender, queue
    /// connections with news for the I/O loop, start pumps, wake the log and device-record tasks.
    pub fn dispatch(&self) {
        driver::drive(&mut self.shard.borrow_mut(), &mut self.effects());
    }

    /// The effects of this core, for one drive (`driver`'s steps take them).
    pub fn effects(&self) -> CoreEffects<'_> {
        CoreEffects::new(self)
    }

    /// Where the PINs the shard issues go.
    pub(super) fn pin_sender(&self) -> &PinSender {
        &self.coordination.pin_sender
    }

    /// Serves `fd` (with its TLS session, for a TLS connection) as the shard's connection `conn` from now on.
    pub fn add_connection(&self, conn: ConnId, fd: OwnedFd, tls: Option<Box<TlsSession>>) {
        if !self.watch_socket(conn, fd, tls) {
            self.shard.borrow_mut().handle_closed(conn);
        }
    }

    /// `add_connection`, for a caller that holds the shard already (the drain, adopting sockets).
    pub fn attach_connection(&self, shard: &mut Shard, conn: ConnId, fd: OwnedFd, tls: Option<Box<TlsSession>>) {
        if !self.watch_socket(conn, fd, tls) {
            shard.handle_closed(conn);
        }
    }

    /// Puts `fd` in the socket table and watches it. Returns false if it cannot serve it: the socket is closed
    /// then, and the caller tells the shard (`handle_closed`).
    fn watch_socket(&self, conn: ConnId, fd: OwnedFd, tls: Option<Box<TlsSession>>) -> bool {
        if tls.is_some() && self.tls.is_none() {
            // Every core serves TLS or none does; a TLS connection cannot arrive here otherwise.
            tracing::warn!("a TLS connection on a core without TLS; closing it");
            drop(fd);
            return false;
        }
        let raw = fd.as_raw_fd();
        self.sockets.borrow_mut().insert(conn, fd, tls);
        if let Some(core_tls) = &self.tls {
            let sockets = self.sockets.borrow();
            if let Some(session) = sockets.tls(conn) {
                core_tls.session_added(conn, session, &sockets);
            }
        }
        let watched = match self.readiness.register_connection(raw, Token::Connection(conn)) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot watch a connection's socket; closing it");
                let removed = self.sockets.borrow_mut().remove(conn);
                if let (Some((_, Some(session))), Some(core_tls)) = (&removed, &self.tls) {
                    core_tls.session_removed(session);
                }
                false
            }
        };
        self.io_wake.notify();
        watched
    }

    /// The core's listening socket, while it accepts.
    pub fn listener(&self) -> Option<std::os::fd::RawFd> {
        self.listener.borrow().as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The core's TLS listening socket, if it serves TLS and still accepts.
    pub fn tls_listener(&self) -> Option<std::os::fd::RawFd> {
        self.tls_listener.borrow().as_ref().map(AsRawFd::as_raw_fd)
    }

    pub(super) fn close_listener(&self) {
        drop(self.listener.borrow_mut().take());
        self.accept_pending.set(false);
        drop(self.tls_listener.borrow_mut().take());
        self.tls_accept_pending.set(false);
    }

    pub fn send_adopt(&self, adopt: Adopt) {
        let peer = adopt.handoff.to.index();
        self.adopts_out.borrow_mut()[peer].push(adopt);
        self.pumps[peer].notify();
    }
}
