//! ringline's engine: the messaging edge server's runtime and command line, one shard per core,
//! shared-nothing by home core. What a core knows and decides is `ringline_core`'s (sans-IO); this crate
//! performs its effects on glommio, sockets, files and threads.
//!
//! Map (docs/ARCHITECTURE.md has the whole picture):
//! - `admin_protocol`, `admin_client`: the control socket's JSON lines, and `ringline admin`, its client.
//! - `config`: the `serve` command line, turned into per-core configuration.
//! - `data_dir`: the account files of the data directory (provisioned users, key secret, device log).
//! - `driver`: what drives the shard, generic over its host so the simulator runs it too (`driver::connection`:
//!   one visit to a connection).
//! - `tls_files`: the TLS files: the certificate pair read from PEM files, the development certificate written.
//! - `top`: the `ringline top` client: scrape, parse, rates, table.
//! - `driver`: the one place that turns the shard's outputs into effects, generic over the I/O: `rt` and the
//!   simulator run it.
//! - `rt`: the only code that touches glommio, sockets, signals and threads.

pub mod admin_client;
pub mod admin_protocol;
pub mod config;
pub mod data_dir;
pub mod driver;
pub mod rt;
pub mod tls_files;
pub mod top;
