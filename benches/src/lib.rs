//! ringline's criterion benchmarks live in `benches/` (`cargo bench -p ringline-benches`); the benchmark
//! drivers in `src/bin/` (`login_storm`, `tls_handshakes`, `idle_hold`, `tls_session_bytes`) share the small
//! non-blocking client in `client`. Results go to `results/`.

pub mod client;
