//! Service defaulting and validation as a real API server does it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use common::{api_error, start};

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn in_v4_range(ip: &str) -> bool {
    let ip: IpAddr = ip.parse().unwrap();
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 10 && (96..112).contains(&v4.octets()[1]),
        IpAddr::V6(_) => false,
    }
}

#[tokio::test]
async fn load_balancer_service_gets_the_real_defaults() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let s = svcs
        .create(
            &PostParams::default(),
            &service(
                "lb",
                json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    let ip = spec.cluster_ip.clone().unwrap();
    assert!(in_v4_range(&ip), "{ip}");
    assert_eq!(spec.cluster_ips, Some(vec![ip]));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!(
        port.node_port.is_some_and(|n| (30000..=32767).contains(&n)),
        "{port:?}"
    );
    assert!(s.status.unwrap().load_balancer.is_some());
}

#[tokio::test]
async fn cluster_ip_service_gets_no_node_ports_or_external_policy() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let s = svcs
        .create(
            &PostParams::default(),
            &service("cip", json!({"ports": [{"port": 53, "protocol": "UDP"}]})),
        )
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.external_traffic_policy, None);
    assert_eq!(spec.ports.unwrap()[0].node_port, None);
}

#[tokio::test]
async fn dual_stack_service_gets_one_cluster_ip_per_family() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let s = svcs
        .create(
            &PostParams::default(),
            &service("ds", json!({"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(
        spec.ip_families,
        Some(vec!["IPv4".to_string(), "IPv6".to_string()])
    );
    let ips: Vec<IpAddr> = spec
        .cluster_ips
        .unwrap()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(ips[0].is_ipv4() && ips[1].is_ipv6(), "{ips:?}");
}

#[tokio::test]
async fn cluster_ips_and_node_ports_are_unique_across_services() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for i in 0..50 {
        let s = svcs
            .create(
                &PostParams::default(),
                &service(
                    &format!("u{i}"),
                    json!({"type": "NodePort", "ports": [{"port": 80}]}),
                ),
            )
            .await
            .unwrap();
        let spec = s.spec.unwrap();
        assert!(ips.insert(spec.cluster_ip.unwrap()));
        assert!(ports.insert(spec.ports.unwrap()[0].node_port.unwrap()));
    }
}

#[tokio::test]
async fn a_requested_cluster_ip_in_use_is_invalid_until_freed() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({"clusterIP": "10.96.50.50", "ports": [{"port": 80}]});
    svcs.create(&PostParams::default(), &service("first", spec.clone()))
        .await
        .unwrap();
    let err = api_error(
        svcs.create(&PostParams::default(), &service("second", spec.clone()))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("provided IP is already allocated"),
        "{}",
        err.message
    );
    svcs.delete("first", &DeleteParams::default())
        .await
        .unwrap();
    svcs.create(&PostParams::default(), &service("second", spec))
        .await
        .unwrap();
}

#[tokio::test]
async fn invalid_service_specs_are_refused_with_the_field_named() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let cases = [
        (
            json!({"type": "Magic", "ports": [{"port": 80}]}),
            "spec.type",
            "Unsupported value: \"Magic\"",
        ),
        (json!({"ports": []}), "spec.ports", "Required value"),
        (
            json!({"ports": [{"port": 70000}]}),
            "spec.ports[0].port",
            "must be between 1 and 65535",
        ),
        (
            json!({"ports": [{"port": 80, "name": "a"}, {"port": 81}]}),
            "spec.ports[1].name",
            "Required value",
        ),
        (
            json!({"ports": [{"port": 80}], "clusterIP": "192.168.0.1"}),
            "spec.clusterIPs[0]",
            "not in the valid range",
        ),
        (
            json!({"type": "LoadBalancer", "ports": [{"port": 80}], "externalTrafficPolicy": "Sometimes"}),
            "spec.externalTrafficPolicy",
            "Unsupported value",
        ),
    ];
    for (i, (spec, field, text)) in cases.into_iter().enumerate() {
        let err = api_error(
            svcs.create(
                &PostParams::default(),
                &service(&format!("bad{i}"), spec.clone()),
            )
            .await,
        );
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"), "{spec}");
        let causes = err.details.unwrap().causes;
        assert!(
            causes.iter().any(|c| c.field == field),
            "{spec}: {causes:?}"
        );
        assert!(err.message.contains(text), "{spec}: {}", err.message);
    }
}

#[tokio::test]
async fn replacing_a_service_without_cluster_ip_keeps_its_allocations() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let created = svcs
        .create(
            &PostParams::default(),
            &service(
                "keep",
                json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
    let mut replacement = service(
        "keep",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}], "externalTrafficPolicy": "Local"}),
    );
    replacement.metadata.resource_version = created.metadata.resource_version.clone();
    let after = svcs
        .replace("keep", &PostParams::default(), &replacement)
        .await
        .unwrap();
    let (before, now) = (created.spec.unwrap(), after.spec.unwrap());
    assert_eq!(before.cluster_ip, now.cluster_ip);
    assert_eq!(
        before.ports.unwrap()[0].node_port,
        now.ports.unwrap()[0].node_port
    );
    assert!(
        now.health_check_node_port.is_some(),
        "Local load balancers get a health check node port"
    );
}

#[tokio::test]
async fn changing_the_cluster_ip_or_load_balancer_class_is_invalid() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(
        &PostParams::default(),
        &service(
            "imm",
            json!({"type": "LoadBalancer", "loadBalancerClass": "a", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    let cases = [
        (
            json!({"spec": {"clusterIP": "10.96.77.77", "clusterIPs": ["10.96.77.77"]}}),
            "spec.clusterIPs[0]",
        ),
        (
            json!({"spec": {"loadBalancerClass": "b"}}),
            "spec.loadBalancerClass",
        ),
    ];
    for (patch, field) in cases {
        let err = api_error(
            svcs.patch("imm", &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        );
        assert_eq!(err.code, 422, "{patch}");
        assert!(
            err.details.unwrap().causes.iter().any(|c| c.field == field),
            "{patch}"
        );
    }
}

#[tokio::test]
async fn an_invalid_ingress_ip_in_status_is_refused() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(
        &PostParams::default(),
        &service(
            "ing",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}});
    let err = api_error(
        svcs.patch_status("ing", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.details.unwrap().causes[0].field,
        "status.loadBalancer.ingress[0].ip"
    );
}

#[tokio::test]
async fn the_kubernetes_service_exists_from_the_start() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let s = svcs.get("kubernetes").await.unwrap();
    assert_eq!(s.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));
}

/// conformance: the real kube-apiserver 1.24 empties `status.loadBalancer` when an update
/// changes a Service's type from LoadBalancer to ClusterIP (the ingress is gone at once,
/// before any load-balancer controller acts); a change that keeps the type keeps it.
#[tokio::test]
async fn type_change_away_from_load_balancer_empties_the_ingress() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    for name in ["moved", "kept"] {
        svcs.create(
            &PostParams::default(),
            &service(
                name,
                json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
        svcs.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}})),
        )
        .await
        .unwrap();
    }
    let moved = svcs
        .patch(
            "moved",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    let lb = moved.status.unwrap().load_balancer.unwrap();
    assert_eq!(lb.ingress, None, "{lb:?}");
    let kept = svcs
        .patch(
            "kept",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    let ingress = kept.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.7"));
}
