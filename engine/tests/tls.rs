//! TLS against a real engine: logins and chat over TLS across home cores (the TLS state moves with the
//! socket, frames pipelined after HELLO included), certificates a client must refuse (untrusted, expired),
//! what the TLS port refuses (plaintext, garbage, a wrong SNI, a foreign ALPN, a handshake that never
//! ends) without disturbing anyone else, session resumption, certificate reload on SIGHUP and on a file
//! change, and a bad certificate at start. Waits poll with a generous bound; no test asserts on time.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use engine::top::{Sample, scrape};
use rustls::CertificateError;
use support::tls::{TlsFiles, client_config, dev_cert, handshake, hello_then};
use support::{Frame, Got, TestClient, TestServer};
use wire::{ClientFrame, ReceiptKind};

/// The sum over cores of `name` with all of `labels`, in one scrape.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|sample| {
            sample.name == name
                && labels.iter().all(|(key, value)| sample.labels.iter().any(|(k, v)| k == key && v == value))
        })
        .map(|sample| sample.value)
        .sum()
}

/// Scrapes until `done` holds (cores publish once a second); panics after a generous bound.
fn wait_for_metrics(metrics: SocketAddr, what: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let started = Instant::now();
    loop {
        let samples = scrape(&metrics.to_string()).expect("scrape").samples;
        if done(&samples) {
            return samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}: {:?}",
            samples
                .iter()
                .filter(|sample| sample.name.contains("tls") || sample.name.contains("handoff"))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn failures(samples: &[Sample], reason: &str) -> f64 {
    total(samples, "ringline_tls_handshake_failures_total", &[("reason", reason)])
}

/// Reads until the server closes the connection (EOF or reset); panics if it sends anything.
fn expect_closed(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(support::READ_TIMEOUT)).expect("timeout");
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            // An alert record (type 0x15) may come before the close.
            Ok(read) => assert_eq!(buffer[0], 0x15, "only an alert may come back, got {:?}", &buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(error) => panic!("expected the server to close: {error}"),
        }
    }
}

fn ping_pong(client: &mut TestClient<impl support::Transport>, nonce: u64) {
    client.send_frame(&ClientFrame::Ping { nonce });
    assert_eq!(client.recv_significant_or_pong(), Got::Frame(Frame::Pong { nonce }));
}

#[test]
fn tls_logins_on_any_core_reach_the_home_core_with_pipelined_frames_and_chat() {
    let server = TestServer::start_tls("tls-chat", 2, 200, &["--metrics", "127.0.0.1:0"]);
    let config = server.tls_client_config();
    // Each login writes HELLO and a PING before its handshake even finishes: they follow the client's
    // Finished. The kernel spreads connections over the two cores, so about half log in on a core that is
    // not their user's home and move there, TLS state and the pipelined PING with them (16 logins: all on
    // their home core with probability 2^-16; the metrics below check that hand-offs happened).
    let mut clients = Vec::new();
    for (index, &(user, key)) in server.users.iter().take(16).enumerate() {
        let nonce = 1000 + index as u64;
        let early = hello_then(user, key, &[ClientFrame::Ping { nonce }]);
        let stream = handshake(server.tls_addr(), &config, "localhost", &early).expect("handshake");
        assert_eq!(stream.conn.alpn_protocol(), Some(wire::TLS_ALPN_PROTOCOL));
        let mut client = TestClient::over(stream);
        assert!(matches!(client.recv(), Got::Frame(Frame::Welcome { .. })), "WELCOME over TLS");
        assert_eq!(
            client.recv_significant_or_pong(),
            Got::Frame(Frame::Pong { nonce }),
            "the pipelined PING is answered"
        );
        clients.push((user, client));
    }

    let (alice, bob) = server.users_on_different_cores();
    let mut a = clients.iter().position(|(user, _)| *user == alice.0).map(|at| clients.swap_remove(at).1).expect("a");
    let mut b = clients.iter().position(|(user, _)| *user == bob.0).map(|at| clients.swap_remove(at).1).expect("b");
    a.send(1, bob.0, b"over TLS, across cores");
    let server_id = a.expect_ack(1);
    let (item_id, from, body) = b.expect_deliver();
    assert_eq!((item_id, from, body.as_slice()), (server_id, alice.0, &b"over TLS, across cores"[..]));
    b.delivered(item_id);
    match a.recv_significant() {
        Got::Frame(Frame::Receipt { server_id: about, kind: ReceiptKind::Delivered, .. }) => {
            assert_eq!(about, server_id)
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    // A large message crosses many TLS records both ways.
    let big = vec![b'm'; 60_000];
    b.send(2, alice.0, &big);
    b.expect_ack(2);
    assert_eq!(a.expect_deliver().2, big);

    // One client configuration for all: the first handshake is full, the others may resume its tickets.
    let samples = wait_for_metrics(server.metrics.expect("metrics"), "16 handshakes", |samples| {
        total(samples, "ringline_tls_handshakes_total", &[]) >= 16.0
    });
    assert!(total(&samples, "ringline_handoffs_total", &[]) >= 1.0, "some TLS connections moved to their home");
    assert_eq!(total(&samples, "ringline_tls_connections", &[]), 16.0);
    assert_eq!(total(&samples, "ringline_tls_handshakes_in_progress", &[]), 0.0);
    assert_eq!(total(&samples, "ringline_tls_handshake_failures_total", &[]), 0.0);
}

#[test]
fn a_client_refuses_an_untrusted_or_expired_certificate() {
    let server = TestServer::start_tls("tls-untrusted", 1, 10, &[]);
    let stranger = dev_cert(&std::env::temp_dir().join(format!("ringline-it-stranger-{}", std::process::id())));
    let trusts_another = client_config(&[stranger.cert_der()], &[wire::TLS_ALPN_PROTOCOL]);
    let error = handshake(server.tls_addr(), &trusts_another, "localhost", &[]).expect_err("untrusted");
    assert!(matches!(error, rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)), "{error}");
    let _ = std::fs::remove_dir_all(&stranger.dir);
    // The server goes on serving clients that trust it.
    let mut client = server.tls_login(&server.tls_client_config(), server.user(0));
    ping_pong(&mut client, 1);
    drop(server);

    let dir = std::env::temp_dir().join(format!("ringline-it-expired-{}", std::process::id()));
    let names = ["localhost".to_owned()];
    let expired = ringline_core::tls::DevCertificate::generate_valid(
        &names,
        time::OffsetDateTime::now_utc() - time::Duration::days(400),
        time::OffsetDateTime::now_utc() - time::Duration::days(35),
    )
    .expect("expired certificate");
    let (cert, key) = engine::tls_files::write_dev_certificate(&expired, &dir).expect("write");
    let files = TlsFiles { dir: dir.clone(), cert, key, fingerprint: expired.fingerprint.clone() };
    let server = TestServer::start_tls_with("tls-expired", 1, 10, files, &[]);
    let error = handshake(server.tls_addr(), &server.tls_client_config(), "localhost", &[]).expect_err("expired");
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })
        ),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_tls_port_refuses_plaintext_garbage_wrong_names_foreign_alpn_and_stalled_handshakes() {
    let server = TestServer::start_tls(
        "tls-refusals",
        2,
        20,
        &["--metrics", "127.0.0.1:0", "--tls-handshake-timeout", "300ms", "--handshake-timeout", "30s"],
    );
    let config = server.tls_client_config();
    let mut bystander = server.tls_login(&config, server.user(0));

    // Plaintext: the native protocol's HELLO, and HTTP.
    let mut native = TcpStream::connect(server.tls_addr()).expect("connect");
    native.write_all(&hello_then(server.user(1).0, server.user(1).1, &[])).expect("write");
    expect_closed(&mut native);
    let mut http = TcpStream::connect(server.tls_addr()).expect("connect");
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    expect_closed(&mut http);
    // A handshake record that is not one.
    let mut garbage = TcpStream::connect(server.tls_addr()).expect("connect");
    garbage.write_all(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef]).expect("write");
    expect_closed(&mut garbage);
    // Slowloris: the start of a record, then nothing; closed at the TLS handshake timeout.
    let mut stalled = TcpStream::connect(server.tls_addr()).expect("connect");
    stalled.write_all(&[0x16, 0x03, 0x01]).expect("write");
    expect_closed(&mut stalled);
    // A client asking for a host the certificate is not for.
    let error = handshake(server.tls_addr(), &config, "evil.example", &[]).expect_err("wrong SNI");
    assert!(matches!(error, rustls::Error::AlertReceived(_)), "{error}");
    // A client speaking only other protocols.
    let foreign = client_config(&[server.tls_files.as_ref().expect("files").cert_der()], &[b"h2", b"http/1.1"]);
    let error = handshake(server.tls_addr(), &foreign, "localhost", &[]).expect_err("no ALPN match");
    assert!(matches!(error, rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)), "{error}");
    // Offering no ALPN at all, or connecting by IP address (no SNI), is fine.
    let no_alpn = client_config(&[server.tls_files.as_ref().expect("files").cert_der()], &[]);
    let stream = handshake(server.tls_addr(), &no_alpn, "127.0.0.1", &[]).expect("no ALPN, no SNI");
    let mut by_ip = TestClient::over(stream);
    by_ip.hello(server.user(2).0, server.user(2).1);

    // Nobody else noticed: the TLS bystander, and plain TCP.
    ping_pong(&mut bystander, 7);
    let mut plain = server.login(server.user(3));
    ping_pong(&mut plain, 8);

    let samples = wait_for_metrics(server.metrics.expect("metrics"), "every refusal counted", |samples| {
        failures(samples, "timeout") >= 1.0 && failures(samples, "wrong_sni") >= 1.0
    });
    assert_eq!(failures(&samples, "plaintext"), 2.0);
    assert_eq!(failures(&samples, "bad_handshake"), 1.0);
    assert_eq!(failures(&samples, "wrong_sni"), 1.0);
    assert_eq!(failures(&samples, "no_alpn"), 1.0);
    assert_eq!(failures(&samples, "timeout"), 1.0);
    assert_eq!(total(&samples, "ringline_tls_handshakes_in_progress", &[]), 0.0);
}

#[test]
fn a_reconnecting_client_resumes_its_session() {
    let server = TestServer::start_tls("tls-resume", 2, 10, &["--metrics", "127.0.0.1:0"]);
    let config = server.tls_client_config();
    let first = server.tls_login(&config, server.user(0));
    assert_eq!(first.stream.conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
    // The tickets came after the handshake; reading WELCOME took them in.
    drop(first);
    for round in 0..3 {
        let mut again = server.tls_login(&config, server.user(0));
        assert_eq!(again.stream.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "round {round}");
        ping_pong(&mut again, round);
    }
    let samples = wait_for_metrics(server.metrics.expect("metrics"), "resumed handshakes", |samples| {
        total(samples, "ringline_tls_handshakes_total", &[("kind", "resumed")]) >= 3.0
    });
    assert_eq!(total(&samples, "ringline_tls_handshakes_total", &[("kind", "full")]), 1.0);
}

/// Connects until the server presents the certificate with `fingerprint`; panics after a generous bound.
fn wait_for_certificate(server: &TestServer, config: &std::sync::Arc<rustls::ClientConfig>, fingerprint: &str) {
    let started = Instant::now();
    loop {
        let stream = handshake(server.tls_addr(), config, "localhost", &[]).expect("handshake");
        let presented = stream.conn.peer_certificates().and_then(|chain| chain.first()).expect("a certificate");
        if ringline_core::tls::sha256_fingerprint(presented) == fingerprint {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_and_keeps_old_ones() {
    let server =
        TestServer::start_tls("tls-sighup", 2, 10, &["--metrics", "127.0.0.1:0", "--tls-cert-check-interval", "0"]);
    let files = server.tls_files.clone().expect("files");
    let old_root = files.cert_der();
    let mut old = server.tls_login(&server.tls_client_config(), server.user(0));

    let rotated = dev_cert(&files.dir);
    assert_ne!(rotated.fingerprint, files.fingerprint);
    let both = client_config(&[old_root, rotated.cert_der()], &[wire::TLS_ALPN_PROTOCOL]);
    server.signal(libc::SIGHUP);
    wait_for_certificate(&server, &both, &rotated.fingerprint);
    ping_pong(&mut old, 1);
    let mut new = server.tls_login(&both, server.user(1));
    ping_pong(&mut new, 2);

    // A broken file: the reload fails, is counted, and the last good certificate stays.
    std::fs::write(&files.cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n").expect("break the file");
    server.signal(libc::SIGHUP);
    let samples = wait_for_metrics(server.metrics.expect("metrics"), "a failed reload", |samples| {
        total(samples, "ringline_tls_cert_reloads_total", &[("result", "failed")]) >= 1.0
    });
    assert_eq!(total(&samples, "ringline_tls_cert_reloads_total", &[("result", "ok")]), 1.0);
    wait_for_certificate(&server, &both, &rotated.fingerprint);
    ping_pong(&mut old, 3);
}

#[test]
fn a_changed_certificate_file_is_reloaded_without_a_signal() {
    let server = TestServer::start_tls("tls-watch", 1, 10, &["--tls-cert-check-interval", "100ms"]);
    let files = server.tls_files.clone().expect("files");
    let old_root = files.cert_der();
    let rotated = dev_cert(&files.dir);
    let both = client_config(&[old_root, rotated.cert_der()], &[wire::TLS_ALPN_PROTOCOL]);
    wait_for_certificate(&server, &both, &rotated.fingerprint);
}

#[test]
fn sigterm_ends_a_tls_connection_with_goaway_and_close_notify() {
    let server = TestServer::start_tls("tls-sigterm", 2, 10, &[]);
    let mut client = server.tls_login(&server.tls_client_config(), server.user(0));
    let reader = std::thread::spawn(move || {
        let goaway = client.recv_significant();
        // A clean end of the TLS stream (close_notify) reads as 0 bytes; a bare FIN would be an error.
        let end = client.stream.read(&mut [0u8; 16]).map_err(|error| error.kind());
        (goaway, end)
    });
    assert!(server.terminate().success());
    let (goaway, end) = reader.join().expect("reader");
    assert_eq!(goaway, Got::Frame(Frame::Goaway { reason: wire::GoawayReason::ShuttingDown }));
    assert_eq!(end, Ok(0), "close_notify, then the end");
}

#[test]
fn serve_refuses_to_start_with_a_missing_or_mismatched_certificate() {
    let base = std::env::temp_dir().join(format!("ringline-it-badcert-{}", std::process::id()));
    let first = dev_cert(&base.join("first"));
    let second = dev_cert(&base.join("second"));
    let missing = base.join("missing.pem");
    for (cert, key, expected) in [
        (&missing, &first.key, "reading the TLS certificate"),
        (&first.cert, &second.key, "does not match the certificate"),
        (&first.key, &first.key, "holds no PEM certificate"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ringline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--data-dir"])
            .arg(base.join("data"))
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env("RINGLINE_LOG", "error")
            .output()
            .expect("run ringline serve");
        assert_eq!(output.status.code(), Some(1));
        assert!(output.stdout.is_empty(), "nothing listens");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(base);
}
