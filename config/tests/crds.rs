//! `manifests/crds.yaml` is generated from the Rust types and kept in step.

// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrolb_config::crd::{self, definitions, definitions_yaml};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/crds.yaml");

/// Fails when the file differs from what the types generate. To regenerate:
/// `FERROLB_WRITE_CRDS=1 cargo test -p ferrolb-config --test crds`
/// (or `cargo run -p ferrolb-controller --bin ferrolb -- crds > manifests/crds.yaml`).
#[test]
fn manifests_crds_yaml_is_up_to_date() {
    let generated = definitions_yaml().unwrap();
    if std::env::var_os("FERROLB_WRITE_CRDS").is_some() {
        std::fs::write(PATH, &generated).unwrap();
    }
    let on_disk = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        on_disk == generated,
        "manifests/crds.yaml is out of date with config/src/crd.rs; regenerate it with\n  FERROLB_WRITE_CRDS=1 cargo test -p ferrolb-config --test crds\nor\n  cargo run -p ferrolb-controller --bin ferrolb -- crds > manifests/crds.yaml"
    );
}

#[test]
fn crds_name_the_six_metallb_config_kinds_and_the_two_status_kinds() {
    let mut found: Vec<(String, String, String, bool)> = definitions()
        .into_iter()
        .map(|c| {
            let v = &c.spec.versions[0];
            (
                c.spec.names.kind.clone(),
                c.spec.names.plural.clone(),
                format!("{}/{}", c.spec.group, v.name),
                v.served && v.storage && c.spec.scope == "Namespaced",
            )
        })
        .collect();
    found.sort();
    let want = [
        ("BFDProfile", "bfdprofiles"),
        ("BGPAdvertisement", "bgpadvertisements"),
        ("BGPPeer", "bgppeers"),
        ("Community", "communities"),
        ("IPAddressPool", "ipaddresspools"),
        ("L2Advertisement", "l2advertisements"),
        ("ServiceBGPStatus", "servicebgpstatuses"),
        ("ServiceL2Status", "servicel2statuses"),
    ];
    assert_eq!(found.len(), want.len());
    for ((kind, plural, api_version, namespaced), (want_kind, want_plural)) in
        found.iter().zip(want)
    {
        assert_eq!((kind.as_str(), plural.as_str()), (want_kind, want_plural));
        assert_eq!(api_version, crd::API_VERSION);
        assert!(namespaced, "{kind} must be served, stored and namespaced");
    }
}

#[test]
fn crd_schemas_carry_the_metallb_field_names() {
    let yaml = definitions_yaml().unwrap();
    for field in [
        "addresses:",
        "autoAssign:",
        "avoidBuggyIPs:",
        "serviceAllocation:",
        "priority:",
        "namespaceSelectors:",
        "serviceSelectors:",
        "ipAddressPools:",
        "ipAddressPoolSelectors:",
        "nodeSelectors:",
        "interfaces:",
        "aggregationLength:",
        "aggregationLengthV6:",
        "localPref:",
        "communities:",
        "peers:",
        "myASN:",
        "peerASN:",
        "peerAddress:",
        "peerPort:",
        "sourceAddress:",
        "holdTime:",
        "keepaliveTime:",
        "routerID:",
        "password:",
        "passwordSecret:",
        "ebgpMultiHop:",
        "bfdProfile:",
        "receiveInterval:",
        "transmitInterval:",
        "echoInterval:",
        "detectMultiplier:",
        "echoMode:",
        "passiveMode:",
        "minimumTtl:",
        "matchLabels:",
        "matchExpressions:",
    ] {
        assert!(yaml.contains(field), "no {field} in the generated CRDs");
    }
}

/// IPAddressPool and BGPPeer need a `spec` (their specs have required
/// fields); the others default to `{}` on the API server, so MetalLB's
/// spec-less examples are stored and read back.
#[test]
fn spec_is_required_only_where_the_spec_has_required_fields() {
    for crd in definitions() {
        let kind = crd.spec.names.kind.clone();
        let schema = crd.spec.versions[0]
            .schema
            .clone()
            .unwrap()
            .open_api_v3_schema
            .unwrap();
        let required = schema
            .required
            .unwrap_or_default()
            .contains(&"spec".to_string());
        let spec = &schema.properties.unwrap()["spec"];
        let spec_has_required = spec.required.as_ref().is_some_and(|r| !r.is_empty());
        if kind == "IPAddressPool" || kind == "BGPPeer" {
            assert!(spec_has_required, "{kind}");
            assert!(required && spec.default.is_none(), "{kind}");
        } else {
            assert!(!required, "{kind} must not require spec");
            assert_eq!(
                spec.default.as_ref().map(|d| d.0.clone()),
                Some(serde_json::json!({})),
                "{kind}"
            );
        }
    }
}
