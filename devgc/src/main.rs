//! `mc-devgc`: the development Global Controller (see the `mc_devgc` library).

fn main() -> anyhow::Result<()> {
    mc_devgc::main()
}
