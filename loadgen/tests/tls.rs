//! `--tls` end to end without the engine: the real controller and agent, the fake server behind a TLS proxy
//! (rustls, ALPN `ringline/1`, TLS 1.3 tickets). A chat with a reconnect storm resumes the dropped users'
//! sessions; an untrusted or expired certificate is refused by the client with its reason in the report.

mod support;

use support::test_cert::{TestCert, expired_test_certificate, test_certificate};
use support::tls::{start_tls_proxy, write_pem};
use support::*;

/// A run of `connections` users against the fake server behind a TLS proxy serving `served`, trusting `trusted`.
fn tls_run(
    name: &str,
    served: &TestCert,
    trusted: &TestCert,
    connections: u64,
    extra: &[&str],
) -> (std::process::Output, serde_json::Value) {
    let dir = test_dir(name);
    let (users, keys) = users_and_keys_file(connections, &dir);
    let backend = start_fake_server(&users, FakeServerOptions::default());
    let proxy = start_tls_proxy(backend, served).to_string();
    let ca = write_pem(trusted, &dir, "ca.pem");
    let connections = connections.to_string();
    let mut args = vec![
        "--target",
        &proxy,
        "--users",
        keys.to_str().expect("utf-8"),
        "--tls",
        "--ca",
        ca.to_str().expect("utf-8"),
        "--connections",
        &connections,
        "--ramp",
        "400",
    ];
    args.extend_from_slice(extra);
    run_with_report(&dir, &args)
}

fn count(report: &serde_json::Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or_else(|| panic!("{field} is not a number: {report}"))
}

#[test]
fn tls_chat_with_a_reconnect_storm_loses_nothing_and_the_dropped_users_resume() {
    let cert = test_certificate();
    let storm = ["--scenario", "reconnect-storm", "--storm-share", "0.5", "--duration", "3", "--rate", "200"];
    let (output, report) = tls_run("tls-storm", &cert, &cert, 40, &[&storm[..], &["--drain-timeout", "5"]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(report["tls"], true);
    assert_eq!(count(&report, "connections_established"), 40);
    assert_eq!(count(&report, "lost"), 0, "{stdout}");
    assert_eq!(count(&report, "duplicated"), 0, "{stdout}");
    assert_eq!(count(&report, "reordered"), 0, "{stdout}");
    let sent = count(&report, "messages_sent");
    assert!(sent > 0);
    assert_eq!(count(&report, "messages_delivered"), sent);
    let dropped = count(&report, "storm_dropped");
    assert!(dropped > 0, "{stdout}");
    let full = count(&report, "tls_handshakes_full");
    let resumed = count(&report, "tls_handshakes_resumed");
    assert!(full >= 40, "every user's first connect is a full handshake: {stdout}");
    assert!(resumed >= dropped, "every dropped user resumes with its own ticket: {stdout}");
    assert_eq!(count(&report, "tls_handshake_failures"), 0, "{stdout}");
    assert_eq!(report["tls_handshake_latency"]["count"].as_u64(), Some(full + resumed));
    assert_eq!(report["tls_handshake_latency_resumed"]["count"].as_u64(), Some(resumed));
    assert!(stdout.contains("tls handshakes"), "{stdout}");
    println!("{stdout}");
}

/// An idle run the client must refuse: exits non-zero, nothing connected, the failure named.
fn assert_refused(name: &str, served: &TestCert, trusted: &TestCert, error_kind: &str) {
    let (output, report) = tls_run(name, served, trusted, 10, &["--scenario", "idle", "--duration", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(count(&report, "connections_established"), 0);
    assert_eq!(count(&report, "tls_handshakes_full") + count(&report, "tls_handshakes_resumed"), 0);
    assert!(count(&report, "tls_handshake_failures") >= 10, "{stdout}");
    assert!(report["errors"][error_kind].as_u64().is_some_and(|count| count >= 10), "{}", report["errors"]);
    assert!(stdout.contains("every TLS handshake failed"), "{stdout}");
    assert!(stdout.contains(error_kind), "{stdout}");
}

#[test]
fn a_certificate_from_another_issuer_is_refused_as_untrusted() {
    let served = test_certificate();
    // Each certificate names its own issuer.
    let other = test_certificate();
    assert_refused("tls-untrusted", &served, &other, "connect/tls/certificate_unknown_issuer");
}

#[test]
fn an_expired_certificate_is_refused() {
    let expired = expired_test_certificate();
    assert_refused("tls-expired", &expired, &expired, "connect/tls/certificate_expired");
}

#[test]
fn tls_flags_that_cannot_work_are_clear_errors() {
    let dir = test_dir("tls-flags");
    let (_, keys) = users_and_keys_file(2, &dir);
    let keys = keys.to_str().expect("utf-8");
    let output = run_loadgen(&["run", "--target", "127.0.0.1:9", "--users", keys, "--connections", "2", "--tls"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca FILE"), "{stderr}");
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let not_pem = not_pem.to_str().expect("utf-8");
    let args = ["run", "--target", "127.0.0.1:9", "--users", keys, "--connections", "2", "--tls", "--ca", not_pem];
    let output = run_loadgen(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no `BEGIN CERTIFICATE`"), "{stderr}");
    let output = run_loadgen(&[
        "run",
        "--protocol",
        "xmpp",
        "--target",
        "127.0.0.1:9",
        "--xmpp-password",
        "pw",
        "--connections",
        "2",
        "--tls",
        "--ca",
        not_pem,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("plaintext only"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn without_resumption_every_reconnect_is_a_full_handshake() {
    let cert = test_certificate();
    let args = ["--scenario", "reconnect-storm", "--duration", "2", "--rate", "100", "--tls-no-resumption"];
    let (output, report) = tls_run("tls-no-resumption", &cert, &cert, 20, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let dropped = count(&report, "storm_dropped");
    assert!(dropped > 0, "{stdout}");
    assert_eq!(count(&report, "tls_handshakes_resumed"), 0, "{stdout}");
    assert!(count(&report, "tls_handshakes_full") >= 20 + dropped, "{stdout}");
}
