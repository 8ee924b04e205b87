//! The account files of the data directory: the provisioned users, the key secret and the keys file
//! (`account_store`), and the device generations that registration issued (`device_log`). Reads and writes
//! files, so the executors never call it on their threads except at start (`rt::device_records` moves the
//! device log's appends to a blocking thread). What the files mean is `ringline_core::account`'s; the per-core
//! message log is `ringline_core::wal`'s format, written by `rt::log`.

mod account_store;
mod device_log;

pub use account_store::{AccountStore, AccountStoreError, ProvisionSummary};
pub use device_log::{DeviceGenerations, DeviceLog};
