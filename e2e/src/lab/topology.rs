//! The lab's shape: namespace and interface names, addresses and MACs. Pure: no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::routers::RouterKind;

/// Every lab namespace name starts with this, followed by the owner's pid (see [`prefix_for`]).
pub const NAME_PREFIX: &str = "flb";
/// The LAN's IPv4 subnet (every namespace has its own, so parallel labs reuse it).
pub const LAN_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 4, 0), 24);
/// The LAN's IPv6 subnet.
pub const LAN_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 4, 0, 0, 0, 0, 0, 0), 64);
/// The IPv4 range Services get addresses from; local on every node, on-link for the client.
pub const SERVICE_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 5, 0), 24);
/// The IPv6 range Services get addresses from.
pub const SERVICE_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 5, 0, 0, 0, 0, 0, 0), 64);
/// The port of the API server in the control-plane namespace.
pub const API_PORT: u16 = 6443;
/// The most nodes a lab can have: node addresses .11 up to .99 stop below the client's .100.
pub const MAX_NODES: usize = 89;
/// The name of the LAN-facing interface inside every host namespace.
pub const HOST_IFACE: &str = "eth0";
/// The name of the bridge inside the LAN namespace.
pub const BRIDGE: &str = "br0";

/// Why a topology cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopologyError {
    /// The node count is outside 1..=MAX_NODES.
    #[error("a lab has 1 to {MAX_NODES} nodes, not {0}")]
    NodeCount(usize),
}

/// What a host namespace is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A cluster node (kube-proxy stand-in, TCP responder, later a ferrolb speaker).
    Node,
    /// The client that looks at Services from the LAN.
    Client,
    /// A BGP router of the given kind.
    Router(RouterKind),
    /// Where the API server runs.
    ControlPlane,
}

/// One namespace attached to the LAN bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Short name: `node1`, `client`, `bird`, `cp`; also the Kubernetes Node name for nodes.
    pub name: String,
    /// What the host is for.
    pub role: Role,
    /// The network namespace's name (`<prefix>-<name>`).
    pub netns: String,
    /// The host side of the veth pair, inside the LAN namespace (<= 15 characters).
    pub port: String,
    /// The host's IPv4 address on the LAN.
    pub ipv4: Ipv4Addr,
    /// The host's IPv6 address on the LAN.
    pub ipv6: Ipv6Addr,
    /// The MAC address of the host's `eth0`.
    pub mac: MacAddr,
}

impl Host {
    /// The host's LAN address of the same family as `like`.
    pub fn ip_like(&self, like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => IpAddr::V4(self.ipv4),
            IpAddr::V6(_) => IpAddr::V6(self.ipv6),
        }
    }

    /// Both LAN addresses, IPv4 first.
    pub fn ips(&self) -> [IpAddr; 2] {
        [IpAddr::V4(self.ipv4), IpAddr::V6(self.ipv6)]
    }
}

/// The whole lab: a LAN namespace holding the bridge, and hosts attached to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The per-run prefix every namespace name starts with.
    pub prefix: String,
    /// The namespace holding the bridge.
    pub lan_netns: String,
    /// The cluster nodes, `node1` first.
    pub nodes: Vec<Host>,
    /// The client.
    pub client: Host,
    /// One router namespace per router kind (empty when the lab has no routers).
    pub routers: Vec<Host>,
    /// The control-plane namespace where the API server runs.
    pub control_plane: Host,
}

impl Topology {
    /// The lab for run `prefix` with `nodes` nodes, with or without router namespaces.
    pub fn new(prefix: &str, nodes: usize, routers: bool) -> Result<Self, TopologyError> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(TopologyError::NodeCount(nodes));
        }
        let node_hosts = (1..=nodes)
            .map(|i| host(prefix, &format!("node{i}"), Role::Node, 10 + i as u16))
            .collect();
        let router_hosts = if routers {
            RouterKind::ALL
                .iter()
                .map(|kind| host(prefix, kind.name(), Role::Router(*kind), kind.host_number()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            prefix: prefix.to_string(),
            lan_netns: format!("{prefix}-lan"),
            nodes: node_hosts,
            client: host(prefix, "client", Role::Client, 100),
            routers: router_hosts,
            control_plane: host(prefix, "cp", Role::ControlPlane, 2),
        })
    }

    /// Every host attached to the LAN: nodes, client, routers, control plane.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.nodes
            .iter()
            .chain(std::iter::once(&self.client))
            .chain(self.routers.iter())
            .chain(std::iter::once(&self.control_plane))
    }

    /// Every namespace of the lab, the LAN namespace first.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.lan_netns.clone())
            .chain(self.hosts().map(|h| h.netns.clone()))
            .collect()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Host> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The router namespace of `kind`, if the lab has routers.
    pub fn router(&self, kind: RouterKind) -> Option<&Host> {
        self.routers.iter().find(|h| h.role == Role::Router(kind))
    }

    /// The host whose `eth0` has `mac`.
    pub fn owner_of(&self, mac: MacAddr) -> Option<&Host> {
        self.hosts().find(|h| h.mac == mac)
    }

    /// The API server's URL as seen from the LAN.
    pub fn api_url(&self) -> String {
        format!("http://{}:{API_PORT}", self.control_plane.ipv4)
    }
}

/// A host numbered `n`: IPv4 `192.168.4.n`, IPv6 `fd00:4::n` and MAC `02:fb:04:00:0n:nn`,
/// where the IPv6 group and the MAC's last two bytes spell `n` in decimal digits so that
/// `.11`, `::11` and `..:00:11` visibly belong together.
fn host(prefix: &str, name: &str, role: Role, n: u16) -> Host {
    let digits = decimal_as_hex(n);
    let [hi, lo] = digits.to_be_bytes();
    Host {
        name: name.to_string(),
        role,
        netns: format!("{prefix}-{name}"),
        port: name.to_string(),
        ipv4: Ipv4Addr::new(192, 168, 4, n as u8),
        ipv6: Ipv6Addr::new(0xfd00, 4, 0, 0, 0, 0, 0, digits),
        mac: MacAddr([0x02, 0xfb, 0x04, 0x00, hi, lo]),
    }
}

/// `n` written in decimal, read back as hexadecimal (201 -> 0x201).
fn decimal_as_hex(n: u16) -> u16 {
    n.to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .fold(0, |acc, d| acc * 16 + d as u16)
}

/// The prefix of the `seq`-th lab created by process `pid`.
pub fn prefix_for(pid: u32, seq: u32) -> String {
    format!("{NAME_PREFIX}{pid}x{seq}")
}

/// The prefix and owner pid a lab namespace (or run directory) name starts with, if it is one.
pub fn parse_prefix(name: &str) -> Option<(&str, u32)> {
    let prefix = name.split('-').next()?;
    let rest = prefix.strip_prefix(NAME_PREFIX)?;
    let (pid, seq) = rest.split_once('x')?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((prefix, pid.parse().ok()?))
}

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not a MAC address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a MAC address: {0:?}")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMac(s.to_string());
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(bytes))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_numbered_alike_in_ipv4_ipv6_and_mac() {
        let t = Topology::new("flb1x0", 10, true).unwrap();
        let cases: [(&Host, &str, &str, &str); 6] = [
            (
                &t.nodes[0],
                "192.168.4.11",
                "fd00:4::11",
                "02:fb:04:00:00:11",
            ),
            (
                &t.nodes[9],
                "192.168.4.20",
                "fd00:4::20",
                "02:fb:04:00:00:20",
            ),
            (
                &t.client,
                "192.168.4.100",
                "fd00:4::100",
                "02:fb:04:00:01:00",
            ),
            (
                &t.routers[0],
                "192.168.4.201",
                "fd00:4::201",
                "02:fb:04:00:02:01",
            ),
            (
                &t.routers[2],
                "192.168.4.203",
                "fd00:4::203",
                "02:fb:04:00:02:03",
            ),
            (
                &t.control_plane,
                "192.168.4.2",
                "fd00:4::2",
                "02:fb:04:00:00:02",
            ),
        ];
        for (host, v4, v6, mac) in cases {
            assert_eq!(host.ipv4.to_string(), v4, "{}", host.name);
            assert_eq!(host.ipv6.to_string(), v6, "{}", host.name);
            assert_eq!(host.mac.to_string(), mac, "{}", host.name);
        }
    }

    #[test]
    fn names_carry_the_run_prefix_and_fit_interface_limits() {
        let t = Topology::new("flb4242x7", MAX_NODES, true).unwrap();
        assert_eq!(t.lan_netns, "flb4242x7-lan");
        for h in t.hosts() {
            assert!(h.netns.starts_with("flb4242x7-"), "{}", h.netns);
            assert!(h.port.len() <= 15, "{}", h.port);
            assert_eq!(parse_prefix(&h.netns), Some(("flb4242x7", 4242)));
        }
        assert_eq!(t.namespaces().len(), 1 + MAX_NODES + 1 + 3 + 1);
    }

    #[test]
    fn node_count_must_fit_below_the_client_address() {
        assert_eq!(
            Topology::new("p", 0, false),
            Err(TopologyError::NodeCount(0))
        );
        assert_eq!(
            Topology::new("p", MAX_NODES + 1, false),
            Err(TopologyError::NodeCount(MAX_NODES + 1))
        );
        assert!(Topology::new("p", 3, false).unwrap().routers.is_empty());
    }

    #[test]
    fn only_lab_names_parse_as_prefixes() {
        let cases = [
            ("flb12x0-node1", Some(("flb12x0", 12))),
            ("flb12x3", Some(("flb12x3", 12))),
            ("flb12-node1", None),
            ("flbx0-lan", None),
            ("flb12x-lan", None),
            ("other-ns", None),
        ];
        for (name, want) in cases {
            assert_eq!(parse_prefix(name), want, "{name}");
        }
    }

    #[test]
    fn mac_addresses_round_trip_and_reject_garbage() {
        let mac: MacAddr = "02:FB:04:00:00:11".parse().unwrap();
        assert_eq!(mac.to_string(), "02:fb:04:00:00:11");
        for bad in [
            "",
            "02:fb:04:00:00",
            "02:fb:04:00:00:11:22",
            "2:fb:04:00:00:11",
            "zz:fb:04:00:00:11",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_map_back_to_their_host() {
        let t = Topology::new("p", 3, false).unwrap();
        assert_eq!(
            t.owner_of(t.nodes[1].mac).map(|h| h.name.as_str()),
            Some("node2")
        );
        assert_eq!(t.owner_of(MacAddr([0; 6])), None);
    }
}
