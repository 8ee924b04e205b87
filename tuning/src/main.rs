//! `ringline-tune`: checks whether this host can hold N connections and applies sysctl profiles.
//! A thin shell over the `tuning` library: parses arguments, reads or writes, prints, picks the exit
//! code. All judgement is in the library.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use tuning::limits::{CONNECTIONS_DEFAULT, CONNECTIONS_MAX, RESERVED_PORTS_DEFAULT};
use tuning::profile::{Action, PROFILES, find_profile, plan_profile};
use tuning::{HostLimits, PortSet, Status, TuningError, Workload, report};

#[derive(Debug, Parser)]
#[command(name = "ringline-tune", version, about = "Check and tune host limits for millions of connections")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print each limit, what N connections need, OK/WARN and the command that fixes it.
    Check {
        /// Connections to hold at once.
        #[arg(long, value_name = "N", default_value_t = CONNECTIONS_DEFAULT,
              value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX))]
        connections: u64,
        /// Clients are on other machines: one socket per connection, no ephemeral ports needed here.
        #[arg(long)]
        server_only: bool,
        /// Server ports that must stay out of the ephemeral range.
        #[arg(long, value_name = "PORTS", default_value = RESERVED_PORTS_DEFAULT, value_parser = parse_ports)]
        reserve_ports: PortSet,
        /// Exit 1 when any setting is WARN.
        #[arg(long)]
        strict: bool,
    },
    /// Write a profile's sysctls, reserving server ports before widening the ephemeral range.
    Apply {
        /// Profile name (loopback-million, server).
        #[arg(long, value_name = "NAME")]
        profile: String,
        /// Server ports to add to net.ipv4.ip_local_reserved_ports.
        #[arg(long, value_name = "PORTS", default_value = RESERVED_PORTS_DEFAULT, value_parser = parse_ports)]
        reserve_ports: PortSet,
        /// Print old -> new values and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the profiles, or print one as a sysctl.d file.
    Profiles {
        /// Print profile NAME as a file for /etc/sysctl.d/ (deploy/sysctl.d/90-ringline.conf is `server`).
        #[arg(long, value_name = "NAME")]
        sysctl_d: Option<String>,
        /// With --sysctl-d: server ports to reserve (net.ipv4.ip_local_reserved_ports).
        #[arg(long, value_name = "PORTS", default_value = RESERVED_PORTS_DEFAULT, value_parser = parse_ports)]
        reserve_ports: PortSet,
    },
    /// Print a shell completion script for ringline-tune.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages, one per subcommand; default: print ringline-tune.1 to stdout.
    Man {
        /// Directory to write the pages into (created if missing).
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

fn parse_ports(text: &str) -> Result<PortSet, String> {
    let set = PortSet::parse(text).map_err(|e| e.to_string())?;
    if set.is_empty() {
        return Err("at least one port is needed".to_string());
    }
    Ok(set)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ringline-tune: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { connections, server_only, reserve_ports, strict } => {
            let limits = HostLimits::read_and_probe().context("reading host limits")?;
            let workload = Workload { connections, loopback: !server_only, server_ports: reserve_ports };
            let rows = limits.advice_for(&workload);
            let plan = limits.capacity_plan(&workload);
            print!("{}", report::render_check(&workload, &plan, &rows));
            let warned = rows.iter().any(|r| r.status == Status::Warn);
            Ok(if strict && warned { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
        Command::Apply { profile, reserve_ports, dry_run } => {
            let profile = find_profile(&profile)?;
            let mut read_error: Option<TuningError> = None;
            let plan = plan_profile(profile, &reserve_ports, |key| match tuning::read_sysctl(key) {
                Ok(value) => value,
                Err(error) => {
                    read_error.get_or_insert(error);
                    None
                }
            });
            if let Some(error) = read_error {
                return Err(error).context("reading current sysctls");
            }
            let plan = plan.context("planning the profile")?;
            print!("{}", report::render_plan(profile.name, dry_run, &plan));
            if dry_run {
                return Ok(ExitCode::SUCCESS);
            }
            let euid = tuning::effective_uid();
            if euid != 0 {
                bail!(TuningError::NotRoot { euid });
            }
            for change in plan.iter().filter(|c| c.action == Action::Write) {
                tuning::write_sysctl(change.key, &change.new).with_context(|| {
                    format!("applying profile {} (settings above this one were written)", profile.name)
                })?;
                println!("  wrote {} = {}", change.key, change.new);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles { sysctl_d: Some(name), reserve_ports } => {
            print!("{}", report::render_sysctl_d(find_profile(&name)?, &reserve_ports));
            Ok(ExitCode::SUCCESS)
        }
        Command::Profiles { sysctl_d: None, .. } => {
            for profile in PROFILES {
                println!("{:<18} {}", profile.name, profile.description);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ringline-tune", &mut std::io::stdout().lock());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: None } => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out_dir: Some(out_dir) } => {
            std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &out_dir)
                .with_context(|| format!("writing man pages into {}", out_dir.display()))?;
            println!("wrote the man pages into {}", out_dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
