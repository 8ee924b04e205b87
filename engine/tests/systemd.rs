//! Running under systemd: `ringline serve` with `NOTIFY_SOCKET` pointing at a datagram socket this test owns
//! says `READY=1` once it listens, pings `WATCHDOG=1` while its cores tick, and says `STOPPING=1` after
//! SIGTERM; and the shipped unit file passes `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Only so that a broken server fails the test instead of hanging it; nothing is measured.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringline-systemd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The next notification, as its `KEY=VALUE` lines.
fn next_message(socket: &UnixDatagram) -> Vec<String> {
    let mut buffer = [0u8; 4096];
    let length = socket.recv(&mut buffer).expect("a notification before the timeout");
    String::from_utf8_lossy(&buffer[..length]).lines().map(str::to_owned).collect()
}

/// Reads notifications until one has `line`; returns the lines of all seen so far, that one last.
fn until(socket: &UnixDatagram, line: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let message = next_message(socket);
        let found = message.iter().any(|have| have == line);
        seen.extend(message);
        if found {
            return seen;
        }
    }
}

#[test]
fn ready_then_watchdog_then_stopping_after_sigterm() {
    let dir = scratch("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket.set_read_timeout(Some(RECEIVE_TIMEOUT)).expect("timeout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "2", "--data-dir"])
        .arg(dir.join("data"))
        .env("RINGLINE_LOG", "warn")
        .env("NOTIFY_SOCKET", &socket_path)
        // Half a second between pings.
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ringline");

    let first = next_message(&socket);
    assert!(first.contains(&"READY=1".to_owned()), "READY=1 comes first: {first:?}");
    assert!(first.iter().any(|line| line.starts_with("STATUS=serving on 127.0.0.1:")), "{first:?}");
    // The first ping at once, the next half a period later: the pings go on while the cores tick.
    for _ in 0..2 {
        let before_term = until(&socket, "WATCHDOG=1");
        assert!(!before_term.contains(&"STOPPING=1".to_owned()), "{before_term:?}");
    }

    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let after_term = until(&socket, "STOPPING=1");
    assert!(!after_term.contains(&"READY=1".to_owned()), "{after_term:?}");
    let status = child.wait().expect("wait");
    assert!(status.success(), "SIGTERM ends the engine cleanly: {status}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_notify_socket_nothing_is_sent_and_serve_runs_as_before() {
    let dir = scratch("plain");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1", "--data-dir"])
        .arg(dir.join("data"))
        .env("RINGLINE_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ringline");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line)
        .expect("a line");
    assert!(line.starts_with("ringline listening on "), "{line}");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.wait().expect("wait").success());
    let _ = std::fs::remove_dir_all(dir);
}

/// `systemd-analyze verify` on a copy of deploy/systemd/ringline.service whose ExecStart names the binary
/// just built (verify checks that the program exists).
#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    if !tool_present("systemd-analyze", "systemd") {
        return;
    }
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/ringline.service");
    let text = std::fs::read_to_string(&unit).expect("the unit file");
    assert!(text.contains("ExecStart=/usr/bin/ringline serve --config /etc/ringline/ringline.toml\n"), "{text}");
    let dir = scratch("unit");
    let copy = dir.join("ringline.service");
    std::fs::write(&copy, text.replace("/usr/bin/ringline", env!("CARGO_BIN_EXE_ringline"))).expect("write");
    let output = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Lines about the host's other units (a container without a running systemd) are not this unit's.
    let ours: Vec<&str> = stderr.lines().filter(|line| line.contains("ringline.service")).collect();
    assert!(output.status.success() && ours.is_empty(), "systemd-analyze verify: {}\n{stderr}", output.status);
    let _ = std::fs::remove_dir_all(dir);
}

/// Whether `tool` runs. Absent under CI (`CI` set): fail with the install command; by hand: say so and skip.
fn tool_present(tool: &str, package: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok_and(|output| output.status.success()) {
        return true;
    }
    let install = format!("apt-get install -y {package}");
    assert!(std::env::var_os("CI").is_none(), "{tool} is missing: {install}");
    println!("skipped: install {tool} ({install})");
    false
}
