//! Generates the signaling protobuf types (docs/protocol.md) with prost-build.
//!
//! The `.proto` is compiled by `protox` (pure Rust), so a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTO: &str = "proto/signaling.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([PROTO], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
