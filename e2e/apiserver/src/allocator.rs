//! Cluster IP and node port allocation, like the real server's service allocators.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 service range (the kubeadm default).
pub const SERVICE_CIDR_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 96, 0, 0), 12);
/// The IPv6 service range (kind's default shape).
pub const SERVICE_CIDR_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0), 112);
/// The node port range.
pub const NODE_PORTS: (u16, u16) = (30000, 32767);

/// An IP family of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The `ipFamilies` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    /// The service range of this family as text.
    pub fn cidr_text(self) -> String {
        match self {
            Family::V4 => format!("{}/{}", SERVICE_CIDR_V4.0, SERVICE_CIDR_V4.1),
            Family::V6 => format!("{}/{}", SERVICE_CIDR_V6.0, SERVICE_CIDR_V6.1),
        }
    }
}

/// Why an explicitly requested IP or port cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Outside the range.
    OutOfRange,
    /// Held by another object.
    InUse,
    /// Nothing left to hand out.
    Exhausted,
}

/// A resource handed out by an allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// A cluster IP.
    Ip(IpAddr),
    /// A node port (shared by all protocols, a simplification).
    Port(u16),
}

/// The allocation state of all Services.
#[derive(Debug, Default)]
pub struct Allocators {
    ips: HashSet<IpAddr>,
    ports: HashSet<u16>,
}

fn range_size(family: Family) -> u128 {
    match family {
        Family::V4 => 1u128 << (32 - SERVICE_CIDR_V4.1),
        Family::V6 => 1u128 << (128 - SERVICE_CIDR_V6.1),
    }
}

fn offset_to_ip(family: Family, offset: u128) -> IpAddr {
    match family {
        Family::V4 => {
            let base = u32::from(SERVICE_CIDR_V4.0) as u128;
            IpAddr::V4(Ipv4Addr::from(((base + offset) & 0xffff_ffff) as u32))
        }
        Family::V6 => IpAddr::V6(Ipv6Addr::from(u128::from(SERVICE_CIDR_V6.0) + offset)),
    }
}

fn ip_offset(ip: &IpAddr) -> Option<u128> {
    match ip {
        IpAddr::V4(v4) => {
            let base = u32::from(SERVICE_CIDR_V4.0);
            let off = u32::from(*v4).checked_sub(base)? as u128;
            (off < range_size(Family::V4)).then_some(off)
        }
        IpAddr::V6(v6) => {
            let off = u128::from(*v6).checked_sub(u128::from(SERVICE_CIDR_V6.0))?;
            (off < range_size(Family::V6)).then_some(off)
        }
    }
}

impl Allocators {
    /// Takes a specific IP; the network and broadcast addresses are never valid.
    pub fn take_ip(&mut self, ip: IpAddr) -> Result<Grant, Refusal> {
        let family = Family::of(&ip);
        let off = ip_offset(&ip).ok_or(Refusal::OutOfRange)?;
        if off == 0 || (family == Family::V4 && off == range_size(family) - 1) {
            return Err(Refusal::OutOfRange);
        }
        if !self.ips.insert(ip) {
            return Err(Refusal::InUse);
        }
        Ok(Grant::Ip(ip))
    }

    /// Allocates a free IP of a family from the upper band (the lower band is kept for static
    /// requests, as the real allocator prefers).
    pub fn allocate_ip(&mut self, family: Family) -> Result<Grant, Refusal> {
        let size = range_size(family);
        let last = if family == Family::V4 {
            size - 2
        } else {
            size - 1
        };
        let band = (size / 16).clamp(16, 256);
        let (lo, hi) = if band < last { (band, last) } else { (1, last) };
        let span = hi - lo + 1;
        let start = lo + (fastrand::u64(..) as u128 % span);
        for probe in [
            (start, hi),
            (lo, start.saturating_sub(1)),
            (1, lo.saturating_sub(1)),
        ] {
            let mut off = probe.0;
            while off <= probe.1 && off >= 1 {
                let ip = offset_to_ip(family, off);
                if self.ips.insert(ip) {
                    return Ok(Grant::Ip(ip));
                }
                off += 1;
            }
        }
        Err(Refusal::Exhausted)
    }

    /// Takes a specific node port.
    pub fn take_port(&mut self, port: u16) -> Result<Grant, Refusal> {
        if !(NODE_PORTS.0..=NODE_PORTS.1).contains(&port) {
            return Err(Refusal::OutOfRange);
        }
        if !self.ports.insert(port) {
            return Err(Refusal::InUse);
        }
        Ok(Grant::Port(port))
    }

    /// Allocates a free node port.
    pub fn allocate_port(&mut self) -> Result<Grant, Refusal> {
        let span = u32::from(NODE_PORTS.1 - NODE_PORTS.0) + 1;
        let start = fastrand::u32(..span);
        for i in 0..span {
            let port = NODE_PORTS.0 + ((start + i) % span) as u16;
            if self.ports.insert(port) {
                return Ok(Grant::Port(port));
            }
        }
        Err(Refusal::Exhausted)
    }

    /// Gives a grant back.
    pub fn release(&mut self, grant: Grant) {
        match grant {
            Grant::Ip(ip) => {
                self.ips.remove(&ip);
            }
            Grant::Port(p) => {
                self.ports.remove(&p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_ips_are_unique_and_inside_the_range() {
        let mut a = Allocators::default();
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let Grant::Ip(ip) = a.allocate_ip(Family::V4).unwrap() else {
                panic!()
            };
            assert!(ip_offset(&ip).is_some(), "{ip}");
            assert!(seen.insert(ip), "{ip} twice");
        }
    }

    #[test]
    fn a_taken_ip_or_port_is_refused_until_released() {
        let mut a = Allocators::default();
        let ip: IpAddr = "10.96.0.10".parse().unwrap();
        let g = a.take_ip(ip).unwrap();
        assert_eq!(a.take_ip(ip), Err(Refusal::InUse));
        a.release(g);
        assert!(a.take_ip(ip).is_ok());
        assert_eq!(
            a.take_ip("192.168.0.1".parse().unwrap()),
            Err(Refusal::OutOfRange)
        );
        assert_eq!(a.take_port(80), Err(Refusal::OutOfRange));
        a.take_port(30080).unwrap();
        assert_eq!(a.take_port(30080), Err(Refusal::InUse));
    }

    #[test]
    fn node_ports_run_out_after_the_whole_range() {
        let mut a = Allocators::default();
        for _ in NODE_PORTS.0..=NODE_PORTS.1 {
            a.allocate_port().unwrap();
        }
        assert_eq!(a.allocate_port(), Err(Refusal::Exhausted));
    }
}
