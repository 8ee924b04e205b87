//! The `ringline` binary: parses the command line, sets up logging, and calls the engine library. Every
//! failure ends as one clear line on stderr and a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use engine::account::AccountStore;
use engine::config::{ServeArgs, ServeConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ringline: a messaging edge server, thread-per-core on io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the native protocol on every core.
    Serve(Box<ServeArgs>),
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create users with device keys in bulk and write their ids and keys to a keys file.
    Provision {
        /// Data directory the server will be started on.
        #[arg(long)]
        data_dir: PathBuf,
        /// Users to create.
        #[arg(long)]
        count: u64,
        /// Leading digits of the user ids: ids are PREFIX × 10^w + i (w = digits of COUNT-1, at least 7).
        #[arg(long, default_value_t = 1555)]
        prefix: u64,
        /// Where to write `USER_ID KEY_HEX` lines (docs/PROTOCOL.md, "Device keys and the keys file").
        #[arg(long)]
        keys_out: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLINE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringline: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig::resolve(&args)?;
            engine::rt::serve(&config)?;
            Ok(())
        }
        Command::Users { command: UsersCommand::Provision { data_dir, count, prefix, keys_out } } => {
            let started = std::time::Instant::now();
            let mut store = AccountStore::open(&data_dir).context("opening the data directory")?;
            let summary = store.provision(count, prefix, &keys_out)?;
            println!(
                "provisioned {} users ({}..={}) in {:.2?}; keys in {}; {} users in {}",
                summary.keys_written,
                summary.first_user,
                summary.last_user,
                started.elapsed(),
                keys_out.display(),
                summary.users_total,
                data_dir.display()
            );
            Ok(())
        }
    }
}
