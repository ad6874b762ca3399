//! Model-based property test: random sequences of Service creations,
//! updates, deletions, config changes and controller restarts, driven the
//! way the controller drives the allocator, checked against oracles written
//! independently of the allocator's code:
//! - no IP is held by two Services that may not share it (rule 6);
//! - no address is handed out outside its pool, or against the Service's
//!   requested IPs, pool annotation, families, avoid-buggy-ips and
//!   serviceAllocation;
//! - no assigned IP moves while it stays valid (rule 7), a restart moves
//!   nothing, and a refused config (rule 8) changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::model::{Config, IpFamily, Pool, ServiceAllocation};
use proptest::prelude::*;

use super::test_support::*;
use super::{Allocator, Assignment};
use crate::service::{FamilyRequest, Protocol, ServiceKey, ServiceRequest, TrafficPolicy};

const BLOCKS: [&str; 6] = [
    "10.0.0.0/30",
    "10.0.0.4-10.0.0.6",
    "10.0.0.254-10.0.1.1",
    "fc00::/126",
    "fc00::10-fc00::12",
    "10.0.2.0/31",
];
const POOLS: [&str; 3] = ["a", "b", "c"];
const REQUESTABLE: [&str; 7] = [
    "10.0.0.1",
    "10.0.0.5",
    "10.0.0.255",
    "10.0.1.1",
    "fc00::1",
    "fc00::11",
    "10.9.9.9",
];

/// A generated config: which pool (if any) owns each block, and pool flags.
#[derive(Debug, Clone)]
struct ConfigSpec {
    owner: [Option<usize>; 6],
    auto_assign: [bool; 3],
    avoid_buggy: [bool; 3],
    only_ns1: [bool; 3],
}

impl ConfigSpec {
    fn build(&self) -> Config {
        let pools = (0..3)
            .filter_map(|p| {
                let blocks: Vec<&str> = (0..6)
                    .filter(|b| self.owner[*b] == Some(p))
                    .map(|b| BLOCKS[b])
                    .collect();
                if blocks.is_empty() {
                    return None;
                }
                let mut pool = pool(POOLS[p], &blocks);
                pool.auto_assign = self.auto_assign[p];
                pool.avoid_buggy_ips = self.avoid_buggy[p];
                if self.only_ns1[p] {
                    pool.allocation = Some(ServiceAllocation {
                        namespaces: vec!["ns1".into()],
                        ..Default::default()
                    });
                }
                Some(pool)
            })
            .collect();
        config(pools)
    }
}

fn config_spec() -> impl Strategy<Value = ConfigSpec> {
    (
        proptest::array::uniform6(proptest::option::weighted(0.8, 0usize..3)),
        proptest::array::uniform3(proptest::bool::weighted(0.8)),
        proptest::array::uniform3(any::<bool>()),
        proptest::array::uniform3(proptest::bool::weighted(0.2)),
    )
        .prop_map(|(owner, auto_assign, avoid_buggy, only_ns1)| ConfigSpec {
            owner,
            auto_assign,
            avoid_buggy,
            only_ns1,
        })
}

/// A generated Service spec (its name is given by the model).
fn service_spec() -> impl Strategy<Value = ServiceRequest> {
    let requested = prop_oneof![
        6 => Just(Vec::new()),
        2 => proptest::sample::select(REQUESTABLE.to_vec()).prop_map(|ip| vec![ip]),
        1 => (0usize..4, 4usize..6).prop_map(|(a, b)| vec![REQUESTABLE[a], REQUESTABLE[b]]),
    ];
    let families = prop_oneof![
        Just(FamilyRequest::Single(IpFamily::V4)),
        Just(FamilyRequest::Single(IpFamily::V6)),
        Just(FamilyRequest::PreferDual {
            primary: IpFamily::V4
        }),
        Just(FamilyRequest::RequireDual {
            primary: IpFamily::V6
        }),
    ];
    (
        any::<bool>(),
        proptest::option::weighted(0.3, proptest::sample::select(vec!["a", "b", "c", "zz"])),
        proptest::option::weighted(0.6, proptest::sample::select(vec!["k1", "k2"])),
        proptest::sample::subsequence(
            vec![
                (Protocol::Tcp, 80),
                (Protocol::Tcp, 443),
                (Protocol::Udp, 53),
            ],
            0..=3,
        ),
        any::<bool>(),
        proptest::sample::select(vec!["s1", "s2"]),
        requested,
        families,
    )
        .prop_map(|(ns1, pool, key, ports, local, app, requested, families)| {
            let mut r = svc("x").ns(if ns1 { "ns1" } else { "ns2" });
            r.pool = pool.map(Into::into);
            r.sharing_key = key.map(Into::into);
            r.ports = ports;
            r.traffic_policy = if local {
                TrafficPolicy::Local
            } else {
                TrafficPolicy::Cluster
            };
            r.selector = BTreeMap::from([("app".to_string(), app.to_string())]);
            r.requested = ips(&requested);
            // As ServiceRequest::from_service guarantees: requested IPs fit the families.
            r.families = match r.requested.as_slice() {
                [] => families,
                [one] => FamilyRequest::Single(IpFamily::of(*one)),
                _ => FamilyRequest::RequireDual {
                    primary: IpFamily::V4,
                },
            };
            r
        })
}

#[derive(Debug, Clone)]
enum Op {
    Create(ServiceRequest),
    Update(usize, ServiceRequest),
    Delete(usize),
    ChangeConfig(ConfigSpec),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => service_spec().prop_map(Op::Create),
        3 => (any::<usize>(), service_spec()).prop_map(|(i, s)| Op::Update(i, s)),
        2 => any::<usize>().prop_map(Op::Delete),
        2 => config_spec().prop_map(Op::ChangeConfig),
        1 => Just(Op::Restart),
    ]
}

/// The cluster as the controller sees it: Services in creation order and the
/// IPs it wrote to their status.
struct Cluster {
    services: Vec<ServiceRequest>,
    status: BTreeMap<ServiceKey, Vec<IpAddr>>,
    allocator: Allocator,
    next_name: usize,
}

impl Cluster {
    /// What the controller does for one Service event: assign, write status.
    fn reconcile(&mut self, i: usize) {
        let Some(mut request) = self.services.get(i).cloned() else {
            return;
        };
        request.current = self.status.get(&request.key).cloned().unwrap_or_default();
        match self
            .allocator
            .assign(&request, &ns_labels(&request.key.namespace))
        {
            Ok(Assignment { ips, .. }) => self.status.insert(request.key, ips),
            Err(_) => self.status.remove(&request.key),
        };
    }

    /// The controller retries Services still without an IP after any change.
    fn retry_pending(&mut self) {
        for i in 0..self.services.len() {
            if !self.status.contains_key(&self.services[i].key) {
                self.reconcile(i);
            }
        }
    }

    fn requests_with_status(&self) -> Vec<ServiceRequest> {
        self.services
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.current = self.status.get(&s.key).cloned().unwrap_or_default();
                s
            })
            .collect()
    }
}

/// Rule 6, written independently of `SharingProfile::check`.
fn may_share(a: &ServiceRequest, b: &ServiceRequest) -> bool {
    let same_key = a.sharing_key.is_some() && a.sharing_key == b.sharing_key;
    let disjoint = a.ports.iter().all(|p| !b.ports.contains(p));
    let policies = match (a.traffic_policy, b.traffic_policy) {
        (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => true,
        (TrafficPolicy::Local, TrafficPolicy::Local) => a.selector == b.selector,
        _ => false,
    };
    same_key && disjoint && policies
}

fn pool_containing(config: &Config, ip: IpAddr) -> Option<&Pool> {
    config
        .pools
        .iter()
        .find(|p| p.blocks.iter().any(|b| b.contains(ip)))
}

fn buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

/// The families a Service may hold from `pool`, or `None` if the pool cannot serve it.
fn allowed_families(pool: &Pool, families: FamilyRequest) -> Option<BTreeSet<IpFamily>> {
    let has = |f| pool.blocks.iter().any(|b| b.family() == f);
    let both = BTreeSet::from([IpFamily::V4, IpFamily::V6]);
    match families {
        FamilyRequest::Single(f) => has(f).then(|| BTreeSet::from([f])),
        FamilyRequest::RequireDual { .. } => {
            (has(IpFamily::V4) && has(IpFamily::V6)).then_some(both)
        }
        FamilyRequest::PreferDual { .. } => {
            let set: BTreeSet<_> = both.into_iter().filter(|f| has(*f)).collect();
            (!set.is_empty()).then_some(set)
        }
    }
}

/// The part of `held` that must stay with `request` under `config`, given
/// the other Services holding IPs now; `None` when it need not stay.
fn must_keep(
    request: &ServiceRequest,
    held: &[IpAddr],
    config: &Config,
    holders: &BTreeMap<IpAddr, Vec<&ServiceRequest>>,
) -> Option<Vec<IpAddr>> {
    let kept: Vec<IpAddr> = if request.requested.is_empty() {
        // The pool of the first held IP in a pool matching the annotation;
        // what lies elsewhere or has an unwanted family may go.
        let pool = held.iter().find_map(|ip| {
            let pool = pool_containing(config, *ip)?;
            request
                .pool
                .as_ref()
                .is_none_or(|n| *n == pool.name)
                .then_some(pool)
        })?;
        let allowed = allowed_families(pool, request.families)?;
        let kept: Vec<IpAddr> = held
            .iter()
            .copied()
            .filter(|ip| pool.contains(*ip) && allowed.contains(&IpFamily::of(*ip)))
            .collect();
        // RequireDualStack missing a family may move if the pool cannot complete it.
        if kept.is_empty()
            || matches!(request.families, FamilyRequest::RequireDual { .. }) && kept.len() < 2
        {
            return None;
        }
        kept
    } else {
        let pool = pool_containing(config, *held.first()?)?;
        let a: BTreeSet<_> = held.iter().collect();
        let b: BTreeSet<_> = request.requested.iter().collect();
        let same_pool = held.iter().all(|ip| pool.contains(*ip));
        let annotation = request.pool.as_ref().is_none_or(|n| *n == pool.name);
        if a != b || !same_pool || !annotation {
            return None;
        }
        held.to_vec()
    };
    let compatible = kept.iter().all(|ip| {
        holders
            .get(ip)
            .into_iter()
            .flatten()
            .filter(|o| o.key != request.key)
            .all(|o| may_share(request, o))
    });
    compatible.then_some(kept)
}

/// Every address of a block, ascending (the test blocks are tiny).
fn addresses(block: &ferrolb_config::model::AddressBlock) -> Vec<IpAddr> {
    (block.first_u128()..=block.last_u128())
        .filter_map(|n| ferrolb_config::model::u128_to_ip(block.family(), n))
        .collect()
}

/// Rules 2 to 6 by enumeration: the pool and IPs (primary family first) a
/// new Service should get, given who holds what (the Service itself excluded).
fn lowest_expected(
    config: &Config,
    request: &ServiceRequest,
    holders: &BTreeMap<IpAddr, Vec<&ServiceRequest>>,
) -> Option<(String, Vec<IpAddr>)> {
    let usable = |pool: &Pool, ip: IpAddr| {
        !(pool.avoid_buggy_ips && buggy(ip))
            && holders
                .get(&ip)
                .into_iter()
                .flatten()
                .filter(|h| h.key != request.key)
                .all(|h| may_share(request, h))
    };
    let labels = ns_labels(&request.key.namespace);
    let primary = request.families.primary();
    config.pools.iter().find_map(|pool| {
        let asked = request.pool.as_ref().map(|n| *n == pool.name);
        if asked == Some(false) || asked.is_none() && !pool.auto_assign {
            return None;
        }
        let admitted = pool
            .allocation
            .as_ref()
            .is_none_or(|a| a.admits(&request.key.namespace, &labels, &request.labels));
        if !admitted {
            return None;
        }
        let mut families: Vec<IpFamily> = allowed_families(pool, request.families)?
            .into_iter()
            .collect();
        families.sort_by_key(|f| *f != primary);
        let ips: Option<Vec<IpAddr>> = families
            .iter()
            .map(|f| {
                pool.blocks
                    .iter()
                    .filter(|b| b.family() == *f)
                    .flat_map(addresses)
                    .find(|ip| usable(pool, *ip))
            })
            .collect();
        Some((pool.name.clone(), ips?))
    })
}

/// Checks the state after an op; `touched` is the Service the op changed.
fn check(
    cluster: &Cluster,
    before: &BTreeMap<ServiceKey, Vec<IpAddr>>,
    touched: Option<&ServiceKey>,
    config_changed: bool,
) {
    let a = &cluster.allocator;
    let config = a.config();
    let by_key: BTreeMap<&ServiceKey, &ServiceRequest> =
        cluster.services.iter().map(|s| (&s.key, s)).collect();

    // The allocator and the status the controller wrote agree.
    let assignments: BTreeMap<ServiceKey, Assignment> = a.assignments().into_iter().collect();
    let from_allocator: BTreeMap<ServiceKey, Vec<IpAddr>> = assignments
        .iter()
        .map(|(k, x)| (k.clone(), x.ips.clone()))
        .collect();
    assert_eq!(
        from_allocator, cluster.status,
        "allocator and status disagree"
    );

    let mut holders: BTreeMap<IpAddr, Vec<&ServiceRequest>> = BTreeMap::new();
    for (key, assignment) in &assignments {
        let request = by_key
            .get(key)
            .unwrap_or_else(|| panic!("{key} holds IPs but was deleted"));
        let pool = config.pool(&assignment.pool).unwrap();
        let families: BTreeSet<IpFamily> =
            assignment.ips.iter().map(|ip| IpFamily::of(*ip)).collect();
        assert_eq!(
            families.len(),
            assignment.ips.len(),
            "{key}: two IPs of one family"
        );
        for ip in &assignment.ips {
            assert!(
                pool.contains(*ip),
                "{key}: {ip} outside its pool {}",
                pool.name
            );
            holders.entry(*ip).or_default().push(request);
        }
        if let Some(name) = &request.pool {
            assert_eq!(&assignment.pool, name, "{key}: not the pool asked for");
        }
        if !request.requested.is_empty() {
            let got: BTreeSet<_> = assignment.ips.iter().collect();
            let want: BTreeSet<_> = request.requested.iter().collect();
            assert_eq!(got, want, "{key}: not the requested IPs");
        } else {
            let allowed = allowed_families(pool, request.families).unwrap_or_else(|| {
                panic!(
                    "{key}: pool {} cannot serve {:?}",
                    pool.name, request.families
                )
            });
            assert!(
                families.is_subset(&allowed),
                "{key}: families {families:?} not in {allowed:?}"
            );
        }
        // A fresh choice (nothing kept) follows every rule for new addresses.
        let old = before.get(key).cloned().unwrap_or_default();
        if assignment.ips.iter().all(|ip| !old.contains(ip)) {
            for ip in &assignment.ips {
                assert!(
                    !(pool.avoid_buggy_ips && buggy(*ip)),
                    "{key}: buggy {ip} handed out"
                );
            }
            assert!(
                pool.auto_assign || request.pool.is_some() || !request.requested.is_empty(),
                "{key}: auto-assign=false pool {} used unasked",
                pool.name
            );
            let admitted = pool.allocation.as_ref().is_none_or(|al| {
                al.admits(&key.namespace, &ns_labels(&key.namespace), &request.labels)
            });
            assert!(admitted, "{key}: pool {} does not admit it", pool.name);
        }
    }

    // Rule 6: every pair of holders of an IP may share it.
    for (ip, hs) in &holders {
        for (i, x) in hs.iter().enumerate() {
            for y in &hs[i + 1..] {
                assert!(
                    may_share(x, y),
                    "{ip} held by {} and {} which may not share",
                    x.key,
                    y.key
                );
            }
        }
    }

    // In-use counts.
    for pool in &config.pools {
        let n = holders.keys().filter(|ip| pool.contains(**ip)).count() as u128;
        assert_eq!(
            a.addresses_in_use(&pool.name).and_then(|c| c.to_u128()),
            Some(n),
            "in use of {}",
            pool.name
        );
    }

    // Rules 2 to 6: a new Service without requested IPs gets the lowest free
    // or shareable addresses of the first pool that can serve it.
    if let Some(key) = touched
        && !before.contains_key(key)
        && let Some(request) = by_key.get(key)
        && request.requested.is_empty()
    {
        let got = assignments
            .get(key)
            .map(|a| (a.pool.clone(), a.ips.clone()));
        let want = lowest_expected(config, request, &holders);
        assert_eq!(
            got, want,
            "{key}: not the lowest free-or-shareable addresses"
        );
    }

    // Rule 7: nothing valid moves. Services the op did not touch keep
    // exactly their IPs unless the config changed.
    for (key, old) in before {
        let Some(request) = by_key.get(key) else {
            continue;
        };
        let now = cluster.status.get(key).cloned().unwrap_or_default();
        if Some(key) != touched && !config_changed {
            assert_eq!(&now, old, "{key} moved though the op did not touch it");
            continue;
        }
        if let Some(kept) = must_keep(request, old, config, &holders) {
            assert!(
                kept.iter().all(|ip| now.contains(ip)),
                "{key} held {old:?}, still valid ({kept:?}), now {now:?}"
            );
        }
    }
}

fn run(initial: ConfigSpec, ops: Vec<Op>) {
    let mut cluster = Cluster {
        services: Vec::new(),
        status: BTreeMap::new(),
        allocator: Allocator::new(&initial.build()),
        next_name: 0,
    };
    for op in ops {
        let before = cluster.status.clone();
        let (touched, config_changed) = match op {
            Op::Create(mut spec) => {
                spec.key.name = format!("s{}", cluster.next_name);
                cluster.next_name += 1;
                let key = spec.key.clone();
                cluster.services.push(spec);
                cluster.reconcile(cluster.services.len() - 1);
                (Some(key), false)
            }
            Op::Update(i, mut spec) => {
                if cluster.services.is_empty() {
                    continue;
                }
                let i = i % cluster.services.len();
                spec.key = cluster.services[i].key.clone();
                let key = spec.key.clone();
                cluster.services[i] = spec;
                cluster.reconcile(i);
                (Some(key), false)
            }
            Op::Delete(i) => {
                if cluster.services.is_empty() {
                    continue;
                }
                let gone = cluster.services.remove(i % cluster.services.len());
                cluster.allocator.release(&gone.key);
                cluster.status.remove(&gone.key);
                (Some(gone.key), false)
            }
            Op::ChangeConfig(spec) => {
                let new = spec.build();
                let old = cluster.allocator.config().clone();
                // Rule 8 oracle: the held IPs the new config leaves outside every pool.
                let mut orphans: Vec<(ServiceKey, IpAddr)> = cluster
                    .status
                    .iter()
                    .flat_map(|(k, ips)| ips.iter().map(move |ip| (k.clone(), *ip)))
                    .filter(|(_, ip)| pool_containing(&new, *ip).is_none())
                    .collect();
                orphans.sort();
                match cluster.allocator.set_config(new.clone()) {
                    Ok(()) => {
                        assert!(orphans.is_empty(), "config orphaning {orphans:?} accepted");
                        for i in 0..cluster.services.len() {
                            cluster.reconcile(i);
                        }
                        (None, true)
                    }
                    Err(refused) => {
                        // Rule 8: refused only for IPs outside every new pool; nothing changes.
                        let listed: Vec<(ServiceKey, IpAddr)> = refused
                            .orphaned
                            .iter()
                            .map(|o| (o.service.clone(), o.ip))
                            .collect();
                        assert_eq!(
                            listed, orphans,
                            "refusal must list exactly the orphaned IPs"
                        );
                        assert_eq!(cluster.allocator.config(), &old, "refused config in force");
                        (None, false)
                    }
                }
            }
            Op::Restart => {
                let config = cluster.allocator.config().clone();
                let (allocator, failed) =
                    Allocator::rebuild(&config, &cluster.requests_with_status())
                        .expect("the status IPs all lie in the config's pools");
                assert!(
                    failed.is_empty(),
                    "valid status IPs not restored: {failed:?}"
                );
                cluster.allocator = allocator;
                for i in 0..cluster.services.len() {
                    cluster.reconcile(i);
                }
                for (key, old) in &before {
                    let now = &cluster.status[key];
                    assert!(
                        old.iter().all(|ip| now.contains(ip)),
                        "restart moved {key}: {old:?} -> {now:?}"
                    );
                }
                // PreferDualStack Services may gain a family at their next assign.
                (None, true)
            }
        };
        cluster.retry_pending();
        check(&cluster, &before, touched.as_ref(), config_changed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn rule6_and_rule7_hold_for_any_sequence_of_changes(
        initial in config_spec(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(initial, ops);
    }
}
