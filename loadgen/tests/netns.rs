//! A multi-host run on one machine: the engine and the controller in one network namespace, two agents each in
//! its own, joined by veth pairs, every agent given its own source range with `--agents ADDR=CIDR` and the
//! shared token in the environment. The addresses (10.213.0.0/16) exist only inside the test's namespaces;
//! nothing outside this machine is addressed. Namespaces and processes are removed also when the test fails
//! (guards). Needs root (`ip netns`): without the permission it prints a skip line; without `ip` it fails under
//! CI with the install command.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::*;

/// Namespaces created by this test; deleted (with their veths and routes) when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A process of the test; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip runs");
    assert!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

/// `ip netns exec NS ip ARGS`.
fn ip_in(namespace: &str, args: &[&str]) {
    let mut argv = vec!["netns", "exec", namespace, "ip"];
    argv.extend_from_slice(args);
    ip(&argv);
}

/// Creates `name`, or says why not: `None` when namespaces may not be made here.
fn try_add_namespace(name: &str) -> Option<String> {
    match Command::new("ip").args(["netns", "add", name]).output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("`ip` is missing: apt-get install -y iproute2");
            }
            Some("`ip` is missing (install iproute2)".into())
        }
        Err(error) => Some(error.to_string()),
    }
}

/// Starts `command` inside `namespace` with stdout piped; returns it once it printed a line containing
/// `ready_text`, and that line.
fn start_in(namespace: &str, command: &[&str], env: &[(&str, &str)], ready_text: &str) -> (Running, String) {
    let mut process = Command::new("ip");
    process.args(["netns", "exec", namespace]).args(command).env_remove("RINGLINE_AGENT_TOKEN");
    for (key, value) in env {
        process.env(key, value);
    }
    let mut child = process.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("{command:?} ended before `{ready_text}`")).expect("reads");
        if line.contains(ready_text) {
            // Keep draining stdout so that the process never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return (running, line);
        }
    }
}

#[test]
fn two_agents_in_their_own_namespaces_run_a_clean_chat_through_the_controller() {
    let pid = std::process::id();
    let engine_ns = format!("rl{pid}e");
    let mut namespaces = Namespaces(Vec::new());
    if let Some(reason) = try_add_namespace(&engine_ns) {
        println!("skipped: `ip netns add` is not permitted here ({reason}); run as root to test agents in namespaces");
        return;
    }
    namespaces.0.push(engine_ns.clone());
    ip_in(&engine_ns, &["link", "set", "lo", "up"]);
    // The engine's address, on the engine namespace's loopback.
    ip_in(&engine_ns, &["addr", "add", "10.213.0.1/32", "dev", "lo"]);
    let mut agent_arg = Vec::new();
    for agent in 1..=2u8 {
        let ns = format!("rl{pid}a{agent}");
        if let Some(reason) = try_add_namespace(&ns) {
            panic!("adding namespace {ns}: {reason}");
        }
        namespaces.0.push(ns.clone());
        let (outer, inner) = (format!("rl{pid}e{agent}"), format!("rl{pid}i{agent}"));
        let (engine_side, agent_side) = (format!("10.213.{agent}.1"), format!("10.213.{agent}.2"));
        let sources = format!("10.213.{agent}.16/28");
        ip(&["link", "add", &outer, "netns", &engine_ns, "type", "veth", "peer", "name", &inner, "netns", &ns]);
        ip_in(&engine_ns, &["addr", "add", &format!("{engine_side}/24"), "dev", &outer]);
        ip_in(&engine_ns, &["link", "set", &outer, "up"]);
        // The agent's source range is routed to it, and local to it (every address bindable).
        ip_in(&engine_ns, &["route", "add", &sources, "via", &agent_side]);
        ip_in(&ns, &["link", "set", "lo", "up"]);
        ip_in(&ns, &["addr", "add", &format!("{agent_side}/24"), "dev", &inner]);
        ip_in(&ns, &["link", "set", &inner, "up"]);
        ip_in(&ns, &["route", "add", "default", "via", &engine_side]);
        ip_in(&ns, &["route", "add", "local", &sources, "dev", "lo"]);
        agent_arg.push((ns, format!("{agent_side}:7400"), sources));
    }

    let dir = test_dir("netns");
    let engine = engine_bin();
    let engine = engine.to_str().expect("utf-8");
    let data_dir = dir.join("data");
    let keys = dir.join("keys.txt");
    let provision = Command::new(engine)
        .args(["users", "provision", "--data-dir", data_dir.to_str().expect("utf-8"), "--count", "40", "--keys-out"])
        .arg(&keys)
        .output()
        .expect("provision runs");
    assert!(provision.status.success(), "{}", String::from_utf8_lossy(&provision.stderr));
    let data_dir = data_dir.to_str().expect("utf-8");
    let (engine_process, _) = start_in(
        &engine_ns,
        &[engine, "serve", "--listen", "10.213.0.1:7000", "--data-dir", data_dir, "--cores", "1"],
        &[],
        "ringline listening on",
    );

    let loadgen = env!("CARGO_BIN_EXE_ringline-loadgen");
    let token = [("RINGLINE_AGENT_TOKEN", "netns-test-token")];
    let mut agents = Vec::new();
    for (ns, listen, _) in &agent_arg {
        let (agent, line) = start_in(ns, &[loadgen, "agent", "--listen", listen, "--once"], &token, "listening");
        assert_eq!(line, format!("listening {listen}"));
        agents.push(agent);
    }
    let agents_flag: Vec<String> = agent_arg.iter().map(|(_, listen, sources)| format!("{listen}={sources}")).collect();
    let agents_flag = agents_flag.join(",");
    let report = dir.join("report.json");
    let output = Command::new("ip")
        .args(["netns", "exec", &engine_ns, loadgen, "run", "--target", "10.213.0.1:7000", "--users"])
        .arg(&keys)
        .args(["--connections", "40", "--ramp", "200", "--duration", "2", "--rate", "100", "--drain-timeout", "10"])
        .args(["--agents", &agents_flag, "--report", report.to_str().expect("utf-8")])
        .envs(token)
        .output()
        .expect("controller runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = read_report(&report);
    assert_eq!(report["agents"], 2, "{stdout}");
    let offsets =
        report["notes"].as_array().expect("notes").iter().filter(|note| note.to_string().contains("clock offset"));
    assert_eq!(offsets.count(), 2, "each agent's clock offset is reported: {stdout}");
    assert_eq!(report["connections_established"], 40, "{stdout}");
    assert_eq!(report["connect_errors"], 0, "{stdout}");
    assert_eq!(report["lost"], 0, "{stdout}");
    assert_eq!(report["duplicated"], 0, "{stdout}");
    assert_eq!(report["reordered"], 0, "{stdout}");
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!(sent > 0, "{stdout}");
    assert_eq!(report["messages_delivered"], sent, "{stdout}");
    // The agents served their one controller; the engine is stopped before its directory goes.
    drop(agents);
    drop(engine_process);
    drop(namespaces);
    let _ = std::fs::remove_dir_all(&dir);
}
