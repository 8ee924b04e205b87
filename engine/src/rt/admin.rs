//! The control socket (`--admin-socket`, default `DATA_DIR/admin.sock`): a Unix stream socket, mode 0600 (its
//! file permissions are the access control), served by one plain std thread speaking JSON lines
//! (`admin_protocol`: one request line, one answer line). Each request goes to the user's home core through
//! that core's bounded channel (`rt::admin_inbox`, taken on the core's tick) and its answer comes back on a
//! channel of its own.
//!
//! Owns the socket file: a live socket at the path stops the start (another server serves it), a stale one
//! is replaced, anything else at the path is left alone and stops the start; the file is removed when the
//! server stops. Makes no decision about users (the shard does) and never blocks a core: a full channel is
//! an immediate "busy" answer, and an answer that does not come within `ADMIN_ANSWER_TIMEOUT` is a timeout
//! error. Connections are served one at a time, each line bounded (`ADMIN_REQUEST_LINE_BYTES_MAX`), and a
//! client that stays silent for `ADMIN_IDLE_TIMEOUT` is dropped, so one stuck client cannot hold the socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use ringline_core::home::home_core;
use ringline_core::limits::{ADMIN_ANSWER_TIMEOUT, ADMIN_REQUEST_LINE_BYTES_MAX};
use ringline_core::shard::{AdminRequest, AdminTicket};

use crate::admin_protocol::{AnswerLine, RequestLine};

use super::admin_inbox::AdminCall;

/// How long a connected client may stay silent before the socket thread drops it.
const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the kernel queues while the thread serves another.
const ADMIN_BACKLOG: i32 = 16;

/// The control socket's file, removed when the server stops.
#[derive(Debug)]
pub struct AdminSocket {
    path: PathBuf,
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminSocketError {
    #[error("another server answers on the admin socket {}; stop it or choose --admin-socket", .0.display())]
    InUse(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it (choose --admin-socket)", .0.display())]
    NotASocket(PathBuf),
    #[error("opening the admin socket {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Opens the control socket at `path` and starts its thread; `cores[i]` is core i's channel.
pub fn start(path: &Path, cores: Vec<SyncSender<AdminCall>>) -> Result<AdminSocket, AdminSocketError> {
    let io = |source| AdminSocketError::Io { path: path.to_owned(), source };
    clear_stale(path)?;
    let listener = bind_private(path).map_err(io)?;
    let socket = AdminSocket { path: path.to_owned() };
    let core_count = u16::try_from(cores.len()).expect("the core count fits in u16 (CORES_MAX)");
    std::thread::Builder::new()
        .name("ringline-admin".to_owned())
        .spawn(move || serve_connections(&listener, &cores, core_count))
        .map_err(io)?;
    tracing::info!(path = %path.display(), "admin socket open (mode 0600)");
    Ok(socket)
}

/// Removes a stale socket at `path`; refuses a live one or anything that is not a socket.
fn clear_stale(path: &Path) -> Result<(), AdminSocketError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(AdminSocketError::Io { path: path.to_owned(), source }),
    };
    if !metadata.file_type().is_socket() {
        return Err(AdminSocketError::NotASocket(path.to_owned()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(AdminSocketError::InUse(path.to_owned()));
    }
    tracing::info!(path = %path.display(), "removing a stale admin socket");
    std::fs::remove_file(path).map_err(|source| AdminSocketError::Io { path: path.to_owned(), source })
}

/// Binds a Unix stream socket at `path` and makes it mode 0600 before it listens: nobody can connect while
/// its mode is still the umask's.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    socket.listen(ADMIN_BACKLOG)?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}

fn serve_connections(listener: &UnixListener, cores: &[SyncSender<AdminCall>], core_count: u16) {
    let mut next_ticket = 0u64;
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(error) = serve_connection(stream, cores, core_count, &mut next_ticket) {
                    tracing::debug!(%error, "admin connection ended");
                }
            }
            Err(error) => tracing::warn!(%error, "admin socket: accept failed"),
        }
    }
}

/// Answers each request line of one client until it closes, goes silent or sends a line too long.
fn serve_connection(
    stream: UnixStream,
    cores: &[SyncSender<AdminCall>],
    core_count: u16,
    next_ticket: &mut u64,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ADMIN_IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(ADMIN_IDLE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.by_ref().take(ADMIN_REQUEST_LINE_BYTES_MAX as u64 + 1).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() > ADMIN_REQUEST_LINE_BYTES_MAX {
            let too_long = format!("request line longer than {ADMIN_REQUEST_LINE_BYTES_MAX} bytes; closing");
            return write_answer(&mut writer, &AnswerLine::error(too_long));
        }
        let answer = match serde_json::from_slice::<RequestLine>(line.trim_ascii()) {
            Ok(request) => {
                *next_ticket += 1;
                ask_core(cores, core_count, AdminTicket(*next_ticket), request.into())
            }
            Err(error) => AnswerLine::error(format!(
                "bad request ({error}); send one JSON object per line, e.g. {{\"request\":\"show\",\"user\":ID}} \
                 (show, queue, revoke, kick)"
            )),
        };
        write_answer(&mut writer, &answer)?;
    }
}

/// Sends `request` to the user's home core and waits for its answer, or says why there is none.
fn ask_core(
    cores: &[SyncSender<AdminCall>],
    core_count: u16,
    ticket: AdminTicket,
    request: AdminRequest,
) -> AnswerLine {
    let home = home_core(request.user(), core_count);
    let (reply, answer) = mpsc::sync_channel(1);
    match cores[home.index()].try_send(AdminCall { ticket, request, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return AnswerLine::error(format!("core {home} is busy with admin requests; retry"));
        }
        Err(TrySendError::Disconnected(_)) => return AnswerLine::error(format!("core {home} has stopped")),
    }
    match answer.recv_timeout(ADMIN_ANSWER_TIMEOUT) {
        Ok(answer) => answer.into(),
        Err(RecvTimeoutError::Timeout) => AnswerLine::error(format!(
            "no answer from core {home} within {} s (is the server shutting down?)",
            ADMIN_ANSWER_TIMEOUT.as_secs()
        )),
        Err(RecvTimeoutError::Disconnected) => AnswerLine::error(format!("core {home} stopped before answering")),
    }
}

fn write_answer(writer: &mut UnixStream, answer: &AnswerLine) -> std::io::Result<()> {
    let mut text = serde_json::to_vec(answer).map_err(std::io::Error::other)?;
    text.push(b'\n');
    writer.write_all(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_dead_socket_is_cleared_from_the_path() {
        let dir = std::env::temp_dir().join(format!("ringline-admin-socket-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("admin.sock");
        assert!(clear_stale(&path).is_ok(), "nothing there");

        std::fs::write(&path, "not a socket").expect("write");
        assert!(matches!(clear_stale(&path), Err(AdminSocketError::NotASocket(_))));
        std::fs::remove_file(&path).expect("remove");

        let listener = bind_private(&path).expect("bind");
        let mode = std::fs::metadata(&path).expect("socket").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(clear_stale(&path), Err(AdminSocketError::InUse(_))), "a live socket stays");
        drop(listener);
        assert!(clear_stale(&path).is_ok(), "a dead one goes");
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
