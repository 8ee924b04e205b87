//! The `ringline` binary: parses the command line, sets up logging, and calls the engine library. Every
//! failure ends as one clear line on stderr and a non-zero exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use engine::config::{ConfigError, LogFormat, ServeArgs, ServeConfig};
use engine::data_dir::AccountStore;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `ringline --version`: the crate version and the commit built (build.rs; `unknown` outside a git checkout).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("RINGLINE_COMMIT"), ")");

/// ringline: a messaging edge server, thread-per-core on io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringline", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. warn, info, debug or `info,engine::rt=debug`; default: env RINGLINE_LOG, else info.
    #[arg(long, global = true)]
    log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the native protocol on every core, over plain TCP and, with --tls-listen, over TLS.
    ///
    /// Stdout, once each address is bound (port 0 resolved): `ringline listening on ADDR (N cores)`; then,
    /// with --tls-listen, `ringline tls listening on ADDR`; then, with --metrics, `ringline metrics on
    /// ADDR`. SIGTERM (or SIGINT) shuts down in order (GOAWAY to every client); SIGHUP reloads the TLS
    /// certificate and key for new connections.
    Serve(Box<ServeArgs>),
    /// Show a live per-core view of a running engine from its metrics endpoint.
    Top {
        /// The engine's `--metrics` address, e.g. 127.0.0.1:9100.
        #[arg(long)]
        metrics: String,
        /// Print one table (two scrapes one interval apart, for rates) and exit.
        #[arg(long)]
        once: bool,
        /// Time between scrapes, e.g. 1s.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
    },
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Inspect and act on users of a running server, through its local control socket.
    Admin(engine::admin_client::AdminArgs),
    /// TLS helpers.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// The `serve` configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a shell completion script for ringline, e.g. `ringline completions bash >
    /// /usr/share/bash-completion/completions/ringline`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages, one per subcommand (ringline.1, ringline-serve.1, ...), made from this help.
    Man {
        /// Directory to write the pages into (created if missing); default: print ringline.1 to stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration of `serve` with these flags and --config file (flags over the file
    /// over defaults, each value checked) as TOML a --config file can hold. No setting is a secret: the TLS
    /// key is shown as its path, and its file is not read.
    Print(Box<ServeArgs>),
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Make a self-signed development certificate (ECDSA P-256, valid a year) and its key: writes
    /// DIR/cert.pem and DIR/key.pem (mode 0600) and prints `sha256 fingerprint AA:BB:...`, then where the
    /// files are. Serve with `--tls-cert DIR/cert.pem --tls-key DIR/key.pem`; clients trust DIR/cert.pem.
    DevCert {
        /// Directory to write cert.pem and key.pem into (created if missing; existing files are replaced).
        #[arg(long)]
        out_dir: PathBuf,
        /// A DNS name or IP address the certificate is for; repeat for more. Default: localhost, 127.0.0.1,
        /// ::1.
        #[arg(long = "name")]
        names: Vec<String>,
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
    let cli = Cli::parse();
    // One line per significant event (start, alerts, refusals); nothing per message below debug.
    let filter = match &cli.log_level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level).map_err(|error| error.to_string()),
        None => tracing_subscriber::EnvFilter::try_from_env("RINGLINE_LOG").map_err(|error| error.to_string()),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(error) if cli.log_level.is_some() => {
            eprintln!("ringline: --log-level: {error}");
            return ExitCode::FAILURE;
        }
        Err(_) => tracing_subscriber::EnvFilter::new("info"),
    };
    // `serve` resolves its configuration once, before logging starts: the log format is one of its settings. An
    // unusable configuration logs as text, and `run` reports the error.
    let serve_config = match &cli.command {
        Command::Serve(args) => Some(ServeConfig::resolve(args)),
        _ => None,
    };
    let log_format = match &serve_config {
        Some(Ok(config)) => config.log_format,
        _ => LogFormat::Text,
    };
    init_logging(filter, log_format);
    if let Command::Admin(args) = &cli.command {
        // Its exit code says what happened: done, refused, or the server unreachable.
        return engine::admin_client::run(args);
    }
    match run(cli, serve_config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringline: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, as text or as JSON lines (`timestamp`, `level`, `target`, `message` and the event's fields
/// at the top level, the span list beside them).
fn init_logging(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => {
            // Colours only on a terminal: logs redirected to a file or a collector stay plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            logs.with_ansi(ansi).init();
        }
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
}

/// Runs the command. `serve_config` is `serve`'s configuration as `main` resolved it.
fn run(cli: Cli, serve_config: Option<Result<ServeConfig, ConfigError>>) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = serve_config.unwrap_or_else(|| ServeConfig::resolve(&args))?;
            engine::rt::serve(&config)?;
            Ok(())
        }
        Command::Top { metrics, once, interval } => {
            engine::top::run(&metrics, once, interval, &mut std::io::stdout().lock())?;
            Ok(())
        }
        Command::Tls { command: TlsCommand::DevCert { out_dir, names } } => {
            let names = if names.is_empty() {
                ringline_core::tls::DEV_CERT_DEFAULT_NAMES.iter().map(|name| (*name).to_owned()).collect()
            } else {
                names
            };
            let certificate = ringline_core::tls::DevCertificate::generate(&names)?;
            let (cert, key) = engine::tls_files::write_dev_certificate(&certificate, &out_dir)?;
            println!("sha256 fingerprint {}", certificate.fingerprint);
            println!(
                "wrote {} and {} (key mode 0600) for {}; serve with --tls-cert {} --tls-key {}",
                cert.display(),
                key.display(),
                names.join(", "),
                cert.display(),
                key.display()
            );
            Ok(())
        }
        Command::Config { command: ConfigCommand::Print(args) } => {
            let config = ServeConfig::resolve(&args)?;
            print!("{}", config.to_toml()?);
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ringline", &mut std::io::stdout().lock());
            Ok(())
        }
        Command::Man { out_dir: None } => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
            Ok(())
        }
        Command::Man { out_dir: Some(out_dir) } => {
            std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &out_dir)
                .with_context(|| format!("writing man pages into {}", out_dir.display()))?;
            println!("wrote the man pages into {}", out_dir.display());
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
        Command::Admin(_) => unreachable!("main runs `admin` itself, for its exit codes"),
    }
}
