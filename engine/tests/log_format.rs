//! `ringline serve --log-format json`: every line the real binary writes to stderr is a JSON object with
//! `level`, `target` and `message`, from the start through a SIGTERM shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn json_log_format_writes_one_json_object_per_line_with_level_target_and_message() {
    let data_dir = std::env::temp_dir().join(format!("ringline-it-json-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1", "--log-format", "json", "--data-dir"])
        .arg(&data_dir)
        .env("RINGLINE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringline");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a stdout line");
    assert!(line.starts_with("ringline listening on "), "{line:?}");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().expect("wait");
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "start, serving and stop at least:\n{stderr}");
    let mut messages = Vec::new();
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(event.get(field).and_then(serde_json::Value::as_str).is_some(), "no {field}: {line}");
        }
        messages.push(event["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(messages.iter().any(|message| message == "ringline stopped"), "the shutdown is logged too: {messages:?}");
}
