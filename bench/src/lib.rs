//! mc-bench: the load generator, micro-benchmarks and the development GC.
//!
//! - [`loadgen`]: `mc-loadgen`, the bundled load generator (bench/README.md).
//! - [`devgc`]: `mc-devgc`, a development Global Controller (`docs/gc-api.md`).

pub mod devgc;
pub mod loadgen;
