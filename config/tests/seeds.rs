//! The classic tutorials' ConfigMaps (see shared/seeds) are accepted as written.

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use ferrolb_config::{load_documents, model::AddressCount};

/// Layer-2 ConfigMap of the tutorial (seed 001), as a whole manifest.
const LAYER2: &str = include_str!("../../manifests/example-config.yaml");

/// BGP ConfigMap of the tutorial (seed 000).
const BGP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - peer-address: 10.0.0.1
      peer-asn: 64501
      my-asn: 64500
    address-pools:
    - name: default
      protocol: bgp
      addresses:
      - 192.168.10.0/24
";

#[test]
fn tutorial_layer2_configmap_is_accepted() {
    let config = load_documents(LAYER2).unwrap();
    assert_eq!(config.pools.len(), 1);
    let pool = &config.pools[0];
    assert_eq!(pool.name, "my-ip-space");
    assert_eq!(pool.size(), AddressCount::from_u128(5));
    assert!(pool.contains("192.168.5.5".parse::<IpAddr>().unwrap()));
    assert!(pool.contains("192.168.5.9".parse::<IpAddr>().unwrap()));
    assert!(!pool.contains("192.168.5.10".parse::<IpAddr>().unwrap()));
    assert!(pool.auto_assign);
    assert_eq!(config.l2_advertisements.len(), 1);
    assert_eq!(
        config.l2_advertisements[0].pools,
        vec!["my-ip-space".to_string()]
    );
    assert!(config.bgp_advertisements.is_empty());
    assert!(config.peers.is_empty());
}

#[test]
fn tutorial_bgp_configmap_is_accepted() {
    let config = load_documents(BGP).unwrap();
    assert_eq!(config.pools.len(), 1);
    assert_eq!(config.pools[0].size(), AddressCount::from_u128(256));
    assert_eq!(config.peers.len(), 1);
    let peer = &config.peers[0];
    assert_eq!((peer.my_asn, peer.peer_asn, peer.port), (64500, 64501, 179));
    assert_eq!(peer.address, "10.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(peer.hold_time.as_secs(), 90);
    assert_eq!(peer.keepalive_time.as_secs(), 30);
    assert_eq!(config.bgp_advertisements.len(), 1);
    let adv = &config.bgp_advertisements[0];
    assert_eq!(
        (adv.aggregation_length, adv.aggregation_length_v6),
        (32, 128)
    );
    assert_eq!(adv.pools, vec!["default".to_string()]);
    assert!(config.l2_advertisements.is_empty());
}

/// Seed 000 also shows a layer-2 ConfigMap indented with tabs, which YAML
/// forbids; it is refused with the line of the problem rather than misread.
#[test]
fn tutorial_tab_indented_configmap_is_refused_with_its_line() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: metallb-system\n  name: config\ndata:\n  config: |\n \taddress-pools:\n \t- name: default\n \t  protocol: layer2\n \taddresses:\n \t- 192.168.56.253-192.168.56.254\n";
    let errors = load_documents(text).unwrap_err();
    let shown = errors.to_string();
    assert!(shown.contains("line"), "{shown}");
}
