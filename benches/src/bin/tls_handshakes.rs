//! `tls_handshakes`: how many TLS handshakes per second one engine takes, full or resumed, and the engine's
//! CPU per handshake, measured with a client that costs as little as a rustls client can (T threads, each
//! one epoll instance with K connections in flight). Each connection: TCP connect, TLS handshake (ALPN
//! `ringline/1`), with `--users` a HELLO and its WELCOME, then close. `--mode plain` does the same without
//! TLS: the baseline of what accepting and closing a connection costs. `--mode resumed` first fills a ticket
//! pool with full handshakes (not timed), then every timed connection resumes, and waits for the tickets the
//! server sends after the handshake (so the pool stays full) before it closes; `--mode full` closes as soon
//! as its side of the handshake is done.
//!
//! Usage: tls_handshakes --target ADDR [--ca CERT] [--mode full|resumed|plain] [--count N] [--in-flight K]
//!        [--threads T] [--name localhost] [--users KEYS_FILE] [--engine-pid PID]
//!        [--suite aes128|aes256|chacha]   (offer only that TLS 1.3 suite; default: rustls' list)
//! Prints one line: connections, seconds, rate, full/resumed/failed counts and, with --engine-pid, the
//! engine's CPU microseconds per connection and the connections per second one core would take at that cost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringline_benches::client::{Conn, Epoll, Phase, TicketPool, client_config, cpu_us, read_hellos};
use ringline_benches::flags::{self, address, flag_pairs, or_exit};
use rustls::ClientConfig;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Full,
    Resumed,
    Plain,
}

struct Args {
    target: SocketAddr,
    ca: Option<String>,
    mode: Mode,
    count: usize,
    in_flight: usize,
    threads: usize,
    name: String,
    users: Option<String>,
    engine_pid: Option<u32>,
    suite: Option<rustls::SupportedCipherSuite>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: "127.0.0.1:7443".parse().map_err(|_| "")?,
        ca: None,
        mode: Mode::Full,
        count: 10_000,
        in_flight: 64,
        threads: 1,
        name: "localhost".to_owned(),
        users: None,
        engine_pid: None,
        suite: None,
    };
    for (flag, value) in flag_pairs()? {
        match flag.as_str() {
            "--target" => args.target = address(&flag, &value)?,
            "--ca" => args.ca = Some(value),
            "--mode" => {
                args.mode = match value.as_str() {
                    "full" => Mode::Full,
                    "resumed" => Mode::Resumed,
                    "plain" => Mode::Plain,
                    other => return Err(format!("--mode {other}: full, resumed or plain")),
                }
            }
            "--count" => args.count = flags::number(&flag, &value)?,
            "--in-flight" => args.in_flight = flags::number::<usize>(&flag, &value)?.max(1),
            "--threads" => args.threads = flags::number::<usize>(&flag, &value)?.max(1),
            "--name" => args.name = value,
            "--users" => args.users = Some(value),
            "--engine-pid" => args.engine_pid = Some(flags::number(&flag, &value)?),
            "--suite" => {
                use rustls::crypto::ring::cipher_suite as suite;
                args.suite = Some(match value.as_str() {
                    "aes128" => suite::TLS13_AES_128_GCM_SHA256,
                    "aes256" => suite::TLS13_AES_256_GCM_SHA384,
                    "chacha" => suite::TLS13_CHACHA20_POLY1305_SHA256,
                    other => return Err(format!("--suite {other}: aes128, aes256 or chacha")),
                })
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.mode != Mode::Plain && args.ca.is_none() {
        return Err("--ca CERT is required for TLS modes".into());
    }
    Ok(args)
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    full: usize,
    resumed: usize,
    plain: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.full += other.full;
        self.resumed += other.resumed;
        self.plain += other.plain;
        self.failed += other.failed;
    }

    fn done(&self) -> usize {
        self.full + self.resumed + self.plain
    }
}

/// Runs `count` connections, `in_flight` at once, starting with HELLO number `first` (if any). With
/// `await_ticket`, a TLS connection closes only once its session ticket arrived.
fn run(
    target: SocketAddr,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    hellos: &[Vec<u8>],
    first: usize,
    count: usize,
    in_flight: usize,
    await_ticket: bool,
) -> Tally {
    let mut tally = Tally::default();
    let Ok(mut epoll) = Epoll::new() else {
        tally.failed = count;
        return tally;
    };
    let mut live: HashMap<u64, Conn> = HashMap::new();
    let mut tokens = Vec::new();
    let mut next = 0usize;
    let mut last_progress = Instant::now();
    while tally.done() + tally.failed < count {
        while live.len() < in_flight && next < count {
            let hello = (!hellos.is_empty()).then(|| hellos[(first + next) % hellos.len()].clone());
            let started = Conn::start(target, tls.as_ref().map(|(config, name)| (config, name)), hello)
                .map(|conn| if await_ticket { conn.awaiting_ticket() } else { conn })
                .and_then(|conn| epoll.add(&conn.stream, next as u64).map(|()| conn));
            match started {
                Ok(conn) => {
                    live.insert(next as u64, conn);
                }
                Err(_) => tally.failed += 1,
            }
            next += 1;
        }
        epoll.wait(100, &mut tokens);
        for token in &tokens {
            let Some(conn) = live.get_mut(token) else { continue };
            match conn.drive() {
                Phase::Ready => {
                    match (&tls, conn.resumed()) {
                        (None, _) => tally.plain += 1,
                        (Some(_), true) => tally.resumed += 1,
                        (Some(_), false) => tally.full += 1,
                    }
                    live.remove(token);
                    last_progress = Instant::now();
                }
                Phase::Failed => {
                    tally.failed += 1;
                    live.remove(token);
                    last_progress = Instant::now();
                }
                Phase::Connecting | Phase::LoggingIn => {}
            }
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            // Stuck: whatever has not finished counts as failed.
            tally.failed += live.len() + (count - next);
            break;
        }
    }
    tally
}

fn main() {
    let args = or_exit("tls_handshakes", parse_args());
    let hellos = match args.users.as_deref() {
        Some(path) => or_exit("tls_handshakes", read_hellos(path, usize::MAX)),
        None => Vec::new(),
    };
    let name = ServerName::try_from(args.name.clone()).map_err(|error| format!("--name {}: {error}", args.name));
    let name = or_exit("tls_handshakes", name);
    let tickets = TicketPool::new(200_000);
    let tls = match (args.mode, &args.ca) {
        (Mode::Plain, _) | (_, None) => None,
        (mode, Some(ca)) => {
            let resumption =
                if mode == Mode::Resumed { Resumption::store(tickets.clone()) } else { Resumption::disabled() };
            Some((or_exit("tls_handshakes", client_config(ca, resumption, args.suite)), name))
        }
    };
    if args.mode == Mode::Resumed {
        // Full handshakes, not timed: each leaves two tickets in the pool.
        let warm = run(args.target, tls.clone(), &hellos, 0, (args.count / 2).clamp(100, 5_000), args.in_flight, true);
        eprintln!("warm-up: {} full handshakes, {} failed, {} tickets", warm.full, warm.failed, tickets.len());
    }

    let cpu_before = args.engine_pid.and_then(cpu_us);
    let started = Instant::now();
    let share = args.count.div_ceil(args.threads);
    let workers: Vec<_> = (0..args.threads)
        .map(|thread| {
            let (tls, hellos) = (tls.clone(), hellos.clone());
            let count = share.min(args.count.saturating_sub(thread * share));
            let (target, in_flight, await_ticket) = (args.target, args.in_flight, args.mode == Mode::Resumed);
            std::thread::spawn(move || run(target, tls, &hellos, thread * share, count, in_flight, await_ticket))
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(worker.join().unwrap_or_default());
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = args.engine_pid.and_then(cpu_us);
    let mode = match args.mode {
        Mode::Full => "full",
        Mode::Resumed => "resumed",
        Mode::Plain => "plain",
    };
    let login = if hellos.is_empty() { "" } else { " +login" };
    print!(
        "mode={mode}{login} connections={} seconds={seconds:.3} rate={:.0}/s full={} resumed={} plain={} failed={}",
        tally.done(),
        tally.done() as f64 / seconds,
        tally.full,
        tally.resumed,
        tally.plain,
        tally.failed
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after)
        && tally.done() > 0
    {
        let per_connection = (after - before) as f64 / tally.done() as f64;
        print!(
            " engine_cpu_us_per_connection={per_connection:.1} per_core_per_second={:.0}",
            1e6 / per_connection.max(0.001)
        );
    }
    println!();
}
