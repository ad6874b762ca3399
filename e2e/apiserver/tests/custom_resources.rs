//! metallb.io custom resources and CustomResourceDefinitions, stored generically.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::json;

use common::{api_error, start};

fn pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    )
}

fn pool(name: &str, addresses: &[&str]) -> DynamicObject {
    let mut p =
        DynamicObject::new(name, &pool_resource()).data(json!({"spec": {"addresses": addresses}}));
    p.metadata = ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    p
}

#[tokio::test]
async fn ip_address_pools_are_stored_and_listed() {
    let c = start().await;
    let pools: Api<DynamicObject> =
        Api::namespaced_with(c.client.clone(), "metallb-system", &pool_resource());
    pools
        .create(&PostParams::default(), &pool("prod", &["192.0.2.0/28"]))
        .await
        .unwrap();
    pools
        .create(
            &PostParams::default(),
            &pool("lab", &["198.51.100.10-198.51.100.20"]),
        )
        .await
        .unwrap();
    let list = pools.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["lab", "prod"]);
    let prod = pools.get("prod").await.unwrap();
    assert_eq!(prod.data["spec"]["addresses"], json!(["192.0.2.0/28"]));
    assert_eq!(prod.metadata.generation, Some(1));
    let all: Api<DynamicObject> = Api::all_with(c.client.clone(), &pool_resource());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn custom_resource_update_needs_a_resource_version() {
    let c = start().await;
    let pools: Api<DynamicObject> =
        Api::namespaced_with(c.client.clone(), "metallb-system", &pool_resource());
    pools
        .create(&PostParams::default(), &pool("p", &["192.0.2.0/28"]))
        .await
        .unwrap();
    let err = api_error(
        pools
            .replace("p", &PostParams::default(), &pool("p", &["192.0.2.16/28"]))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("metadata.resourceVersion"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn custom_resource_status_goes_only_through_the_status_subresource() {
    let c = start().await;
    let pools: Api<DynamicObject> =
        Api::namespaced_with(c.client.clone(), "metallb-system", &pool_resource());
    pools
        .create(&PostParams::default(), &pool("s", &["192.0.2.0/28"]))
        .await
        .unwrap();
    let main = pools
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"assignedIPv4": 1}})),
        )
        .await
        .unwrap();
    assert!(main.data.get("status").is_none());
    let st = pools
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"assignedIPv4": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["assignedIPv4"], 1);
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "a status change does not bump the generation"
    );
}

#[tokio::test]
async fn a_crd_registers_its_kind_for_discovery_and_storage() {
    let c = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = Discovery::new(c.client.clone()).run().await.unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let (ar, _caps) = discovery
        .resolve_gvk(&gvk)
        .expect("the new kind is discovered");
    let widgets: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "default", &ar);
    let mut w = DynamicObject::new("w1", &ar).data(json!({"spec": {"size": 3}}));
    w.metadata.name = Some("w1".into());
    widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["size"], 3);

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let err = api_error(widgets.get("w1").await);
    assert_eq!(err.code, 404, "the kind is gone with its CRD");
}

#[tokio::test]
async fn a_crd_whose_name_is_not_plural_dot_group_is_invalid() {
    let c = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "wrong"},
        "spec": {"group": "example.com", "scope": "Cluster", "names": {"plural": "things", "kind": "Thing"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]}
    }))
    .unwrap();
    let err = api_error(crds.create(&PostParams::default(), &crd).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
}
