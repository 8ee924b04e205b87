//! Every limit in the engine, with why it has its value. Owns the numbers only; the modules that enforce them
//! say what happens at the limit (backpressure or an explicit refusal), and configurable ones have a default
//! here and a flag in `config.rs`. The `const` assertions relate limits that depend on each other.

use std::time::Duration;

/// Default largest frame (after the length prefix) a client may send: 64 KiB, the protocol's default.
pub const FRAME_SIZE_MAX_DEFAULT: usize = wire::FRAME_SIZE_MAX_DEFAULT;

/// Bytes of the per-core read buffer shared by every connection of the core. A connection reads into it only
/// while it is being polled, so an idle connection owns no read buffer.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Reads of one connection in one visit before it goes to the back of the core's ready queue (fairness).
pub const READS_PER_POLL_MAX: usize = 4;

/// Readiness events a core takes from epoll at once (one round of its I/O loop).
pub const EPOLL_EVENTS_PER_ROUND_MAX: usize = 1024;

/// Connections a core serves in one round of its I/O loop before it lets its other tasks (mesh, timers) run.
pub const CONNECTIONS_SERVED_PER_ROUND_MAX: usize = 1024;

/// Connections a core accepts in one round of its I/O loop.
pub const ACCEPTS_PER_ROUND_MAX: usize = 256;

/// Sockets of one core closing gracefully (FIN sent, late input discarded) at once; past it they close at
/// once. Also bounds the linger deadline queue.
pub const LINGERING_PER_CORE_MAX: usize = 16 * 1024;

/// How long a closing socket is kept to discard late input, so its last frame is not destroyed by a reset.
pub const LINGER_DURATION: Duration = Duration::from_secs(2);

/// Late input one closing socket may send before it is closed anyway.
pub const LINGER_DISCARD_BYTES_MAX: usize = 64 * 1024;

/// Outbound bytes queued for one connection above which the server writes no further deliveries to it and
/// stops reading from it until the client drains them. Messages that do not fit stay in the user's queue.
pub const OUTBOUND_BYTES_MAX: usize = 256 * 1024;

/// Capacity of a new buffer from a core's buffer pool (outbound bytes, partial frames): room for a burst of
/// small frames to one connection (a WELCOME is 19 bytes, a DELIVER of a 64-byte body 93); it grows when
/// more is queued, and goes back to the pool up to `POOLED_BUFFER_BYTES_MAX`.
pub const POOLED_BUFFER_BYTES: usize = 1024;

/// A buffer that grew past this is freed when it empties instead of going back to the pool.
pub const POOLED_BUFFER_BYTES_MAX: usize = 16 * 1024;

/// Free buffers a core's pool keeps: at most 2 MiB per core (`POOLED_BUFFER_BYTES_MAX` each), and only as
/// many as were busy at once.
pub const POOLED_BUFFERS_MAX: usize = 128;

/// Items (messages and receipts) written to one connection and not yet acknowledged with DELIVERED.
pub const DELIVERY_WINDOW_MAX: usize = 512;

/// SENDs of one connection that wait for the recipient's home core; past it the connection is not read.
pub const SEND_INFLIGHT_MAX: u32 = 1024;

/// Batches that may wait in one ordered core-pair channel.
pub const MESH_CHANNEL_CAPACITY: usize = 64;

/// Messages in one cross-core batch. Batching amortises the channel's cross-thread wake-up.
pub const MESH_BATCH_MESSAGES_MAX: usize = 512;

/// Requests waiting for one peer core above which connections that want to add more are not read
/// (backpressure). Responses are never held back by this limit: they are bounded by the peer's requests.
pub const MESH_OUTBOX_REQUESTS_MAX: usize = 8 * 1024;

/// Connections one core holds at most; past it new connections get ERROR(Overloaded).
pub const CONNECTIONS_PER_SHARD_MAX: usize = 4 * 1024 * 1024;

/// Cores (shards) one engine process runs at most.
pub const CORES_MAX: usize = 1024;

/// Default per-user queue limit in messages.
pub const OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT: usize = 10_000;

/// Default per-user queue limit in body bytes.
pub const OFFLINE_QUEUE_BYTES_MAX_DEFAULT: u64 = 16 * 1024 * 1024;

/// Default age after which an undelivered message is dropped and its sender told (RECEIPT Expired).
pub const OFFLINE_AGE_MAX_DEFAULT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default limit on queued body bytes across all users of one core.
pub const CORE_QUEUE_BYTES_MAX_DEFAULT: u64 = 4 * 1024 * 1024 * 1024;

/// Receipts queued for one user, not yet acknowledged, above which the user's SENDs are refused
/// (SenderBacklogFull). This bounds the receipts a user who never reads them can pile up.
pub const SENDER_RECEIPTS_MAX: usize = 20_000;

/// SENDs remembered per core for deduplicating retries.
pub const DEDUP_ENTRIES_PER_SHARD_MAX: usize = 2 * 1024 * 1024;

/// How long a SEND's client id is remembered for deduplicating retries.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(600);

/// Default time a new connection has to complete HELLO.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Default time without any frame from a client after which it is closed (GOAWAY IdleTimeout).
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(180);

/// How often each core runs its timers (timeouts, expiry).
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Default grace period for a SIGTERM shutdown before remaining connections are closed hard.
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);

/// Default listen backlog per core (glommio's own `bind` is fixed at 1024).
pub const LISTEN_BACKLOG_DEFAULT: u32 = 65_535;

const _: () = assert!(OUTBOUND_BYTES_MAX >= FRAME_SIZE_MAX_DEFAULT + wire::LENGTH_PREFIX_BYTES);
const _: () = assert!(READ_BUFFER_BYTES >= wire::FRAME_SIZE_MAX_MIN);
const _: () = assert!(MESH_BATCH_MESSAGES_MAX <= MESH_OUTBOX_REQUESTS_MAX);
const _: () = assert!(CORES_MAX <= u16::MAX as usize);
const _: () = assert!(CONNECTIONS_PER_SHARD_MAX < u32::MAX as usize);
const _: () = assert!(SENDER_RECEIPTS_MAX > DELIVERY_WINDOW_MAX);
