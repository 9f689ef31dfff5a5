//! mc-bench: the load generator, micro-benchmarks and the development GC.
//!
//! - [`devgc`]: `mc-devgc`, a development Global Controller (gc-api.md).

pub mod devgc;
