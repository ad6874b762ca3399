//! The /status subresource and the four patch types.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use common::{api_error, start};

fn lb_service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": name}}
    }))
    .unwrap()
}

#[tokio::test]
async fn status_written_on_the_main_endpoint_is_ignored() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let mut svc = lb_service("main");
    svc.status =
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}))
            .unwrap();
    let created = svcs.create(&PostParams::default(), &svc).await.unwrap();
    assert_eq!(
        created.status.unwrap().load_balancer.unwrap().ingress,
        None,
        "create drops status"
    );

    let mut replaced = svcs.get("main").await.unwrap();
    replaced.status =
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}))
            .unwrap();
    replaced.metadata.labels = Some([("changed".to_string(), "yes".to_string())].into());
    let after = svcs
        .replace("main", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(after.metadata.labels.unwrap()["changed"], "yes");
    assert_eq!(after.status.unwrap().load_balancer.unwrap().ingress, None);

    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.3"}]}}});
    let after = svcs
        .patch("main", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().load_balancer.unwrap().ingress, None);
}

#[tokio::test]
async fn spec_and_metadata_written_through_status_are_ignored() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &lb_service("st"))
        .await
        .unwrap();
    let mut s = svcs.get("st").await.unwrap();
    s.spec.as_mut().unwrap().session_affinity = Some("ClientIP".into());
    s.metadata.labels = Some([("via".to_string(), "status".to_string())].into());
    s.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}))
        .unwrap();
    let after = svcs
        .replace_status("st", &PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(
        after.spec.unwrap().session_affinity.as_deref(),
        Some("None")
    );
    assert!(after.metadata.labels.is_none_or(|l| !l.contains_key("via")));
    let ingress = after
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(
        ingress[0].ip_mode.as_deref(),
        Some("VIP"),
        "the server defaults ipMode"
    );
}

#[tokio::test]
async fn status_update_with_a_stale_resource_version_is_conflict() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let stale = svcs
        .create(&PostParams::default(), &lb_service("stale"))
        .await
        .unwrap();
    let patch = json!({"metadata": {"labels": {"x": "1"}}});
    svcs.patch("stale", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let mut s = stale.clone();
    s.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}))
        .unwrap();
    let err = api_error(
        svcs.replace_status("stale", &PostParams::default(), &s)
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn merge_patch_on_status_replaces_the_ingress_list_whole() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &lb_service("mp"))
        .await
        .unwrap();
    let two = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]}}});
    svcs.patch_status("mp", &PatchParams::default(), &Patch::Merge(&two))
        .await
        .unwrap();
    let one = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}});
    let after = svcs
        .patch_status("mp", &PatchParams::default(), &Patch::Merge(&one))
        .await
        .unwrap();
    let ips: Vec<String> = after
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap()
        .into_iter()
        .map(|i| i.ip.unwrap())
        .collect();
    assert_eq!(ips, vec!["192.0.2.9"]);
}

#[tokio::test]
async fn strategic_merge_patch_merges_annotations_and_replaces_ingress() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let mut svc = lb_service("smp");
    svc.metadata.annotations = Some(
        [
            ("keep".to_string(), "1".to_string()),
            ("drop".to_string(), "2".to_string()),
        ]
        .into(),
    );
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let meta_patch = json!({"metadata": {"annotations": {"drop": null, "add": "3"}}});
    let after = svcs
        .patch(
            "smp",
            &PatchParams::default(),
            &Patch::Strategic(&meta_patch),
        )
        .await
        .unwrap();
    let ann = after.metadata.annotations.unwrap();
    assert_eq!(ann.keys().cloned().collect::<Vec<_>>(), vec!["add", "keep"]);
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}});
    svcs.patch_status("smp", &PatchParams::default(), &Patch::Strategic(&status))
        .await
        .unwrap();
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.8"}]}}});
    let after = svcs
        .patch_status("smp", &PatchParams::default(), &Patch::Strategic(&status))
        .await
        .unwrap();
    let ingress = after
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.8"));
}

#[tokio::test]
async fn strategic_merge_patch_merges_node_conditions_by_type() {
    let c = start().await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}
    }))
    .unwrap();
    let created = nodes.create(&PostParams::default(), &node).await.unwrap();
    assert_eq!(
        created
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
            .len(),
        2,
        "node status is kept on create"
    );
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let after = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let conds: Vec<(String, String)> = after
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert_eq!(
        conds,
        vec![
            ("Ready".into(), "True".into()),
            ("MemoryPressure".into(), "False".into())
        ]
    );
}

#[tokio::test]
async fn json_patch_applies_operations_and_a_failed_test_is_unprocessable() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "jp"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "remove", "path": "/data/a"}
    ]))
    .unwrap();
    let after = cms
        .patch("jp", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(
        after.data.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/b", "value": "nope"}]))
            .unwrap();
    let err = api_error(
        cms.patch("jp", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn merge_patch_with_a_stale_resource_version_is_conflict() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "mrv"}})).unwrap();
    let first = cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.patch(
        "mrv",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    let stale = json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "data": {"x": "2"}});
    let err = api_error(
        cms.patch("mrv", &PatchParams::default(), &Patch::Merge(&stale))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn apply_creates_then_conflicts_with_another_manager_unless_forced() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owned = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "one"}});
    let created = cms
        .patch("ssa", &PatchParams::apply("alice"), &Patch::Apply(&owned))
        .await
        .unwrap();
    assert_eq!(created.data.unwrap()["k"], "one");
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["alice"]);

    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "two"}});
    let err = api_error(
        cms.patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(&other))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alice\" using v1: .data.k"
    );

    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["k"], "two");
}

#[tokio::test]
async fn apply_removes_fields_the_manager_stopped_applying() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let both = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "drop"}, "data": {"a": "1", "b": "2"}});
    cms.patch("drop", &PatchParams::apply("m"), &Patch::Apply(&both))
        .await
        .unwrap();
    let one = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "drop"}, "data": {"a": "1"}});
    let after = cms
        .patch("drop", &PatchParams::apply("m"), &Patch::Apply(&one))
        .await
        .unwrap();
    assert_eq!(
        after.data.unwrap(),
        [("a".to_string(), "1".to_string())].into()
    );
}

#[tokio::test]
async fn apply_to_status_writes_only_status() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &lb_service("ssa-status"))
        .await
        .unwrap();
    let cfg = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ssa-status"},
        "spec": {"sessionAffinity": "ClientIP"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.44"}]}}
    });
    let after = svcs
        .patch_status(
            "ssa-status",
            &PatchParams::apply("ferrolb-controller").force(),
            &Patch::Apply(&cfg),
        )
        .await
        .unwrap();
    assert_eq!(
        after.spec.unwrap().session_affinity.as_deref(),
        Some("None")
    );
    let ingress = after
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .unwrap();
    assert_eq!(ingress[0].ip.as_deref(), Some("192.0.2.44"));
}

#[tokio::test]
async fn apply_without_a_field_manager_is_invalid() {
    let c = start().await;
    // kube-rs refuses this before sending, so the request is built by hand.
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/nofm")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nofm\n".to_vec())
        .unwrap();
    let err = api_error(c.client.request::<serde_json::Value>(req).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("fieldManager: Required value"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn apply_accepts_a_yaml_body() {
    let c = start().await;
    let req = http::Request::patch(
        "/api/v1/namespaces/default/configmaps/yaml?fieldManager=kubectl",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  port: \"80\"\n"
            .to_vec(),
    )
    .unwrap();
    let created: ConfigMap = c.client.request(req).await.unwrap();
    assert_eq!(created.data.unwrap()["port"], "80");
}

#[tokio::test]
async fn strategic_merge_patch_on_a_custom_resource_is_unsupported_media_type() {
    let c = start().await;
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "ipaddresspools");
    let pools: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "metallb-system", &ar);
    let mut pool =
        DynamicObject::new("p", &ar).data(json!({"spec": {"addresses": ["192.0.2.0/28"]}}));
    pool.metadata = ObjectMeta {
        name: Some("p".into()),
        ..Default::default()
    };
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let err = api_error(
        pools
            .patch(
                "p",
                &PatchParams::default(),
                &Patch::Strategic(&json!({"spec": {"autoAssign": false}})),
            )
            .await,
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    let after = pools
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"autoAssign": false}})),
        )
        .await
        .unwrap();
    assert_eq!(after.data["spec"]["autoAssign"], false);
    assert_eq!(
        after.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
}

#[tokio::test]
async fn apply_of_unchanged_fields_the_server_defaulted_in_a_list_is_no_conflict() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &lb_service("co-own"))
        .await
        .unwrap();
    // The create defaulted protocol, targetPort and nodePort inside spec.ports[0].
    let cfg = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "co-own"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "co-own"}}});
    let after = svcs
        .patch("co-own", &PatchParams::apply("ssa"), &Patch::Apply(&cfg))
        .await
        .unwrap();
    let port = &after.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    assert!(port.node_port.is_some(), "defaulted fields are kept");
}
