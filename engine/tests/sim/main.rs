//! Deterministic simulation of ringline's shards without sockets: `harness` is the simulated runtime
//! (clients, clock, mesh, hand-offs, partial I/O; `disk`: each core's log on a simulated disk that a crash
//! tears), `scenarios` the protocol behaviours one by one, `property` the seeded randomized runs with
//! whole-system invariants, and `crash` such runs under kill -9 and restart through the engine's recovery.
//! `RINGLINE_SEED=n` replays one seed.

mod crash;
mod disk;
mod harness;
mod property;
mod scenarios;
