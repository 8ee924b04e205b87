//! The socket system calls the runtime makes, as safe functions on borrowed descriptors returning
//! `io::Result`. All are non-blocking (`MSG_DONTWAIT`, `SOCK_NONBLOCK`); none retries on `EINTR` or
//! `EAGAIN`: the caller decides. Owns nothing.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn check(result: isize) -> io::Result<usize> {
    if result < 0 { Err(io::Error::last_os_error()) } else { Ok(result as usize) }
}

/// Reads what is waiting into `buffer`; `Ok(0)` is the end of input.
pub fn recv(fd: RawFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for writes of its length for the duration of the call.
    check(unsafe { libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), libc::MSG_DONTWAIT) })
}

/// Writes as much of `bytes` as the socket takes now. Never raises SIGPIPE.
pub fn send(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for reads of its length for the duration of the call.
    check(unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// Takes one connection from a listener's queue, non-blocking and close-on-exec.
pub fn accept(listener: RawFd) -> io::Result<(OwnedFd, Option<std::net::IpAddr>)> {
    // SAFETY: an all-zero sockaddr_storage is a valid (empty) value of the type.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` and `len` are valid for writes and describe the buffer's real size.
    let fd = unsafe {
        libc::accept4(
            listener,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the kernel filled `len` bytes of `storage` with a socket address.
    let peer = unsafe { socket2::SockAddr::new(storage, len) };
    Ok((fd, peer.as_socket().map(|address| address.ip())))
}

/// Sends FIN: no more output on this socket.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor the caller owns.
    check(unsafe { libc::shutdown(fd, libc::SHUT_WR) } as isize).map(drop)
}

/// Turns off Nagle: frames are small and already coalesced per wake-up.
pub fn set_nodelay(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` lives through the call and its size is passed.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(result as isize).map(drop)
}

/// Bytes of the socket's send queue the peer has not acknowledged yet (SIOCOUTQ): zero once everything
/// written reached the peer's kernel.
pub fn unacknowledged_bytes(fd: RawFd) -> io::Result<usize> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int to the pointer, which lives through the call.
    let result = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut bytes as *mut libc::c_int) };
    check(result as isize).map(|_| usize::try_from(bytes).unwrap_or(0))
}
