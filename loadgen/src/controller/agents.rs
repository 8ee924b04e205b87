//! The controller's end of the control connections (`loadgen::control`: JSON lines over TCP): connecting to
//! each agent, greeting it (token, clock) and checking its answer (`loadgen::handshake`), sending its plan or a stop, and one reader thread per agent that turns
//! its messages into [`Incoming`] on one channel. Also what the controller keeps of each agent during the run
//! ([`AgentLink`]). It decides nothing: what a message means for the run is `progress.rs`'s and `verdict.rs`'s.

use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, channel};

use anyhow::{Context, bail};

use loadgen::control::{
    AgentCounters, AgentFinal, AgentMessage, AgentReady, ControllerHello, ControllerMessage, RunPlan, read_message,
    write_message,
};
use loadgen::handshake::{ClockSample, check_version};

use crate::machine::now_us;

/// What the controller knows of one agent during the run.
pub(super) struct AgentLink {
    writer: TcpStream,
    pub(super) latest: AgentCounters,
    /// When the latest progress report arrived, to rate acks over the agent's own report interval.
    pub(super) latest_at_us: u64,
    /// Acks per second between this agent's last two progress reports.
    pub(super) acked_per_s: f64,
    pub(super) alive: bool,
    pub(super) final_report: Option<Box<AgentFinal>>,
}

/// An agent's control connection before the run: where its messages will be read, and its greeting.
pub(super) struct AgentGreeting {
    reader: BufReader<TcpStream>,
    pub(super) ready: AgentReady,
    /// The clock reading taken in the greeting (within the bound, or the agent was refused).
    pub(super) clock: ClockSample,
}

/// What one agent's reader thread passes on: a message, or why the connection ended.
pub(super) enum Incoming {
    Message(usize, AgentMessage),
    Gone(usize, String),
}

/// What the controller offers and accepts in the greeting.
pub(super) struct GreetingRules<'a> {
    pub(super) token: Option<&'a str>,
    pub(super) clock_offset_max_ms: u64,
}

/// Connects to every agent in turn, greets it with the token and reads its `ready`; refuses an agent of
/// another version or with a clock too far off.
pub(super) fn connect(
    addresses: &[SocketAddr],
    rules: &GreetingRules<'_>,
) -> anyhow::Result<(Vec<AgentLink>, Vec<AgentGreeting>)> {
    let mut links = Vec::new();
    let mut greetings = Vec::new();
    for address in addresses {
        let stream = TcpStream::connect(address).with_context(|| format!("connecting to agent {address}"))?;
        stream.set_nodelay(true).context("agent socket")?;
        let mut reader = BufReader::new(stream.try_clone().context("agent socket")?);
        let mut writer = &stream;
        let sent_us = now_us();
        let hello = ControllerHello { token: rules.token.map(str::to_owned), sent_at_us: sent_us };
        write_message(&mut writer, &ControllerMessage::Hello(hello))
            .with_context(|| format!("greeting agent {address}"))?;
        let ready = match read_message::<AgentMessage>(&mut reader)
            .with_context(|| format!("reading agent {address}'s greeting"))?
        {
            Some(AgentMessage::Ready(ready)) => ready,
            Some(AgentMessage::Failed { error }) => bail!("agent {address} refused this controller: {error}"),
            None => bail!("agent {address} closed the connection before its greeting"),
            Some(other) => bail!("agent {address} did not greet with ready: {other:?}"),
        };
        let received_us = now_us();
        check_version(&ready.version, ready.protocol_version).with_context(|| format!("agent {address}"))?;
        let clock = ClockSample { sent_us, agent_us: ready.clock_us, received_us };
        clock.check(rules.clock_offset_max_ms).with_context(|| format!("agent {address}"))?;
        greetings.push(AgentGreeting { reader, ready, clock });
        links.push(AgentLink {
            writer: stream,
            latest: AgentCounters::default(),
            latest_at_us: 0,
            acked_per_s: 0.0,
            alive: true,
            final_report: None,
        });
    }
    Ok((links, greetings))
}

/// Sends agent `index` its plan.
pub(super) fn send_plan(link: &mut AgentLink, index: usize, plan: RunPlan) -> anyhow::Result<()> {
    write_message(&mut link.writer, &ControllerMessage::Start(Box::new(plan)))
        .with_context(|| format!("sending the plan to agent {index}"))
}

/// Starts one reader thread per agent; each stops after the agent's final report or failure, or when its
/// connection ends.
pub(super) fn listen(greetings: Vec<AgentGreeting>) -> Receiver<Incoming> {
    let (sender, incoming) = channel();
    for (index, AgentGreeting { mut reader, .. }) in greetings.into_iter().enumerate() {
        let sender = sender.clone();
        std::thread::spawn(move || {
            loop {
                match read_message::<AgentMessage>(&mut reader) {
                    Ok(Some(message)) => {
                        let last = matches!(message, AgentMessage::Final(_) | AgentMessage::Failed { .. });
                        if sender.send(Incoming::Message(index, message)).is_err() || last {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = sender.send(Incoming::Gone(index, "closed the control connection".into()));
                        return;
                    }
                    Err(error) => {
                        let _ = sender.send(Incoming::Gone(index, error.to_string()));
                        return;
                    }
                }
            }
        });
    }
    incoming
}

/// Asks every agent to drain briefly and send its final report. An agent that cannot be told is already gone,
/// and the verdict counts it as lost.
pub(super) fn stop_agents(links: &mut [AgentLink]) {
    for link in links {
        let _ = write_message(&mut link.writer, &ControllerMessage::Stop);
    }
}
