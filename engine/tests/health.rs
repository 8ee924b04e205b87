//! Health against a real engine: the `/metrics` endpoint's names and `core` labels, an offline backlog that
//! raises and then clears an alert, `/healthz` and `/readyz` from start to draining, the build and process
//! series, `ringline --version`, `ringline top --once`, and a busy metrics address. Waits poll the endpoint
//! with a generous bound; no test asserts on time.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::top::{Sample, scrape};
use support::{Frame, Got, TestServer, http_get};

/// Every metric family the endpoint must show (sample names, as scraped).
const NAMES: &[&str] = &[
    "ringline_cores",
    "ringline_connections",
    "ringline_sessions",
    "ringline_accepted_total",
    "ringline_logins_total",
    "ringline_handoffs_total",
    "ringline_adopted_total",
    "ringline_replaced_total",
    "ringline_closed_total",
    "ringline_registration_pins_sent_total",
    "ringline_registrations_total",
    "ringline_registrations_refused_total",
    "ringline_revoked_total",
    "ringline_messages_in_total",
    "ringline_messages_stored_total",
    "ringline_messages_out_total",
    "ringline_messages_delivered_total",
    "ringline_receipts_queued_total",
    "ringline_duplicates_suppressed_total",
    "ringline_receipt_frames_refused_total",
    "ringline_messages_expired_total",
    "ringline_rejects_total",
    "ringline_errors_total",
    "ringline_mesh_sent_messages_total",
    "ringline_mesh_received_messages_total",
    "ringline_offline_queue_messages",
    "ringline_offline_queue_bytes",
    "ringline_offline_queue_users",
    "ringline_dedup_entries",
    "ringline_unread_messages",
    "ringline_outbound_bytes",
    "ringline_outbound_full_connections",
    "ringline_mesh_outbox_messages",
    "ringline_mesh_channel_messages",
    "ringline_send_stored_latency_seconds_bucket",
    "ringline_send_stored_latency_seconds_count",
    "ringline_send_stored_latency_seconds_sum",
    "ringline_mesh_hop_latency_seconds_bucket",
    "ringline_wal_sync_latency_seconds_bucket",
    "ringline_alert",
    "ringline_alert_threshold",
    "ringline_tls_connections",
    "ringline_tls_handshakes_in_progress",
    "ringline_tls_handshakes_total",
    "ringline_tls_handshake_failures_total",
    "ringline_tls_handshake_limit_waits_total",
    "ringline_tls_handshake_latency_seconds_bucket",
    "ringline_tls_cert_reloads_total",
    "ringline_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
];

/// The value of `name` with all of `labels`, in the latest scrape.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|sample| {
            sample.name == name
                && labels.iter().all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
        })
        .map(|sample| sample.value)
}

/// Scrapes until `done` holds (cores publish once a second); panics after a generous bound.
fn wait_for(metrics: SocketAddr, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let started = Instant::now();
    loop {
        let samples = scrape(&metrics.to_string()).expect("scrape").samples;
        if done(&samples) {
            return samples;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_show_every_name_per_core_and_an_offline_backlog_raises_then_clears_an_alert() {
    let server = TestServer::start("metrics", 2, 200, &["--metrics", "127.0.0.1:0", "--alert-offline-messages", "8"]);
    let metrics = server.metrics.expect("metrics address");
    let (alice, bob) = server.users_on_different_cores();
    let bob_home = server.home(bob.0).0.to_string();
    let mut a = server.login(alice);
    // Each core publishes on its own tick: wait until both have, and alice's login shows.
    let samples = wait_for(metrics, "alice's login", |samples| {
        let published = ["0", "1"]
            .iter()
            .all(|core| value(samples, "ringline_alert", &[("core", core), ("queue", "offline_messages")]).is_some());
        published
            && (0..2)
                .map(|core| value(samples, "ringline_logins_total", &[("core", &core.to_string())]))
                .sum::<Option<f64>>()
                == Some(1.0)
    });
    for name in NAMES {
        assert!(samples.iter().any(|sample| sample.name == *name), "no {name} in /metrics");
    }
    for core in ["0", "1"] {
        assert!(value(&samples, "ringline_connections", &[("core", core)]).is_some(), "no connections of {core}");
        let offline = [("core", core), ("queue", "offline_messages")];
        assert_eq!(value(&samples, "ringline_alert", &offline), Some(0.0));
    }
    assert_eq!(value(&samples, "ringline_alert_threshold", &[("queue", "offline_messages")]), Some(8.0));

    // A burst to one offline user: past the threshold on bob's home core.
    for n in 0..10u64 {
        a.send(n, bob.0, format!("burst {n}").as_bytes());
    }
    for n in 0..10u64 {
        a.expect_ack(n);
    }
    let bob_alert = [("core", bob_home.as_str()), ("queue", "offline_messages")];
    let samples = wait_for(metrics, "the alert", |samples| value(samples, "ringline_alert", &bob_alert) == Some(1.0));
    assert_eq!(value(&samples, "ringline_offline_queue_messages", &[("core", &bob_home)]), Some(10.0));
    assert!(
        value(&samples, "ringline_messages_in_total", &[("core", &server.home(alice.0).0.to_string())]) >= Some(10.0)
    );
    assert!(
        value(&samples, "ringline_send_stored_latency_seconds_count", &[("core", &server.home(alice.0).0.to_string())])
            >= Some(10.0)
    );
    // The ten messages were logged and synced on bob's home core before their ACKs.
    assert!(
        value(&samples, "ringline_wal_sync_latency_seconds_count", &[("core", &bob_home)]) >= Some(1.0),
        "no log sync recorded on core {bob_home}"
    );

    // Bob drains his queue; alice acknowledges the receipts. The alert clears.
    let mut b = server.login(bob);
    for _ in 0..10 {
        let (item_id, _, _) = b.expect_deliver();
        b.delivered(item_id);
    }
    for _ in 0..10 {
        match a.recv_significant() {
            Got::Frame(Frame::Receipt { item_id, .. }) => a.delivered(item_id),
            other => panic!("expected a receipt, got {other:?}"),
        }
    }
    let samples =
        wait_for(metrics, "the alert to clear", |samples| value(samples, "ringline_alert", &bob_alert) == Some(0.0));
    assert_eq!(value(&samples, "ringline_offline_queue_messages", &[("core", &bob_home)]), Some(0.0));
    assert!(value(&samples, "ringline_messages_out_total", &[("core", &bob_home)]) >= Some(10.0));
}

#[test]
fn top_once_prints_one_row_per_core() {
    let server = TestServer::start("top", 2, 20, &["--metrics", "127.0.0.1:0"]);
    let _alice = server.login(server.user(0));
    let metrics = server.metrics.expect("metrics address").to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["top", "--once", "--interval", "200ms", "--metrics", &metrics])
        .output()
        .expect("run ringline top");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two cores:\n{table}");
    assert!(lines[0].starts_with("CORE") || lines[0].trim_start().starts_with("CORE"), "{table}");
    for (line, core) in lines[1..].iter().zip(["0", "1"]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 11, "{line}");
        assert_eq!(fields[0], core);
        assert_eq!(fields[10], "-", "no alert: {line}");
    }
}

#[test]
fn a_busy_metrics_address_exits_nonzero_with_one_clear_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    let data_dir = std::env::temp_dir().join(format!("ringline-it-busy-metrics-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1", "--metrics", &busy_addr, "--data-dir"])
        .arg(&data_dir)
        .env("RINGLINE_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run ringline serve");
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with(&format!("ringline: cannot serve metrics on {busy_addr}")), "{stderr}");
    assert_eq!(lines[0].matches("os error").count(), 1, "the cause once: {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout: the server never listened");
}

/// Polls `GET path` until `done` holds for its answer; panics after a generous bound.
fn wait_for_answer(addr: SocketAddr, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let started = Instant::now();
    loop {
        let (status, body) = http_get(addr, path);
        if done(status, &body) {
            return (status, body);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "gave up waiting on {path}: last {status} {body:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn readyz_is_ready_once_every_core_listens_and_not_ready_while_draining_and_healthz_stays_ok() {
    // A long grace: the shutdown waits for the logged-in client below, so draining lasts until it leaves.
    let mut server = TestServer::start("readyz", 2, 20, &["--metrics", "127.0.0.1:0", "--shutdown-grace", "120s"]);
    let metrics = server.metrics.expect("metrics address");
    let (status, body) = wait_for_answer(metrics, "/readyz", |status, _| status == 200);
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(http_get(metrics, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(http_get(metrics, "/nothing-here").0, 404);

    let client = server.login(server.user(0));
    server.signal(libc::SIGTERM);
    let (status, body) = wait_for_answer(metrics, "/readyz", |status, _| status != 200);
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: ") && body.contains("draining"), "the reason is in the body: {body:?}");
    assert_eq!(http_get(metrics, "/healthz"), (200, "ok\n".to_owned()), "alive while draining");
    drop(client);
    assert!(server.wait_exit().success(), "the shutdown ends once the client left");
}

/// The commit in `ringline --version`: `ringline 0.1.0 (commit abcdef012345)`.
fn version_commit() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ringline")).arg("--version").output().expect("run ringline");
    assert!(output.status.success());
    let line = String::from_utf8(output.stdout).expect("utf-8");
    let commit = line
        .trim_end()
        .strip_prefix(&format!("ringline {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {line:?}"))
        .to_owned();
    assert!(
        commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "a short commit or unknown: {commit:?}"
    );
    commit
}

#[test]
fn version_prints_the_commit_and_the_scrape_shows_build_info_and_sane_process_figures() {
    let commit = version_commit();
    let server = TestServer::start("process", 1, 20, &["--metrics", "127.0.0.1:0"]);
    let _client = server.login(server.user(0));
    let metrics = server.metrics.expect("metrics address");
    let samples = wait_for(metrics, "the process series", |samples| value(samples, "process_open_fds", &[]).is_some());
    let build = [("version", env!("CARGO_PKG_VERSION")), ("commit", commit.as_str())];
    assert_eq!(value(&samples, "ringline_build_info", &build), Some(1.0), "build info names this binary");
    let open = value(&samples, "process_open_fds", &[]).expect("open fds");
    let max = value(&samples, "process_max_fds", &[]).expect("max fds");
    // Listeners, the client's socket, log segments, epoll and io_uring descriptors at least.
    assert!(open >= 5.0 && open <= max, "open {open} of at most {max}");
    let resident = value(&samples, "process_resident_memory_bytes", &[]).expect("rss");
    assert!(resident >= 1024.0 * 1024.0, "a running engine holds at least a MiB: {resident}");
    let cpu = value(&samples, "process_cpu_seconds_total", &[]).expect("cpu");
    assert!(cpu >= 0.0 && cpu.is_finite(), "{cpu}");
}
