//! `idle_hold`: the engine's memory per idle authenticated connection, plain or TLS. Logs N users in (K at a
//! time, HELLO and WELCOME, over TLS with `--ca`), samples the engine's VmRSS every 500 logins during the
//! ramp and once all N are up and have settled for two seconds, and prints:
//! - the least-squares slope of RSS over logged-in connections during the ramp (the marginal bytes per
//!   connection; one-time costs such as first-touch of per-core buffers do not count), and
//! - (RSS at the plateau − RSS before the first connection) / N.
//!
//! Then it holds them `--seconds` and exits, closing them. Kernel memory (socket buffers, epoll items) is
//! not in VmRSS and not counted.
//!
//! Usage: idle_hold --target ADDR --users KEYS_FILE --count N --engine-pid PID [--ca CERT] [--name localhost]
//!        [--in-flight K] [--seconds S]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringline_benches::client::{Conn, Epoll, Phase, client_config, read_hellos, rss_bytes};
use ringline_benches::flags::{self, address, flag_pairs, or_exit};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;

struct Args {
    target: SocketAddr,
    users: String,
    count: usize,
    engine_pid: u32,
    ca: Option<String>,
    name: String,
    in_flight: usize,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut target = None;
    let mut users = None;
    let mut engine_pid = None;
    let mut args = Args {
        target: "127.0.0.1:7000".parse().map_err(|_| "")?,
        users: String::new(),
        count: 10_000,
        engine_pid: 0,
        ca: None,
        name: "localhost".to_owned(),
        in_flight: 256,
        seconds: 0,
    };
    for (flag, value) in flag_pairs()? {
        match flag.as_str() {
            "--target" => target = Some(address(&flag, &value)?),
            "--users" => users = Some(value),
            "--count" => args.count = flags::number(&flag, &value)?,
            "--engine-pid" => engine_pid = Some(flags::number(&flag, &value)?),
            "--ca" => args.ca = Some(value),
            "--name" => args.name = value,
            "--in-flight" => args.in_flight = flags::number::<usize>(&flag, &value)?.max(1),
            "--seconds" => args.seconds = flags::number::<usize>(&flag, &value)? as u64,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    args.target = target.ok_or("--target ADDR is required")?;
    args.users = users.ok_or("--users KEYS_FILE is required")?;
    args.engine_pid = engine_pid.ok_or("--engine-pid PID is required")?;
    Ok(args)
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) =
        points.iter().fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx) * (x - mx)));
    if den == 0.0 { 0.0 } else { num / den }
}

fn main() {
    let args = or_exit("idle_hold", parse_args());
    let hellos = or_exit("idle_hold", read_hellos(&args.users, args.count));
    if hellos.len() < args.count {
        eprintln!("idle_hold: {} holds {} users, fewer than --count {}", args.users, hellos.len(), args.count);
        std::process::exit(2);
    }
    let tls = args.ca.as_ref().map(|ca| {
        // Resumption off: every connection does a full handshake and holds a fresh session.
        let config = or_exit("idle_hold", client_config(ca, Resumption::disabled(), None));
        let name = ServerName::try_from(args.name.clone()).map_err(|error| format!("--name {}: {error}", args.name));
        let name = or_exit("idle_hold", name);
        (config, name)
    });
    let mut epoll = Epoll::new().unwrap_or_else(|error| {
        eprintln!("idle_hold: epoll: {error}");
        std::process::exit(1);
    });

    let rss = || rss_bytes(args.engine_pid).unwrap_or(0) as f64;
    let before = rss();
    let mut samples = vec![(0.0, before)];
    let mut conns: Vec<Option<Conn>> = Vec::with_capacity(args.count);
    let (mut ready, mut failed, mut in_flight, mut next) = (0usize, 0usize, 0usize, 0usize);
    let mut tokens = Vec::new();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while ready + failed < args.count {
        while in_flight < args.in_flight && next < args.count {
            let tls = tls.as_ref().map(|(config, name)| (config, name));
            match Conn::start(args.target, tls, Some(hellos[next].clone()))
                .and_then(|conn| epoll.add(&conn.stream, next as u64).map(|()| conn))
            {
                Ok(conn) => {
                    conns.push(Some(conn));
                    in_flight += 1;
                }
                Err(_) => {
                    conns.push(None);
                    failed += 1;
                }
            }
            next += 1;
        }
        epoll.wait(100, &mut tokens);
        for &token in &tokens {
            let Some(slot) = conns.get_mut(token as usize) else { continue };
            let Some(conn) = slot.as_mut() else { continue };
            if conn.phase == Phase::Ready {
                // Idle and logged in: nothing to read but PINGs or a GOAWAY, which this tool ignores.
                continue;
            }
            match conn.drive() {
                Phase::Ready => {
                    ready += 1;
                    in_flight -= 1;
                    last_progress = Instant::now();
                    if ready % 500 == 0 {
                        samples.push((ready as f64, rss()));
                    }
                }
                Phase::Failed => {
                    *slot = None;
                    failed += 1;
                    in_flight -= 1;
                    last_progress = Instant::now();
                }
                Phase::Connecting | Phase::LoggingIn => {}
            }
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            eprintln!("idle_hold: stuck at {ready} logged in, {failed} failed");
            break;
        }
    }
    let ramp_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let plateau = rss();
    let ramp: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|&(x, _)| x >= 0.1 * args.count as f64 && x <= 0.95 * args.count as f64)
        .collect();
    let kind = if tls.is_some() { "tls" } else { "plain" };
    println!(
        "kind={kind} connections={ready} failed={failed} ramp_seconds={ramp_seconds:.1} rss_before={before:.0} \
         rss_plateau={plateau:.0} plateau_bytes_per_connection={:.0} slope_bytes_per_connection={:.0}",
        (plateau - before) / ready.max(1) as f64,
        slope(&ramp)
    );
    for (connections, bytes) in &samples {
        eprintln!("sample connections={connections:.0} rss={bytes:.0}");
    }
    std::thread::sleep(Duration::from_secs(args.seconds));
    drop(conns);
}
