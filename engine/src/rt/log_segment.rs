//! The segment file a core's log appends to: named by `segment_path`, opened (created, its directory entry
//! synced) when the first group of a segment comes, closed when a group belongs to the next one, and each group
//! written with one durable write (`rt::durable_write`). Also used by the WAL bench, so that it measures this code.
//!
//! Owns the open file only. What to write and where is the shard's (`wal::PendingWrite`); retrying after a
//! failure, and deleting the segments compaction freed, are `rt::log`'s.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use glommio::io::{Directory, DmaFile, OpenOptions};

use ringline_core::wal::PendingWrite;

/// The file of segment `segment` in a core's log directory.
pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("segment-{segment:08}.log"))
}

/// The segment being appended to in one log directory.
#[derive(Debug)]
pub struct SegmentWriter {
    dir_path: PathBuf,
    open: Option<(u64, DmaFile)>,
}

impl SegmentWriter {
    /// A writer for the log directory at `dir_path` (`dir` below must be that directory, open).
    pub fn new(dir_path: PathBuf) -> Self {
        Self { dir_path, open: None }
    }

    /// Writes `write` and makes it durable: its segment file first (the open one is closed, the new one
    /// created with its directory entry synced) if it is not the one open, then one `pwritev2(RWF_DSYNC)` of
    /// every byte. Returns the segment it closed, if it closed one.
    pub async fn write(&mut self, dir: &Directory, write: &PendingWrite) -> io::Result<Option<u64>> {
        let mut closed = None;
        if self.open.as_ref().is_none_or(|(segment, _)| *segment != write.segment) {
            if let Some((previous, file)) = self.open.take() {
                file.close().await?;
                closed = Some(previous);
            }
            // Readable too: glommio probes the device for iopoll support with a read.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .dma_open(segment_path(&self.dir_path, write.segment))
                .await?;
            dir.sync().await?;
            self.open = Some((write.segment, file));
        }
        let (_, file) = self.open.as_ref().expect("opened above");
        super::durable_write::write_durably_at(file.as_raw_fd(), &write.bytes, write.offset).await?;
        Ok(closed)
    }

    /// Closes the open segment, if any: after a failed write (the next write reopens it, in case the error
    /// was the file's) or at the end.
    pub async fn close(&mut self) -> io::Result<()> {
        match self.open.take() {
            Some((_, file)) => file.close().await.map_err(io::Error::from),
            None => Ok(()),
        }
    }
}
