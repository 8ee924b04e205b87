//! What an epoll event refers to: a connection (by its shard handle, generation included, so an event for
//! a closed connection misses the one that reuses its slot), one of the core's listeners (plain or TLS), or
//! a lingering socket.
//! Owns only the encoding into epoll's 64-bit event data.

use ringline_core::limits::{CONNECTIONS_PER_SHARD_MAX, LINGERING_PER_CORE_MAX};
use ringline_core::shard::ConnId;

/// Connection slot indices are below this bit; lingering sockets use it as their tag.
const LINGER_TAG: u32 = 1 << 31;
const LISTENER: u64 = u64::MAX;
const TLS_LISTENER: u64 = u64::MAX - 1;

const _: () = assert!(CONNECTIONS_PER_SHARD_MAX < LINGER_TAG as usize);
const _: () = assert!(LINGERING_PER_CORE_MAX < LINGER_TAG as usize);
// The listeners' values, read as a slot index, are above every connection and linger slot.
const _: () = assert!((TLS_LISTENER as u32 & !LINGER_TAG) as usize > CONNECTIONS_PER_SHARD_MAX);
const _: () = assert!((TLS_LISTENER as u32 & !LINGER_TAG) as usize > LINGERING_PER_CORE_MAX);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Connection(ConnId),
    Listener,
    TlsListener,
    /// A socket closing gracefully, by its slot in `Lingering`.
    Linger {
        index: u32,
        generation: u32,
    },
}

impl Token {
    pub fn to_u64(self) -> u64 {
        match self {
            Self::Connection(conn) => {
                assert!(conn.index < LINGER_TAG, "connection slot {} collides with the linger tag", conn.index);
                (u64::from(conn.generation) << 32) | u64::from(conn.index)
            }
            Self::Listener => LISTENER,
            Self::TlsListener => TLS_LISTENER,
            Self::Linger { index, generation } => {
                assert!(index < LINGER_TAG, "linger slot {index} collides with the linger tag");
                (u64::from(generation) << 32) | u64::from(index | LINGER_TAG)
            }
        }
    }

    pub fn from_u64(data: u64) -> Self {
        if data == LISTENER {
            return Self::Listener;
        }
        if data == TLS_LISTENER {
            return Self::TlsListener;
        }
        let index = data as u32;
        let generation = (data >> 32) as u32;
        if index & LINGER_TAG != 0 {
            Self::Linger { index: index & !LINGER_TAG, generation }
        } else {
            Self::Connection(ConnId { index, generation })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for token in [
            Token::Listener,
            Token::TlsListener,
            Token::Connection(ConnId { index: 0, generation: 0 }),
            Token::Connection(ConnId { index: 4_000_000, generation: u32::MAX }),
            Token::Linger { index: 0, generation: 7 },
            Token::Linger { index: 12_345, generation: u32::MAX - 1 },
        ] {
            assert_eq!(Token::from_u64(token.to_u64()), token);
        }
    }
}
