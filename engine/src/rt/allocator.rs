//! The process's allocator asked to give freed memory back to the OS. The `ringline` binary allocates with
//! mimalloc (`main.rs`), which keeps freed pages of a thread's heap for reuse and returns them only when
//! that thread allocates or frees again after the purge delay: a core that went quiet after a burst would
//! keep them for good. Each core calls `return_freed_memory` from its own thread after its memory trim
//! (`core.rs`, every `MEMORY_TRIM_INTERVAL`); it collects only the calling thread's heap.
//!
//! Owns no memory and no decision of when; does nothing harmful when mimalloc is linked but not the global
//! allocator (the engine's tests): it then collects mimalloc's empty heap.

// Links libmimalloc, which defines `mi_collect`, also where nothing else in the library names the crate.
use mimalloc as _;

unsafe extern "C" {
    /// mimalloc: collects the calling thread's heap: frees what other threads freed into it, returns
    /// empty pages, and (with `force`) purges all free memory to the OS now instead of after the delay.
    fn mi_collect(force: bool);
}

/// Returns the calling thread's freed memory to the OS: now and all of it with `force`, otherwise what has
/// been free for longer than mimalloc's purge delay (cheaper; for a core that is still busy).
pub fn return_freed_memory(force: bool) {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { mi_collect(force) }
}
