//! `--spawn-engine` against the real `ringline` engine: provisioning, one engine process, a local agent, a chat
//! run with an offline share, and the ledger's verdict read from the JSON report. Builds the engine binary into
//! the same target directory first (cargo builds only this package's binaries for its tests).

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
