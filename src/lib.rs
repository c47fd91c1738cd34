//! tcpsim: simulated TCP connections at scale. The layers depend downward only:
//!
//! - [`tcp`]: the protocol core, sans-IO: endpoints, a pair on a wire, an EXTERNAL endpoint.
//! - [`table`]: millions of connections: the map, timer wheels, clock, addresses and ports,
//!   counters. Uses the core; knows nothing of gRPC.
//! - [`service`]: the gRPC API over the table (tonic glue: proto ↔ domain, errors ↔ `Status`).
//! - [`metrics`]: the Prometheus exposition of the table's counters and the API's calls.
//! - [`server`]: a table, its clock driver, the service, health, reflection and shutdown.
//! - [`state`]: the state file, a whole simulation written atomically and read back.
//! - [`client`]: reaching a server (target, TLS, token, health), for the tools below.
//! - [`load`]: `tcpsim load`, scenario files of phases run against servers.
//! - [`conformance`]: plays scenarios recorded from Linux against the core, the table or a
//!   server.

pub mod client;
pub mod conformance;
pub mod load;
pub mod metrics;
mod mix;
pub mod server;
pub mod service;
pub mod state;
pub mod table;
pub mod tcp;
