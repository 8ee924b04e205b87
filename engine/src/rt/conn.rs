//! The core's I/O loop: moves bytes between every socket of the core and the shard, from one task. It
//! takes readiness events from epoll in batches, accepts new connections, and serves each connection with
//! something to do. Serving is the connection loop of `driver::connection`, the one the simulator runs too,
//! over `ConnectionSocket`, this runtime's transport: everything the shard queued for the connection goes out
//! in one `send` per visit (frames written to it since the last visit coalesce in its outbound buffer), then
//! it reads a bounded number of times into the core's one read buffer, handed to the shard. A connection not
//! ready for anything is not visited and owns nothing here but its socket slot (`sockets.rs`).
//!
//! Owns the system calls of a visit, of closing (FIN and linger) and of handing a socket over, and no
//! protocol decision (the shard says what to write, when to stop reading and when to close; the connection
//! loop orders the steps). No state of its own between rounds except what `CoreContext` holds.
//!
//! TLS connections (accepted on the core's TLS listener) take the same path through their `TlsSession`,
//! inside the transport: what is read is decrypted in the read buffer and the plaintext goes to the shard;
//! what the shard queued is encrypted into the session's records, which go out first, in order. The shard
//! and the connection loop never know. A TLS connection that fails its handshake (plaintext, a bad
//! handshake, SNI, ALPN, a timeout) is closed at once and counted; before its handshake completes nothing
//! the shard writes can reach the client, so a connection the shard closes then is closed without a word.
//!
//! Backpressure: a connection whose shard status says `may_read: false` is not read; its input waits in the
//! kernel (and, past the socket buffer, in the client), and the shard queues it again when it may read. A TLS
//! connection's plaintext is encrypted only when its previous records are all written, so it holds at most
//! one outbound buffer's worth of records besides the shard's outbound buffer.

use std::io;
use std::ops::DerefMut;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringline_core::account::SourceKey;
use ringline_core::limits::{ACCEPTS_PER_ROUND_MAX, CONNECTIONS_SERVED_PER_ROUND_MAX, EPOLL_EVENTS_PER_ROUND_MAX};
use ringline_core::shard::{ConnId, Handoff, Now, Shard};
use ringline_core::tls::{TlsFailure, TlsSession};

use crate::driver::connection::{self, Close, HeldBytes, Read, Transport, Write};

use super::context::{Adopt, CoreContext};
use super::readiness::Event;
use super::sys;
use super::token::Token;

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

/// One visit to a connection (`driver::connection::serve`) over its socket.
fn serve(core: &CoreContext, conn: ConnId) {
    let Some(mut socket) = ConnectionSocket::take(core, conn) else { return };
    connection::serve(&mut socket);
}

/// Closes the TLS connections whose handshake is past its deadline (slowloris, stalled clients). Every tick.
pub fn expire_tls_handshakes(core: &CoreContext) {
    let Some(tls) = &core.tls else { return };
    let mut expired = Vec::new();
    tls.expired_handshakes(&core.sockets.borrow(), core.now().mono_us, &mut expired);
    for conn in expired {
        tls.count_failure(TlsFailure::Timeout);
        // Each has its socket: the deadline list names connections with a session in the socket table.
        if let Some(mut socket) = ConnectionSocket::take(core, conn) {
            connection::close(&mut socket, Close::Abort);
        }
    }
}

/// A connection's socket while the connection loop drives it: the descriptor and, for a TLS connection, the
/// session, out of the socket table until the visit ends (so no borrow of the table is held while it works);
/// once detached, the descriptor on its way out.
struct ConnectionSocket<'c> {
    core: &'c CoreContext,
    conn: ConnId,
    fd: RawFd,
    tls: Option<Box<TlsSession>>,
    detached: Option<OwnedFd>,
}

impl<'c> ConnectionSocket<'c> {
    /// The socket of `conn`, if it has one.
    fn take(core: &'c CoreContext, conn: ConnId) -> Option<Self> {
        let mut sockets = core.sockets.borrow_mut();
        let fd = sockets.fd(conn)?;
        let tls = sockets.take_tls(conn);
        Some(Self { core, conn, fd, tls, detached: None })
    }

    /// Decrypts what was read from a TLS connection and hands the plaintext to the shard.
    fn receive_tls(&mut self, records: &mut [u8]) -> Read {
        let core = self.core;
        let (Some(tls), Some(session)) = (&core.tls, self.tls.as_mut()) else { return Read::ReceivedThenEnded };
        let conn = self.conn;
        let now = core.now();
        let received = {
            let mut pool = tls.pool.borrow_mut();
            let mut shard = core.shard.borrow_mut();
            session.receive(records, now.mono_us, &mut pool, &mut |plaintext| shard.handle_bytes(conn, plaintext, now))
        };
        match received {
            Ok(received) => {
                if let Some(done) = received.handshake_done {
                    tls.handshake_done(done);
                }
                if received.peer_closed { Read::ReceivedThenEnded } else { Read::Received }
            }
            Err(error) => {
                tracing::debug!(%error, "closing a TLS connection");
                tls.count_failure(error.failure());
                Read::ReceivedThenEnded
            }
        }
    }

    /// A read that did not fill the buffer took everything the socket held: more input will come with a new
    /// edge event, so the next visit need not spend a `recv` to hear EAGAIN (one system call saved per read).
    /// Not once the peer has hung up: its end of input may already wait behind the bytes just read, and no
    /// new event would announce it.
    fn note_short_read(&self, read: usize, capacity: usize) {
        if read < capacity {
            let mut sockets = self.core.sockets.borrow_mut();
            if !sockets.is_hung_up(self.conn) {
                sockets.set_readable(self.conn, false);
            }
        }
    }

    /// A TLS connection that ends during its handshake because the client went away is counted as such.
    fn count_handshake_eof(&self) {
        if let Some(tls) = &self.core.tls
            && self.tls.as_deref().is_some_and(TlsSession::is_handshaking)
        {
            tls.count_failure(TlsFailure::Eof);
        }
    }
}

impl Drop for ConnectionSocket<'_> {
    /// The session goes back beside its socket (unless the connection left: then it went with it).
    fn drop(&mut self) {
        if let Some(session) = self.tls.take() {
            self.core.sockets.borrow_mut().put_tls(self.conn, session);
        }
    }
}

impl connection::Core for ConnectionSocket<'_> {
    fn shard(&mut self) -> impl DerefMut<Target = Shard> {
        self.core.shard.borrow_mut()
    }

    fn now(&self) -> Now {
        self.core.now()
    }

    fn dispatch(&mut self) {
        self.core.dispatch();
    }
}

impl Transport for ConnectionSocket<'_> {
    fn conn(&self) -> ConnId {
        self.conn
    }

    /// A TLS connection's records, as one `send` while the socket takes all of them.
    fn write_held(&mut self) -> HeldBytes {
        let Some(session) = self.tls.as_mut() else { return HeldBytes::AllWritten };
        let Some(tls) = &self.core.tls else { return HeldBytes::Failed };
        while !session.outgoing().is_empty() {
            let length = session.outgoing().len();
            match sys::send(self.fd, session.outgoing()) {
                Ok(written) => {
                    session.consume_outgoing(written, &mut tls.pool.borrow_mut());
                    if written < length {
                        return HeldBytes::NoRoom;
                    }
                }
                Err(error) => match error.kind() {
                    io::ErrorKind::WouldBlock => return HeldBytes::NoRoom,
                    io::ErrorKind::Interrupted => {}
                    _ => return HeldBytes::Failed,
                },
            }
        }
        HeldBytes::AllWritten
    }

    /// Plain: one `send` of all of it. TLS: all of it encrypted into the session's records (which
    /// `write_held` sends next), once the handshake is done.
    fn write_outbound(&mut self) -> Write {
        let core = self.core;
        let shard = core.shard.borrow();
        let outbound = shard.outbound(self.conn);
        if let Some(session) = self.tls.as_mut() {
            let Some(tls) = &core.tls else { return Write::Failed };
            if !session.is_established() {
                // Nothing the shard writes before the handshake can reach the client.
                return Write::Withheld;
            }
            if let Err(error) = session.encrypt(outbound, &mut tls.pool.borrow_mut()) {
                tracing::debug!(%error, "cannot encrypt for a TLS connection; closing it");
                tls.count_failure(error.failure());
                return Write::Failed;
            }
            return Write::Wrote { bytes: outbound.len(), full: false };
        }
        loop {
            match sys::send(self.fd, outbound) {
                // Short: the socket buffer is full, and epoll reports room as an edge.
                Ok(written) => return Write::Wrote { bytes: written, full: written < outbound.len() },
                Err(error) => match error.kind() {
                    io::ErrorKind::WouldBlock => return Write::NoRoom,
                    io::ErrorKind::Interrupted => {}
                    _ => return Write::Failed,
                },
            }
        }
    }

    fn may_have_input(&self) -> bool {
        self.core.sockets.borrow().is_readable(self.conn)
    }

    /// One `recv` into the core's read buffer; for TLS, the records decrypted in place.
    fn read(&mut self) -> Read {
        let core = self.core;
        let mut buffer = core.read_buffer.borrow_mut();
        loop {
            match sys::recv(self.fd, &mut buffer) {
                Ok(0) => {
                    self.count_handshake_eof();
                    return Read::Ended;
                }
                Ok(read) => {
                    self.note_short_read(read, buffer.len());
                    if self.tls.is_some() {
                        return self.receive_tls(&mut buffer[..read]);
                    }
                    core.shard.borrow_mut().handle_bytes(self.conn, &buffer[..read], core.now());
                    return Read::Received;
                }
                Err(error) => match error.kind() {
                    io::ErrorKind::WouldBlock => {
                        core.sockets.borrow_mut().set_readable(self.conn, false);
                        return Read::Empty;
                    }
                    io::ErrorKind::Interrupted => {}
                    _ => {
                        self.count_handshake_eof();
                        return Read::Ended;
                    }
                },
            }
        }
    }

    fn come_back(&mut self) {
        self.core.sockets.borrow_mut().enqueue(self.conn);
    }

    fn detach(&mut self) {
        let removed = self.core.sockets.borrow_mut().remove(self.conn);
        if let Some((fd, session)) = removed {
            self.detached = Some(fd);
            self.tls = self.tls.take().or(session);
        }
    }

    /// A TLS connection says close_notify first when it closes gracefully, and one whose handshake failed gets
    /// rustls' alert if there is one (one `send` at most either way). Graceful: FIN, then the socket lingers.
    fn close(&mut self, how: Close) {
        let core = self.core;
        let Some(fd) = self.detached.take() else { return };
        let mut how = how;
        if let (Some(mut session), Some(tls)) = (self.tls.take(), &core.tls) {
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

    /// The socket leaves epoll and goes to the home core over the mesh; a TLS connection's session goes with
    /// it (keys, an incomplete record, records not yet written).
    fn hand_off(&mut self, handoff: Handoff) {
        let core = self.core;
        let removed = core.sockets.borrow_mut().remove(self.conn);
        let Some((fd, _)) = removed else { return };
        let tls = self.tls.take();
        if let (Some(session), Some(core_tls)) = (&tls, &core.tls) {
            core_tls.session_removed(session);
        }
        // The socket stays open on its way, so epoll would go on reporting it here under this token.
        if let Err(error) = core.readiness.deregister(fd.as_raw_fd()) {
            tracing::warn!(%error, "handing a connection over: cannot stop watching it; closing it");
            return;
        }
        core.send_adopt(Adopt { fd, handoff, tls });
    }
}
