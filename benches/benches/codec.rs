//! Codec benchmarks: encode and decode of SEND (client) and DELIVER (server) frames, the two frames every
//! message crosses, at body sizes 16, 256 and 4096 bytes. Each is measured as one frame alone and as a batch of
//! [`BATCH_FRAMES`] frames coalesced in one buffer, the way the engine writes and reads them.
//!
//! Every benchmark runs twice, in a `*_bytes` group (throughput in bytes) and a `*_frames` group (throughput in
//! frames), since criterion 0.5 reports one throughput per benchmark. Ids are `{frame}/{shape}/{body bytes}`.
//!
//! The other frames on the path of every message or login have no body: HELLO (client, one per login), ACK
//! (server, one per SEND) and DELIVERED (client, one per delivered item). They are measured in the `*_frames`
//! groups only, ids `{frame}/{shape}`.

use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, Throughput, black_box, criterion_group, criterion_main, measurement::WallTime,
};
use ringline_benches::criterion_settings;
use wire::{
    ClientFrame, Decoded, FRAME_SIZE_MAX_DEFAULT, PROTOCOL_VERSION, ServerFrame, decode_client, decode_server,
    encode_client, encode_server,
};

/// Body sizes measured: a short chat line, a long one, and a small attachment.
const BODY_SIZES_BYTES: [usize; 3] = [16, 256, 4096];

/// Frames coalesced in one buffer for the batch shape.
const BATCH_FRAMES: usize = 64;

/// The two shapes: one frame per buffer, or a batch in one buffer.
const SHAPES: [(&str, usize); 2] = [("single", 1), ("batch64", BATCH_FRAMES)];

const _: () = assert!(BATCH_FRAMES == 64, "the shape name says batch64");

/// Which throughput a group reports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Frames,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Self::Bytes => "bytes",
            Self::Frames => "frames",
        }
    }

    fn throughput(self, frames: usize, bytes: usize) -> Throughput {
        match self {
            Self::Bytes => Throughput::Bytes(bytes as u64),
            Self::Frames => Throughput::Elements(frames as u64),
        }
    }
}

fn send_frame(body: &[u8]) -> ClientFrame<'_> {
    ClientFrame::Send { client_msg_id: 0x0123_4567_89ab_cdef, to: 15_551_234_567, body }
}

fn deliver_frame(body: &[u8]) -> ServerFrame<'_> {
    ServerFrame::Deliver {
        item_id: 0x0123_4567_89ab_cdef,
        from: 15_551_234_567,
        server_time_us: 1_700_000_000_000_000,
        body,
    }
}

/// The client frames without a body, by name.
fn fixed_client_frames() -> [(&'static str, ClientFrame<'static>); 2] {
    [
        ("hello", ClientFrame::Hello { version: PROTOCOL_VERSION, user: 15_551_234_567, key: [0x5A; 32] }),
        ("delivered", ClientFrame::Delivered { item_id: 0x0123_4567_89ab_cdef }),
    ]
}

/// The server frames without a body, by name.
fn fixed_server_frames() -> [(&'static str, ServerFrame<'static>); 1] {
    [(
        "ack",
        ServerFrame::Ack {
            client_msg_id: 0x0123_4567_89ab_cdef,
            server_id: 0x0001_0000_0000_1234,
            server_time_us: 1_700_000_000_000_000,
        },
    )]
}

/// `frames` copies of a frame, encoded back to back in one buffer.
fn encoded_batch<F>(frame: &F, frames: usize, encode: impl Fn(&F, &mut Vec<u8>) -> usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for _ in 0..frames {
        encode(frame, &mut buf);
    }
    buf
}

/// Benchmarks encoding `frames` copies of `frame` into one buffer.
fn bench_encode_frame<F>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    unit: Unit,
    id: String,
    frame: &F,
    frames: usize,
    encode: impl Fn(&F, &mut Vec<u8>) -> usize,
) {
    let bytes = encoded_batch(frame, frames, &encode).len();
    group.throughput(unit.throughput(frames, bytes));
    let mut out = Vec::with_capacity(bytes);
    group.bench_function(id, |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..frames {
                encode(black_box(frame), &mut out);
            }
            black_box(out.as_slice());
        })
    });
}

/// The length of the client frame at the start of `buf`, if a whole one decodes.
fn decode_client_frame(buf: &[u8]) -> Option<usize> {
    match decode_client(buf, FRAME_SIZE_MAX_DEFAULT) {
        Ok(Decoded::Frame { frame, consumed }) => {
            black_box(frame);
            Some(consumed)
        }
        _ => None,
    }
}

/// The length of the server frame at the start of `buf`, if a whole one decodes.
fn decode_server_frame(buf: &[u8]) -> Option<usize> {
    match decode_server(buf, FRAME_SIZE_MAX_DEFAULT) {
        Ok(Decoded::Frame { frame, consumed }) => {
            black_box(frame);
            Some(consumed)
        }
        _ => None,
    }
}

/// Benchmarks decoding every frame of `buf`, which holds `frames` frames.
fn bench_decode_frames(
    group: &mut BenchmarkGroup<'_, WallTime>,
    unit: Unit,
    id: String,
    buf: &[u8],
    frames: usize,
    decode_frame: impl Fn(&[u8]) -> Option<usize>,
) {
    group.throughput(unit.throughput(frames, buf.len()));
    group.bench_function(id, |b| {
        b.iter(|| {
            let buf = black_box(buf);
            let mut at = 0;
            while let Some(consumed) = decode_frame(&buf[at..]) {
                at += consumed;
            }
            assert_eq!(at, buf.len(), "every frame decodes");
        })
    });
}

fn bench_encode(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    for body_bytes in BODY_SIZES_BYTES {
        let body = vec![0xA5u8; body_bytes];
        for (shape, frames) in SHAPES {
            let id = format!("send/{shape}/{body_bytes}");
            bench_encode_frame(group, unit, id, &send_frame(&body), frames, encode_client);
            let id = format!("deliver/{shape}/{body_bytes}");
            bench_encode_frame(group, unit, id, &deliver_frame(&body), frames, encode_server);
        }
    }
    if unit == Unit::Frames {
        for (shape, frames) in SHAPES {
            for (name, frame) in fixed_client_frames() {
                bench_encode_frame(group, unit, format!("{name}/{shape}"), &frame, frames, encode_client);
            }
            for (name, frame) in fixed_server_frames() {
                bench_encode_frame(group, unit, format!("{name}/{shape}"), &frame, frames, encode_server);
            }
        }
    }
}

fn bench_decode(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    for body_bytes in BODY_SIZES_BYTES {
        let body = vec![0xA5u8; body_bytes];
        for (shape, frames) in SHAPES {
            let buf = encoded_batch(&send_frame(&body), frames, encode_client);
            let id = format!("send/{shape}/{body_bytes}");
            bench_decode_frames(group, unit, id, &buf, frames, decode_client_frame);
            let buf = encoded_batch(&deliver_frame(&body), frames, encode_server);
            let id = format!("deliver/{shape}/{body_bytes}");
            bench_decode_frames(group, unit, id, &buf, frames, decode_server_frame);
        }
    }
    if unit == Unit::Frames {
        for (shape, frames) in SHAPES {
            for (name, frame) in fixed_client_frames() {
                let buf = encoded_batch(&frame, frames, encode_client);
                bench_decode_frames(group, unit, format!("{name}/{shape}"), &buf, frames, decode_client_frame);
            }
            for (name, frame) in fixed_server_frames() {
                let buf = encoded_batch(&frame, frames, encode_server);
                bench_decode_frames(group, unit, format!("{name}/{shape}"), &buf, frames, decode_server_frame);
            }
        }
    }
}

fn codec(c: &mut Criterion) {
    for unit in [Unit::Bytes, Unit::Frames] {
        let mut group = c.benchmark_group(format!("encode_{}", unit.suffix()));
        bench_encode(&mut group, unit);
        group.finish();
        let mut group = c.benchmark_group(format!("decode_{}", unit.suffix()));
        bench_decode(&mut group, unit);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = criterion_settings(Duration::from_secs(1));
    targets = codec
}
criterion_main!(benches);
