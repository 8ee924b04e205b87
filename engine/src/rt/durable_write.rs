//! One durable write of log pages: `pwritev2(…, RWF_DSYNC)` of a page-aligned copy of the pages at their offset
//! in an O_DIRECT segment file, on the executor's blocking thread. One system call and one thread hop per group
//! commit, where glommio's `write_at` and then `fdatasync` took two of each (an io-wq worker for the write, the
//! blocking thread for the sync, and a wake-up of the executor after each): at 5,000 msgs/s over twelve logs the
//! engines spent more CPU on those hops than on the messages (results/engine/README.md).
//!
//! Owns the aligned buffer and the call. What to write and where is the shard's (`wal::PendingWrite`); opening
//! and rotating segments is `rt::log_segment`'s, retrying `rt::log`'s.
//!
//! RWF_DSYNC makes this one write durable as `fdatasync` would (data, and the file size it extends).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;

/// Alignment of the copy: O_DIRECT needs the buffer aligned to the device's logical block; a page covers all.
const PAGE_ALIGN: usize = 4096;

thread_local! {
    /// Whether this blocking-pool thread has been unpinned.
    static UNPINNED: Cell<bool> = const { Cell::new(false) };
}

/// A page-aligned copy of the bytes to write, owned by the blocking call.
struct AlignedPages {
    pointer: *mut u8,
    layout: Layout,
}

// SAFETY: the buffer is plain bytes owned by this value alone; it moves to the blocking thread and back whole.
unsafe impl Send for AlignedPages {}

impl AlignedPages {
    fn copy_of(bytes: &[u8]) -> io::Result<Self> {
        let layout = Layout::from_size_align(bytes.len().max(1), PAGE_ALIGN)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        // SAFETY: the layout has a non-zero size.
        let pointer = unsafe { alloc_zeroed(layout) };
        if pointer.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "no memory for a log write's buffer"));
        }
        // SAFETY: `pointer` holds `layout.size() >= bytes.len()` bytes, and the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), pointer, bytes.len()) };
        Ok(Self { pointer, layout })
    }
}

impl Drop for AlignedPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `copy_of` with this layout, freed once.
        unsafe { dealloc(self.pointer, self.layout) };
    }
}

/// Writes `bytes` at `offset` of `fd` and makes them durable, blocking. `fd` must stay open until it returns.
fn write_and_sync(fd: RawFd, pages: &AlignedPages, len: usize, offset: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("log offset {offset} is too large")))?;
    let vector = libc::iovec { iov_base: pages.pointer.cast(), iov_len: len };
    loop {
        // SAFETY: `vector` points into `pages`, which lives through the call; the kernel only reads it.
        let written = unsafe { libc::pwritev2(fd, &vector, 1, offset, libc::RWF_DSYNC) };
        if written >= 0 {
            let written = written as usize;
            if written != len {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short log write: {written} of {len} bytes"),
                ));
            }
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Lets the calling blocking-pool thread run on any CPU, once: the write waits on the device, and the thread
/// that issues it must not wait for a CPU behind the busy executor it serves (an io_uring fsync runs in a worker
/// pinned like the executor; on an oversubscribed host that stalled one core's syncs to tens of milliseconds,
/// results/durability/README.md).
pub(super) fn unpin_this_thread() {
    UNPINNED.with(|unpinned| {
        if !unpinned.replace(true) {
            // Best effort: a pinned sync thread is slower, not wrong.
            let _ = tuning::cpus::unpin_current_thread();
        }
    });
}

/// Writes `bytes` (whole pages) at `offset` (a multiple of the page size) of the O_DIRECT file `fd` and makes
/// them durable, on the current glommio executor's blocking thread. The caller keeps `fd` open until this
/// returns.
pub async fn write_durably_at(fd: RawFd, bytes: &[u8], offset: u64) -> io::Result<()> {
    let pages = AlignedPages::copy_of(bytes)?;
    let len = bytes.len();
    glommio::executor()
        .spawn_blocking(move || {
            unpin_this_thread();
            write_and_sync(fd, &pages, len, offset)
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;

    #[test]
    fn writes_whole_pages_at_their_offset() {
        let path = std::env::temp_dir().join(format!("ringline-durable-write-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("an O_DIRECT file in the temp directory");
        let page = vec![7u8; 4096];
        let pages = AlignedPages::copy_of(&page).expect("buffer");
        assert_eq!(pages.pointer as usize % PAGE_ALIGN, 0);
        write_and_sync(file.as_raw_fd(), &pages, page.len(), 4096).expect("a whole page at a page offset");
        let written = std::fs::read(&path).expect("read back");
        assert_eq!(written.len(), 8192);
        assert!(written[..4096].iter().all(|&byte| byte == 0) && written[4096..] == page[..]);
        let _ = std::fs::remove_file(&path);
        assert!(write_and_sync(-1, &pages, 4096, 0).is_err(), "a bad descriptor is an error, not a panic");
    }
}
