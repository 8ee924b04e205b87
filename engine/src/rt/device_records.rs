//! Each core's device-record task: takes the device generations its shard decided
//! (`Shard::poll_device_records`), appends and syncs them to the core's device log on the executor's blocking
//! thread, and reports each back (`handle_device_recorded`, or `handle_device_record_failed`), which releases
//! REGISTERED (or REGISTER_REFUSED). The executor thread never waits on the disk: it goes on serving while the
//! write and sync run.
//!
//! Owns only the move of records to the blocking thread and back. Which generation, and what the client is
//! told, are the shard's; the file format is `account::DeviceLog`'s. One batch at a time per core, so each
//! core's file is appended in the order its shard made the records.

use std::rc::Rc;
use std::sync::Arc;

use crate::data_dir::DeviceLog;
use ringline_core::shard::DeviceRecord;

use super::context::CoreContext;
use super::durable_write::unpin_this_thread;

/// Runs until the process exits.
pub async fn run_device_records(core: Rc<CoreContext>, log: Arc<DeviceLog>) {
    let index = core.shard.borrow().id().index();
    let mut batch: Vec<DeviceRecord> = Vec::new();
    loop {
        core.device_wake.wait().await;
        loop {
            core.shard.borrow_mut().poll_device_records(&mut batch);
            if batch.is_empty() {
                break;
            }
            let lines: Vec<_> = batch.iter().map(|record| (record.phone, record.generation)).collect();
            let log = log.clone();
            let written = glommio::executor()
                .spawn_blocking(move || {
                    unpin_this_thread();
                    log.record(index, &lines)
                })
                .await;
            if let Err(error) = &written {
                tracing::warn!(core = index, %error, records = batch.len(), "cannot append to the device log");
            }
            let now = core.now();
            {
                let mut shard = core.shard.borrow_mut();
                for record in batch.drain(..) {
                    match written {
                        Ok(()) => shard.handle_device_recorded(record, now),
                        Err(_) => shard.handle_device_record_failed(record, now),
                    }
                }
            }
            core.record_shutdown_progress();
            core.dispatch();
        }
    }
}
