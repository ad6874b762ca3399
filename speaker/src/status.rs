//! What a node reports about its announcements: one `ServiceL2Status` per
//! (node, Service) it answers ARP/NDP for, one `ServiceBGPStatus` per
//! (node, Service) it announces to BGP peers (MetalLB 0.14's kinds).
//!
//! Pure: [`desired_objects`] turns a [`Desired`] into the objects this node
//! should have, [`plan`] diffs them against what the API server holds,
//! [`stale_groups`] finds the objects of nodes that left the cluster, and
//! [`WriteQueue`] coalesces and paces the writes so that a failover of
//! 10,000 Services does not flood the API server. The writer in
//! `k8s::status` performs them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::announce::{Desired, Interfaces, ServiceIp, ServiceKey};

/// Label naming the node an object reports for (as MetalLB labels them).
pub const NODE_LABEL: &str = "metallb.io/node";
/// Label naming the Service's name.
pub const SERVICE_NAME_LABEL: &str = "metallb.io/service-name";
/// Label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "metallb.io/service-namespace";

/// The longest object name the API server accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// The two kinds of status object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusKind {
    /// `ServiceL2Status`: the interfaces the node answers on.
    Layer2,
    /// `ServiceBGPStatus`: the peers the node announces to.
    Bgp,
}

impl StatusKind {
    /// Both kinds.
    pub const ALL: [StatusKind; 2] = [StatusKind::Layer2, StatusKind::Bgp];

    /// The `kind` field.
    pub fn kind(self) -> &'static str {
        match self {
            StatusKind::Layer2 => "ServiceL2Status",
            StatusKind::Bgp => "ServiceBGPStatus",
        }
    }

    /// The resource's plural (its URL segment).
    pub fn plural(self) -> &'static str {
        match self {
            StatusKind::Layer2 => "servicel2statuses",
            StatusKind::Bgp => "servicebgpstatuses",
        }
    }

    /// The status field listing the details (`interfaces` or `peers`).
    pub fn detail_field(self) -> &'static str {
        match self {
            StatusKind::Layer2 => "interfaces",
            StatusKind::Bgp => "peers",
        }
    }
}

/// Which object: its kind and the Service it reports on (the node is the
/// writer's own, or carried beside it).
pub type ObjectKey = (StatusKind, ServiceKey);

/// What an object says beyond node and Service: interface names (layer 2)
/// or peer names (BGP), sorted.
pub type Detail = BTreeSet<String>;

/// The objects this node should have, from what it announces now.
/// `interfaces` is the node's eligible interfaces, which is where an
/// address without an `interfaces` restriction is answered.
pub fn desired_objects(
    desired: &Desired,
    interfaces: &BTreeSet<String>,
) -> BTreeMap<ObjectKey, Detail> {
    let mut out: BTreeMap<ObjectKey, Detail> = BTreeMap::new();
    for announcement in desired.layer2.values() {
        let on: Detail = match &announcement.interfaces {
            Interfaces::All => interfaces.clone(),
            Interfaces::Only(names) => names.intersection(interfaces).cloned().collect(),
        };
        for service in &announcement.services {
            out.entry((StatusKind::Layer2, service.clone()))
                .or_default()
                .extend(on.iter().cloned());
        }
    }
    for (peer, wanted) in &desired.bgp.peers {
        for prefix in wanted.routes.keys() {
            let range = ServiceIp::new(prefix.network())..=ServiceIp::new(prefix.broadcast());
            for services in desired.bgp.announced.range(range).map(|(_, s)| s) {
                for service in services {
                    out.entry((StatusKind::Bgp, service.clone()))
                        .or_default()
                        .insert(peer.clone());
                }
            }
        }
    }
    out
}

/// The name of the object for `service` and `node`: `<service>.<node>`
/// (unambiguous, since a Service name has no dot), so that a retried
/// create finds the first one instead of adding a twin. When that is too
/// long, the node part becomes a hash.
pub fn object_name(service: &ServiceKey, node: &str) -> String {
    let name = format!("{}.{}", service.name, node);
    if name.len() <= MAX_NAME {
        return name;
    }
    let digest = Sha256::digest(node.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}.{hex}", service.name)
}

/// An object as the API server holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.name`.
    pub name: String,
    /// Its kind.
    pub kind: StatusKind,
    /// The Service (from the labels; the namespace is the object's own).
    pub service: ServiceKey,
    /// The node it reports for (its label).
    pub node: String,
    /// Its interfaces or peers.
    pub detail: Detail,
}

/// One write to the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Create the object (named by [`object_name`]) with its status.
    Create {
        /// Kind and Service.
        key: ObjectKey,
        /// Its interfaces or peers.
        detail: Detail,
    },
    /// Replace the status of an existing object.
    Update {
        /// Kind and Service.
        key: ObjectKey,
        /// The object's name.
        name: String,
        /// The new interfaces or peers.
        detail: Detail,
    },
    /// Delete the object.
    Delete {
        /// Kind and Service.
        key: ObjectKey,
        /// The object's name.
        name: String,
    },
}

impl Write {
    /// Kind and Service of the object written.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }
}

/// The writes that turn this node's `observed` objects into `desired`:
/// create what is missing, update what differs, delete what is no longer
/// announced and any twin of an object (one object per (node, Service)).
pub fn plan(desired: &BTreeMap<ObjectKey, Detail>, observed: &[&Observed]) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut seen: BTreeSet<ObjectKey> = BTreeSet::new();
    let mut sorted: Vec<&&Observed> = observed.iter().collect();
    // The object with the expected name is the one kept among twins.
    sorted.sort_by_key(|o| {
        (
            o.kind,
            &o.service,
            o.name != object_name(&o.service, &o.node),
            &o.name,
        )
    });
    for o in sorted {
        let key = (o.kind, o.service.clone());
        match desired.get(&key) {
            Some(detail) if seen.insert(key.clone()) => {
                if *detail != o.detail {
                    writes.push(Write::Update {
                        key,
                        name: o.name.clone(),
                        detail: detail.clone(),
                    });
                }
            }
            _ => writes.push(Write::Delete {
                key,
                name: o.name.clone(),
            }),
        }
    }
    for (key, detail) in desired {
        if !seen.contains(key) {
            writes.push(Write::Create {
                key: key.clone(),
                detail: detail.clone(),
            });
        }
    }
    writes
}

/// Whether `node` cleans up after the nodes that left: the first live
/// member by name, so that exactly one speaker does it at a time.
pub fn is_janitor(node: &str, live: &BTreeSet<String>) -> bool {
    live.first().is_some_and(|first| first == node)
}

/// Objects of one kind, in one namespace, written for one node: what one
/// `deletecollection` call removes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleGroup {
    /// Their kind.
    pub kind: StatusKind,
    /// Their namespace.
    pub namespace: String,
    /// The departed node they were written for.
    pub node: String,
}

/// The groups of objects written for nodes that are no longer live members
/// (a SIGKILLed speaker or a vanished node cannot remove its own): one
/// delete per group rather than per object, so that the objects of 1,000
/// Services go in a handful of requests.
pub fn stale_groups(observed: &[&Observed], live: &BTreeSet<String>) -> Vec<StaleGroup> {
    let groups: BTreeSet<StaleGroup> = observed
        .iter()
        .filter(|o| !live.contains(&o.node))
        .map(|o| StaleGroup {
            kind: o.kind,
            namespace: o.service.namespace.clone(),
            node: o.node.clone(),
        })
        .collect();
    groups.into_iter().collect()
}

/// Pending writes, at most one per object (a newer write for the same
/// object replaces the older), released at a bounded rate.
#[derive(Debug)]
pub struct WriteQueue {
    pending: BTreeMap<(ObjectKey, String), Write>,
    rate_per_second: u32,
    burst: u32,
    tokens: f64,
    refilled: Instant,
}

impl WriteQueue {
    /// A queue releasing `rate_per_second` writes, up to `burst` at once.
    pub fn new(rate_per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            pending: BTreeMap::new(),
            rate_per_second: rate_per_second.max(1),
            burst: burst.max(1),
            tokens: f64::from(burst.max(1)),
            refilled: now,
        }
    }

    /// Replaces the queue with the writes of a fresh [`plan`]: what an
    /// older plan queued may be wrong now, and one plan has at most one
    /// write per object (twins aside), so the queue never outgrows the
    /// number of objects however often the announcements change.
    pub fn replace(&mut self, writes: impl IntoIterator<Item = Write>) {
        self.pending.clear();
        for w in writes {
            let name = match &w {
                Write::Update { name, .. } | Write::Delete { name, .. } => name.clone(),
                Write::Create { .. } => String::new(),
            };
            self.pending.insert((w.key().clone(), name), w);
        }
    }

    /// How many writes wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The writes that may go now, oldest object key first, within the rate
    /// of API requests (a create costs two: the object, then its status).
    pub fn release(&mut self, now: Instant) -> Vec<Write> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens =
            (self.tokens + elapsed * f64::from(self.rate_per_second)).min(f64::from(self.burst));
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            let cost = entry.get().requests();
            if self.tokens < cost {
                break;
            }
            self.tokens -= cost;
            out.push(entry.remove());
        }
        out
    }

    /// When the next write may go, if any waits.
    pub fn next_release(&self, now: Instant) -> Option<Instant> {
        let cost = self.pending.first_key_value()?.1.requests();
        if self.tokens >= cost {
            return Some(now);
        }
        let wait = (cost - self.tokens) / f64::from(self.rate_per_second);
        Some(now + Duration::from_secs_f64(wait))
    }
}

impl Write {
    /// The API requests it takes: a create is the object, then its status
    /// (the status subresource ignores a status given on create).
    pub fn requests(&self) -> f64 {
        match self {
            Write::Create { .. } => 2.0,
            Write::Update { .. } | Write::Delete { .. } => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::announce::Layer2Announcement;
    use crate::bgp::prefixes::{PeerDesired, PeerRoutes, RouteAttributes};

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    fn set(items: &[&str]) -> Detail {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn layer2(entries: &[(&str, Interfaces, &[&str])]) -> Desired {
        let mut d = Desired::default();
        for (ip, interfaces, services) in entries {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            d.layer2.insert(
                ServiceIp::new(ip),
                Layer2Announcement {
                    interfaces: interfaces.clone(),
                    services: services.iter().map(|s| key(s)).collect(),
                },
            );
        }
        d
    }

    fn observed(
        name: &str,
        kind: StatusKind,
        service: &str,
        node: &str,
        detail: &[&str],
    ) -> Observed {
        Observed {
            name: name.into(),
            kind,
            service: key(service),
            node: node.into(),
            detail: set(detail),
        }
    }

    #[test]
    fn layer2_objects_name_the_interfaces_the_node_answers_on() {
        let eligible = set(&["eth0", "eth1"]);
        // (rule, what is announced, the objects: Service and its interfaces)
        type Case<'a> = (&'a str, Desired, &'a [(&'a str, &'a [&'a str])]);
        let cases: &[Case] = &[
            (
                "unrestricted address: every eligible interface",
                layer2(&[("192.168.5.5", Interfaces::All, &["web"])]),
                &[("web", &["eth0", "eth1"])],
            ),
            (
                "restricted address: only the allowed eligible ones",
                layer2(&[(
                    "192.168.5.5",
                    Interfaces::Only(set(&["eth1", "eth9"])),
                    &["web"],
                )]),
                &[("web", &["eth1"])],
            ),
            (
                "shared address: one object per Service",
                layer2(&[("192.168.5.5", Interfaces::All, &["a", "b"])]),
                &[("a", &["eth0", "eth1"]), ("b", &["eth0", "eth1"])],
            ),
            (
                "two families of one Service: one object, union of interfaces",
                layer2(&[
                    ("192.168.5.5", Interfaces::Only(set(&["eth0"])), &["web"]),
                    ("fd00::5", Interfaces::Only(set(&["eth1"])), &["web"]),
                ]),
                &[("web", &["eth0", "eth1"])],
            ),
            ("nothing announced: no object", Desired::default(), &[]),
        ];
        for (rule, desired, want) in cases {
            let got = desired_objects(desired, &eligible);
            let want: BTreeMap<ObjectKey, Detail> = want
                .iter()
                .map(|(s, d)| ((StatusKind::Layer2, key(s)), set(d)))
                .collect();
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn bgp_objects_name_the_peers_whose_routes_cover_the_address() {
        let mut d = Desired::default();
        let route = |p: &str| -> (ipnet::IpNet, RouteAttributes) {
            (p.parse().unwrap(), RouteAttributes::default())
        };
        let peer = |name: &str, routes: &[&str]| {
            let peer = ferrolb_config::model::Peer {
                name: name.into(),
                my_asn: 64500,
                peer_asn: 64501,
                address: "10.0.0.1".parse().unwrap(),
                port: 179,
                source_address: None,
                hold_time: Duration::from_secs(90),
                keepalive_time: Duration::from_secs(30),
                router_id: None,
                node_selectors: vec![],
                password: None,
                ebgp_multihop: false,
                bfd_profile: None,
                graceful_restart: false,
            };
            let routes: PeerRoutes = routes.iter().map(|p| route(p)).collect();
            (
                name.to_string(),
                PeerDesired {
                    peer,
                    routes: Arc::new(routes),
                    bfd: None,
                },
            )
        };
        d.bgp.peers.extend([
            peer("r1", &["192.168.10.5/32", "192.168.20.0/24"]),
            peer("r2", &["192.168.10.5/32"]),
            peer("r3", &[]),
        ]);
        for (ip, services) in [
            ("192.168.10.5", vec!["web"]),
            ("192.168.20.7", vec!["db", "db2"]),
        ] {
            d.bgp.announced.insert(
                ServiceIp::new(ip.parse().unwrap()),
                services.into_iter().map(key).collect(),
            );
        }
        let got = desired_objects(&d, &BTreeSet::new());
        let want: BTreeMap<ObjectKey, Detail> = [
            ("web", set(&["r1", "r2"])), // exact /32 at two peers
            ("db", set(&["r1"])),        // aggregated /24 at one peer
            ("db2", set(&["r1"])),       // shared address: each Service
        ]
        .into_iter()
        .map(|(s, d)| ((StatusKind::Bgp, key(s)), d))
        .collect();
        assert_eq!(got, want, "a peer without routes names no Service");
    }

    #[test]
    fn object_names_are_unambiguous_and_valid() {
        let long_node = "n".repeat(250);
        let cases: &[(&str, &str, &str, &str)] = &[
            ("service dot node", "web", "node1", "web.node1"),
            (
                "a node name with dots stays whole",
                "web",
                "node1.example.com",
                "web.node1.example.com",
            ),
        ];
        for (rule, service, node, want) in cases {
            assert_eq!(object_name(&key(service), node), *want, "{rule}");
        }
        let hashed = object_name(&key("web"), &long_node);
        assert!(
            hashed.len() <= MAX_NAME && hashed.starts_with("web."),
            "too long: the node becomes a hash ({hashed})"
        );
        assert_ne!(
            hashed,
            object_name(&key("web"), &"m".repeat(250)),
            "different long nodes, different names"
        );
        assert_ne!(
            object_name(&key("a-b"), "c"),
            object_name(&key("a"), "b-c"),
            "dash in a name does not collide"
        );
    }

    #[test]
    fn plan_creates_updates_and_deletes_to_match() {
        let desired: BTreeMap<ObjectKey, Detail> = [
            ((StatusKind::Layer2, key("new")), set(&["eth0"])),
            ((StatusKind::Layer2, key("same")), set(&["eth0"])),
            ((StatusKind::Layer2, key("moved")), set(&["eth1"])),
            ((StatusKind::Bgp, key("same")), set(&["r1"])),
        ]
        .into_iter()
        .collect();
        let have = [
            observed("same.n1", StatusKind::Layer2, "same", "n1", &["eth0"]),
            observed("moved.n1", StatusKind::Layer2, "moved", "n1", &["eth0"]),
            observed("gone.n1", StatusKind::Layer2, "gone", "n1", &["eth0"]),
            observed("same.n1", StatusKind::Bgp, "same", "n1", &["r1"]),
            observed("same-twin", StatusKind::Bgp, "same", "n1", &["r1"]),
        ];
        let refs: Vec<&Observed> = have.iter().collect();
        let got = plan(&desired, &refs);
        let want = vec![
            Write::Delete {
                key: (StatusKind::Layer2, key("gone")),
                name: "gone.n1".into(),
            },
            Write::Update {
                key: (StatusKind::Layer2, key("moved")),
                name: "moved.n1".into(),
                detail: set(&["eth1"]),
            },
            Write::Delete {
                key: (StatusKind::Bgp, key("same")),
                name: "same-twin".into(),
            },
            Write::Create {
                key: (StatusKind::Layer2, key("new")),
                detail: set(&["eth0"]),
            },
        ];
        assert_eq!(
            got, want,
            "in key order: unchanged objects are not written, the canonical twin is kept"
        );
        let nothing: Vec<Write> = plan(&desired, &[])
            .into_iter()
            .filter(|w| !matches!(w, Write::Create { .. }))
            .collect();
        assert!(nothing.is_empty(), "from nothing, only creates");
    }

    #[test]
    fn only_the_first_live_member_cleans_up_and_only_after_departed_nodes() {
        let live = set(&["node1", "node3"]);
        let cases = [
            ("first by name", "node1", true),
            ("not first", "node3", false),
            ("not a member", "node0", false),
        ];
        for (rule, node, want) in cases {
            assert_eq!(is_janitor(node, &live), want, "{rule}");
        }
        assert!(
            !is_janitor("node1", &BTreeSet::new()),
            "no members, no janitor"
        );
        let have = [
            observed("a.node1", StatusKind::Layer2, "a", "node1", &[]),
            observed("a.node2", StatusKind::Bgp, "a", "node2", &[]),
            observed("b.node2", StatusKind::Bgp, "b", "node2", &[]),
            observed("a.node4", StatusKind::Layer2, "a", "node4", &[]),
        ];
        let refs: Vec<&Observed> = have.iter().collect();
        let group = |kind, node: &str| StaleGroup {
            kind,
            namespace: "default".into(),
            node: node.into(),
        };
        assert_eq!(
            stale_groups(&refs, &live),
            vec![
                group(StatusKind::Layer2, "node4"),
                group(StatusKind::Bgp, "node2")
            ],
            "departed nodes' objects go, one group per kind, namespace and node"
        );
    }

    #[test]
    fn the_queue_coalesces_per_object_and_keeps_to_its_rate_of_requests() {
        let t0 = Instant::now();
        let mut q = WriteQueue::new(10, 5, t0);
        let update = |s: &str, d: &[&str]| Write::Update {
            key: (StatusKind::Layer2, key(s)),
            name: format!("{s}.n1"),
            detail: set(d),
        };
        q.replace((0..20).map(|i| update(&format!("s{i:02}"), &["eth0"])));
        q.replace(
            (0..20).map(|i| update(&format!("s{i:02}"), &[if i == 0 { "eth1" } else { "eth0" }])),
        );
        assert_eq!(
            q.len(),
            20,
            "a newer plan replaces the queued writes, it does not add to them"
        );
        let first = q.release(t0);
        assert_eq!(first.len(), 5, "the burst goes at once");
        assert_eq!(
            first[0],
            update("s00", &["eth1"]),
            "the newest content is written"
        );
        assert!(
            q.release(t0).is_empty(),
            "no token left at the same instant"
        );
        assert_eq!(
            q.next_release(t0),
            Some(t0 + Duration::from_millis(100)),
            "one token per 1/rate"
        );
        assert_eq!(
            q.release(t0 + Duration::from_millis(500)).len(),
            5,
            "half a second at 10/s"
        );
        assert_eq!(
            q.release(t0 + Duration::from_secs(60)).len(),
            5,
            "a long pause refills only to the burst"
        );
        assert_eq!(q.len(), 5, "what the rate held back still waits");
        q.replace([Write::Create {
            key: (StatusKind::Layer2, key("x")),
            detail: set(&[]),
        }]);
        assert_eq!(q.len(), 1, "a fresh plan replaces the queue");
    }

    #[test]
    fn a_create_costs_two_requests() {
        let t0 = Instant::now();
        let mut q = WriteQueue::new(10, 5, t0);
        let create = |s: &str| Write::Create {
            key: (StatusKind::Layer2, key(s)),
            detail: set(&[]),
        };
        q.replace((0..5).map(|i| create(&format!("s{i}"))));
        assert_eq!(
            q.release(t0).len(),
            2,
            "five tokens: two creates, one token left"
        );
        assert_eq!(
            q.next_release(t0),
            Some(t0 + Duration::from_millis(100)),
            "the third create waits for its second token"
        );
        assert_eq!(q.release(t0 + Duration::from_millis(100)).len(), 1);
    }
}
