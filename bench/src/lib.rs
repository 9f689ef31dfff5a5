//! mc-bench: the load generator and micro-benchmarks (the development GC is the
//! `mc-devgc` crate in `devgc/`).
//!
//! - [`loadgen`]: `mc-loadgen`, the bundled load generator (bench/README.md).

pub mod loadgen;
