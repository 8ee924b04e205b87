//! Codec benchmarks: encode and decode of SEND (client) and DELIVER (server) frames, the two frames every
//! message crosses, at body sizes 16, 256 and 4096 bytes. Each is measured as one frame alone and as a batch of
//! [`BATCH_FRAMES`] frames coalesced in one buffer, the way the engine writes and reads them.
//!
//! Every benchmark runs twice, in a `*_bytes` group (throughput in bytes) and a `*_frames` group (throughput in
//! frames), since criterion 0.5 reports one throughput per benchmark. Ids are `{frame}/{shape}/{body bytes}`.

use criterion::{
    BenchmarkGroup, Criterion, Throughput, black_box, criterion_group, criterion_main, measurement::WallTime,
};
use wire::{
    ClientFrame, Decoded, FRAME_SIZE_MAX_DEFAULT, ServerFrame, decode_client, decode_server, encode_client,
    encode_server,
};

/// Body sizes measured: a short chat line, a long one, and a small attachment.
const BODY_SIZES_BYTES: [usize; 3] = [16, 256, 4096];

/// Frames coalesced in one buffer for the batch shape.
const BATCH_FRAMES: usize = 64;

/// The two shapes: one frame per buffer, or a batch in one buffer.
const SHAPES: [(&str, usize); 2] = [("single", 1), ("batch64", BATCH_FRAMES)];

const _: () = assert!(BATCH_FRAMES == 64, "the shape name says batch64");

/// Which throughput a group reports.
#[derive(Clone, Copy)]
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

/// `frames` copies of a frame, encoded back to back in one buffer.
fn encoded_batch<F>(frame: &F, frames: usize, encode: impl Fn(&F, &mut Vec<u8>) -> usize) -> Vec<u8> {
    let mut buf = Vec::new();
    for _ in 0..frames {
        encode(frame, &mut buf);
    }
    buf
}

fn bench_encode(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    for body_bytes in BODY_SIZES_BYTES {
        let body = vec![0xA5u8; body_bytes];
        let send = send_frame(&body);
        let deliver = deliver_frame(&body);
        for (shape, frames) in SHAPES {
            let send_bytes = encoded_batch(&send, frames, encode_client).len();
            group.throughput(unit.throughput(frames, send_bytes));
            let mut out = Vec::with_capacity(send_bytes);
            group.bench_function(format!("send/{shape}/{body_bytes}"), |b| {
                b.iter(|| {
                    out.clear();
                    for _ in 0..frames {
                        encode_client(black_box(&send), &mut out);
                    }
                    black_box(out.as_slice());
                })
            });

            let deliver_bytes = encoded_batch(&deliver, frames, encode_server).len();
            group.throughput(unit.throughput(frames, deliver_bytes));
            let mut out = Vec::with_capacity(deliver_bytes);
            group.bench_function(format!("deliver/{shape}/{body_bytes}"), |b| {
                b.iter(|| {
                    out.clear();
                    for _ in 0..frames {
                        encode_server(black_box(&deliver), &mut out);
                    }
                    black_box(out.as_slice());
                })
            });
        }
    }
}

fn bench_decode(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    for body_bytes in BODY_SIZES_BYTES {
        let body = vec![0xA5u8; body_bytes];
        for (shape, frames) in SHAPES {
            let send_buf = encoded_batch(&send_frame(&body), frames, encode_client);
            group.throughput(unit.throughput(frames, send_buf.len()));
            group.bench_function(format!("send/{shape}/{body_bytes}"), |b| {
                b.iter(|| {
                    let buf = black_box(send_buf.as_slice());
                    let mut at = 0;
                    while let Ok(Decoded::Frame { frame, consumed }) = decode_client(&buf[at..], FRAME_SIZE_MAX_DEFAULT)
                    {
                        black_box(frame);
                        at += consumed;
                    }
                    assert_eq!(at, buf.len(), "every frame decodes");
                })
            });

            let deliver_buf = encoded_batch(&deliver_frame(&body), frames, encode_server);
            group.throughput(unit.throughput(frames, deliver_buf.len()));
            group.bench_function(format!("deliver/{shape}/{body_bytes}"), |b| {
                b.iter(|| {
                    let buf = black_box(deliver_buf.as_slice());
                    let mut at = 0;
                    while let Ok(Decoded::Frame { frame, consumed }) = decode_server(&buf[at..], FRAME_SIZE_MAX_DEFAULT)
                    {
                        black_box(frame);
                        at += consumed;
                    }
                    assert_eq!(at, buf.len(), "every frame decodes");
                })
            });
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

criterion_group!(benches, codec);
criterion_main!(benches);
