//! One torture run: a real `ringline serve` (started, SIGKILLed and restarted on the same data directory by
//! `support::TestServer`), the pairs' clients on one non-blocking event loop, the seeded plan, and the ledger's
//! verdict. The run has three phases: load (kills by the plan), final drain (the load stops, every receiver
//! comes online, one last kill), and the end (every ACKed message delivered and every receipt in, or nothing
//! new learned for `QUIET_MAX`: what is missing then is counted, never waited for forever).
//! It does not judge: the ledger does. It does not assert: the caller does, on the summary.

use std::time::{Duration, Instant};

use mio::{Events, Poll};
use serde::Serialize;

use crate::clients::{LinkCounts, Receiver, Sender, flush_or_drop, has_outbound, token_owner};
use crate::ledger::{Counts, Ledger, Named};
use crate::plan::{self, Config, KillCounts, Plan};
use crate::support::TestServer;

/// How long the final drain may learn nothing new before the run ends with what is missing counted (a
/// liveness guard: a correct server finishes long before).
const QUIET_MAX: Duration = Duration::from_secs(30);

/// The event loop's longest sleep: the plan's clock and the offline toggles are checked at least this often.
const POLL_TIMEOUT: Duration = Duration::from_millis(5);

/// What a run reports: the one-line JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub config: Config,
    pub passed: bool,
    /// Everything settled before the end (false: the run ended by the liveness guard).
    pub complete: bool,
    pub kills: u32,
    pub kill_modes: KillCounts,
    pub counts: Counts,
    pub links: LinkCounts,
    pub load_seconds: f64,
    pub drain_seconds: f64,
    /// The data directory, kept when the run failed (evidence) or when asked to.
    pub data_dir_kept: Option<String>,
    /// When each kill came, in milliseconds since the run started.
    pub kill_ms: Vec<u32>,
    /// Lost messages and missing receipts by the kill that followed their ACK (or DELIVERED).
    pub lost_by_kill: Vec<ByKill>,
    pub receipts_missing_by_kill: Vec<ByKill>,
    /// The first few messages named by each kind of disagreement (pair, seq, server id).
    pub named: std::collections::HashMap<&'static str, Vec<Named>>,
}

/// Messages whose deciding event (an ACK, a DELIVERED) came before kill `kill` (1-based; 0: after the last).
#[derive(Debug, Clone, Serialize)]
pub struct ByKill {
    pub kill: usize,
    pub count: u64,
    /// How long before that kill the earliest and the latest of them happened.
    pub ms_before_kill_max: u32,
    pub ms_before_kill_min: u32,
}

/// Groups `named` by the first kill at or after each one's time.
fn by_kill(named: &[Named], kill_ms: &[u32]) -> Vec<ByKill> {
    let mut groups: std::collections::BTreeMap<usize, ByKill> = std::collections::BTreeMap::new();
    for one in named {
        let index = kill_ms.partition_point(|&kill| kill < one.at_ms);
        let (kill, before) = match kill_ms.get(index) {
            Some(&at) => (index + 1, at - one.at_ms),
            None => (0, 0),
        };
        let group = groups.entry(kill).or_insert(ByKill {
            kill,
            count: 0,
            ms_before_kill_max: 0,
            ms_before_kill_min: u32::MAX,
        });
        group.count += 1;
        group.ms_before_kill_max = group.ms_before_kill_max.max(before);
        group.ms_before_kill_min = group.ms_before_kill_min.min(before);
    }
    groups.into_values().collect()
}

/// The run's state: the server, the clients and what they learned.
struct Torture {
    config: Config,
    args: Vec<String>,
    server: TestServer,
    poll: Poll,
    senders: Vec<Sender>,
    receivers: Vec<Receiver>,
    ledger: Ledger,
    links: LinkCounts,
    plan: Plan,
    /// When the run started, and when each kill came (ms since then).
    started: Instant,
    kill_ms: Vec<u32>,
}

/// Runs the torture described by `config`, named `name` (its data directory's name).
pub fn run(config: &Config, name: &str, keep_data_dir: bool) -> Summary {
    let mut torture = Torture::start(config, name);
    let started = torture.started;
    torture.load(started);
    let drain_started = Instant::now();
    let complete = torture.final_drain(drain_started);
    let counts = torture.ledger.verdict();
    let passed = counts.passed() && complete;
    let data_dir_kept = (keep_data_dir || !passed).then(|| {
        torture.server.keep_data_dir = true;
        torture.server.data_dir.display().to_string()
    });
    Summary {
        config: config.clone(),
        passed,
        complete,
        kills: torture.plan.kills_done,
        kill_modes: torture.plan.kill_counts.clone(),
        counts,
        links: torture.links.clone(),
        load_seconds: (drain_started - started).as_secs_f64(),
        drain_seconds: drain_started.elapsed().as_secs_f64(),
        data_dir_kept,
        lost_by_kill: by_kill(&torture.ledger.lost, &torture.kill_ms),
        receipts_missing_by_kill: by_kill(&torture.ledger.receipts_missing, &torture.kill_ms),
        kill_ms: torture.kill_ms.clone(),
        named: std::mem::take(&mut torture.ledger.named),
    }
}

impl Torture {
    fn start(config: &Config, name: &str) -> Self {
        let args = vec!["--log-segment-bytes".to_owned(), config.segment_bytes.to_string()];
        let server = TestServer::start(name, config.cores, 2 * config.pairs as u64, &as_strs(&args));
        let senders =
            (0..config.pairs).map(|pair| Sender::new(pair, server.user(2 * pair), server.user(2 * pair + 1).0));
        let receivers =
            (0..config.pairs).map(|pair| Receiver::new(pair, server.user(2 * pair + 1), server.user(2 * pair).0));
        Self {
            config: config.clone(),
            args,
            senders: senders.collect(),
            receivers: receivers.collect(),
            server,
            poll: Poll::new().expect("an epoll instance"),
            ledger: Ledger::new(config.pairs),
            links: LinkCounts::default(),
            plan: Plan::new(config, Instant::now()),
            started: Instant::now(),
            kill_ms: Vec::new(),
        }
    }

    /// The load phase: until the plan's load kills are done and `acked_min` messages are ACKed, or the time
    /// bound.
    fn load(&mut self, started: Instant) {
        let load_max = Duration::from_secs(self.config.load_seconds_max);
        loop {
            let now = Instant::now();
            if (self.plan.load_kills_done() && self.ledger.acked_count() >= self.config.acked_min)
                || now - started >= load_max
            {
                return;
            }
            let directives = self.plan.tick(now, self.ledger.acked_count());
            if directives.kill {
                self.kill_and_restart();
                continue;
            }
            let (window, undelivered_max) = if directives.burst {
                (plan::WINDOW_BURST, plan::UNDELIVERED_MAX_BURST)
            } else {
                (plan::WINDOW, plan::UNDELIVERED_MAX)
            };
            for sender in &mut self.senders {
                sender.top_up(&mut self.ledger, window, undelivered_max);
            }
            self.step();
        }
    }

    /// The final drain: no new messages; every receiver online; the last kill; then until everything is
    /// settled or nothing new is learned for `QUIET_MAX`. Returns whether everything settled.
    fn final_drain(&mut self, started: Instant) -> bool {
        self.plan.start_final_drain(started);
        let mut progress = (self.ledger.progress(), Instant::now());
        loop {
            let now = Instant::now();
            if self.plan.tick(now, self.ledger.acked_count()).kill {
                self.kill_and_restart();
                progress.1 = Instant::now();
                continue;
            }
            if self.plan.kills_done >= self.config.kills && self.settled() {
                return true;
            }
            if self.ledger.progress() != progress.0 {
                progress = (self.ledger.progress(), now);
            } else if now - progress.1 >= QUIET_MAX {
                return false;
            }
            self.step();
        }
    }

    /// Every SEND answered, every ACKed message delivered, every DELIVERED written and answered by a receipt.
    fn settled(&self) -> bool {
        self.senders.iter().all(|sender| sender.unanswered() == 0 && !has_outbound(&sender.link))
            && self.receivers.iter().all(|receiver| !has_outbound(&receiver.link))
            && self.ledger.complete()
    }

    /// One round of the event loop: connections up or down as the plan says, writes, then reads.
    fn step(&mut self) {
        self.ledger.clock_ms = self.clock_ms();
        let addr = self.server.addr;
        let registry = self.poll.registry();
        for sender in &mut self.senders {
            if sender.link.is_none() {
                sender.connect(addr, registry, &mut self.links);
            }
            flush_or_drop(&mut sender.link, &mut self.ledger);
        }
        for receiver in &mut self.receivers {
            let online = self.plan.online(receiver.pair);
            if !online {
                // Offline: the connection just closes, as a phone losing its network would.
                receiver.link = None;
                continue;
            }
            if receiver.link.is_none() {
                receiver.connect(addr, registry, &mut self.links);
            }
            flush_or_drop(&mut receiver.link, &mut self.ledger);
        }
        let mut events = Events::with_capacity(1024);
        self.poll.poll(&mut events, Some(POLL_TIMEOUT)).expect("epoll_wait");
        for event in &events {
            let (pair, is_receiver) = token_owner(event.token());
            if is_receiver {
                self.receivers[pair].pump(&mut self.ledger, &mut self.links);
            } else {
                self.senders[pair].pump(&mut self.ledger, &mut self.links);
            }
        }
    }

    /// SIGKILL, then a restart on the same data directory. What the old connections still hold (ACKs and
    /// DELIVERs the server wrote before it died) is read and handled, then they are dropped; the clients
    /// reconnect to the new process in the next round.
    fn clock_ms(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX)
    }

    fn kill_and_restart(&mut self) {
        let acked = self.ledger.acked_count();
        self.kill_ms.push(self.clock_ms());
        self.server.kill_and_restart(self.config.cores, &as_strs(&self.args));
        // What the old connections still hold came before the kill.
        self.ledger.clock_ms = *self.kill_ms.last().expect("just pushed");
        eprintln!(
            "crash_torture: seed {} kill {} at {acked} ACKed ({:?})",
            self.config.seed, self.plan.kills_done, self.plan.kill_counts
        );
        for sender in &mut self.senders {
            sender.pump(&mut self.ledger, &mut self.links);
            sender.link = None;
        }
        for receiver in &mut self.receivers {
            receiver.pump(&mut self.ledger, &mut self.links);
            receiver.link = None;
        }
    }
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}
