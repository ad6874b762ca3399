//! Discovery and the version/health endpoints, as kube-rs and kubectl use them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};

use common::{api_error, start};

#[tokio::test]
async fn kube_discovery_finds_every_served_kind_with_its_scope() {
    let c = start().await;
    let discovery = Discovery::new(c.client.clone()).run().await.unwrap();
    let cases = [
        ("", "v1", "Service", "services", Scope::Namespaced),
        ("", "v1", "Node", "nodes", Scope::Cluster),
        ("", "v1", "Namespace", "namespaces", Scope::Cluster),
        ("", "v1", "Pod", "pods", Scope::Namespaced),
        ("", "v1", "Endpoints", "endpoints", Scope::Namespaced),
        ("", "v1", "ConfigMap", "configmaps", Scope::Namespaced),
        ("", "v1", "Secret", "secrets", Scope::Namespaced),
        ("", "v1", "Event", "events", Scope::Namespaced),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            Scope::Namespaced,
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            Scope::Namespaced,
        ),
        ("events.k8s.io", "v1", "Event", "events", Scope::Namespaced),
        (
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            Scope::Cluster,
        ),
        (
            "metallb.io",
            "v1beta1",
            "IPAddressPool",
            "ipaddresspools",
            Scope::Namespaced,
        ),
        (
            "metallb.io",
            "v1beta1",
            "L2Advertisement",
            "l2advertisements",
            Scope::Namespaced,
        ),
        (
            "metallb.io",
            "v1beta1",
            "BGPAdvertisement",
            "bgpadvertisements",
            Scope::Namespaced,
        ),
        (
            "metallb.io",
            "v1beta1",
            "BGPPeer",
            "bgppeers",
            Scope::Namespaced,
        ),
        (
            "metallb.io",
            "v1beta1",
            "Community",
            "communities",
            Scope::Namespaced,
        ),
        (
            "metallb.io",
            "v1beta1",
            "BFDProfile",
            "bfdprofiles",
            Scope::Namespaced,
        ),
    ];
    for (group, version, kind, plural, scope) in cases {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} is discovered"));
        assert_eq!(ar.plural, plural);
        assert_eq!(caps.scope, scope, "{kind}");
    }
    let svc = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Service"))
        .unwrap()
        .1;
    assert!(
        svc.subresources.iter().any(|(ar, _)| ar.plural == "status"),
        "services/status is listed"
    );
}

#[tokio::test]
async fn version_reports_a_kubernetes_version() {
    let c = start().await;
    let info = c.client.apiserver_version().await.unwrap();
    assert_eq!(info.major, "1");
    assert!(info.minor.parse::<u32>().unwrap() >= 21);
}

#[tokio::test]
async fn health_endpoints_answer_ok() {
    let c = start().await;
    for path in ["/healthz", "/livez", "/readyz"] {
        let req = http::Request::get(path).body(Vec::new()).unwrap();
        assert_eq!(c.client.request_text(req).await.unwrap(), "ok", "{path}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_a_status_body() {
    let c = start().await;
    let req = http::Request::get("/apis/nothing.example.com/v1/things")
        .body(Vec::new())
        .unwrap();
    let err = api_error(c.client.request::<serde_json::Value>(req).await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    let req = http::Request::put("/api/v1/namespaces/default/configmaps")
        .body(b"{}".to_vec())
        .unwrap();
    let err = api_error(c.client.request::<serde_json::Value>(req).await);
    assert_eq!((err.code, err.reason.as_str()), (405, "MethodNotAllowed"));
}

#[tokio::test]
async fn openapi_v3_tells_kubectl_that_the_server_validates_fields() {
    let c = start().await;
    let root: serde_json::Value = c
        .client
        .request(http::Request::get("/openapi/v3").body(Vec::new()).unwrap())
        .await
        .unwrap();
    let url = root["paths"]["apis/metallb.io/v1beta1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc: serde_json::Value = c
        .client
        .request(http::Request::get(url).body(Vec::new()).unwrap())
        .await
        .unwrap();
    let patch = &doc["paths"]["/apis/metallb.io/v1beta1/namespaces/{namespace}/ipaddresspools/{name}"]
        ["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"]["kind"],
        "IPAddressPool"
    );
    let params: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"fieldValidation"), "{params:?}");
}
