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
    tonic_prost_build::configure().compile_fds(fds)?;
    // The benchmarks' echo baseline; only benches/api.rs includes it.
    let bench = "proto/bench/echo.proto";
    println!("cargo:rerun-if-changed={bench}");
    tonic_prost_build::configure().compile_fds(protox::compile([bench], ["proto"])?)?;
    Ok(())
}
