//! `mc-loadgen`: capacity testing for mc-service. See bench/README.md.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = mc_bench::loadgen::Cli::parse();
    std::process::ExitCode::from(mc_bench::loadgen::main_with(cli))
}
