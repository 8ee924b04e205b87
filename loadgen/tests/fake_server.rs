//! End to end against a fake server built from the `wire` codec: the real controller, a real local agent (its
//! core threads and epoll loops), real sockets. Asserts what the ledger concludes, never timings.

mod support;

use support::*;

/// `run` in `dir` against a fake server for 40 users: `--target` and `--users`, then `flags`.
fn fake_server_run(
    dir: &std::path::Path,
    options: FakeServerOptions,
    flags: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let (users, keys) = users_and_keys_file(40, dir);
    let address = start_fake_server(&users, options).to_string();
    let mut args = vec!["--target", &address, "--users", keys.to_str().expect("utf-8")];
    args.extend_from_slice(flags);
    run_with_report(dir, &args)
}

fn chat_run(name: &str, options: FakeServerOptions, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut flags =
        vec!["--connections", "40", "--ramp", "400", "--duration", "2", "--rate", "200", "--drain-timeout", "5"];
    flags.extend_from_slice(extra);
    fake_server_run(&test_dir(name), options, &flags)
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

/// `--stages` with a rate change mid-run, and every report file: the rate change reaches the agent (the fixed
/// schedule hands out exactly its slots: 100/s for 2 s, then 400/s for 2 s), and each file is written and
/// parses as its readers expect.
#[test]
fn a_staged_run_changes_its_rate_and_writes_every_report_file() {
    let dir = test_dir("staged-outputs");
    let path = |name: &str| dir.join(name).to_str().expect("utf-8").to_owned();
    let (hlog, hgrm, csv, html) = (path("run.hlog"), path("run.hgrm"), path("run.csv"), path("run.html"));
    let (output, report) = fake_server_run(
        &dir,
        FakeServerOptions::default(),
        &[
            "--stages",
            "2s:40@40/s,1s:hold,2s:rate 400",
            "--rate",
            "100",
            "--arrivals",
            "fixed",
            "--drain-timeout",
            "5",
            "--hlog",
            &hlog,
            "--hgrm",
            &hgrm,
            "--csv",
            &csv,
            "--html",
            &html,
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["connections_target"], 40);
    assert_eq!(report["lost"], 0);
    // From the end of the ramp (1 s) to the rate stage (3 s) at 100/s, then to the end (5 s) at 400/s; each
    // core's fixed schedule may end one slot short.
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!((990..=1_000).contains(&sent), "sent {sent}: 200 at --rate 100, then 800 at rate 400");
    let seconds = report["timeline"].as_array().expect("timeline").len();
    assert!(seconds >= 5, "a progress line a second over the 5 s profile: {seconds}");

    let hlog = std::fs::read(&hlog).expect("--hlog written");
    let mut intervals = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(_) = entry.expect("each line parses") {
            intervals += 1;
        }
    }
    assert_eq!(intervals, 2 * seconds, "an ACK and a delivery histogram a second");

    let hgrm = std::fs::read_to_string(&hgrm).expect("--hgrm written");
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"), "{hgrm}");
    assert!(hgrm.contains(&format!("Total count    = {sent:12}]")), "every ACK is in the distribution: {hgrm}");

    let csv = std::fs::read_to_string(&csv).expect("--csv written");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], loadgen::outputs::csv::CSV_HEADER);
    assert_eq!(rows.len(), seconds + 1, "a row a second");

    let html = std::fs::read_to_string(&html).expect("--html written");
    assert!(html.contains(&format!("<tr><th>messages sent</th><td>{sent}</td></tr>")), "{html}");
    assert!(html.contains("<tr><th>lost</th><td>0</td></tr>"));
    let mut reader = quick_xml::Reader::from_str(&html);
    let mut depth = 0i64;
    loop {
        match reader.read_event().expect("the page is well-formed") {
            quick_xml::events::Event::Start(_) => depth += 1,
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every tag closes");
}

/// A ramp of the 40 users over 0.5 s, then a hold to 3 s: the stages of the scenario files below.
const FORTY_USERS_STAGES: &str = r#"
[[stage]]
duration = "1s"
connections = 40
connects_per_s = 80
[[stage]]
duration = "2s"
"#;

/// Writes `DIR/NAME` with `keys` and then FORTY_USERS_STAGES.
fn write_scenario(dir: &std::path::Path, name: &str, keys: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{keys}{FORTY_USERS_STAGES}")).expect("write");
    path
}

/// `--scenario FILE.toml`: the file's workload, rate, stages and message size mix are what the run does.
#[test]
fn a_scenario_file_drives_the_run() {
    let dir = test_dir("scenario-file");
    let scenario = write_scenario(
        &dir,
        "chat.toml",
        r#"
scenario = "chat"
rate = 200
arrivals = "fixed"
body_bytes_mix = [{ bytes = 64, share = 0.5 }, { bytes = 1024, share = 0.5 }]
"#,
    );
    let (output, report) = fake_server_run(
        &dir,
        FakeServerOptions::default(),
        &["--scenario", scenario.to_str().expect("utf-8"), "--drain-timeout", "5"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["scenario"], "chat");
    assert_eq!(report["connections_target"], 40);
    assert_eq!(report["connections_established"], 40);
    assert_eq!(report["lost"], 0);
    // 200/s from the end of the ramp (0.5 s) to the end of the profile (3 s); each core may end a slot short.
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!((495..=500).contains(&sent), "sent {sent}");
    assert_eq!(report["messages_delivered"], sent);
}

/// A scenario file's workload mix: 80 % of the users chat and 20 % stay idle. Only the chat users send, the
/// idle ones still hold their connections (and read what their chatting contacts send them), and every message
/// is accounted for.
#[test]
fn a_workload_mix_runs_each_users_workload() {
    let dir = test_dir("workload-mix");
    let scenario = write_scenario(
        &dir,
        "mix.toml",
        r#"
rate = 200
arrivals = "fixed"
[[workload_mix]]
workload = "chat"
share = 0.8
[[workload_mix]]
workload = "idle"
share = 0.2
"#,
    );
    let (users, keys) = users_and_keys_file(40, &dir);
    let server = start_watched_fake_server(&users, FakeServerOptions::default());
    let address = server.address.to_string();
    let (output, report) = run_with_report(
        &dir,
        &[
            "--target",
            &address,
            "--users",
            keys.to_str().expect("utf-8"),
            "--scenario",
            scenario.to_str().expect("utf-8"),
            "--drain-timeout",
            "5",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("workload mix    chat 32 users, idle 8 users"), "{stdout}");
    assert_eq!(report["scenario"], "chat");
    assert_eq!(report["workload_users"], serde_json::json!({ "chat": 32, "idle": 8 }));
    assert_eq!(report["connections_established"], 40);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicated"], 0);
    // The whole rate, as without a mix, sent by the chat users alone.
    let sent = report["messages_sent"].as_u64().expect("number");
    assert!((495..=500).contains(&sent), "sent {sent}");
    assert_eq!(report["messages_delivered"], sent);
    // One agent holds all 40 users: the first 32 chat, the last 8 are idle and never send.
    assert_eq!(report["agents"], 1);
    let senders = server.senders();
    let idle: Vec<u64> = users[32..].iter().map(|user| user.user).collect();
    assert!(senders.iter().all(|sender| !idle.contains(sender)), "idle users sent: {senders:?}");
    assert!(senders.len() <= 32 && senders.len() > 8, "{} distinct senders", senders.len());
}
