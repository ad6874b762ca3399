//! The announcement seam: what a node must announce ([`Desired`]) and the
//! [`Announcer`] trait that layer 2 and BGP implement.
//!
//! The speaker's main loop computes a [`Desired`] from a snapshot with the
//! pure [`crate::election`] functions and hands it to every announcer; it
//! knows nothing of ARP, NDP or BGP.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::model::IpFamily;

/// A Service's identity (shared vocabulary, defined in the config model).
pub use ferrolb_config::model::ServiceKey;

/// An address given to a LoadBalancer Service, as announced on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceIp(IpAddr);

impl ServiceIp {
    /// Wraps an address.
    pub const fn new(ip: IpAddr) -> Self {
        Self(ip)
    }

    /// The address.
    pub const fn ip(&self) -> IpAddr {
        self.0
    }

    /// The address family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.0)
    }
}

impl From<IpAddr> for ServiceIp {
    fn from(ip: IpAddr) -> Self {
        Self(ip)
    }
}

impl fmt::Display for ServiceIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The Services holding one address, in order, without repeats. Almost
/// always one: a sorted `Vec` costs a tenth of a `BTreeSet`, which
/// allocates room for eleven keys for the first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSet(Vec<ServiceKey>);

impl ServiceSet {
    /// Adds `service`; false if it was there already.
    pub fn insert(&mut self, service: ServiceKey) -> bool {
        match self.0.binary_search(&service) {
            Ok(_) => false,
            Err(at) => {
                // Room for exactly one at first (a Vec would make it four).
                self.0.reserve_exact(1);
                self.0.insert(at, service);
                true
            }
        }
    }

    /// Whether `service` is in the set.
    pub fn contains(&self, service: &ServiceKey) -> bool {
        self.0.binary_search(service).is_ok()
    }

    /// The Services, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ServiceKey> {
        self.0.iter()
    }

    /// How many Services.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ServiceSet {
    type Item = &'a ServiceKey;
    type IntoIter = std::slice::Iter<'a, ServiceKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<ServiceKey> for ServiceSet {
    fn from_iter<I: IntoIterator<Item = ServiceKey>>(iter: I) -> Self {
        let mut keys: Vec<ServiceKey> = iter.into_iter().collect();
        keys.sort();
        keys.dedup();
        Self(keys)
    }
}

/// On which of the node's interfaces an address is announced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Interfaces {
    /// Every eligible interface (up, non-loopback, ARP-capable, not enslaved).
    #[default]
    All,
    /// Only these interfaces (from the L2Advertisements' `interfaces`).
    Only(BTreeSet<String>),
}

impl Interfaces {
    /// Whether an interface of that name may announce.
    pub fn allows(&self, interface: &str) -> bool {
        match self {
            Interfaces::All => true,
            Interfaces::Only(names) => names.contains(interface),
        }
    }

    /// The union of two restrictions: an unrestricted side wins.
    pub fn union(self, other: Interfaces) -> Interfaces {
        match (self, other) {
            (Interfaces::Only(mut a), Interfaces::Only(b)) => {
                a.extend(b);
                Interfaces::Only(a)
            }
            _ => Interfaces::All,
        }
    }
}

/// How one address is announced in layer 2 by this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layer2Announcement {
    /// Where to answer ARP / NDP for it.
    pub interfaces: Interfaces,
    /// The Services holding the address (several when it is shared).
    pub services: BTreeSet<ServiceKey>,
}

/// Everything this node must announce right now, in every protocol; each
/// [`Announcer`] acts on its own part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// Addresses to answer ARP / NDP for, with where and for whom.
    pub layer2: BTreeMap<ServiceIp, Layer2Announcement>,
    /// BGP sessions and the prefixes each carries.
    pub bgp: crate::bgp::BgpDesired,
    /// Passwords of the Secrets the BGP peers name.
    pub peer_secrets: crate::bgp::PeerSecrets,
}

/// What changed in the layer-2 part between two [`Desired`] values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layer2Changes {
    /// Newly owned addresses: announce and send gratuitous packets.
    pub gained: Vec<ServiceIp>,
    /// Addresses no longer owned: stop answering at once.
    pub lost: Vec<ServiceIp>,
    /// Still owned, but on another set of interfaces.
    pub moved: Vec<ServiceIp>,
}

impl Layer2Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty() && self.moved.is_empty()
    }
}

impl Desired {
    /// Whether nothing is to be announced.
    pub fn is_empty(&self) -> bool {
        self.layer2.is_empty()
    }

    /// The layer-2 difference from `previous` to `self`.
    pub fn layer2_changes(&self, previous: &Desired) -> Layer2Changes {
        let mut changes = Layer2Changes::default();
        for (ip, now) in &self.layer2 {
            match previous.layer2.get(ip) {
                None => changes.gained.push(*ip),
                Some(before) if before.interfaces != now.interfaces => changes.moved.push(*ip),
                Some(_) => {}
            }
        }
        changes.lost = previous
            .layer2
            .keys()
            .filter(|ip| !self.layer2.contains_key(ip))
            .copied()
            .collect();
        changes
    }

    /// The (Service, address) pairs announced in `self` but not in `previous`:
    /// one `nodeAssigned` Event each, not one per resync.
    pub fn newly_announced(&self, previous: &Desired) -> Vec<(ServiceKey, ServiceIp)> {
        let mut out = Vec::new();
        for (ip, now) in &self.layer2 {
            let before = previous.layer2.get(ip);
            for service in &now.services {
                if !before.is_some_and(|b| b.services.contains(service)) {
                    out.push((service.clone(), *ip));
                }
            }
        }
        out
    }
}

/// The announcement protocols, as written in metrics and Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ARP / NDP answers from the elected node.
    Layer2,
    /// BGP routes from every qualifying node.
    Bgp,
}

impl Protocol {
    /// The label value (`layer2`, `bgp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Layer2 => "layer2",
            Protocol::Bgp => "bgp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an announcer could not apply a [`Desired`] state.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// An interface could not be opened or written to.
    #[error("interface {interface}: {source}")]
    Interface {
        /// The interface name.
        interface: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Some BGP peers could not be started.
    #[error("BGP: {0}")]
    Peers(String),
    /// The announcer's worker has stopped.
    #[error("{0} announcer has stopped")]
    Stopped(Protocol),
}

/// Something that makes the network send traffic for a set of addresses to
/// this node: the layer-2 responder, the BGP sessions.
///
/// `set` is level-triggered: it receives the whole desired state each time
/// and applies only the difference; calling it twice with the same value
/// does nothing. It must not block for long (it is called from the main
/// loop); slow work belongs on the announcer's own tasks or threads.
pub trait Announcer: Send {
    /// The protocol this announcer speaks.
    fn protocol(&self) -> Protocol;

    /// Makes the announced state equal to `desired`.
    fn set(&mut self, desired: &Desired) -> Result<(), AnnounceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> ServiceIp {
        ServiceIp::new(s.parse().unwrap())
    }

    #[test]
    fn service_set_rules() {
        let k = |n: &str| ServiceKey::new("default", n);
        // (rule, inserted in order, members wanted in order, insert results)
        type Case<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, Vec<bool>);
        let cases: Vec<Case> = vec![
            (
                "one_service_is_one_member",
                vec!["a"],
                vec!["a"],
                vec![true],
            ),
            (
                "members_are_kept_in_order",
                vec!["c", "a", "b"],
                vec!["a", "b", "c"],
                vec![true, true, true],
            ),
            (
                "a_repeat_is_not_added_twice",
                vec!["a", "b", "a"],
                vec!["a", "b"],
                vec![true, true, false],
            ),
        ];
        for (rule, inserted, want, results) in cases {
            let mut set = ServiceSet::default();
            let got: Vec<bool> = inserted.iter().map(|n| set.insert(k(n))).collect();
            assert_eq!(got, results, "{rule}");
            let members: Vec<&str> = set.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(members, want, "{rule}");
            assert_eq!(set.len(), want.len(), "{rule}");
            assert!(want.iter().all(|n| set.contains(&k(n))), "{rule}");
            assert!(!set.contains(&k("zzz")), "{rule}");
            let collected: ServiceSet = inserted.iter().map(|n| k(n)).collect();
            assert_eq!(collected, set, "{rule}: collecting sorts and deduplicates");
        }
        assert!(ServiceSet::default().is_empty());
    }

    fn desired(entries: &[(&str, Interfaces, &[&str])]) -> Desired {
        Desired {
            layer2: entries
                .iter()
                .map(|(a, ifs, svcs)| {
                    (
                        ip(a),
                        Layer2Announcement {
                            interfaces: ifs.clone(),
                            services: svcs.iter().map(|s| ServiceKey::new("ns", *s)).collect(),
                        },
                    )
                })
                .collect(),
            ..Desired::default()
        }
    }

    fn only(names: &[&str]) -> Interfaces {
        Interfaces::Only(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn changes_list_gained_lost_and_moved_addresses() {
        let before = desired(&[
            ("10.0.0.1", Interfaces::All, &["a"]),
            ("10.0.0.2", Interfaces::All, &["b"]),
            ("10.0.0.3", only(&["eth0"]), &["c"]),
        ]);
        let after = desired(&[
            ("10.0.0.2", Interfaces::All, &["b"]),
            ("10.0.0.3", only(&["eth1"]), &["c"]),
            ("fc00::1", Interfaces::All, &["d"]),
        ]);
        let changes = after.layer2_changes(&before);
        assert_eq!(changes.gained, vec![ip("fc00::1")]);
        assert_eq!(changes.lost, vec![ip("10.0.0.1")]);
        assert_eq!(changes.moved, vec![ip("10.0.0.3")]);
        assert!(after.layer2_changes(&after).is_empty());
    }

    #[test]
    fn newly_announced_names_each_new_service_once() {
        let before = desired(&[("10.0.0.1", Interfaces::All, &["a"])]);
        let after = desired(&[
            ("10.0.0.1", Interfaces::All, &["a", "shared"]),
            ("10.0.0.2", Interfaces::All, &["b"]),
        ]);
        let new = after.newly_announced(&before);
        assert_eq!(
            new,
            vec![
                (ServiceKey::new("ns", "shared"), ip("10.0.0.1")),
                (ServiceKey::new("ns", "b"), ip("10.0.0.2")),
            ]
        );
        assert!(
            after.newly_announced(&after).is_empty(),
            "a resync records nothing"
        );
    }

    #[test]
    fn interface_union_is_unrestricted_when_either_side_is() {
        let cases = [
            (
                "all_absorbs_only",
                Interfaces::All,
                only(&["eth0"]),
                Interfaces::All,
            ),
            (
                "only_absorbs_into_all",
                only(&["eth0"]),
                Interfaces::All,
                Interfaces::All,
            ),
            (
                "only_sets_merge",
                only(&["eth0"]),
                only(&["eth1"]),
                only(&["eth0", "eth1"]),
            ),
        ];
        for (rule, a, b, want) in cases {
            assert_eq!(a.union(b), want, "{rule}");
        }
        assert!(only(&["eth0"]).allows("eth0"));
        assert!(!only(&["eth0"]).allows("eth1"));
        assert!(Interfaces::All.allows("anything"));
    }
}
