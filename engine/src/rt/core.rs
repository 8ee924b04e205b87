//! One core's runtime: the executor-side context (the shard, the wakers of its connections, the shared read
//! buffer) and the core's tasks: accepting, timers, and per peer core one pump (outbox → channel) and one
//! drain (channel → shard). Owns nothing that crosses cores except what travels in a `MeshBatch`.

use std::cell::RefCell;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream};

use crate::home::ShardId;
use crate::limits::{READ_BUFFER_BYTES, TICK_INTERVAL};
use crate::shard::{ConnId, Handoff, Now, Shard, ShardConfig, ShardMsg};

use super::conn::serve_connection;
use super::log::{CoreLog, run_log};
use super::notify::Notify;

/// A socket moving to its user's home core, with what that core needs to adopt it.
#[derive(Debug)]
pub struct Adopt {
    pub fd: OwnedFd,
    pub handoff: Handoff,
}

/// What one core sends another in one channel slot.
#[derive(Debug, Default)]
pub struct MeshBatch {
    pub messages: Vec<ShardMsg>,
    pub adopts: Vec<Adopt>,
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
}

/// The state of one core's runtime, shared by its tasks (never across cores).
pub struct CoreContext {
    pub shard: RefCell<Shard>,
    pub read_buffer: RefCell<Box<[u8]>>,
    wakers: RefCell<Vec<Option<Waker>>>,
    pumps: Vec<Notify>,
    adopts_out: RefCell<Vec<Vec<Adopt>>>,
    stop_accepting: Notify,
    /// Set when the shard has log records waiting for the log task.
    pub log_wake: Notify,
    started: Instant,
    wake_scratch: RefCell<Vec<ConnId>>,
    ready_scratch: RefCell<Vec<ShardId>>,
}

impl CoreContext {
    fn new(shard: Shard, cores: usize) -> Self {
        Self {
            shard: RefCell::new(shard),
            read_buffer: RefCell::new(vec![0u8; READ_BUFFER_BYTES].into_boxed_slice()),
            wakers: RefCell::new(Vec::new()),
            pumps: (0..cores).map(|_| Notify::default()).collect(),
            adopts_out: RefCell::new((0..cores).map(|_| Vec::new()).collect()),
            stop_accepting: Notify::default(),
            log_wake: Notify::default(),
            started: Instant::now(),
            wake_scratch: RefCell::new(Vec::new()),
            ready_scratch: RefCell::new(Vec::new()),
        }
    }

    pub fn now(&self) -> Now {
        let wall_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_micros() as u64);
        Now { mono_us: self.started.elapsed().as_micros() as u64, wall_us }
    }

    pub fn set_waker(&self, conn: ConnId, waker: &Waker) {
        let mut wakers = self.wakers.borrow_mut();
        let index = conn.index as usize;
        if wakers.len() <= index {
            wakers.resize(index + 1, None);
        }
        match &wakers[index] {
            Some(existing) if existing.will_wake(waker) => {}
            _ => wakers[index] = Some(waker.clone()),
        }
    }

    pub fn clear_waker(&self, conn: ConnId) {
        if let Some(slot) = self.wakers.borrow_mut().get_mut(conn.index as usize) {
            *slot = None;
        }
    }

    /// Carries out what the last shard calls asked for: wake connections, start pumps.
    pub fn dispatch(&self) {
        let mut woken = self.wake_scratch.borrow_mut();
        let mut ready = self.ready_scratch.borrow_mut();
        {
            let mut shard = self.shard.borrow_mut();
            shard.poll_wakeups(&mut woken);
            shard.poll_mesh_ready(&mut ready);
            if shard.wal_pending() {
                self.log_wake.notify();
            }
        }
        let wakers = self.wakers.borrow();
        for conn in woken.drain(..) {
            if let Some(Some(waker)) = wakers.get(conn.index as usize) {
                waker.wake_by_ref();
            }
        }
        for peer in ready.drain(..) {
            self.pumps[peer.index()].notify();
        }
    }

    pub fn send_adopt(&self, adopt: Adopt) {
        let peer = adopt.handoff.to.index();
        self.adopts_out.borrow_mut()[peer].push(adopt);
        self.pumps[peer].notify();
    }
}

/// Runs one core until the process shuts down.
pub async fn run_core(
    id: ShardId,
    config: ShardConfig,
    listener: socket2::Socket,
    mesh: MeshEnds,
    coordination: Arc<Coordination>,
    log: CoreLog,
) {
    let cores = usize::from(config.cores);
    let mut shard = Shard::new(id, config);
    shard.recover(log.recovered, log.segment_bytes);
    let core = Rc::new(CoreContext::new(shard, cores));
    glommio::spawn_local(run_log(core.clone(), log.dir)).detach();
    // SAFETY: the listener socket was made by this process for this core and is handed over whole.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };

    let (senders, receivers) = connect_mesh(mesh).await;
    for (peer, sender) in senders.into_iter().enumerate() {
        if let Some(sender) = sender {
            glommio::spawn_local(pump(core.clone(), ShardId(peer as u16), sender)).detach();
        }
    }
    for (peer, receiver) in receivers.into_iter().enumerate() {
        if let Some(receiver) = receiver {
            glommio::spawn_local(drain(core.clone(), ShardId(peer as u16), receiver)).detach();
        }
    }
    let accepting = glommio::spawn_local(accept_loop(core.clone(), listener));
    tick_loop(&core, &coordination).await;
    accepting.await;
    super::log::log_summary(&core.shard.borrow());
}

/// Connects this core's channel ends; each waits for its peer, so all connect concurrently.
async fn connect_mesh(
    mesh: MeshEnds,
) -> (Vec<Option<ConnectedSender<MeshBatch>>>, Vec<Option<ConnectedReceiver<MeshBatch>>>) {
    let sending: Vec<_> =
        mesh.senders.into_iter().map(|end| end.map(|end| glommio::spawn_local(end.connect()))).collect();
    let receiving: Vec<_> =
        mesh.receivers.into_iter().map(|end| end.map(|end| glommio::spawn_local(end.connect()))).collect();
    let mut senders = Vec::with_capacity(sending.len());
    for task in sending {
        senders.push(match task {
            Some(task) => Some(task.await),
            None => None,
        });
    }
    let mut receivers = Vec::with_capacity(receiving.len());
    for task in receiving {
        receivers.push(match task {
            Some(task) => Some(task.await),
            None => None,
        });
    }
    (senders, receivers)
}

/// Moves this core's outbox for `peer` into the channel, a batch per slot. Waits when the channel is full:
/// that is the backpressure that pauses the connections filling the outbox.
async fn pump(core: Rc<CoreContext>, peer: ShardId, sender: ConnectedSender<MeshBatch>) {
    loop {
        core.pumps[peer.index()].wait().await;
        loop {
            let mut batch = MeshBatch::default();
            let more = core.shard.borrow_mut().poll_mesh(peer, &mut batch.messages, core.now());
            batch.adopts = std::mem::take(&mut core.adopts_out.borrow_mut()[peer.index()]);
            core.dispatch();
            if batch.messages.is_empty() && batch.adopts.is_empty() {
                break;
            }
            if sender.send(batch).await.is_err() {
                // The peer core is gone (process exit): nothing more can reach it.
                return;
            }
            if !more {
                break;
            }
        }
    }
}

/// Hands what `peer` sends to the shard, and adopts the sockets it moves here.
async fn drain(core: Rc<CoreContext>, peer: ShardId, receiver: ConnectedReceiver<MeshBatch>) {
    while let Some(batch) = receiver.recv().await {
        let now = core.now();
        for adopt in batch.adopts {
            // SAFETY: the descriptor was dup'ed for this hand-over and is owned by `adopt.fd` alone.
            let stream = unsafe { TcpStream::from_raw_fd(adopt.fd.into_raw_fd()) };
            let adopted = core.shard.borrow_mut().handle_adopt(adopt.handoff, now);
            match adopted {
                Ok(conn) => {
                    glommio::spawn_local(serve_connection(core.clone(), stream, conn)).detach();
                }
                Err(full) => tracing::warn!(%full, "refusing a connection handed over from {peer}"),
            }
        }
        core.shard.borrow_mut().handle_mesh(peer, batch.messages, now);
        core.dispatch();
    }
}

async fn accept_loop(core: Rc<CoreContext>, listener: TcpListener) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            core.stop_accepting.wait().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { return };
        match accepted {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let registered = core.shard.borrow_mut().handle_accept(core.now());
                match registered {
                    Ok(conn) => {
                        glommio::spawn_local(serve_connection(core.clone(), stream, conn)).detach();
                    }
                    Err(full) => tracing::warn!(%full, "refusing a new connection"),
                }
                core.dispatch();
            }
            Err(error) => {
                // EMFILE and friends: say so at most once a second, and let the condition pass.
                if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%error, "accept failed (at the file descriptor limit?)");
                    last_error_log = Some(Instant::now());
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Drives timers and the shutdown sequence; returns when every core is done.
async fn tick_loop(core: &Rc<CoreContext>, coordination: &Coordination) {
    let mut shutdown_started: Option<Instant> = None;
    let mut closed_hard = false;
    let mut counted_quiesced = false;
    loop {
        glommio::timer::sleep(TICK_INTERVAL).await;
        let now = core.now();
        core.shard.borrow_mut().handle_timeout(now);
        if shutdown_started.is_none() && coordination.shutdown.load(Ordering::Relaxed) {
            shutdown_started = Some(Instant::now());
            core.stop_accepting.notify();
            core.shard.borrow_mut().begin_shutdown(now);
        }
        if let Some(started) = shutdown_started {
            if !closed_hard && started.elapsed() >= coordination.shutdown_grace {
                closed_hard = true;
                core.shard.borrow_mut().close_all_now();
            }
            if !counted_quiesced && core.shard.borrow().is_quiesced() {
                counted_quiesced = true;
                coordination.quiesced.fetch_add(1, Ordering::AcqRel);
            }
            if coordination.quiesced.load(Ordering::Acquire) == coordination.cores {
                core.dispatch();
                return;
            }
        }
        core.dispatch();
    }
}
