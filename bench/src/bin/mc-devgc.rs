//! `mc-devgc`: the development Global Controller (see `mc_bench::devgc`).

fn main() -> anyhow::Result<()> {
    mc_bench::devgc::main()
}
