//! Health of the engine, sans-IO: latency histograms the shard and runtime fill, the per-core snapshot a core
//! publishes every `METRICS_PUBLISH_INTERVAL`, the queue thresholds with hysteresis that turn a snapshot into
//! alerts, whether the server is ready for traffic (`/readyz`), and the Prometheus text encoding of all
//! cores' snapshots and the process's numbers.
//!
//! Owns no socket, no thread and no clock: the engine's runtime (`ringline::rt::metrics`) captures snapshots on each
//! core's tick, logs alert changes and serves `/metrics` from a plain thread. Invariant: nothing here runs
//! per message except `LatencyHistogram::record` (a bucket search over a small fixed array).

mod alert;
mod encode;
mod health;
mod histogram;
mod snapshot;

pub use alert::{AlertChange, AlertMonitor, AlertThresholds, QueueKind, QueueLevels};
pub use encode::encode_text;
pub use health::{NotReady, ServingStatus};
pub use histogram::LatencyHistogram;
pub use snapshot::{BuildInfo, CoreSnapshot, ProcessResources, ProcessSnapshot};
