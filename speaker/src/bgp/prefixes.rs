//! What this node announces over BGP, to which peer, with which attributes
//! (SPEC A7), computed purely from a [`Snapshot`].
//!
//! Unlike layer 2 there is no election: every node that qualifies announces,
//! and a router with multipath spreads the traffic over them (ECMP).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_config::model::{BfdProfile, BgpAdvertisement, Community, Peer, any_selector_matches};
use ipnet::IpNet;

use crate::announce::{ServiceIp, ServiceKey, ServiceSet};
use crate::election::{EXCLUDE_LABEL, ServiceView, Snapshot, TrafficPolicy};

/// The path attributes a prefix carries beyond those fixed by the session
/// (ORIGIN, AS_PATH, NEXT_HOP).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteAttributes {
    /// LOCAL_PREF; only ever set for iBGP peers, and only when configured.
    pub local_pref: Option<u32>,
    /// Standard (COMMUNITIES) and large (LARGE_COMMUNITY) communities.
    pub communities: BTreeSet<Community>,
}

/// The prefixes announced to one peer, with their attributes.
pub type PeerRoutes = BTreeMap<IpNet, RouteAttributes>;

/// One peer this node must hold a session with, and what it announces there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDesired {
    /// The peer's configuration (its password may still name a Secret).
    pub peer: Peer,
    /// The prefixes to announce to it, shared with the session that
    /// announces them (at 10,000 Services a copy is a megabyte).
    pub routes: Arc<PeerRoutes>,
    /// The BFD profile the peer names, resolved (validation guarantees it
    /// exists); `None`: no BFD on this session.
    pub bfd: Option<BfdProfile>,
}

/// Everything this node must do over BGP right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpDesired {
    /// The peers whose node selectors match this node, by peer name.
    pub peers: BTreeMap<String, PeerDesired>,
    /// The Service addresses announced to at least one peer, with their
    /// Services (for `metallb_speaker_announced` and `nodeAssigned` Events).
    pub announced: BTreeMap<ServiceIp, ServiceSet>,
}

impl BgpDesired {
    /// The (Service, address) pairs announced in `self` but not in `previous`.
    pub fn newly_announced(&self, previous: &BgpDesired) -> Vec<(ServiceKey, ServiceIp)> {
        let mut out = Vec::new();
        for (ip, services) in &self.announced {
            let before = previous.announced.get(ip);
            for service in services {
                if !before.is_some_and(|b| b.contains(service)) {
                    out.push((service.clone(), *ip));
                }
            }
        }
        out
    }
}

/// The prefix announced for `ip` under `ad`: the address masked to the
/// advertisement's aggregation length of its family.
pub fn aggregated_prefix(ip: IpAddr, ad: &BgpAdvertisement) -> IpNet {
    let len = match ip {
        IpAddr::V4(_) => ad.aggregation_length.min(32),
        IpAddr::V6(_) => ad.aggregation_length_v6.min(128),
    };
    // Lengths are clamped to the family's maximum, so `new` cannot fail;
    // the host route is the harmless fallback all the same.
    IpNet::new(ip, len)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// Whether `node` may announce `service`: a ready endpoint anywhere for
/// Cluster policy, on this node for Local policy.
fn service_qualifies(service: &ServiceView, node: &str) -> bool {
    match service.traffic_policy {
        TrafficPolicy::Cluster => service.has_ready_endpoint(),
        TrafficPolicy::Local => service.has_ready_endpoint_on(node),
    }
}

/// Whether the advertisement applies to `peer` (empty `peers` = all peers).
fn applies_to(ad: &BgpAdvertisement, peer: &Peer) -> bool {
    ad.peers.is_empty() || ad.peers.contains(&peer.name)
}

/// The attributes `ad` gives a prefix when sent to `peer`.
fn attributes(ad: &BgpAdvertisement, peer: &Peer) -> RouteAttributes {
    RouteAttributes {
        local_pref: if peer.is_ibgp() { ad.local_pref } else { None },
        communities: ad.communities.iter().copied().collect(),
    }
}

/// Two advertisements giving one peer the same prefix are merged: the union
/// of their communities and the highest LOCAL_PREF, so that the result does
/// not depend on the order of the configuration.
fn merge(into: &mut RouteAttributes, other: RouteAttributes) {
    into.local_pref = match (into.local_pref, other.local_pref) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    into.communities.extend(other.communities);
}

/// The BGP state `node` must have in `snapshot`: its peers (those whose node
/// selectors match its labels) and, per peer, the prefixes to announce.
///
/// A Service address is announced when a BGPAdvertisement selects its pool
/// and matches this node, and the Service has a ready endpoint (anywhere for
/// Cluster policy, here for Local). A node carrying the
/// `exclude-from-external-load-balancers` label keeps its sessions but
/// announces nothing; a node missing from the snapshot has no sessions
/// (its labels cannot be matched).
pub fn desired_bgp(node: &str, snapshot: &Snapshot) -> BgpDesired {
    let mut desired = BgpDesired::default();
    let Some(labels) = snapshot.nodes.get(node) else {
        return desired;
    };
    let config = &snapshot.config;
    for peer in &config.peers {
        if any_selector_matches(&peer.node_selectors, labels) {
            desired.peers.insert(
                peer.name.clone(),
                PeerDesired {
                    peer: peer.clone(),
                    routes: Arc::new(PeerRoutes::new()),
                    bfd: peer.bfd_profile.as_ref().and_then(|name| {
                        config
                            .bfd_profiles
                            .iter()
                            .find(|b| &b.name == name)
                            .cloned()
                    }),
                },
            );
        }
    }
    if labels.contains_key(EXCLUDE_LABEL) || desired.peers.is_empty() {
        return desired;
    }
    for service in &snapshot.services {
        if !service_qualifies(service, node) {
            continue;
        }
        for ip in service.addresses() {
            let Some(pool) = config.pool_of(ip) else {
                continue;
            };
            let external = service.is_external(ip);
            let ads = config.bgp_advertisements.iter().filter(|ad| {
                ad.announces(&pool.name, external)
                    && any_selector_matches(&ad.node_selectors, labels)
            });
            let mut announced = false;
            for ad in ads {
                let prefix = aggregated_prefix(ip, ad);
                for wanted in desired.peers.values_mut() {
                    if !applies_to(ad, &wanted.peer) {
                        continue;
                    }
                    let attrs = attributes(ad, &wanted.peer);
                    // Unique while being built: make_mut does not copy.
                    match Arc::make_mut(&mut wanted.routes).get_mut(&prefix) {
                        Some(existing) => merge(existing, attrs),
                        None => {
                            Arc::make_mut(&mut wanted.routes).insert(prefix, attrs);
                        }
                    }
                    announced = true;
                }
            }
            if announced {
                desired
                    .announced
                    .entry(ServiceIp::new(ip))
                    .or_default()
                    .insert(service.key.clone());
            }
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Duration;

    use ferrolb_config::model::{Config, LabelSelector};

    use crate::election::Endpoint;
    use crate::election::fixtures::*;

    fn peer(name: &str, my_asn: u32, peer_asn: u32, selectors: Vec<LabelSelector>) -> Peer {
        Peer {
            name: name.into(),
            my_asn,
            peer_asn,
            address: "192.0.2.1".parse().unwrap(),
            port: 179,
            source_address: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            router_id: None,
            node_selectors: selectors,
            password: None,
            ebgp_multihop: false,
            bfd_profile: None,
            graceful_restart: false,
        }
    }

    fn ad(name: &str, pools: &[&str]) -> BgpAdvertisement {
        BgpAdvertisement {
            name: name.into(),
            pools: pools.iter().map(|s| s.to_string()).collect(),
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: vec![],
            node_selectors: vec![],
            peers: vec![],
            external_ips: false,
        }
    }

    fn not_ready_on(node: &str) -> Endpoint {
        Endpoint {
            node_name: Some(node.into()),
            ready: Some(false),
        }
    }

    /// Node n1 (zone a) and n2 (zone b); pool `bgp` (v4 + v6) announced by
    /// one default advertisement to one iBGP peer `ibgp` and one eBGP peer
    /// `ebgp`; pool `l2` is not announced in BGP.
    fn base() -> Snapshot {
        let config = Config {
            pools: vec![
                pool("bgp", &["10.0.0.0/24", "fc00::/120"]),
                pool("l2", &["10.9.0.0/24"]),
            ],
            bgp_advertisements: vec![ad("bgp-0", &["bgp"])],
            peers: vec![
                peer("ibgp", 64512, 64512, vec![]),
                peer("ebgp", 64512, 65000, vec![]),
            ],
            ..Config::default()
        };
        Snapshot {
            config: Arc::new(config),
            members: Default::default(),
            nodes: [
                (
                    "n1".to_string(),
                    [("zone".to_string(), "a".to_string())].into(),
                ),
                (
                    "n2".to_string(),
                    [("zone".to_string(), "b".to_string())].into(),
                ),
            ]
            .into(),
            services: vec![],
        }
    }

    fn with_config(mut snapshot: Snapshot, edit: impl FnOnce(&mut Config)) -> Snapshot {
        let mut config = (*snapshot.config).clone();
        edit(&mut config);
        snapshot.config = Arc::new(config);
        snapshot
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The prefixes per peer, for compact expectations.
    fn table(desired: &BgpDesired) -> BTreeMap<String, Vec<String>> {
        desired
            .peers
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    p.routes.keys().map(|n| n.to_string()).collect(),
                )
            })
            .collect()
    }

    fn expect(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(peer, nets)| {
                (
                    peer.to_string(),
                    nets.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn external_ips_go_out_only_where_the_advertisement_allows_them() {
        let mut svc = service("ext", &[], TrafficPolicy::Cluster, vec![ready_on("n1")]);
        svc.external_ips = vec!["10.0.0.20".parse().unwrap(), "10.9.0.1".parse().unwrap()];
        let cases = [
            ("off by default", false, vec![]),
            // 10.9.0.1 lies in the layer-2 pool: no BGP advertisement selects it.
            (
                "allowed: only the address in an announced pool",
                true,
                vec!["10.0.0.20/32"],
            ),
        ];
        for (rule, allowed, want) in cases {
            let mut snap = with_config(base(), |c| c.bgp_advertisements[0].external_ips = allowed);
            snap.services = vec![svc.clone()];
            let got = table(&desired_bgp("n1", &snap));
            let want: Vec<String> = want.into_iter().map(String::from).collect();
            assert_eq!(got.get("ebgp"), Some(&want), "{rule}");
        }
    }

    #[test]
    fn prefixes_follow_policy_pools_and_selectors() {
        let web_cluster = || {
            service(
                "web",
                &["10.0.0.5", "fc00::5"],
                TrafficPolicy::Cluster,
                vec![ready_on("n2")],
            )
        };
        type Case = (
            &'static str,
            Snapshot,
            &'static str,
            BTreeMap<String, Vec<String>>,
        );
        let cases: Vec<Case> = vec![
            (
                "cluster_policy_announces_with_a_ready_endpoint_anywhere",
                Snapshot {
                    services: vec![web_cluster()],
                    ..base()
                },
                "n1",
                expect(&[
                    ("ebgp", &["10.0.0.5/32", "fc00::5/128"]),
                    ("ibgp", &["10.0.0.5/32", "fc00::5/128"]),
                ]),
            ),
            (
                "cluster_policy_without_ready_endpoint_withdraws",
                Snapshot {
                    services: vec![service(
                        "web",
                        &["10.0.0.5"],
                        TrafficPolicy::Cluster,
                        vec![not_ready_on("n1")],
                    )],
                    ..base()
                },
                "n1",
                expect(&[("ebgp", &[]), ("ibgp", &[])]),
            ),
            (
                "local_policy_announces_only_where_an_endpoint_is_ready",
                Snapshot {
                    services: vec![service(
                        "web",
                        &["10.0.0.5"],
                        TrafficPolicy::Local,
                        vec![ready_on("n2"), not_ready_on("n1")],
                    )],
                    ..base()
                },
                "n1",
                expect(&[("ebgp", &[]), ("ibgp", &[])]),
            ),
            (
                "local_policy_announces_from_the_endpoint_node",
                Snapshot {
                    services: vec![service(
                        "web",
                        &["10.0.0.5"],
                        TrafficPolicy::Local,
                        vec![ready_on("n2")],
                    )],
                    ..base()
                },
                "n2",
                expect(&[("ebgp", &["10.0.0.5/32"]), ("ibgp", &["10.0.0.5/32"])]),
            ),
            (
                "addresses_of_pools_without_bgp_advertisement_are_not_announced",
                Snapshot {
                    services: vec![service(
                        "l2",
                        &["10.9.0.1"],
                        TrafficPolicy::Cluster,
                        vec![ready_on("n1")],
                    )],
                    ..base()
                },
                "n1",
                expect(&[("ebgp", &[]), ("ibgp", &[])]),
            ),
            (
                "aggregation_lengths_mask_each_family",
                with_config(
                    Snapshot {
                        services: vec![web_cluster()],
                        ..base()
                    },
                    |c| {
                        c.bgp_advertisements[0].aggregation_length = 24;
                        c.bgp_advertisements[0].aggregation_length_v6 = 64;
                    },
                ),
                "n1",
                expect(&[
                    ("ebgp", &["10.0.0.0/24", "fc00::/64"]),
                    ("ibgp", &["10.0.0.0/24", "fc00::/64"]),
                ]),
            ),
            (
                "peers_list_restricts_an_advertisement",
                with_config(
                    Snapshot {
                        services: vec![web_cluster()],
                        ..base()
                    },
                    |c| c.bgp_advertisements[0].peers = vec!["ebgp".into()],
                ),
                "n1",
                expect(&[("ebgp", &["10.0.0.5/32", "fc00::5/128"]), ("ibgp", &[])]),
            ),
            (
                "advertisement_node_selectors_restrict_announcing_nodes",
                with_config(
                    Snapshot {
                        services: vec![web_cluster()],
                        ..base()
                    },
                    |c| c.bgp_advertisements[0].node_selectors = vec![selector("zone", "b")],
                ),
                "n1",
                expect(&[("ebgp", &[]), ("ibgp", &[])]),
            ),
            (
                "peer_node_selectors_choose_the_sessions",
                with_config(
                    Snapshot {
                        services: vec![web_cluster()],
                        ..base()
                    },
                    |c| c.peers[0].node_selectors = vec![selector("zone", "b")],
                ),
                "n1",
                expect(&[("ebgp", &["10.0.0.5/32", "fc00::5/128"])]),
            ),
            (
                "an_excluded_node_keeps_sessions_but_announces_nothing",
                {
                    let mut s = Snapshot {
                        services: vec![web_cluster()],
                        ..base()
                    };
                    if let Some(labels) = s.nodes.get_mut("n1") {
                        labels.insert(EXCLUDE_LABEL.into(), String::new());
                    }
                    s
                },
                "n1",
                expect(&[("ebgp", &[]), ("ibgp", &[])]),
            ),
            (
                "an_unknown_node_has_no_sessions",
                Snapshot {
                    services: vec![web_cluster()],
                    ..base()
                },
                "n9",
                expect(&[]),
            ),
        ];
        for (rule, snapshot, node, want) in cases {
            assert_eq!(table(&desired_bgp(node, &snapshot)), want, "{rule}");
        }
    }

    #[test]
    fn attributes_local_pref_for_ibgp_only_and_communities_for_all() {
        let snapshot = with_config(
            Snapshot {
                services: vec![service(
                    "web",
                    &["10.0.0.5"],
                    TrafficPolicy::Cluster,
                    vec![ready_on("n1")],
                )],
                ..base()
            },
            |c| {
                c.bgp_advertisements[0].local_pref = Some(150);
                c.bgp_advertisements[0].communities =
                    vec![Community::Standard(64512, 1), Community::Large(1, 2, 3)];
            },
        );
        let desired = desired_bgp("n1", &snapshot);
        let communities: BTreeSet<Community> =
            [Community::Standard(64512, 1), Community::Large(1, 2, 3)].into();
        let cases = [
            (
                "ibgp_gets_the_configured_local_pref",
                "ibgp",
                RouteAttributes {
                    local_pref: Some(150),
                    communities: communities.clone(),
                },
            ),
            (
                "ebgp_never_gets_local_pref",
                "ebgp",
                RouteAttributes {
                    local_pref: None,
                    communities,
                },
            ),
        ];
        for (rule, peer, want) in cases {
            assert_eq!(
                desired.peers[peer].routes.get(&net("10.0.0.5/32")),
                Some(&want),
                "{rule}"
            );
        }
    }

    #[test]
    fn local_pref_is_absent_unless_configured() {
        let snapshot = Snapshot {
            services: vec![service(
                "web",
                &["10.0.0.5"],
                TrafficPolicy::Cluster,
                vec![ready_on("n1")],
            )],
            ..base()
        };
        let desired = desired_bgp("n1", &snapshot);
        assert_eq!(
            desired.peers["ibgp"].routes[&net("10.0.0.5/32")],
            RouteAttributes::default()
        );
    }

    #[test]
    fn one_prefix_from_two_advertisements_merges_attributes() {
        let snapshot = with_config(
            Snapshot {
                services: vec![
                    service(
                        "a",
                        &["10.0.0.5"],
                        TrafficPolicy::Cluster,
                        vec![ready_on("n1")],
                    ),
                    service(
                        "b",
                        &["10.0.0.6"],
                        TrafficPolicy::Cluster,
                        vec![ready_on("n1")],
                    ),
                ],
                ..base()
            },
            |c| {
                let mut first = ad("first", &["bgp"]);
                first.aggregation_length = 24;
                first.local_pref = Some(100);
                first.communities = vec![Community::Standard(1, 1)];
                let mut second = ad("second", &["bgp"]);
                second.aggregation_length = 24;
                second.local_pref = Some(200);
                second.communities = vec![Community::Standard(2, 2)];
                c.bgp_advertisements = vec![first, second];
            },
        );
        let desired = desired_bgp("n1", &snapshot);
        let routes = &desired.peers["ibgp"].routes;
        assert_eq!(routes.len(), 1, "both addresses aggregate to one /24");
        assert_eq!(
            routes[&net("10.0.0.0/24")],
            RouteAttributes {
                local_pref: Some(200),
                communities: [Community::Standard(1, 1), Community::Standard(2, 2)].into(),
            }
        );
        assert_eq!(
            desired.announced.len(),
            2,
            "both Service addresses count as announced"
        );
    }

    #[test]
    fn announced_lists_services_and_newly_announced_only_the_new_ones() {
        let before = desired_bgp(
            "n1",
            &Snapshot {
                services: vec![service(
                    "a",
                    &["10.0.0.5"],
                    TrafficPolicy::Cluster,
                    vec![ready_on("n1")],
                )],
                ..base()
            },
        );
        let after = desired_bgp(
            "n1",
            &Snapshot {
                services: vec![
                    service(
                        "a",
                        &["10.0.0.5"],
                        TrafficPolicy::Cluster,
                        vec![ready_on("n1")],
                    ),
                    service(
                        "b",
                        &["fc00::7"],
                        TrafficPolicy::Cluster,
                        vec![ready_on("n1")],
                    ),
                ],
                ..base()
            },
        );
        let ip = ServiceIp::new(IpAddr::V6("fc00::7".parse().unwrap()));
        assert_eq!(
            after.newly_announced(&before),
            vec![(ServiceKey::new("default", "b"), ip)]
        );
        assert!(
            after.newly_announced(&after).is_empty(),
            "a resync records nothing"
        );
    }

    #[test]
    fn aggregation_clamps_to_the_family() {
        let mut a = ad("x", &[]);
        a.aggregation_length = 40;
        a.aggregation_length_v6 = 200;
        assert_eq!(
            aggregated_prefix(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)), &a),
            net("10.1.2.3/32")
        );
        assert_eq!(
            aggregated_prefix("fc00::1".parse().unwrap(), &a),
            net("fc00::1/128")
        );
    }
}
