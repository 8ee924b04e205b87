//! Codec behaviour: every frame round-trips, input split anywhere decodes the same, and every malformed
//! input gives its typed error.

use wire::*;

fn client_frames() -> Vec<ClientFrame<'static>> {
    vec![
        ClientFrame::Hello { version: PROTOCOL_VERSION, user: 15_551_234_567, key: [7; 32] },
        ClientFrame::Ping { nonce: 1 },
        ClientFrame::Pong { nonce: u64::MAX },
        ClientFrame::Send { client_msg_id: 42, to: 99, body: b"a giant monster" },
        ClientFrame::Send { client_msg_id: 43, to: 99, body: b"" },
        ClientFrame::Delivered { item_id: 77 },
        ClientFrame::Read { server_id: 77, sender: 5 },
        ClientFrame::RegisterRequest { phone: 15_551_234_567 },
        ClientFrame::RegisterVerify { phone: 15_551_234_567, pin: 123_456 },
    ]
}

fn server_frames() -> Vec<ServerFrame<'static>> {
    vec![
        ServerFrame::Welcome { version: 1, server_time_us: 123, queued: 4 },
        ServerFrame::Error { code: ErrorCode::AuthFailed, text: "bad key" },
        ServerFrame::Goaway { reason: GoawayReason::Replaced },
        ServerFrame::Ping { nonce: 9 },
        ServerFrame::Pong { nonce: 10 },
        ServerFrame::Ack { client_msg_id: 1, server_id: 2, server_time_us: 3 },
        ServerFrame::Reject { client_msg_id: 1, code: RejectCode::RecipientQueueFull },
        ServerFrame::Deliver { item_id: 5, from: 6, server_time_us: 7, body: b"hi" },
        ServerFrame::Receipt { item_id: 8, server_id: 5, peer: 6, kind: ReceiptKind::Delivered, server_time_us: 9 },
        ServerFrame::PinSent { phone: 15_551_234_567, expires_in_s: 600 },
        ServerFrame::Registered { user: 15_551_234_567, key: [3; 32] },
        ServerFrame::RegisterRefused { phone: 15_551_234_567, code: RegisterRefusal::PinWrong, retry_after_s: 0 },
    ]
}

#[test]
fn every_client_frame_round_trips_as_one_batch() {
    let frames = client_frames();
    let mut buf = Vec::new();
    for frame in &frames {
        encode_client(frame, &mut buf);
    }
    let mut at = 0;
    for expected in &frames {
        match decode_client(&buf[at..], FRAME_SIZE_MAX_DEFAULT) {
            Ok(Decoded::Frame { frame, consumed }) => {
                assert_eq!(&frame, expected);
                at += consumed;
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    assert_eq!(at, buf.len());
    assert_eq!(decode_client(&buf[at..], FRAME_SIZE_MAX_DEFAULT), Ok(Decoded::Incomplete { needed: 4 }));
}

#[test]
fn every_server_frame_round_trips_as_one_batch() {
    let frames = server_frames();
    let mut buf = Vec::new();
    for frame in &frames {
        encode_server(frame, &mut buf);
    }
    let mut at = 0;
    for expected in &frames {
        match decode_server(&buf[at..], FRAME_SIZE_MAX_DEFAULT) {
            Ok(Decoded::Frame { frame, consumed }) => {
                assert_eq!(&frame, expected);
                at += consumed;
            }
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    assert_eq!(at, buf.len());
}

#[test]
fn every_server_frame_owned_keeps_every_field() {
    for frame in server_frames() {
        // Same variant names and field names; `&str`/`&[u8]` print as `String`/`Vec<u8>` do.
        assert_eq!(format!("{:?}", frame.clone().into_owned()), format!("{frame:?}"));
    }
}

#[test]
fn a_frame_split_at_every_point_is_incomplete_until_whole() {
    for frame in client_frames() {
        let mut buf = Vec::new();
        let len = encode_client(&frame, &mut buf);
        assert_eq!(len, buf.len());
        for cut in 0..buf.len() {
            match decode_client(&buf[..cut], FRAME_SIZE_MAX_DEFAULT) {
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(needed > 0 && needed <= buf.len() - cut)
                }
                other => panic!("cut at {cut} of {frame:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn oversized_length_is_refused_before_the_body_arrives() {
    let prefix = (70_000u32).to_le_bytes();
    assert_eq!(
        decode_client(&prefix, FRAME_SIZE_MAX_DEFAULT),
        Err(DecodeError::FrameTooLarge { len: 70_000, max: FRAME_SIZE_MAX_DEFAULT })
    );
    assert_eq!(DecodeError::FrameTooLarge { len: 1, max: 0 }.error_code(), ErrorCode::FrameTooLarge);
}

#[test]
fn zero_length_unknown_kind_truncated_and_trailing_bytes_are_errors() {
    assert_eq!(decode_client(&[0, 0, 0, 0], 1024), Err(DecodeError::Empty));
    assert_eq!(decode_client(&[1, 0, 0, 0, 0xEE], 1024), Err(DecodeError::UnknownKind { kind: 0xEE }));
    // A server-only kind sent by a client is unknown to the server's decoder, and vice versa.
    assert_eq!(decode_client(&[1, 0, 0, 0, kind::ACK], 1024), Err(DecodeError::UnknownKind { kind: kind::ACK }));
    assert_eq!(decode_server(&[1, 0, 0, 0, kind::SEND], 1024), Err(DecodeError::UnknownKind { kind: kind::SEND }));
    assert!(matches!(decode_client(&[3, 0, 0, 0, kind::PING, 1, 2], 1024), Err(DecodeError::Truncated { .. })));
    let mut buf = Vec::new();
    encode_client(&ClientFrame::Delivered { item_id: 1 }, &mut buf);
    buf.push(0);
    buf[0] += 1;
    assert_eq!(decode_client(&buf, 1024), Err(DecodeError::TrailingBytes { kind: kind::DELIVERED, extra: 1 }));
    assert_eq!(Decoded::<()>::Incomplete { needed: 1 }, Decoded::Incomplete { needed: 1 });
}

#[test]
fn error_text_must_be_utf8() {
    let buf = [4, 0, 0, 0, kind::ERROR, 1, 0, 0xFF];
    assert_eq!(decode_server(&buf, 1024), Err(DecodeError::InvalidText { kind: kind::ERROR }));
}

#[test]
fn decoders_survive_every_byte_pattern_of_short_inputs() {
    // Exhaustive over all 3-byte frames of each kind: no panic, and any Frame consumes exactly what it claims.
    for kind_byte in 0..=255u8 {
        for a in [0u8, 1, 0x7F, 0xFF] {
            for len in 1..=12u32 {
                let mut buf = len.to_le_bytes().to_vec();
                buf.push(kind_byte);
                buf.extend(std::iter::repeat_n(a, len as usize - 1));
                if let Ok(Decoded::Frame { consumed, .. }) = decode_client(&buf, 64) {
                    assert_eq!(consumed, buf.len());
                }
                if let Ok(Decoded::Frame { consumed, .. }) = decode_server(&buf, 64) {
                    assert_eq!(consumed, buf.len());
                }
            }
        }
    }
}

#[test]
fn keys_line_refuses_a_plus_sign_in_the_key() {
    // Found by fuzz/ keys_line: `u8::from_str_radix` takes "+5" as 5, so a key field with a `+` where a hex
    // digit belongs was accepted and parsed to a key whose hex differs from the text.
    let key_text = format!("{}+5{}", "00".repeat(18), "7a".repeat(13));
    assert_eq!(key_text.len(), 64);
    assert_eq!(parse_keys_line(&format!("15550000002 {key_text}")), Err(KeysFileError::BadKey));
    let valid = format!("15550000002 {}05{}", "00".repeat(18), "7A".repeat(13));
    assert!(matches!(parse_keys_line(&valid), Ok(Some(UserKey { user: 15_550_000_002, .. }))));
}
