//! ringline-loadgen: capacity testing for ringline. A controller spawns or drives agents; each agent holds up to
//! RLIMIT_NOFILE client connections on one glommio executor per core and reports to the controller.
//!
//! Sans-IO layers (tested without sockets): `body`, `ledger`, `latency`, `schedule`, `session`, `contacts`,
//! `control`, `report`, `source_addr`, `error_kind`, `xmpp` (an XMPP c2s driver), `tls` (the TLS layer under the
//! native driver). Runtime layers: `agent` (glommio, sockets), `controller`
//! (processes, aggregation, output), `engine_process` (spawning `ringline serve`), `plot`.

pub mod body;
pub mod cli;
pub mod contacts;
pub mod control;
pub mod driver;
pub mod error_kind;
pub mod keepalive;
pub mod latency;
pub mod ledger;
pub mod limits;
pub mod memory_floor;
pub mod report;
pub mod schedule;
pub mod send_backlog;
pub mod session;
pub mod source_addr;
pub mod tls;
pub mod xmpp;
