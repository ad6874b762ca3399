//! Layer-2 leader election, pure (SPEC A6).
//!
//! For each Service IP exactly one node announces. The candidates are the
//! nodes whose speaker is a live member, that do not carry the exclusion
//! label, that match the node selectors of an L2Advertisement selecting the
//! address's pool and, for `externalTrafficPolicy: Local`, that host a ready
//! endpoint of the Service. The winner is the candidate with the smallest
//! `sha256(nodeName + "#" + ip)`, `ip` being the Service's first address, so
//! that both families of a dual-stack Service and Services sharing an
//! address land on the same node. Every speaker computes the same answer
//! from the same snapshot; no coordination message is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_config::model::{Config, L2Advertisement, any_selector_matches};
use sha2::{Digest, Sha256};

use crate::announce::{Desired, Interfaces, Layer2Announcement, ServiceIp, ServiceKey};

/// Nodes carrying this label (any value) never announce.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A Service's `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// Any node may receive the traffic (kube-proxy forwards it on).
    #[default]
    Cluster,
    /// Only nodes with a local ready endpoint may receive it.
    Local,
}

/// One `endpoints[]` entry of an EndpointSlice, reduced to what election needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// `nodeName`, when set.
    pub node_name: Option<String>,
    /// `conditions.ready`; unset counts as ready, as Kubernetes documents.
    pub ready: Option<bool>,
}

impl Endpoint {
    /// Whether the endpoint counts as ready (`ready` true or unset).
    pub fn is_ready(&self) -> bool {
        self.ready != Some(false)
    }
}

/// What election needs to know of one LoadBalancer Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceView {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `status.loadBalancer.ingress[].ip`, in status order; the first is the election key.
    pub ips: Vec<IpAddr>,
    /// `spec.externalIPs` to announce as well (the Service asked for it;
    /// none of them in `ips`); the election key when `ips` is empty.
    pub external_ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// The endpoints of all the Service's EndpointSlices.
    pub endpoints: Vec<Endpoint>,
}

impl ServiceView {
    /// Every address to announce: the status IPs, then the external ones.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.iter().chain(&self.external_ips).copied()
    }

    /// Whether `ip` is one of the external IPs (announced only by
    /// advertisements that allow it).
    pub fn is_external(&self, ip: IpAddr) -> bool {
        !self.ips.contains(&ip) && self.external_ips.contains(&ip)
    }

    /// The address whose hash orders the nodes: the first status IP, else
    /// the first external one, so that all of a Service's addresses move together.
    pub fn election_key(&self) -> Option<IpAddr> {
        self.ips.first().or(self.external_ips.first()).copied()
    }

    /// Whether any endpoint anywhere is ready.
    pub fn has_ready_endpoint(&self) -> bool {
        self.endpoints.iter().any(Endpoint::is_ready)
    }

    /// Whether `node` hosts a ready endpoint.
    pub fn has_ready_endpoint_on(&self, node: &str) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.is_ready() && e.node_name.as_deref() == Some(node))
    }
}

/// Everything the speaker knows at one instant; every decision is a function of it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The validated configuration in force.
    pub config: Arc<Config>,
    /// Node names of the live members of the speaker cluster.
    pub members: BTreeSet<String>,
    /// Every Node by name, with its labels.
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
    /// LoadBalancer Services that have addresses.
    pub services: Vec<ServiceView>,
}

/// Why an address is not announced by any node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAnnounced {
    /// The Service has no address in its status yet.
    #[error("the Service has no address")]
    NoAddress,
    /// The address lies in no configured pool.
    #[error("{0} is in no pool")]
    NoPool(IpAddr),
    /// No L2Advertisement selects the address's pool (it may be BGP-only).
    #[error("no L2Advertisement selects pool {0:?}")]
    NotLayer2(String),
    /// The Service has no ready endpoint on any node.
    #[error("the Service has no ready endpoint")]
    NoReadyEndpoint,
    /// Endpoints exist, but no node qualifies.
    #[error("no node qualifies to announce")]
    NoCandidate,
}

/// The election order of a node for an election key: lower wins.
pub fn election_rank(node: &str, key: IpAddr) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(b"#");
    hasher.update(key.to_string().as_bytes());
    hasher.finalize().into()
}

/// The L2Advertisements that announce `ip` (in the pool holding it; an
/// `external` IP only where they allow it).
fn advertisements_for(
    config: &Config,
    ip: IpAddr,
    external: bool,
) -> Result<Vec<&L2Advertisement>, NotAnnounced> {
    let pool = config.pool_of(ip).ok_or(NotAnnounced::NoPool(ip))?;
    let ads: Vec<_> = config
        .l2_advertisements
        .iter()
        .filter(|a| a.announces(&pool.name, external))
        .collect();
    if ads.is_empty() {
        return Err(NotAnnounced::NotLayer2(pool.name.clone()));
    }
    Ok(ads)
}

/// Whether `node` may announce for `service` given the advertisements,
/// membership and labels (every rule but the hash order).
fn qualifies(
    snapshot: &Snapshot,
    ads: &[&L2Advertisement],
    service: &ServiceView,
    node: &str,
) -> bool {
    let Some(labels) = snapshot.nodes.get(node) else {
        // A member without a Node object cannot be checked against selectors.
        return false;
    };
    snapshot.members.contains(node)
        && !labels.contains_key(EXCLUDE_LABEL)
        && ads
            .iter()
            .any(|a| any_selector_matches(&a.node_selectors, labels))
        && (service.traffic_policy == TrafficPolicy::Cluster || service.has_ready_endpoint_on(node))
}

/// The nodes that may announce `ip` of `service`, in name order.
pub fn candidates<'s>(
    snapshot: &'s Snapshot,
    service: &ServiceView,
    ip: IpAddr,
) -> Result<Vec<&'s str>, NotAnnounced> {
    let ads = advertisements_for(&snapshot.config, ip, service.is_external(ip))?;
    if !service.has_ready_endpoint() {
        return Err(NotAnnounced::NoReadyEndpoint);
    }
    Ok(snapshot
        .nodes
        .keys()
        .map(String::as_str)
        .filter(|node| qualifies(snapshot, &ads, service, node))
        .collect())
}

/// The node that announces `ip` of `service`, or why none does.
pub fn layer2_winner<'s>(
    snapshot: &'s Snapshot,
    service: &ServiceView,
    ip: IpAddr,
) -> Result<&'s str, NotAnnounced> {
    let key = service.election_key().ok_or(NotAnnounced::NoAddress)?;
    candidates(snapshot, service, ip)?
        .into_iter()
        // Ties are impossible in practice; the name keeps the order total anyway.
        .min_by_key(|node| (election_rank(node, key), *node))
        .ok_or(NotAnnounced::NoCandidate)
}

/// Where `node` announces `ip`: the union of the `interfaces` of the
/// advertisements that select the address's pool and match the node.
fn interfaces_for(snapshot: &Snapshot, node: &str, ip: IpAddr, external: bool) -> Interfaces {
    let labels = snapshot.nodes.get(node);
    let matching = advertisements_for(&snapshot.config, ip, external)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| labels.is_some_and(|l| any_selector_matches(&a.node_selectors, l)));
    let mut result: Option<Interfaces> = None;
    for ad in matching {
        let these = if ad.interfaces.is_empty() {
            Interfaces::All
        } else {
            Interfaces::Only(ad.interfaces.iter().cloned().collect())
        };
        result = Some(match result {
            None => these,
            Some(acc) => acc.union(these),
        });
    }
    result.unwrap_or_default()
}

/// The layer-2 addresses `node` must announce in `snapshot`, with their
/// interfaces and Services. The speaker's main loop calls it on every change.
pub fn desired_for_node(node: &str, snapshot: &Snapshot) -> Desired {
    let mut desired = Desired::default();
    for service in &snapshot.services {
        for ip in service.addresses() {
            match layer2_winner(snapshot, service, ip) {
                Ok(winner) if winner == node => {
                    let entry = desired.layer2.entry(ServiceIp::new(ip)).or_insert_with(|| {
                        Layer2Announcement {
                            interfaces: interfaces_for(snapshot, node, ip, service.is_external(ip)),
                            services: BTreeSet::new(),
                        }
                    });
                    entry.services.insert(service.key.clone());
                }
                Ok(winner) => {
                    tracing::trace!(service = %service.key, %ip, %winner, "announced by another node");
                }
                Err(reason) => {
                    tracing::trace!(service = %service.key, %ip, %reason, "not announced in layer 2");
                }
            }
        }
    }
    desired
}

/// Builders shared by the election and BGP tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use ferrolb_config::model::{AddressBlock, LabelSelector, Origin, Pool};

    pub(crate) fn pool(name: &str, nets: &[&str]) -> Pool {
        Pool {
            name: name.into(),
            blocks: nets
                .iter()
                .map(|n| AddressBlock::from_net(n.parse().unwrap()))
                .collect(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
            origin: Origin::ConfigMap { index: 0 },
        }
    }

    pub(crate) fn selector(key: &str, value: &str) -> LabelSelector {
        LabelSelector {
            match_labels: [(key.to_string(), value.to_string())].into(),
            match_expressions: vec![],
        }
    }

    pub(crate) fn ready_on(node: &str) -> Endpoint {
        Endpoint {
            node_name: Some(node.into()),
            ready: Some(true),
        }
    }

    pub(crate) fn service(
        name: &str,
        ips: &[&str],
        policy: TrafficPolicy,
        endpoints: Vec<Endpoint>,
    ) -> ServiceView {
        ServiceView {
            key: ServiceKey::new("default", name),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            external_ips: Vec::new(),
            traffic_policy: policy,
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use ferrolb_config::model::LabelSelector;

    const POOL_V4: &str = "10.0.0.0/24";
    const POOL_V6: &str = "fc00::/120";

    fn l2(
        name: &str,
        pools: &[&str],
        selectors: Vec<LabelSelector>,
        ifs: &[&str],
    ) -> L2Advertisement {
        L2Advertisement {
            name: name.into(),
            pools: pools.iter().map(|s| s.to_string()).collect(),
            node_selectors: selectors,
            interfaces: ifs.iter().map(|s| s.to_string()).collect(),
            external_ips: false,
        }
    }

    /// Three live, unlabelled nodes; one layer-2 pool (v4 + v6) for all of them;
    /// a BGP-only pool `bgp`.
    fn base() -> Snapshot {
        let config = Config {
            pools: vec![
                pool("l2", &[POOL_V4, POOL_V6]),
                pool("bgp", &["10.9.0.0/24"]),
            ],
            l2_advertisements: vec![l2("l2", &["l2"], vec![], &[])],
            ..Config::default()
        };
        Snapshot {
            config: Arc::new(config),
            members: ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect(),
            nodes: ["n1", "n2", "n3"]
                .iter()
                .map(|s| (s.to_string(), BTreeMap::new()))
                .collect(),
            services: vec![],
        }
    }

    /// The node of `nodes` with the smallest sha256(node#key), computed here
    /// independently of the code under test (hex strings compare like bytes).
    fn expected_min(nodes: &[&str], key: &str) -> String {
        nodes
            .iter()
            .min_by_key(|n| {
                let d = Sha256::digest(format!("{n}#{key}").as_bytes());
                d.iter().map(|b| format!("{b:02x}")).collect::<String>()
            })
            .unwrap()
            .to_string()
    }

    fn set_config(s: &mut Snapshot, f: impl FnOnce(&mut Config)) {
        let mut c = (*s.config).clone();
        f(&mut c);
        s.config = Arc::new(c);
    }

    fn everyone_ready() -> Vec<Endpoint> {
        vec![ready_on("n1"), ready_on("n2"), ready_on("n3")]
    }

    /// One case: a snapshot change, the Service, and the nodes that must be
    /// the candidates (the winner must then be their hash minimum), or the
    /// reason nothing is announced.
    struct Case {
        rule: &'static str,
        edit: fn(&mut Snapshot),
        service: fn() -> ServiceView,
        want: Result<&'static [&'static str], NotAnnounced>,
    }

    fn cluster_service() -> ServiceView {
        service(
            "web",
            &["10.0.0.5"],
            TrafficPolicy::Cluster,
            everyone_ready(),
        )
    }

    fn cases() -> Vec<Case> {
        vec![
            Case {
                rule: "all_live_members_are_candidates",
                edit: |_| {},
                service: cluster_service,
                want: Ok(&["n1", "n2", "n3"]),
            },
            Case {
                rule: "a_node_that_is_not_a_live_member_is_no_candidate",
                edit: |s| {
                    s.members.remove("n2");
                },
                service: cluster_service,
                want: Ok(&["n1", "n3"]),
            },
            Case {
                rule: "a_member_without_a_node_object_is_no_candidate",
                edit: |s| {
                    s.members.insert("ghost".into());
                    s.nodes.remove("n3");
                },
                service: cluster_service,
                want: Ok(&["n1", "n2"]),
            },
            Case {
                rule: "the_exclusion_label_removes_a_node_whatever_its_value",
                edit: |s| {
                    s.nodes.insert(
                        "n1".into(),
                        [(EXCLUDE_LABEL.to_string(), String::new())].into(),
                    );
                    s.nodes.insert(
                        "n2".into(),
                        [(EXCLUDE_LABEL.to_string(), "false".to_string())].into(),
                    );
                },
                service: cluster_service,
                want: Ok(&["n3"]),
            },
            Case {
                rule: "node_selectors_restrict_candidates",
                edit: |s| {
                    s.nodes
                        .insert("n2".into(), [("zone".to_string(), "a".to_string())].into());
                    set_config(s, |c| {
                        c.l2_advertisements =
                            vec![l2("l2", &["l2"], vec![selector("zone", "a")], &[])];
                    });
                },
                service: cluster_service,
                want: Ok(&["n2"]),
            },
            Case {
                rule: "selectors_of_one_advertisement_are_ored",
                edit: |s| {
                    s.nodes
                        .insert("n1".into(), [("zone".to_string(), "a".to_string())].into());
                    s.nodes
                        .insert("n3".into(), [("zone".to_string(), "b".to_string())].into());
                    set_config(s, |c| {
                        c.l2_advertisements = vec![l2(
                            "l2",
                            &["l2"],
                            vec![selector("zone", "a"), selector("zone", "b")],
                            &[],
                        )];
                    });
                },
                service: cluster_service,
                want: Ok(&["n1", "n3"]),
            },
            Case {
                rule: "a_node_qualifies_if_any_advertisement_of_the_pool_matches",
                edit: |s| {
                    s.nodes
                        .insert("n1".into(), [("zone".to_string(), "a".to_string())].into());
                    s.nodes
                        .insert("n2".into(), [("rack".to_string(), "r1".to_string())].into());
                    set_config(s, |c| {
                        c.l2_advertisements = vec![
                            l2("za", &["l2"], vec![selector("zone", "a")], &[]),
                            l2("r1", &["l2"], vec![selector("rack", "r1")], &[]),
                            // Selects another pool: must not widen this pool's candidates.
                            l2("other", &["bgp"], vec![], &[]),
                        ];
                    });
                },
                service: cluster_service,
                want: Ok(&["n1", "n2"]),
            },
            Case {
                rule: "no_matching_node_means_no_candidate",
                edit: |s| {
                    set_config(s, |c| {
                        c.l2_advertisements =
                            vec![l2("l2", &["l2"], vec![selector("zone", "nowhere")], &[])];
                    });
                },
                service: cluster_service,
                want: Err(NotAnnounced::NoCandidate),
            },
            Case {
                rule: "a_pool_without_l2_advertisement_is_not_announced_in_layer2",
                edit: |_| {},
                service: || service("b", &["10.9.0.1"], TrafficPolicy::Cluster, everyone_ready()),
                want: Err(NotAnnounced::NotLayer2("bgp".into())),
            },
            Case {
                rule: "an_address_outside_every_pool_is_not_announced",
                edit: |_| {},
                service: || {
                    service(
                        "x",
                        &["192.0.2.1"],
                        TrafficPolicy::Cluster,
                        everyone_ready(),
                    )
                },
                want: Err(NotAnnounced::NoPool("192.0.2.1".parse().unwrap())),
            },
            Case {
                rule: "local_policy_keeps_only_nodes_with_a_ready_endpoint",
                edit: |_| {},
                service: || {
                    service(
                        "l",
                        &["10.0.0.5"],
                        TrafficPolicy::Local,
                        vec![
                            ready_on("n2"),
                            Endpoint {
                                node_name: Some("n1".into()),
                                ready: Some(false),
                            },
                        ],
                    )
                },
                want: Ok(&["n2"]),
            },
            Case {
                rule: "an_endpoint_with_ready_unset_counts_as_ready",
                edit: |_| {},
                service: || {
                    service(
                        "l",
                        &["10.0.0.5"],
                        TrafficPolicy::Local,
                        vec![Endpoint {
                            node_name: Some("n3".into()),
                            ready: None,
                        }],
                    )
                },
                want: Ok(&["n3"]),
            },
            Case {
                rule: "local_policy_with_no_ready_endpoint_anywhere_is_not_announced",
                edit: |_| {},
                service: || {
                    service(
                        "l",
                        &["10.0.0.5"],
                        TrafficPolicy::Local,
                        vec![Endpoint {
                            node_name: Some("n1".into()),
                            ready: Some(false),
                        }],
                    )
                },
                want: Err(NotAnnounced::NoReadyEndpoint),
            },
            Case {
                rule: "local_policy_with_ready_endpoints_only_on_non_candidates_has_no_candidate",
                edit: |s| {
                    s.members.remove("n1");
                },
                service: || {
                    service(
                        "l",
                        &["10.0.0.5"],
                        TrafficPolicy::Local,
                        vec![ready_on("n1")],
                    )
                },
                want: Err(NotAnnounced::NoCandidate),
            },
            Case {
                rule: "cluster_policy_with_no_ready_endpoint_anywhere_is_not_announced",
                edit: |_| {},
                service: || service("c", &["10.0.0.5"], TrafficPolicy::Cluster, vec![]),
                want: Err(NotAnnounced::NoReadyEndpoint),
            },
            Case {
                rule: "cluster_policy_ignores_where_endpoints_run",
                edit: |_| {},
                service: || {
                    service(
                        "c",
                        &["10.0.0.5"],
                        TrafficPolicy::Cluster,
                        vec![ready_on("elsewhere")],
                    )
                },
                want: Ok(&["n1", "n2", "n3"]),
            },
            Case {
                rule: "a_service_without_address_is_not_announced",
                edit: |_| {},
                service: || service("none", &[], TrafficPolicy::Cluster, everyone_ready()),
                want: Err(NotAnnounced::NoAddress),
            },
        ]
    }

    #[test]
    fn election_rules() {
        for case in cases() {
            let mut snap = base();
            (case.edit)(&mut snap);
            let svc = (case.service)();
            let ip = svc
                .ips
                .first()
                .copied()
                .unwrap_or_else(|| "10.0.0.5".parse().unwrap());
            let got = layer2_winner(&snap, &svc, ip);
            match case.want {
                Ok(nodes) => {
                    assert_eq!(
                        candidates(&snap, &svc, ip).as_deref(),
                        Ok(nodes),
                        "{}: candidates",
                        case.rule
                    );
                    let want = expected_min(nodes, &ip.to_string());
                    assert_eq!(got, Ok(want.as_str()), "{}: winner", case.rule);
                }
                Err(reason) => assert_eq!(got, Err(reason), "{}", case.rule),
            }
        }
    }

    #[test]
    fn winner_is_the_smallest_sha256_of_node_hash_ip() {
        let mut snap = base();
        let names: Vec<String> = (0..20).map(|i| format!("node-{i}")).collect();
        snap.members = names.iter().cloned().collect();
        snap.nodes = names.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut winners = BTreeSet::new();
        for last in 1..=50u8 {
            let ip = format!("10.0.0.{last}");
            let svc = service("s", &[&ip], TrafficPolicy::Cluster, vec![ready_on("x")]);
            let got = layer2_winner(&snap, &svc, svc.ips[0]).unwrap();
            assert_eq!(got, expected_min(&refs, &ip), "{ip}");
            winners.insert(got.to_string());
        }
        assert!(
            winners.len() > 5,
            "the hash spreads addresses over nodes: {winners:?}"
        );
    }

    #[test]
    fn the_first_status_ip_is_the_election_key_for_every_family() {
        let mut snap = base();
        for (first, second) in [("10.0.0.7", "fc00::7"), ("fc00::7", "10.0.0.7")] {
            let svc = service(
                "ds",
                &[first, second],
                TrafficPolicy::Cluster,
                everyone_ready(),
            );
            snap.services = vec![svc.clone()];
            let want = expected_min(&["n1", "n2", "n3"], first);
            for ip in &svc.ips {
                assert_eq!(
                    layer2_winner(&snap, &svc, *ip),
                    Ok(want.as_str()),
                    "{first} then {second}: {ip}"
                );
            }
            let desired = desired_for_node(&want, &snap);
            assert_eq!(
                desired.layer2.len(),
                2,
                "the winner announces both families"
            );
        }
    }

    #[test]
    fn external_ips_are_announced_only_where_an_advertisement_allows_them() {
        let with_external = |status: &[&str], external: &[&str], policy, endpoints| {
            let mut svc = service("ext", status, policy, endpoints);
            svc.external_ips = external.iter().map(|s| s.parse().unwrap()).collect();
            svc
        };
        let allow =
            |s: &mut Snapshot| set_config(s, |c| c.l2_advertisements[0].external_ips = true);
        let announced_by = |snap: &Snapshot| -> BTreeMap<String, Vec<String>> {
            ["n1", "n2", "n3"]
                .into_iter()
                .map(|n| {
                    let ips = desired_for_node(n, snap)
                        .layer2
                        .keys()
                        .map(|ip| ip.to_string())
                        .collect();
                    (n.to_string(), ips)
                })
                .filter(|(_, ips): &(String, Vec<String>)| !ips.is_empty())
                .collect()
        };
        struct Ext {
            rule: &'static str,
            allowed: bool,
            service: ServiceView,
            /// (election key, addresses its winner announces); None: nobody announces.
            want: Option<(&'static str, Vec<&'static str>)>,
        }
        let cases = vec![
            Ext {
                rule: "off_by_default_in_the_advertisement",
                allowed: false,
                service: with_external(
                    &[],
                    &["10.0.0.20"],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                ),
                want: None,
            },
            Ext {
                rule: "an_allowed_external_ip_is_elected_by_its_own_hash",
                allowed: true,
                service: with_external(
                    &[],
                    &["10.0.0.20"],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                ),
                want: Some(("10.0.0.20", vec!["10.0.0.20"])),
            },
            Ext {
                rule: "with_a_status_ip_the_external_one_follows_it",
                allowed: true,
                service: with_external(
                    &["10.0.0.5"],
                    &["10.0.0.20"],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                ),
                want: Some(("10.0.0.5", vec!["10.0.0.5", "10.0.0.20"])),
            },
            Ext {
                rule: "a_disallowed_external_ip_does_not_stop_the_status_ip",
                allowed: false,
                service: with_external(
                    &["10.0.0.5"],
                    &["10.0.0.20"],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                ),
                want: Some(("10.0.0.5", vec!["10.0.0.5"])),
            },
            Ext {
                rule: "an_external_ip_outside_every_pool_is_not_announced",
                allowed: true,
                service: with_external(
                    &[],
                    &["172.16.0.1"],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                ),
                want: None,
            },
            Ext {
                rule: "local_policy_holds_for_external_ips",
                allowed: true,
                service: with_external(
                    &[],
                    &["10.0.0.20"],
                    TrafficPolicy::Local,
                    vec![ready_on("n2")],
                ),
                want: Some(("10.0.0.20", vec!["10.0.0.20"])),
            },
        ];
        for case in cases {
            let mut snap = base();
            if case.allowed {
                allow(&mut snap);
            }
            let local = case.service.traffic_policy == TrafficPolicy::Local;
            snap.services = vec![case.service];
            let got = announced_by(&snap);
            match case.want {
                None => assert!(got.is_empty(), "{}: {got:?}", case.rule),
                Some((key, ips)) => {
                    let winner = if local {
                        "n2".to_string()
                    } else {
                        expected_min(&["n1", "n2", "n3"], key)
                    };
                    let want = BTreeMap::from([(
                        winner,
                        ips.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    )]);
                    assert_eq!(got, want, "{}", case.rule);
                }
            }
        }
    }

    #[test]
    fn services_sharing_an_ip_land_on_one_node_and_one_entry() {
        let mut snap = base();
        snap.services = vec![
            service("a", &["10.0.0.9"], TrafficPolicy::Cluster, everyone_ready()),
            service("b", &["10.0.0.9"], TrafficPolicy::Cluster, everyone_ready()),
        ];
        let owners: Vec<_> = ["n1", "n2", "n3"]
            .into_iter()
            .filter(|n| !desired_for_node(n, &snap).is_empty())
            .collect();
        assert_eq!(owners.len(), 1, "exactly one node announces: {owners:?}");
        let d = desired_for_node(owners[0], &snap);
        let entry = &d.layer2[&ServiceIp::new("10.0.0.9".parse().unwrap())];
        assert_eq!(entry.services.len(), 2);
    }

    #[test]
    fn exactly_one_node_announces_each_address() {
        let mut snap = base();
        snap.services = (1..=200u8)
            .map(|i| {
                service(
                    &format!("s{i}"),
                    &[&format!("10.0.0.{i}")],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                )
            })
            .collect();
        let mut seen = BTreeMap::new();
        for node in ["n1", "n2", "n3"] {
            for ip in desired_for_node(node, &snap).layer2.keys() {
                assert!(seen.insert(*ip, node).is_none(), "{ip} announced twice");
            }
        }
        assert_eq!(seen.len(), 200);
    }

    #[test]
    fn failover_moves_only_the_dead_nodes_addresses() {
        let mut snap = base();
        snap.services = (1..=60u8)
            .map(|i| {
                service(
                    &format!("s{i}"),
                    &[&format!("10.0.0.{i}")],
                    TrafficPolicy::Cluster,
                    everyone_ready(),
                )
            })
            .collect();
        let before: BTreeMap<_, _> = ["n1", "n2", "n3"]
            .into_iter()
            .map(|n| (n, desired_for_node(n, &snap)))
            .collect();
        snap.members.remove("n1");
        let after: BTreeMap<_, _> = ["n2", "n3"]
            .into_iter()
            .map(|n| (n, desired_for_node(n, &snap)))
            .collect();
        for n in ["n2", "n3"] {
            let changes = after[n].layer2_changes(&before[n]);
            assert!(changes.lost.is_empty(), "{n} keeps what it had");
            for ip in &changes.gained {
                assert!(
                    before["n1"].layer2.contains_key(ip),
                    "{n} only gains n1's addresses"
                );
            }
        }
        let total: usize = after.values().map(|d| d.layer2.len()).sum();
        assert_eq!(total, 60);
    }

    #[test]
    fn interfaces_come_from_the_matching_advertisements() {
        let cases: Vec<(&str, Vec<L2Advertisement>, Interfaces)> = vec![
            (
                "no_interfaces_means_all",
                vec![l2("a", &["l2"], vec![], &[])],
                Interfaces::All,
            ),
            (
                "interfaces_restrict",
                vec![l2("a", &["l2"], vec![], &["eth1"])],
                Interfaces::Only(["eth1".to_string()].into()),
            ),
            (
                "interfaces_of_matching_advertisements_are_united",
                vec![
                    l2("a", &["l2"], vec![], &["eth1"]),
                    l2("b", &["l2"], vec![], &["eth2"]),
                    l2("c", &["l2"], vec![selector("zone", "x")], &["eth9"]),
                ],
                Interfaces::Only(["eth1".to_string(), "eth2".to_string()].into()),
            ),
            (
                "an_unrestricted_matching_advertisement_allows_all",
                vec![
                    l2("a", &["l2"], vec![], &["eth1"]),
                    l2("b", &["l2"], vec![], &[]),
                ],
                Interfaces::All,
            ),
        ];
        for (rule, ads, want) in cases {
            let mut snap = base();
            set_config(&mut snap, |c| c.l2_advertisements = ads);
            snap.services = vec![cluster_service()];
            let svc = &snap.services[0];
            let winner = layer2_winner(&snap, svc, svc.ips[0]).unwrap().to_string();
            let d = desired_for_node(&winner, &snap);
            let got = &d.layer2[&ServiceIp::new(svc.ips[0])].interfaces;
            assert_eq!(got, &want, "{rule}");
        }
    }

    #[test]
    fn local_policy_moves_with_the_endpoint() {
        let mut snap = base();
        snap.services = vec![service(
            "l",
            &["10.0.0.5"],
            TrafficPolicy::Local,
            vec![ready_on("n1")],
        )];
        assert!(!desired_for_node("n1", &snap).is_empty());
        snap.services[0].endpoints = vec![ready_on("n3")];
        assert!(desired_for_node("n1", &snap).is_empty(), "n1 stops at once");
        assert!(!desired_for_node("n3", &snap).is_empty(), "n3 takes over");
    }
}
