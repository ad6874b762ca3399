//! `convert` keeps behaviour: for generated ConfigMaps, validating the
//! converted objects yields an equivalent model (see `convert::equivalent`).

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use ferrolb_config::configmap::{
    AddressPool, BfdProfile, BgpAdvertisement, ConfigFile, MatchExpression, NodeSelector, Peer,
};
use ferrolb_config::convert::{convert, equivalent};
use ferrolb_config::documents;
use ferrolb_config::load_documents;
use proptest::prelude::*;

/// One address entry of pool `pool`, block number `block`, so that all
/// generated entries are disjoint.
fn address(pool: usize, block: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        (24u8..=32).prop_map(move |len| format!("10.{pool}.{block}.0/{len}")),
        (0u8..=255, 0u8..=255, any::<bool>()).prop_map(move |(a, b, spaced)| {
            let (a, b) = (a.min(b), a.max(b));
            let dash = if spaced { " - " } else { "-" };
            format!("10.{pool}.{block}.{a}{dash}10.{pool}.{block}.{b}")
        }),
        (64u8..=128).prop_map(move |len| format!("fc00:{pool:x}:{block:x}::/{len}")),
        (any::<u16>(), any::<u16>()).prop_map(move |(a, b)| {
            let (a, b) = (a.min(b), a.max(b));
            format!("fc00:{pool:x}:{block:x}::{a:x}-fc00:{pool:x}:{block:x}::{b:x}")
        }),
    ]
}

fn advertisement() -> impl Strategy<Value = BgpAdvertisement> {
    (
        prop::option::of(Just(32i64)),
        prop::option::of(Just(128i64)),
        prop::option::of(any::<u32>()),
        prop::sample::subsequence(vec!["gold", "1:2", "large:1:2:3", "65535:0"], 0..=4),
    )
        .prop_map(|(v4, v6, local_pref, communities)| BgpAdvertisement {
            aggregation_length: v4,
            aggregation_length_v6: v6,
            local_pref: local_pref.map(i64::from),
            communities: communities.into_iter().map(String::from).collect(),
        })
}

fn pool(index: usize) -> impl Strategy<Value = AddressPool> {
    (
        (1usize..4).prop_flat_map(move |n| (0..n).map(|b| address(index, b)).collect::<Vec<_>>()),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::collection::vec(advertisement(), 0..3),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            move |(addresses, is_bgp, auto_assign, avoid_buggy_ips, mut advs, external_ips)| {
                // Identical advertisements are an error; keep the first.
                let mut unique: Vec<BgpAdvertisement> = Vec::new();
                advs.retain(|a| {
                    let fresh = !unique.contains(a);
                    unique.push(a.clone());
                    fresh
                });
                AddressPool {
                    name: Some(format!("pool-{index}")),
                    protocol: Some(if is_bgp { "bgp" } else { "layer2" }.into()),
                    addresses,
                    auto_assign,
                    avoid_buggy_ips,
                    bgp_advertisements: if is_bgp { advs } else { Vec::new() },
                    announce_external_ips: external_ips,
                }
            },
        )
}

fn selector() -> impl Strategy<Value = NodeSelector> {
    (any::<bool>(), any::<bool>()).prop_map(|(labels, expressions)| NodeSelector {
        match_labels: if labels {
            BTreeMap::from([("rack".into(), "r1".into())])
        } else {
            BTreeMap::new()
        },
        match_expressions: if expressions {
            vec![
                MatchExpression {
                    key: "zone".into(),
                    operator: "In".into(),
                    values: vec!["a".into(), "b".into()],
                },
                MatchExpression {
                    key: "spot".into(),
                    operator: "DoesNotExist".into(),
                    values: vec![],
                },
            ]
        } else {
            vec![]
        },
    })
}

const TIMERS: [(Option<&str>, Option<&str>); 6] = [
    (None, None),
    (Some("90s"), None),
    (Some("9s"), Some("3s")),
    (None, Some("10s")),
    (Some("0s"), None),
    (Some("3m"), Some("1m")),
];

fn peer(index: usize, with_bfd: bool) -> impl Strategy<Value = Peer> {
    (
        1u32..,
        1u32..,
        prop::option::of(1u16..),
        0..TIMERS.len(),
        prop::option::of(Just("10.254.0.1".to_string())),
        prop::collection::vec(selector(), 0..3),
        prop::option::of("[a-z0-9]{1,12}"),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(
                my,
                peer_asn,
                port,
                t,
                router_id,
                node_selectors,
                password,
                multihop,
                bfd,
                v6,
            )| Peer {
                my_asn: Some(i64::from(my)),
                peer_asn: Some(i64::from(peer_asn)),
                peer_address: Some(if v6 {
                    format!("fd00::{index}")
                } else {
                    format!("10.255.0.{index}")
                }),
                peer_port: port.map(i64::from),
                source_address: None,
                hold_time: TIMERS[t].0.map(String::from),
                keepalive_time: TIMERS[t].1.map(String::from),
                router_id,
                node_selectors,
                password,
                bfd_profile: (with_bfd && bfd).then(|| "fast".to_string()),
                ebgp_multihop: (multihop && my != peer_asn).then_some(true),
                graceful_restart: index.is_multiple_of(2).then_some(true),
            },
        )
}

fn config_file() -> impl Strategy<Value = ConfigFile> {
    (1usize..6, 0usize..4, any::<bool>(), any::<bool>())
        .prop_flat_map(|(pools, peers, communities, bfd)| {
            (
                (0..pools).map(pool).collect::<Vec<_>>(),
                (0..peers).map(|i| peer(i, bfd)).collect::<Vec<_>>(),
                Just(communities),
                Just(bfd),
            )
        })
        .prop_map(|(address_pools, peers, communities, bfd)| {
            let mut file = ConfigFile {
                peers,
                bgp_communities: BTreeMap::new(),
                address_pools,
                bfd_profiles: Vec::new(),
            };
            // The alias `gold` must exist when an advertisement uses it.
            let uses_gold = file
                .address_pools
                .iter()
                .flat_map(|p| &p.bgp_advertisements)
                .any(|a| a.communities.iter().any(|c| c == "gold"));
            if communities || uses_gold {
                file.bgp_communities.insert("gold".into(), "65000:1".into());
            }
            if bfd {
                file.bfd_profiles.push(BfdProfile {
                    name: Some("fast".into()),
                    receive_interval: Some(300),
                    detect_multiplier: Some(3),
                    echo_mode: Some(true),
                    ..BfdProfile::default()
                });
            }
            file
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn convert_then_validate_gives_the_same_model(file in config_file(), namespace in prop::option::of("ns-[a-z0-9]{1,8}")) {
        let config_text = serde_saphyr::to_string(&file).unwrap();
        let original = load_documents(&config_text).unwrap();
        // As a whole manifest, so the namespace is carried over.
        let input = match &namespace {
            Some(ns) => {
                let indented: String = config_text.lines().map(|l| format!("    {l}\n")).collect();
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config\n  namespace: {ns}\ndata:\n  config: |\n{indented}")
            }
            None => config_text.clone(),
        };
        let yaml = convert(&input).unwrap();
        let converted = load_documents(&yaml).unwrap();
        prop_assert!(equivalent(&original, &converted), "config:\n{}\nCRDs:\n{}\n{:#?}\n{:#?}", config_text, yaml, original, converted);
        let docs = documents::parse(&yaml).unwrap();
        let want_ns = namespace.unwrap_or_else(|| "metallb-system".into());
        prop_assert!(docs.resources.ip_address_pools.iter().all(|p| p.metadata.namespace.as_deref() == Some(want_ns.as_str())));
    }
}

#[test]
fn equivalence_sees_a_change_of_behaviour() {
    let a = load_documents("address-pools:\n- {name: a, protocol: bgp, addresses: [10.0.0.0/24]}\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n").unwrap();
    let converted = load_documents(&convert("address-pools:\n- {name: a, protocol: bgp, addresses: [10.0.0.0/24]}\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n").unwrap()).unwrap();
    assert!(equivalent(&a, &converted));
    let cases = [
        (
            "pool order",
            "address-pools:\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n- {name: a, protocol: bgp, addresses: [10.0.0.0/24]}\n",
        ),
        (
            "protocol",
            "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n",
        ),
        (
            "auto-assign",
            "address-pools:\n- {name: a, protocol: bgp, addresses: [10.0.0.0/24], auto-assign: false}\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n",
        ),
        (
            "addresses",
            "address-pools:\n- {name: a, protocol: bgp, addresses: [10.0.0.0/25]}\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n",
        ),
    ];
    for (what, text) in cases {
        let other = load_documents(text).unwrap();
        assert!(
            !equivalent(&a, &other),
            "a different {what} must not be equivalent"
        );
    }
}

#[test]
fn tutorial_configmap_converts_to_a_pool_and_an_l2_advertisement() {
    let yaml = convert(include_str!("../../manifests/example-config.yaml")).unwrap();
    let docs = documents::parse(&yaml).unwrap();
    let r = &docs.resources;
    assert_eq!(r.ip_address_pools.len(), 1);
    assert_eq!(
        r.ip_address_pools[0].metadata.name.as_deref(),
        Some("my-ip-space")
    );
    assert_eq!(
        r.ip_address_pools[0].spec.addresses,
        ["192.168.5.5-192.168.5.9"]
    );
    // One pool: no priority is needed to keep an order.
    assert_eq!(r.ip_address_pools[0].spec.service_allocation, None);
    assert_eq!(r.l2_advertisements.len(), 1);
    assert_eq!(
        r.l2_advertisements[0].spec.ip_address_pools,
        ["my-ip-space"]
    );
    assert!(r.bgp_advertisements.is_empty() && r.bgp_peers.is_empty());
}

#[test]
fn convert_refuses_what_it_cannot_carry_over() {
    let cases = [
        (
            "invalid config",
            "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/33]}\n",
            "address-pools[0] \"a\": addresses[0] \"10.0.0.0/33\": invalid prefix length",
        ),
        (
            "name that is no object name",
            "address-pools:\n- {name: My_Pool, protocol: layer2, addresses: [10.0.0.0/24]}\n",
            "address-pools[0] \"My_Pool\": cannot become an IPAddressPool name (lowercase letters, digits, '-' and '.', at most 253 characters): rename it, e.g. `ferrolb convert --rename 'My_Pool=my-pool'`",
        ),
        (
            "only CRDs in the input",
            "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {}\n",
            "no ConfigMap to convert: the input holds only metallb.io/v1beta1 objects, which are CRDs already (check them with `ferrolb validate`)",
        ),
        (
            "CRDs next to the ConfigMap",
            "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata: {config: ''}\n",
            "convert reads a ConfigMap only, but the input also holds metallb.io objects",
        ),
        ("empty input", "", "no configuration found"),
        (
            "only comments",
            "# nothing\n---\n# here\n",
            "no configuration found",
        ),
    ];
    for (case, text, want) in cases {
        let errors = convert(text).unwrap_err();
        assert!(
            errors.iter().any(|e| e.to_string() == want),
            "{case}: {errors}"
        );
    }
}

#[test]
fn convert_renames_pools_whose_names_cannot_be_object_names() {
    let text = "address-pools:\n- {name: My_Pool, protocol: bgp, addresses: [10.0.0.0/24]}\n- {name: ok, protocol: layer2, addresses: [10.0.1.0/24]}\n";
    let renames = [("My_Pool".to_string(), "my-pool".to_string())];
    let yaml = ferrolb_config::convert::convert_renaming(text, &renames).unwrap();
    let config = ferrolb_config::load_documents(&yaml).unwrap();
    let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["my-pool", "ok"]);
    assert_eq!(config.bgp_advertisements[0].name, "my-pool-0");
    assert_eq!(config.bgp_advertisements[0].pools, ["my-pool"]);

    let bad = [("My_Pool".to_string(), "Still_Bad".to_string())];
    let errors = ferrolb_config::convert::convert_renaming(text, &bad).unwrap_err();
    assert!(
        errors.iter().any(|e| e.to_string()
            == "--rename My_Pool=Still_Bad: \"Still_Bad\" is not a valid object name (lowercase letters, digits, '-' and '.', at most 253 characters); for example \"still-bad\""),
        "{errors}"
    );
    let unknown = [("nope".to_string(), "x".to_string())];
    let errors = ferrolb_config::convert::convert_renaming(text, &unknown).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.to_string() == "--rename nope=x: no address pool is named \"nope\""),
        "{errors}"
    );
}

#[test]
fn suggested_object_names_are_object_names() {
    use ferrolb_config::convert::{is_object_name, suggest_object_name};
    for (name, want) in [
        ("My_Pool", "my-pool"),
        ("__a__b__", "a-b"),
        ("Prod Pool #1", "prod-pool-1"),
        ("-.-", "pool"),
        ("ok.name", "ok.name"),
    ] {
        let got = suggest_object_name(name);
        assert_eq!(got, want, "{name}");
        assert!(is_object_name(&got), "{name} -> {got}");
    }
    let long = "A".repeat(300);
    assert!(is_object_name(&suggest_object_name(&long)));
}
