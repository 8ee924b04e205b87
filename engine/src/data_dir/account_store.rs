//! Account files in the data directory: `secret` (the 32-byte key-derivation secret, mode 0600) and
//! `users` (one `batch PREFIX WIDTH COUNT` line per provisioning). Owns reading, validating and atomically
//! rewriting them, and writing keys files. Files are replaced by write-to-temporary, fsync, rename, so a
//! crash leaves the old or the new version, never a torn one.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ringline_core::account::{Directory, KeyAuthority, ProvisionBatch};

const SECRET_FILE: &str = "secret";
const USERS_FILE: &str = "users";
const USERS_HEADER: &str = "# ringline users v1";

/// Why the account files could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountStoreError {
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} must hold exactly 32 bytes, it holds {len}")]
    SecretSize { path: PathBuf, len: usize },
    #[error("{path} line {line}: {problem}")]
    UsersFile { path: PathBuf, line: usize, problem: String },
    #[error("--count must be at least 1")]
    EmptyBatch,
    #[error("users {prefix}×10^{width} + 0..{count} do not fit in a 64-bit user id")]
    BatchOverflow { prefix: u64, width: u32, count: u64 },
    #[error("users {first}..{end} overlap an earlier batch with another prefix ({other_first}..{other_end})")]
    BatchOverlap { first: u64, end: u64, other_first: u64, other_end: u64 },
}

/// What a provisioning call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionSummary {
    pub batch: ProvisionBatch,
    pub first_user: u64,
    pub last_user: u64,
    pub keys_written: u64,
    pub users_total: u64,
}

/// The account files of one data directory.
#[derive(Debug)]
pub struct AccountStore {
    dir: PathBuf,
    authority: KeyAuthority,
    directory: Directory,
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AccountStoreError + 'a {
    move |source| AccountStoreError::Io { action, path: path.to_owned(), source }
}

impl AccountStore {
    /// Opens the data directory, creating it and a fresh secret if they do not exist yet.
    pub fn open(dir: &Path) -> Result<Self, AccountStoreError> {
        fs::create_dir_all(dir).map_err(io_error("creating data directory", dir))?;
        let authority = KeyAuthority::new(load_or_create_secret(&dir.join(SECRET_FILE))?);
        let directory = load_users(&dir.join(USERS_FILE))?;
        Ok(Self { dir: dir.to_owned(), authority, directory })
    }

    pub fn authority(&self) -> &KeyAuthority {
        &self.authority
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Creates `count` users with ids `prefix × 10^w + i` and writes their keys to `keys_out`. Provisioning
    /// the same prefix again extends the batch (keys are the same for the same ids).
    pub fn provision(
        &mut self,
        count: u64,
        prefix: u64,
        keys_out: &Path,
    ) -> Result<ProvisionSummary, AccountStoreError> {
        if count == 0 {
            return Err(AccountStoreError::EmptyBatch);
        }
        let width = ProvisionBatch::width_for(count);
        let batch = ProvisionBatch { prefix, width, count };
        let (Some(first), Some(end)) = (batch.first(), batch.end()) else {
            return Err(AccountStoreError::BatchOverflow { prefix, width, count });
        };
        let batches = merge_batch(self.directory.batches(), batch)?;
        write_keys(&self.authority, &batch, keys_out)?;
        let directory = Directory::new(batches);
        store_users(&self.dir.join(USERS_FILE), &directory)?;
        self.directory = directory;
        Ok(ProvisionSummary {
            batch,
            first_user: first,
            last_user: end - 1,
            keys_written: count,
            users_total: self.directory.len(),
        })
    }
}

/// The batches after adding `batch`: the same prefix and width extends the earlier batch; any other batch
/// whose ids overlap is refused, so that one id never belongs to two batches.
fn merge_batch(batches: &[ProvisionBatch], batch: ProvisionBatch) -> Result<Vec<ProvisionBatch>, AccountStoreError> {
    let (ProvisionBatch { prefix, width, count }, Some(first), Some(end)) = (batch, batch.first(), batch.end()) else {
        return Err(AccountStoreError::BatchOverflow { prefix: batch.prefix, width: batch.width, count: batch.count });
    };
    let mut merged = batches.to_vec();
    let mut extended = false;
    for existing in &mut merged {
        let (Some(other_first), Some(other_end)) = (existing.first(), existing.end()) else { continue };
        if existing.prefix == prefix && existing.width == width {
            existing.count = existing.count.max(count);
            extended = true;
        } else if first < other_end && other_first < end {
            return Err(AccountStoreError::BatchOverlap { first, end, other_first, other_end });
        }
    }
    if !extended {
        merged.push(batch);
    }
    Ok(merged)
}

fn load_or_create_secret(path: &Path) -> Result<[u8; 32], AccountStoreError> {
    match fs::read(path) {
        Ok(bytes) => {
            let len = bytes.len();
            bytes.try_into().map_err(|_| AccountStoreError::SecretSize { path: path.to_owned(), len })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            let temporary = path.with_extension("tmp");
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)
                .map_err(io_error("creating", &temporary))?;
            file.write_all(&secret).map_err(io_error("writing", &temporary))?;
            file.sync_all().map_err(io_error("syncing", &temporary))?;
            fs::rename(&temporary, path).map_err(io_error("renaming into", path))?;
            sync_parent(path)?;
            Ok(secret)
        }
        Err(source) => Err(AccountStoreError::Io { action: "reading", path: path.to_owned(), source }),
    }
}

fn load_users(path: &Path) -> Result<Directory, AccountStoreError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Directory::default()),
        Err(source) => return Err(AccountStoreError::Io { action: "reading", path: path.to_owned(), source }),
    };
    let mut batches = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let problem = |problem: &str| AccountStoreError::UsersFile {
            path: path.to_owned(),
            line: index + 1,
            problem: problem.to_owned(),
        };
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let ["batch", prefix, width, count] = fields.as_slice() else {
            return Err(problem("expected `batch PREFIX WIDTH COUNT`"));
        };
        let batch = ProvisionBatch {
            prefix: prefix.parse().map_err(|_| problem("PREFIX is not a number"))?,
            width: width.parse().map_err(|_| problem("WIDTH is not a number"))?,
            count: count.parse().map_err(|_| problem("COUNT is not a number"))?,
        };
        if batch.end().is_none() {
            return Err(problem("the batch does not fit in 64-bit user ids"));
        }
        batches.push(batch);
    }
    Ok(Directory::new(batches))
}

fn store_users(path: &Path, directory: &Directory) -> Result<(), AccountStoreError> {
    let mut text = format!("{USERS_HEADER}\n");
    for batch in directory.batches() {
        text.push_str(&format!("batch {} {} {}\n", batch.prefix, batch.width, batch.count));
    }
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary).map_err(io_error("creating", &temporary))?;
    file.write_all(text.as_bytes()).map_err(io_error("writing", &temporary))?;
    file.sync_all().map_err(io_error("syncing", &temporary))?;
    fs::rename(&temporary, path).map_err(io_error("renaming into", path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), AccountStoreError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(io_error("syncing directory", parent))
}

fn write_keys(authority: &KeyAuthority, batch: &ProvisionBatch, keys_out: &Path) -> Result<(), AccountStoreError> {
    let file = fs::File::create(keys_out).map_err(io_error("creating keys file", keys_out))?;
    file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_error("restricting", keys_out))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = String::with_capacity(96);
    writeln!(out, "{}", wire::KEYS_FILE_HEADER).map_err(io_error("writing", keys_out))?;
    for index in 0..batch.count {
        let user = batch.user(index).ok_or(AccountStoreError::BatchOverflow {
            prefix: batch.prefix,
            width: batch.width,
            count: batch.count,
        })?;
        line.clear();
        wire::write_keys_line(&wire::UserKey { user, key: authority.derive(user, 0) }, &mut line);
        out.write_all(line.as_bytes()).map_err(io_error("writing", keys_out))?;
    }
    let file = out.into_inner().map_err(|error| AccountStoreError::Io {
        action: "writing",
        path: keys_out.to_owned(),
        source: error.into_error(),
    })?;
    file.sync_all().map_err(io_error("syncing", keys_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringline-account-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn provisioned_keys_verify_after_reopening() {
        let dir = temp_dir("reopen");
        let keys = dir.join("keys.txt");
        let mut store = AccountStore::open(&dir).expect("open");
        let summary = store.provision(100, 1555, &keys).expect("provision");
        assert_eq!(summary.first_user, 15_550_000_000);
        assert_eq!(summary.last_user, 15_550_000_099);

        let reopened = AccountStore::open(&dir).expect("reopen");
        let text = fs::read_to_string(&keys).expect("keys file");
        let entries: Vec<_> =
            text.lines().filter_map(|line| wire::parse_keys_line(line).expect("valid line")).collect();
        assert_eq!(entries.len(), 100);
        for entry in entries {
            assert!(reopened.directory().contains(entry.user));
            assert_eq!(reopened.authority().verify(entry.user, &entry.key), Some(0));
        }
        assert!(!reopened.directory().contains(15_550_000_100));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_provisioning_is_refused_with_typed_errors() {
        let dir = temp_dir("refuse");
        let keys = dir.join("keys.txt");
        let mut store = AccountStore::open(&dir).expect("open");
        assert!(matches!(store.provision(0, 1, &keys), Err(AccountStoreError::EmptyBatch)));
        assert!(matches!(store.provision(5, u64::MAX, &keys), Err(AccountStoreError::BatchOverflow { .. })));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn batches_merge_by_prefix_and_refuse_overlaps() {
        let big = ProvisionBatch { prefix: 1, width: 8, count: 20_000_000 };
        // Prefix 10 with width 7 starts at 100_000_000, inside prefix 1 with width 8 (100_000_000..120_000_000).
        let inside = ProvisionBatch { prefix: 10, width: 7, count: 5 };
        assert!(matches!(merge_batch(&[big], inside), Err(AccountStoreError::BatchOverlap { .. })));
        let more = ProvisionBatch { prefix: 1, width: 8, count: 30_000_000 };
        assert_eq!(merge_batch(&[big], more).expect("same prefix extends"), vec![more]);
        let apart = ProvisionBatch { prefix: 2, width: 7, count: 5 };
        assert_eq!(merge_batch(&[big], apart).expect("disjoint"), vec![big, apart]);
    }

    #[test]
    fn corrupt_files_are_reported_not_trusted() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join(SECRET_FILE), b"short").expect("write");
        assert!(matches!(AccountStore::open(&dir), Err(AccountStoreError::SecretSize { len: 5, .. })));
        fs::write(dir.join(SECRET_FILE), [1u8; 32]).expect("write");
        fs::write(dir.join(USERS_FILE), "batch 1 x 3\n").expect("write");
        let error = AccountStore::open(&dir).expect_err("bad users file");
        assert!(error.to_string().contains("line 1"), "{error}");
        let _ = fs::remove_dir_all(&dir);
    }
}
