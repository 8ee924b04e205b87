//! Test support: a real `ringline serve` process on a free loopback port with provisioned users (and, with
//! `start_tls`, a TLS port with a development certificate), and a blocking protocol client over plain TCP or
//! TLS. Reads have a generous timeout only so that a broken server fails a test instead of hanging it; no
//! test asserts on time.

#![allow(dead_code)]

pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use engine::data_dir::AccountStore;
use ringline_core::home::{ShardId, home_core};
use wire::{ClientFrame, DeviceKey, ServerFrame, UserId};

pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// How long `serve_to_exit` lets an engine run before it counts as started (a liveness guard, not a measure).
const STARTUP_REFUSAL_WAIT: Duration = Duration::from_secs(120);

/// A running engine process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub users: Vec<(UserId, DeviceKey)>,
    pub cores: u16,
    /// The `/metrics` address, when started with `--metrics` (read from its stdout line).
    pub metrics: Option<SocketAddr>,
    /// The TLS address, when started with `--tls-listen` (read from its stdout line).
    pub tls_addr: Option<SocketAddr>,
    /// The TLS certificate, when started with `start_tls`.
    pub tls_files: Option<tls::TlsFiles>,
    /// Leave the data directory (and keys file) in place when dropped, as evidence of a failed run.
    pub keep_data_dir: bool,
    child: Child,
}

impl TestServer {
    /// Provisions `users` users in a fresh data dir and starts `ringline serve` on `cores` cores.
    pub fn start(name: &str, cores: u16, users: u64, extra_args: &[&str]) -> Self {
        Self::start_with_file_size_max(name, cores, users, extra_args, None)
    }

    /// `start`, with the engine's soft RLIMIT_FSIZE at `file_size_max` (if any) and SIGXFSZ ignored, so
    /// writes past that size fail with EFBIG like writes to a full disk.
    pub fn start_with_file_size_max(
        name: &str,
        cores: u16,
        users: u64,
        extra_args: &[&str],
        file_size_max: Option<u64>,
    ) -> Self {
        let data_dir = Self::data_dir(name);
        let _ = std::fs::remove_dir_all(&data_dir);
        let keys_path = data_dir.with_extension("keys");
        let mut store = AccountStore::open(&data_dir).expect("data dir");
        store.provision(users, 1555, &keys_path).expect("provision");
        let users = std::fs::read_to_string(&keys_path)
            .expect("keys file")
            .lines()
            .filter_map(|line| wire::parse_keys_line(line).expect("keys line"))
            .map(|entry| (entry.user, entry.key))
            .collect();
        let spawned = spawn_engine(&data_dir, cores, extra_args, file_size_max);
        Self {
            addr: spawned.addr,
            data_dir,
            users,
            cores,
            metrics: spawned.metrics,
            tls_addr: spawned.tls,
            tls_files: None,
            keep_data_dir: false,
            child: spawned.child,
        }
    }

    fn data_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ringline-it-{name}-{}", std::process::id()))
    }

    /// `start`, with a TLS port too, serving a development certificate made by `ringline tls dev-cert`.
    pub fn start_tls(name: &str, cores: u16, users: u64, extra_args: &[&str]) -> Self {
        let files = tls::dev_cert(&Self::data_dir(name).with_extension("tls"));
        Self::start_tls_with(name, cores, users, files, extra_args)
    }

    /// `start`, with a TLS port serving `files`.
    pub fn start_tls_with(name: &str, cores: u16, users: u64, files: tls::TlsFiles, extra_args: &[&str]) -> Self {
        let cert = files.cert.to_str().expect("utf-8 path").to_owned();
        let key = files.key.to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
        args.extend_from_slice(extra_args);
        let mut server = Self::start(name, cores, users, &args);
        server.tls_files = Some(files);
        server
    }

    /// Kills the engine with SIGKILL (a crash: nothing is flushed) and starts it again on the same data
    /// directory with `cores` cores.
    pub fn kill_and_restart(&mut self, cores: u16, extra_args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let spawned = spawn_engine(&self.data_dir, cores, extra_args, None);
        (self.child, self.addr, self.metrics, self.tls_addr) =
            (spawned.child, spawned.addr, spawned.metrics, spawned.tls);
        self.cores = cores;
    }

    /// Stops the engine with SIGTERM, expects a clean exit, and starts it again on the same data directory.
    pub fn terminate_and_restart(&mut self, cores: u16, extra_args: &[&str]) {
        let status = self.stop();
        assert!(status.success(), "SIGTERM ends the engine cleanly: {status}");
        let spawned = spawn_engine(&self.data_dir, cores, extra_args, None);
        (self.child, self.addr, self.metrics, self.tls_addr) =
            (spawned.child, spawned.addr, spawned.metrics, spawned.tls);
        self.cores = cores;
    }

    /// Sets the running engine's soft RLIMIT_FSIZE (`None`: unlimited), as disk space running out or
    /// coming back.
    pub fn set_file_size_max(&self, file_size_max: Option<u64>) {
        let limit =
            libc::rlimit { rlim_cur: file_size_max.unwrap_or(libc::RLIM_INFINITY), rlim_max: libc::RLIM_INFINITY };
        // SAFETY: prlimit(2) on our own child with a valid rlimit and no old-value pointer.
        let result = unsafe { libc::prlimit(self.child.id() as i32, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
        assert_eq!(result, 0, "prlimit: {}", std::io::Error::last_os_error());
    }
}

/// A started engine: the process, its listening address and, with `--tls-listen` and `--metrics`, those.
struct Spawned {
    child: Child,
    addr: SocketAddr,
    tls: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

/// The address after `prefix` on a stdout line of the engine.
fn address_line(stdout: &mut impl BufRead, prefix: &str) -> SocketAddr {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a stdout line");
    line.strip_prefix(prefix)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("expected {prefix:?}..., got {line:?}"))
}

/// `ringline serve` on a free loopback port with `cores` cores and `data_dir`, logging warnings only.
fn serve_command(data_dir: &Path, cores: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringline"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", &cores.to_string(), "--data-dir"])
        .arg(data_dir)
        .env("RINGLINE_LOG", "warn");
    command
}

fn spawn_engine(data_dir: &Path, cores: u16, extra_args: &[&str], file_size_max: Option<u64>) -> Spawned {
    let mut command = serve_command(data_dir, cores);
    command.args(extra_args).stdout(Stdio::piped()).stderr(Stdio::inherit());
    if let Some(bytes) = file_size_max {
        // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit) are made.
        unsafe {
            command.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn().expect("spawn ringline");
    let stdout = child.stdout.take().expect("stdout");
    let mut stdout = BufReader::new(stdout);
    // The lines, in their documented order.
    let addr = address_line(&mut stdout, "ringline listening on ");
    let tls = extra_args.contains(&"--tls-listen").then(|| address_line(&mut stdout, "ringline tls listening on "));
    let metrics = extra_args.contains(&"--metrics").then(|| address_line(&mut stdout, "ringline metrics on "));
    Spawned { child, addr, tls, metrics }
}

impl TestServer {
    pub fn user(&self, index: usize) -> (UserId, DeviceKey) {
        self.users[index]
    }

    /// Two users with different home cores (or any two on one core).
    pub fn users_on_different_cores(&self) -> ((UserId, DeviceKey), (UserId, DeviceKey)) {
        let first = self.users[0];
        let other = self
            .users
            .iter()
            .copied()
            .find(|(user, _)| home_core(*user, self.cores) != home_core(first.0, self.cores))
            .unwrap_or(self.users[1]);
        (first, other)
    }

    pub fn home(&self, user: UserId) -> ShardId {
        home_core(user, self.cores)
    }

    pub fn connect(&self) -> TestClient {
        TestClient::connect(self.addr)
    }

    pub fn login(&self, (user, key): (UserId, DeviceKey)) -> TestClient {
        let mut client = self.connect();
        let queued = client.hello(user, key);
        client.queued_at_login = queued;
        client
    }

    /// Sends `signal` to the engine.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let result = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(result, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits for the engine to exit on its own (a shutdown already signalled), keeping the data directory.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Sends SIGTERM and waits for the exit status, keeping the data directory (for a test to look at or
    /// change before it starts an engine on it again).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }

    /// `ringline serve` on this server's data directory, expected to refuse to start: its output once it
    /// exits. An engine still running after `STARTUP_REFUSAL_WAIT` (it started after all) is killed, and its
    /// output so far returned with the status of that kill, so the test fails instead of hanging.
    pub fn serve_to_exit(&self, cores: u16) -> std::process::Output {
        let child = serve_command(&self.data_dir, cores)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringline");
        let pid = child.id() as i32;
        let (done, output) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(child.wait_with_output()));
        let output = output.recv_timeout(STARTUP_REFUSAL_WAIT).unwrap_or_else(|_| {
            // SAFETY: kill(2) on our own child's pid, not yet reaped (its waiter is still blocked).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            output.recv().expect("the waiter answers once the child is gone")
        });
        output.expect("wait for ringline")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = self.stop();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        std::mem::forget(self);
        status
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.keep_data_dir {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_file(self.data_dir.with_extension("keys"));
    }
}

/// A server frame as a test keeps it (owned fields, every field kept).
pub use wire::OwnedServerFrame as Frame;

/// What a test client read: a server frame, or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Frame(Frame),
    /// The server closed the connection.
    Closed,
}

/// What a test client talks through: a TCP stream, or TLS over one.
pub trait Transport: Read + Write {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl Transport for tls::TlsStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
}

pub struct TestClient<S: Transport = TcpStream> {
    pub stream: S,
    buffer: Vec<u8>,
    pub queued_at_login: u32,
}

impl TestClient {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self::over(stream)
    }
}

impl<S: Transport> TestClient<S> {
    /// A client speaking through `stream`.
    pub fn over(stream: S) -> Self {
        stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        Self { stream, buffer: Vec::new(), queued_at_login: 0 }
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send_frame(&mut self, frame: &ClientFrame<'_>) {
        let mut bytes = Vec::new();
        wire::encode_client(frame, &mut bytes);
        self.write_raw(&bytes);
    }

    /// HELLO, expecting WELCOME; returns the queued count.
    pub fn hello(&mut self, user: UserId, key: DeviceKey) -> u32 {
        self.send_frame(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key });
        match self.recv() {
            Got::Frame(Frame::Welcome { queued, .. }) => queued,
            other => panic!("expected WELCOME, got {other:?}"),
        }
    }

    pub fn send(&mut self, client_msg_id: u64, to: UserId, body: &[u8]) {
        self.send_frame(&ClientFrame::Send { client_msg_id, to, body });
    }

    pub fn delivered(&mut self, item_id: u64) {
        self.send_frame(&ClientFrame::Delivered { item_id });
    }

    /// The next frame from the server, or `Closed`.
    pub fn recv(&mut self) -> Got {
        loop {
            match wire::decode_server(&self.buffer, 1 << 20) {
                Ok(wire::Decoded::Frame { frame, consumed }) => {
                    let got = own(frame);
                    self.buffer.drain(..consumed);
                    return got;
                }
                Ok(wire::Decoded::Incomplete { .. }) => {}
                Err(error) => panic!("server sent a malformed frame: {error}"),
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Closed,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                // A TLS stream that ends without close_notify reads as an unexpected end.
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Got::Closed;
                }
                Err(error) => panic!("reading from the server: {error}"),
            }
        }
    }

    /// The next frame if one arrives within `wait`, else `None`. For polling a condition, never for
    /// asserting on time.
    pub fn recv_within(&mut self, wait: Duration) -> Option<Got> {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let got = loop {
            match wire::decode_server(&self.buffer, 1 << 20) {
                Ok(wire::Decoded::Frame { frame, consumed }) => {
                    let got = own(frame);
                    self.buffer.drain(..consumed);
                    break Some(got);
                }
                Ok(wire::Decoded::Incomplete { .. }) => {}
                Err(error) => panic!("server sent a malformed frame: {error}"),
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => break Some(Got::Closed),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    break None;
                }
                Err(error) => panic!("reading from the server: {error}"),
            }
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
        got
    }

    /// The next frame that is not a PING/PONG.
    pub fn recv_significant(&mut self) -> Got {
        loop {
            match self.recv() {
                Got::Frame(Frame::Ping { .. }) | Got::Frame(Frame::Pong { .. }) => continue,
                other => return other,
            }
        }
    }

    /// The next frame that is not a server PING (a PONG is returned).
    pub fn recv_significant_or_pong(&mut self) -> Got {
        loop {
            match self.recv() {
                Got::Frame(Frame::Ping { .. }) => continue,
                other => return other,
            }
        }
    }

    pub fn expect_ack(&mut self, client_msg_id: u64) -> u64 {
        match self.recv_significant() {
            Got::Frame(Frame::Ack { client_msg_id: id, server_id, .. }) if id == client_msg_id => server_id,
            other => panic!("expected ACK({client_msg_id}), got {other:?}"),
        }
    }

    pub fn expect_deliver(&mut self) -> (u64, UserId, Vec<u8>) {
        match self.recv_significant() {
            Got::Frame(Frame::Deliver { item_id, from, body, .. }) => (item_id, from, body),
            other => panic!("expected DELIVER, got {other:?}"),
        }
    }

    /// Reads until the server closes, returning every frame before that.
    pub fn recv_until_closed(&mut self) -> Vec<Got> {
        let mut frames = Vec::new();
        loop {
            match self.recv() {
                Got::Closed => return frames,
                other => frames.push(other),
            }
        }
    }
}

/// A decoded server frame as a `Got` (owned fields).
pub fn own(frame: ServerFrame<'_>) -> Got {
    Got::Frame(frame.into_owned())
}

/// `GET path` over HTTP/1.0: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP server");
    stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (status, body.to_owned())
}
