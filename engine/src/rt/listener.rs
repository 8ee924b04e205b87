//! Listening sockets: one per core on the same address with SO_REUSEPORT, so the kernel spreads incoming
//! connections over the cores, each with the configured backlog (glommio's own `bind` fixes it at 1024).
//!
//! SO_REUSEPORT would also let a second ringline on the same port silently share its traffic. So before
//! binding, a probe socket without SO_REUSEPORT binds the address: if anything listens there, it fails with
//! EADDRINUSE and the engine refuses to start.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Why the listening sockets could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    #[error("{addr} is already in use (another ringline or another program listens there)")]
    InUse { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

fn socket_for(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_error(addr: SocketAddr) -> impl Fn(io::Error) -> ListenError {
    move |source| {
        if source.kind() == io::ErrorKind::AddrInUse {
            ListenError::InUse { addr }
        } else {
            ListenError::Bind { addr, source }
        }
    }
}

/// `count` listening sockets sharing `addr` (a port of 0 picks one free port for all of them).
pub fn bind_listeners(addr: SocketAddr, count: usize, backlog: u32) -> Result<Vec<Socket>, ListenError> {
    if addr.port() != 0 {
        let probe = socket_for(addr).map_err(bind_error(addr))?;
        probe.bind(&addr.into()).map_err(bind_error(addr))?;
        drop(probe);
    }
    let mut bound = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = socket_for(bound).map_err(bind_error(bound))?;
        socket.set_reuse_port(true).map_err(bind_error(bound))?;
        socket.bind(&bound.into()).map_err(bind_error(bound))?;
        socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX)).map_err(bind_error(bound))?;
        if bound.port() == 0 {
            bound = socket
                .local_addr()
                .map_err(bind_error(bound))?
                .as_socket()
                .ok_or_else(|| bind_error(addr)(io::Error::other("bound address is not IP")))?;
        }
        listeners.push(socket);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_share_one_port_and_a_second_server_is_refused() {
        let listeners = bind_listeners("127.0.0.1:0".parse().expect("addr"), 2, 128).expect("bind");
        let addr = listeners[0].local_addr().expect("addr").as_socket().expect("ip");
        assert_eq!(listeners[1].local_addr().expect("addr").as_socket(), Some(addr));
        assert!(matches!(bind_listeners(addr, 1, 128), Err(ListenError::InUse { .. })));
        drop(listeners);
        let again = bind_listeners(addr, 1, 128).expect("free again");
        assert_eq!(again.len(), 1);
    }
}
