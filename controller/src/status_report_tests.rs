// Test code: a panic is how a failure is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use ferrolb_config::crd::Resources;
use serde_json::json;

const CONFIG: &str = "address-pools:
- name: l2
  protocol: layer2
  addresses: [192.168.5.240-192.168.5.241]
- name: silent
  protocol: layer2
  addresses: [192.168.6.0/30]
- name: routed
  protocol: bgp
  addresses: [192.168.10.0/30]
peers:
- peer-address: 10.0.0.1
  peer-asn: 64500
  my-asn: 64512
";

fn config(text: &str) -> Result<Config, ConfigErrors> {
    ferrolb_config::load(Some(text), &Resources::default())
}

fn service(name: &str, ips: &[&str], pool: Option<&str>) -> Service {
    let ingress: Vec<_> = ips.iter().map(|ip| json!({ "ip": ip })).collect();
    let mut annotations = serde_json::Map::new();
    if let Some(pool) = pool {
        annotations.insert("metallb.universe.tf/address-pool".into(), json!(pool));
    }
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name, "uid": format!("uid-{name}"), "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": ingress}},
    }))
    .unwrap()
}

fn l2(service: &str, node: &str) -> ServiceL2Status {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
        "metadata": {"namespace": "default", "name": format!("{service}.{node}")},
        "spec": {},
        "status": {"node": node, "serviceName": service, "serviceNamespace": "default", "interfaces": [{"name": "eth0"}]},
    }))
    .unwrap()
}

fn bgp(service: &str, node: &str, peers: &[&str]) -> ServiceBgpStatus {
    serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "ServiceBGPStatus",
        "metadata": {"namespace": "default", "name": format!("{service}.{node}")},
        "spec": {},
        "status": {"node": node, "serviceName": service, "serviceNamespace": "default", "peers": peers},
    }))
    .unwrap()
}

fn failed(service: &str, at: &str, note: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{service}-x")},
        "eventTime": at,
        "reason": "AllocationFailed",
        "regarding": {"kind": "Service", "namespace": "default", "name": service, "uid": format!("uid-{service}")},
        "note": format!("Failed to allocate IP for \"default/{service}\": {note}"),
    }))
    .unwrap()
}

fn view(services: Vec<Service>) -> ClusterView {
    ClusterView {
        services,
        config: config(CONFIG),
        namespaces: NamespaceIndex::default(),
        events: vec![],
        l2: vec![],
        bgp: vec![],
        lb_class: None,
    }
}

fn row<'a>(rows: &'a [Row], name: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

#[test]
fn announced_services_show_pool_protocol_and_their_announcers() {
    let mut v = view(vec![
        service("web", &["192.168.5.240"], None),
        service("api", &["192.168.10.1"], Some("routed")),
    ]);
    v.l2 = vec![l2("web", "node2")];
    v.bgp = vec![
        bgp("api", "node3", &["peer0"]),
        bgp("api", "node1", &["peer0"]),
    ];
    let rows = report(&v);
    let web = row(&rows, "web");
    assert!(
        web.announced() && web.reason.is_none(),
        "layer 2 Service announced: {web:?}"
    );
    assert_eq!(
        (web.pool.as_deref(), web.protocols.clone()),
        (Some("l2"), vec!["layer2"])
    );
    assert_eq!(
        web.announcers,
        vec![Announcer {
            node: "node2".into(),
            protocol: "layer2",
            via: vec!["eth0".into()]
        }]
    );
    let api = row(&rows, "api");
    let nodes: Vec<&str> = api.announcers.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(nodes, ["node1", "node3"], "every BGP node, sorted");
    assert_eq!(api.protocols, vec!["bgp"]);
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["api", "web"],
        "sorted by name"
    );
}

#[test]
fn each_unannounced_service_says_why() {
    let exhausted = {
        // Two addresses in pool l2, both held: a third Service gets none.
        let mut v = view(vec![
            service("a", &["192.168.5.240"], Some("l2")),
            service("b", &["192.168.5.241"], Some("l2")),
            service("c", &[], Some("l2")),
        ]);
        v.l2 = vec![l2("a", "n1"), l2("b", "n1")];
        v
    };
    let with_event = {
        let mut v = view(vec![service("c", &[], Some("nosuch"))]);
        v.events = vec![
            failed("c", "2026-12-02T10:00:00.000000Z", "older"),
            failed(
                "c",
                "2026-12-02T10:00:05.000000Z",
                "unknown pool \"nosuch\"",
            ),
        ];
        v
    };
    let no_pool = view(vec![service("c", &[], Some("nosuch"))]);
    let invalid = {
        let mut v = view(vec![service("c", &[], None)]);
        v.config =
            config("address-pools:\n- name: x\n  protocol: layer2\n  addresses: [not-an-ip]\n");
        v
    };
    let event_and_stale = {
        let mut v = view(vec![service("c", &[], Some("nosuch"))]);
        v.events = vec![failed(
            "c",
            "2026-12-02T10:00:05.000000Z",
            "unknown pool \"nosuch\"",
        )];
        v.config =
            config("address-pools:\n- name: x\n  protocol: layer2\n  addresses: [not-an-ip]\n");
        v
    };
    let unadvertised = {
        let mut v = view(vec![service("c", &["192.168.5.240"], None)]);
        // An IPAddressPool without any advertisement selecting it.
        let pool = serde_json::from_value(json!({
            "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"namespace": "metallb-system", "name": "quiet"},
            "spec": {"addresses": ["192.168.5.240/32"]},
        }))
        .unwrap();
        v.config = ferrolb_config::load(
            None,
            &Resources {
                ip_address_pools: vec![pool],
                ..Resources::default()
            },
        );
        v
    };
    let silent = view(vec![service("c", &["192.168.6.1"], Some("silent"))]);
    let cases: Vec<(&str, ClusterView, &str)> = vec![
        (
            "pool exhausted: the allocator's reason",
            exhausted,
            "pool \"l2\" is exhausted",
        ),
        (
            "the newest AllocationFailed Event wins, without its prefix",
            with_event,
            "unknown pool \"nosuch\"",
        ),
        (
            "no Event: what the allocator says now",
            no_pool,
            "unknown pool \"nosuch\"",
        ),
        ("invalid config: config stale", invalid, "config stale: "),
        (
            "an Event and a stale config: both",
            event_and_stale,
            "unknown pool \"nosuch\"; config stale: ",
        ),
        (
            "an IP but a pool nobody advertises",
            unadvertised,
            "has no L2Advertisement or BGPAdvertisement",
        ),
        (
            "an IP but no speaker reports it",
            silent,
            "no speaker reports it",
        ),
    ];
    for (rule, v, want) in cases {
        let rows = report(&v);
        let c = row(&rows, "c");
        assert!(!c.announced(), "{rule}: not announced");
        let reason = c.reason.clone().unwrap_or_default();
        assert!(
            reason.starts_with(want) || reason.contains(want),
            "{rule}: {reason:?} should say {want:?}"
        );
    }
}

#[test]
fn services_that_are_not_load_balancers_are_left_out() {
    let mut cluster_ip = service("internal", &[], None);
    cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let rows = report(&view(vec![cluster_ip, service("web", &[], None)]));
    assert_eq!(
        rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["web"]
    );
}
