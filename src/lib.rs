//! tcpsim: simulated TCP connections at scale.
//!
//! - [`tcp`]: the protocol core (sans-IO RFC 9293 endpoints, pairs, the wire).
//! - [`conformance`]: runs recorded Linux scenarios against the core.

pub mod conformance;
pub mod load;
pub mod metrics;
pub mod server;
pub mod service;
pub mod table;
pub mod tcp;
