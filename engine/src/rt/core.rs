//! One core's tasks: `run_core` builds the core's context (`context.rs`) and starts the I/O loop and its
//! readiness watcher (`conn.rs`), the log task (`log.rs`), the device-record task, timers, and per peer core
//! one pump (outbox → channel) and one drain (channel → shard). Owns nothing that crosses cores except what
//! travels in a `MeshBatch`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

use ringline_core::home::ShardId;
use ringline_core::limits::{MEMORY_TRIM_INTERVAL, POOLED_BUFFERS_RESERVE, TICK_INTERVAL};
use ringline_core::shard::{ConnStatus, Shard, ShardConfig, ShutdownLeft};

use crate::driver;

use super::admin_inbox::AdminInbox;
use super::conn::{expire_tls_handshakes, run_io, watch_readiness};
use super::context::{Coordination, CoreContext, CoreTlsSetup, MeshBatch, MeshEnds};
use super::device_records::run_device_records;
use super::log::{CoreLog, run_log};
use super::metrics::CoreMetrics;
use super::readiness::ReadinessSetup;
use super::shutdown::{CoreShutdownState, ThreadCpu};
use super::tls::CoreTls;
use super::token::Token;

/// Marks a core done when dropped: at the end of `run_core`, and when a panic unwinds it, so that the main
/// thread shuts the other cores down and reports the panic instead of waiting for this core forever.
struct MarkDoneOnDrop {
    coordination: Arc<Coordination>,
    core: usize,
}

impl Drop for MarkDoneOnDrop {
    fn drop(&mut self) {
        self.coordination.shutdown_states[self.core].record_done();
    }
}

/// Runs one core until the process shuts down.
#[allow(clippy::too_many_arguments)]
pub async fn run_core(
    id: ShardId,
    config: ShardConfig,
    listener: socket2::Socket,
    tls: Option<CoreTlsSetup>,
    readiness: ReadinessSetup,
    mesh: MeshEnds,
    coordination: Arc<Coordination>,
    log: CoreLog,
    admin: AdminInbox,
) {
    let _done = MarkDoneOnDrop { coordination: coordination.clone(), core: id.index() };
    let cores = usize::from(config.cores);
    let readiness = readiness.start();
    let listener = OwnedFd::from(listener);
    if let Err(error) = readiness.register_input(listener.as_raw_fd(), Token::Listener) {
        // The tick still retries accepting every interval.
        tracing::warn!(%error, "cannot watch the listener; accepting once per tick only");
    }
    let (tls_listener, core_tls) = match tls {
        Some(setup) => {
            let tls_listener = OwnedFd::from(setup.listener);
            if let Err(error) = readiness.register_input(tls_listener.as_raw_fd(), Token::TlsListener) {
                tracing::warn!(%error, "cannot watch the TLS listener; accepting once per tick only");
            }
            let timeout_us = setup.handshake_timeout.as_micros() as u64;
            (Some(tls_listener), Some(CoreTls::new(setup.certificates, timeout_us)))
        }
        None => (None, None),
    };
    let metrics = CoreMetrics::new(id, coordination.metrics.clone());
    let mut shard = Shard::new(id, config);
    shard.recover(log.recovered, log.segment_bytes);
    let core = Rc::new(CoreContext::new(
        shard,
        cores,
        readiness,
        (listener, tls_listener),
        core_tls,
        metrics,
        admin,
        coordination.clone(),
    ));
    glommio::spawn_local(run_log(core.clone(), log.dir)).detach();
    glommio::spawn_local(run_device_records(core.clone(), coordination.device_log.clone())).detach();

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
    glommio::spawn_local(watch_readiness(core.clone())).detach();
    glommio::spawn_local(run_io(core.clone())).detach();
    // The listeners are watched and the I/O loop is started: this core accepts from here on (`/readyz`).
    coordination.metrics.add_core_listening();
    tick_loop(&core, &coordination).await;
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
            let now = core.now();
            let more = driver::mesh::take_batch(
                &mut core.shard.borrow_mut(),
                &mut core.effects(),
                peer,
                &mut batch.messages,
                now,
            );
            batch.adopts = std::mem::take(&mut core.adopts_out.borrow_mut()[peer.index()]);
            if batch.messages.is_empty() && batch.adopts.is_empty() {
                break;
            }
            core.metrics.batch_sent(peer, batch.messages.len());
            batch.sent_at = Some(Instant::now());
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

/// Hands what `peer` sends to the shard, and adopts the sockets it moves here (`driver::mesh::arrive`).
async fn drain(core: Rc<CoreContext>, peer: ShardId, receiver: ConnectedReceiver<MeshBatch>) {
    while let Some(batch) = receiver.recv().await {
        let now = core.now();
        core.metrics.batch_received(peer, batch.messages.len(), batch.sent_at);
        let adopts = batch.adopts.into_iter().map(|adopt| (adopt.handoff, (adopt.fd, adopt.tls)));
        driver::mesh::arrive(&mut core.shard.borrow_mut(), &mut core.effects(), peer, adopts, batch.messages, now);
    }
}

/// Ticks after the grace without any change in what is left before a core logs its connections' census.
const SHUTDOWN_STALL_TICKS: u32 = 30;

/// Logs, once, what the connections a stalled shutdown waits for look like: their status in the shard,
/// whether this core's socket table holds their socket, whether they wait in the ready queue.
fn log_connection_census(core: &CoreContext) {
    let shard = core.shard.borrow();
    let sockets = core.sockets.borrow();
    let mut census: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for conn in shard.connection_ids() {
        let status = match shard.conn_status(conn) {
            ConnStatus::Open { may_read } => format!("open(may_read={may_read})"),
            other => format!("{other:?}"),
        };
        let socket = if sockets.fd(conn).is_some() { "socket" } else { "no socket" };
        let queued = if sockets.is_queued(conn) { ", queued" } else { "" };
        *census.entry(format!("{status}, {socket}{queued}")).or_default() += 1;
    }
    tracing::warn!(
        core = shard.id().0,
        ready_queue = sockets.ready_len(),
        ?census,
        "the shutdown stalled after the grace: the connections left"
    );
}

/// Says how long this core's shutdown took and how much of it the core spent running and waiting for a CPU:
/// on a host whose CPUs are busy, a shutdown is slow because the core waits (results/engine/2026-12-06-sigterm/).
fn log_shutdown_time(id: ShardId, started: Instant, state: &CoreShutdownState) {
    if let Some(cpu) = ThreadCpu::of_this_thread() {
        state.record_cpu(cpu);
    }
    let cpu = state.cpu_since_shutdown().unwrap_or(ThreadCpu { run_ns: 0, wait_ns: 0 });
    tracing::info!(
        core = id.0,
        seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
        on_cpu_seconds = format!("{:.2}", cpu.run_ns as f64 / 1e9),
        waiting_for_cpu_seconds = format!("{:.2}", cpu.wait_ns as f64 / 1e9),
        "core shut down"
    );
}

/// When a core gives back the memory a burst left behind (every `MEMORY_TRIM_INTERVAL`), and whether it was
/// quiet since the last time.
struct MemoryTrim {
    last: Instant,
    /// The shard's activity count at the last trim.
    activity: u64,
}

impl MemoryTrim {
    fn new(now: Instant) -> Self {
        Self { last: now, activity: 0 }
    }

    /// Trims the shard's containers and pools, then returns freed pages to the OS: all of them if the core
    /// was quiet since the last trim, else only those free for longer than the allocator's purge delay.
    fn tick(&mut self, core: &CoreContext, now: Instant) {
        if now.duration_since(self.last) < MEMORY_TRIM_INTERVAL {
            return;
        }
        self.last = now;
        let activity = {
            let mut shard = core.shard.borrow_mut();
            shard.trim_memory();
            shard.activity()
        };
        if let Some(tls) = &core.tls {
            tls.pool.borrow_mut().trim(POOLED_BUFFERS_RESERVE);
        }
        let quiet = activity == self.activity;
        self.activity = activity;
        super::allocator::return_freed_memory(quiet);
    }
}

/// Drives timers and the shutdown sequence; returns when every core is done.
async fn tick_loop(core: &Rc<CoreContext>, coordination: &Coordination) {
    let mut shutdown_started: Option<Instant> = None;
    let mut closed_hard = false;
    let mut counted_quiesced = false;
    let id = core.shard.borrow().id();
    // After the grace: what was left at the last change, and for how many ticks it has not changed.
    let mut stalled: (Option<ShutdownLeft>, u32) = (None, 0);
    let mut memory_trim = MemoryTrim::new(Instant::now());
    loop {
        glommio::timer::sleep(TICK_INTERVAL).await;
        if let Some(tls) = &core.tls {
            tls.refresh_config();
        }
        // Before the shard's timers: with equal timeouts a TLS connection still in its handshake is counted
        // as a TLS handshake timeout.
        expire_tls_handshakes(core);
        let now = core.now();
        core.shard.borrow_mut().handle_timeout(now);
        core.admin.take_calls(&mut core.shard.borrow_mut(), now);
        core.metrics.handle_tick(&core.shard.borrow(), core.tls.as_ref().map(|tls| &tls.stats));
        core.lingering.borrow_mut().expire(now.mono_us);
        memory_trim.tick(core, Instant::now());
        if core.listener().is_some() {
            // Edges can be missed after a failed accept (EMFILE): look at the listener every tick anyway.
            core.accept_pending.set(true);
            core.io_wake.notify();
        }
        if core.tls_listener().is_some() {
            // Also after pausing at the limit of handshakes in progress.
            core.tls_accept_pending.set(true);
            core.io_wake.notify();
        }
        if shutdown_started.is_none() && coordination.shutdown.load(Ordering::Relaxed) {
            shutdown_started = Some(Instant::now());
            core.close_listener();
            let connections = core.shard.borrow().connections();
            tracing::info!(core = id.0, connections, "shutting down: GOAWAY to each connection once it is settled");
            core.shard.borrow_mut().begin_shutdown(now);
        }
        coordination.shutdown_states[id.index()].record_tick();
        if shutdown_started.is_some()
            && let Some(cpu) = ThreadCpu::of_this_thread()
        {
            coordination.shutdown_states[id.index()].record_cpu(cpu);
        }
        core.record_shutdown_progress();
        if let Some(started) = shutdown_started {
            if !closed_hard && started.elapsed() >= coordination.shutdown_grace {
                closed_hard = true;
                let left = core.shard.borrow().shutdown_left();
                if !left.is_empty() {
                    tracing::info!(core = id.0, %left, "shutdown grace over: closing what is left");
                }
                core.shard.borrow_mut().close_all_now();
            }
            if closed_hard {
                let left = core.shard.borrow().shutdown_left();
                if stalled.0 == Some(left) {
                    stalled.1 += 1;
                    if stalled.1 == SHUTDOWN_STALL_TICKS && !left.is_empty() {
                        log_connection_census(core);
                    }
                } else {
                    stalled = (Some(left), 0);
                }
            }
            if !counted_quiesced && core.shard.borrow().is_quiesced() {
                counted_quiesced = true;
                coordination.quiesced.fetch_add(1, Ordering::AcqRel);
            }
            if coordination.quiesced.load(Ordering::Acquire) == coordination.cores {
                core.dispatch();
                log_shutdown_time(id, started, &coordination.shutdown_states[id.index()]);
                return;
            }
        }
        core.dispatch();
    }
}
