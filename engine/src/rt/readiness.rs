//! Socket readiness for one core: one epoll instance holds every socket of the core, edge-triggered, each
//! with a `Token` in its event data; a tiny io_uring of our own watches the epoll instance (one-shot
//! POLL_ADD) and, through a registered eventfd, turns "some socket is ready" into an eventfd read that
//! glommio awaits like any file read. So an idle connection costs a kernel epoll item and nothing in this
//! process: no task, no future, no glommio source.
//!
//! Owns the epoll instance, the ring and the eventfd. Does not read or write sockets, and does not own them:
//! `register`/`deregister` only change what epoll watches (closing a socket also removes it).
//!
//! Coalescing (`--io-coalesce`): `wait` does not return sooner than the window after the previous wake-up, so
//! under load one wake-up serves the events of a whole window; after a quiet spell it returns at once.
//!
//! Invariant: at most one POLL_ADD is in flight, and `wait` re-arms only after the previous one completed,
//! so the eventfd counts exactly the completions of our own ring.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use glommio::io::BufferedFile;
use io_uring::{IoUring, opcode, types};

use super::token::Token;

/// Events a connection's socket is watched for: input, room for output, and the peer's close, as edges.
const CONNECTION_INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Events a listening or lingering socket is watched for.
const INPUT_INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
/// Entries of our own ring: it never holds more than one POLL_ADD.
const RING_ENTRIES: u32 = 4;
const POLL_USER_DATA: u64 = 1;

/// One readiness event: which socket, and what it is ready for.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub token: Token,
    /// Input, end of input or an error is waiting: a read will not block. (Any event of a connection,
    /// room for output included, makes the I/O loop visit it.)
    pub readable: bool,
    /// The peer ended its input (EPOLLRDHUP), or the socket hung up or failed.
    pub hung_up: bool,
}

/// The parts made on the starting thread (so that failing to make them is a start-up error), moved to the
/// core's executor and started there.
pub struct ReadinessSetup {
    epoll: OwnedFd,
    ring: IoUring,
    eventfd: OwnedFd,
    coalesce: Duration,
}

impl std::fmt::Debug for ReadinessSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessSetup").field("epoll", &self.epoll).finish_non_exhaustive()
    }
}

impl ReadinessSetup {
    /// `coalesce`: the shortest time between two wake-ups (zero: none).
    pub fn new(coalesce: Duration) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before it is used as a descriptor.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epoll` is a fresh descriptor owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // Blocking on purpose: io_uring arms an internal poll for a read that would block, while for an
        // O_NONBLOCK file it would complete the read with EAGAIN at once.
        // SAFETY: plain syscall; the result is checked before it is used as a descriptor.
        let eventfd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if eventfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `eventfd` is a fresh descriptor owned by nobody else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(eventfd) };
        let ring = IoUring::new(RING_ENTRIES)?;
        ring.submitter().register_eventfd(eventfd.as_raw_fd())?;
        Ok(Self { epoll, ring, eventfd, coalesce })
    }

    /// Starts waiting through the current glommio executor. Call on the core's executor thread.
    pub fn start(self) -> Readiness {
        // SAFETY: the eventfd is handed over whole; the ring keeps its own reference to the eventfd context.
        let eventfd = unsafe { BufferedFile::from_raw_fd(self.eventfd.into_raw_fd()) };
        Readiness {
            epoll: self.epoll,
            ring: RefCell::new(self.ring),
            eventfd,
            armed: Cell::new(false),
            coalesce: self.coalesce,
            woke_at: Cell::new(None),
        }
    }
}

/// A core's readiness source, on its executor.
pub struct Readiness {
    epoll: OwnedFd,
    ring: RefCell<IoUring>,
    eventfd: BufferedFile,
    armed: Cell<bool>,
    coalesce: Duration,
    /// When `wait` last returned.
    woke_at: Cell<Option<Instant>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").field("epoll", &self.epoll).field("armed", &self.armed.get()).finish()
    }
}

impl Readiness {
    /// Watches a connection's socket for input and output.
    pub fn register_connection(&self, fd: RawFd, token: Token) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, CONNECTION_INTEREST, token)
    }

    /// Watches a socket for input only (a listener).
    pub fn register_input(&self, fd: RawFd, token: Token) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, INPUT_INTEREST, token)
    }

    /// Watches an already registered socket for input only, under a new token (a connection that lingers).
    pub fn change_to_input(&self, fd: RawFd, token: Token) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, INPUT_INTEREST, token)
    }

    /// Stops watching a socket that stays open (it moves to another core).
    pub fn deregister(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: `fd` is a descriptor the caller owns; a null event is allowed for EPOLL_CTL_DEL.
        let result = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    fn control(&self, operation: i32, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token.to_u64() };
        // SAFETY: `fd` is a descriptor the caller owns and `event` lives through the call.
        let result = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), operation, fd, &mut event) };
        if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Takes up to `max` ready events without waiting, into `out` (cleared first). Returns whether epoll
    /// may hold more (it returned `max`).
    pub fn poll(&self, out: &mut Vec<Event>, scratch: &mut Vec<libc::epoll_event>, max: usize) -> io::Result<bool> {
        out.clear();
        scratch.clear();
        scratch.reserve(max);
        let max_events = i32::try_from(max).unwrap_or(i32::MAX);
        let got = loop {
            // SAFETY: `scratch` has room for `max` events; the kernel writes at most that many.
            let got = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), scratch.as_mut_ptr(), max_events, 0) };
            if got >= 0 {
                break got as usize;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        };
        // SAFETY: the kernel initialised the first `got` entries, and `got <= max <= capacity`.
        unsafe { scratch.set_len(got) };
        for raw in scratch.iter() {
            let events = raw.events;
            let data = raw.u64;
            out.push(Event {
                token: Token::from_u64(data),
                readable: events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0,
                hung_up: events & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0,
            });
        }
        Ok(got == max)
    }

    /// Waits until the epoll instance has a ready event (it may have one already), and until the coalescing
    /// window since the previous return has passed. Do not call it while a previous call is still waiting.
    pub async fn wait(&self) -> io::Result<()> {
        if let Some(woke_at) = self.woke_at.get() {
            let since = woke_at.elapsed();
            if since < self.coalesce {
                glommio::timer::sleep(self.coalesce - since).await;
            }
        }
        let result = self.wait_for_event().await;
        self.woke_at.set(Some(Instant::now()));
        result
    }

    async fn wait_for_event(&self) -> io::Result<()> {
        if !self.armed.get() {
            let entry = opcode::PollAdd::new(types::Fd(self.epoll.as_raw_fd()), libc::POLLIN as u32)
                .build()
                .user_data(POLL_USER_DATA);
            let mut ring = self.ring.borrow_mut();
            // SAFETY: the entry refers to no memory; the epoll descriptor outlives the ring (same owner).
            let pushed = unsafe { ring.submission().push(&entry) };
            if pushed.is_err() {
                return Err(io::Error::other("own io_uring submission queue full"));
            }
            ring.submit()?;
            self.armed.set(true);
        }
        self.eventfd.read_at(0, 8).await.map_err(io::Error::from)?;
        let mut ring = self.ring.borrow_mut();
        for completion in ring.completion() {
            if completion.user_data() == POLL_USER_DATA {
                self.armed.set(false);
                if completion.result() < 0 {
                    return Err(io::Error::from_raw_os_error(-completion.result()));
                }
            }
        }
        Ok(())
    }
}
