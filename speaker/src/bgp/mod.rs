//! Native BGP mode (SPEC A7, A8): one session per matching peer, IPv4 and
//! IPv6 Service prefixes announced to routers.
//!
//! The pure core: [`prefixes`] (what this node announces to which peer, from
//! a snapshot), [`message`] and [`update`] (the wire format, on zettabgp's
//! encoders; received bytes are checked by our own code so that no peer can
//! crash the speaker), [`fsm`] (the session state machine: events in,
//! actions out) and [`backoff`]. The edges: [`session`] (one tokio task per
//! peer running the state machine on a TCP socket), [`md5`] (TCP MD5
//! signatures), [`manager`] ([`BgpSpeaker`], which the daemon calls with the
//! desired state) and [`metrics`].

pub mod backoff;
pub mod fsm;
pub mod manager;
pub mod md5;
pub mod message;
pub mod metrics;
pub mod prefixes;
pub mod session;
pub mod update;

pub use manager::{BgpSpeaker, PeerSecrets};
pub use metrics::BgpMetrics;
pub use prefixes::{BgpDesired, PeerDesired, RouteAttributes, desired_bgp};
