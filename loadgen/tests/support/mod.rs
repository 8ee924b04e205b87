//! Test support: a small fake ringline server built from the `wire` codec (one thread per connection, one lock
//! over all state) that keeps the protocol's promises — per-user queues, redelivery of unacknowledged items
//! after a reconnect, SEND dedup by client_msg_id, receipts — and can be told to break them on purpose (lose a
//! message after ACKing it) or to stress the client (cut a connection right after a DELIVER). Also helpers to
//! write a keys file and run the loadgen binary and locate (building it) the engine binary. `test_cert.rs`: test
//! certificates (also the TLS unit tests'); `tls.rs`: a TLS proxy to put in front of the fake server.

#![allow(dead_code)]

pub mod test_cert;
pub mod tls;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use wire::{
    ClientFrame, Decoded, ErrorCode, ReceiptKind, ServerFrame, UserKey, decode_client, encode_server, write_keys_line,
};

/// How the fake server misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeServerOptions {
    /// ACK every n-th new message but never store it (0: never).
    pub lose_every: u64,
    /// Cut the recipient's connection right after the first DELIVER written (before its DELIVERED is read).
    pub cut_after_first_deliver: bool,
}

#[derive(Clone)]
enum Item {
    Message { item_id: u64, from: u64, body: Vec<u8> },
    Receipt { item_id: u64, server_id: u64, peer: u64 },
}

impl Item {
    fn id(&self) -> u64 {
        match self {
            Item::Message { item_id, .. } | Item::Receipt { item_id, .. } => *item_id,
        }
    }
}

#[derive(Default)]
struct User {
    key: [u8; 32],
    connection: Option<(u64, TcpStream)>,
    queue: Vec<Item>,
}

#[derive(Default)]
struct ServerState {
    users: HashMap<u64, User>,
    dedup: HashMap<(u64, u64), u64>,
    next_id: u64,
    next_connection: u64,
    cut_done: bool,
    options: FakeServerOptions,
    /// Every user that sent a message.
    senders: BTreeSet<u64>,
}

/// A running fake server: its address, and what it saw.
pub struct FakeServer {
    pub address: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl FakeServer {
    /// The users that sent at least one message so far.
    pub fn senders(&self) -> BTreeSet<u64> {
        self.state.lock().expect("lock").senders.clone()
    }
}

fn frame_bytes(frame: &ServerFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_server(frame, &mut out);
    out
}

fn item_bytes(item: &Item) -> Vec<u8> {
    match item {
        Item::Message { item_id, from, body } => {
            frame_bytes(&ServerFrame::Deliver { item_id: *item_id, from: *from, server_time_us: 0, body })
        }
        Item::Receipt { item_id, server_id, peer } => frame_bytes(&ServerFrame::Receipt {
            item_id: *item_id,
            server_id: *server_id,
            peer: *peer,
            kind: ReceiptKind::Delivered,
            server_time_us: 0,
        }),
    }
}

impl ServerState {
    /// Writes `item` to `user`'s connection if it is online; may cut it (option).
    fn push(&mut self, user: u64, item: &Item) {
        let cut = self.options.cut_after_first_deliver && !self.cut_done && matches!(item, Item::Message { .. });
        let Some(entry) = self.users.get_mut(&user) else { return };
        let Some((_, stream)) = entry.connection.as_mut() else { return };
        let _ = stream.write_all(&item_bytes(item));
        if cut {
            self.cut_done = true;
            let _ = stream.shutdown(Shutdown::Both);
            entry.connection = None;
        }
    }
}

/// Starts the fake server for `users` on 127.0.0.1; returns its address. It runs until the test process ends.
pub fn start_fake_server(users: &[UserKey], options: FakeServerOptions) -> SocketAddr {
    start_watched_fake_server(users, options).address
}

/// `start_fake_server`, with a handle that tells what the server saw.
pub fn start_watched_fake_server(users: &[UserKey], options: FakeServerOptions) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let mut state = ServerState { options, next_id: 1, ..Default::default() };
    for user in users {
        state.users.insert(user.user, User { key: user.key, ..Default::default() });
    }
    let state = Arc::new(Mutex::new(state));
    let watched = FakeServer { address, state: state.clone() };
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let state = state.clone();
            std::thread::spawn(move || serve_connection(stream, state));
        }
    });
    watched
}

fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<ServerState>>) {
    let _ = stream.set_nodelay(true);
    let connection_id = {
        let mut state = state.lock().expect("lock");
        state.next_connection += 1;
        state.next_connection
    };
    let mut user_id: Option<u64> = None;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while let Ok(read) = stream.read(&mut chunk) {
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut at = 0;
        loop {
            let (frame, consumed) = match decode_client(&buffer[at..], 64 * 1024) {
                Ok(Decoded::Frame { frame, consumed }) => (frame, consumed),
                Ok(Decoded::Incomplete { .. }) => break,
                Err(_) => return,
            };
            at += consumed;
            let mut state = state.lock().expect("lock");
            if !handle_frame(&mut state, &mut stream, connection_id, &mut user_id, frame) {
                return;
            }
        }
        buffer.drain(..at);
    }
    let mut state = state.lock().expect("lock");
    if let Some(user) = user_id.and_then(|id| state.users.get_mut(&id))
        && user.connection.as_ref().is_some_and(|(id, _)| *id == connection_id)
    {
        user.connection = None;
    }
}

/// Handles one frame; false to close the connection.
fn handle_frame(
    state: &mut ServerState,
    stream: &mut TcpStream,
    connection_id: u64,
    user_id: &mut Option<u64>,
    frame: ClientFrame<'_>,
) -> bool {
    let current = user_id.and_then(|id| state.users.get(&id)).and_then(|user| user.connection.as_ref());
    if user_id.is_some() && current.is_none_or(|(id, _)| *id != connection_id) {
        return false; // replaced or cut
    }
    match frame {
        ClientFrame::Hello { user, key, .. } => {
            let Some(entry) = state.users.get_mut(&user).filter(|entry| entry.key == key) else {
                let _ = stream.write_all(&frame_bytes(&ServerFrame::Error { code: ErrorCode::AuthFailed, text: "" }));
                return false;
            };
            let writer = stream.try_clone().expect("clone");
            if let Some((_, old)) = entry.connection.replace((connection_id, writer)) {
                let _ = old.shutdown(Shutdown::Both);
            }
            *user_id = Some(user);
            let queued = entry.queue.len() as u32;
            let mut out = frame_bytes(&ServerFrame::Welcome { version: 1, server_time_us: 0, queued });
            for item in &entry.queue {
                out.extend_from_slice(&item_bytes(item));
            }
            let _ = stream.write_all(&out);
        }
        _ if user_id.is_none() => return false,
        ClientFrame::Ping { nonce } => {
            let _ = stream.write_all(&frame_bytes(&ServerFrame::Pong { nonce }));
        }
        ClientFrame::Pong { .. } | ClientFrame::Read { .. } => {}
        // The fake server does not register: the loadgen never asks it to.
        ClientFrame::RegisterRequest { .. } | ClientFrame::RegisterVerify { .. } => return false,
        ClientFrame::Send { client_msg_id, to, body } => {
            let sender = user_id.expect("checked above");
            state.senders.insert(sender);
            let server_id = match state.dedup.get(&(sender, client_msg_id)) {
                Some(server_id) => *server_id,
                None => {
                    let server_id = state.next_id;
                    state.next_id += 1;
                    state.dedup.insert((sender, client_msg_id), server_id);
                    let lose = state.options.lose_every > 0 && server_id.is_multiple_of(state.options.lose_every);
                    if !lose && state.users.contains_key(&to) {
                        let item = Item::Message { item_id: server_id, from: sender, body: body.to_vec() };
                        state.users.get_mut(&to).expect("exists").queue.push(item.clone());
                        state.push(to, &item);
                    }
                    server_id
                }
            };
            let ack = ServerFrame::Ack { client_msg_id, server_id, server_time_us: 0 };
            let _ = stream.write_all(&frame_bytes(&ack));
        }
        ClientFrame::Delivered { item_id } => {
            let user = user_id.expect("checked above");
            let entry = state.users.get_mut(&user).expect("exists");
            let Some(index) = entry.queue.iter().position(|item| item.id() == item_id) else { return true };
            let item = entry.queue.remove(index);
            if let Item::Message { item_id, from, .. } = item {
                let receipt_id = state.next_id;
                state.next_id += 1;
                let receipt = Item::Receipt { item_id: receipt_id, server_id: item_id, peer: user };
                if let Some(sender) = state.users.get_mut(&from) {
                    sender.queue.push(receipt.clone());
                    state.push(from, &receipt);
                }
            }
        }
    }
    true
}

/// `count` users with made-up keys, and a keys file for them.
pub fn users_and_keys_file(count: u64, dir: &Path) -> (Vec<UserKey>, PathBuf) {
    let users: Vec<UserKey> = (0..count)
        .map(|index| UserKey {
            user: 15_550_000_000 + index,
            key: std::array::from_fn(|byte| (byte as u64 + index) as u8),
        })
        .collect();
    let mut text = String::from("# ringline-keys v1\n");
    for user in &users {
        write_keys_line(user, &mut text);
    }
    let path = dir.join("keys.txt");
    std::fs::write(&path, text).expect("write keys");
    (users, path)
}

/// A fresh directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// Runs `ringline-loadgen` with `args`.
pub fn run_loadgen(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringline-loadgen")).args(args).output().expect("runs")
}

/// `ringline-loadgen run ARGS… --report DIR/report.json`: what it printed and the report it wrote.
pub fn run_with_report(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let report = dir.join("report.json");
    let mut argv = vec!["run"];
    argv.extend_from_slice(args);
    argv.extend(["--report", report.to_str().expect("utf-8")]);
    let output = run_loadgen(&argv);
    let json = read_report(&report);
    (output, json)
}

/// The JSON report a run wrote.
pub fn read_report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report is JSON")
}

/// The `ringline` binary next to ours, built with the same profile.
pub fn engine_bin() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_ringline-loadgen"));
    let profile_dir = loadgen.parent().expect("target profile dir").to_owned();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "-p", "ringline", "--bin", "ringline"]);
    // Not the variables `cargo test` sets for this test (CARGO_PKG_*, CARGO_MANIFEST_DIR, …): with them the
    // build differs from a plain `cargo build` and every alternation between the two rebuilt the engine.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
            build.env_remove(key.as_ref());
        }
    }
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "building the engine failed");
    let bin = profile_dir.join("ringline");
    assert!(bin.is_file(), "no engine binary at {}", bin.display());
    bin
}
