//! The generated protobuf types and service stubs (`proto/tcpsim/v1/simulator.proto`).
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("tcpsim.v1");

/// The encoded descriptor set, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tcpsim_descriptor.bin"));
