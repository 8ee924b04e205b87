//! `--spawn-engine` against the real `ringline` engine: provisioning, one engine process, a local agent, a chat
//! run with an offline share, and the ledger's verdict read from the JSON report. Builds the engine binary into
//! the same target directory first (cargo builds only this package's binaries for its tests).
//! With `--tls`: the engines serve TLS with their dev certificate; a chat with a storm resumes; another CA is
//! refused.

mod support;

use support::*;

/// What a `--spawn-engine` run printed and reported.
struct SpawnedRun {
    status: std::process::ExitStatus,
    stdout: String,
    report: serde_json::Value,
}

/// `ringline-loadgen run --spawn-engine ARGS` with the engine built next to ours, a data directory and a JSON
/// report (`run_with_report`) in a fresh test directory `name`. `before` goes before the engine arguments (e.g. `--tls`), `args`
/// after them.
fn run_spawned(name: &str, before: &[&str], args: &[&str]) -> SpawnedRun {
    let bin = engine_bin();
    let dir = test_dir(name);
    let data_dir = dir.join("data");
    let mut argv = vec!["--spawn-engine"];
    argv.extend_from_slice(before);
    argv.extend(["--engine-bin", bin.to_str().expect("utf-8"), "--data-dir", data_dir.to_str().expect("utf-8")]);
    argv.extend_from_slice(args);
    let (output, report) = run_with_report(&dir, &argv);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
    SpawnedRun { status: output.status, stdout, report }
}

/// A run that succeeded with `connections` established, and every message sent delivered once, in order.
fn assert_clean_chat(run: &SpawnedRun, connections: u64) {
    let SpawnedRun { status, stdout, report } = run;
    assert!(status.success(), "{stdout}");
    assert_eq!(report["connections_established"], connections);
    assert_eq!(report["lost"], 0, "{stdout}");
    assert_eq!(report["duplicated"], 0, "{stdout}");
    assert_eq!(report["reordered"], 0, "{stdout}");
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!(sent > 0);
    assert_eq!(report["messages_delivered"], sent);
}

#[test]
fn spawned_engine_chat_with_offline_users_loses_nothing() {
    let run = run_spawned(
        "spawn-engine",
        &[],
        &[
            "--connections",
            "300",
            "--ramp",
            "1000",
            "--scenario",
            "offline",
            "--offline-share",
            "0.2",
            "--duration",
            "2",
            "--rate",
            "300",
            "--drain-timeout",
            "8",
        ],
    );
    assert_clean_chat(&run, 300);
    let report = &run.report;
    assert_eq!(report["connections_target"], 300);
    assert_eq!(report["messages_acked"], report["messages_sent"]);
    assert!(report["latency_offline_delivery_us"]["count"].as_u64().expect("number") > 0, "offline users got mail");
    assert!(report["server_rss_bytes"].as_u64().expect("engine RSS read") > 0);
    assert!(report["server_rss_per_connection_bytes"].is_number());
    assert!(report["command_line"].as_array().expect("argv").iter().any(|arg| arg == "--spawn-engine"));
}

/// `--spawn-engine --tls`: the engines serve TLS with a dev certificate the agents trust; a chat with a reconnect
/// storm loses nothing, every first connect is a full handshake, and the dropped users resume.
#[test]
fn spawned_engine_over_tls_chats_and_the_storms_reconnects_resume() {
    let run = run_spawned(
        "spawn-engine-tls",
        &["--tls"],
        &[
            "--connections",
            "200",
            "--ramp",
            "1000",
            "--scenario",
            "reconnect-storm",
            "--storm-share",
            "0.5",
            "--duration",
            "3",
            "--rate",
            "300",
            "--drain-timeout",
            "8",
        ],
    );
    assert_clean_chat(&run, 200);
    let SpawnedRun { stdout, report, .. } = &run;
    assert_eq!(report["tls"], true);
    let dropped = report["storm_dropped"].as_u64().expect("number");
    let full = report["tls_handshakes_full"].as_u64().expect("number");
    let resumed = report["tls_handshakes_resumed"].as_u64().expect("number");
    assert!(dropped > 0, "{stdout}");
    assert!(full >= 200, "{stdout}");
    assert!(resumed >= dropped, "the dropped users resume: {stdout}");
    assert_eq!(report["tls_handshake_failures"], 0, "{stdout}");
    assert_eq!(report["tls_handshake_latency"]["count"].as_u64(), Some(full + resumed));
}

/// `--spawn-engine --tls --ca OTHER`: the engines' dev certificate is not trusted, and the run says so.
#[test]
fn spawned_engine_over_tls_with_another_ca_is_refused_as_untrusted() {
    let other_dir = test_dir("spawn-engine-tls-untrusted-ca");
    let other = support::tls::write_pem(&support::test_cert::test_certificate(), &other_dir, "other.pem");
    let run = run_spawned(
        "spawn-engine-tls-untrusted",
        &["--tls", "--ca", other.to_str().expect("utf-8")],
        &["--connections", "10", "--scenario", "idle", "--duration", "1"],
    );
    let SpawnedRun { status, stdout, report } = &run;
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert_eq!(report["connections_established"], 0);
    assert!(report["tls_handshake_failures"].as_u64().expect("number") >= 10, "{stdout}");
    let untrusted = &report["errors"]["connect/tls/certificate_unknown_issuer"];
    assert!(untrusted.as_u64().is_some_and(|count| count >= 10), "{}", report["errors"]);
    assert!(stdout.contains("every TLS handshake failed"), "{stdout}");
}
