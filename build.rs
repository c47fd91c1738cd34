//! Compiles `proto/` with protox (pure Rust: no protoc needed) and writes the encoded descriptor
//! set beside the generated code for server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/tcpsim/v1/simulator.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("tcpsim_descriptor.bin"), fds.encode_to_vec())?;
    // Run's commands and results are moved several times each on their way through tonic: the
    // big variants are boxed so that the common ones (Close, Send, states) stay a few words.
    let mut build = tonic_prost_build::configure().codec_path("crate::service::codec::ProtoCodec");
    for field in [
        ".tcpsim.v1.Command.op.open",
        ".tcpsim.v1.Command.op.inject",
        ".tcpsim.v1.Command.op.wire",
        ".tcpsim.v1.Command.op.get",
        ".tcpsim.v1.CommandResult.result.open",
        ".tcpsim.v1.CommandResult.result.inject",
        ".tcpsim.v1.CommandResult.result.wire",
        ".tcpsim.v1.CommandResult.result.connection",
        ".tcpsim.v1.CommandResult.result.stats",
        ".tcpsim.v1.CommandResult.result.error",
    ] {
        build = build.boxed(field);
    }
    build.compile_fds(fds)?;
    // The benchmarks' echo baseline; only benches/api.rs includes it.
    let bench = "proto/bench/echo.proto";
    println!("cargo:rerun-if-changed={bench}");
    // It uses the service's codec, so that the two streams differ only in what they carry.
    tonic_prost_build::configure()
        .codec_path("tcpsim::service::codec::ProtoCodec")
        .compile_fds(protox::compile([bench], ["proto"])?)?;
    Ok(())
}
