#!/usr/bin/env python3
"""Writes a small seed corpus for the fuzz targets into fuzz/corpus/<target>/ (git-ignored).

One valid frame of every kind per decoder (prefixed by the limit byte the targets read first), a batch of all
of them in one stream, and a few keys-file lines. Seeds only speed the fuzzer up to the interesting layouts;
the byte layout here mirrors docs/PROTOCOL.md, and the targets check everything the codec decides.
"""

import pathlib
import struct

FUZZ_DIR = pathlib.Path(__file__).resolve().parent.parent
LIMIT_BYTE = bytes([255])  # frame_size_max = 255 * 4 = 1020 bytes in the decode targets


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack("<IB", len(payload) + 1, kind) + payload


CLIENT_FRAMES = {
    "hello": frame(0x01, struct.pack("<HQ", 1, 15_551_234_567) + bytes(range(32))),
    "ping": frame(0x05, struct.pack("<Q", 1)),
    "pong": frame(0x06, struct.pack("<Q", 2)),
    "send": frame(0x10, struct.pack("<QQ", 42, 99) + b"a giant monster"),
    "delivered": frame(0x14, struct.pack("<Q", 77)),
    "read": frame(0x15, struct.pack("<QQ", 77, 5)),
}

SERVER_FRAMES = {
    "welcome": frame(0x02, struct.pack("<HQI", 1, 123, 4)),
    "error": frame(0x03, struct.pack("<H", 5) + "bad key é".encode()),
    "goaway": frame(0x04, struct.pack("<H", 2)),
    "ping": frame(0x05, struct.pack("<Q", 9)),
    "pong": frame(0x06, struct.pack("<Q", 10)),
    "ack": frame(0x11, struct.pack("<QQQ", 1, 2, 3)),
    "reject": frame(0x12, struct.pack("<QH", 1, 2)),
    "deliver": frame(0x13, struct.pack("<QQQ", 5, 6, 7) + b"hi"),
    "receipt": frame(0x16, struct.pack("<QQQBQ", 8, 5, 6, 1, 9)),
}

KEYS_LINES = {
    "header": "# ringline-keys v1\n",
    "line": "15550000001 " + bytes(range(32)).hex() + "\n",
    "upper": "  15550000002\t" + bytes(range(100, 132)).hex().upper() + "  ",
    "blank": "   \n",
}


def write(target: str, seeds: dict[str, bytes]) -> None:
    directory = FUZZ_DIR / "corpus" / target
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (directory / f"seed-{name}").write_bytes(data)
    print(f"{directory}: {len(seeds)} seeds")


def decoder_seeds(frames: dict[str, bytes]) -> dict[str, bytes]:
    seeds = {name: LIMIT_BYTE + data for name, data in frames.items()}
    seeds["batch"] = LIMIT_BYTE + b"".join(frames.values())
    return seeds


# shard_input: operations as the target reads them (op, connection index, then the op's bytes). Two users log
# in, one sends to the other, the log write completes, both read, the recipient acknowledges the message and
# the sender the receipt, and the clock ticks: the fuzzer starts from a whole conversation.
ACCEPT, LOGIN, FRAME, WRITE_ALL, TICK, LOG = 0, 1, 2, 5, 6, 7
SEND, DELIVERED_KNOWN = 0, 1
CONVERSATION = bytes(
    [ACCEPT, 0, ACCEPT, 0, LOGIN, 0, 0, 0, LOGIN, 1, 1, 0, WRITE_ALL, 0, WRITE_ALL, 1]
    + [FRAME, 0, SEND, 1, 7, 2] + list(b"hello!")
    + [LOG, 0, 1, WRITE_ALL, 0, WRITE_ALL, 1]
    + [FRAME, 1, DELIVERED_KNOWN, 0, 0, LOG, 0, 1, WRITE_ALL, 0]
    + [FRAME, 0, DELIVERED_KNOWN, 0, 1, LOG, 0, 1, TICK, 0, 20, WRITE_ALL, 0, WRITE_ALL, 1]
)

# wal_recovery, grouped mode (mode byte 2: one core): [groups - 1], per group [records - 1] then per record
# [body bytes / 8], then the damage [group][start: 2 bytes][length: 2 bytes][how: 0 zeros, 1 flipped, 2 cut].
GROUPED = 2
WAL_RECOVERY = {
    # Three groups, the last one's tail cut off by the crash.
    "torn-last": bytes([GROUPED, 2, 1, 5, 9, 0, 3, 200, 120, 7, 1, 2, 0, 0x08, 0x00, 0x00, 0x10, 2]),
    # Four groups, the second one zeroed in its middle (a bad disk): the third and fourth must be read.
    "hole-in-the-middle": bytes([GROUPED, 3, 2, 100, 100, 100, 0, 7, 1, 250, 0, 1, 0, 0x00, 0x60, 0x01, 0x00, 0]),
    # A group ending 6 bytes before a page boundary (37 + 5 * 49 + 476 * 8 = 4090: issue 17), then another;
    # the first group's first record flipped: the second must be read.
    "short-padding": bytes([GROUPED, 1, 4, 255, 221, 0, 0, 0, 0, 3, 0, 0x00, 0x40, 0x00, 0x02, 1]),
}

write("decode_client", decoder_seeds(CLIENT_FRAMES))
write("decode_server", decoder_seeds(SERVER_FRAMES))
write("keys_line", {name: line.encode() for name, line in KEYS_LINES.items()})
write("shard_input", {"conversation": CONVERSATION})
write("wal_recovery", WAL_RECOVERY)
