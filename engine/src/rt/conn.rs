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
//! TLS connections (accepted on the core's TLS listener) take the same path through their `TlsSession`:
//! what is read is decrypted in the read buffer and the plaintext goes to the shard; what the shard queued is
//! encrypted into the session's records, which go out first, in order. The shard never knows. A TLS
//! connection that fails its handshake (plaintext, a bad handshake, SNI, ALPN, a timeout) is closed at once
//! and counted; before its handshake completes nothing the shard writes can reach the client, so a
//! connection the shard closes then is closed without a word.
//!
//! Backpressure: a connection whose shard status says `may_read: false` is not read; its input waits in the
//! kernel (and, past the socket buffer, in the client), and the shard queues it again when it may read. A TLS
//! connection's plaintext is encrypted only when its previous records are all written, so it holds at most
//! one outbound buffer's worth of records besides the shard's outbound buffer.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringline_core::account::SourceKey;
use ringline_core::limits::{
    ACCEPTS_PER_ROUND_MAX, CONNECTIONS_SERVED_PER_ROUND_MAX, EPOLL_EVENTS_PER_ROUND_MAX, READS_PER_POLL_MAX,
};
use ringline_core::shard::{ConnId, ConnStatus};
use ringline_core::tls::{TlsFailure, TlsSession};

use super::context::{Adopt, CoreContext};
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

/// Which of the core's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Plain,
    Tls,
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
            core.accept_pending.set(accept_batch(&core, Entry::Plain));
        }
        if core.tls_accept_pending.get() {
            core.tls_accept_pending.set(accept_batch(&core, Entry::Tls));
        }
        for _ in 0..CONNECTIONS_SERVED_PER_ROUND_MAX {
            let next = core.sockets.borrow_mut().pop_ready();
            let Some(conn) = next else { break };
            serve(&core, conn);
        }
        core.record_shutdown_progress();
        if epoll_has_more
            || core.accept_pending.get()
            || core.tls_accept_pending.get()
            || core.sockets.borrow().ready_len() > 0
        {
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
            if event.hung_up {
                sockets.set_hung_up(conn);
            }
            sockets.enqueue(conn);
        }
        Token::Listener => core.accept_pending.set(true),
        Token::TlsListener => core.tls_accept_pending.set(true),
        Token::Linger { index, generation } => {
            if event.readable {
                let mut scratch = core.read_buffer.borrow_mut();
                core.lingering.borrow_mut().discard(index, generation, &mut scratch);
            }
        }
    }
}

/// Accepts up to a round's worth of connections on one listener. Returns whether more may be waiting.
fn accept_batch(core: &CoreContext, entry: Entry) -> bool {
    for _ in 0..ACCEPTS_PER_ROUND_MAX {
        let listener = match entry {
            Entry::Plain => core.listener(),
            Entry::Tls => core.tls_listener(),
        };
        let Some(listener) = listener else { return false };
        if entry == Entry::Tls && !core.tls.as_ref().is_some_and(|tls| tls.may_accept()) {
            // At the limit of handshakes in progress: the rest wait in the backlog; the tick looks again.
            return false;
        }
        match sys::accept(listener) {
            Ok((fd, peer)) => {
                // Best effort: a socket without it still works, only slower.
                let _ = sys::set_nodelay(fd.as_raw_fd());
                let source = peer.map_or(SourceKey::UNKNOWN, SourceKey::from_ip);
                let now = core.now();
                let session = match (entry, &core.tls) {
                    (Entry::Plain, _) => None,
                    (Entry::Tls, Some(tls)) => match tls.new_session(now.mono_us) {
                        Some(session) => Some(session),
                        None => continue,
                    },
                    (Entry::Tls, None) => continue,
                };
                let registered = core.shard.borrow_mut().handle_accept_from(source, now);
                match registered {
                    Ok(conn) => core.add_connection(conn, fd, session),
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
                count_handshake_eof(core, conn);
                return close(core, conn, Close::Abort);
            }
            Ok(read) if core.sockets.borrow().is_tls(conn) => {
                reads += 1;
                note_short_read(core, conn, read, buffer.len());
                let received = receive_tls(core, conn, &mut buffer[..read]);
                drop(buffer);
                core.dispatch();
                if received == TlsRead::Closed {
                    return close(core, conn, Close::Abort);
                }
            }
            Ok(read) => {
                reads += 1;
                note_short_read(core, conn, read, buffer.len());
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
                    _ => {
                        count_handshake_eof(core, conn);
                        return close(core, conn, Close::Abort);
                    }
                }
            }
        }
    }
}

/// A read that did not fill the buffer took everything the socket held: more input will come with a new
/// edge event, so the next visit need not spend a `recv` to hear EAGAIN (one system call saved per read).
/// Not once the peer has hung up: its end of input may already wait behind the bytes just read, and no
/// new event would announce it.
fn note_short_read(core: &CoreContext, conn: ConnId, read: usize, capacity: usize) {
    if read < capacity {
        let mut sockets = core.sockets.borrow_mut();
        if !sockets.is_hung_up(conn) {
            sockets.set_readable(conn, false);
        }
    }
}

/// What a read did to a TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsRead {
    /// Serve on.
    Open,
    /// It failed (counted) or the client sent close_notify: close it.
    Closed,
}

/// Decrypts what was read from a TLS connection and hands the plaintext to the shard.
fn receive_tls(core: &CoreContext, conn: ConnId, records: &mut [u8]) -> TlsRead {
    let Some(tls) = &core.tls else { return TlsRead::Closed };
    let Some(mut session) = core.sockets.borrow_mut().take_tls(conn) else { return TlsRead::Closed };
    let now = core.now();
    let received = {
        let mut pool = tls.pool.borrow_mut();
        let mut shard = core.shard.borrow_mut();
        session.receive(records, now.mono_us, &mut pool, &mut |plaintext| shard.handle_bytes(conn, plaintext, now))
    };
    let read = match received {
        Ok(received) => {
            if let Some(done) = received.handshake_done {
                tls.handshake_done(done);
            }
            if received.peer_closed { TlsRead::Closed } else { TlsRead::Open }
        }
        Err(error) => {
            tracing::debug!(%error, "closing a TLS connection");
            tls.count_failure(error.failure());
            TlsRead::Closed
        }
    };
    core.sockets.borrow_mut().put_tls(conn, session);
    read
}

/// A TLS connection that ends during its handshake because the client went away is counted as such.
fn count_handshake_eof(core: &CoreContext, conn: ConnId) {
    if let Some(tls) = &core.tls
        && core.sockets.borrow().tls(conn).is_some_and(TlsSession::is_handshaking)
    {
        tls.count_failure(TlsFailure::Eof);
    }
}

/// Closes the TLS connections whose handshake is past its deadline (slowloris, stalled clients). Every tick.
pub fn expire_tls_handshakes(core: &CoreContext) {
    let Some(tls) = &core.tls else { return };
    let mut expired = Vec::new();
    tls.expired_handshakes(&core.sockets.borrow(), core.now().mono_us, &mut expired);
    for conn in expired {
        tls.count_failure(TlsFailure::Timeout);
        close(core, conn, Close::Abort);
    }
}

/// Writes the connection's outbound bytes, as one `send` while the socket takes all of them (writing may
/// let the shard queue more deliveries). Returns whether bytes are left for when the socket has room, or
/// `Err` if the socket failed.
fn flush(core: &CoreContext, conn: ConnId, fd: std::os::fd::RawFd) -> Result<bool, ()> {
    if core.sockets.borrow().is_tls(conn) {
        return flush_tls(core, conn, fd);
    }
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

/// `flush` for a TLS connection: its records first, then the shard's outbound bytes encrypted (once the
/// handshake is done and the records are all written).
fn flush_tls(core: &CoreContext, conn: ConnId, fd: std::os::fd::RawFd) -> Result<bool, ()> {
    let Some(tls) = &core.tls else { return Err(()) };
    let Some(mut session) = core.sockets.borrow_mut().take_tls(conn) else { return Err(()) };
    let flushed = loop {
        if !session.outgoing().is_empty() {
            let length = session.outgoing().len();
            match sys::send(fd, session.outgoing()) {
                Ok(written) => {
                    session.consume_outgoing(written, &mut tls.pool.borrow_mut());
                    if written < length {
                        break Ok(true);
                    }
                }
                Err(error) => match error.kind() {
                    io::ErrorKind::WouldBlock => break Ok(true),
                    io::ErrorKind::Interrupted => {}
                    _ => break Err(()),
                },
            }
            continue;
        }
        if !session.is_established() {
            // Nothing the shard writes before the handshake can reach the client.
            break Ok(false);
        }
        let mut shard = core.shard.borrow_mut();
        let outbound = shard.outbound(conn);
        if outbound.is_empty() {
            break Ok(false);
        }
        let length = outbound.len();
        if let Err(error) = session.encrypt(outbound, &mut tls.pool.borrow_mut()) {
            tracing::debug!(%error, "cannot encrypt for a TLS connection; closing it");
            tls.count_failure(error.failure());
            break Err(());
        }
        shard.consume_outbound(conn, length, core.now());
        drop(shard);
        core.dispatch();
    };
    core.sockets.borrow_mut().put_tls(conn, session);
    flushed
}

/// Ends the connection here: the shard forgets it, the socket closes now or lingers. A TLS connection says
/// close_notify first when it closes gracefully, and one whose handshake failed gets rustls' alert if there
/// is one (one `send` at most either way).
fn close(core: &CoreContext, conn: ConnId, how: Close) {
    let removed = core.sockets.borrow_mut().remove(conn);
    core.shard.borrow_mut().handle_closed(conn);
    core.dispatch();
    let Some((fd, session)) = removed else { return };
    let mut how = how;
    if let (Some(mut session), Some(tls)) = (session, &core.tls) {
        let mut pool = tls.pool.borrow_mut();
        // Before the handshake nothing of ours can reach the client: no FIN-and-linger for it.
        let said_goodbye =
            session.is_established() && how == Close::Graceful && session.close_notify(&mut pool).is_ok();
        if !said_goodbye {
            how = Close::Abort;
        }
        if !session.outgoing().is_empty() {
            // Best effort: the socket is closing either way.
            let _ = sys::send(fd.as_raw_fd(), session.outgoing());
        }
        tls.session_removed(&session);
        session.release(&mut pool);
    }
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
    let removed = core.sockets.borrow_mut().remove(conn);
    let Some((fd, tls)) = removed else { return };
    if let (Some(session), Some(core_tls)) = (&tls, &core.tls) {
        core_tls.session_removed(session);
    }
    // The socket stays open on its way, so epoll would go on reporting it here under this token.
    if let Err(error) = core.readiness.deregister(fd.as_raw_fd()) {
        tracing::warn!(%error, "handing a connection over: cannot stop watching it; closing it");
        return;
    }
    // A TLS connection's session goes with it: keys, an incomplete record, records not yet written.
    core.send_adopt(Adopt { fd, handoff, tls });
}
