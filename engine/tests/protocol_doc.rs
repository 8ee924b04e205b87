//! docs/PROTOCOL.md against the code: every frame's payload size in the frames table is what the `wire` crate
//! encodes for that kind, and the limits table states the values `core/src/limits.rs` holds. A client author
//! reads the document, not the crate, so the two must not drift.

use ringline_core::limits;
use wire::{ClientFrame, ErrorCode, GoawayReason, ReceiptKind, RegisterRefusal, RejectCode, ServerFrame};

fn protocol_doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).expect("docs/PROTOCOL.md")
}

/// (kind, payload bytes) of one frame of each kind, as the `wire` crate encodes it; variable parts empty.
fn encoded_payload_sizes() -> Vec<(u8, usize)> {
    let mut sizes = Vec::new();
    let mut add_client = |frame: ClientFrame<'_>| {
        let mut bytes = Vec::new();
        let total = wire::encode_client(&frame, &mut bytes);
        sizes.push((frame.kind(), total - wire::LENGTH_PREFIX_BYTES - 1));
    };
    add_client(ClientFrame::Hello { version: 1, user: 1, key: [0; 32] });
    add_client(ClientFrame::Send { client_msg_id: 1, to: 2, body: b"" });
    add_client(ClientFrame::Delivered { item_id: 1 });
    add_client(ClientFrame::Read { server_id: 1, sender: 2 });
    add_client(ClientFrame::RegisterRequest { phone: 1 });
    add_client(ClientFrame::RegisterVerify { phone: 1, pin: 2 });
    let mut add_server = |frame: ServerFrame<'_>| {
        let mut bytes = Vec::new();
        let total = wire::encode_server(&frame, &mut bytes);
        sizes.push((frame.kind(), total - wire::LENGTH_PREFIX_BYTES - 1));
    };
    add_server(ServerFrame::Welcome { version: 1, server_time_us: 1, queued: 0 });
    add_server(ServerFrame::Error { code: ErrorCode::Malformed, text: "" });
    add_server(ServerFrame::Goaway { reason: GoawayReason::IdleTimeout });
    add_server(ServerFrame::Ping { nonce: 1 });
    add_server(ServerFrame::Pong { nonce: 1 });
    add_server(ServerFrame::Ack { client_msg_id: 1, server_id: 2, server_time_us: 3 });
    add_server(ServerFrame::Reject { client_msg_id: 1, code: RejectCode::BodyInvalid });
    add_server(ServerFrame::Deliver { item_id: 1, from: 2, server_time_us: 3, body: b"" });
    add_server(ServerFrame::Receipt {
        item_id: 1,
        server_id: 2,
        peer: 3,
        kind: ReceiptKind::Delivered,
        server_time_us: 4,
    });
    add_server(ServerFrame::PinSent { phone: 1, expires_in_s: 2 });
    add_server(ServerFrame::Registered { user: 1, key: [0; 32] });
    add_server(ServerFrame::RegisterRefused { phone: 1, code: RegisterRefusal::PinWrong, retry_after_s: 0 });
    sizes
}

#[test]
fn the_frames_table_gives_each_kind_the_size_the_codec_encodes() {
    let doc = protocol_doc();
    let rows: Vec<(u8, String)> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | kind | name | direction | payload | payload bytes |
            let kind = cells.get(1)?.strip_prefix("0x")?;
            let kind = u8::from_str_radix(kind, 16).ok()?;
            Some((kind, (*cells.get(5)?).to_owned()))
        })
        .collect();
    let sizes = encoded_payload_sizes();
    assert_eq!(rows.len(), sizes.len(), "one row per kind: {rows:?}");
    for (kind, size) in sizes {
        let (_, stated) = rows.iter().find(|(row_kind, _)| *row_kind == kind).expect("a row for every kind");
        // A variable part is stated as `N + body` or `N + text`; its fixed part is what was encoded.
        let fixed: usize = stated.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a number");
        assert_eq!(fixed, size, "kind 0x{kind:02x}: the table says `{stated}`, the codec writes {size} bytes");
    }
}

#[test]
fn the_limits_table_states_the_engines_values() {
    let doc = protocol_doc();
    let with_commas = |n: usize| {
        let digits = n.to_string();
        let mut out = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                out.push(',');
            }
            out.push(digit);
        }
        out
    };
    for stated in [
        format!("| {} bytes (at least {})", with_commas(limits::FRAME_SIZE_MAX_DEFAULT), wire::FRAME_SIZE_MAX_MIN),
        format!("frame size − 17: {} bytes", with_commas(limits::FRAME_SIZE_MAX_DEFAULT - 17)),
        format!("| {} s from accept", limits::HANDSHAKE_TIMEOUT_DEFAULT.as_secs()),
        format!("| {} s | `--idle-timeout`", limits::IDLE_TIMEOUT_DEFAULT.as_secs()),
        format!("| {} KiB | — |", limits::OUTBOUND_BYTES_MAX / 1024),
        format!("| {} | — | the server stops reading", with_commas(limits::SEND_INFLIGHT_MAX as usize)),
        format!("| {} | — | the rest waits", limits::DELIVERY_WINDOW_MAX),
        format!("| {} | `--queue-messages-max`", with_commas(limits::OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT)),
        format!("| {} MiB | `--queue-bytes-max`", limits::OFFLINE_QUEUE_BYTES_MAX_DEFAULT >> 20),
        format!("| {} GiB | `--core-queue-bytes-max`", limits::CORE_QUEUE_BYTES_MAX_DEFAULT >> 30),
        format!("| {} days | `--queue-age-max`", limits::OFFLINE_AGE_MAX_DEFAULT.as_secs() / 86_400),
        format!("| {} | — | that user's SENDs", with_commas(limits::SENDER_RECEIPTS_MAX)),
        format!(
            "| {} minutes, at most {} SENDs",
            limits::DEDUP_WINDOW.as_secs() / 60,
            with_commas(limits::DEDUP_ENTRIES_PER_SHARD_MAX)
        ),
        format!("| {} minutes | `--pin-ttl`", limits::PIN_TTL_DEFAULT.as_secs() / 60),
        format!("| {} s from accept | `--tls-handshake-timeout`", limits::TLS_HANDSHAKE_TIMEOUT_DEFAULT.as_secs()),
        format!("| {} s | — | the socket is closed", limits::LINGER_DURATION.as_secs()),
        format!(
            "| {} (the 6th voids it), {} per hour, {} per hour",
            limits::PIN_ATTEMPTS_MAX,
            limits::PIN_REQUESTS_PER_PHONE_MAX,
            limits::REGISTRATION_SOURCE_ACTIONS_MAX
        ),
    ] {
        assert!(doc.contains(&stated), "docs/PROTOCOL.md's limits table should say `{stated}`");
    }
}
