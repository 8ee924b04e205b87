//! Remote agents over the control protocol: the agent's token check (a missing or wrong token is refused with
//! a clear line to the controller and in the agent's log), the refusal to listen beyond loopback without a
//! token, and the controller's version and clock checks against a fake agent that lies about them. Real
//! processes, real sockets; no timings asserted.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use support::*;

const TOKEN_ENV: &str = "RINGLINE_AGENT_TOKEN";

/// `ringline-loadgen agent --listen 127.0.0.1:0 --once` with `token` in the environment (or none); its
/// address once it listens.
fn start_agent(token: Option<&str>) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringline-loadgen"));
    command.args(["agent", "--listen", "127.0.0.1:0", "--once"]).env_remove(TOKEN_ENV);
    if let Some(token) = token {
        command.env(TOKEN_ENV, token);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("agent starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("agent prints its address");
    let address = line.trim().strip_prefix("listening ").expect("listening ADDR").parse().expect("address");
    (child, address)
}

/// Sends `hello` as the controller's greeting; returns the agent's answer line.
fn greet(address: SocketAddr, hello: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream.write_all(hello.as_bytes()).expect("writes");
    stream.write_all(b"\n").expect("writes");
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).expect("reads the answer");
    answer
}

fn stderr_after_exit(child: Child) -> (bool, String) {
    let output = child.wait_with_output().expect("agent exits");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn an_agent_refuses_a_missing_or_wrong_token_and_says_why() {
    let (agent, address) = start_agent(Some("correct horse"));
    let answer = greet(address, r#"{"type":"hello","sent_at_us":1}"#);
    assert!(answer.contains(r#""type":"failed""#) && answer.contains("agent token missing"), "{answer}");
    let (success, stderr) = stderr_after_exit(agent);
    assert!(!success);
    assert!(stderr.contains("agent token missing"), "{stderr}");

    let (agent, address) = start_agent(Some("correct horse"));
    let mut stream = TcpStream::connect(address).expect("connects");
    stream.write_all(b"{\"type\":\"hello\",\"token\":\"correct horsf\",\"sent_at_us\":1}\n").expect("writes");
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).expect("reads");
    assert!(answer.contains("agent token wrong"), "{answer}");
    let mut rest = String::new();
    assert_eq!(reader.read_line(&mut rest).expect("reads EOF"), 0, "the agent closed the connection: {rest}");
    let (success, stderr) = stderr_after_exit(agent);
    assert!(!success);
    assert!(stderr.contains("agent token wrong"), "{stderr}");
}

#[test]
fn the_right_token_gets_the_agents_ready_with_its_version_and_clock() {
    let (agent, address) = start_agent(Some("correct horse"));
    let answer = greet(address, r#"{"type":"hello","token":"correct horse","sent_at_us":1}"#);
    let ready: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(ready["type"], "ready", "{answer}");
    assert_eq!(ready["version"], env!("CARGO_PKG_VERSION"));
    assert!(ready["protocol_version"].as_u64().expect("number") >= 2);
    assert!(ready["clock_us"].as_u64().expect("number") > 1_600_000_000_000_000);
    // Closing without a plan ends the agent's one controller cleanly.
    let (success, stderr) = stderr_after_exit(agent);
    assert!(success, "{stderr}");
}

#[test]
fn an_agent_without_a_token_listens_on_loopback_only() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringline-loadgen"))
        .args(["agent", "--listen", "0.0.0.0:0", "--once"])
        .env_remove(TOKEN_ENV)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0:0 without --agent-token"), "{stderr}");
}

/// A chat run of `users` users through one remote agent started with `token` and named as `ADDR{suffix}` in
/// `--agents`, the controller giving the same token; what it printed and reported. The agent has exited.
fn run_through_remote_agent(
    name: &str,
    users: u64,
    suffix: &str,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let dir = test_dir(name);
    let (user_keys, keys) = users_and_keys_file(users, &dir);
    let target = start_fake_server(&user_keys, FakeServerOptions::default()).to_string();
    let (agent, address) = start_agent(Some("s3cret-token"));
    let agents = format!("{address}{suffix}");
    let connections = users.to_string();
    let mut args = vec![
        "--target",
        &target,
        "--users",
        keys.to_str().expect("utf-8"),
        "--connections",
        &connections,
        "--duration",
        "1",
        "--agents",
        &agents,
        "--agent-token",
        "s3cret-token",
    ];
    args.extend_from_slice(extra);
    let result = run_with_report(&dir, &args);
    let (success, stderr) = stderr_after_exit(agent);
    assert!(success, "{stderr}");
    result
}

#[test]
fn a_run_through_a_remote_agent_with_its_token_passes() {
    let extra = ["--ramp", "200", "--rate", "50", "--drain-timeout", "5"];
    let (output, report) = run_through_remote_agent("agents-token", 20, "", &extra);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["agents"], 1);
    let notes = report["notes"].to_string();
    assert!(notes.contains("clock offset"), "the remote agent's clock offset is reported: {notes}");
    assert_eq!(report["connections_established"], 20);
    assert_eq!(report["lost"], 0);
}

/// A fake agent: answers the controller's hello with `ready` edited by `lie` (given the hello).
fn start_lying_agent(lie: fn(&serde_json::Value) -> serde_json::Value) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return };
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let hello: serde_json::Value = serde_json::from_str(&line).expect("hello is JSON");
        let mut writer = stream;
        let _ = writeln!(writer, "{}", lie(&hello));
        // Hold the connection until the controller closes it.
        let _ = reader.read_line(&mut line);
    });
    address
}

fn ready_from(hello: &serde_json::Value, version: &str, clock_us: u64) -> serde_json::Value {
    assert_eq!(hello["type"], "hello");
    serde_json::json!({
        "type": "ready", "cores": 1, "connections_max": 1000, "pid": 1,
        "version": version, "protocol_version": 2, "clock_us": clock_us,
    })
}

fn run_against(agent: SocketAddr, extra: &[&str]) -> (i32, String) {
    let dir = test_dir(&format!("agents-liar-{}", agent.port()));
    let (_, keys) = users_and_keys_file(5, &dir);
    let agents = agent.to_string();
    let mut args = vec![
        "run",
        "--target",
        "127.0.0.1:9",
        "--users",
        keys.to_str().expect("utf-8"),
        "--connections",
        "5",
        "--agents",
        &agents,
    ];
    args.extend_from_slice(extra);
    let output = run_loadgen(&args);
    (output.status.code().expect("exited"), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn the_controller_refuses_an_agent_of_another_version() {
    let agent = start_lying_agent(|hello| {
        let sent = hello["sent_at_us"].as_u64().expect("number");
        ready_from(hello, "0.0.1-elsewhere", sent)
    });
    let (code, stderr) = run_against(agent, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("agent version mismatch"), "{stderr}");
    assert!(stderr.contains("0.0.1-elsewhere") && stderr.contains(env!("CARGO_PKG_VERSION")), "{stderr}");
}

#[test]
fn the_controller_refuses_an_agent_whose_clock_is_off() {
    // The agent claims a clock ten seconds ahead of the controller's greeting.
    let agent = start_lying_agent(|hello| {
        let sent = hello["sent_at_us"].as_u64().expect("number");
        ready_from(hello, env!("CARGO_PKG_VERSION"), sent + 10_000_000)
    });
    let (code, stderr) = run_against(agent, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("ms off the controller's") && stderr.contains("--agent-clock-offset-max-ms"), "{stderr}");
    // The same offset under a bound that allows it gets past the greeting (to the capacity check here).
    let agent = start_lying_agent(|hello| {
        let sent = hello["sent_at_us"].as_u64().expect("number");
        let mut ready = ready_from(hello, env!("CARGO_PKG_VERSION"), sent + 10_000_000);
        ready["connections_max"] = 1.into();
        ready
    });
    let (code, stderr) = run_against(agent, &["--agent-clock-offset-max-ms", "20000"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("ms off"), "{stderr}");
    assert!(stderr.contains("fewer than 5"), "{stderr}");
}

/// A documentation range (RFC 5737) that this host has no address in: binding to it fails.
fn foreign_range() -> &'static str {
    ["198.51.100.0/30", "203.0.113.0/30", "192.0.2.0/30"]
        .into_iter()
        .find(|range| {
            let first = range.replace("0/30", "1");
            std::net::UdpSocket::bind((first.as_str(), 0)).is_err()
                && std::net::UdpSocket::bind((range.replace("0/30", "2").as_str(), 0)).is_err()
        })
        .expect("this host holds an address in every documentation range")
}

/// `--agents ADDR=CIDR` gives that agent its own source range: here one this host does not have, so every
/// connect of that agent fails to bind, while --source-cidr (loopback) would have worked.
#[test]
fn an_agents_own_source_range_replaces_source_cidr() {
    let suffix = format!("={}", foreign_range());
    let extra = ["--ramp", "100", "--rate", "0", "--drain-timeout", "1", "--connect-timeout-ms", "500"];
    let (output, report) = run_through_remote_agent("agents-cidr", 4, &suffix, &extra);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(report["connections_established"], 0, "{stdout}");
    let errors = report["errors"].to_string();
    assert!(errors.contains("connect/addr_not_available"), "{errors}");
}
