//! The agent process: listens for a controller, takes a run plan, runs one pinned thread per core
//! (`core.rs`, an epoll loop) over its share of the users, and reports progress every second and a verdict at
//! the end over the control protocol (`loadgen::control`). Owns the core threads and the aggregation of their
//! reports; the main thread never touches a client socket. A broken control connection stops the run.
//!
//! This file serves controllers and runs a plan as its steps: the users the plan names, `start.rs` (the core
//! threads), `relay.rs` (progress to the controller until the cores finish), `verdict.rs` (the cores' finals
//! merged into the agent's). `accounting.rs` is what one core counts.

mod accounting;
mod core;
mod relay;
mod start;
mod verdict;

use std::io::{BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use wire::parse_keys_line;

use loadgen::cli::AgentArgs;
use loadgen::client::any_driver::DriverUser;
use loadgen::client::tls::TlsClient;
use loadgen::control::{
    AgentMessage, AgentReady, ControlError, ControllerMessage, ProtocolName, RunPlan, read_message, write_message,
};
use loadgen::handshake::{CONTROL_PROTOCOL_VERSION, LOADGEN_VERSION, check_listen, check_token};
use loadgen::limits::{BODY_BYTES_MAX, FD_HEADROOM};
use loadgen::load_profile::check_plan_steps;
use loadgen::source_addr::SourceAddresses;
use loadgen::workload_mix::check_workload_mix;

use self::relay::relay_progress;
use self::start::{cores_available, start_cores};
use self::verdict::agent_final;
use crate::machine::{connections_max, now_us};

/// How long a controller has to send its hello once connected.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `ringline-loadgen agent`: serves controllers one after the other (or one, with `--once`).
pub fn serve(args: &AgentArgs) -> anyhow::Result<()> {
    let token = args.agent_token.as_deref();
    check_listen(args.listen, token)?;
    let listener = TcpListener::bind(args.listen).with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening {address}").context("writing the bound address")?;
    stdout.flush().context("flushing stdout")?;
    loop {
        let (stream, peer) = listener.accept().context("accepting a controller")?;
        let result = serve_controller(stream, token);
        if let Err(error) = &result {
            eprintln!("ringline-loadgen agent: controller {peer}: {error:#}");
        }
        if args.once {
            return result;
        }
    }
}

fn serve_controller(stream: TcpStream, token: Option<&str>) -> anyhow::Result<()> {
    stream.set_nodelay(true).context("control socket")?;
    let mut reader = BufReader::new(stream.try_clone().context("control socket")?);
    let mut writer = stream;
    // A peer that connects and says nothing must not hold the agent: the greeting comes at once or never.
    writer.set_read_timeout(Some(HELLO_TIMEOUT)).context("control socket")?;
    let greeting = match read_message::<ControllerMessage>(&mut reader) {
        Err(ControlError::Io(error)) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            let error = format!("no hello within {HELLO_TIMEOUT:?} (an older ringline-loadgen controller?)");
            write_message(&mut writer, &AgentMessage::Failed { error: error.clone() })?;
            anyhow::bail!(error);
        }
        other => other.context("reading the controller's hello")?,
    };
    let hello = match greeting {
        Some(ControllerMessage::Hello(hello)) => hello,
        None => return Ok(()),
        Some(_) => {
            let error = "the controller did not greet with hello (an older ringline-loadgen?)";
            write_message(&mut writer, &AgentMessage::Failed { error: error.into() })?;
            anyhow::bail!(error);
        }
    };
    if let Err(error) = check_token(token, hello.token.as_deref()) {
        write_message(&mut writer, &AgentMessage::Failed { error: error.to_string() })?;
        return Err(error.into());
    }
    writer.set_read_timeout(None).context("control socket")?;
    let connections_max = connections_max();
    let ready = AgentReady {
        cores: cores_available(),
        connections_max,
        pid: std::process::id(),
        version: LOADGEN_VERSION.into(),
        protocol_version: CONTROL_PROTOCOL_VERSION,
        clock_us: now_us(),
    };
    write_message(&mut writer, &AgentMessage::Ready(ready))?;
    let plan = match read_message::<ControllerMessage>(&mut reader)? {
        Some(ControllerMessage::Start(plan)) => *plan,
        Some(ControllerMessage::Stop | ControllerMessage::Hello(_)) | None => return Ok(()),
    };
    match prepare(&plan, connections_max) {
        Ok((users, tls)) => run_plan(plan, users, tls, reader, writer),
        Err(error) => {
            write_message(&mut writer, &AgentMessage::Failed { error: format!("{error:#}") })?;
            Err(error)
        }
    }
}

/// The plan's users as drivers know them, and the TLS client every core shares (with TLS).
fn prepare(plan: &RunPlan, connections_max: u64) -> anyhow::Result<(Vec<DriverUser>, Option<Arc<TlsClient>>)> {
    anyhow::ensure!(
        plan.users.len() as u64 <= connections_max,
        "{} users is over this agent's {connections_max} sockets (RLIMIT_NOFILE less {FD_HEADROOM})",
        plan.users.len()
    );
    anyhow::ensure!(!plan.targets.is_empty(), "the plan names no target");
    check_plan_steps(&plan.ramps, &plan.rates)?;
    if !plan.workload_mix.is_empty() {
        check_workload_mix(&plan.workload_mix).context("the plan's workload mix")?;
    }
    let body_sizes = std::iter::once(plan.body_bytes).chain(plan.body_bytes_mix.iter().map(|size| size.bytes));
    for bytes in body_sizes {
        anyhow::ensure!(bytes as usize <= BODY_BYTES_MAX, "a message body of {bytes} bytes is over {BODY_BYTES_MAX}");
    }
    let tls = match &plan.tls {
        None => None,
        Some(tls) => {
            anyhow::ensure!(plan.protocol == ProtocolName::Native, "TLS is for the native protocol only");
            let client = TlsClient::new(tls.roots_pem.as_bytes(), tls.server_name.as_deref()).context("tls")?;
            Some(Arc::new(if tls.resumption { client } else { client.without_resumption() }))
        }
    };
    let users: anyhow::Result<Vec<DriverUser>> = match plan.protocol {
        ProtocolName::Native => plan
            .users
            .iter()
            .map(|entry| {
                let line = format!("{} {}", entry.user, entry.key_hex);
                match parse_keys_line(&line) {
                    Ok(Some(user)) => Ok(DriverUser::Native(user)),
                    Ok(None) => anyhow::bail!("empty user entry"),
                    Err(error) => Err(anyhow::anyhow!("user {}: {error}", entry.user)),
                }
            })
            .collect(),
        ProtocolName::Xmpp => {
            let realm = plan.xmpp_realm.as_deref().context("an XMPP plan names no realm (prefix, domain)")?;
            let realm = Arc::new(realm.clone());
            plan.users
                .iter()
                .map(|entry| {
                    let password =
                        entry.password.as_deref().with_context(|| format!("user {} has no password", entry.user))?;
                    Ok(DriverUser::Xmpp { user: entry.user, password: password.into(), realm: realm.clone() })
                })
                .collect()
        }
    };
    Ok((users?, tls))
}

fn run_plan(
    plan: RunPlan,
    users: Vec<DriverUser>,
    tls: Option<Arc<TlsClient>>,
    reader: BufReader<TcpStream>,
    mut writer: TcpStream,
) -> anyhow::Result<()> {
    let sources = SourceAddresses::parse(&plan.source_cidrs).context("--source-cidr")?;
    let stop = stop_when_the_controller_says(reader)?;
    let cores = start_cores(plan, users, sources, tls, &stop)?;
    let seen = relay_progress(&cores, &mut writer, &stop)?;
    stop.store(true, Ordering::Relaxed);
    let core_count = cores.threads.len();
    let unfinished = core_count - seen.finals.len();
    if unfinished > 0 {
        // Report what is known rather than nothing: the finished cores' verdicts and the others' last progress.
        // Their threads are left to stop on the flag.
        eprintln!(
            "ringline-loadgen agent: {unfinished} of {core_count} cores never finished; reporting their last progress"
        );
    }
    let agent_final = agent_final(&seen)?;
    write_message(&mut writer, &AgentMessage::Final(Box::new(agent_final)))?;
    // The cores close their connections after their verdict (a million closes take a while on a small box);
    // wait for that only once the verdict is out.
    if unfinished == 0 {
        for handle in cores.threads {
            let _ = handle.join();
        }
    }
    Ok(())
}

/// A stop flag raised on the controller's stop message, on EOF and on a broken connection alike (a thread
/// reads the control connection for the rest of the run).
fn stop_when_the_controller_says(mut reader: BufReader<TcpStream>) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("loadgen-control".into())
            .spawn(move || {
                // Stop on a stop message, on EOF and on a broken connection alike.
                while let Ok(Some(ControllerMessage::Start(_) | ControllerMessage::Hello(_))) =
                    read_message::<ControllerMessage>(&mut reader)
                {}
                stop.store(true, Ordering::Relaxed);
            })
            .context("spawning the control reader")?;
    }
    Ok(stop)
}
