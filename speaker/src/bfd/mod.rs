//! Native BFD (RFC 5880 asynchronous mode over RFC 5881 single-hop UDP),
//! the pure core: the control packet codec ([`packet`]) and the per-peer
//! state machine ([`session`]), driven by time passed in. No socket and no
//! clock live here; see docs/bfd.md for what is implemented and what is not.

pub mod packet;
pub mod session;

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
