//! Fuzzes one core's protocol state machine (`ringline_core::shard::Shard`) the way its runtime drives it, with the
//! clients' bytes, the order of events and the clock all taken from the input: the engine's widest door to
//! untrusted input, behind the codec that `decode_client` fuzzes alone.
//!
//! The input is a sequence of operations: accept a connection; log in one of four provisioned users (or an
//! unknown one) with a valid HELLO; send a well-formed frame (SEND, DELIVERED of an item the server delivered
//! or of any id, READ, PING, PONG, a registration frame); send raw bytes; let the runtime write some or all of
//! a connection's outbound bytes; advance the clock and tick; complete or fail the log's pending write and
//! the device records registration made; close a connection. Like the runtime, the harness reads a socket only while its status allows it and honours
//! `CloseNow` and `CloseAfterFlush`.
//!
//! Checked: nothing panics; a connection's outbound bytes stay under the bound the simulator also asserts
//! (`OUTBOUND_BYTES_MAX` + one frame + one read); everything the server writes decodes as server frames; with
//! one core, no socket is ever handed off.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringline_core::account::KeyAuthority;
use ringline_core::home::ShardId;
use ringline_core::limits::{OUTBOUND_BYTES_MAX, READ_BUFFER_BYTES};
use ringline_core::shard::{ConnId, ConnStatus, DeviceRecord, Now, Output, Shard};
use wire::{ClientFrame, Decoded, LENGTH_PREFIX_BYTES, PROTOCOL_VERSION, ServerFrame, decode_server, encode_client};

#[path = "common/shard_config.rs"]
mod shard_config;
use shard_config::{FRAME_SIZE_MAX, USER_BASE, USERS, keys, shard_config};

const CONNECTIONS_MAX: usize = 6;

/// The input, read front to back; every read past the end gives zeros (so every input is a whole program).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        first
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|_| self.byte()))
    }

    fn bytes(&mut self, len: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// One client connection as the harness sees it.
struct Client {
    conn: ConnId,
    /// Bytes the runtime wrote to the client and the client has not decoded yet.
    received: Vec<u8>,
}

struct Harness {
    shard: Shard,
    keys: KeyAuthority,
    now: Now,
    clients: Vec<Client>,
    /// Item ids the server delivered (messages and receipts), for DELIVERED frames that name real items.
    delivered_ids: Vec<u64>,
    /// Device generations the shard handed out (`Output::RecordDevice`), for the device-record task's batch.
    device_records: Vec<DeviceRecord>,
}

fuzz_target!(|data: &[u8]| {
    let mut harness = Harness {
        shard: Shard::new(ShardId(0), shard_config(1)),
        keys: keys(),
        now: Now { mono_us: 1_000_000, wall_us: 1_700_000_000_000_000 },
        clients: Vec::new(),
        delivered_ids: Vec::new(),
        device_records: Vec::new(),
    };
    let mut input = Input(data);
    while !input.0.is_empty() {
        harness.step(&mut input);
        harness.settle();
    }
    // The end: everything written reaches the clients.
    for index in 0..harness.clients.len() {
        harness.write_out(index, usize::MAX);
    }
});

impl Harness {
    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        let index = usize::from(input.byte()) % self.clients.len().max(1);
        match op % 9 {
            0 => {
                if self.clients.len() < CONNECTIONS_MAX
                    && let Ok(conn) = self.shard.handle_accept(self.now)
                {
                    self.clients.push(Client { conn, received: Vec::new() });
                }
            }
            1 => {
                let user = USER_BASE + u64::from(input.byte()) % (USERS + 1);
                let generation = u32::from(input.byte() % 2);
                let key = self.keys.derive(user, generation);
                self.feed_frame(index, &ClientFrame::Hello { version: PROTOCOL_VERSION, user, key });
            }
            2 => {
                let frame_kind = input.byte();
                let to = USER_BASE + u64::from(input.byte()) % (USERS + 1);
                let number = u64::from(input.byte());
                match frame_kind % 7 {
                    0 => {
                        let len = usize::from(input.byte()) * 3;
                        let body = input.bytes(len).to_vec();
                        self.feed_frame(index, &ClientFrame::Send { client_msg_id: number, to, body: &body });
                    }
                    1 => {
                        let item_id = self
                            .delivered_ids
                            .get(number as usize % self.delivered_ids.len().max(1))
                            .copied()
                            .unwrap_or(number);
                        self.feed_frame(index, &ClientFrame::Delivered { item_id });
                    }
                    2 => self.feed_frame(index, &ClientFrame::Delivered { item_id: input.u64() }),
                    3 => self.feed_frame(index, &ClientFrame::Read { server_id: input.u64(), sender: to }),
                    4 => self.feed_frame(index, &ClientFrame::Ping { nonce: number }),
                    5 => self.feed_frame(index, &ClientFrame::Pong { nonce: number }),
                    _ => {
                        let pin = u32::from(input.byte()) * 4099;
                        if number.is_multiple_of(2) {
                            self.feed_frame(index, &ClientFrame::RegisterRequest { phone: to });
                        } else {
                            self.feed_frame(index, &ClientFrame::RegisterVerify { phone: to, pin });
                        }
                    }
                }
            }
            3 => {
                let len = usize::from(input.byte());
                let bytes = input.bytes(len).to_vec();
                self.feed(index, &bytes);
            }
            4 => {
                let len = usize::from(input.byte()) * 64;
                self.write_out(index, len);
            }
            5 => self.write_out(index, usize::MAX),
            6 => {
                let step_us = u64::from(input.byte()) * 50_000;
                self.now.mono_us += step_us;
                self.now.wall_us += step_us;
                self.shard.handle_timeout(self.now);
            }
            7 => {
                let outcome = input.byte();
                if outcome.is_multiple_of(8) {
                    if self.shard.poll_wal_write().is_some() {
                        self.shard.handle_wal_failed();
                    }
                } else {
                    while let Some(write) = self.shard.poll_wal_write() {
                        self.shard.handle_wal_done(write.lsn, self.now);
                    }
                }
                // The device-record task's batch: all made durable, or all failed.
                for record in std::mem::take(&mut self.device_records) {
                    if outcome & 0x40 == 0 {
                        self.shard.handle_device_recorded(record, self.now);
                    } else {
                        self.shard.handle_device_record_failed(record, self.now);
                    }
                }
            }
            _ => {
                if index < self.clients.len() {
                    let client = self.clients.swap_remove(index);
                    self.shard.handle_closed(client.conn);
                }
            }
        }
    }

    fn feed_frame(&mut self, index: usize, frame: &ClientFrame<'_>) {
        let mut bytes = Vec::new();
        encode_client(frame, &mut bytes);
        self.feed(index, &bytes);
    }

    /// The runtime read `bytes` from the socket, if the shard lets it read now.
    fn feed(&mut self, index: usize, bytes: &[u8]) {
        let Some(client) = self.clients.get(index) else { return };
        if self.shard.conn_status(client.conn) == (ConnStatus::Open { may_read: true }) {
            let conn = client.conn;
            for chunk in bytes.chunks(READ_BUFFER_BYTES) {
                self.shard.handle_bytes(conn, chunk, self.now);
            }
        }
    }

    /// The runtime wrote up to `len` outbound bytes of a connection; the client decodes what it got.
    fn write_out(&mut self, index: usize, len: usize) {
        let Some(client) = self.clients.get_mut(index) else { return };
        let outbound = self.shard.outbound(client.conn);
        let written = len.min(outbound.len());
        client.received.extend_from_slice(&outbound[..written]);
        self.shard.consume_outbound(client.conn, written, self.now);
        let mut at = 0;
        loop {
            match decode_server(&client.received[at..], FRAME_SIZE_MAX + 64) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    if let ServerFrame::Deliver { item_id, .. } | ServerFrame::Receipt { item_id, .. } = frame {
                        self.delivered_ids.push(item_id);
                        if self.delivered_ids.len() > 64 {
                            self.delivered_ids.remove(0);
                        }
                    }
                    at += consumed;
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(error) => panic!("the server wrote an undecodable frame: {error}"),
            }
        }
        client.received.drain(..at);
    }

    /// What the runtime does between inputs: bounded outbound, closes as the status says, the shard's outputs
    /// taken (PINs handed over, device records kept for the device-record task).
    fn settle(&mut self) {
        let bound = OUTBOUND_BYTES_MAX + LENGTH_PREFIX_BYTES + FRAME_SIZE_MAX + READ_BUFFER_BYTES;
        let mut index = 0;
        while index < self.clients.len() {
            let conn = self.clients[index].conn;
            let outbound = self.shard.outbound(conn).len();
            assert!(outbound <= bound, "outbound {outbound} > {bound}");
            match self.shard.conn_status(conn) {
                ConnStatus::Open { .. } => index += 1,
                ConnStatus::CloseAfterFlush => {
                    self.write_out(index, usize::MAX);
                    self.shard.handle_closed(conn);
                    self.clients.swap_remove(index);
                }
                ConnStatus::CloseNow => {
                    self.shard.handle_closed(conn);
                    self.clients.swap_remove(index);
                }
                ConnStatus::Gone => {
                    self.clients.swap_remove(index);
                }
                ConnStatus::HandOff => panic!("a socket handed off with one core"),
            }
        }
        // The outputs, as the engine's driver takes them: PINs go to a sender that refuses one in eight (its
        // queue full), so both answers are reached; device records wait for operation 7; the log's records are
        // taken by operation 7 whether announced or not; connections are served by the loop above.
        while let Some(output) = self.shard.poll_output() {
            match output {
                Output::SendPin { conn, pin } if pin.pin % 8 == 0 => {
                    self.shard.handle_pin_not_handed_over(conn, pin, self.now)
                }
                Output::SendPin { conn, pin } => self.shard.handle_pin_handed_over(conn, pin, self.now),
                Output::RecordDevice(record) => self.device_records.push(record),
                Output::Serve(_)
                | Output::MeshReady(_)
                | Output::LogReady
                | Output::DeleteSegment(_)
                | Output::AdminAnswer { .. } => {}
            }
        }
    }
}
