//! A small non-blocking native-protocol client for the benchmark drivers (`tls_handshakes`, `idle_hold`):
//! a socket connecting without blocking, an optional rustls client on it, and an optional HELLO that it
//! sends once connected (and the TLS handshake is done) and whose WELCOME it waits for. Driven by the
//! caller's epoll loop: `drive` on every event. It measures the engine; it is not a load generator (no
//! ledger, no messages; `ringline-loadgen` is the tool for those). Also what every driver needs around it:
//! HELLOs pre-encoded from a keys file, a process's CPU time and RSS, and an epoll instance.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::{ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, NamedGroup, RootCertStore};
use socket2::{Domain, Protocol, Socket, Type};
use wire::{ClientFrame, Decoded, ServerFrame, UserKey};

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect or TLS handshake in progress.
    Connecting,
    /// HELLO sent, waiting for WELCOME.
    LoggingIn,
    /// Connected (and logged in, if there was a HELLO).
    Ready,
    /// Closed or refused.
    Failed,
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    tls: Option<ClientConnection>,
    hello: Option<Vec<u8>>,
    /// Plain bytes not yet written (plain connections only).
    pending: Vec<u8>,
    inbox: Vec<u8>,
    /// Connected only once a TLS 1.3 session ticket has arrived (it follows the handshake).
    await_ticket: bool,
    pub phase: Phase,
}

impl Conn {
    /// Starts connecting to `target`; with `tls`, speaks TLS; with `hello`, logs in after connecting.
    pub fn start(
        target: SocketAddr,
        tls: Option<(&Arc<ClientConfig>, &ServerName<'static>)>,
        hello: Option<Vec<u8>>,
    ) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        match socket.connect(&target.into()) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(error) => return Err(error),
        }
        let tls = match tls {
            Some((config, name)) => {
                Some(ClientConnection::new(config.clone(), name.clone()).map_err(io::Error::other)?)
            }
            None => None,
        };
        Ok(Self {
            stream: socket.into(),
            tls,
            hello,
            pending: Vec::new(),
            inbox: Vec::new(),
            await_ticket: false,
            phase: Phase::Connecting,
        })
    }

    /// Counts the connection as connected only once the server's session ticket arrived, so the client can
    /// resume next time (in TLS 1.3 the tickets come after the client's side of the handshake is done).
    pub fn awaiting_ticket(mut self) -> Self {
        self.await_ticket = true;
        self
    }

    /// Whether the TLS handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.tls.as_ref().and_then(|tls| tls.handshake_kind()) == Some(rustls::HandshakeKind::Resumed)
    }

    /// Moves what the socket has and takes; advances the phase. Call on every readiness event.
    pub fn drive(&mut self) -> Phase {
        if let Err(error) = self.pump()
            && error.kind() != io::ErrorKind::WouldBlock
        {
            self.phase = Phase::Failed;
        }
        self.phase
    }

    fn pump(&mut self) -> io::Result<()> {
        loop {
            let progressed = self.read()? | self.advance()? | self.write()?;
            if !progressed || self.phase == Phase::Failed {
                return Ok(());
            }
        }
    }

    /// Reads what is waiting. Returns whether anything came.
    fn read(&mut self) -> io::Result<bool> {
        let mut came = false;
        loop {
            let read = match &mut self.tls {
                Some(tls) => match tls.read_tls(&mut self.stream) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(read) => {
                        tls.process_new_packets().map_err(io::Error::other)?;
                        let mut chunk = [0u8; 4096];
                        loop {
                            match tls.reader().read(&mut chunk) {
                                Ok(0) => break,
                                Ok(got) => self.inbox.extend_from_slice(&chunk[..got]),
                                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                                Err(error) => return Err(error),
                            }
                        }
                        read
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(came),
                    Err(error) => return Err(error),
                },
                None => {
                    let mut chunk = [0u8; 4096];
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(got) => {
                            self.inbox.extend_from_slice(&chunk[..got]);
                            got
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(came),
                        Err(error) => return Err(error),
                    }
                }
            };
            came |= read > 0;
        }
    }

    /// Moves the phase on. Returns whether it queued something to write.
    fn advance(&mut self) -> io::Result<bool> {
        match self.phase {
            Phase::Connecting => {
                let connected = match &self.tls {
                    Some(tls) => !tls.is_handshaking() && (!self.await_ticket || tls.tls13_tickets_received() > 0),
                    None => self.stream.peer_addr().is_ok(),
                };
                if !connected {
                    return Ok(false);
                }
                let Some(hello) = self.hello.take() else {
                    self.phase = Phase::Ready;
                    return Ok(false);
                };
                match &mut self.tls {
                    Some(tls) => tls.writer().write_all(&hello)?,
                    None => self.pending.extend_from_slice(&hello),
                }
                self.phase = Phase::LoggingIn;
                Ok(true)
            }
            Phase::LoggingIn => {
                match wire::decode_server(&self.inbox, 1 << 16) {
                    Ok(Decoded::Frame { frame: ServerFrame::Welcome { .. }, .. }) => self.phase = Phase::Ready,
                    Ok(Decoded::Incomplete { .. }) => {}
                    _ => self.phase = Phase::Failed,
                }
                Ok(false)
            }
            Phase::Ready | Phase::Failed => Ok(false),
        }
    }

    /// Writes what is queued. Returns whether anything went.
    fn write(&mut self) -> io::Result<bool> {
        let mut went = false;
        match &mut self.tls {
            Some(tls) => {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(written) => went |= written > 0,
                        Err(error)
                            if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected) =>
                        {
                            break;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            None => {
                while !self.pending.is_empty() {
                    match self.stream.write(&self.pending) {
                        Ok(written) => {
                            self.pending.drain(..written);
                            went |= written > 0;
                        }
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        // Not connected yet.
                        Err(error) if error.kind() == io::ErrorKind::NotConnected => break,
                        Err(error) => return Err(error),
                    }
                }
            }
        }
        Ok(went)
    }
}

/// A client trusting the PEM certificate(s) in `ca`, offering ALPN `ringline/1`, resuming as `resumption`
/// says, offering only `suite` if given (else rustls' list, AES-256-GCM first).
pub fn client_config(
    ca: &str,
    resumption: Resumption,
    suite: Option<rustls::SupportedCipherSuite>,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).map_err(|error| format!("{ca}: {error}"))? {
        roots.add(certificate.map_err(|error| format!("{ca}: {error}"))?).map_err(|error| format!("{ca}: {error}"))?;
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suite) = suite {
        provider.cipher_suites = vec![suite];
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![wire::TLS_ALPN_PROTOCOL.to_vec()];
    config.resumption = resumption;
    Ok(Arc::new(config))
}

/// A client session store with one deep pool of TLS 1.3 tickets for every server name, so a storm of
/// reconnections all find a ticket (rustls' own store keeps 8 per name). Bounded by `tickets_max`.
#[derive(Debug)]
pub struct TicketPool {
    tickets: Mutex<VecDeque<Tls13ClientSessionValue>>,
    tickets_max: usize,
    kx_hint: Mutex<Option<NamedGroup>>,
}

impl TicketPool {
    pub fn new(tickets_max: usize) -> Arc<Self> {
        Arc::new(Self { tickets: Mutex::new(VecDeque::new()), tickets_max, kx_hint: Mutex::new(None) })
    }

    pub fn len(&self) -> usize {
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        *self.kx_hint.lock().unwrap_or_else(PoisonError::into_inner) = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx_hint.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut tickets = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        if tickets.len() < self.tickets_max {
            tickets.push_back(value);
        }
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.tickets.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }
}

/// `user`'s HELLO, encoded: the drivers encode each user's once, before any clock starts.
pub fn encode_hello(user: &UserKey) -> Vec<u8> {
    let mut bytes = Vec::new();
    let hello = ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: user.user, key: user.key };
    wire::encode_client(&hello, &mut bytes);
    bytes
}

/// The encoded HELLOs of the first `count_max` users of a keys file (`ringline users provision`). Lines that
/// hold no user (the header, a malformed line) are skipped; only an unreadable file is an error.
pub fn read_hellos(path: &str, count_max: usize) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("reading {path}: {error}"))?;
    Ok(text
        .lines()
        .filter_map(|line| wire::parse_keys_line(line).ok().flatten())
        .take(count_max)
        .map(|user| encode_hello(&user))
        .collect())
}

/// A process's CPU time so far (user + system), in microseconds, from /proc/PID/stat.
pub fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf is a plain query.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000 / ticks)
}

/// A process's resident memory, in bytes, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One epoll instance for a driver thread.
pub struct Epoll {
    fd: std::os::fd::OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the result is checked before it is owned.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024] })
    }

    /// Watches `stream` (edge-triggered, in and out) under `token`.
    pub fn add(&self, stream: &TcpStream, token: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: valid epoll and socket descriptors and event.
        let result =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut event) };
        if result < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Waits up to `timeout_ms` and returns the tokens that had events.
    pub fn wait(&mut self, timeout_ms: i32, tokens: &mut Vec<u64>) {
        use std::os::fd::AsRawFd;
        tokens.clear();
        // SAFETY: `events` is a valid buffer of its length.
        let ready = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), self.events.len() as i32, timeout_ms)
        };
        for event in &self.events[..ready.max(0) as usize] {
            tokens.push(event.u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_hellos_encodes_the_first_users_and_skips_lines_without_one() {
        let users = [UserKey { user: 15_550_000_001, key: [1; 32] }, UserKey { user: 15_550_000_002, key: [2; 32] }];
        let mut text = format!("{}\nnot a user\n", wire::KEYS_FILE_HEADER);
        for user in &users {
            wire::write_keys_line(user, &mut text);
            text.push('\n');
        }
        let path = std::env::temp_dir().join(format!("ringline-benches-keys-{}", std::process::id()));
        std::fs::write(&path, text).expect("write keys file");
        let path_text = path.to_str().expect("utf-8 path");
        let all = read_hellos(path_text, usize::MAX).expect("read");
        let first = read_hellos(path_text, 1).expect("read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(all, users.iter().map(encode_hello).collect::<Vec<_>>());
        assert_eq!(first, all[..1]);
        let decoded = wire::decode_client(&all[1], wire::FRAME_SIZE_MAX_DEFAULT);
        let hello = ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: users[1].user, key: users[1].key };
        assert_eq!(decoded, Ok(Decoded::Frame { frame: hello, consumed: all[1].len() }));
        assert!(read_hellos("/nonexistent/keys", 1).is_err());
    }
}
