//! End to end against a fake server built from the `wire` codec: the real controller, a real local agent (its
//! core threads and epoll loops), real sockets. Asserts what the ledger concludes, never timings.

mod support;

use support::*;

fn chat_run(name: &str, options: FakeServerOptions, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let dir = test_dir(name);
    let (users, keys) = users_and_keys_file(40, &dir);
    let address = start_fake_server(&users, options).to_string();
    let mut args = vec![
        "--target",
        &address,
        "--users",
        keys.to_str().expect("utf-8"),
        "--connections",
        "40",
        "--ramp",
        "400",
        "--duration",
        "2",
        "--rate",
        "200",
        "--drain-timeout",
        "5",
    ];
    args.extend_from_slice(extra);
    run_with_report(&dir, &args)
}

#[test]
fn an_honest_server_passes_with_every_message_accounted() {
    let plot_dir = test_dir("honest-plot");
    let plot = plot_dir.join("plot.svg");
    let (output, report) = chat_run("honest", FakeServerOptions::default(), &["--plot", plot.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(report["connections_target"], 40);
    assert_eq!(report["connections_established"], 40);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["reordered"], 0);
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!(sent > 0);
    assert_eq!(report["messages_acked"], sent);
    assert_eq!(report["messages_delivered"], sent);
    assert_eq!(report["receipts"], sent);
    assert!(report["latency_delivery_us"]["max"].as_u64().expect("number") > 0);
    assert!(report["host_memory_headroom_min_bytes"].as_u64().expect("number") > 0);
    assert_eq!(report["stopped_early"], serde_json::Value::Null);
    let svg = std::fs::read_to_string(plot).expect("plot written");
    assert!(svg.starts_with("<svg"), "plot is an SVG");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn a_server_that_loses_acked_messages_fails_the_run_and_names_them() {
    let options = FakeServerOptions { lose_every: 7, ..Default::default() };
    let (output, report) = chat_run("lossy", options, &[]);
    assert!(!output.status.success(), "a lossy run must exit non-zero");
    let lost = report["lost"].as_u64().expect("number");
    assert!(lost > 0);
    assert_eq!(report["duplicated"], 0);
    let problems = report["problems"].as_array().expect("array");
    assert!(!problems.is_empty());
    assert_eq!(problems[0]["kind"], "lost");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Lost message"), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn a_cut_after_deliver_is_redelivered_and_deduplicated_not_duplicated() {
    let options = FakeServerOptions { cut_after_first_deliver: true, ..Default::default() };
    let (output, report) = chat_run("cut", options, &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    assert_eq!(report["reordered"], 0);
    assert!(report["redelivered"].as_u64().expect("number") >= 1, "{report}");
    assert_eq!(report["messages_delivered"], report["messages_sent"]);
    assert!(
        report["errors"]["io/closed"].as_u64().unwrap_or(0) + report["errors"]["io/reset"].as_u64().unwrap_or(0) >= 1
    );
}

#[test]
fn a_host_under_the_memory_floor_stops_the_run_and_reports_the_connections_up() {
    // A floor no host has: the first reading is under it, so the run stops as the memory guard would at the
    // box's limit, and must end, drained and reported, with a failing verdict that says why.
    let (output, report) =
        chat_run("memory-floor", FakeServerOptions::default(), &["--memory-floor-mib", "1000000000"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "a run stopped by the memory floor must exit non-zero: {stdout}");
    let why = report["stopped_early"].as_str().expect("stopped_early is set");
    assert!(why.starts_with("host memory: free memory and page cache fell to"), "{why}");
    assert!(why.contains("under --memory-floor-mib 1000000000"), "{why}");
    assert!(report["host_memory_headroom_min_bytes"].as_u64().expect("number") > 0);
    assert!(stdout.contains("FAIL: stopped before the end of the plan (host memory:"), "{stdout}");
    assert_eq!(report["lost"], 0, "{stdout}");
    assert_eq!(report["duplicated"], 0, "{stdout}");
}
