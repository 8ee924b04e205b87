//! The durability promise end to end, with the ledger as the judge: a chat run with an offline share against a
//! real engine, which is killed with SIGKILL in the middle of the run and started again on the same data
//! directory and port. The clients reconnect with backoff and carry on; at the end every ACKed message must
//! have been delivered, none twice (redeliveries of unacknowledged deliveries are told apart by id), none out
//! of order. Waits here only choreograph the crash; nothing asserts on time.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

fn start_engine(bin: &Path, listen: &str, data_dir: &Path) -> Child {
    let mut child = Command::new(bin)
        .args(["serve", "--listen", listen, "--cores", "2", "--data-dir"])
        .arg(data_dir)
        .env("RINGLINE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("engine starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    assert!(line.starts_with("ringline listening on"), "unexpected first line: {line:?}");
    child
}

#[test]
fn sigkill_in_the_middle_of_a_chat_run_loses_no_acked_message() {
    let bin = engine_bin();
    let dir = test_dir("engine-crash");
    let data_dir = dir.join("data");
    let keys = dir.join("users.keys");
    let provisioned = Command::new(&bin)
        .args(["users", "provision", "--count", "300", "--data-dir"])
        .arg(&data_dir)
        .arg("--keys-out")
        .arg(&keys)
        .status()
        .expect("provision runs");
    assert!(provisioned.success());
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let listen = format!("127.0.0.1:{port}");
    let mut engine = start_engine(&bin, &listen, &data_dir);

    let report_path = dir.join("report.json");
    let loadgen = Command::new(env!("CARGO_BIN_EXE_ringline-loadgen"))
        .args(["run", "--target", &listen, "--users"])
        .arg(&keys)
        .args(["--connections", "300", "--ramp", "1000", "--scenario", "offline", "--offline-share", "0.3"])
        .args(["--rate", "300", "--duration", "8", "--drain-timeout", "20", "--report"])
        .arg(&report_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen starts");

    // Into the hold (the controller starts the ramp ~1.2 s after it starts, the ramp takes 0.3 s), then a
    // crash: nothing is flushed, nothing is closed politely.
    std::thread::sleep(Duration::from_secs(4));
    engine.kill().expect("SIGKILL");
    engine.wait().expect("reaped");
    let mut engine = start_engine(&bin, &listen, &data_dir);

    let output = loadgen.wait_with_output().expect("loadgen ends");
    let _ = engine.kill();
    let _ = engine.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = read_report(&report_path);
    assert_eq!(report["lost"], 0, "{stdout}");
    assert_eq!(report["duplicated"], 0, "{stdout}");
    assert_eq!(report["reordered"], 0, "{stdout}");
    let acked = report["messages_acked"].as_u64().expect("acked");
    assert!(acked > 0, "{stdout}");
    assert_eq!(report["messages_delivered"].as_u64(), Some(acked), "{stdout}");
    // The crash was seen: clients lost their connections and came back.
    let errors = report["errors"].as_object().expect("errors");
    assert!(errors.keys().any(|kind| kind.starts_with("io/")), "no disconnect seen: {stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
