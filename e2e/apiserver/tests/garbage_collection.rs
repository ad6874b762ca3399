//! Owner references are honoured as kube-controller-manager's garbage
//! collector honours them (background propagation): deleting an owner
//! deletes the dependents whose owners are all gone, recursively; a
//! dependent that keeps a live owner stays, and one with finalizers is only
//! marked deleting.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use common::start;

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap()
}

fn owned_configmap(name: &str, owners: &[(&str, &str)], finalizers: &[&str]) -> ConfigMap {
    let refs: Vec<_> = owners
        .iter()
        .map(|(name, uid)| json!({"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": refs, "finalizers": finalizers},
        "data": {"k": "v"},
    }))
    .unwrap()
}

/// conformance: on the real 1.24 control plane (e2e/tests/status.rs
/// `the_garbage_collector_deletes_the_objects_of_a_deleted_service_with_every_speaker_down`)
/// a ServiceL2Status owned by a deleted Service disappears with no speaker
/// running; the rules below are the collector's documented ones.
#[tokio::test]
async fn deleting_an_owner_deletes_the_dependents_it_alone_owned() {
    let c = start().await;
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let maps: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "default");
    let pp = PostParams::default();
    let web = services.create(&pp, &service("web")).await.unwrap();
    let other = services.create(&pp, &service("other")).await.unwrap();
    let (web_uid, other_uid) = (web.metadata.uid.unwrap(), other.metadata.uid.unwrap());

    let only = maps
        .create(&pp, &owned_configmap("only-web", &[("web", &web_uid)], &[]))
        .await
        .unwrap();
    maps.create(
        &pp,
        &owned_configmap("shared", &[("web", &web_uid), ("other", &other_uid)], &[]),
    )
    .await
    .unwrap();
    maps.create(
        &pp,
        &owned_configmap("held", &[("web", &web_uid)], &["example.com/keep"]),
    )
    .await
    .unwrap();
    maps.create(&pp, &owned_configmap("unowned", &[], &[]))
        .await
        .unwrap();
    // A grandchild: owned by the ConfigMap that only web owns.
    let grandchild: Secret = serde_json::from_value(json!({
        "metadata": {"name": "grandchild", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "only-web", "uid": only.metadata.uid.unwrap()}]},
        "stringData": {"k": "v"},
    }))
    .unwrap();
    secrets.create(&pp, &grandchild).await.unwrap();

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();

    let cases = [
        (
            "a dependent whose only owner is gone is deleted",
            "only-web",
            false,
        ),
        ("a dependent with a live owner stays", "shared", true),
        ("an object without owners is untouched", "unowned", true),
    ];
    for (rule, name, present) in cases {
        assert_eq!(
            maps.get_opt(name).await.unwrap().is_some(),
            present,
            "{rule}"
        );
    }
    let held = maps.get("held").await.unwrap();
    assert!(
        held.metadata.deletion_timestamp.is_some(),
        "a dependent with finalizers is marked deleting, not removed"
    );
    assert!(
        secrets.get_opt("grandchild").await.unwrap().is_none(),
        "the cascade goes down: the deleted dependent's own dependents go too"
    );
}
