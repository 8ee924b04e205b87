//! ringline's criterion benchmarks live in `benches/` (`cargo bench -p ringline-benches`); this library is
//! empty and exists only because cargo needs a target besides benches. Results go to `results/bench-*/`.
