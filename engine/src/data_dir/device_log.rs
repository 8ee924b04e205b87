//! The device generations issued by registration, durable in the data directory: one append-only file per
//! core (`devices-<core>`), lines `USER GENERATION`, each appended and synced before the new key is handed
//! out. Owns that file format and reading every core's file back at start (whatever the core count was, so
//! users re-home freely: the highest generation seen for a user wins). A torn last line from a crash is
//! skipped with a warning: its key was never handed out. Does not decide generations (the shard does) and
//! does not choose its thread: `record` blocks on the disk, so the runtime calls it on a blocking thread
//! (`rt::device_records`), never on an executor.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wire::UserId;

use super::AccountStoreError;

const FILE_PREFIX: &str = "devices-";
const HEADER: &str = "# ringline devices v1";

/// Where appended generations go.
#[derive(Debug)]
enum Sink {
    /// One file per core, opened on first use. Each core touches only its own slot, so the mutex is never
    /// contended; it is there to make the type shareable.
    Files { dir: PathBuf, files: Vec<Mutex<Option<File>>> },
    /// For tests: records kept in memory.
    Memory(Mutex<Vec<(UserId, u32)>>),
}

/// Appends device generations, one file per core.
#[derive(Debug)]
pub struct DeviceLog {
    sink: Sink,
}

/// What was read back at start.
#[derive(Debug, Default)]
pub struct DeviceGenerations {
    pub generations: HashMap<UserId, u32>,
    /// Lines that could not be parsed (a torn tail after a crash), with where they were.
    pub skipped: Vec<String>,
}

impl DeviceLog {
    /// Reads every `devices-*` file of `dir` and prepares one file per core for appending.
    pub fn open(dir: &Path, cores: usize) -> Result<(Self, DeviceGenerations), AccountStoreError> {
        let mut found = DeviceGenerations::default();
        let entries = fs::read_dir(dir).map_err(|source| AccountStoreError::Io {
            action: "listing",
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries {
            let entry =
                entry.map_err(|source| AccountStoreError::Io { action: "listing", path: dir.to_owned(), source })?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(FILE_PREFIX) {
                continue;
            }
            let path = entry.path();
            let text = fs::read_to_string(&path).map_err(|source| AccountStoreError::Io {
                action: "reading",
                path: path.clone(),
                source,
            })?;
            read_lines(&path, &text, &mut found);
        }
        let files = (0..cores).map(|_| Mutex::new(None)).collect();
        Ok((Self { sink: Sink::Files { dir: dir.to_owned(), files } }, found))
    }

    /// A log that keeps records in memory (tests and simulations).
    pub fn in_memory() -> Self {
        Self { sink: Sink::Memory(Mutex::new(Vec::new())) }
    }

    /// Appends each `(user, generation)` of `records` to core `core`'s file, in order, and syncs them: one
    /// write and one sync for the batch. Blocks until they are durable (or fail: then none counts).
    pub fn record(&self, core: usize, records: &[(UserId, u32)]) -> std::io::Result<()> {
        match &self.sink {
            Sink::Memory(kept) => {
                kept.lock().map_err(|_| std::io::Error::other("device log poisoned"))?.extend_from_slice(records);
                Ok(())
            }
            Sink::Files { dir, files } => {
                let slot = files.get(core).ok_or_else(|| std::io::Error::other(format!("no core {core}")))?;
                let mut file = slot.lock().map_err(|_| std::io::Error::other("device log poisoned"))?;
                if file.is_none() {
                    *file = Some(open_for_append(&dir.join(format!("{FILE_PREFIX}{core}")))?);
                }
                let Some(handle) = file.as_mut() else { return Err(std::io::Error::other("device log not open")) };
                let lines: String = records.iter().map(|(user, generation)| format!("{user} {generation}\n")).collect();
                let written = handle.write_all(lines.as_bytes()).and_then(|()| handle.sync_data());
                if written.is_err() {
                    // Reopen next time: a half-written line is skipped at start and the key was not handed out.
                    *file = None;
                }
                written
            }
        }
    }

    /// Records kept by an in-memory log.
    pub fn memory_records(&self) -> Vec<(UserId, u32)> {
        match &self.sink {
            Sink::Memory(records) => records.lock().map(|records| records.clone()).unwrap_or_default(),
            Sink::Files { .. } => Vec::new(),
        }
    }
}

fn open_for_append(path: &Path) -> std::io::Result<File> {
    let fresh = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    if fresh {
        file.write_all(format!("{HEADER}\n").as_bytes())?;
        file.sync_all()?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
    }
    Ok(file)
}

fn read_lines(path: &Path, text: &str, found: &mut DeviceGenerations) {
    let complete = if text.ends_with('\n') { text } else { text.rsplit_once('\n').map_or("", |(head, _)| head) };
    if complete.len() < text.len() {
        found.skipped.push(format!("{}: torn last line {:?}", path.display(), &text[complete.len()..]));
    }
    for (number, line) in complete.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parsed = line
            .split_once(' ')
            .and_then(|(user, generation)| Some((user.parse::<UserId>().ok()?, generation.parse::<u32>().ok()?)));
        match parsed {
            Some((user, generation)) => {
                let entry = found.generations.entry(user).or_insert(generation);
                *entry = (*entry).max(generation);
            }
            None => found.skipped.push(format!("{} line {}: {line:?}", path.display(), number + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_survive_reopen_with_another_core_count_and_the_highest_wins() {
        let dir = std::env::temp_dir().join(format!("ringline-devices-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let (log, found) = DeviceLog::open(&dir, 2).expect("open");
        assert!(found.generations.is_empty());
        log.record(0, &[(15_550_000_001, 1)]).expect("append");
        log.record(1, &[(15_550_000_002, 1)]).expect("append");
        log.record(0, &[(15_550_000_003, 1), (15_550_000_001, 2)]).expect("a batch");
        drop(log);
        // A crash in the middle of a line leaves a torn tail.
        let mut file = OpenOptions::new().append(true).open(dir.join("devices-1")).expect("open");
        file.write_all(b"15550000002 7").expect("torn");
        let (_log, found) = DeviceLog::open(&dir, 3).expect("reopen");
        assert_eq!(found.generations.get(&15_550_000_001), Some(&2));
        assert_eq!(found.generations.get(&15_550_000_002), Some(&1));
        assert_eq!(found.generations.get(&15_550_000_003), Some(&1));
        assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
        let _ = fs::remove_dir_all(&dir);
    }
}
