//! Sockets closing gracefully. After a connection's last frame (GOAWAY or ERROR) is written, the runtime
//! sends FIN and keeps the socket a moment, discarding what the client still sends, so that closing with
//! unread input does not reset the connection and destroy that frame before the client reads it.
//!
//! Owns the lingering descriptors (closing them when done) in a bounded slab; the connection itself is gone
//! from the shard by then. Does not decide when a connection closes: the shard does.
//!
//! Limits: `LINGERING_PER_CORE_MAX` sockets (past it a socket closes at once), each kept at most
//! `LINGER_DURATION`. Past `LINGER_DISCARD_BYTES_MAX` of late input a socket closes as soon as the client
//! has received everything written to it (its send queue is acknowledged): closing with unread input
//! resets the connection, and a reset drops what the send queue still holds, the last frame included. A
//! client that stopped reading while it flooded the server (PINGs whose PONGs it never read) has megabytes
//! in flight when it starts reading again; its last frame must not be lost to them.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use ringline_core::limits::{LINGER_DISCARD_BYTES_MAX, LINGER_DURATION, LINGERING_PER_CORE_MAX};

use super::sys;

struct Lingerer {
    fd: OwnedFd,
    discarded: usize,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    lingerer: Option<Lingerer>,
}

/// One core's lingering sockets.
#[derive(Default)]
pub struct Lingering {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Close-by times in the order they were added (all lingers last the same), with their slot.
    deadlines: VecDeque<(u64, u32, u32)>,
    len: usize,
}

impl std::fmt::Debug for Lingering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lingering").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Lingering {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keeps `fd` until `now_us + LINGER_DURATION`. Returns its slot and generation, or the descriptor back
    /// when the table is full.
    pub fn try_insert(&mut self, fd: OwnedFd, now_us: u64) -> Result<(u32, u32), OwnedFd> {
        // Every live lingerer has a deadline entry, and entries of sockets closed early stay until their time:
        // bounding the entries bounds both.
        if self.deadlines.len() >= LINGERING_PER_CORE_MAX {
            return Err(fd);
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        assert!(slot.lingerer.is_none(), "linger slot {index} is in use");
        slot.generation = slot.generation.wrapping_add(1);
        slot.lingerer = Some(Lingerer { fd, discarded: 0 });
        self.len += 1;
        self.deadlines.push_back((now_us + LINGER_DURATION.as_micros() as u64, index, slot.generation));
        Ok((index, slot.generation))
    }

    #[cfg(test)]
    pub fn fd(&self, index: u32, generation: u32) -> Option<std::os::fd::RawFd> {
        let slot = self.slots.get(index as usize).filter(|slot| slot.generation == generation)?;
        slot.lingerer.as_ref().map(|lingerer| lingerer.fd.as_raw_fd())
    }

    /// Reads and discards the socket's input; closes it at the end of input, on an error, or past the
    /// discard limit once the client has received all that was written to it.
    pub fn discard(&mut self, index: u32, generation: u32, scratch: &mut [u8]) {
        let Some(slot) = self.slots.get_mut(index as usize).filter(|slot| slot.generation == generation) else {
            return;
        };
        let Some(lingerer) = slot.lingerer.as_mut() else { return };
        let done = loop {
            match sys::recv(lingerer.fd.as_raw_fd(), scratch) {
                Ok(0) => break true,
                Ok(read) => {
                    lingerer.discarded += read;
                    if lingerer.discarded >= LINGER_DISCARD_BYTES_MAX
                        && sys::unacknowledged_bytes(lingerer.fd.as_raw_fd()).is_ok_and(|bytes| bytes == 0)
                    {
                        break true;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        if done {
            self.remove(index);
        }
    }

    fn remove(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize)
            && slot.lingerer.take().is_some()
        {
            self.free.push(index);
            self.len -= 1;
        }
    }

    /// Closes the sockets whose linger time is over.
    pub fn expire(&mut self, now_us: u64) {
        while let Some(&(deadline, index, generation)) = self.deadlines.front() {
            if deadline > now_us {
                break;
            }
            self.deadlines.pop_front();
            if self.slots.get(index as usize).is_some_and(|slot| slot.generation == generation) {
                self.remove(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_lingering_socket_closes_at_end_of_input_or_when_its_time_is_over() {
        let mut lingering = Lingering::default();
        let mut scratch = [0u8; 64];
        let (mut peer, ours) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("nonblocking");
        let (index, generation) = lingering.try_insert(ours.into(), 0).map_err(drop).expect("room");
        peer.write_all(b"late input").expect("write");
        lingering.discard(index, generation, &mut scratch);
        assert_eq!(lingering.len(), 1, "still open: no end of input yet");
        drop(peer);
        lingering.discard(index, generation, &mut scratch);
        assert_eq!(lingering.len(), 0);

        let (_peer, ours) = UnixStream::pair().expect("socketpair");
        let (index, generation) = lingering.try_insert(ours.into(), 0).map_err(drop).expect("room");
        assert_eq!(index, 0, "slot reused");
        lingering.expire(1);
        assert!(lingering.fd(index, generation).is_some());
        lingering.expire(LINGER_DURATION.as_micros() as u64);
        assert_eq!(lingering.len(), 0);
        assert!(lingering.fd(index, generation).is_none());
    }
}
