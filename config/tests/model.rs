//! What a valid configuration turns into: defaults, pool order, selection
//! of pools by advertisements, exact sizes.

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_config::crd::{self, Resources};
use ferrolb_config::model::{AddressCount, Community, Config, Origin, PeerPassword};
use ferrolb_config::{load, load_documents};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn names(c: &Config) -> Vec<&str> {
    c.pools.iter().map(|p| p.name.as_str()).collect()
}

fn crd(kind: &str, name: &str, labels: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: metallb-system\n  labels: {{{labels}}}\nspec:\n{spec}"
    )
}

#[test]
fn pool_defaults_follow_metallb() {
    let c = load_documents("address-pools:\n- {name: p, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: q, protocol: layer2, addresses: [10.0.1.0/24], auto-assign: false, avoid-buggy-ips: true}\n").unwrap();
    let (p, q) = (&c.pools[0], &c.pools[1]);
    assert!(p.auto_assign && !p.avoid_buggy_ips && p.allocation.is_none());
    assert!(!q.auto_assign && q.avoid_buggy_ips);
    assert_eq!(p.origin, Origin::ConfigMap { index: 0 });
}

#[test]
fn cidr_with_host_bits_is_masked_to_its_network() {
    let c = load_documents(
        "address-pools:\n- {name: p, protocol: layer2, addresses: [10.0.0.77/24]}\n",
    )
    .unwrap();
    let b = c.pools[0].blocks[0];
    assert_eq!(
        (b.first(), b.last(), b.prefix_len()),
        (ip("10.0.0.0"), ip("10.0.0.255"), Some(24))
    );
}

#[test]
fn peer_timer_defaults() {
    let cases = [
        // (peer fields, hold, keepalive)
        ("", 90, 30),
        ("  hold-time: 9s\n", 9, 3),
        ("  hold-time: 0s\n", 0, 0),
        ("  hold-time: 3.9s\n", 3, 1),
        ("  keepalive-time: 10s\n", 90, 10),
    ];
    for (extra, hold, keepalive) in cases {
        let text = format!("peers:\n- peer-address: 10.0.0.1\n  peer-asn: 2\n  my-asn: 1\n{extra}");
        let p = &load_documents(&text).unwrap().peers[0];
        assert_eq!(p.hold_time, Duration::from_secs(hold), "{extra}");
        assert_eq!(p.keepalive_time.as_secs(), keepalive, "{extra}");
        assert_eq!((p.port, p.name.as_str()), (179, "peer0"));
    }
}

#[test]
fn crd_peer_derives_hold_time_from_a_lone_keepalive() {
    let text = crd(
        "BGPPeer",
        "r",
        "",
        "  myASN: 1\n  peerASN: 2\n  peerAddress: 10.0.0.1\n  keepaliveTime: 20s\n  passwordSecret: {name: auth}\n",
    );
    let p = &load_documents(&text).unwrap().peers[0];
    assert_eq!(
        (p.hold_time.as_secs(), p.keepalive_time.as_secs()),
        (60, 20)
    );
    assert_eq!(
        p.password,
        Some(PeerPassword::Secret {
            namespace: "metallb-system".into(),
            name: "auth".into()
        })
    );
}

#[test]
fn pool_order_is_priority_then_configmap_order_then_crd_name() {
    let text = format!(
        "---\naddress-pools:\n- {{name: cm-z, protocol: layer2, addresses: [10.9.0.0/24]}}\n- {{name: cm-a, protocol: layer2, addresses: [10.8.0.0/24]}}\n{}{}{}{}{}",
        crd("IPAddressPool", "crd-b", "", "  addresses: [10.0.2.0/24]\n"),
        crd(
            "IPAddressPool",
            "crd-a",
            "",
            "  addresses: [10.0.1.0/24]\n  serviceAllocation: {priority: 0}\n"
        ),
        crd(
            "IPAddressPool",
            "crd-p5",
            "",
            "  addresses: [10.0.3.0/24]\n  serviceAllocation: {priority: 5}\n"
        ),
        crd(
            "IPAddressPool",
            "crd-p1b",
            "",
            "  addresses: [10.0.4.0/24]\n  serviceAllocation: {priority: 1}\n"
        ),
        crd(
            "IPAddressPool",
            "crd-p1a",
            "",
            "  addresses: [10.0.5.0/24]\n  serviceAllocation: {priority: 1}\n"
        ),
    );
    let c = load_documents(&text).unwrap();
    assert_eq!(
        names(&c),
        [
            "crd-p1a", "crd-p1b", "crd-p5", "cm-z", "cm-a", "crd-a", "crd-b"
        ]
    );
}

#[test]
fn advertisements_select_pools_by_name_by_label_or_all() {
    let pools = format!(
        "---\naddress-pools:\n- {{name: cm, protocol: bgp, addresses: [10.9.0.0/24]}}\n{}{}{}",
        crd(
            "IPAddressPool",
            "a",
            "tier: gold",
            "  addresses: [10.0.1.0/24]\n"
        ),
        crd(
            "IPAddressPool",
            "b",
            "tier: silver",
            "  addresses: [10.0.2.0/24]\n"
        ),
        crd("IPAddressPool", "c", "", "  addresses: [10.0.3.0/24]\n"),
    );
    let cases = [
        ("by name", "  ipAddressPools: [c, missing]\n", vec!["c"]),
        (
            "a ConfigMap pool by name",
            "  ipAddressPools: [cm]\n",
            vec!["cm"],
        ),
        (
            "by label",
            "  ipAddressPoolSelectors:\n  - matchLabels: {tier: gold}\n",
            vec!["a"],
        ),
        (
            "by expression",
            "  ipAddressPoolSelectors:\n  - matchExpressions: [{key: tier, operator: Exists}]\n",
            vec!["a", "b"],
        ),
        (
            "names and labels together",
            "  ipAddressPools: [c]\n  ipAddressPoolSelectors:\n  - matchLabels: {tier: silver}\n",
            vec!["b", "c"],
        ),
        (
            "nothing given = every IPAddressPool",
            "  interfaces: [eth0]\n",
            vec!["a", "b", "c"],
        ),
    ];
    for (case, spec, want) in cases {
        let c = load_documents(&format!(
            "{pools}{}",
            crd("L2Advertisement", "l2", "", spec)
        ))
        .unwrap();
        let l2 = c.l2_advertisements.iter().find(|a| a.name == "l2").unwrap();
        assert_eq!(l2.pools, want, "L2 {case}");
        let c = load_documents(&format!(
            "{pools}{}",
            crd(
                "BGPAdvertisement",
                "b",
                "",
                spec.replace("interfaces: [eth0]", "localPref: 50").as_str()
            )
        ))
        .unwrap();
        let bgp = c.bgp_advertisements.iter().find(|a| a.name == "b").unwrap();
        assert_eq!(bgp.pools, want, "BGP {case}");
    }
}

#[test]
fn configmap_pools_become_pool_plus_advertisements() {
    let text = "bgp-communities: {gold: '65000:1'}\naddress-pools:\n- {name: l, protocol: layer2, addresses: [10.0.0.0/24]}\n- name: b\n  protocol: bgp\n  addresses: [10.1.0.0/24, 'fc00::/64']\n  bgp-advertisements:\n  - {aggregation-length: 24, aggregation-length-v6: 64, localpref: 100, communities: [gold, '1:2', 'large:1:2:3']}\n  - {}\n";
    let c = load_documents(text).unwrap();
    assert_eq!(c.l2_advertisements.len(), 1);
    assert_eq!(
        (
            c.l2_advertisements[0].name.as_str(),
            c.l2_advertisements[0].pools.clone()
        ),
        ("l", vec!["l".to_string()])
    );
    let advs: Vec<_> = c
        .bgp_advertisements
        .iter()
        .map(|a| {
            (
                a.name.as_str(),
                a.aggregation_length,
                a.aggregation_length_v6,
                a.local_pref,
            )
        })
        .collect();
    assert_eq!(advs, [("b-0", 24, 64, Some(100)), ("b-1", 32, 128, None)]);
    assert_eq!(
        c.bgp_advertisements[0].communities,
        [
            Community::Standard(65000, 1),
            Community::Standard(1, 2),
            Community::Large(1, 2, 3)
        ]
    );
    assert_eq!(
        c.communities.get("gold"),
        Some(&Community::Standard(65000, 1))
    );
}

#[test]
fn sizes_are_exact_up_to_a_whole_ipv6_space() {
    let cases = [
        ("[10.0.0.0/24]", "256"),
        ("['192.168.5.5-192.168.5.9']", "5"),
        ("[0.0.0.0/0]", "4294967296"),
        ("['fc00::/64']", "18446744073709551616"),
        ("['::/0']", "340282366920938463463374607431768211456"),
        (
            "['::/0', 0.0.0.0/0]",
            "340282366920938463463374607436063178752",
        ),
        (
            "['::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128']",
            "340282366920938463463374607431768211456",
        ),
    ];
    for (addresses, want) in cases {
        let c = load_documents(&format!(
            "address-pools:\n- {{name: p, protocol: layer2, addresses: {addresses}}}\n"
        ))
        .unwrap();
        assert_eq!(c.pools[0].size().to_string(), want, "{addresses}");
    }
    let whole =
        load_documents("address-pools:\n- {name: p, protocol: layer2, addresses: ['::/0']}\n")
            .unwrap();
    assert_eq!(whole.pools[0].size().to_u128(), None);
    assert!(whole.pools[0].size() > AddressCount::from_u128(u128::MAX));
}

#[test]
fn load_takes_the_configmap_text_and_typed_objects() {
    let pool: crd::IpAddressPool = serde_saphyr::from_str(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: extra, namespace: metallb-system}\nspec: {addresses: [10.5.0.0/24]}\n",
    )
    .unwrap();
    let resources = Resources {
        ip_address_pools: vec![pool],
        ..Resources::default()
    };
    let c = load(
        Some("address-pools:\n- {name: p, protocol: layer2, addresses: [10.0.0.0/24]}\n"),
        &resources,
    )
    .unwrap();
    assert_eq!(names(&c), ["p", "extra"]);
    assert_eq!(
        c.pool_of(ip("10.5.0.9")).map(|p| p.name.as_str()),
        Some("extra")
    );
    assert_eq!(
        c.pools[1].origin,
        Origin::Crd {
            namespace: "metallb-system".into()
        }
    );
    // Without a ConfigMap and without objects: an empty, valid configuration.
    assert_eq!(
        load(None, &Resources::default()).unwrap(),
        Config::default()
    );
    // Errors of both sources come together.
    let bad = load(
        Some("address-pools: [{name: p, protocol: layer2, addresses: [10.5.0.0/16]}]"),
        &resources,
    )
    .unwrap_err();
    assert_eq!(bad.len(), 1, "{bad}");
}

/// MetalLB's docs show an L2Advertisement with metadata only: it announces
/// every IPAddressPool.
#[test]
fn l2_advertisement_without_spec_announces_every_pool() {
    let text = format!(
        "{}---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: example\n  namespace: metallb-system\n",
        crd(
            "IPAddressPool",
            "first-pool",
            "",
            "  addresses: [192.168.1.240-192.168.1.250]\n"
        ),
    );
    let c = load_documents(&text).unwrap();
    assert_eq!(c.l2_advertisements.len(), 1);
    assert_eq!(c.l2_advertisements[0].pools, ["first-pool"]);
}

/// What `kubectl get ipaddresspools,l2advertisements -o yaml` prints: a List
/// with server-side fields (status, managedFields, resourceVersion).
#[test]
fn kubectl_list_output_is_read() {
    let text = "apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata:
    creationTimestamp: \"2024-05-01T10:00:00Z\"
    generation: 1
    managedFields:
    - apiVersion: metallb.io/v1beta1
      fieldsType: FieldsV1
      manager: kubectl-client-side-apply
      operation: Update
    name: first-pool
    namespace: metallb-system
    resourceVersion: \"1234\"
    uid: 0b7f7c2e-8d3c-4f4e-9a51-3f0d0c1f2a77
  spec:
    addresses:
    - 192.168.1.240-192.168.1.250
    autoAssign: true
    avoidBuggyIPs: false
  status: {}
- apiVersion: metallb.io/v1beta1
  kind: L2Advertisement
  metadata:
    name: example
    namespace: metallb-system
  spec: {}
";
    let c = load_documents(text).unwrap();
    assert_eq!(names(&c), ["first-pool"]);
    assert_eq!(c.l2_advertisements[0].pools, ["first-pool"]);
}

#[test]
fn external_ips_are_announced_only_where_an_advertisement_says_so() {
    let pool = crd("IPAddressPool", "p", "", "  addresses: [10.0.2.0/24]\n");
    let cases = [
        (
            "ConfigMap: off by default",
            "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: b, protocol: bgp, addresses: [10.0.1.0/24]}\n".to_string(),
            (false, false),
        ),
        (
            "ConfigMap: the pool's key sets its advertisements",
            "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24], announce-external-ips: true}\n- {name: b, protocol: bgp, addresses: [10.0.1.0/24], announce-external-ips: true}\n".to_string(),
            (true, true),
        ),
        (
            "CRDs: off by default",
            format!(
                "{pool}{}{}",
                crd("L2Advertisement", "l2", "", "  ipAddressPools: [p]\n"),
                crd("BGPAdvertisement", "bgp", "", "  ipAddressPools: [p]\n")
            ),
            (false, false),
        ),
        (
            "CRDs: announceExternalIPs per advertisement",
            format!(
                "{pool}{}{}",
                crd("L2Advertisement", "l2", "", "  announceExternalIPs: true\n"),
                crd("BGPAdvertisement", "bgp", "", "  announceExternalIPs: false\n")
            ),
            (true, false),
        ),
    ];
    for (rule, text, (l2, bgp)) in cases {
        let c = load_documents(&text).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert!(
            c.l2_advertisements.iter().all(|a| a.external_ips == l2),
            "{rule}: layer 2"
        );
        assert!(
            c.bgp_advertisements.iter().all(|a| a.external_ips == bgp),
            "{rule}: BGP"
        );
    }
}
