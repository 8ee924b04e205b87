//! `ringline admin`: the client of a running server's control socket (`rt::admin`). Sends one request line,
//! reads one answer line (`admin_protocol`), prints it readable (or as the JSON line, `--json`) and picks the
//! exit code: 0 done, 1 refused (no such user, not online, busy, ...), 2 the server cannot be reached (the
//! path tried is printed). Shares nothing with the server but the socket's path and the line format.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use wire::UserId;

use crate::admin_protocol::{AnswerLine, RequestLine};
use crate::config::{ADMIN_SOCKET_FILE, DATA_DIR_DEFAULT};

/// Exit code: the server did what was asked.
pub const EXIT_DONE: u8 = 0;
/// Exit code: the server refused, or could not answer (busy, timeout).
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: the control socket cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 2;

/// How long the client waits for the server's answer: longer than the server's own wait for a core.
const ANSWER_WAIT: Duration = Duration::from_secs(15);

/// `ringline admin`'s flags.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The server's control socket (its `--admin-socket`); default DATA_DIR/admin.sock.
    #[arg(long, global = true, conflicts_with = "data_dir")]
    pub socket: Option<PathBuf>,
    /// The server's data directory, whose admin.sock is the control socket; default ./ringline-data.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Print the server's answer as its JSON line.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Inspect and act on one user, on its home core.
    Users {
        #[command(subcommand)]
        command: AdminUsersCommand,
    },
}

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum AdminUsersCommand {
    /// Whether the user exists, its device generation, whether it is online, its queued and unread counts.
    Show { id: UserId },
    /// The user's offline queue: items waiting and the oldest one's age.
    Queue { id: UserId },
    /// Revoke the user's device key: a new generation is made durable, the live session gets
    /// GOAWAY(Revoked), the old key is refused from then on. Nobody gets the new key: the user registers
    /// again by PIN.
    Revoke { id: UserId },
    /// End the user's session with GOAWAY(Kicked); the key keeps working.
    Kick { id: UserId },
}

impl AdminArgs {
    /// The control socket's path.
    pub fn socket_path(&self) -> PathBuf {
        match (&self.socket, &self.data_dir) {
            (Some(socket), _) => socket.clone(),
            (None, Some(data_dir)) => data_dir.join(ADMIN_SOCKET_FILE),
            (None, None) => Path::new(DATA_DIR_DEFAULT).join(ADMIN_SOCKET_FILE),
        }
    }

    fn request(&self) -> RequestLine {
        let AdminCommand::Users { command } = self.command;
        match command {
            AdminUsersCommand::Show { id } => RequestLine::Show { user: id },
            AdminUsersCommand::Queue { id } => RequestLine::Queue { user: id },
            AdminUsersCommand::Revoke { id } => RequestLine::Revoke { user: id },
            AdminUsersCommand::Kick { id } => RequestLine::Kick { user: id },
        }
    }
}

/// Runs `ringline admin`: the answer (or the error) on stdout (stderr), and the exit code.
pub fn run(args: &AdminArgs) -> ExitCode {
    let path = args.socket_path();
    let answer = match ask(&path, args.request()) {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("ringline admin: cannot reach the server at {}: {error}", path.display());
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let text = if args.json {
        serde_json::to_string(&answer)
            .unwrap_or_else(|error| format!("{{\"answer\":\"error\",\"message\":\"{error}\"}}"))
    } else {
        readable(&answer)
    };
    if answer.is_ok() {
        println!("{text}");
        ExitCode::from(EXIT_DONE)
    } else {
        // The JSON line goes to stdout for scripts either way; the readable refusal is an error message.
        if args.json {
            println!("{text}");
        } else {
            eprintln!("ringline admin: {text}");
        }
        ExitCode::from(EXIT_REFUSED)
    }
}

/// One request, one answer over the socket at `path`.
pub fn ask(path: &Path, request: RequestLine) -> std::io::Result<AnswerLine> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(ANSWER_WAIT))?;
    let mut line = serde_json::to_vec(&request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed without answering"));
    }
    serde_json::from_str(&answer)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unreadable answer: {error}")))
}

/// The answer in words, one line.
pub fn readable(answer: &AnswerLine) -> String {
    match answer {
        AnswerLine::User { user, generation, generation_pending, online, idle_ms, queued, unread } => {
            let presence = match (online, idle_ms) {
                (true, Some(idle_ms)) => format!("online (last activity {:.1} s ago)", *idle_ms as f64 / 1000.0),
                _ => "offline".to_owned(),
            };
            let pending = if *generation_pending { " (a new generation is being recorded)" } else { "" };
            format!(
                "user {user}: exists, device generation {generation}{pending}, {presence}, {queued} queued, {unread} \
                 unread"
            )
        }
        AnswerLine::Queue { user, items: 0, .. } => format!("user {user}: queue empty"),
        AnswerLine::Queue { user, items, receipts, oldest_age_ms } => format!(
            "user {user}: {items} items queued ({receipts} receipts), oldest {:.1} s old",
            oldest_age_ms.unwrap_or(0) as f64 / 1000.0
        ),
        AnswerLine::Revoked { user, generation, disconnected } => format!(
            "user {user} revoked: device generation {generation} is current and nobody holds its key (register \
             again by PIN); {}",
            if *disconnected { "the live session was disconnected" } else { "no session was online" }
        ),
        AnswerLine::Kicked { user } => {
            format!("user {user} kicked: its session got GOAWAY(Kicked); its key still works")
        }
        AnswerLine::Refused { reason, message } => format!("refused ({reason}): {message}"),
        AnswerLine::Error { message } => format!("error: {message}"),
    }
}
