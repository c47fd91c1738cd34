//! The protocol core: RFC 9293 endpoints, sans-IO.
//!
//! Owns every protocol decision: states, sequence numbers, what to send, which timer to arm.
//! Must never read a clock, spawn, lock or touch a map: callers pass `now` (milliseconds on their
//! clock) into each call, read the armed deadline back with [`Endpoint::timer`], and call
//! [`Endpoint::on_timeout`] when it falls due. Everything above this module is a driver.
//!
//! - [`endpoint`]: one endpoint, its user calls, SEGMENT ARRIVES and its timers.
//! - [`pair`]: a client and a server joined by a wire, in AUTO or MANUAL delivery.
//! - [`external`]: one endpoint whose peer is the caller (EXTERNAL).
//!
//! Where this follows Linux rather than a plain reading of RFC 9293 is listed in the README,
//! section "Deviations from RFC 9293".

pub mod config;
pub mod endpoint;
pub mod external;
pub mod link;
pub mod observe;
pub mod pair;
pub mod profile;
pub mod segment;
pub mod seq;
pub mod state;

pub use config::{Config, ConfigError, Overrides};
pub use endpoint::{Call, ChildVerdict, Endpoint, Error, Output, Recorder, SynVerdict};
pub use external::External;
pub use link::{InFlight, InFlightQueue, Link, LinkEvent};
pub use observe::{Log, Observer};
pub use pair::{Direction, Pair, Side};
pub use profile::{Profile, ProfileName};
pub use segment::{Flags, Segment};
pub use seq::SeqNum;
pub use state::{Cause, State, Timer, TimerKind, Transition};
