//! End-to-end tests of the `ringline-tune` binary through std::process. They only read the host:
//! `apply` always runs with `--dry-run`, and a test checks that a dry run leaves every sysctl as it was.

use std::process::{Command, Output};

fn ringline_tune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringline-tune")).args(args).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_prints_the_table_and_exits_zero() {
    let output = ringline_tune(&["check", "--connections", "1000"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(stdout.contains("NEEDED FOR 1,000"), "{stdout}");
    for setting in [
        "RLIMIT_NOFILE soft",
        "RLIMIT_NOFILE hard",
        "RLIMIT_MEMLOCK",
        "fs.nr_open",
        "fs.file-max",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_mem",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
        "net.core.netdev_max_backlog",
        "net.netfilter.nf_conntrack_max",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(setting)), "no row for {setting}:\n{stdout}");
    }
    assert!(stdout.contains("sockets per process max"), "{stdout}");
    for line in stdout.lines() {
        assert!(line.chars().count() <= 100, "line wider than 100 columns: {line}");
    }
}

#[test]
fn check_rejects_a_non_number() {
    let output = ringline_tune(&["check", "--connections", "abc"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--connections") && stderr.contains("abc"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_rejects_zero_connections() {
    let output = ringline_tune(&["check", "--connections", "0"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("--connections"), "{}", text(&output.stderr));
}

#[test]
fn apply_unknown_profile_lists_the_profiles() {
    let output = ringline_tune(&["apply", "--profile", "nope", "--dry-run"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown profile \"nope\""), "{stderr}");
    assert!(stderr.contains("loopback-million") && stderr.contains("server"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn apply_rejects_a_bad_port_list() {
    let output = ringline_tune(&["apply", "--profile", "server", "--reserve-ports", "7000-", "--dry-run"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("--reserve-ports"), "{}", text(&output.stderr));
}

fn snapshot() -> Vec<(String, Option<String>)> {
    tuning::profile::LOOPBACK_MILLION
        .settings
        .iter()
        .map(|s| (s.key.to_string(), tuning::read_sysctl(s.key).expect("readable")))
        .collect()
}

#[test]
fn apply_dry_run_prints_old_and_new_and_changes_nothing() {
    let before = snapshot();
    let output = ringline_tune(&["apply", "--profile", "loopback-million", "--dry-run"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert!(stdout.contains("dry run"), "{stdout}");
    let listed: Vec<&str> = stdout.lines().filter_map(|l| l.trim().split(':').next()).collect();
    let reserved_at = listed.iter().position(|k| *k == "net.ipv4.ip_local_reserved_ports").expect("listed");
    let range_at = listed.iter().position(|k| *k == "net.ipv4.ip_local_port_range").expect("listed");
    assert!(reserved_at < range_at, "ports are reserved before the range widens:\n{stdout}");
    for (key, value) in &before {
        let line = stdout.lines().find(|l| l.trim().starts_with(&format!("{key}:"))).expect("every key listed");
        if let Some(value) = value {
            let old = tuning::profile::normalize(value);
            assert!(line.contains(&old), "{key}: old value {old:?} not shown in {line:?}");
        }
    }
    assert!(stdout.contains("would change"), "{stdout}");
    assert_eq!(snapshot(), before, "a dry run must write nothing");
}
