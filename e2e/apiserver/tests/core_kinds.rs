//! Per-kind rules of Secrets, EndpointSlices, Pods and Leases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{api_error, start};

#[tokio::test]
async fn secret_string_data_is_stored_as_data() {
    let c = start().await;
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "metallb-system");
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "memberlist"}, "stringData": {"secretkey": "hello"}
    }))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(created.string_data.is_none());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.data.unwrap()["secretkey"].0, b"hello");
}

#[tokio::test]
async fn endpoint_slice_with_addresses_of_the_wrong_family_is_invalid() {
    let c = start().await;
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let good: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "node-1", "conditions": {"ready": true}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]
    }))
    .unwrap();
    slices.create(&PostParams::default(), &good).await.unwrap();
    let listed = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let mut bad = good.clone();
    bad.metadata.name = Some("web-bad".into());
    bad.endpoints.as_mut().unwrap()[0].addresses = vec!["fd00::5".into()];
    let err = api_error(slices.create(&PostParams::default(), &bad).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.details.unwrap().causes[0].field,
        "endpoints[0].addresses[0]"
    );
}

#[tokio::test]
async fn pod_starts_pending_and_its_status_is_set_through_status() {
    let c = start().await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "metallb-system");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "speaker-1", "labels": {"app": "speaker"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "speaker", "image": "ferrolb/speaker"}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    let running = json!({"status": {"phase": "Running", "podIP": "10.0.0.11",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(
        "speaker-1",
        &PatchParams::default(),
        &Patch::Merge(&running),
    )
    .await
    .unwrap();
    let on_node = pods
        .list(&ListParams::default().fields("spec.nodeName=node-1,status.phase=Running"))
        .await
        .unwrap();
    assert_eq!(on_node.items.len(), 1);
    let err = api_error(
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "empty"}, "spec": {"containers": []}}),
            )
            .unwrap(),
        )
        .await,
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn lease_takeover_with_a_stale_resource_version_is_conflict() {
    let c = start().await;
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "metallb-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "ferrolb-controller"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}
    }))
    .unwrap();
    let first = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut by_b = first.clone();
    by_b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("ferrolb-controller", &PostParams::default(), &by_b)
        .await
        .unwrap();
    let mut by_c = first.clone();
    by_c.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = api_error(
        leases
            .replace("ferrolb-controller", &PostParams::default(), &by_c)
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        leases
            .get("ferrolb-controller")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("b")
    );
}
