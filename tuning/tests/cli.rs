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

/// deploy/sysctl.d/90-ringline.conf is what `profiles --sysctl-d server` prints: regenerate it with
/// `ringline-tune profiles --sysctl-d server > deploy/sysctl.d/90-ringline.conf` when a profile changes.
#[test]
fn the_shipped_sysctl_d_file_is_the_generated_server_profile() {
    let output = ringline_tune(&["profiles", "--sysctl-d", "server"]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sysctl.d/90-ringline.conf");
    let shipped = std::fs::read_to_string(&path).expect("deploy/sysctl.d/90-ringline.conf");
    assert_eq!(
        shipped,
        text(&output.stdout),
        "{} drifted from the profile: ringline-tune profiles --sysctl-d server > deploy/sysctl.d/90-ringline.conf",
        path.display()
    );
    let lines = tuning::profile::parse_sysctl_conf(&shipped);
    let keys: Vec<&str> = lines.iter().map(|(key, _)| key.as_str()).collect();
    let profile_keys: Vec<&str> = tuning::profile::SERVER.settings.iter().map(|setting| setting.key).collect();
    assert_eq!(keys, profile_keys);
}

#[test]
fn sysctl_d_takes_the_ports_and_refuses_an_unknown_profile() {
    let output = ringline_tune(&["profiles", "--sysctl-d", "loopback-million", "--reserve-ports", "7000-7001"]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("\nnet.ipv4.ip_local_reserved_ports = 7000-7001\n"), "{stdout}");
    assert!(stdout.contains("\nnet.ipv4.ip_local_port_range = 1024 65535\n"), "{stdout}");
    let refused = ringline_tune(&["profiles", "--sysctl-d", "laptop"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("loopback-million"), "{}", text(&refused.stderr));
}

#[test]
fn completions_and_man_pages_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let output = ringline_tune(&["completions", shell]);
        assert!(output.status.success(), "stderr: {}", text(&output.stderr));
        let script = text(&output.stdout);
        for subcommand in ["check", "apply", "profiles", "completions", "man"] {
            assert!(script.contains(subcommand), "{shell} completions lack {subcommand}");
        }
    }
    let dir = std::env::temp_dir().join(format!("ringline-tune-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let output = ringline_tune(&["man", "--out-dir", dir.to_str().expect("utf-8")]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    for page in ["ringline-tune", "ringline-tune-check", "ringline-tune-apply", "ringline-tune-profiles"] {
        let page_text = std::fs::read_to_string(dir.join(format!("{page}.1"))).unwrap_or_else(|_| panic!("{page}.1"));
        assert!(page_text.contains(".TH"), "{page}.1 is a man page");
    }
    let _ = std::fs::remove_dir_all(dir);
}
