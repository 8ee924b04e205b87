//! `memory_flood`: what the engine's memory does during and after a burst. Samples the engine's VmRSS
//! before, during (the peak, every 100 ms) and after each phase, then every second of `--idle-seconds`
//! without any traffic, and prints one `rss` line per sample point, in MiB.
//!
//! Phases, each optional:
//! - `--messages N`: one sender logs in and SENDs N messages of `--body-bytes` to `--recipients R` users
//!   that are logged in, read their DELIVERs and answer DELIVERED (so no queue fills); the sender answers
//!   its receipts the same way. At most `--window W` SENDs wait for their ACK.
//! - `--stalled C`: C connections log in, each sends PINGs and never reads (its PONGs fill the engine's
//!   outbound buffer until the engine stops reading it). The line `stalled_bytes_per_connection` is (RSS
//!   with them − RSS before) / C. Then they close.
//!
//! Usage: memory_flood --target ADDR --users KEYS_FILE --engine-pid PID [--messages N] [--body-bytes B]
//!        [--recipients R] [--window W] [--stalled C] [--idle-seconds S]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringline_benches::client::{encode_hello, rss_bytes};
use ringline_benches::flags::{self, address, flag_pairs};
use wire::{ClientFrame, Decoded, ServerFrame, UserKey};

struct Args {
    target: SocketAddr,
    users: String,
    engine_pid: u32,
    messages: u64,
    body_bytes: usize,
    recipients: usize,
    window: u64,
    stalled: usize,
    idle_seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: "127.0.0.1:7000".parse().map_err(|_| "")?,
        users: String::new(),
        engine_pid: 0,
        messages: 0,
        body_bytes: 64,
        recipients: 4,
        window: 2048,
        stalled: 0,
        idle_seconds: 60,
    };
    for (flag, value) in flag_pairs()? {
        match flag.as_str() {
            "--target" => args.target = address(&flag, &value)?,
            "--users" => args.users = value,
            "--engine-pid" => args.engine_pid = flags::number::<u64>(&flag, &value)? as u32,
            "--messages" => args.messages = flags::number(&flag, &value)?,
            "--body-bytes" => args.body_bytes = flags::number::<u64>(&flag, &value)?.max(1) as usize,
            "--recipients" => args.recipients = flags::number::<u64>(&flag, &value)?.max(1) as usize,
            "--window" => args.window = flags::number::<u64>(&flag, &value)?.max(1),
            "--stalled" => args.stalled = flags::number::<u64>(&flag, &value)? as usize,
            "--idle-seconds" => args.idle_seconds = flags::number(&flag, &value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.users.is_empty() || args.engine_pid == 0 {
        return Err("--users and --engine-pid are required".to_owned());
    }
    Ok(args)
}

fn read_keys(path: &str) -> Result<Vec<UserKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{path}: {error}"))?;
    let mut keys = Vec::new();
    for line in text.lines() {
        if let Some(key) = wire::parse_keys_line(line).map_err(|error| format!("{path}: {error}"))? {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Samples the engine's RSS every 100 ms while a phase runs, keeping the highest.
struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl PeakSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(pid).unwrap_or(0), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Self { stop, peak, thread }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Connects and logs in; returns the stream after WELCOME and any bytes read past it.
fn login(target: SocketAddr, user: UserKey) -> Result<(TcpStream, Vec<u8>), String> {
    let mut stream = TcpStream::connect(target).map_err(|error| format!("connect {target}: {error}"))?;
    let _ = stream.set_nodelay(true);
    stream.write_all(&encode_hello(&user)).map_err(|error| format!("HELLO: {error}"))?;
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match wire::decode_server(&input, usize::MAX) {
            Ok(Decoded::Frame { frame: ServerFrame::Welcome { .. }, consumed }) => {
                input.drain(..consumed);
                return Ok((stream, input));
            }
            Ok(Decoded::Frame { frame, .. }) => {
                return Err(format!("user {}: {frame:?} instead of WELCOME", user.user));
            }
            Ok(Decoded::Incomplete { .. }) => {}
            Err(error) => return Err(format!("user {}: {error}", user.user)),
        }
        let read = stream.read(&mut chunk).map_err(|error| format!("reading WELCOME: {error}"))?;
        if read == 0 {
            return Err(format!("user {}: closed before WELCOME", user.user));
        }
        input.extend_from_slice(&chunk[..read]);
    }
}

/// Reads server frames until `done` says stop, calling `on_frame` for each; hands what it returns (DELIVERED
/// frames) to `answer`.
fn read_frames(
    mut stream: TcpStream,
    mut input: Vec<u8>,
    mut answer: impl FnMut(&[u8]) -> Result<(), String>,
    done: &AtomicBool,
    mut on_frame: impl FnMut(&ServerFrame<'_>, &mut Vec<u8>),
) -> Result<(), String> {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut chunk = vec![0u8; 256 * 1024];
    let mut answers = Vec::new();
    loop {
        let mut used = 0;
        loop {
            match wire::decode_server(&input[used..], usize::MAX) {
                Ok(Decoded::Frame { frame, consumed }) => {
                    used += consumed;
                    on_frame(&frame, &mut answers);
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(error) => return Err(error.to_string()),
            }
        }
        input.drain(..used);
        if !answers.is_empty() {
            answer(&answers)?;
            answers.clear();
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(read) => input.extend_from_slice(&chunk[..read]),
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if done.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

fn delivered(item_id: u64, out: &mut Vec<u8>) {
    wire::encode_client(&ClientFrame::Delivered { item_id }, out);
}

/// One sender SENDs `messages` to the recipients, who acknowledge everything they get.
fn flood(args: &Args, keys: &[UserKey]) -> Result<(), String> {
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let recipients: Vec<UserKey> = keys[1..=args.recipients].to_vec();
    let delivered_count = Arc::new(AtomicU64::new(0));
    for recipient in &recipients {
        let (stream, input) = login(args.target, *recipient)?;
        let mut writer = stream.try_clone().map_err(|error| error.to_string())?;
        let (done, delivered_count) = (done.clone(), delivered_count.clone());
        // A recipient's answers are small and its window is bounded: a blocking write cannot stall it.
        let answer = move |bytes: &[u8]| writer.write_all(bytes).map_err(|error| format!("DELIVERED: {error}"));
        readers.push(std::thread::spawn(move || {
            read_frames(stream, input, answer, &done, |frame, answers| {
                if let ServerFrame::Deliver { item_id, .. } | ServerFrame::Receipt { item_id, .. } = frame {
                    delivered_count
                        .fetch_add(u64::from(matches!(frame, ServerFrame::Deliver { .. })), Ordering::Relaxed);
                    delivered(*item_id, answers);
                }
            })
        }));
    }
    let (stream, input) = login(args.target, keys[0])?;
    // The sender's socket is written by this thread only, without blocking, so that its reader never waits
    // for a write that waits for the engine to read (which may wait for the reader).
    let mut writer = stream.try_clone().map_err(|error| error.to_string())?;
    writer.set_nonblocking(true).map_err(|error| error.to_string())?;
    let receipts_answers = Arc::new(Mutex::new(Vec::<u8>::new()));
    let answered = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let sender_reader = {
        let (done, answers_out, answered, rejected) =
            (done.clone(), receipts_answers.clone(), answered.clone(), rejected.clone());
        let answer = move |bytes: &[u8]| {
            answers_out.lock().map_err(|_| "answers lock poisoned".to_owned())?.extend_from_slice(bytes);
            Ok(())
        };
        std::thread::spawn(move || {
            read_frames(stream, input, answer, &done, |frame, answers| match frame {
                ServerFrame::Ack { .. } => {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                ServerFrame::Reject { .. } => {
                    answered.fetch_add(1, Ordering::Relaxed);
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
                ServerFrame::Receipt { item_id, .. } => delivered(*item_id, answers),
                _ => {}
            })
        })
    };
    let body = vec![b'm'; args.body_bytes];
    let started = Instant::now();
    let mut sent = 0u64;
    let mut out = Vec::new();
    loop {
        out.append(&mut *receipts_answers.lock().map_err(|_| "answers lock poisoned")?);
        let room = (answered.load(Ordering::Relaxed) + args.window).saturating_sub(sent).min(args.messages - sent);
        if out.len() < 64 * 1024 {
            for _ in 0..room.min(512) {
                let to = recipients[(sent % recipients.len() as u64) as usize].user;
                wire::encode_client(&ClientFrame::Send { client_msg_id: sent + 1, to, body: &body }, &mut out);
                sent += 1;
            }
        }
        let written = match writer.write(&out) {
            Ok(written) => written,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(format!("writing SENDs: {error}")),
        };
        out.drain(..written);
        let all_answered = answered.load(Ordering::Relaxed) >= args.messages;
        let stored = args.messages - rejected.load(Ordering::Relaxed);
        if all_answered && delivered_count.load(Ordering::Relaxed) >= stored && out.is_empty() {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the flood did not finish in 600 s".to_owned());
        }
        if written == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "flood: {} SENDs answered ({} rejected, SenderBacklogFull or another limit), the rest delivered, in {seconds:.1} s ({:.0}/s)",
        args.messages,
        rejected.load(Ordering::Relaxed),
        args.messages as f64 / seconds
    );
    // Let the last receipts arrive and be acknowledged before the connections close.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        out.append(&mut *receipts_answers.lock().map_err(|_| "answers lock poisoned")?);
        if let Ok(written) = writer.write(&out) {
            out.drain(..written);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().map_err(|_| "a recipient thread panicked")??;
    }
    sender_reader.join().map_err(|_| "the sender thread panicked")??;
    Ok(())
}

/// `stalled` connections that never read: each sends PINGs until the engine stops reading it (its PONGs
/// fill the engine's outbound buffer). Returns them, still open.
fn stall(args: &Args, keys: &[UserKey]) -> Result<Vec<TcpStream>, String> {
    let mut pings = Vec::new();
    for nonce in 0..4096 {
        wire::encode_client(&ClientFrame::Ping { nonce }, &mut pings);
    }
    let mut streams = Vec::new();
    for user in keys.iter().skip(1 + args.recipients).take(args.stalled) {
        let (stream, _) = login(args.target, *user)?;
        stream.set_nonblocking(true).map_err(|error| error.to_string())?;
        streams.push(stream);
    }
    // PINGs to every connection until none has taken a byte for 500 ms: the engine stopped reading them
    // all. Only whole frames: each connection's next byte is kept at `offsets`.
    let mut offsets = vec![0usize; streams.len()];
    let mut last_progress = Instant::now();
    while last_progress.elapsed() < Duration::from_millis(500) {
        let mut progressed = false;
        for (stream, offset) in streams.iter_mut().zip(offsets.iter_mut()) {
            match stream.write(&pings[*offset..]) {
                Ok(written) => {
                    progressed |= written > 0;
                    *offset = (*offset + written) % pings.len();
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(format!("stalled connection: {error}")),
            }
        }
        if progressed {
            last_progress = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(streams)
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("memory_flood: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("memory_flood: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let keys = read_keys(&args.users)?;
    if keys.len() < 1 + args.recipients + args.stalled {
        return Err(format!("the keys file has {} users; need {}", keys.len(), 1 + args.recipients + args.stalled));
    }
    let pid = args.engine_pid;
    let rss = || rss_bytes(pid).ok_or_else(|| format!("cannot read /proc/{pid}/status"));
    println!("rss start_mib={:.1}", mib(rss()?));
    if args.messages > 0 {
        let sampler = PeakSampler::start(pid);
        flood(args, &keys)?;
        let peak = sampler.finish();
        println!("rss flood_peak_mib={:.1} after_flood_mib={:.1}", mib(peak), mib(rss()?));
    }
    if args.stalled > 0 {
        let before = rss()?;
        let sampler = PeakSampler::start(pid);
        let streams = stall(args, &keys)?;
        std::thread::sleep(Duration::from_secs(2));
        let held = rss()?;
        let peak = sampler.finish();
        println!(
            "rss stalled_peak_mib={:.1} with_stalled_mib={:.1} stalled_bytes_per_connection={}",
            mib(peak),
            mib(held),
            held.saturating_sub(before) / args.stalled as u64
        );
        drop(streams);
    }
    let idle_started = Instant::now();
    let mut next_report = 0u64;
    while next_report <= args.idle_seconds {
        let target = Duration::from_secs(next_report);
        if let Some(wait) = target.checked_sub(idle_started.elapsed()) {
            std::thread::sleep(wait);
        }
        println!("rss idle_{next_report}s_mib={:.1}", mib(rss()?));
        next_report = match next_report {
            0 => 1,
            n if n < 10 => n + 1,
            n => n + 10,
        };
    }
    Ok(())
}
