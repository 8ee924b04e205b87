//! ringline's native protocol behind the `ChatDriver` seam: `session.rs` is one connection's state machine
//! ([`ClientSession`]) and its `ChatDriver` implementation. It depends on the seam (`client/driver.rs`) and the
//! shared send backlog and keepalive clock, never on another driver, on TLS (which sits under it, unseen) or on
//! the agent.

mod session;

pub use session::{ClientSession, NativeError};
