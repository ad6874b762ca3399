//! The one merged, validated configuration model that every ferrolb component
//! (controller, speaker, CLI) works from, whichever format the operator wrote.
//!
//! Values of these types are only ever built by [`crate::load`] after
//! validation, so consumers may rely on the invariants stated on each type.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A Service's identity: namespace and name (`namespace/name` when shown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceKey {
    /// A key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

/// An inclusive range of addresses of one family (`first <= last`).
///
/// A CIDR `10.0.0.0/30` is the block `10.0.0.0..=10.0.0.3`; a range
/// `10.0.0.5-10.0.0.9` is kept as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressBlock {
    first: IpAddr,
    last: IpAddr,
    /// Prefix length when the block was written as a CIDR.
    prefix_len: Option<u8>,
}

impl AddressBlock {
    /// A block from its bounds; `None` when the families differ or `first > last`.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<Self> {
        let ordered = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
            (IpAddr::V6(a), IpAddr::V6(b)) => a <= b,
            _ => false,
        };
        ordered.then_some(Self {
            first,
            last,
            prefix_len: None,
        })
    }

    /// The block covering a whole CIDR.
    pub fn from_net(net: ipnet::IpNet) -> Self {
        Self {
            first: net.network(),
            last: net.broadcast(),
            prefix_len: Some(net.prefix_len()),
        }
    }

    /// First address (inclusive).
    pub fn first(&self) -> IpAddr {
        self.first
    }

    /// Last address (inclusive).
    pub fn last(&self) -> IpAddr {
        self.last
    }

    /// Prefix length if the block was written as a CIDR.
    pub fn prefix_len(&self) -> Option<u8> {
        self.prefix_len
    }

    /// The block's address family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.first)
    }

    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.first, self.last, ip) {
            (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => a <= x && x <= b,
            (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => a <= x && x <= b,
            _ => false,
        }
    }

    /// First address as an integer of its family.
    pub fn first_u128(&self) -> u128 {
        ip_to_u128(self.first)
    }

    /// Last address as an integer of its family.
    pub fn last_u128(&self) -> u128 {
        ip_to_u128(self.last)
    }

    /// Number of addresses in the block, exact even for an IPv6 `/0`.
    pub fn size(&self) -> AddressCount {
        AddressCount::span(self.first_u128(), self.last_u128())
    }

    /// The fewest CIDRs that together cover exactly the block, in address
    /// order (a block written as a CIDR gives back that one CIDR).
    pub fn cidrs(&self) -> Vec<ipnet::IpNet> {
        match (self.first, self.last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => ipnet::Ipv4Subnets::new(a, b, 0)
                .map(ipnet::IpNet::V4)
                .collect(),
            (IpAddr::V6(a), IpAddr::V6(b)) => ipnet::Ipv6Subnets::new(a, b, 0)
                .map(ipnet::IpNet::V6)
                .collect(),
            // Unreachable: both bounds always share a family.
            _ => Vec::new(),
        }
    }

    /// The shortest prefix length among [`Self::cidrs`]: the prefix length of
    /// a CIDR block, or of the largest CIDR inside a range.
    pub fn shortest_prefix_len(&self) -> u8 {
        if let Some(len) = self.prefix_len {
            return len;
        }
        self.cidrs()
            .iter()
            .map(ipnet::IpNet::prefix_len)
            .min()
            .unwrap_or(match self.family() {
                IpFamily::V4 => 32,
                IpFamily::V6 => 128,
            })
    }
}

/// An address as an integer (IPv4 in the low 32 bits).
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` whose integer value is `n` (`None` if out of range).
pub fn u128_to_ip(family: IpFamily, n: u128) -> Option<IpAddr> {
    match family {
        IpFamily::V4 => u32::try_from(n).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        IpFamily::V6 => Some(IpAddr::V6(n.into())),
    }
}

/// An exact count of addresses: up to 2^128 + 2^32 (an IPv6 `/0` plus all
/// of IPv4), which does not fit a `u128`, so one extra unit of 2^128 is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AddressCount {
    /// How many times 2^128 (0 or 1 for any set of disjoint blocks).
    high: u8,
    low: u128,
}

impl AddressCount {
    /// Zero addresses.
    pub const ZERO: AddressCount = AddressCount { high: 0, low: 0 };

    /// A count that fits a `u128`.
    pub fn from_u128(n: u128) -> Self {
        Self { high: 0, low: n }
    }

    /// The number of integers in `first..=last` (`first <= last`).
    pub fn span(first: u128, last: u128) -> Self {
        let diff = last.wrapping_sub(first);
        match diff.checked_add(1) {
            Some(low) => Self { high: 0, low },
            None => Self { high: 1, low: 0 },
        }
    }

    /// Sum of two counts (exact; the high part cannot realistically overflow a u8).
    #[allow(clippy::should_implement_trait)] // also `+`, see the Add impl below
    pub fn add(self, other: Self) -> Self {
        let (low, carry) = self.low.overflowing_add(other.low);
        Self {
            high: self
                .high
                .saturating_add(other.high)
                .saturating_add(u8::from(carry)),
            low,
        }
    }

    /// The count as a `u128`, if it fits.
    pub fn to_u128(self) -> Option<u128> {
        (self.high == 0).then_some(self.low)
    }

    /// The count as a float, for metrics.
    pub fn to_f64(self) -> f64 {
        // 2^128 as f64 is exact.
        f64::from(self.high) * 2f64.powi(128) + self.low as f64
    }
}

impl std::ops::Add for AddressCount {
    type Output = AddressCount;

    fn add(self, other: Self) -> Self {
        AddressCount::add(self, other)
    }
}

impl std::fmt::Display for AddressCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.high == 0 {
            return write!(f, "{}", self.low);
        }
        // Decimal of high * 2^128 + low by long division of base-2^64 limbs.
        let mut limbs: [u64; 3] = [
            u64::from(self.high),
            (self.low >> 64) as u64,
            self.low as u64,
        ];
        let mut digits = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut rem: u128 = 0;
            for limb in limbs.iter_mut() {
                let cur = (rem << 64) | u128::from(*limb);
                *limb = (cur / 10) as u64;
                rem = cur % 10;
            }
            digits.push(b'0' + rem as u8);
        }
        digits.reverse();
        f.write_str(&String::from_utf8_lossy(&digits))
    }
}

/// Which format a pool (or advertisement) came from; used in messages and ordering.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The legacy ConfigMap, at this index of `address-pools`.
    ConfigMap {
        /// Position in the file.
        index: usize,
    },
    /// A metallb.io custom resource in this namespace.
    Crd {
        /// The resource's namespace.
        namespace: String,
    },
}

/// A label-selector requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is not one of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LabelRequirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values for `In`/`NotIn` (empty otherwise).
    pub values: Vec<String>,
}

/// A Kubernetes-style label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Exact label matches.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    pub match_expressions: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Whether the labels satisfy every part of the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match req.operator {
                    SelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// Whether any selector in a list matches (a list is an OR); an empty list matches all.
pub fn any_selector_matches(
    selectors: &[LabelSelector],
    labels: &BTreeMap<String, String>,
) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Which Services a pool may serve (`IPAddressPool.spec.serviceAllocation`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; 0 means "no priority" and sorts last.
    pub priority: u32,
    /// Namespaces allowed by name (empty = no restriction by name).
    pub namespaces: Vec<String>,
    /// Namespace label selectors (OR; empty = no restriction).
    pub namespace_selectors: Vec<LabelSelector>,
    /// Service label selectors (OR; empty = no restriction).
    pub service_selectors: Vec<LabelSelector>,
}

impl ServiceAllocation {
    /// Whether a Service in `namespace` (with those namespace labels) and with
    /// `service_labels` may get an address from the pool.
    pub fn admits(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        service_labels: &BTreeMap<String, String>,
    ) -> bool {
        let by_name = self.namespaces.is_empty() && self.namespace_selectors.is_empty()
            || self.namespaces.iter().any(|n| n == namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(namespace_labels));
        by_name && any_selector_matches(&self.service_selectors, service_labels)
    }
}

/// An address pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique name.
    pub name: String,
    /// Address blocks in the order written; pairwise disjoint across all pools.
    pub blocks: Vec<AddressBlock>,
    /// Whether Services that do not ask for this pool may get addresses from it.
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    pub avoid_buggy_ips: bool,
    /// Restrictions on which Services the pool serves (`None` = any Service).
    pub allocation: Option<ServiceAllocation>,
    /// Where the pool was defined.
    pub origin: Origin,
}

impl Pool {
    /// Whether `ip` lies in one of the pool's blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// Whether the pool has a block of that family.
    pub fn has_family(&self, family: IpFamily) -> bool {
        self.blocks.iter().any(|b| b.family() == family)
    }

    /// Total number of addresses in the pool (before avoid-buggy-ips), exact.
    pub fn size(&self) -> AddressCount {
        self.blocks
            .iter()
            .fold(AddressCount::ZERO, |acc, b| acc.add(b.size()))
    }

    /// The ordering priority: explicit priorities ascending, then unprioritised.
    pub fn priority(&self) -> u32 {
        match &self.allocation {
            Some(a) if a.priority > 0 => a.priority,
            _ => u32::MAX,
        }
    }
}

/// A BGP community value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997 community `AA:NN`.
    Standard(u16, u16),
    /// RFC 8092 large community `large:A:B:C`.
    Large(u32, u32, u32),
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Community::Standard(a, n) => write!(f, "{a}:{n}"),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

/// Announce a set of pools in layer-2 mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Advertisement {
    /// Name (for ConfigMap pools: the pool's name).
    pub name: String,
    /// Names of the pools it selects (resolved from names and selectors).
    pub pools: Vec<String>,
    /// Nodes that may announce (OR; empty = all nodes).
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on (empty = every eligible interface).
    pub interfaces: Vec<String>,
    /// Also announce the `spec.externalIPs` of Services that ask for it
    /// (annotation `ferrolb.io/announce-external-ips`), when they lie in a
    /// selected pool. Off by default.
    pub external_ips: bool,
}

/// The Service annotation asking for its `spec.externalIPs` to be
/// announced (value `"true"`), where an advertisement allows it.
pub const ANNOUNCE_EXTERNAL_IPS_ANNOTATION: &str = "ferrolb.io/announce-external-ips";

impl L2Advertisement {
    /// Whether it announces an address of pool `pool`; an external IP
    /// (`external`) only when it says so.
    pub fn announces(&self, pool: &str, external: bool) -> bool {
        self.pools.iter().any(|p| p == pool) && (self.external_ips || !external)
    }
}

/// Announce a set of pools over BGP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Name (for ConfigMap pools: `<pool>-<index>`).
    pub name: String,
    /// Names of the pools it selects (resolved from names and selectors).
    pub pools: Vec<String>,
    /// IPv4 prefix length the address is aggregated to (default 32).
    pub aggregation_length: u8,
    /// IPv6 prefix length the address is aggregated to (default 128).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF, sent to iBGP peers only when set.
    pub local_pref: Option<u32>,
    /// Communities attached to the prefixes (aliases resolved).
    pub communities: Vec<Community>,
    /// Nodes that announce (OR; empty = all nodes).
    pub node_selectors: Vec<LabelSelector>,
    /// Names of the peers to announce to (empty = all peers).
    pub peers: Vec<String>,
    /// Also announce the `spec.externalIPs` of Services that ask for it
    /// (annotation `ferrolb.io/announce-external-ips`), when they lie in a
    /// selected pool. Off by default.
    pub external_ips: bool,
}

impl BgpAdvertisement {
    /// Whether it announces an address of pool `pool`; an external IP
    /// (`external`) only when it says so.
    pub fn announces(&self, pool: &str, external: bool) -> bool {
        self.pools.iter().any(|p| p == pool) && (self.external_ips || !external)
    }
}

/// Where a BGP peer's MD5 password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerPassword {
    /// Written in the config.
    Plain(String),
    /// Key `password` of a `kubernetes.io/basic-auth` Secret.
    Secret {
        /// Secret namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
}

/// A BGP peer (router) the speakers open sessions to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Name (for ConfigMap peers: `peer<index>`, see `validate::configmap_peer_name`).
    pub name: String,
    /// Our AS number.
    pub my_asn: u32,
    /// The router's AS number.
    pub peer_asn: u32,
    /// The router's address.
    pub address: IpAddr,
    /// The router's TCP port (default 179).
    pub port: u16,
    /// Local address to connect from.
    pub source_address: Option<IpAddr>,
    /// Proposed hold time (0 or >= 3 s; default 90 s).
    pub hold_time: Duration,
    /// Keepalive interval (<= hold time; default hold / 3).
    pub keepalive_time: Duration,
    /// BGP identifier (default: the session's local IPv4 address).
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that peer (OR; empty = all nodes).
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password.
    pub password: Option<PeerPassword>,
    /// Allow the peer to be more than one hop away (eBGP only).
    pub ebgp_multihop: bool,
    /// Name of a BFD profile.
    pub bfd_profile: Option<String>,
    /// Graceful restart (RFC 4724): the router keeps our routes while the
    /// speaker restarts.
    pub graceful_restart: bool,
}

impl Peer {
    /// iBGP when both ends share an AS.
    pub fn is_ibgp(&self) -> bool {
        self.my_asn == self.peer_asn
    }
}

/// A validated BFD profile (the speaker's BFD sessions use it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdProfile {
    /// Unique name.
    pub name: String,
    /// Minimum receive interval in ms (10..=60000).
    pub receive_interval_ms: Option<u32>,
    /// Minimum transmit interval in ms (10..=60000).
    pub transmit_interval_ms: Option<u32>,
    /// Echo interval in ms (10..=60000).
    pub echo_interval_ms: Option<u32>,
    /// Detect multiplier (2..=255).
    pub detect_multiplier: Option<u32>,
    /// Echo mode.
    pub echo_mode: bool,
    /// Passive mode.
    pub passive_mode: bool,
    /// Minimum TTL (1..=254).
    pub minimum_ttl: Option<u32>,
}

/// The merged, validated configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Pools in allocation order: explicit priority ascending, then unprioritised
    /// (ConfigMap pools in file order, then CRD pools by name).
    pub pools: Vec<Pool>,
    /// Layer-2 advertisements.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGP advertisements.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// BGP peers.
    pub peers: Vec<Peer>,
    /// BFD profiles.
    pub bfd_profiles: Vec<BfdProfile>,
    /// Community aliases.
    pub communities: BTreeMap<String, Community>,
}

impl Config {
    /// The pool of that name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The pool whose blocks contain `ip`.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains(ip))
    }
}
