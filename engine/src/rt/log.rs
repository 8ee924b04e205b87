//! Per-core write-ahead log files: recovery at start (read every core's old log with `wal::LogReader`, log
//! the damage it reports and truncate a torn tail where it says, rewrite what is pending for the new core
//! count) and each core's log task (group commit to glommio's O_DIRECT files, each group one durable write to
//! its segment, `rt::log_segment`). Owns the files and the
//! directory layout; what to log, when to ACK and when a segment may go are the shard's (`shard::durability`),
//! the record format, replay rules and the bytes of segment 0 are `wal`'s (the simulator runs them too).
//!
//! Layout: `DATA_DIR/wal/epoch-NNNNNN/core-CCCC/segment-SSSSSSSS.log`. Each start reads the newest epoch
//! (whatever core count wrote it), folds it (`wal::Recovery`), and writes epoch N+1: per new core, segment 0
//! holds the sequence floor, every pending item of that core's users in order, and the SENDs it remembers
//! (`wal::RecoveredCore::first_segment_bytes`, with the core log's id, which the core's writer continues). Epoch
//! N+1 is built as
//! `epoch-…​.tmp` and renamed into place once synced, then epoch N is deleted: a crash at any point leaves
//! either the old or the new epoch complete, never neither. Cores then append from segment 1.
//!
//! Invariants: a write is acknowledged to the shard only after `pwritev2(RWF_DSYNC)` wrote all its bytes
//! (durable as after `fdatasync`); a new segment's directory entry is synced before its first write counts; a failed
//! write is retried (same bytes, same offset) until it succeeds, the shard refusing new messages meanwhile.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use glommio::io::Directory;

use ringline_core::limits::{LOG_RECORD_BYTES_MAX, LOG_RETRY_INTERVAL};
use ringline_core::shard::Durability;
use ringline_core::wal::{LogReader, RecoveredCore, Recovery, ReplayEnd, SegmentOutcome};

use crate::driver;

use super::context::CoreContext;
use super::log_segment::{SegmentWriter, segment_path};

/// Why the logs could not be recovered (the server does not start: it would lose acknowledged messages).
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct LogError {
    action: &'static str,
    path: PathBuf,
    source: io::Error,
}

fn io_context<T>(action: &'static str, path: &Path, result: io::Result<T>) -> Result<T, LogError> {
    result.map_err(|source| LogError { action, path: path.to_owned(), source })
}

/// What one core starts its log with.
#[derive(Debug)]
pub struct CoreLog {
    /// The core's directory in the current epoch.
    pub dir: PathBuf,
    /// The pending state of its users.
    pub recovered: RecoveredCore,
    /// Bytes of segment 0, which holds that state.
    pub segment_bytes: u64,
}

fn numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}

/// Entries of `dir` named `PREFIX<number>SUFFIX`, by number.
fn numbered_entries(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut found = Vec::new();
    for entry in io_context("listing", dir, std::fs::read_dir(dir))? {
        let entry = io_context("listing", dir, entry)?;
        let name = entry.file_name();
        match name.to_str().and_then(|name| numbered(name, prefix, suffix)) {
            Some(number) => found.push((number, entry.path())),
            None if name == "LOCK" || entry.path().extension().is_some_and(|extension| extension == "tmp") => {}
            None => tracing::warn!(path = %entry.path().display(), "ignoring an unexpected entry in the log directory"),
        }
    }
    found.sort_unstable_by_key(|(number, _)| *number);
    Ok(found)
}

fn sync_path(path: &Path) -> Result<(), LogError> {
    let file = io_context("opening", path, File::open(path))?;
    io_context("syncing", path, file.sync_all())
}

/// Reads every segment of an epoch into `recovery` (`wal::LogReader`: the rules are there), logs the damage it
/// met and truncates a torn tail.
fn read_epoch(epoch: &Path, recovery: &mut Recovery) -> Result<(), LogError> {
    for (_, core_dir) in numbered_entries(epoch, "core-", "")? {
        let segments = numbered_entries(&core_dir, "segment-", ".log")?;
        let last = segments.last().map(|(number, _)| *number);
        let mut reader = LogReader::new(LOG_RECORD_BYTES_MAX);
        for (number, path) in segments {
            let bytes = io_context("reading", &path, std::fs::read(&path))?;
            let outcome = reader.recover_segment(&bytes, Some(number) == last, recovery);
            report_damage(&path, &outcome);
            if let Some(offset) = outcome.truncate_to() {
                let file = io_context("opening", &path, std::fs::OpenOptions::new().write(true).open(&path))?;
                io_context("truncating", &path, file.set_len(offset))?;
                io_context("syncing", &path, file.sync_all())?;
            }
        }
    }
    Ok(())
}

/// Logs what replay found wrong in one segment: a torn tail is expected after a crash (a warning); damage
/// before the end means acknowledged records were lost on the disk (an error).
fn report_damage(path: &Path, outcome: &SegmentOutcome) {
    let (records, format) = (outcome.records, format!("{:?}", outcome.format));
    for skipped in &outcome.skipped {
        tracing::error!(path = %path.display(), offset = skipped.offset, resumed_at = skipped.resumed_at,
            records_lost = skipped.records_lost, error = %skipped.error, format,
            "log segment is damaged inside: a later group of its writer follows, so the damaged write was acknowledged; \
             skipped the damaged bytes, kept every valid record before and after them");
    }
    match &outcome.end {
        ReplayEnd::Clean => {}
        ReplayEnd::Torn { offset, error } => {
            tracing::warn!(path = %path.display(), offset, %error, records, format,
                "log ends in a torn write (the last one, cut by the crash, never acknowledged): kept its valid \
                 prefix, truncating the segment there");
        }
        ReplayEnd::Damaged { offset, error } => {
            tracing::error!(path = %path.display(), offset, %error, records, format,
                "log segment is damaged before its end with no group after the damage, and later segments \
                 exist: acknowledged records after the damage in this segment are lost; reading the next segments");
        }
    }
}

/// Takes `DATA_DIR/wal/LOCK` for this process's lifetime (the returned file holds it): two engines on one
/// data directory would rewrite and delete each other's logs.
pub fn lock(data_dir: &Path) -> Result<File, LogError> {
    let wal = data_dir.join("wal");
    io_context("creating", &wal, std::fs::create_dir_all(&wal))?;
    let path = wal.join("LOCK");
    let file =
        io_context("opening", &path, std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path))?;
    // SAFETY: flock(2) on a descriptor this function owns.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let source = io::Error::last_os_error();
        let source = if source.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(io::ErrorKind::WouldBlock, "another engine is running on this data directory")
        } else {
            source
        };
        return Err(LogError { action: "locking", path, source });
    }
    Ok(file)
}

/// Recovers the logs under `data_dir` for a process of `cores` cores: see the module documentation.
pub fn recover(data_dir: &Path, cores: u16, dedup_window: Duration) -> Result<Vec<CoreLog>, LogError> {
    let wal = data_dir.join("wal");
    io_context("creating", &wal, std::fs::create_dir_all(&wal))?;
    for entry in io_context("listing", &wal, std::fs::read_dir(&wal))? {
        let path = io_context("listing", &wal, entry)?.path();
        if path.extension().is_some_and(|extension| extension == "tmp") {
            tracing::info!(path = %path.display(), "removing an epoch that recovery did not finish");
            io_context("removing", &path, std::fs::remove_dir_all(&path))?;
        }
    }
    let epochs = numbered_entries(&wal, "epoch-", "")?;
    let mut recovery = Recovery::new();
    if let Some((_, current)) = epochs.last() {
        read_epoch(current, &mut recovery)?;
    }
    let next = epochs.last().map_or(1, |(number, _)| number + 1);
    let (records, live) = (recovery.records(), recovery.live_items());
    let now_wall_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_micros() as u64);
    // Refused before anything is rewritten: the logs stay as they were for whoever looks at them.
    let finished = recovery.finish(cores, now_wall_us, dedup_window.as_micros() as u64);
    let per_core =
        io_context("recovering", &wal, finished.map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error)))?;

    let building = wal.join(format!("epoch-{next:06}.tmp"));
    io_context("creating", &building, std::fs::create_dir(&building))?;
    let mut sizes = Vec::with_capacity(per_core.len());
    for (index, core) in per_core.iter().enumerate() {
        let dir = building.join(format!("core-{index:04}"));
        io_context("creating", &dir, std::fs::create_dir(&dir))?;
        let bytes = core.first_segment_bytes();
        let path = segment_path(&dir, 0);
        io_context("writing", &path, std::fs::write(&path, &bytes))?;
        sync_path(&path)?;
        sync_path(&dir)?;
        sizes.push(bytes.len() as u64);
    }
    sync_path(&building)?;
    let current = wal.join(format!("epoch-{next:06}"));
    io_context("renaming", &building, std::fs::rename(&building, &current))?;
    sync_path(&wal)?;
    for (_, old) in &epochs {
        io_context("removing", old, std::fs::remove_dir_all(old))?;
    }
    tracing::info!(
        epoch = next,
        records,
        pending_items = live,
        cores,
        "recovered the logs{}",
        if epochs.is_empty() { " (none yet: a fresh data directory)" } else { "" }
    );
    Ok(per_core
        .into_iter()
        .zip(sizes)
        .enumerate()
        .map(|(index, (recovered, segment_bytes))| CoreLog {
            dir: current.join(format!("core-{index:04}")),
            recovered,
            segment_bytes,
        })
        .collect())
}

thread_local! {
    /// This core's time from starting a group's write to its fdatasync returning: total and maximum, in µs.
    /// (Each core is one thread, so this is per core.)
    static WRITE_TIME_US: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Logs what a core's log did, at its stop.
pub fn log_summary(shard: &ringline_core::shard::Shard) {
    let stats = shard.wal_stats();
    let (write_us_total, write_us_max) = WRITE_TIME_US.with(Cell::get);
    let (on_disk, pending) = shard.wal_bytes();
    tracing::info!(
        writes = stats.writes,
        records = stats.records,
        records_per_write = stats.records.checked_div(stats.writes).unwrap_or(0),
        write_us_mean = write_us_total.checked_div(stats.writes).unwrap_or(0),
        write_us_max,
        bytes = stats.bytes,
        failures = stats.failures,
        compactions = stats.compactions,
        segments_deleted = stats.segments_deleted,
        bytes_on_disk = on_disk,
        bytes_pending = pending,
        "{}: log summary",
        shard.id()
    );
}

/// The core's log task: takes each group the shard has, makes it durable, reports back (`driver::log`);
/// deletes the segments compaction freed. Under `Durability::Sync` it runs whenever records wait
/// (`Output::LogReady`; the next group forms while a write is in flight); under `Async` it writes one group
/// per flush interval.
pub async fn run_log(core: Rc<CoreContext>, dir_path: PathBuf) {
    let durability = core.shard.borrow().durability();
    let id = core.shard.borrow().id();
    let dir = match Directory::open(&dir_path).await {
        Ok(dir) => dir,
        Err(error) => {
            // Recovery created it moments ago; without it nothing can be made durable. Refuse messages.
            tracing::error!(%error, path = %dir_path.display(), "{id}: cannot open the log directory");
            driver::log::write_failed(&mut core.shard.borrow_mut(), &mut core.effects());
            return;
        }
    };
    let mut segments = SegmentWriter::new(dir_path.clone());
    let mut deleting = Vec::new();
    loop {
        match durability {
            Durability::Sync => core.log_wake.wait().await,
            Durability::Async { flush_interval } => glommio::timer::sleep(flush_interval).await,
        }
        loop {
            let write = driver::log::next_write(&mut core.shard.borrow_mut());
            let Some(write) = write else { break };
            let mut failures = 0u64;
            let started = Instant::now();
            // The engine deletes segments only when compaction frees them (below), not when it closes them.
            while let Err(error) = segments.write(&dir, &write).await {
                if failures == 0 {
                    tracing::error!(%error, segment = write.segment, offset = write.offset,
                        "{id}: log write failed: refusing new messages (REJECT StorageUnavailable), \
                         delivering queued ones, retrying");
                    driver::log::write_failed(&mut core.shard.borrow_mut(), &mut core.effects());
                }
                failures += 1;
                // Reopen on the next try: the error may have been the file's.
                let _ = segments.close().await;
                glommio::timer::sleep(LOG_RETRY_INTERVAL).await;
            }
            let took_us = started.elapsed().as_micros() as u64;
            WRITE_TIME_US.with(|time| {
                let (total, max) = time.get();
                time.set((total + took_us, max.max(took_us)));
            });
            if failures > 0 {
                tracing::warn!(failures, "{id}: log write succeeded after failing: accepting messages again");
            }
            core.shard.borrow_mut().record_wal_sync(took_us);
            driver::log::write_done(&mut core.shard.borrow_mut(), &mut core.effects(), write.lsn, core.now());
            std::mem::swap(&mut deleting, &mut *core.segments_to_delete.borrow_mut());
            for segment in deleting.drain(..) {
                let path = segment_path(&dir_path, segment);
                if let Err(error) = glommio::io::remove(&path).await {
                    tracing::warn!(%error, path = %path.display(), "{id}: cannot delete a compacted log segment");
                }
            }
            if !durability.waits_for_sync() {
                // One group per interval: what was appended during this write waits for the next one.
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringline_core::wal::{LogRecord, LogWriter};

    fn message(item_id: u64, to: u64, body: &[u8]) -> LogRecord {
        LogRecord::Message { item_id, to, sender: 1, client_msg_id: item_id, time_us: 0, body: body.into() }
    }

    fn write_segment(dir: &Path, segment: u64, groups: &[Vec<LogRecord>]) -> Vec<u8> {
        std::fs::create_dir_all(dir).expect("dir");
        let mut writer = LogWriter::new(segment, 0, 0, u64::MAX);
        let mut bytes = Vec::new();
        for group in groups {
            for record in group {
                writer.append(record);
            }
            let write = writer.poll_write().expect("write");
            bytes.extend_from_slice(&write.bytes);
            writer.handle_write_done(write.lsn);
        }
        std::fs::write(segment_path(dir, segment), &bytes).expect("write segment");
        bytes
    }

    fn items(core: &CoreLog) -> Vec<u64> {
        core.recovered
            .items
            .iter()
            .map(|record| match record {
                LogRecord::Message { item_id, .. } => *item_id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn recovery_keeps_every_group_after_padding_shorter_than_a_record_header() {
        // Issue 17: a group ending 1..7 bytes before a page boundary made recovery truncate every later group.
        // Logs an older binary wrote (no group headers) are read right too.
        let data = std::env::temp_dir().join(format!("ringline-log-short-padding-{}", std::process::id()));
        for legacy in [true, false] {
            let _ = std::fs::remove_dir_all(&data);
            let core_dir = data.join("wal/epoch-000001/core-0000");
            let padding = 6;
            let header = if legacy { 0 } else { ringline_core::wal::GROUP_HEADER_BYTES };
            let body_len = 4096 - padding - header - message(1, 7, b"").encoded_len();
            let groups = [
                vec![message(1, 7, &vec![0x4E; body_len])],
                vec![message(2, 7, b"two")],
                vec![message(3, 7, b"three")],
            ];
            let bytes = write_segment(&core_dir, 1, &groups);
            if legacy {
                let mut old = Vec::new();
                for record in groups.iter().flatten() {
                    ringline_core::wal::encode_record(record, &mut old);
                    old.resize(old.len().next_multiple_of(4096), 0);
                }
                std::fs::write(segment_path(&core_dir, 1), &old).expect("an old binary's segment");
            } else {
                assert_eq!(bytes.len(), 3 * 4096);
            }
            let cores = recover(&data, 1, Duration::from_secs(1)).expect("recover");
            assert_eq!(items(&cores[0]), vec![1, 2, 3], "every synced group comes back (legacy: {legacy})");
        }
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn recovery_truncates_a_torn_tail_rehomes_and_replaces_the_epoch() {
        let data = std::env::temp_dir().join(format!("ringline-log-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let core_dir = data.join("wal/epoch-000003/core-0000");
        write_segment(&core_dir, 1, &[vec![message(1, 7, b"one"), message(2, 8, b"two")]]);
        let mut bytes = write_segment(
            &core_dir,
            2,
            &[vec![LogRecord::Removed { user: 8, item_id: 2 }], vec![message(3, 7, b"three"), message(4, 7, b"four")]],
        );
        // The last write was torn: its second record is garbage.
        let torn = 4096 + ringline_core::wal::GROUP_HEADER_BYTES + message(3, 7, b"three").encoded_len() + 3;
        bytes[torn] ^= 0xFF;
        std::fs::write(segment_path(&core_dir, 2), &bytes).expect("tear");
        std::fs::create_dir_all(data.join("wal/epoch-000004.tmp/core-0000")).expect("an unfinished epoch");

        let cores = recover(&data, 2, Duration::from_secs(1)).expect("recover");
        assert_eq!(
            std::fs::metadata(segment_path(&data.join("wal/epoch-000003/core-0000"), 2)).ok().map(|m| m.len()),
            None,
            "the old epoch is gone"
        );
        assert!(!data.join("wal/epoch-000004.tmp").exists());
        assert_eq!(cores.len(), 2);
        let home = ringline_core::home::home_core(7, 2).index();
        assert_eq!(items(&cores[home]), vec![1, 3], "item 2 was removed, item 4 torn");
        assert!(cores.iter().all(|core| core.recovered.item_seq_next == 4));
        assert_eq!(cores[1 - home].recovered.items.len(), 0);

        // The rewritten epoch reads back the same, for one core now.
        let again = recover(&data, 1, Duration::from_secs(1)).expect("recover again");
        assert_eq!(items(&again[0]), vec![1, 3]);
        assert!(again[0].dir.ends_with("wal/epoch-000005/core-0000"));
        assert!(again[0].dir.join("segment-00000000.log").exists());
        let held = lock(&data).expect("lock");
        let error = lock(&data).expect_err("a second engine on the same data directory");
        assert!(error.to_string().contains("another engine"), "{error}");
        drop(held);
        lock(&data).expect("free again");
        let _ = std::fs::remove_dir_all(&data);
    }
}
