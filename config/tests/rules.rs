//! One test per validation rule of SPEC A2/A3: each lists configurations the
//! rule accepts and configurations it refuses, with the exact error line
//! (path and message) the refusal must produce.

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrolb_config::load_documents;

/// The error line must be among the reported ones; a leading `~` means
/// "some line contains this" (for messages worded by the YAML reader).
fn check_invalid(rule: &str, text: &str, expected: &str) {
    let errors = match load_documents(text) {
        Ok(config) => panic!("rule {rule}: accepted an invalid config:\n{text}\n=> {config:?}"),
        Err(e) => e,
    };
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let found = match expected.strip_prefix('~') {
        Some(part) => lines.iter().any(|l| l.contains(part)),
        None => lines.iter().any(|l| l == expected),
    };
    assert!(
        found,
        "rule {rule}: expected error\n  {expected}\nbut got:\n  {}\nfor:\n{text}",
        lines.join("\n  ")
    );
}

fn check_valid(rule: &str, text: &str) {
    if let Err(e) = load_documents(text) {
        panic!("rule {rule}: refused a valid config:\n{text}\n=> {e}");
    }
}

macro_rules! rule {
    ($name:ident { valid: [$($ok:expr),* $(,)?], invalid: [$(($bad:expr, $err:expr $(,)?)),* $(,)?] $(,)? }) => {
        #[test]
        fn $name() {
            $( check_valid(stringify!($name), &$ok); )*
            $( check_invalid(stringify!($name), &$bad, $err); )*
        }
    };
}

/// A ConfigMap config with one layer2 pool `p` of these addresses.
fn l2(addresses: &str) -> String {
    format!("address-pools:\n- name: p\n  protocol: layer2\n  addresses: [{addresses}]\n")
}

/// A ConfigMap config with one bgp pool `p` and these advertisement lines.
fn bgp(addresses: &str, advertisements: &str) -> String {
    format!(
        "bgp-communities:\n  gold: '65000:1'\naddress-pools:\n- name: p\n  protocol: bgp\n  addresses: [{addresses}]\n{advertisements}"
    )
}

/// A ConfigMap config with one peer made of these extra lines.
fn peer(extra: &str) -> String {
    format!(
        "bfd-profiles:\n- name: fast\npeers:\n- peer-address: 10.0.0.1\n  peer-asn: 64501\n  my-asn: 64500\n{extra}"
    )
}

// ---- ConfigMap: parsing ----

rule!(unknown_keys_are_refused {
    valid: [l2("10.0.0.0/24")],
    invalid: [
        (
            "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  auto-asign: false\n",
            "~unknown field `auto-asign`"
        ),
        ("adress-pools: []\n", "~unknown field `adress-pools`"),
        (peer("  hold_time: 90s\n"), "~unknown field `hold_time`"),
    ],
});

rule!(bad_yaml_is_refused {
    valid: [l2("10.0.0.0/24")],
    invalid: [
        ("address-pools:\n- name: p\n  protocol: [layer2\n", "~line"),
        (
            "address-pools:\n- name: p\n  name: q\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n",
            "~duplicate mapping key"
        ),
    ],
});

// ---- ConfigMap: address pools ----

rule!(pool_name_is_required {
    valid: [l2("10.0.0.0/24")],
    invalid: [
        (
            "address-pools:\n- protocol: layer2\n  addresses: [10.0.0.0/24]\n",
            "address-pools[0]: missing name"
        ),
        (
            "address-pools:\n- name: ''\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n",
            "address-pools[0]: missing name"
        ),
    ],
});

rule!(pool_names_are_unique {
    valid: [
        "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: b, protocol: layer2, addresses: [10.0.1.0/24]}\n"
    ],
    invalid: [(
        "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: a, protocol: layer2, addresses: [10.0.1.0/24]}\n",
        "address-pools[1] \"a\": pool name \"a\" is already used by address-pools[0] \"a\"",
    )],
});

rule!(protocol_is_layer2_or_bgp {
    valid: [l2("10.0.0.0/24"), bgp("10.0.0.0/24", "")],
    invalid: [
        (
            "address-pools:\n- {name: p, addresses: [10.0.0.0/24]}\n",
            "address-pools[0] \"p\": missing protocol (layer2 or bgp)"
        ),
        (
            "address-pools:\n- {name: p, protocol: arp, addresses: [10.0.0.0/24]}\n",
            "address-pools[0] \"p\": protocol \"arp\": unknown protocol (layer2 or bgp)"
        ),
    ],
});

rule!(pool_has_addresses {
    valid: [l2("10.0.0.0/24")],
    invalid: [
        (
            "address-pools:\n- {name: p, protocol: layer2}\n",
            "address-pools[0] \"p\": no addresses: a pool needs at least one CIDR or range"
        ),
        (
            l2(""),
            "address-pools[0] \"p\": no addresses: a pool needs at least one CIDR or range"
        ),
    ],
});

rule!(cidr_prefix_length_fits_the_family {
    valid: [l2("10.0.0.0/32"), l2("fc00::/128"), l2("0.0.0.0/0")],
    invalid: [
        (
            l2("10.0.0.0/33"),
            "address-pools[0] \"p\": addresses[0] \"10.0.0.0/33\": invalid prefix length"
        ),
        (
            l2("fc00::/129"),
            "address-pools[0] \"p\": addresses[0] \"fc00::/129\": invalid prefix length"
        ),
        (
            l2("10.0.0.0/x"),
            "address-pools[0] \"p\": addresses[0] \"10.0.0.0/x\": invalid prefix length"
        ),
    ],
});

rule!(cidr_address_is_an_ip {
    valid: [l2("192.168.10.0/24")],
    invalid: [
        (
            l2("192.168.300.0/24"),
            "address-pools[0] \"p\": addresses[0] \"192.168.300.0/24\": invalid CIDR: \"192.168.300.0\" is not an IP address"
        ),
        (
            l2("192.168.10.7"),
            "address-pools[0] \"p\": addresses[0] \"192.168.10.7\": not a CIDR or range (a single address is written 192.168.10.7/32)"
        ),
        (
            l2("pool"),
            "address-pools[0] \"p\": addresses[0] \"pool\": not a CIDR (like 192.168.10.0/24) or a range (like 192.168.5.5-192.168.5.9)"
        ),
    ],
});

rule!(cidr_host_bits_are_masked {
    valid: [l2("10.0.0.1/24")],
    invalid: [(
        "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.1/24]}\n- {name: b, protocol: layer2, addresses: [10.0.0.0/32]}\n",
        "address-pools[1] \"b\": addresses[0] \"10.0.0.0/32\": overlaps address-pools[0] \"a\" addresses[0] \"10.0.0.1/24\"",
    )],
});

rule!(range_start_is_not_after_end {
    valid: [l2("192.168.5.5-192.168.5.9"), l2("192.168.5.5-192.168.5.5")],
    invalid: [(
        l2("192.168.5.9-192.168.5.5"),
        "address-pools[0] \"p\": addresses[0] \"192.168.5.9-192.168.5.5\": invalid range: start 192.168.5.9 is after end 192.168.5.5"
    )],
});

rule!(range_has_one_family {
    valid: [l2("'fc00::1-fc00::ff'")],
    invalid: [(
        l2("'10.0.0.1-fc00::1'"),
        "address-pools[0] \"p\": addresses[0] \"10.0.0.1-fc00::1\": invalid range: mixes IPv4 and IPv6"
    )],
});

rule!(range_allows_spaces_around_the_dash {
    valid: [
        l2("'192.168.5.5 - 192.168.5.9'"),
        l2("' 192.168.5.5 -192.168.5.9 '")
    ],
    invalid: [(
        l2("'192.168.5.5 - '"),
        "address-pools[0] \"p\": addresses[0] \"192.168.5.5 - \": invalid range: \"\" is not an IP address"
    )],
});

rule!(pool_may_mix_families {
    valid: [l2(
        "10.0.0.0/24, 'fc00::/120', '10.0.1.1-10.0.1.9', 'fc00:1::1-fc00:1::9'"
    )],
    invalid: [],
});

rule!(blocks_do_not_overlap_within_a_pool {
    valid: [l2("10.0.0.0/25, 10.0.0.128/25")],
    invalid: [
        (
            l2("10.0.0.0/24, 10.0.0.128/25"),
            "address-pools[0] \"p\": addresses[1] \"10.0.0.128/25\": overlaps address-pools[0] \"p\" addresses[0] \"10.0.0.0/24\""
        ),
        (
            l2("10.0.0.0/24, 10.0.0.0/24"),
            "address-pools[0] \"p\": addresses[1] \"10.0.0.0/24\": overlaps address-pools[0] \"p\" addresses[0] \"10.0.0.0/24\""
        ),
        (
            l2("10.0.0.1-10.0.0.10, 10.0.0.10-10.0.0.20"),
            "address-pools[0] \"p\": addresses[1] \"10.0.0.10-10.0.0.20\": overlaps address-pools[0] \"p\" addresses[0] \"10.0.0.1-10.0.0.10\""
        ),
    ],
});

rule!(blocks_do_not_overlap_across_pools {
    valid: [
        "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/24]}\n- {name: b, protocol: bgp, addresses: [10.0.1.0/24]}\n"
    ],
    invalid: [(
        "address-pools:\n- {name: a, protocol: layer2, addresses: ['fc00::/64']}\n- {name: b, protocol: bgp, addresses: ['fc00::5-fc00::9']}\n",
        "address-pools[1] \"b\": addresses[0] \"fc00::5-fc00::9\": overlaps address-pools[0] \"a\" addresses[0] \"fc00::/64\"",
    )],
});

rule!(bgp_advertisements_only_on_bgp_pools {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - aggregation-length: 32\n"
    )],
    invalid: [(
        "address-pools:\n- name: p\n  protocol: layer2\n  addresses: [10.0.0.0/24]\n  bgp-advertisements:\n  - aggregation-length: 32\n",
        "address-pools[0] \"p\": bgp-advertisements: not allowed on a layer2 pool",
    )],
});

// ---- ConfigMap: BGP advertisements ----

rule!(aggregation_length_is_at_most_32_and_128 {
    valid: [bgp(
        "10.0.0.0/24, 'fc00::/64'",
        "  bgp-advertisements:\n  - {aggregation-length: 24, aggregation-length-v6: 64}\n"
    )],
    invalid: [
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - aggregation-length: 33\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: aggregation-length 33: must be 0..=32"
        ),
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - aggregation-length-v6: 129\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: aggregation-length-v6 129: must be 0..=128"
        ),
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - aggregation-length: -1\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: aggregation-length -1: must be 0..=32"
        ),
    ],
});

rule!(aggregation_length_is_not_shorter_than_a_block_prefix {
    valid: [
        bgp(
            "10.0.0.0/24",
            "  bgp-advertisements:\n  - aggregation-length: 24\n"
        ),
        bgp(
            "10.0.0.0/24",
            "  bgp-advertisements:\n  - aggregation-length: 28\n"
        ),
        // A range's largest CIDR (10.0.0.0/30 of 10.0.0.0-10.0.0.4) decides, as in MetalLB.
        bgp(
            "10.0.0.0-10.0.0.4",
            "  bgp-advertisements:\n  - aggregation-length: 30\n"
        ),
    ],
    invalid: [
        (
            bgp(
                "10.0.0.0/26",
                "  bgp-advertisements:\n  - aggregation-length: 24\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: aggregation-length 24: shorter than the prefix length 26 of address-pools[0] \"p\" addresses[0] \"10.0.0.0/26\""
        ),
        (
            bgp(
                "10.0.0.0-10.0.0.4",
                "  bgp-advertisements:\n  - aggregation-length: 29\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: aggregation-length 29: shorter than the prefix length 30 of address-pools[0] \"p\" addresses[0] \"10.0.0.0-10.0.0.4\""
        ),
        (
            bgp(
                "'fc00::/120'",
                "  bgp-advertisements:\n  - aggregation-length-v6: 64\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: aggregation-length-v6 64: shorter than the prefix length 120 of address-pools[0] \"p\" addresses[0] \"fc00::/120\""
        ),
    ],
});

rule!(community_literal_has_16_bit_halves {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - communities: ['65535:65535', '0:0']\n"
    )],
    invalid: [
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - communities: ['65536:1']\n"
            ),
            "address-pools[0] \"p\": bgp-advertisements[0]: communities[0] \"65536:1\": invalid community \"65536:1\" (expected AA:NN with 16-bit numbers or large:A:B:C with 32-bit numbers), and no alias of that name is defined"
        ),
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - communities: ['1:2:3']\n"
            ),
            "~communities[0] \"1:2:3\": invalid community"
        ),
    ],
});

rule!(community_large_has_32_bit_parts {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - communities: ['large:4294967295:0:1']\n"
    )],
    invalid: [
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - communities: ['large:4294967296:0:1']\n"
            ),
            "~communities[0] \"large:4294967296:0:1\": invalid community"
        ),
        (
            bgp(
                "10.0.0.0/24",
                "  bgp-advertisements:\n  - communities: ['large:1:2']\n"
            ),
            "~communities[0] \"large:1:2\": invalid community"
        ),
    ],
});

rule!(community_alias_must_be_defined {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - communities: [gold]\n"
    )],
    invalid: [(
        bgp(
            "10.0.0.0/24",
            "  bgp-advertisements:\n  - communities: [silver]\n"
        ),
        "~communities[0] \"silver\": invalid community \"silver\""
    )],
});

rule!(community_alias_value_is_a_community {
    valid: ["bgp-communities:\n  a: '1:2'\n  b: 'large:1:2:3'\n"],
    invalid: [(
        "bgp-communities:\n  a: '1:x'\n",
        "~bgp-communities \"a\": invalid community \"1:x\""
    )],
});

rule!(communities_of_an_advertisement_are_not_repeated {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - communities: ['1:2', '1:3']\n"
    )],
    invalid: [(
        bgp(
            "10.0.0.0/24",
            "  bgp-advertisements:\n  - communities: ['1:2', '1:2']\n"
        ),
        "address-pools[0] \"p\": bgp-advertisements[0]: communities[1] \"1:2\": duplicate community"
    )],
});

rule!(advertisements_of_a_pool_are_not_repeated {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - aggregation-length: 32\n  - aggregation-length: 24\n"
    )],
    invalid: [(
        bgp(
            "10.0.0.0/24",
            "  bgp-advertisements:\n  - {aggregation-length: 32, localpref: 100}\n  - {aggregation-length: 32, localpref: 100}\n"
        ),
        "address-pools[0] \"p\": bgp-advertisements[1]: duplicate of bgp-advertisements[0]"
    )],
});

rule!(local_pref_fits_32_bits {
    valid: [bgp(
        "10.0.0.0/24",
        "  bgp-advertisements:\n  - localpref: 4294967295\n"
    )],
    invalid: [(
        bgp(
            "10.0.0.0/24",
            "  bgp-advertisements:\n  - localpref: 4294967296\n"
        ),
        "address-pools[0] \"p\": bgp-advertisements[0]: localpref 4294967296: must be 0..=4294967295"
    )],
});

// ---- ConfigMap: peers ----

rule!(peer_address_is_a_required_ip {
    valid: [
        peer(""),
        "peers:\n- {peer-address: 'fc00::1', peer-asn: 1, my-asn: 2}\n"
    ],
    invalid: [
        (
            "peers:\n- {peer-asn: 1, my-asn: 2}\n",
            "peers[0]: missing peer-address"
        ),
        (
            "peers:\n- {peer-address: router, peer-asn: 1, my-asn: 2}\n",
            "peers[0] \"router\": peer-address \"router\": not an IP address"
        ),
    ],
});

rule!(asn_is_1_to_4294967295 {
    valid: ["peers:\n- {peer-address: 10.0.0.1, peer-asn: 4294967295, my-asn: 1}\n"],
    invalid: [
        (
            "peers:\n- {peer-address: 10.0.0.1, peer-asn: 0, my-asn: 1}\n",
            "peers[0] \"10.0.0.1\": peer-asn 0: must be 1..=4294967295"
        ),
        (
            "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 4294967296}\n",
            "peers[0] \"10.0.0.1\": my-asn 4294967296: must be 1..=4294967295"
        ),
        (
            "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1}\n",
            "peers[0] \"10.0.0.1\": missing my-asn"
        ),
    ],
});

rule!(peer_port_is_1_to_65535 {
    valid: [peer("  peer-port: 1179\n")],
    invalid: [(
        peer("  peer-port: 70000\n"),
        "peers[0] \"10.0.0.1\": peer-port 70000: must be 1..=65535"
    )],
});

rule!(hold_time_is_0_or_at_least_3s {
    valid: [
        peer("  hold-time: 0s\n"),
        peer("  hold-time: 3s\n"),
        peer("  hold-time: 1m30s\n")
    ],
    invalid: [
        (
            peer("  hold-time: 1s\n"),
            "peers[0] \"10.0.0.1\": hold-time \"1s\": must be 0 or at least 3s"
        ),
        (
            peer("  hold-time: 2s\n"),
            "peers[0] \"10.0.0.1\": hold-time \"2s\": must be 0 or at least 3s"
        ),
        (
            peer("  hold-time: 500ms\n"),
            "peers[0] \"10.0.0.1\": hold-time \"500ms\": must be 0 or at least 3s"
        ),
        (
            peer("  hold-time: 19h\n"),
            "peers[0] \"10.0.0.1\": hold-time \"19h\": must be at most 65535s (18h12m15s)"
        ),
    ],
});

rule!(durations_use_go_syntax {
    valid: [peer("  hold-time: 3m\n  keepalive-time: 1m30s\n")],
    invalid: [
        (
            peer("  hold-time: 90\n"),
            "peers[0] \"10.0.0.1\": hold-time \"90\": missing unit in duration \"90\" (use ns, us, ms, s, m or h)"
        ),
        (
            peer("  hold-time: 90sec\n"),
            "~hold-time \"90sec\": unknown unit \"sec\""
        ),
    ],
});

rule!(keepalive_is_not_longer_than_hold {
    valid: [
        peer("  hold-time: 30s\n  keepalive-time: 30s\n"),
        peer("  hold-time: 0s\n")
    ],
    invalid: [
        (
            peer("  hold-time: 30s\n  keepalive-time: 31s\n"),
            "peers[0] \"10.0.0.1\": keepalive-time \"31s\": longer than the hold time 30s"
        ),
        (
            peer("  keepalive-time: 91s\n"),
            "peers[0] \"10.0.0.1\": keepalive-time \"91s\": longer than the hold time 1m30s"
        ),
        (
            peer("  hold-time: 30s\n  keepalive-time: 0s\n"),
            "peers[0] \"10.0.0.1\": keepalive-time \"0s\": must be more than 0 unless the hold time is 0"
        ),
    ],
});

rule!(router_id_is_ipv4 {
    valid: [peer("  router-id: 10.1.1.1\n")],
    invalid: [(
        peer("  router-id: 'fc00::1'\n"),
        "peers[0] \"10.0.0.1\": router-id \"fc00::1\": not an IPv4 address"
    )],
});

rule!(source_address_is_an_ip_of_the_peer_family {
    valid: [peer("  source-address: 10.0.0.2\n")],
    invalid: [
        (
            peer("  source-address: here\n"),
            "peers[0] \"10.0.0.1\": source-address \"here\": not an IP address"
        ),
        (
            peer("  source-address: 'fc00::2'\n"),
            "peers[0] \"10.0.0.1\": source-address \"fc00::2\": not of the family of peer-address"
        ),
    ],
});

rule!(node_selector_operators_are_known {
    valid: [peer(
        "  node-selectors:\n  - match-labels: {rack: a}\n    match-expressions:\n    - {key: zone, operator: In, values: [x]}\n    - {key: gpu, operator: DoesNotExist}\n"
    )],
    invalid: [
        (
            peer(
                "  node-selectors:\n  - match-expressions:\n    - {key: zone, operator: in, values: [x]}\n"
            ),
            "peers[0] \"10.0.0.1\": node-selectors[0]: match-expressions[0] \"zone\": unknown operator \"in\" (In, NotIn, Exists or DoesNotExist)"
        ),
        (
            peer("  node-selectors:\n  - match-expressions:\n    - {key: zone, operator: NotIn}\n"),
            "peers[0] \"10.0.0.1\": node-selectors[0]: match-expressions[0] \"zone\": operator NotIn needs at least one value"
        ),
        (
            peer(
                "  node-selectors:\n  - match-expressions:\n    - {key: zone, operator: Exists, values: [x]}\n"
            ),
            "peers[0] \"10.0.0.1\": node-selectors[0]: match-expressions[0] \"zone\": operator Exists takes no values"
        ),
    ],
});

rule!(ebgp_multihop_is_for_ebgp_only {
    valid: [peer("  ebgp-multihop: true\n")],
    invalid: [(
        "peers:\n- {peer-address: 10.0.0.1, peer-asn: 64500, my-asn: 64500, ebgp-multihop: true}\n",
        "peers[0] \"10.0.0.1\": ebgp-multihop: not allowed for an iBGP peer (my-asn equals peer-asn)",
    )],
});

rule!(bfd_profile_of_a_peer_exists {
    valid: [peer("  bfd-profile: fast\n")],
    invalid: [(
        peer("  bfd-profile: slow\n"),
        "peers[0] \"10.0.0.1\": bfd-profile \"slow\": no BFD profile of that name"
    )],
});

rule!(graceful_restart_of_a_peer_is_a_bool {
    valid: [
        peer("  graceful-restart: true\n"),
        peer("  graceful-restart: false\n")
    ],
    invalid: [(
        peer("  graceful-restart: sometimes\n"),
        "~invalid boolean at line 7"
    )],
});

rule!(identical_peers_are_refused {
    valid: [
        "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2}\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, peer-port: 1179}\n"
    ],
    invalid: [(
        "peers:\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2}\n- {peer-address: 10.0.0.1, peer-asn: 1, my-asn: 2, hold-time: 90s}\n",
        "peers[1] \"10.0.0.1\": duplicate of peer peers[0] \"10.0.0.1\"",
    )],
});

// ---- ConfigMap: BFD profiles ----

rule!(bfd_profile_name_is_required_and_unique {
    valid: ["bfd-profiles:\n- name: a\n- name: b\n"],
    invalid: [
        (
            "bfd-profiles:\n- receive-interval: 100\n",
            "bfd-profiles[0]: missing name"
        ),
        (
            "bfd-profiles:\n- name: a\n- name: a\n",
            "bfd-profiles[1] \"a\": BFD profile name \"a\" is already used by bfd-profiles[0] \"a\""
        ),
    ],
});

rule!(bfd_profile_values_are_in_range {
    valid: [
        "bfd-profiles:\n- {name: a, receive-interval: 10, transmit-interval: 60000, echo-interval: 50, detect-multiplier: 2, minimum-ttl: 254, echo-mode: true, passive-mode: true}\n"
    ],
    invalid: [
        (
            "bfd-profiles:\n- {name: a, receive-interval: 9}\n",
            "bfd-profiles[0] \"a\": receive-interval 9: must be 10..=60000"
        ),
        (
            "bfd-profiles:\n- {name: a, transmit-interval: 60001}\n",
            "bfd-profiles[0] \"a\": transmit-interval 60001: must be 10..=60000"
        ),
        (
            "bfd-profiles:\n- {name: a, echo-interval: 5}\n",
            "bfd-profiles[0] \"a\": echo-interval 5: must be 10..=60000"
        ),
        (
            "bfd-profiles:\n- {name: a, detect-multiplier: 256}\n",
            "bfd-profiles[0] \"a\": detect-multiplier 256: must be 2..=255"
        ),
        (
            "bfd-profiles:\n- {name: a, minimum-ttl: 0}\n",
            "bfd-profiles[0] \"a\": minimum-ttl 0: must be 1..=254"
        ),
    ],
});

// ---- CRDs ----

const POOL_PROD: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: prod\n  namespace: metallb-system\n  labels: {tier: prod}\nspec:\n  addresses: [10.1.0.0/24]\n";

fn crd(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: metallb.io/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n{spec}"
    )
}

rule!(crd_unknown_fields_are_refused {
    valid: [POOL_PROD],
    invalid: [(
        crd(
            "IPAddressPool",
            "p",
            "  addresses: [10.0.0.0/24]\n  autoassign: true\n"
        ),
        "~document 1 (IPAddressPool metallb-system/p): spec.autoassign: unknown field `autoassign`"
    )],
});

rule!(crd_kind_and_version_are_known {
    valid: [crd("L2Advertisement", "l2", "  ipAddressPools: [prod]\n")],
    invalid: [
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            "~document 1 (Deployment x): unknown kind \"Deployment\""
        ),
        (
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: x}\n",
            "document 1 (BGPPeer x): apiVersion metallb.io/v1beta2 is not supported (ferrolb reads metallb.io/v1beta1)"
        ),
    ],
});

rule!(crd_object_has_a_name {
    valid: [POOL_PROD],
    invalid: [(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {namespace: metallb-system}\nspec: {addresses: [10.0.0.0/24]}\n",
        "IPAddressPool metallb-system/<unnamed>: missing metadata.name"
    )],
});

rule!(crd_pool_addresses_follow_the_configmap_rules {
    valid: [crd(
        "IPAddressPool",
        "prod",
        "  addresses: ['10.0.0.0/24', '192.168.5.5 - 192.168.5.9']\n"
    )],
    invalid: [
        (
            crd("IPAddressPool", "prod", "  addresses: [10.0.0.0/33]\n"),
            "IPAddressPool metallb-system/prod: spec.addresses[0] \"10.0.0.0/33\": invalid prefix length"
        ),
        (
            crd("IPAddressPool", "prod", "  addresses: []\n"),
            "IPAddressPool metallb-system/prod: no spec.addresses: a pool needs at least one CIDR or range"
        ),
        (
            format!(
                "{}{}",
                crd("IPAddressPool", "a", "  addresses: [10.0.0.0/24]\n"),
                crd("IPAddressPool", "b", "  addresses: [10.0.0.7/32]\n")
            ),
            "IPAddressPool metallb-system/b: spec.addresses[0] \"10.0.0.7/32\": overlaps IPAddressPool metallb-system/a spec.addresses[0] \"10.0.0.0/24\""
        ),
    ],
});

rule!(configmap_and_crd_names_do_not_clash {
    valid: [format!(
        "{}{}",
        l2("10.0.0.0/24"),
        crd("IPAddressPool", "q", "  addresses: [10.0.1.0/24]\n")
    )
    .replace("address-pools", "---\naddress-pools")],
    invalid: [(
        format!(
            "---\n{}{}",
            l2("10.0.0.0/24"),
            crd("IPAddressPool", "p", "  addresses: [10.0.1.0/24]\n")
        ),
        "IPAddressPool metallb-system/p: pool name \"p\" is already used by address-pools[0] \"p\"",
    )],
});

rule!(crd_service_allocation_is_valid {
    valid: [crd(
        "IPAddressPool",
        "p",
        "  addresses: [10.0.0.0/24]\n  serviceAllocation:\n    priority: 10\n    namespaces: [a, b]\n    serviceSelectors:\n    - matchLabels: {app: web}\n"
    )],
    invalid: [
        (
            crd(
                "IPAddressPool",
                "p",
                "  addresses: [10.0.0.0/24]\n  serviceAllocation:\n    priority: -1\n"
            ),
            "IPAddressPool metallb-system/p: spec.serviceAllocation.priority -1: must be 0..=4294967295"
        ),
        (
            crd(
                "IPAddressPool",
                "p",
                "  addresses: [10.0.0.0/24]\n  serviceAllocation:\n    namespaces: [a, a]\n"
            ),
            "IPAddressPool metallb-system/p: spec.serviceAllocation.namespaces[1] \"a\": duplicate namespace"
        ),
        (
            crd(
                "IPAddressPool",
                "p",
                "  addresses: [10.0.0.0/24]\n  serviceAllocation:\n    namespaceSelectors:\n    - matchExpressions: [{key: team, operator: Has}]\n"
            ),
            "IPAddressPool metallb-system/p: spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0] \"team\": unknown operator \"Has\" (In, NotIn, Exists or DoesNotExist)"
        ),
    ],
});

rule!(crd_bgp_advertisement_aggregation_fits_the_selected_pools {
    valid: [format!(
        "{POOL_PROD}{}",
        crd(
            "BGPAdvertisement",
            "agg",
            "  aggregationLength: 24\n  ipAddressPools: [prod]\n"
        )
    )],
    invalid: [
        (
            format!(
                "{POOL_PROD}{}",
                crd(
                    "BGPAdvertisement",
                    "agg",
                    "  aggregationLength: 16\n  ipAddressPoolSelectors:\n  - matchLabels: {tier: prod}\n"
                )
            ),
            "BGPAdvertisement metallb-system/agg: spec.aggregationLength 16: shorter than the prefix length 24 of IPAddressPool metallb-system/prod spec.addresses[0] \"10.1.0.0/24\""
        ),
        (
            format!(
                "{POOL_PROD}{}",
                crd("BGPAdvertisement", "agg", "  aggregationLength: 16\n")
            ),
            "BGPAdvertisement metallb-system/agg: spec.aggregationLength 16: shorter than the prefix length 24 of IPAddressPool metallb-system/prod spec.addresses[0] \"10.1.0.0/24\""
        ),
        (
            crd("BGPAdvertisement", "agg", "  aggregationLengthV6: 200\n"),
            "BGPAdvertisement metallb-system/agg: spec.aggregationLengthV6 200: must be 0..=128"
        ),
    ],
});

rule!(crd_bgp_advertisement_communities_resolve {
    valid: [format!(
        "{}{}",
        crd(
            "Community",
            "c",
            "  communities:\n  - {name: gold, value: '65000:1'}\n"
        ),
        crd(
            "BGPAdvertisement",
            "a",
            "  communities: [gold, '1:1', 'large:1:2:3']\n"
        )
    )],
    invalid: [
        (
            crd("BGPAdvertisement", "a", "  communities: [gold]\n"),
            "~BGPAdvertisement metallb-system/a: spec.communities[0] \"gold\": invalid community \"gold\""
        ),
        (
            crd(
                "Community",
                "c",
                "  communities:\n  - {name: gold, value: '65000'}\n"
            ),
            "~Community metallb-system/c: spec.communities[0] \"gold\": value: invalid community \"65000\""
        ),
        (
            format!(
                "{}{}",
                crd(
                    "Community",
                    "c",
                    "  communities:\n  - {name: gold, value: '65000:1'}\n"
                ),
                crd(
                    "Community",
                    "d",
                    "  communities:\n  - {name: gold, value: '65000:2'}\n"
                )
            ),
            "Community metallb-system/d: spec.communities[0] \"gold\": community alias \"gold\" is already defined by Community metallb-system/c: spec.communities[0] \"gold\""
        ),
    ],
});

rule!(crd_peer_follows_the_configmap_rules {
    valid: [crd(
        "BGPPeer",
        "r1",
        "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  holdTime: 9s\n  keepaliveTime: 3s\n"
    )],
    invalid: [
        (
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 0\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n"
            ),
            "BGPPeer metallb-system/r1: spec.myASN 0: must be 1..=4294967295"
        ),
        (
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  holdTime: 2s\n"
            ),
            "BGPPeer metallb-system/r1: spec.holdTime \"2s\": must be 0 or at least 3s"
        ),
        (
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64500\n  peerAddress: 10.0.0.1\n  ebgpMultiHop: true\n"
            ),
            "BGPPeer metallb-system/r1: spec.ebgpMultiHop: not allowed for an iBGP peer (spec.myASN equals spec.peerASN)"
        ),
        (
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  bfdProfile: nope\n"
            ),
            "BGPPeer metallb-system/r1: spec.bfdProfile \"nope\": no BFD profile of that name"
        ),
        (
            crd("BGPPeer", "r1", "  myASN: 64500\n  peerAddress: 10.0.0.1\n"),
            "document 1 (BGPPeer metallb-system/r1): spec: missing field `peerASN`"
        ),
    ],
});

rule!(crd_peer_password_has_one_source {
    valid: [crd(
        "BGPPeer",
        "r1",
        "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  passwordSecret: {name: bgp-auth}\n"
    )],
    invalid: [
        (
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  password: x\n  passwordSecret: {name: bgp-auth}\n"
            ),
            "BGPPeer metallb-system/r1: spec.passwordSecret: not allowed together with spec.password"
        ),
        (
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  passwordSecret: {namespace: x}\n"
            ),
            "BGPPeer metallb-system/r1: spec.passwordSecret: missing name"
        ),
    ],
});

rule!(crd_bfd_profile_values_are_in_range {
    valid: [crd(
        "BFDProfile",
        "fast",
        "  receiveInterval: 300\n  detectMultiplier: 3\n"
    )],
    invalid: [(
        crd("BFDProfile", "fast", "  detectMultiplier: 1\n"),
        "BFDProfile metallb-system/fast: spec.detectMultiplier 1: must be 2..=255"
    )],
});

rule!(crd_graceful_restart_of_a_peer_is_a_bool {
    valid: [crd(
        "BGPPeer",
        "r1",
        "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  enableGracefulRestart: true\n"
    )],
    invalid: [(
        crd(
            "BGPPeer",
            "r1",
            "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  enableGracefulRestart: 3\n"
        ),
        "~enableGracefulRestart"
    )],
});

/// Both sources set the model's flag; absent means off.
#[test]
fn graceful_restart_reaches_the_model_from_both_sources() {
    let cases = [
        ("configmap_true", peer("  graceful-restart: true\n"), true),
        ("configmap_absent", peer(""), false),
        (
            "crd_true",
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n  enableGracefulRestart: true\n",
            ),
            true,
        ),
        (
            "crd_absent",
            crd(
                "BGPPeer",
                "r1",
                "  myASN: 64500\n  peerASN: 64501\n  peerAddress: 10.0.0.1\n",
            ),
            false,
        ),
    ];
    for (rule, text, want) in cases {
        let config = load_documents(&text).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(config.peers.len(), 1, "{rule}");
        assert_eq!(config.peers[0].graceful_restart, want, "{rule}");
    }
}

rule!(crd_l2_advertisement_selectors_are_valid {
    valid: [crd(
        "L2Advertisement",
        "l2",
        "  ipAddressPoolSelectors:\n  - matchExpressions: [{key: tier, operator: Exists}]\n  interfaces: [eth0]\n"
    )],
    invalid: [
        (
            crd(
                "L2Advertisement",
                "l2",
                "  nodeSelectors:\n  - matchExpressions: [{key: tier, operator: In}]\n"
            ),
            "L2Advertisement metallb-system/l2: spec.nodeSelectors[0].matchExpressions[0] \"tier\": operator In needs at least one value"
        ),
        (
            crd("L2Advertisement", "l2", "  interfaces: ['']\n"),
            "L2Advertisement metallb-system/l2: spec.interfaces[0]: empty interface name"
        ),
    ],
});

/// Not one rule but the promise of SPEC A2: every error at once.
#[test]
fn all_errors_are_reported_at_once() {
    let text = "peers:\n- {peer-address: x, peer-asn: 0, my-asn: 1}\naddress-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.0/33, 10.0.1.0/24]}\n- {name: b, protocol: bgp, addresses: [10.0.1.5/32]}\n- {protocol: ftp, addresses: []}\n";
    let errors = load_documents(text).unwrap_err();
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "peers[0] \"x\": peer-asn 0: must be 1..=4294967295",
        "peers[0] \"x\": peer-address \"x\": not an IP address",
        "address-pools[0] \"a\": addresses[0] \"10.0.0.0/33\": invalid prefix length",
        "address-pools[2]: missing name",
        "address-pools[2]: no addresses: a pool needs at least one CIDR or range",
        "address-pools[2]: protocol \"ftp\": unknown protocol (layer2 or bgp)",
        "address-pools[1] \"b\": addresses[0] \"10.0.1.5/32\": overlaps address-pools[0] \"a\" addresses[1] \"10.0.1.0/24\"",
    ];
    for e in expected {
        assert!(
            lines.iter().any(|l| l == e),
            "missing {e:?} in:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), expected.len(), "{}", lines.join("\n"));
    // Display is one error per line.
    assert_eq!(errors.to_string().lines().count(), expected.len());
}
