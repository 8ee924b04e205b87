//! The core's I/O loop: moves bytes between every socket of the core and the shard, from one task. It
//! takes readiness events from epoll in batches, accepts new connections, and serves each connection with
//! something to do: everything the shard queued for it goes out in one `send` per visit (frames written
//! to it since the last visit coalesce in its outbound buffer), then it reads a bounded number of times into
//! the core's one read buffer and hands the bytes to the shard. A connection not ready for anything is not
//! visited and owns nothing here but its socket slot (`sockets.rs`).
//!
//! Owns no protocol decision (the shard says what to write, when to stop reading and when to close) and no
//! state of its own between rounds except what `CoreContext` holds.
//!
//! Backpressure: a connection whose shard status says `may_read: false` is not read; its input waits in the
//! kernel (and, past the socket buffer, in the client), and the shard queues it again when it may read.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::account::SourceKey;
use crate::limits::{
    ACCEPTS_PER_ROUND_MAX, CONNECTIONS_SERVED_PER_ROUND_MAX, EPOLL_EVENTS_PER_ROUND_MAX, READS_PER_POLL_MAX,
};
use crate::shard::{ConnId, ConnStatus};

use super::core::{Adopt, CoreContext};
use super::readiness::Event;
use super::sys;
use super::token::Token;

/// How a connection leaves this core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Close the socket now.
    Abort,
    /// Its last frame is written: send FIN and linger.
    Graceful,
}

/// Waits for epoll readiness and wakes the I/O loop; arms again only once the loop has taken every event,
/// so the two never spin on events already known.
pub async fn watch_readiness(core: Rc<CoreContext>) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        if let Err(error) = core.readiness.wait().await {
            if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(%error, "waiting for socket readiness failed; polling instead");
                last_error_log = Some(Instant::now());
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        core.io_wake.notify();
        core.epoll_drained.wait().await;
    }
}

/// The I/O loop of one core. Runs until the process exits.
pub async fn run_io(core: Rc<CoreContext>) {
    let mut events = Vec::with_capacity(EPOLL_EVENTS_PER_ROUND_MAX);
    let mut raw_events = Vec::with_capacity(EPOLL_EVENTS_PER_ROUND_MAX);
    let mut last_error_log: Option<Instant> = None;
    loop {
        let epoll_has_more = match core.readiness.poll(&mut events, &mut raw_events, EPOLL_EVENTS_PER_ROUND_MAX) {
            Ok(more) => more,
            Err(error) => {
                if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%error, "epoll_wait failed");
                    last_error_log = Some(Instant::now());
                }
                false
            }
        };
        if !epoll_has_more {
            core.epoll_drained.notify();
        }
        for event in &events {
            handle_event(&core, *event);
        }
        if core.accept_pending.get() {
            core.accept_pending.set(accept_batch(&core));
        }
        for _ in 0..CONNECTIONS_SERVED_PER_ROUND_MAX {
            let next = core.sockets.borrow_mut().pop_ready();
            let Some(conn) = next else { break };
            serve(&core, conn);
        }
        if epoll_has_more || core.accept_pending.get() || core.sockets.borrow().ready_len() > 0 {
            // More to do: let the core's other tasks (mesh, timers) run first.
            futures_lite::future::yield_now().await;
        } else {
            core.io_wake.wait().await;
        }
    }
}

fn handle_event(core: &CoreContext, event: Event) {
    match event.token {
        Token::Connection(conn) => {
            let mut sockets = core.sockets.borrow_mut();
            if event.readable {
                sockets.set_readable(conn, true);
            }
            sockets.enqueue(conn);
        }
        Token::Listener => core.accept_pending.set(true),
        Token::Linger { index, generation } => {
            if event.readable {
                let mut scratch = core.read_buffer.borrow_mut();
                core.lingering.borrow_mut().discard(index, generation, &mut scratch);
            }
        }
    }
}

/// Accepts up to a round's worth of connections. Returns whether more may be waiting.
fn accept_batch(core: &CoreContext) -> bool {
    for _ in 0..ACCEPTS_PER_ROUND_MAX {
        let Some(listener) = core.listener() else { return false };
        match sys::accept(listener) {
            Ok((fd, peer)) => {
                // Best effort: a socket without it still works, only slower.
                let _ = sys::set_nodelay(fd.as_raw_fd());
                let source = peer.map_or(SourceKey::UNKNOWN, SourceKey::from_ip);
                let registered = core.shard.borrow_mut().handle_accept_from(source, core.now());
                match registered {
                    Ok(conn) => core.add_connection(conn, fd),
                    Err(full) => tracing::warn!(%full, "refusing a new connection"),
                }
                core.dispatch();
            }
            Err(error) => match error.kind() {
                io::ErrorKind::WouldBlock => return false,
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => {}
                _ => {
                    // EMFILE and friends: say so at most once a second; the tick retries.
                    log_accept_error(&error);
                    return false;
                }
            },
        }
    }
    true
}

fn log_accept_error(error: &io::Error) {
    thread_local! {
        static LAST_LOG: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    LAST_LOG.with(|last| {
        if last.get().is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(%error, "accept failed (at the file descriptor limit?)");
            last.set(Some(Instant::now()));
        }
    });
}

/// One visit to a connection: write what is queued, act on its status, read a bounded number of times.
fn serve(core: &CoreContext, conn: ConnId) {
    let mut reads = 0;
    loop {
        let Some(fd) = core.sockets.borrow().fd(conn) else { return };
        let write_blocked = match flush(core, conn, fd) {
            Ok(blocked) => blocked,
            Err(()) => return close(core, conn, Close::Abort),
        };
        let status = core.shard.borrow().conn_status(conn);
        match status {
            ConnStatus::Gone | ConnStatus::CloseNow => return close(core, conn, Close::Abort),
            ConnStatus::CloseAfterFlush if write_blocked => return,
            ConnStatus::CloseAfterFlush => return close(core, conn, Close::Graceful),
            ConnStatus::HandOff => return hand_off(core, conn),
            ConnStatus::Open { may_read: false } => return,
            ConnStatus::Open { may_read: true } => {}
        }
        if !core.sockets.borrow().is_readable(conn) {
            return;
        }
        if reads == READS_PER_POLL_MAX {
            // Fair to the other connections of this core: come back after them.
            core.sockets.borrow_mut().enqueue(conn);
            return;
        }
        let mut buffer = core.read_buffer.borrow_mut();
        match sys::recv(fd, &mut buffer) {
            Ok(0) => {
                drop(buffer);
                return close(core, conn, Close::Abort);
            }
            Ok(read) => {
                reads += 1;
                core.shard.borrow_mut().handle_bytes(conn, &buffer[..read], core.now());
                drop(buffer);
                core.dispatch();
            }
            Err(error) => {
                drop(buffer);
                match error.kind() {
                    io::ErrorKind::WouldBlock => {
                        core.sockets.borrow_mut().set_readable(conn, false);
                        return;
                    }
                    io::ErrorKind::Interrupted => {}
                    _ => return close(core, conn, Close::Abort),
                }
            }
        }
    }
}

/// Writes the connection's outbound bytes, as one `send` while the socket takes all of them (writing may
/// let the shard queue more deliveries). Returns whether bytes are left for when the socket has room, or
/// `Err` if the socket failed.
fn flush(core: &CoreContext, conn: ConnId, fd: std::os::fd::RawFd) -> Result<bool, ()> {
    loop {
        let mut shard = core.shard.borrow_mut();
        let outbound = shard.outbound(conn);
        if outbound.is_empty() {
            return Ok(false);
        }
        let length = outbound.len();
        match sys::send(fd, outbound) {
            Ok(written) => {
                shard.consume_outbound(conn, written, core.now());
                drop(shard);
                core.dispatch();
                if written < length {
                    // The socket buffer is full: epoll reports room as an edge.
                    return Ok(true);
                }
            }
            Err(error) => match error.kind() {
                io::ErrorKind::WouldBlock => return Ok(true),
                io::ErrorKind::Interrupted => {}
                _ => return Err(()),
            },
        }
    }
}

/// Ends the connection here: the shard forgets it, the socket closes now or lingers.
fn close(core: &CoreContext, conn: ConnId, how: Close) {
    let fd = core.sockets.borrow_mut().remove(conn);
    core.shard.borrow_mut().handle_closed(conn);
    core.dispatch();
    let Some(fd) = fd else { return };
    if how == Close::Abort {
        return;
    }
    // Best effort: if FIN cannot be sent the socket is closing anyway.
    let _ = sys::shutdown_write(fd.as_raw_fd());
    let raw = fd.as_raw_fd();
    let now_us = core.now().mono_us;
    let inserted = core.lingering.borrow_mut().try_insert(fd, now_us);
    let Ok((index, generation)) = inserted else { return };
    if core.readiness.change_to_input(raw, Token::Linger { index, generation }).is_err() {
        // Not watched: it closes when its linger time is over.
        return;
    }
    let mut scratch = core.read_buffer.borrow_mut();
    core.lingering.borrow_mut().discard(index, generation, &mut scratch);
}

/// Sends the socket of a connection that logged in for a user of another core to that core.
fn hand_off(core: &CoreContext, conn: ConnId) {
    let handoff = core.shard.borrow_mut().take_handoff(conn);
    let Some(handoff) = handoff else { return close(core, conn, Close::Abort) };
    let fd = core.sockets.borrow_mut().remove(conn);
    let Some(fd) = fd else { return };
    // The socket stays open on its way, so epoll would go on reporting it here under this token.
    if let Err(error) = core.readiness.deregister(fd.as_raw_fd()) {
        tracing::warn!(%error, "handing a connection over: cannot stop watching it; closing it");
        return;
    }
    core.send_adopt(Adopt { fd, handoff });
}
