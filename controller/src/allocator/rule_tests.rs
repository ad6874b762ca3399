//! One test per rule of SPEC A5 (and the refusal of orphaning configs), each
//! a table of steps with the expected outcome of every step.

use std::collections::BTreeMap;

use ferrolb_config::model::{AddressCount, IpFamily, LabelSelector, ServiceAllocation};

use super::test_support::*;
use super::{AllocError, Allocator};
use crate::service::{FamilyRequest, ServiceKey, ServiceRequest};

/// What a step must produce.
enum Want {
    /// These IPs (status order) from this pool.
    Got(&'static [&'static str], &'static str),
    /// An error whose message contains this text.
    Fails(&'static str),
    /// Nothing (a restore of a Service without status IPs).
    Nothing,
}
use Want::{Fails, Got};

enum Step {
    /// `assign` a request.
    Assign(ServiceRequest, Want),
    /// `restore` a request.
    Restore(ServiceRequest, Want),
    /// `release` `default/<name>`.
    Release(&'static str),
    /// `set_config`; `Some(text)` = refused with a message containing text.
    SetConfig(ferrolb_config::model::Config, Option<&'static str>),
}
use Step::{Assign, Release, Restore, SetConfig};

fn check(
    rule: &str,
    i: usize,
    what: &str,
    got: Result<Option<super::Assignment>, AllocError>,
    want: &Want,
) {
    match (got, want) {
        (Ok(Some(a)), Got(want_ips, want_pool)) => {
            assert_eq!(a.ips, ips(want_ips), "{rule} step {i} ({what}): IPs");
            assert_eq!(a.pool, *want_pool, "{rule} step {i} ({what}): pool");
        }
        (Err(e), Fails(text)) => assert!(
            e.to_string().contains(text),
            "{rule} step {i} ({what}): error {e:?} ({e}) does not mention {text:?}"
        ),
        (Ok(None), Want::Nothing) => {}
        (got, _) => panic!("{rule} step {i} ({what}): unexpected {got:?}"),
    }
}

/// Runs the steps against a fresh allocator and checks its invariants after each.
fn run(rule: &str, config: ferrolb_config::model::Config, steps: Vec<Step>) -> Allocator {
    let mut a = Allocator::new(&config);
    for (i, step) in steps.into_iter().enumerate() {
        let mut assigned = None;
        match step {
            Assign(r, want) => {
                assigned = Some(r.key.clone());
                let got = a.assign(&r, &ns_labels(&r.key.namespace)).map(Some);
                check(rule, i, &format!("assign {}", r.key), got, &want);
            }
            Restore(r, want) => {
                let got = a.restore(&r);
                check(rule, i, &format!("restore {}", r.key), got, &want);
            }
            Release(name) => {
                assert!(
                    a.release(&ServiceKey::new("default", name)).is_some(),
                    "{rule} step {i}: release {name}: it held nothing"
                );
            }
            SetConfig(c, refused) => {
                let before = held_ips(&a);
                match (a.set_config(c.clone()), refused) {
                    (Ok(()), None) => {
                        assert_eq!(a.config(), &c, "{rule} step {i}: new config in force")
                    }
                    (Err(e), Some(text)) => {
                        assert!(
                            e.to_string().contains(text),
                            "{rule} step {i}: {e} lacks {text:?}"
                        );
                        assert_ne!(
                            a.config(),
                            &c,
                            "{rule} step {i}: refused config must not be in force"
                        );
                    }
                    (got, _) => panic!("{rule} step {i}: set_config gave {got:?}"),
                }
                assert_eq!(
                    held_ips(&a),
                    before,
                    "{rule} step {i}: a config change moves no IP"
                );
            }
        }
        check_invariants(rule, &a, assigned.as_ref());
    }
    a
}

fn held_ips(a: &Allocator) -> Vec<(ServiceKey, Vec<std::net::IpAddr>)> {
    a.assignments()
        .into_iter()
        .map(|(k, x)| (k, x.ips))
        .collect()
}

/// Every held IP lies in a pool (right after `set_config` a Service's IPs
/// may span two pools until its next `assign`; after an `assign`, its pool),
/// and in-use counts match the distinct held IPs.
fn check_invariants(rule: &str, a: &Allocator, assigned: Option<&ServiceKey>) {
    let mut per_pool: BTreeMap<String, std::collections::BTreeSet<std::net::IpAddr>> =
        BTreeMap::new();
    for (key, assignment) in a.assignments() {
        for ip in &assignment.ips {
            let pool = a
                .config()
                .pool_of(*ip)
                .unwrap_or_else(|| panic!("{rule}: {key} holds {ip} outside every pool"));
            if Some(&key) == assigned {
                assert_eq!(
                    pool.name, assignment.pool,
                    "{rule}: {key} holds {ip} outside its pool"
                );
            }
            assert!(
                a.holders(*ip).contains(&key),
                "{rule}: {ip} does not list {key}"
            );
            per_pool.entry(pool.name.clone()).or_default().insert(*ip);
        }
    }
    for pool in &a.config().pools {
        let held = per_pool.get(&pool.name).map_or(0, |s| s.len() as u128);
        assert_eq!(
            a.addresses_in_use(&pool.name),
            Some(AddressCount::from_u128(held)),
            "{rule}: in-use count of {}",
            pool.name
        );
    }
}

fn dual(primary: IpFamily) -> FamilyRequest {
    FamilyRequest::RequireDual { primary }
}

fn prefer(primary: IpFamily) -> FamilyRequest {
    FamilyRequest::PreferDual { primary }
}

const V4: IpFamily = IpFamily::V4;
const V6: IpFamily = IpFamily::V6;

// ---- Rule 1: requested IPs ----

#[test]
fn rule1_requested_ip_must_be_in_a_pool() {
    run(
        "rule1",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(
                svc("x").ask(&["192.168.9.9"]),
                Fails("192.168.9.9 is not in any pool"),
            ),
            Assign(svc("y").ask(&["10.0.0.2"]), Got(&["10.0.0.2"], "a")),
        ],
    );
}

#[test]
fn rule1_requested_ip_ignores_auto_assign() {
    run(
        "rule1",
        config(vec![
            pool("a", &["10.0.0.0/30"]),
            manual(pool("vip", &["10.0.9.0/30"])),
        ]),
        vec![Assign(
            svc("x").ask(&["10.0.9.3"]),
            Got(&["10.0.9.3"], "vip"),
        )],
    );
}

#[test]
fn rule1_requested_ip_must_be_free_or_shareable() {
    run(
        "rule1",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("x").ask(&["10.0.0.1"]), Got(&["10.0.0.1"], "a")),
            Assign(
                svc("y").ask(&["10.0.0.1"]).tcp(&[443]),
                Fails("10.0.0.1 is in use by default/x and cannot be shared"),
            ),
            Assign(
                svc("z").ask(&["10.0.0.1"]).share("k"),
                Fails("in use by default/x"),
            ),
            Release("x"),
            Assign(
                svc("y").ask(&["10.0.0.1"]).tcp(&[443]),
                Got(&["10.0.0.1"], "a"),
            ),
        ],
    );
}

#[test]
fn rule1_requested_ip_must_match_the_pool_annotation() {
    run(
        "rule1",
        config(vec![
            pool("a", &["10.0.0.0/30"]),
            pool("b", &["10.0.1.0/30"]),
        ]),
        vec![
            Assign(
                svc("x").ask(&["10.0.0.1"]).pool("b"),
                Fails("10.0.0.1 is not in pool \"b\" asked for by the address-pool annotation"),
            ),
            Assign(
                svc("y").ask(&["10.0.0.1"]).pool("nope"),
                Fails("unknown pool \"nope\""),
            ),
            Assign(
                svc("z").ask(&["10.0.1.1"]).pool("b"),
                Got(&["10.0.1.1"], "b"),
            ),
        ],
    );
}

#[test]
fn rule1_requested_ips_come_from_one_pool() {
    run(
        "rule1",
        config(vec![
            pool("a", &["10.0.0.0/30", "fc00::/126"]),
            pool("b", &["fc00:1::/126"]),
        ]),
        vec![
            Assign(
                svc("x").ask(&["10.0.0.1", "fc00:1::1"]).fam(dual(V4)),
                Fails("are in different pools"),
            ),
            Assign(
                svc("y").ask(&["10.0.0.1", "fc00::1"]).fam(dual(V4)),
                Got(&["10.0.0.1", "fc00::1"], "a"),
            ),
        ],
    );
}

#[test]
fn rule1_requested_ip_respects_avoid_buggy_ips_and_service_allocation() {
    let only_prod = ServiceAllocation {
        namespaces: vec!["prod".into()],
        ..Default::default()
    };
    run(
        "rule1",
        config(vec![
            avoid_buggy(pool("a", &["10.0.0.0/24"])),
            restricted(pool("p", &["10.0.1.0/24"]), only_prod),
        ]),
        vec![
            Assign(svc("x").ask(&["10.0.0.255"]), Fails("ends in .0 or .255")),
            Assign(
                svc("y").ask(&["10.0.1.7"]),
                Fails("pool \"p\" does not admit Service default/y"),
            ),
            Assign(
                svc("y").ns("prod").ask(&["10.0.1.7"]),
                Got(&["10.0.1.7"], "p"),
            ),
        ],
    );
}

// ---- Rule 2: the address-pool annotation ----

#[test]
fn rule2_pool_annotation_allocates_from_that_pool() {
    run(
        "rule2",
        config(vec![
            pool("a", &["10.0.0.0/30"]),
            manual(pool("b", &["10.0.1.0/31"])),
        ]),
        vec![
            Assign(svc("x").pool("b"), Got(&["10.0.1.0"], "b")),
            Assign(svc("y").pool("b"), Got(&["10.0.1.1"], "b")),
            Assign(svc("z").pool("b"), Fails("pool \"b\" is exhausted")),
            Assign(svc("w").pool("c"), Fails("unknown pool \"c\"")),
            Assign(svc("v"), Got(&["10.0.0.0"], "a")),
        ],
    );
}

#[test]
fn rule2_pool_annotation_respects_service_allocation_and_family() {
    let by_label = ServiceAllocation {
        service_selectors: vec![LabelSelector {
            match_labels: BTreeMap::from([("tier".to_string(), "edge".to_string())]),
            ..Default::default()
        }],
        ..Default::default()
    };
    run(
        "rule2",
        config(vec![
            restricted(pool("edge", &["10.0.0.0/30"]), by_label),
            pool("v6", &["fc00::/126"]),
        ]),
        vec![
            Assign(
                svc("x").pool("edge"),
                Fails("pool \"edge\" does not admit Service default/x"),
            ),
            Assign(
                svc("y").pool("edge").labels(&[("tier", "edge")]),
                Got(&["10.0.0.0"], "edge"),
            ),
            Assign(
                svc("z").pool("v6"),
                Fails("pool \"v6\" cannot serve SingleStack IPv4: it has no IPv4"),
            ),
        ],
    );
}

// ---- Rule 3: automatic pools in order ----

#[test]
fn rule3_first_auto_assign_pool_in_config_order() {
    run(
        "rule3",
        config(vec![
            manual(pool("reserved", &["10.0.9.0/30"])),
            pool("first", &["10.0.0.0/31"]),
            pool("second", &["10.0.1.0/31"]),
        ]),
        vec![
            Assign(svc("a"), Got(&["10.0.0.0"], "first")),
            Assign(svc("b"), Got(&["10.0.0.1"], "first")),
            Assign(svc("c"), Got(&["10.0.1.0"], "second")),
            Assign(svc("d"), Got(&["10.0.1.1"], "second")),
            Assign(svc("e"), Fails("exhausted: first, second")),
            Release("a"),
            Assign(svc("e"), Got(&["10.0.0.0"], "first")),
        ],
    );
}

#[test]
fn rule3_pools_not_admitting_the_service_are_skipped() {
    let prod_ns = ServiceAllocation {
        priority: 1,
        namespace_selectors: vec![LabelSelector {
            match_labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let by_name = ServiceAllocation {
        priority: 2,
        namespaces: vec!["billing".into()],
        ..Default::default()
    };
    run(
        "rule3",
        config(vec![
            restricted(pool("prod", &["10.0.1.0/30"]), prod_ns),
            restricted(pool("billing", &["10.0.2.0/30"]), by_name),
            pool("shared", &["10.0.0.0/30"]),
        ]),
        vec![
            Assign(svc("a").ns("prod-eu"), Got(&["10.0.1.0"], "prod")),
            Assign(svc("b").ns("billing"), Got(&["10.0.2.0"], "billing")),
            Assign(svc("c").ns("dev"), Got(&["10.0.0.0"], "shared")),
        ],
    );
}

#[test]
fn rule3_no_pool_says_why() {
    let only_prod = ServiceAllocation {
        namespaces: vec!["prod".into()],
        ..Default::default()
    };
    run(
        "rule3",
        config(vec![
            manual(pool("m", &["10.0.0.0/30"])),
            restricted(pool("p", &["10.0.1.0/30"]), only_prod),
            pool("v6", &["fc00::/126"]),
        ]),
        vec![Assign(
            svc("x"),
            Fails(
                "no pool may serve SingleStack IPv4 for this Service: \"m\" auto-assign is off; \
                 \"p\" serviceAllocation does not admit it; \"v6\" lacks the IP family",
            ),
        )],
    );
    run(
        "rule3",
        config(vec![]),
        vec![Assign(svc("x"), Fails("there are no pools"))],
    );
}

// ---- Rule 4: order within a pool ----

#[test]
fn rule4_ascending_within_each_block_blocks_in_file_order() {
    run(
        "rule4",
        config(vec![pool("a", &["10.0.1.6-10.0.1.7", "10.0.0.0/31"])]),
        vec![
            Assign(svc("a"), Got(&["10.0.1.6"], "a")),
            Assign(svc("b"), Got(&["10.0.1.7"], "a")),
            Assign(svc("c"), Got(&["10.0.0.0"], "a")),
            Release("a"),
            Assign(svc("d"), Got(&["10.0.1.6"], "a")),
            Assign(svc("e"), Got(&["10.0.0.1"], "a")),
        ],
    );
}

#[test]
fn rule4_lowest_freed_address_first() {
    run(
        "rule4",
        config(vec![pool("a", &["10.0.0.0/29"])]),
        vec![
            Assign(svc("a"), Got(&["10.0.0.0"], "a")),
            Assign(svc("b"), Got(&["10.0.0.1"], "a")),
            Assign(svc("c"), Got(&["10.0.0.2"], "a")),
            Assign(svc("d"), Got(&["10.0.0.3"], "a")),
            Release("c"),
            Release("b"),
            Assign(svc("e"), Got(&["10.0.0.1"], "a")),
            Assign(svc("f"), Got(&["10.0.0.2"], "a")),
            Assign(svc("g"), Got(&["10.0.0.4"], "a")),
        ],
    );
}

#[test]
fn rule4_avoid_buggy_ips_skips_dot0_and_dot255() {
    let a = run(
        "rule4",
        config(vec![avoid_buggy(pool(
            "a",
            &["10.0.0.254-10.0.1.1", "fc00::/127"],
        ))]),
        vec![
            Assign(svc("a"), Got(&["10.0.0.254"], "a")),
            Assign(svc("b"), Got(&["10.0.1.1"], "a")),
            Assign(svc("c"), Fails("pool \"a\" is exhausted")),
            Assign(
                svc("d").fam(FamilyRequest::Single(V6)),
                Got(&["fc00::"], "a"),
            ),
        ],
    );
    assert_eq!(a.addresses_total("a"), Some(AddressCount::from_u128(4)));
}

// ---- Rule 5: dual-stack and families ----

#[test]
fn rule5_require_dual_stack_gets_one_ip_per_family_from_one_pool() {
    run(
        "rule5",
        config(vec![
            pool("v4only", &["10.0.0.0/30"]),
            pool("v6only", &["fc00:9::/126"]),
            pool("dual", &["10.0.1.0/30", "fc00::/126"]),
        ]),
        vec![
            Assign(svc("a").fam(dual(V4)), Got(&["10.0.1.0", "fc00::"], "dual")),
            Assign(
                svc("b").fam(dual(V6)),
                Got(&["fc00::1", "10.0.1.1"], "dual"),
            ),
            Assign(
                svc("c").fam(dual(V4)).pool("v4only"),
                Fails("it has no IPv6 addresses"),
            ),
        ],
    );
}

#[test]
fn rule5_prefer_dual_stack_takes_both_where_the_pool_has_both() {
    run(
        "rule5",
        config(vec![
            pool("v4only", &["10.0.0.0/31"]),
            pool("dual", &["10.0.1.0/31", "fc00::/127"]),
        ]),
        vec![
            Assign(svc("a").fam(prefer(V4)), Got(&["10.0.0.0"], "v4only")),
            Assign(
                svc("b").fam(prefer(V6)).pool("dual"),
                Got(&["fc00::", "10.0.1.0"], "dual"),
            ),
            Assign(svc("c").fam(prefer(V4)), Got(&["10.0.0.1"], "v4only")),
            Assign(
                svc("d").fam(prefer(V4)),
                Got(&["10.0.1.1", "fc00::1"], "dual"),
            ),
        ],
    );
}

#[test]
fn rule5_single_stack_follows_the_primary_family() {
    run(
        "rule5",
        config(vec![
            pool("v4", &["10.0.0.0/30"]),
            pool("mixed", &["10.0.1.0/30", "fc00::/126"]),
        ]),
        vec![
            Assign(
                svc("a").fam(FamilyRequest::Single(V6)),
                Got(&["fc00::"], "mixed"),
            ),
            Assign(svc("b"), Got(&["10.0.0.0"], "v4")),
            Assign(
                svc("c").fam(dual(V4)).pool("v4"),
                Fails("cannot serve RequireDualStack"),
            ),
        ],
    );
}

#[test]
fn rule5_dual_stack_needs_both_families_free() {
    run(
        "rule5",
        config(vec![pool("dual", &["10.0.1.0/31", "fc00::/128"])]),
        vec![
            Assign(svc("a").fam(dual(V4)), Got(&["10.0.1.0", "fc00::"], "dual")),
            Assign(svc("b").fam(dual(V4)), Fails("pool \"dual\" is exhausted")),
            Assign(svc("c"), Got(&["10.0.1.1"], "dual")),
        ],
    );
}

// ---- Rule 6: sharing ----

#[test]
fn rule6_sharing_needs_the_same_non_empty_key() {
    run(
        "rule6",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(
                svc("a").share("k1").ask(&["10.0.0.1"]),
                Got(&["10.0.0.1"], "a"),
            ),
            Assign(
                svc("b").share("k2").tcp(&[443]).ask(&["10.0.0.1"]),
                Fails("allow-shared-ip keys differ (\"k2\" vs \"k1\")"),
            ),
            Assign(
                svc("c").tcp(&[443]).ask(&["10.0.0.1"]),
                Fails("sharing needs the same allow-shared-ip key on both Services"),
            ),
            Assign(
                svc("d").share("k1").tcp(&[443]).ask(&["10.0.0.1"]),
                Got(&["10.0.0.1"], "a"),
            ),
        ],
    );
}

#[test]
fn rule6_sharing_needs_disjoint_ports() {
    run(
        "rule6",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(
                svc("a").share("k").tcp(&[80]).udp(53),
                Got(&["10.0.0.0"], "a"),
            ),
            Assign(svc("b").share("k").tcp(&[443]), Got(&["10.0.0.0"], "a")),
            // Same number, other protocol: no clash.
            Assign(svc("c").share("k").tcp(&[53]), Got(&["10.0.0.0"], "a")),
            // TCP/80 is taken on .0: the lowest shareable-or-free is .1.
            Assign(svc("d").share("k").tcp(&[80]), Got(&["10.0.0.1"], "a")),
            Assign(
                svc("e").share("k").tcp(&[443]).ask(&["10.0.0.0"]),
                Fails("both use port TCP/443"),
            ),
        ],
    );
}

#[test]
fn rule6_sharing_needs_the_same_traffic_policy() {
    run(
        "rule6",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("a").share("k"), Got(&["10.0.0.0"], "a")),
            Assign(
                svc("b")
                    .share("k")
                    .tcp(&[443])
                    .local("b")
                    .ask(&["10.0.0.0"]),
                Fails("externalTrafficPolicy differs"),
            ),
            Assign(
                svc("c").share("k").tcp(&[443]).local("c"),
                Got(&["10.0.0.1"], "a"),
            ),
        ],
    );
}

#[test]
fn rule6_local_sharing_needs_identical_selectors() {
    run(
        "rule6",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("a").share("k").local("web"), Got(&["10.0.0.0"], "a")),
            Assign(
                svc("b").share("k").tcp(&[443]).local("web"),
                Got(&["10.0.0.0"], "a"),
            ),
            Assign(
                svc("c")
                    .share("k")
                    .tcp(&[8080])
                    .local("db")
                    .ask(&["10.0.0.0"]),
                Fails("both use externalTrafficPolicy Local with different selectors"),
            ),
            Assign(
                svc("d").share("k").tcp(&[8080]).local("db"),
                Got(&["10.0.0.1"], "a"),
            ),
        ],
    );
}

#[test]
fn rule6_the_lowest_free_or_shareable_address_wins() {
    run(
        "rule6",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("x"), Got(&["10.0.0.0"], "a")),
            Assign(svc("a").share("k"), Got(&["10.0.0.1"], "a")),
            Release("x"),
            // .0 is free and lower than the shareable .1.
            Assign(svc("b").share("k").tcp(&[443]), Got(&["10.0.0.0"], "a")),
            // Now .0 and .1 are both shareable: the lower.
            Assign(svc("c").share("k").tcp(&[8080]), Got(&["10.0.0.0"], "a")),
        ],
    );
}

#[test]
fn rule6_shared_ip_is_freed_when_its_last_holder_leaves() {
    let a = run(
        "rule6",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("a").share("k"), Got(&["10.0.0.0"], "a")),
            Assign(svc("b").share("k").tcp(&[443]), Got(&["10.0.0.0"], "a")),
            Release("a"),
            Assign(svc("c"), Got(&["10.0.0.1"], "a")),
            Release("b"),
            Assign(svc("d"), Got(&["10.0.0.0"], "a")),
        ],
    );
    assert_eq!(
        a.holders(ip("10.0.0.0")),
        &[ServiceKey::new("default", "d")]
    );
}

// ---- Rule 7: keeping assigned IPs ----

#[test]
fn rule7_held_ip_is_kept_while_valid() {
    run(
        "rule7",
        config(vec![
            pool("a", &["10.0.0.0/30"]),
            pool("b", &["10.0.1.0/30"]),
        ]),
        vec![
            Assign(svc("a"), Got(&["10.0.0.0"], "a")),
            Assign(svc("b"), Got(&["10.0.0.1"], "a")),
            Release("a"),
            // An update (new ports) keeps .1 although .0 is now lower.
            Assign(svc("b").tcp(&[8443]), Got(&["10.0.0.1"], "a")),
            // Asking for the pool it is already in keeps it too.
            Assign(svc("b").pool("a"), Got(&["10.0.0.1"], "a")),
            // Asking for another pool moves it.
            Assign(svc("b").pool("b"), Got(&["10.0.1.0"], "b")),
            // Asking for its own IP keeps it; asking for another moves it.
            Assign(svc("b").ask(&["10.0.1.0"]), Got(&["10.0.1.0"], "b")),
            Assign(svc("b").ask(&["10.0.0.3"]), Got(&["10.0.0.3"], "a")),
        ],
    );
}

#[test]
fn rule7_status_ip_is_kept_when_valid() {
    run(
        "rule7",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("a").status(&["10.0.0.2"]), Got(&["10.0.0.2"], "a")),
            // Status IP taken by someone else: a fresh one.
            Assign(svc("b").status(&["10.0.0.2"]), Got(&["10.0.0.0"], "a")),
            // Status IP outside every pool: a fresh one.
            Assign(svc("c").status(&["192.168.0.1"]), Got(&["10.0.0.1"], "a")),
        ],
    );
}

#[test]
fn rule7_restart_restores_status_before_allocating() {
    let services = vec![
        svc("a").status(&["10.0.0.3"]),
        svc("b").share("k").status(&["10.0.0.1"]),
        svc("c").share("k").tcp(&[443]).status(&["10.0.0.1"]),
        // Conflicts with a: loses, gets a fresh IP at its next assign.
        svc("d").status(&["10.0.0.3"]),
        svc("e"),
    ];
    let (mut a, failed) =
        Allocator::rebuild(&config(vec![pool("a", &["10.0.0.0/29"])]), &services).unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, ServiceKey::new("default", "d"));
    assert!(
        failed[0]
            .1
            .to_string()
            .contains("10.0.0.3 is in use by default/a"),
        "{}",
        failed[0].1
    );
    let got: Vec<_> = services
        .iter()
        .map(|s| a.assign(s, &ns_labels("default")).unwrap().ips)
        .collect();
    assert_eq!(
        got,
        vec![
            ips(&["10.0.0.3"]),
            ips(&["10.0.0.1"]),
            ips(&["10.0.0.1"]),
            ips(&["10.0.0.0"]),
            ips(&["10.0.0.2"])
        ]
    );
    check_invariants("rule7", &a, None);
}

#[test]
fn rule7_restore_keeps_only_valid_status_ips() {
    run(
        "rule7",
        config(vec![
            pool("a", &["10.0.0.0/30", "fc00::/126"]),
            pool("b", &["10.0.1.0/30"]),
        ]),
        vec![
            Restore(svc("none"), Want::Nothing),
            Restore(
                svc("x").pool("b").status(&["10.0.0.1"]),
                Fails("asks for pool \"b\""),
            ),
            Restore(
                svc("y").ask(&["10.0.0.2"]).status(&["10.0.0.1"]),
                Fails("not among the requested IPs"),
            ),
            // The first IP's pool decides; it lacks IPv6, so nothing is kept.
            Restore(
                svc("z").fam(dual(V4)).status(&["10.0.1.1", "fc00::1"]),
                Fails("pool \"b\" cannot serve RequireDualStack"),
            ),
            Restore(
                svc("t")
                    .ask(&["10.0.1.2", "fc00::2"])
                    .fam(dual(V4))
                    .status(&["10.0.1.2", "fc00::2"]),
                Fails("are in different pools"),
            ),
            // A second IP of one family in the status is dropped.
            Restore(
                svc("u").status(&["10.0.0.3", "10.0.0.0"]),
                Got(&["10.0.0.3"], "a"),
            ),
            // Dual-stack status of a Service now single-stack: the primary stays.
            Restore(
                svc("w").status(&["fc00::1", "10.0.0.1"]),
                Got(&["10.0.0.1"], "a"),
            ),
            // Restore never allocates: the missing family comes at the next assign.
            Restore(
                svc("v").fam(dual(V4)).status(&["10.0.0.2"]),
                Got(&["10.0.0.2"], "a"),
            ),
            Assign(svc("v").fam(dual(V4)), Got(&["10.0.0.2", "fc00::"], "a")),
        ],
    );
}

#[test]
fn rule7_dual_stack_changes_keep_the_ips_that_stay_valid() {
    run(
        "rule7",
        config(vec![
            pool("a", &["10.0.0.0/30"]),
            pool("d", &["10.0.1.0/30", "fc00::/126"]),
        ]),
        vec![
            Assign(svc("x").fam(dual(V4)), Got(&["10.0.1.0", "fc00::"], "d")),
            Assign(svc("x"), Got(&["10.0.1.0"], "d")),
            Assign(svc("x").fam(dual(V4)), Got(&["10.0.1.0", "fc00::"], "d")),
        ],
    );
}

#[test]
fn rule7_a_moved_block_moves_only_its_ip() {
    run(
        "rule7",
        config(vec![
            pool("a", &["10.0.0.0/30", "fc00::/126"]),
            pool("c", &["10.0.9.0/30"]),
        ]),
        vec![
            Assign(svc("x").fam(dual(V4)), Got(&["10.0.0.0", "fc00::"], "a")),
            // fc00::/126 moves to pool c; pool a gets another IPv6 block.
            SetConfig(
                config(vec![
                    pool("a", &["10.0.0.0/30", "fd00::/126"]),
                    pool("c", &["10.0.9.0/30", "fc00::/126"]),
                ]),
                None,
            ),
            Assign(svc("x").fam(dual(V4)), Got(&["10.0.0.0", "fd00::"], "a")),
        ],
    );
}

#[test]
fn rule7_prefer_dual_stack_grows_when_its_pool_gains_a_family() {
    run(
        "rule7",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("x").fam(prefer(V4)), Got(&["10.0.0.0"], "a")),
            SetConfig(
                config(vec![pool("a", &["10.0.0.0/30", "fc00::/126"])]),
                None,
            ),
            Assign(svc("x").fam(prefer(V4)), Got(&["10.0.0.0", "fc00::"], "a")),
        ],
    );
}

#[test]
fn rule7_an_update_that_breaks_sharing_moves_the_updated_service() {
    run(
        "rule7",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("a").share("k"), Got(&["10.0.0.0"], "a")),
            Assign(svc("b").share("k").tcp(&[443]), Got(&["10.0.0.0"], "a")),
            Assign(svc("b").share("k").tcp(&[80]), Got(&["10.0.0.1"], "a")),
            Assign(svc("a").share("k"), Got(&["10.0.0.0"], "a")),
        ],
    );
}

#[test]
fn rule7_config_change_keeps_ips_that_stay_in_a_pool() {
    run(
        "rule7",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("x"), Got(&["10.0.0.0"], "a")),
            Assign(svc("y"), Got(&["10.0.0.1"], "a")),
            // The block moves to a renamed pool behind a new first pool.
            SetConfig(
                config(vec![
                    pool("new", &["10.0.5.0/30"]),
                    pool("renamed", &["10.0.0.0/29"]),
                ]),
                None,
            ),
            Assign(svc("x"), Got(&["10.0.0.0"], "renamed")),
            Assign(svc("y"), Got(&["10.0.0.1"], "renamed")),
            Assign(svc("z"), Got(&["10.0.5.0"], "new")),
        ],
    );
}

// ---- Rule 8: configs that would orphan an IP ----

#[test]
fn rule8_config_orphaning_an_assigned_ip_is_refused() {
    let old = config(vec![
        pool("a", &["10.0.0.0/30"]),
        pool("b", &["10.0.1.0/30"]),
    ]);
    let a = run(
        "rule8",
        old.clone(),
        vec![
            Assign(svc("x"), Got(&["10.0.0.0"], "a")),
            Assign(svc("y").pool("b"), Got(&["10.0.1.0"], "b")),
            SetConfig(
                config(vec![pool("a", &["10.0.0.0/30"])]),
                Some("it would leave 1 assigned IP(s) outside every pool: 10.0.1.0 (default/y)"),
            ),
            // The old config is still in force: pool b still serves.
            Assign(svc("z").pool("b"), Got(&["10.0.1.1"], "b")),
            Release("y"),
            Release("z"),
            SetConfig(config(vec![pool("a", &["10.0.0.0/30"])]), None),
            Assign(svc("x"), Got(&["10.0.0.0"], "a")),
        ],
    );
    assert_ne!(a.config(), &old);
}

#[test]
fn rule8_start_up_with_a_config_orphaning_status_ips_is_refused() {
    let services = vec![
        svc("x").status(&["10.0.0.1"]),
        svc("y").status(&["10.0.7.7", "fc00::1"]),
    ];
    let err =
        Allocator::rebuild(&config(vec![pool("a", &["10.0.0.0/30"])]), &services).unwrap_err();
    assert_eq!(
        err.orphaned
            .iter()
            .map(|o| (o.service.name.as_str(), o.ip))
            .collect::<Vec<_>>(),
        vec![("y", ip("10.0.7.7")), ("y", ip("fc00::1"))]
    );
}

// ---- Pool statistics ----

#[test]
fn pool_sizes_are_exact_for_any_pool_size() {
    let a = Allocator::new(&config(vec![
        pool("huge", &["fc00::/64", "::/1"]),
        avoid_buggy(pool("v4", &["10.0.0.0/16", "10.1.0.5-10.1.0.9"])),
    ]));
    assert_eq!(
        a.addresses_total("huge").map(|c| c.to_string()),
        Some((1u128 << 64).checked_add(1u128 << 127).unwrap().to_string())
    );
    assert_eq!(
        a.addresses_total("v4"),
        Some(AddressCount::from_u128(65536 - 512 + 5))
    );
    assert_eq!(a.addresses_total("nope"), None);
    let whole = Allocator::new(&config(vec![pool("all", &["::/0", "0.0.0.0/0"])]));
    assert_eq!(
        whole.addresses_total("all").map(|c| c.to_string()),
        Some("340282366920938463463374607436063178752".to_string()),
        "2^128 + 2^32"
    );
}

#[test]
fn shared_ips_count_once_in_use() {
    let a = run(
        "stats",
        config(vec![pool("a", &["10.0.0.0/30"])]),
        vec![
            Assign(svc("a").share("k"), Got(&["10.0.0.0"], "a")),
            Assign(svc("b").share("k").tcp(&[443]), Got(&["10.0.0.0"], "a")),
            Assign(svc("c"), Got(&["10.0.0.1"], "a")),
        ],
    );
    assert_eq!(a.addresses_in_use("a"), Some(AddressCount::from_u128(2)));
}
