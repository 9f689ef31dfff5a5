//! mc-bench: the bundled load generator (`mc-loadgen`, see [`loadgen`]), micro-benchmarks
//! and a development GC for mc-service.

pub mod loadgen;
