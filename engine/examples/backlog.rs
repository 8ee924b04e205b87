//! Induces a queue backlog on a running engine, for watching its metrics and alerts (results/health/).
//!
//! `offline`: user SENDER sends COUNT messages to user RECIPIENT, who is offline, and waits for the ACKs
//! (the recipient's home core now holds COUNT items); after HOLD seconds the recipient logs in, reads and
//! acknowledges everything, and the sender acknowledges the receipts: the queues drain.
//! `stall`: the same, but the recipient is logged in and does not read: deliveries pile up in its
//! connection's outbound buffer (a stalled reader) until it starts reading after HOLD seconds.
//!
//! cargo run --release -p ringline --example backlog -- offline|stall KEYS_FILE SERVER SENDER_LINE
//!     RECIPIENT_LINE COUNT BODY_BYTES HOLD_SECONDS
//! (SENDER_LINE and RECIPIENT_LINE are 0-based line numbers in the keys file)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wire::{ClientFrame, Decoded, DeviceKey, ServerFrame, UserId};

struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// What the demo needs of a server frame.
#[derive(Debug)]
enum Got {
    Welcome,
    Ack,
    Deliver(u64),
    Receipt(u64),
    Other(String),
}

impl Client {
    fn login(server: &str, user: UserId, key: DeviceKey) -> Self {
        let stream = TcpStream::connect(server).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let mut client = Self { stream, buffer: Vec::new() };
        client.send_frame(&ClientFrame::Hello { version: wire::PROTOCOL_VERSION, user, key });
        match client.recv() {
            Got::Welcome => client,
            other => panic!("login of {user}: {other:?}"),
        }
    }

    fn send_frame(&mut self, frame: &ClientFrame<'_>) {
        let mut bytes = Vec::new();
        wire::encode_client(frame, &mut bytes);
        self.stream.write_all(&bytes).expect("write");
    }

    fn recv(&mut self) -> Got {
        loop {
            match wire::decode_server(&self.buffer, 1 << 20) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    let got = match frame {
                        ServerFrame::Welcome { .. } => Got::Welcome,
                        ServerFrame::Ack { .. } => Got::Ack,
                        ServerFrame::Deliver { item_id, .. } => Got::Deliver(item_id),
                        ServerFrame::Receipt { item_id, .. } => Got::Receipt(item_id),
                        other => Got::Other(format!("{other:?}")),
                    };
                    self.buffer.drain(..consumed);
                    return got;
                }
                Ok(Decoded::Incomplete { .. }) => {}
                Err(error) => panic!("malformed frame from the server: {error}"),
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) => panic!("reading: {error}"),
            }
        }
    }
}

fn log(started: Instant, what: &str) {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!("[backlog +{:>5.1}s, unix {wall}] {what}", started.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, keys, server, sender, recipient, count, body_bytes, hold] = &args[..] else {
        eprintln!("usage: backlog offline|stall KEYS SERVER SENDER_LINE RECIPIENT_LINE COUNT BODY_BYTES HOLD_SECONDS");
        std::process::exit(2);
    };
    let users: Vec<(UserId, DeviceKey)> = std::fs::read_to_string(keys)
        .expect("keys file")
        .lines()
        .filter_map(|line| wire::parse_keys_line(line).expect("keys line"))
        .map(|entry| (entry.user, entry.key))
        .collect();
    let number = |text: &str| -> u64 { text.parse().expect("a number") };
    let sender = users[number(sender) as usize];
    let recipient = users[number(recipient) as usize];
    let count = number(count);
    let body = vec![b'x'; number(body_bytes) as usize];
    let hold = Duration::from_secs(number(hold));
    let stall = mode == "stall";
    let started = Instant::now();

    let mut a = Client::login(server, sender.0, sender.1);
    let mut b = stall.then(|| Client::login(server, recipient.0, recipient.1));
    log(
        started,
        &format!("sending {count} messages of {} bytes from {} to {} ({mode})", body.len(), sender.0, recipient.0),
    );
    let mut acked = 0;
    for n in 0..count {
        a.send_frame(&ClientFrame::Send { client_msg_id: n + 1, to: recipient.0, body: &body });
        // Keep the sender's unanswered SENDs bounded: read ACKs as they come.
        while n + 1 - acked > 512 {
            if let Got::Ack = a.recv() {
                acked += 1;
            }
        }
    }
    while acked < count {
        match a.recv() {
            Got::Ack => acked += 1,
            Got::Other(other) => panic!("while waiting for ACKs: {other}"),
            _ => {}
        }
    }
    log(started, &format!("{acked} messages stored; holding {hold:?}"));
    std::thread::sleep(hold);

    let b = b.get_or_insert_with(|| Client::login(server, recipient.0, recipient.1));
    log(started, "recipient reading and acknowledging");
    let mut delivered = 0;
    while delivered < count {
        if let Got::Deliver(item_id) = b.recv() {
            b.send_frame(&ClientFrame::Delivered { item_id });
            delivered += 1;
        }
    }
    log(started, &format!("{delivered} delivered; sender acknowledging receipts"));
    let mut receipts = 0;
    while receipts < count {
        if let Got::Receipt(item_id) = a.recv() {
            a.send_frame(&ClientFrame::Delivered { item_id });
            receipts += 1;
        }
    }
    log(started, &format!("{receipts} receipts acknowledged; queues drained"));
    std::thread::sleep(Duration::from_secs(3));
}
