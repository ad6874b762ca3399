//! The repository's manifests (`manifests/namespace.yaml`, `manifests/ferrolb.yaml`) are
//! created object by object through kube-rs discovery, and the RBAC they grant is enforced for
//! their service accounts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

use common::{api_error, client_with_token, service_account_token, start};

fn documents(file: &str) -> Vec<Value> {
    let path = format!("{}/../../manifests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

/// conformance: the real kube-apiserver 1.24 serves every kind ferrolb's manifests use
/// (Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding, Deployment,
/// DaemonSet), so each object is created (201) through discovery; RBAC names such as
/// `metallb-system:controller` are valid (path-segment names).
#[tokio::test]
async fn the_manifests_are_created_object_by_object() {
    let c = start().await;
    let discovery = Discovery::new(c.client.clone()).run().await.unwrap();
    let mut kinds = Vec::new();
    for doc in documents("namespace.yaml")
        .into_iter()
        .chain(documents("ferrolb.yaml"))
    {
        let object: DynamicObject = serde_json::from_value(doc).unwrap();
        let types = object.types.clone().unwrap();
        let gvk = GroupVersionKind::try_from(&types).unwrap();
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("{gvk:?} is not served"));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                c.client.clone(),
                object.metadata.namespace.as_deref().unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(c.client.clone(), &resource),
        };
        let name = object.metadata.name.clone().unwrap();
        match api.create(&PostParams::default(), &object).await {
            Ok(created) => assert!(created.metadata.uid.is_some(), "{name}"),
            // metallb-system exists from the start on this server: apply it instead.
            Err(kube::Error::Api(s)) if s.code == 409 && gvk.kind == "Namespace" => {
                api.patch(
                    &name,
                    &PatchParams::apply("manifests"),
                    &Patch::Apply(&object),
                )
                .await
                .unwrap();
            }
            Err(e) => panic!("creating {} {name}: {e}", gvk.kind),
        }
        kinds.push(gvk.kind);
    }
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "RoleBinding",
        "Deployment",
        "DaemonSet",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    // The controller's RBAC as written: services read and status written, nothing more.
    Api::<Service>::namespaced(c.client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let token = service_account_token(&c.client, "metallb-system", "controller").await;
    let controller = client_with_token(&c.server.url(), &token);
    let services: Api<Service> = Api::all(controller.clone());
    assert!(
        !services
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let in_default: Api<Service> = Api::namespaced(controller.clone(), "default");
    in_default
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        api_error(in_default.delete("web", &DeleteParams::default()).await).code,
        403
    );
    let secrets: Api<Secret> = Api::namespaced(controller, "metallb-system");
    assert_eq!(api_error(secrets.get("memberlist").await).code, 404);
    assert_eq!(api_error(secrets.get("other").await).code, 403);
}
