//! ringline-loadgen: capacity testing for ringline and other chat servers. A controller spawns or drives
//! agents; each agent holds up to RLIMIT_NOFILE client connections on one plain OS thread per core (pinned to
//! a CPU), each running one edge-triggered epoll loop (mio) over its share of the sockets, and reports to the
//! controller.
//!
//! This library holds the sans-IO layers (tested without sockets): `client` (the `ChatDriver` seam, the native
//! and XMPP drivers, TLS, message bodies), `ledger`, `latency`, `schedule`, `stages` and `load_profile` (staged
//! load profiles), `scenario_file` (`--scenario FILE.toml`), `workload_mix`, `contacts`, `control`, `report`, `outputs` (the hlog, hgrm, CSV and HTML files),
//! `source_addr`, `memory_floor`, `error_kind`, `limits`, and the command line (`cli`). The runtime layers are
//! in the binary (`main.rs`): `agent/` (threads, sockets), `controller/` (processes, aggregation, output),
//! `engine_process` (spawning `ringline serve`), `machine` (/proc facts), `plot`.

pub mod cli;
pub mod client;
pub mod contacts;
pub mod control;
pub mod error_kind;
pub mod handshake;
pub mod latency;
pub mod ledger;
pub mod limits;
pub mod load_profile;
pub mod memory_floor;
pub mod outputs;
pub mod report;
pub mod scenario_file;
pub mod schedule;
pub mod source_addr;
pub mod stages;
pub mod workload_mix;
