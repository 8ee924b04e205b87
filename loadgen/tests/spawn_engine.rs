//! `--spawn-engine` against the real `ringline` engine: provisioning, one engine process, a local agent, a chat
//! run with an offline share, and the ledger's verdict read from the JSON report. Builds the engine binary into
//! the same target directory first (cargo builds only this package's binaries for its tests).
//! With `--tls`: the engines serve TLS with their dev certificate; a chat with a storm resumes; another CA is
//! refused.

mod support;

use support::*;

#[test]
fn spawned_engine_chat_with_offline_users_loses_nothing() {
    let bin = engine_bin();
    let dir = test_dir("spawn-engine");
    let report_path = dir.join("report.json");
    let output = run_loadgen(&[
        "run",
        "--spawn-engine",
        "--engine-bin",
        bin.to_str().expect("utf-8"),
        "--data-dir",
        dir.join("data").to_str().expect("utf-8"),
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
        "--report",
        report_path.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = read_report(&report_path);
    assert_eq!(report["connections_target"], 300);
    assert_eq!(report["connections_established"], 300);
    assert_eq!(report["lost"], 0, "{stdout}");
    assert_eq!(report["duplicated"], 0, "{stdout}");
    assert_eq!(report["reordered"], 0, "{stdout}");
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!(sent > 0);
    assert_eq!(report["messages_acked"], sent);
    assert_eq!(report["messages_delivered"], sent);
    assert!(report["latency_offline_delivery_us"]["count"].as_u64().expect("number") > 0, "offline users got mail");
    assert!(report["server_rss_bytes"].as_u64().expect("engine RSS read") > 0);
    assert!(report["server_rss_per_connection_bytes"].is_number());
    assert!(report["command_line"].as_array().expect("argv").iter().any(|arg| arg == "--spawn-engine"));
}

/// `--spawn-engine --tls`: the engines serve TLS with a dev certificate the agents trust; a chat with a reconnect
/// storm loses nothing, every first connect is a full handshake, and the dropped users resume.
#[test]
fn spawned_engine_over_tls_chats_and_the_storms_reconnects_resume() {
    let bin = engine_bin();
    let dir = test_dir("spawn-engine-tls");
    let report_path = dir.join("report.json");
    let output = run_loadgen(&[
        "run",
        "--spawn-engine",
        "--tls",
        "--engine-bin",
        bin.to_str().expect("utf-8"),
        "--data-dir",
        dir.join("data").to_str().expect("utf-8"),
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
        "--report",
        report_path.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = read_report(&report_path);
    assert_eq!(report["tls"], true);
    assert_eq!(report["connections_established"], 200);
    assert_eq!(report["lost"], 0, "{stdout}");
    assert_eq!(report["duplicated"], 0, "{stdout}");
    assert_eq!(report["reordered"], 0, "{stdout}");
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!(sent > 0);
    assert_eq!(report["messages_delivered"], sent);
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
    let bin = engine_bin();
    let dir = test_dir("spawn-engine-tls-untrusted");
    let other = support::tls::write_pem(&support::test_cert::test_certificate(), &dir, "other.pem");
    let report_path = dir.join("report.json");
    let output = run_loadgen(&[
        "run",
        "--spawn-engine",
        "--tls",
        "--ca",
        other.to_str().expect("utf-8"),
        "--engine-bin",
        bin.to_str().expect("utf-8"),
        "--data-dir",
        dir.join("data").to_str().expect("utf-8"),
        "--connections",
        "10",
        "--scenario",
        "idle",
        "--duration",
        "1",
        "--report",
        report_path.to_str().expect("utf-8"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report = read_report(&report_path);
    assert_eq!(report["connections_established"], 0);
    assert!(report["tls_handshake_failures"].as_u64().expect("number") >= 10, "{stdout}");
    let untrusted = &report["errors"]["connect/tls/certificate_unknown_issuer"];
    assert!(untrusted.as_u64().is_some_and(|count| count >= 10), "{}", report["errors"]);
    assert!(stdout.contains("every TLS handshake failed"), "{stdout}");
}
