//! One connection's task: moves bytes between its socket and the shard. It owns the socket and nothing
//! else: no read buffer (it borrows the core's while a read is in progress, so an idle connection holds
//! none), no protocol state (the shard has it). Each wake-up writes everything the shard queued in one
//! write, then reads and hands the bytes to the shard, a bounded number of times before yielding.

use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::net::TcpStream;

use crate::limits::READS_PER_POLL_MAX;
use crate::shard::{ConnId, ConnStatus, Handoff};

use super::core::{Adopt, CoreContext};

/// How a connection's task ended.
enum Exit {
    /// Closed; flush first if `graceful`.
    Closed { graceful: bool },
    /// Logged in for a user whose home is another core: the socket goes there.
    HandOff(Handoff),
}

/// The future that serves one connection until it closes or moves.
struct Driver<'a> {
    core: &'a CoreContext,
    stream: &'a mut TcpStream,
    conn: ConnId,
}

impl Future for Driver<'_> {
    type Output = Exit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Exit> {
        let this = self.get_mut();
        let core = this.core;
        let conn = this.conn;
        core.set_waker(conn, cx.waker());
        let mut reads = 0;
        loop {
            // Write everything queued, as one write.
            let mut write_blocked = false;
            {
                let mut shard = core.shard.borrow_mut();
                let outbound = shard.outbound(conn);
                if !outbound.is_empty() {
                    match Pin::new(&mut *this.stream).poll_write(cx, outbound) {
                        Poll::Ready(Ok(written)) => {
                            shard.consume_outbound(conn, written, core.now());
                            drop(shard);
                            core.dispatch();
                            continue;
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(Exit::Closed { graceful: false }),
                        Poll::Pending => write_blocked = true,
                    }
                }
            }
            let status = core.shard.borrow().conn_status(conn);
            match status {
                ConnStatus::Gone | ConnStatus::CloseNow => return Poll::Ready(Exit::Closed { graceful: false }),
                ConnStatus::CloseAfterFlush if !write_blocked => return Poll::Ready(Exit::Closed { graceful: true }),
                ConnStatus::CloseAfterFlush => return Poll::Pending,
                ConnStatus::HandOff => {
                    let handoff = core.shard.borrow_mut().take_handoff(conn);
                    return Poll::Ready(match handoff {
                        Some(handoff) => Exit::HandOff(handoff),
                        None => Exit::Closed { graceful: false },
                    });
                }
                ConnStatus::Open { may_read: false } => return Poll::Pending,
                ConnStatus::Open { may_read: true } => {}
            }
            if reads == READS_PER_POLL_MAX {
                // Fair to the other connections of this core: come back after them.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut buffer = core.read_buffer.borrow_mut();
            match Pin::new(&mut *this.stream).poll_read(cx, &mut buffer[..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Exit::Closed { graceful: false }),
                Poll::Ready(Ok(read)) => {
                    reads += 1;
                    core.shard.borrow_mut().handle_bytes(conn, &buffer[..read], core.now());
                    drop(buffer);
                    core.dispatch();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Serves `stream` as connection `conn` of this core until it closes or moves to its home core.
pub async fn serve_connection(core: Rc<CoreContext>, mut stream: TcpStream, conn: ConnId) {
    let exit = Driver { core: &core, stream: &mut stream, conn }.await;
    core.clear_waker(conn);
    match exit {
        Exit::Closed { graceful } => {
            core.shard.borrow_mut().handle_closed(conn);
            core.dispatch();
            if graceful {
                // Boxed: this state is needed only while closing, and must not grow every connection's task.
                Box::pin(linger(stream)).await;
            }
        }
        Exit::HandOff(handoff) => {
            // SAFETY: dup of a descriptor this task owns; the copy is owned by the `OwnedFd` alone.
            let duplicate = unsafe { libc::dup(stream.as_raw_fd()) };
            drop(stream);
            if duplicate < 0 {
                tracing::warn!(error = %std::io::Error::last_os_error(), "handing a connection over: dup failed");
                return;
            }
            // SAFETY: `duplicate` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(duplicate) };
            core.send_adopt(Adopt { fd, handoff });
        }
    }
}

/// After the last frame: stop sending, then discard what the client still sends for a moment, so closing
/// with unread input does not reset the connection and destroy the frame before the client reads it.
async fn linger(mut stream: TcpStream) {
    const LINGER: Duration = Duration::from_secs(2);
    const DISCARD_BYTES_MAX: usize = 64 * 1024;
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let drain = async {
        let mut scrap = [0u8; 1024];
        let mut discarded = 0;
        while discarded < DISCARD_BYTES_MAX {
            match stream.read(&mut scrap).await {
                Ok(0) | Err(_) => break,
                Ok(read) => discarded += read,
            }
        }
    };
    futures_lite::future::or(drain, glommio::timer::sleep(LINGER)).await;
}
