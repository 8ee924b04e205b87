//! `ringline admin` against a real engine through its control socket: `show` says a logged-in user is
//! online, `queue` counts a message to an offline user, `kick` ends the session with GOAWAY(Kicked) and the
//! key logs in again, `revoke` ends it with GOAWAY(Revoked) and the old key is refused afterwards; refusals
//! exit 1 and an unreachable socket exits 2 naming the path; a revocation survives a crash. The socket file is mode 0600; garbage on it gets
//! an error line and the server goes on; a second server refuses a live socket; a stale one (after SIGKILL) is
//! replaced.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{Frame, Got, TestServer};
use wire::{ErrorCode, GoawayReason, UserId};

/// `ringline admin --data-dir DIR ARGS...`: (exit code, stdout, stderr).
fn admin(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .arg("admin")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ringline admin");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf-8 output");
    (output.status.code().expect("an exit code"), text(output.stdout), text(output.stderr))
}

/// `ringline admin ... --json users VERB USER`, which must succeed: its answer line.
fn admin_json(server: &TestServer, verb: &str, user: UserId) -> serde_json::Value {
    let (code, stdout, stderr) = admin(&server.data_dir, &["--json", "users", verb, &user.to_string()]);
    assert_eq!(code, 0, "users {verb} {user}: {stdout} {stderr}");
    serde_json::from_str(&stdout).expect("one JSON answer line")
}

fn socket_path(server: &TestServer) -> PathBuf {
    server.data_dir.join("admin.sock")
}

#[test]
fn show_queue_kick_and_revoke_on_a_running_server() {
    let mut server = TestServer::start("admin", 2, 10, &[]);
    let socket = socket_path(&server);
    let metadata = std::fs::metadata(&socket).expect("the admin socket exists");
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "only the server's user may connect");

    let ((alice, alice_key), (bob, _)) = server.users_on_different_cores();
    let mut client = server.login((alice, alice_key));
    let shown = admin_json(&server, "show", alice);
    assert_eq!((shown["answer"].as_str(), shown["online"].as_bool()), (Some("user"), Some(true)), "{shown}");
    assert_eq!(shown["generation"], 0);

    // A message to the offline user waits in its queue.
    let empty = admin_json(&server, "queue", bob);
    assert_eq!(empty["items"], 0, "{empty}");
    client.send(1, bob, b"hello");
    client.expect_ack(1);
    let queue = admin_json(&server, "queue", bob);
    assert_eq!(queue["items"], 1, "{queue}");
    assert!(queue["oldest_age_ms"].is_u64(), "{queue}");
    let (code, readable, _) = admin(&server.data_dir, &["users", "queue", &bob.to_string()]);
    assert_eq!(code, 0);
    assert!(readable.contains(&format!("user {bob}: 1 items queued")), "{readable}");

    // Kick: GOAWAY(Kicked), closed; the same key logs in again.
    assert_eq!(admin_json(&server, "kick", alice)["answer"], "kicked");
    assert_eq!(client.recv_significant(), Got::Frame(Frame::Goaway { reason: GoawayReason::Kicked }));
    assert_eq!(client.recv_until_closed(), []);
    let mut client = server.login((alice, alice_key));
    assert_eq!(admin_json(&server, "show", alice)["online"], true);

    // Revoke: GOAWAY(Revoked), closed; the old key is refused from then on.
    let revoked = admin_json(&server, "revoke", alice);
    assert_eq!((revoked["answer"].as_str(), revoked["generation"].as_u64()), (Some("revoked"), Some(1)), "{revoked}");
    assert_eq!(revoked["disconnected"], true);
    assert_eq!(client.recv_significant(), Got::Frame(Frame::Goaway { reason: GoawayReason::Revoked }));
    assert_eq!(client.recv_until_closed(), []);
    let mut refused = server.connect();
    refused.send_frame(&wire::ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: alice, key: alice_key });
    assert!(
        matches!(refused.recv_significant(), Got::Frame(Frame::Error { code: ErrorCode::AuthFailed, .. })),
        "the revoked key is refused"
    );
    let shown = admin_json(&server, "show", alice);
    assert_eq!((shown["generation"].as_u64(), shown["online"].as_bool()), (Some(1), Some(false)), "{shown}");
    // The revocation was durable before its answer: a crash does not bring the old key back.
    server.kill_and_restart(2, &[]);
    let mut refused = server.connect();
    refused.send_frame(&wire::ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: alice, key: alice_key });
    assert!(matches!(refused.recv_significant(), Got::Frame(Frame::Error { code: ErrorCode::AuthFailed, .. })));

    // Refusals exit 1 and say why.
    let (code, _, stderr) = admin(&server.data_dir, &["users", "show", "999"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    let (code, _, stderr) = admin(&server.data_dir, &["users", "kick", &bob.to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not online"), "{stderr}");
}

#[test]
fn garbage_on_the_socket_gets_an_error_line_and_the_server_goes_on() {
    let server = TestServer::start("admin-garbage", 1, 2, &[]);
    let (user, _) = server.user(0);
    let stream = UnixStream::connect(socket_path(&server)).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut answer = |writer: &mut UnixStream, line: &[u8]| {
        writer.write_all(line).expect("write");
        let mut text = String::new();
        reader.read_line(&mut text).expect("an answer line");
        text
    };
    for garbage in [&b"garbage\n"[..], b"\xff\xfe\x00\n", b"{\"request\":\"drop\",\"user\":1}\n", b"{}\n"] {
        let text = answer(&mut writer, garbage);
        assert!(text.starts_with(r#"{"answer":"error""#), "{text}");
    }
    let text = answer(&mut writer, format!("{{\"request\":\"show\",\"user\":{user}}}\n").as_bytes());
    assert!(text.starts_with(r#"{"answer":"user""#), "the same connection still answers: {text}");
    let mut too_long = vec![b'x'; ringline_core::limits::ADMIN_REQUEST_LINE_BYTES_MAX + 10];
    too_long.push(b'\n');
    let text = answer(&mut writer, &too_long);
    assert!(text.contains("longer than"), "{text}");

    let (code, stdout, stderr) = admin(&server.data_dir, &["users", "show", &user.to_string()]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(stdout.contains(&format!("user {user}: exists")), "{stdout}");
}

#[test]
fn a_live_socket_stops_a_second_server_and_a_stale_one_is_replaced() {
    let mut server = TestServer::start("admin-socket", 1, 2, &[]);
    let socket = socket_path(&server);
    let other_dir = std::env::temp_dir().join(format!("ringline-it-admin-second-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other_dir);
    let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1", "--data-dir"])
        .arg(&other_dir)
        .arg("--admin-socket")
        .arg(&socket)
        .env("RINGLINE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run a second server");
    let _ = std::fs::remove_dir_all(&other_dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("another server answers on the admin socket"), "{stderr}");

    // SIGKILL leaves the socket file behind; the next start replaces it.
    server.kill_and_restart(1, &[]);
    let (user, _) = server.user(0);
    let (code, stdout, stderr) = admin(&server.data_dir, &["users", "show", &user.to_string()]);
    assert_eq!(code, 0, "{stdout} {stderr}");

    // Without a server: exit 2, naming the path tried.
    let missing = server.data_dir.join("no-such.sock");
    let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["admin", "users", "show", "1", "--socket"])
        .arg(&missing)
        .output()
        .expect("run ringline admin");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(missing.to_str().expect("utf-8")), "{stderr}");
}
