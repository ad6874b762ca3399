//! Native BFD (RFC 5880 asynchronous mode over RFC 5881 single-hop UDP).
//! The pure core: the control packet codec ([`packet`]), the per-peer
//! state machine ([`session`]), driven by time passed in, and what BFD
//! means for BGP ([`coupling`], RFC 5882). The edges: [`socket`] (UDP with
//! TTL 255 and the received TTL), [`manager`] (one task running every
//! session) and [`metrics`]. See docs/bfd.md.

pub mod coupling;
pub mod manager;
pub mod metrics;
pub mod packet;
pub mod session;
pub mod socket;

use std::ops::RangeInclusive;

/// UDP destination port of single-hop BFD control packets (RFC 5881
/// section 4).
pub const CONTROL_PORT: u16 = 3784;

/// The UDP source ports a single-hop session may send from (RFC 5881
/// section 4); each session needs its own.
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

/// TTL (IPv4) or hop limit (IPv6) of every single-hop packet sent, and the
/// only value accepted on receive when authentication is not in use (RFC
/// 5881 section 5).
pub const SINGLE_HOP_TTL: u8 = 255;
