//! Deterministic simulation of ringline's shards without sockets: `harness` is the simulated runtime
//! (clients, clock, mesh, hand-offs, partial I/O), `scenarios` the protocol behaviours one by one, and
//! `property` the seeded randomized runs with whole-system invariants. `RINGLINE_SEED=n` replays one seed.

mod harness;
mod property;
mod scenarios;
