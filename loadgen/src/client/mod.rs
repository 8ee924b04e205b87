//! The client side of a chat connection, sans-IO: everything an agent core needs to speak some chat protocol
//! over one socket, and nothing about sockets, timers, threads or accounting (the agent owns those).
//!
//! - `driver.rs` — the seam: the `ChatDriver` trait the agent drives, and the protocol-neutral words
//!   (`SessionEvent`, `OutgoingMessage`, `SendRefused`). It knows no driver.
//! - `native/` — ringline's native protocol (`ClientSession`). `xmpp/` — XMPP c2s (`XmppSession`), for other
//!   chat servers. Each depends on the seam and on the shared pieces below, never on the other or on `tls/`.
//! - `send_backlog.rs`, `keepalive.rs` — what every driver holds: the bounded backlog of scheduled messages
//!   (it numbers their client_msg_ids) and when the next keepalive is due. `body.rs` — what a message body
//!   carries, so the recipient's agent (and its ledger) can check it alone.
//! - `any_driver.rs` — `AnyDriver`, the one driver type an agent core holds per connection (chosen per run by
//!   `--protocol`), and `DriverUser`; the only file that knows every driver.
//! - `tls/` — `--tls`: a layer between the socket and the driver (ciphertext in, plaintext to the driver); the
//!   drivers never see it.
//!
//! Dependencies point one way: `any_driver` → drivers → seam (`driver`, `body`, `send_backlog`,
//! `keepalive`); `tls` → seam only for its outbound buffer rule.

pub mod any_driver;
pub mod body;
pub mod driver;
mod keepalive;
pub mod native;
mod send_backlog;
pub mod tls;
pub mod xmpp;
