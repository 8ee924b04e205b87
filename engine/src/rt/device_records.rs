//! Each core's device-record task: takes the device generations its shard decided (`Output::RecordDevice`,
//! queued by `rt::effects`), appends and syncs them to the core's device log on the executor's blocking
//! thread, and reports each back (`driver::device_records::recorded`), which releases REGISTERED (or
//! REGISTER_REFUSED). The executor thread never waits on the disk: it goes on serving while the
//! write and sync run.
//!
//! Owns only the move of records to the blocking thread and back. Which generation, and what the client is
//! told, are the shard's; the file format is `account::DeviceLog`'s. One batch at a time per core, so each
//! core's file is appended in the order its shard made the records.

use std::rc::Rc;
use std::sync::Arc;

use crate::data_dir::DeviceLog;
use crate::driver;
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
            std::mem::swap(&mut batch, &mut *core.device_records_out.borrow_mut());
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
            let durable = written.is_ok();
            driver::device_records::recorded(
                &mut core.shard.borrow_mut(),
                &mut core.effects(),
                &mut batch,
                durable,
                now,
            );
            core.record_shutdown_progress();
        }
    }
}
