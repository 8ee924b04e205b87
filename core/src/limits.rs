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

/// Free buffers a core's pool keeps when it trims its memory (`MEMORY_TRIM_INTERVAL`): enough for the
/// connections that become busy in one round without allocating, far below `POOLED_BUFFERS_MAX`.
pub const POOLED_BUFFERS_RESERVE: usize = 16;

/// How often each core gives back memory a burst left behind: it frees pooled buffers beyond
/// `POOLED_BUFFERS_RESERVE`, shrinks oversized tables and queues (`memory_trim`) and asks the allocator to
/// return freed pages to the OS (forcefully only when the core has been quiet since the last trim). Often
/// enough that the memory of a burst is back within seconds, rare enough that its cost (O(entries) of the
/// containers it shrinks, and a walk of the core's allocator heap) does not show under load.
pub const MEMORY_TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Containers with room for at most this many entries are never shrunk: too small to matter, and shrinking
/// them would only make the next burst allocate again.
pub const MEMORY_TRIM_CAPACITY_MIN: usize = 1024;

/// A container with room for more than this many times its length is shrunk (to twice its length).
pub const MEMORY_TRIM_SLACK_FACTOR: usize = 4;

const _: () = assert!(POOLED_BUFFERS_RESERVE <= POOLED_BUFFERS_MAX);
const _: () = assert!(MEMORY_TRIM_SLACK_FACTOR > 2, "a shrunk container (twice its length) is not oversized");
const _: () = assert!(MEMORY_TRIM_INTERVAL.as_millis() >= TICK_INTERVAL.as_millis());

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

/// Connections one core holds at most; past it a new connection is closed at once, without a frame (and
/// logged). Far above what a core's file descriptors allow.
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

/// Messages delivered to one user and not yet READ that the user's home core remembers (server id → sender),
/// so that a READ is honoured only from the message's recipient, once. 1,024 is two full delivery windows
/// (`DELIVERY_WINDOW_MAX`), more than a client shows unread at once; a READ for an older unread message is
/// refused (the sender gets no Read receipt for it), and one user cannot take a core's whole memory.
pub const UNREAD_PER_USER_MAX: usize = 1024;

/// Messages delivered and not yet READ remembered per core, all users together: 262,144 entries of 24 bytes
/// plus a 16-byte place in the eviction order, about 10 MiB per core (at most twice the order records between
/// sweeps); past it the core's oldest unread message goes first.
pub const UNREAD_PER_SHARD_MAX: usize = 1 << 18;

/// SENDs remembered per core for deduplicating retries.
pub const DEDUP_ENTRIES_PER_SHARD_MAX: usize = 2 * 1024 * 1024;

/// How long a SEND's client id is remembered for deduplicating retries.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(600);

/// Default time a new connection has to complete HELLO.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Default time without any frame from a client after which it is closed (GOAWAY IdleTimeout).
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(180);

/// Default shortest time between two readiness wake-ups of a core (`--io-coalesce`): at 20,000 msgs/s over
/// 100,000 connections it halved the ACK p99 (results/engine/README.md, "Wake-up coalescing").
pub const IO_COALESCE_DEFAULT: Duration = Duration::from_millis(1);
/// Largest `--io-coalesce`: beyond it the delay itself would dominate the latency.
pub const IO_COALESCE_MAX: Duration = Duration::from_millis(100);

/// How often each core runs its timers (timeouts, expiry).
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

/// Default grace period for a SIGTERM shutdown before remaining connections are closed hard.
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(10);
/// How long after the grace a core may make no progress (nothing left changes) before the server gives up
/// with an error naming what each core still waits for.
pub const SHUTDOWN_STUCK_AFTER: Duration = Duration::from_secs(10);
/// How often the main thread logs what a shutdown still waits for.
pub const SHUTDOWN_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the main thread looks at the cores while it waits for them.
pub const SHUTDOWN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Default listen backlog per core (glommio's own `bind` is fixed at 1024).
pub const LISTEN_BACKLOG_DEFAULT: u32 = 65_535;

/// How often each core publishes its metrics snapshot and checks its alert thresholds. The snapshot sums the
/// outbound buffers of all connections (O(connections)), so it runs once a second, not every tick.
pub const METRICS_PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Default alert threshold: offline queue items (messages and receipts) on one core: a million, what 100 users
/// at their `OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT` hold. A backlog worth a look, not an outage.
pub const ALERT_OFFLINE_MESSAGES_DEFAULT: u64 = 100 * OFFLINE_QUEUE_MESSAGES_MAX_DEFAULT as u64;

/// Default alert threshold: offline queue body bytes on one core, a quarter of `CORE_QUEUE_BYTES_MAX_DEFAULT`
/// (past it SENDs start being refused with ServerQueueFull; the alert comes well before).
pub const ALERT_OFFLINE_BYTES_DEFAULT: u64 = CORE_QUEUE_BYTES_MAX_DEFAULT / 4;

/// Default alert threshold: messages waiting for one peer core (outbox plus channel), half of
/// `MESH_OUTBOX_REQUESTS_MAX` (at which connections start being paused).
pub const ALERT_CHANNEL_DEPTH_DEFAULT: u64 = MESH_OUTBOX_REQUESTS_MAX as u64 / 2;

/// Default alert threshold: outbound bytes of one core's connections, 64 stalled readers at their
/// `OUTBOUND_BYTES_MAX`.
pub const ALERT_OUTBOUND_BYTES_DEFAULT: u64 = 64 * OUTBOUND_BYTES_MAX as u64;

const _: () = assert!(ALERT_OFFLINE_BYTES_DEFAULT < CORE_QUEUE_BYTES_MAX_DEFAULT);
const _: () = assert!(ALERT_CHANNEL_DEPTH_DEFAULT < MESH_OUTBOX_REQUESTS_MAX as u64);
const _: () = assert!(METRICS_PUBLISH_INTERVAL.as_millis() >= TICK_INTERVAL.as_millis());
/// Default size of a log segment file. Compaction reclaims whole segments, so this is also about the disk a
/// core's log uses beyond what is pending.
pub const LOG_SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Largest `--log-segment-bytes`.
pub const LOG_SEGMENT_BYTES_MAX: u64 = 1 << 40;

/// Default interval of log writes under `--durability async`: the most ACKed messages a crash may lose.
pub const LOG_FLUSH_INTERVAL_DEFAULT: Duration = Duration::from_millis(10);

/// Largest log record replay accepts: a message record holds a SEND body, which is under a frame, which is
/// under `OUTBOUND_BYTES_MAX`; plus the record's own fields.
pub const LOG_RECORD_BYTES_MAX: usize = OUTBOUND_BYTES_MAX + 64;

/// Time between retries of a failed log write (disk full, I/O error); SENDs are refused meanwhile.
pub const LOG_RETRY_INTERVAL: Duration = Duration::from_millis(100);

const _: () = assert!(OUTBOUND_BYTES_MAX >= FRAME_SIZE_MAX_DEFAULT + wire::LENGTH_PREFIX_BYTES);
const _: () = assert!(READ_BUFFER_BYTES >= wire::FRAME_SIZE_MAX_MIN);
const _: () = assert!(MESH_BATCH_MESSAGES_MAX <= MESH_OUTBOX_REQUESTS_MAX);
const _: () = assert!(CORES_MAX <= u16::MAX as usize);
const _: () = assert!(CONNECTIONS_PER_SHARD_MAX < u32::MAX as usize);
const _: () = assert!(SENDER_RECEIPTS_MAX > DELIVERY_WINDOW_MAX);
const _: () = assert!(UNREAD_PER_USER_MAX >= 2 * DELIVERY_WINDOW_MAX);
const _: () = assert!(UNREAD_PER_SHARD_MAX >= 256 * UNREAD_PER_USER_MAX);

/// Default time a TLS connection has, from accept, to complete its TLS handshake (`--tls-handshake-timeout`).
/// The HELLO deadline (`--handshake-timeout`) also counts from accept, so a TLS client must finish both
/// within it.
pub const TLS_HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// TLS handshakes one core has in progress at once. At the limit the core stops accepting on its TLS
/// listener (new connections wait in the kernel's backlog) until handshakes finish or time out, so
/// connections that never finish (slowloris) cost at most this many rustls states (a few KiB each) per core
/// and never delay plain connections or established ones.
pub const TLS_HANDSHAKES_IN_PROGRESS_PER_CORE_MAX: usize = 4096;

/// Bytes of incomplete TLS records one connection may hold between reads. rustls bounds a record to
/// 16 KiB + 2 KiB and a handshake message to 64 KiB, and a read adds at most `READ_BUFFER_BYTES`; past this
/// the connection fails.
pub const TLS_INCOMPLETE_BYTES_MAX: usize = 64 * 1024 + 16 * 1024 + READ_BUFFER_BYTES;

/// TLS 1.2 sessions (by session id, for clients without tickets) remembered for resumption, process-wide.
/// TLS 1.3 and ticket-capable TLS 1.2 clients resume from stateless tickets and cost nothing here.
pub const TLS12_SESSION_CACHE_ENTRIES: usize = 4096;

/// Session tickets sent after each TLS 1.3 handshake (rustls' default): a client reconnecting uses one per
/// resumption and gets new ones each time, and a spare covers a connection lost right after its handshake.
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 2;

/// Default interval between checks of the certificate and key files for a change (a change reloads them,
/// like SIGHUP). `--tls-cert-check-interval 0` checks only on SIGHUP.
pub const TLS_CERT_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);

/// How often the reload thread looks for SIGHUP.
pub const TLS_RELOAD_SIGNAL_POLL: Duration = Duration::from_millis(100);

const _: () = assert!(TLS_INCOMPLETE_BYTES_MAX > 64 * 1024 + READ_BUFFER_BYTES);

/// How long a registration PIN stays valid by default (`--pin-ttl`).
pub const PIN_TTL_DEFAULT: Duration = Duration::from_secs(10 * 60);

/// Wrong PINs one pending PIN survives; the next wrong one voids it (a 6-digit PIN then falls to a guesser
/// with probability 5 in a million per PIN requested, and requests are limited too).
pub const PIN_ATTEMPTS_MAX: u8 = 5;

/// PIN requests one phone may make per registration window.
pub const PIN_REQUESTS_PER_PHONE_MAX: u8 = 5;

/// Registration requests plus wrong PINs one source address may make per registration window. Generous for
/// a carrier NAT, far too few to guess PINs across many phones.
pub const REGISTRATION_SOURCE_ACTIONS_MAX: u32 = 200;

/// The window of the per-phone and per-source registration counts.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Phones in registration (pending PIN or counted requests) one core tracks; past it, REGISTER_REFUSED
/// (Unavailable) until the sweep frees room.
pub const REGISTRATION_PHONES_PER_SHARD_MAX: usize = 1 << 20;

/// Device generations one core has decided and not yet made durable (each waits for its append and sync to
/// the device log on the blocking thread, one batch at a time); past it, REGISTER_REFUSED (Unavailable) until
/// the disk catches up. Registrations reach a core at the rate of correct PINs, far below this; the bound is
/// for a disk that stalls.
pub const DEVICE_RECORDS_PENDING_MAX: usize = 4096;

const _: () = assert!(DEVICE_RECORDS_PENDING_MAX <= REGISTRATION_PHONES_PER_SHARD_MAX);

/// Source addresses one core tracks for registration limits.
pub const REGISTRATION_SOURCES_PER_SHARD_MAX: usize = 1 << 20;

/// PINs waiting for the PIN sender's worker; past it, REGISTER_REFUSED (Unavailable).
pub const PIN_SEND_QUEUE_MAX: usize = 4096;

/// How long a `command:` PIN sender may run before it is killed.
pub const PIN_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Admin requests (`ringline admin`) one core holds at once: answers not yet taken by the runtime and
/// revocations waiting for their device record. Past it, the answer is `AdminRefusal::Busy`. Operators type
/// these; the bound is for a script in a loop against a stalled disk.
pub const ADMIN_REQUESTS_PENDING_MAX: usize = 64;

/// Admin requests waiting in one core's channel for its next tick; past it, the control socket answers
/// "busy" at once instead of queueing.
pub const ADMIN_CHANNEL_CAPACITY: usize = 16;

/// How long the control socket waits for a core's answer before it answers with a timeout error. A tick
/// (`TICK_INTERVAL`) and a device-log sync fit many times over.
pub const ADMIN_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of one request line on the control socket; a longer line is an error answer and the connection
/// is closed.
pub const ADMIN_REQUEST_LINE_BYTES_MAX: usize = 4096;

const _: () = assert!(ADMIN_CHANNEL_CAPACITY <= ADMIN_REQUESTS_PENDING_MAX);
const _: () = assert!(ADMIN_REQUESTS_PENDING_MAX <= DEVICE_RECORDS_PENDING_MAX);
