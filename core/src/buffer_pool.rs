//! A bounded pool of byte buffers for one core's connections: their outbound bytes and their partial input
//! frames (the shard's pool), or their TLS records waiting to be written or completed (the runtime's pool,
//! `tls::TlsSession`). A connection takes a buffer when it has bytes to keep and gives it back as soon as it is empty, so
//! an idle connection owns none, and a busy one reuses capacity instead of growing a fresh allocation on
//! every write.
//!
//! Owns only the free buffers. Does not decide when a connection keeps bytes: `Shard` and `TlsSession` do.
//!
//! Limits: at most `POOLED_BUFFERS_MAX` free buffers are kept, and a buffer that grew past
//! `POOLED_BUFFER_BYTES_MAX` (a slow reader's backlog, a large frame) is freed rather than kept, so the pool
//! holds at most `POOLED_BUFFERS_MAX * POOLED_BUFFER_BYTES_MAX` bytes. When it is empty, `take` allocates.
//! After a burst, `trim` frees what is beyond a small reserve, so the pool holds what a burst needed only
//! until the core's next memory trim.

use crate::limits::{POOLED_BUFFER_BYTES, POOLED_BUFFER_BYTES_MAX, POOLED_BUFFERS_MAX};

const _: () = assert!(POOLED_BUFFER_BYTES <= POOLED_BUFFER_BYTES_MAX);

#[derive(Debug, Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    /// An empty buffer with room for `POOLED_BUFFER_BYTES` at least.
    pub fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buffer) => {
                debug_assert!(buffer.is_empty());
                buffer
            }
            None => Vec::with_capacity(POOLED_BUFFER_BYTES),
        }
    }

    /// Gives a buffer back (its bytes are dropped). A buffer without capacity is ignored.
    pub fn give(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() < POOLED_BUFFER_BYTES
            || buffer.capacity() > POOLED_BUFFER_BYTES_MAX
            || self.free.len() >= POOLED_BUFFERS_MAX
        {
            return;
        }
        buffer.clear();
        self.free.push(buffer);
    }

    /// Frees the free buffers beyond `reserve` (the runtime's memory trim, after a burst).
    pub fn trim(&mut self, reserve: usize) {
        self.free.truncate(reserve);
        self.free.shrink_to(reserve);
    }

    /// Free buffers held.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// No free buffer is held.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_pool_is_bounded() {
        let mut pool = BufferPool::default();
        let mut buffer = pool.take();
        assert!(buffer.capacity() >= POOLED_BUFFER_BYTES);
        buffer.extend_from_slice(b"frame");
        let address = buffer.as_ptr();
        pool.give(buffer);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same allocation comes back");

        pool.give(Vec::new());
        pool.give(Vec::with_capacity(POOLED_BUFFER_BYTES_MAX + 1));
        assert_eq!(pool.len(), 0, "no capacity, or too much, is not kept");

        for _ in 0..POOLED_BUFFERS_MAX + 10 {
            pool.give(Vec::with_capacity(POOLED_BUFFER_BYTES));
        }
        assert_eq!(pool.len(), POOLED_BUFFERS_MAX);

        pool.trim(3);
        assert_eq!(pool.len(), 3, "a trim keeps the reserve");
        assert!(pool.take().capacity() >= POOLED_BUFFER_BYTES);
    }
}
