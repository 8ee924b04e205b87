//! Registration by one-time PIN against a real engine: a new phone registers and chats; wrong PINs are
//! counted and void the PIN; a new device revokes the old one (GOAWAY(Revoked), old key refused), also after
//! a restart; bad phone numbers and registration after login are refused. PINs are read from the `file:`
//! PIN sender, as an SMS gateway would get them.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Frame, Got, TestClient, TestServer};
use wire::{ClientFrame, DeviceKey, ErrorCode, GoawayReason, RegisterRefusal, UserId};

fn pin_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ringline-pins-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn start(name: &str, pins: &Path) -> TestServer {
    let sender = format!("file:{}", pins.display());
    TestServer::start(name, 2, 20, &["--pin-sender", &sender])
}

/// The latest PIN the file sender wrote for `phone`. The sender runs on its own thread, so the line may
/// land a moment after PIN_SENT; this waits for it (bounded, so a broken sender fails instead of hanging).
fn read_pin(pins: &Path, phone: UserId, nth: usize) -> u32 {
    for _ in 0..2000 {
        let text = std::fs::read_to_string(pins).unwrap_or_default();
        let found: Vec<u32> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let line_phone: UserId = fields.next()?.parse().ok()?;
                let pin: u32 = fields.next()?.parse().ok()?;
                (line_phone == phone).then_some(pin)
            })
            .collect();
        if found.len() > nth {
            return found[nth];
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no PIN #{nth} for {phone} in {}", pins.display());
}

fn request_pin(client: &mut TestClient, phone: UserId) {
    client.send_frame(&ClientFrame::RegisterRequest { phone });
    let got = client.recv_significant();
    assert!(
        matches!(got, Got::Frame(Frame::PinSent { phone: to, .. }) if to == phone),
        "expected PIN_SENT, got {got:?}"
    );
}

fn verify(client: &mut TestClient, phone: UserId, pin: u32) -> Got {
    client.send_frame(&ClientFrame::RegisterVerify { phone, pin });
    client.recv_significant()
}

fn register(server: &TestServer, pins: &Path, phone: UserId, nth: usize) -> (TestClient, DeviceKey) {
    let mut client = server.connect();
    request_pin(&mut client, phone);
    let pin = read_pin(pins, phone, nth);
    match verify(&mut client, phone, pin) {
        Got::Frame(Frame::Registered { user, key }) => {
            assert_eq!(user, phone);
            (client, key)
        }
        other => panic!("expected REGISTERED, got {other:?}"),
    }
}

#[test]
fn a_new_phone_registers_logs_in_and_chats() {
    let pins = pin_file("new");
    let server = start("register-new", &pins);
    // Several phones, so that both the accepting core and a hand-off to the home core are exercised.
    for (i, phone) in
        [4_915_112_345_670u64, 4_915_112_345_671, 4_915_112_345_672, 4_915_112_345_673].into_iter().enumerate()
    {
        let (mut client, key) = register(&server, &pins, phone, 0);
        // The same connection logs in with the new key.
        client.hello(phone, key);
        // A friend of its own per phone, so no receipt of an earlier round is waiting at login.
        let provisioned = server.user(i);
        let mut friend = server.login(provisioned);
        friend.send(i as u64 + 1, phone, b"welcome aboard");
        friend.expect_ack(i as u64 + 1);
        let (item_id, from, body) = client.expect_deliver();
        assert_eq!((from, body.as_slice()), (provisioned.0, &b"welcome aboard"[..]));
        client.delivered(item_id);
        // And a fresh connection with the key works too.
        drop(client);
        let mut again = server.connect();
        again.hello(phone, key);
    }
    let _ = std::fs::remove_file(pins);
}

#[test]
fn wrong_pins_are_counted_and_then_void_the_pin() {
    let pins = pin_file("wrong");
    let server = start("register-wrong", &pins);
    let phone = 4_930_000_000_001;
    let mut client = server.connect();
    request_pin(&mut client, phone);
    let pin = read_pin(&pins, phone, 0);
    let wrong = (pin + 1) % 1_000_000;
    for _ in 0..5 {
        assert!(matches!(
            verify(&mut client, phone, wrong),
            Got::Frame(Frame::RegisterRefused { code: RegisterRefusal::PinWrong, .. })
        ));
    }
    assert!(matches!(
        verify(&mut client, phone, wrong),
        Got::Frame(Frame::RegisterRefused { code: RegisterRefusal::TooManyAttempts, .. })
    ));
    // The guesses voided the PIN: even the right one is refused now.
    assert!(matches!(
        verify(&mut client, phone, pin),
        Got::Frame(Frame::RegisterRefused { code: RegisterRefusal::PinExpired, .. })
    ));
    // A new PIN works.
    request_pin(&mut client, phone);
    let fresh = read_pin(&pins, phone, 1);
    assert!(matches!(verify(&mut client, phone, fresh), Got::Frame(Frame::Registered { .. })));
    let _ = std::fs::remove_file(pins);
}

#[test]
fn a_new_device_revokes_the_old_one_also_after_a_restart() {
    let pins = pin_file("revoke");
    let server = start("register-revoke", &pins);
    let (alice, old_key) = server.user(3);
    let mut old_device = server.login((alice, old_key));

    let (_new_device, new_key) = register(&server, &pins, alice, 0);
    assert_ne!(new_key, old_key);
    assert_eq!(old_device.recv_significant(), Got::Frame(Frame::Goaway { reason: GoawayReason::Revoked }));
    assert_eq!(old_device.recv(), Got::Closed);

    let mut stale = server.connect();
    stale.send_frame(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: alice, key: old_key });
    assert!(matches!(stale.recv(), Got::Frame(Frame::Error { code: ErrorCode::AuthFailed, .. })));

    let sender = format!("file:{}", pins.display());
    let mut server = server;
    server.terminate_and_restart(2, &["--pin-sender", &sender]);
    let mut stale = server.connect();
    stale.send_frame(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user: alice, key: old_key });
    assert!(matches!(stale.recv(), Got::Frame(Frame::Error { code: ErrorCode::AuthFailed, .. })));
    let mut current = server.connect();
    current.hello(alice, new_key);
    let _ = std::fs::remove_file(pins);
}

#[test]
fn bad_phones_and_registration_after_login_are_refused() {
    let pins = pin_file("bad");
    let server = start("register-bad", &pins);
    let mut client = server.connect();
    for phone in [0, 12_345, u64::MAX] {
        client.send_frame(&ClientFrame::RegisterRequest { phone });
        assert_eq!(
            client.recv_significant(),
            Got::Frame(Frame::RegisterRefused { phone, code: RegisterRefusal::PhoneInvalid, retry_after_s: 0 })
        );
    }
    // No PIN was requested for this phone.
    assert!(matches!(
        verify(&mut client, 4_940_000_000_001, 123_456),
        Got::Frame(Frame::RegisterRefused { code: RegisterRefusal::PinExpired, .. })
    ));
    let mut logged_in = server.login(server.user(1));
    logged_in.send_frame(&ClientFrame::RegisterRequest { phone: 4_940_000_000_002 });
    assert!(matches!(logged_in.recv_significant(), Got::Frame(Frame::Error { code: ErrorCode::UnexpectedFrame, .. })));
    let _ = std::fs::remove_file(pins);
}
