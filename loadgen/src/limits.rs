//! Every bound the load generator puts on a queue, buffer or count, in one place, with why it has its value.
//! Owns no state; modules that hold a queue import its cap from here. Related limits are checked at compile time.

/// File descriptors an agent keeps free for itself (control socket, stdio, /proc reads, the cores' epoll
/// instances) below its RLIMIT_NOFILE: the rest may be client sockets.
pub const FD_HEADROOM: u64 = 100;

/// Retired messages (acked, delivered, receipted) whose item id the ledger still remembers, across all pairs: a
/// crash may redeliver a message whose wipe was not durable yet, moments after its receipt came. 65,536 covers
/// far more than the messages retired in the milliseconds before a crash at the rates one agent core drives, for
/// ~4 MiB at most.
pub const RETIRED_REMEMBERED_MAX: usize = 65_536;

/// Bytes of the per-core read buffer that every connection of the core reads into while it is polled. There is
/// one per core, not one per connection, so idle connections hold no read buffer.
pub const CORE_READ_BUFFER_BYTES: usize = 64 * 1024;

/// Largest frame a client accepts from the server. Loadgen bodies are small; this is the wire default.
pub const FRAME_SIZE_MAX: usize = wire::FRAME_SIZE_MAX_DEFAULT;

/// Bytes a connection keeps of a frame that is split across reads. A whole frame at most.
pub const PARTIAL_FRAME_BYTES_MAX: usize = FRAME_SIZE_MAX + wire::LENGTH_PREFIX_BYTES;

/// Bytes encoded for a connection and not yet written. Past it, new SENDs wait in the connection's backlog.
pub const OUTBOUND_BYTES_MAX: usize = 256 * 1024;

/// Capacity above which a connection's emptied outbound buffer is freed rather than kept, so a burst does not
/// leave an idle connection holding its high-water mark.
pub const OUTBOUND_KEEP_BYTES_MAX: usize = 4096;

/// SENDs a connection has written and not seen ACKed or REJECTed. Past it, new SENDs wait in the backlog; the
/// unacked ones are retried, in order and with the same client_msg_id, after a reconnect.
pub const UNACKED_SENDS_MAX: usize = 1024;

/// SENDs scheduled for a connection that could not be written yet (offline, or the limits above). Past it a
/// scheduled send is refused and counted as `send_backlog_full`: the generator never grows a queue unbounded.
pub const SEND_BACKLOG_MAX: usize = 4096;

/// Sends a core's schedule releases in one tick; the rest stay due (with their scheduled times) for the next
/// tick, so a stalled core catches up without a burst that starves its connections.
pub const SENDS_PER_TICK_MAX: usize = 4096;

/// Connections an agent core starts (ramp slots and reconnects together) in one round of its loop; the rest
/// start in the next round, so a core that fell behind its ramp still serves the connections it has.
pub const CONNECTS_PER_ROUND_MAX: usize = 512;

/// Socket events an agent core takes from epoll in one wait; the rest stay ready for the next wait.
pub const EVENTS_PER_WAIT: usize = 1024;

/// Problems (lost, duplicated, reordered messages) named one by one in a report, per kind; the rest are counted.
pub const PROBLEMS_NAMED_MAX: usize = 10;

/// Progress and final reports a core may have queued for its agent's main thread.
pub const CORE_REPORT_QUEUE_CAPACITY: usize = 64;

/// Bytes of one control-protocol line (a JSON object). The start plan carries the agent's users inline:
/// 20,000 users of ~90 bytes each fit with room to spare.
pub const CONTROL_LINE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Connections (users) one agent core may hold.
pub const CONNECTIONS_PER_CORE_MAX: usize = 1 << 20;

/// Body bytes of a loadgen message: a fixed header plus padding up to this.
pub const BODY_BYTES_MAX: usize = 4096;

/// TLS session tickets one user's connection remembers for its next connect (`--tls`), like a phone: each
/// reconnect takes one, and a full or resumed handshake brings new ones (rustls servers send two). Older ones
/// are dropped past this.
pub const TLS_TICKETS_PER_USER_MAX: usize = 2;

/// Bytes rustls may hold for one connection: plaintext written before the handshake is done, and TLS records
/// not yet taken for the socket (rustls's own `set_buffer_limit`). Past it a connection's plaintext waits in
/// its driver's bounded outbound buffer.
pub const TLS_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// Ciphertext a TLS connection takes from rustls for the socket before the socket has taken what it holds.
/// With TLS_BUFFER_BYTES_MAX it bounds the TLS bytes of one connection.
pub const TLS_CIPHERTEXT_PENDING_BYTES_MAX: usize = 64 * 1024;

/// Bytes of the PEM file of trusted certificates (`--ca`); it travels to every agent in the run plan.
pub const TLS_ROOTS_PEM_BYTES_MAX: usize = 1024 * 1024;

const _: () = assert!(CORE_READ_BUFFER_BYTES >= 4096);
const _: () = assert!(TLS_ROOTS_PEM_BYTES_MAX < CONTROL_LINE_BYTES_MAX / 4);
const _: () = assert!(TLS_TICKETS_PER_USER_MAX >= 1);
const _: () = assert!(PARTIAL_FRAME_BYTES_MAX > FRAME_SIZE_MAX);
const _: () = assert!(BODY_BYTES_MAX + 64 < FRAME_SIZE_MAX);
const _: () = assert!(OUTBOUND_BYTES_MAX >= UNACKED_SENDS_MAX * 64);

/// Stages of one load profile (`--stages`, a scenario file): a profile is a plan a person writes, and each
/// stage becomes a ramp or rate step in every agent's plan.
pub const STAGES_MAX: usize = 64;

/// The longest load profile, µs: a day, as `--duration` allows.
pub const STAGES_DURATION_US_MAX: u64 = 86_400_000_000;
