//! mc-bench: the load generator, micro-benchmarks and the development GC.
//!
//! - [`loadgen`]: `mc-loadgen`, the bundled load generator (issue 6, bench/README.md).
//! - [`devgc`]: `mc-devgc`, a development Global Controller (gc-api.md).

pub mod devgc;
pub mod loadgen;
