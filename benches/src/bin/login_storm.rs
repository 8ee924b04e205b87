//! `login_storm`: how many logins per second one engine takes, measured with a client that costs as little as
//! a client can (per thread one epoll instance, non-blocking sockets, one pre-encoded HELLO per user), so
//! that on a 2-core box the engine, not the load generator, is what the figure measures. It is a benchmark
//! driver, not a load generator: no ledger, no messages; `ringline-loadgen` is the tool for those.
//!
//! Usage: login_storm --target ADDR --users KEYS_FILE [--count N] [--in-flight K] [--rounds R] [--threads T]
//! Each round connects N users (K handshakes in flight at once, split over T client threads, default 1),
//! counts WELCOMEs, then closes them all.
//! Prints one line per round: logins, seconds, logins/s, failures.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use ringline_benches::client::read_hellos;
use ringline_benches::flags::{self, address, flag_pairs, or_exit};
use wire::{Decoded, ServerFrame};

struct Args {
    target: SocketAddr,
    users: String,
    count: usize,
    in_flight: usize,
    rounds: usize,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        target: "127.0.0.1:7000".parse().map_err(|_| "")?,
        users: String::new(),
        count: 19_000,
        in_flight: 1024,
        rounds: 3,
        threads: 1,
    };
    for (flag, value) in flag_pairs()? {
        match flag.as_str() {
            "--target" => args.target = address(&flag, &value)?,
            "--users" => args.users = value,
            "--count" => args.count = flags::number(&flag, &value)?,
            "--in-flight" => args.in_flight = flags::number(&flag, &value)?,
            "--threads" => {
                args.threads = flags::number(&flag, &value)?;
                if args.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "--rounds" => args.rounds = flags::number(&flag, &value)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.users.is_empty() {
        return Err("--users KEYS_FILE is required".into());
    }
    Ok(args)
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(result) }
}

/// A non-blocking socket with a connect in progress to `target` (IPv4).
fn start_connect(target: SocketAddr) -> io::Result<OwnedFd> {
    let SocketAddr::V4(v4) = target else { return Err(io::Error::other("IPv4 targets only")) };
    // SAFETY: plain syscalls; the fd is owned right after creation.
    let fd = unsafe {
        OwnedFd::from_raw_fd(check(libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    let one: libc::c_int = 1;
    // SAFETY: valid fd, option pointer and length.
    unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, (&one as *const libc::c_int).cast(), 4);
    }
    let address = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `address` is a valid sockaddr_in of the given length.
    let result = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if result < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(error);
        }
    }
    Ok(fd)
}

fn epoll_add(epoll: RawFd, fd: RawFd, token: u64) -> io::Result<()> {
    let mut event = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32, u64: token };
    // SAFETY: valid epoll and socket descriptors and event.
    check(unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) }).map(drop)
}

struct Pending {
    fd: OwnedFd,
    hello_sent: bool,
    input: Vec<u8>,
}

/// Logs in every user of `hellos` (one pre-encoded HELLO each) with at most `in_flight` handshakes at once,
/// on one epoll instance. Returns the logged-in sockets and how many logins failed.
fn login_all(target: SocketAddr, hellos: &[Vec<u8>], in_flight: usize) -> io::Result<(Vec<OwnedFd>, usize)> {
    // SAFETY: plain syscall; the fd is owned right after.
    let epoll = unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut done: Vec<OwnedFd> = Vec::with_capacity(hellos.len());
    let mut next = 0usize;
    let mut failures = 0usize;
    while done.len() + failures < hellos.len() {
        while pending.len() < in_flight && next < hellos.len() {
            match start_connect(target)
                .and_then(|fd| epoll_add(epoll.as_raw_fd(), fd.as_raw_fd(), next as u64).map(|()| fd))
            {
                Ok(fd) => {
                    pending.insert(next as u64, Pending { fd, hello_sent: false, input: Vec::new() });
                }
                Err(_) => failures += 1,
            }
            next += 1;
        }
        // SAFETY: `events` is a valid buffer of its length.
        let ready = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, 1000) };
        if ready < 0 {
            continue;
        }
        for event in &events[..ready as usize] {
            let token = event.u64;
            let Some(state) = pending.get_mut(&token) else { continue };
            let fd = state.fd.as_raw_fd();
            if !state.hello_sent && event.events & libc::EPOLLOUT as u32 != 0 {
                let hello = &hellos[token as usize];
                // SAFETY: valid fd and buffer.
                let sent = unsafe { libc::send(fd, hello.as_ptr().cast(), hello.len(), libc::MSG_NOSIGNAL) };
                if sent as usize == hello.len() {
                    state.hello_sent = true;
                } else {
                    pending.remove(&token);
                    failures += 1;
                    continue;
                }
            }
            if event.events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                let mut buffer = [0u8; 512];
                // SAFETY: valid fd and buffer.
                let read = unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
                if read <= 0 {
                    if read == 0 || io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                        pending.remove(&token);
                        failures += 1;
                    }
                    continue;
                }
                state.input.extend_from_slice(&buffer[..read as usize]);
                match wire::decode_server(&state.input, 1 << 16) {
                    Ok(Decoded::Frame { frame: ServerFrame::Welcome { .. }, .. }) => {
                        if let Some(state) = pending.remove(&token) {
                            done.push(state.fd);
                        }
                    }
                    Ok(Decoded::Incomplete { .. }) => {}
                    _ => {
                        pending.remove(&token);
                        failures += 1;
                    }
                }
            }
        }
    }
    Ok((done, failures))
}

fn main() {
    let args = or_exit("login_storm", parse_args());
    let hellos = or_exit("login_storm", read_hellos(&args.users, args.count));
    for round in 1..=args.rounds {
        let started = Instant::now();
        // `--threads` is at least 1 (parse_args).
        let per_thread = hellos.len().div_ceil(args.threads).max(1);
        let in_flight = (args.in_flight / args.threads).max(1);
        let results: Vec<io::Result<(Vec<OwnedFd>, usize)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = hellos
                .chunks(per_thread)
                .map(|share| scope.spawn(move || login_all(args.target, share, in_flight)))
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap_or_else(|_| Err(io::Error::other("a client thread panicked"))))
                .collect()
        });
        let seconds = started.elapsed().as_secs_f64();
        let mut done = Vec::with_capacity(hellos.len());
        let mut failures = 0usize;
        for result in results {
            match result {
                Ok((fds, failed)) => {
                    done.extend(fds);
                    failures += failed;
                }
                Err(error) => {
                    eprintln!("login_storm: {error}");
                    std::process::exit(1);
                }
            }
        }
        println!(
            "round {round}: {} logins in {seconds:.3} s = {:.0} logins/s, {failures} failures",
            done.len(),
            done.len() as f64 / seconds
        );
        drop(done);
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
}
