//! Restarting the server with a state file (in-process): objects, the resourceVersion counter,
//! custom kinds and Service allocations survive; the watch history does not, so watchers relist.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use serde_json::{Value, json};
use tokio::time::timeout;

use common::{Seen, api_error, client_for, next};
use ferrolb_e2e_apiserver::{RunningServer, ServerConfig, ServerError, spawn};

fn with_state_file(path: &Path) -> ServerConfig {
    ServerConfig {
        state_file: Some(path.to_path_buf()),
        ..ServerConfig::default()
    }
}

/// A server on 127.0.0.1 (kernel-chosen port) with a state file in a fresh directory.
async fn start_persistent() -> (tempfile::TempDir, ServerConfig, RunningServer) {
    let dir = tempfile::tempdir().unwrap();
    let config = with_state_file(&dir.path().join("state.json"));
    let server = spawn("127.0.0.1:0".parse().unwrap(), config.clone())
        .await
        .expect("a server with a fresh state file starts");
    (dir, config, server)
}

/// Stops the server cleanly and starts a new one on the same address with the same state file.
async fn restart(server: RunningServer, config: &ServerConfig) -> RunningServer {
    let addr = server.addr;
    server
        .shutdown()
        .await
        .expect("a clean stop saves the state");
    spawn(addr, config.clone())
        .await
        .expect("the restarted server loads the state and binds the same address")
}

fn configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("k".to_string(), name.to_string())].into()),
        ..Default::default()
    }
}

fn service(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
        "ipaddresspools",
    )
}

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap()
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    )
}

fn as_json<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap()
}

/// The resourceVersion a list carries: the server's current revision.
async fn current_rv(client: &kube::Client) -> u64 {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn objects_survive_a_restart_with_their_resource_version_uid_and_every_field() {
    let (_dir, config, server) = start_persistent().await;
    let client = client_for(&server.url());
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    cms.create(&PostParams::default(), &configmap("plain"))
        .await
        .unwrap();
    // Server-side apply, so managedFields are part of what must come back.
    cms.patch(
        "applied",
        &PatchParams::apply("tester"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "applied"}, "data": {"a": "1"}})),
    )
    .await
    .unwrap();
    // A finalizer holds a deleted object: it must come back still terminating.
    let mut held = configmap("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(client.clone(), "team");
    svcs.create(
        &PostParams::default(),
        &service(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    svcs.patch_status(
        "lb",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})),
    )
    .await
    .unwrap();
    let pools: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "metallb-system", &pool_resource());
    let mut pool = DynamicObject::new("pool", &pool_resource())
        .data(json!({"spec": {"addresses": ["192.0.2.0/28"]}}));
    pool.metadata.name = Some("pool".into());
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &widget_crd())
        .await
        .unwrap();
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "team", &widget_resource());
    let mut widget = DynamicObject::new("w", &widget_resource()).data(json!({"spec": {"size": 3}}));
    widget.metadata.name = Some("w".into());
    widgets
        .create(&PostParams::default(), &widget)
        .await
        .unwrap();

    let before = (
        as_json(&nss.get("team").await.unwrap()),
        as_json(&cms.list(&ListParams::default()).await.unwrap().items),
        as_json(&svcs.get("lb").await.unwrap()),
        as_json(&pools.get("pool").await.unwrap()),
        as_json(&crds.get("widgets.example.com").await.unwrap()),
        as_json(&widgets.get("w").await.unwrap()),
    );
    let rv_before = current_rv(&client).await;

    let _server = restart(server, &config).await;

    let after = (
        as_json(&nss.get("team").await.unwrap()),
        as_json(&cms.list(&ListParams::default()).await.unwrap().items),
        as_json(&svcs.get("lb").await.unwrap()),
        as_json(&pools.get("pool").await.unwrap()),
        as_json(&crds.get("widgets.example.com").await.unwrap()),
        as_json(&widgets.get("w").await.unwrap()),
    );
    assert_eq!(after, before);
    assert_eq!(current_rv(&client).await, rv_before);
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some(),
        "a terminating object is still terminating"
    );
    let cm_names: Vec<String> = after
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cm_names, ["applied", "held", "plain"]);
    // The CRD's kind is served again, with its status subresource and for discovery.
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (_, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("the restored CRD's kind is discovered");
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status")
    );
}

#[tokio::test]
async fn writes_after_a_restart_continue_with_higher_resource_versions() {
    let (_dir, config, server) = start_persistent().await;
    let client = client_for(&server.url());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let old = cms
        .create(&PostParams::default(), &configmap("old"))
        .await
        .unwrap();
    let old_rv: u64 = old
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let rv_before = current_rv(&client).await;

    let _server = restart(server, &config).await;

    let created = cms
        .create(&PostParams::default(), &configmap("new"))
        .await
        .unwrap();
    let created_rv: u64 = created.metadata.resource_version.unwrap().parse().unwrap();
    assert_eq!(
        created_rv,
        rv_before + 1,
        "the counter continues, not restarts"
    );
    let updated = cms
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "changed"}})),
        )
        .await
        .unwrap();
    let updated_rv: u64 = updated.metadata.resource_version.unwrap().parse().unwrap();
    assert!(updated_rv > created_rv && updated_rv > old_rv);
    // Optimistic concurrency still holds against the restored resourceVersion.
    let err = api_error(cms.replace("old", &PostParams::default(), &old).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn a_watch_from_before_the_restart_gets_410_expired_and_one_from_after_sees_changes() {
    let (_dir, config, server) = start_persistent().await;
    let client = client_for(&server.url());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("first"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &configmap("second"))
        .await
        .unwrap();
    let old_rv = first.metadata.resource_version.unwrap();

    let _server = restart(server, &config).await;

    let mut stream = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    let event = timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the watch answers within 5 s")
        .expect("one event")
        .unwrap();
    let WatchEvent::Error(status) = event else {
        panic!("expected an ERROR event, got {event:?}");
    };
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));

    let now = current_rv(&client).await.to_string();
    let mut stream = cms
        .watch(&WatchParams::default(), &now)
        .await
        .unwrap()
        .boxed();
    cms.delete("first", &DeleteParams::default()).await.unwrap();
    let event = timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the watch answers within 5 s")
        .expect("one event")
        .unwrap();
    let WatchEvent::Deleted(gone) = event else {
        panic!("expected DELETED, got {event:?}");
    };
    assert_eq!(gone.metadata.name.as_deref(), Some("first"));
}

#[tokio::test]
async fn a_reflector_on_the_old_server_relists_from_the_restarted_one_and_sees_later_changes() {
    let (_dir, config, server) = start_persistent().await;
    let client = client_for(&server.url());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();

    let (reader, mut rx, task) = common::reflect(cms.clone());
    assert_eq!(next(&mut rx).await, Seen::Init);
    assert_eq!(next(&mut rx).await, Seen::InitDone);
    // A write to another kind moves the revision past the reflector's, so the restored server
    // cannot serve its watch from where it was: it must relist, as after a real restart.
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bump"}})).unwrap(),
        )
        .await
        .unwrap();

    let _server = restart(server, &config).await;

    common::expect_expired_then_relist(&mut rx).await;
    assert_eq!(
        reader
            .state()
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["before"],
        "the relisted store holds the restored object"
    );
    cms.create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, Seen::Apply("after".into()));
    cms.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, Seen::Delete("before".into()));
    let names: HashSet<String> = reader
        .state()
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, HashSet::from(["after".to_string()]));
    task.abort();
}

#[tokio::test]
async fn cluster_ips_and_node_ports_of_loaded_services_are_not_handed_out_again() {
    let (_dir, config, server) = start_persistent().await;
    let client = client_for(&server.url());
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut ips = Vec::new();
    let mut ports = Vec::new();
    for i in 0..5 {
        let s = svcs
            .create(
                &PostParams::default(),
                &service(
                    &format!("lb{i}"),
                    json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                           "ipFamilyPolicy": "PreferDualStack", "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
                ),
            )
            .await
            .unwrap();
        let spec = s.spec.unwrap();
        ips.extend(spec.cluster_ips.unwrap());
        ports.extend(spec.ports.unwrap().iter().map(|p| p.node_port.unwrap()));
        ports.push(spec.health_check_node_port.unwrap());
    }
    assert_eq!((ips.len(), ports.len()), (10, 15));

    let _server = restart(server, &config).await;

    // Each loaded IP and port is refused to anyone who asks for it explicitly.
    for ip in &ips {
        let err = api_error(
            svcs.create(
                &PostParams::default(),
                &service(
                    "ip-thief",
                    json!({"clusterIP": ip, "clusterIPs": [ip], "ports": [{"port": 80}]}),
                ),
            )
            .await,
        );
        assert!(
            err.message.contains("provided IP is already allocated"),
            "{ip}: {}",
            err.message
        );
    }
    for port in &ports {
        let err = api_error(
            svcs.create(
                &PostParams::default(),
                &service(
                    "port-thief",
                    json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
                ),
            )
            .await,
        );
        assert!(
            err.message.contains("provided port is already allocated"),
            "{port}: {}",
            err.message
        );
    }
    // Filling the node port range hands out every other port and none of the loaded ones.
    let mut handed_out = HashSet::new();
    for i in 0.. {
        let many: Vec<Value> = (0..100)
            .map(|p| json!({"name": format!("p{p}"), "port": 1000 + p}))
            .collect();
        match svcs
            .create(
                &PostParams::default(),
                &service(
                    &format!("fill{i}"),
                    json!({"type": "NodePort", "ports": many}),
                ),
            )
            .await
        {
            Ok(s) => handed_out.extend(
                s.spec
                    .unwrap()
                    .ports
                    .unwrap()
                    .iter()
                    .map(|p| p.node_port.unwrap()),
            ),
            Err(kube::Error::Api(status)) if status.message.contains("range is full") => break,
            Err(e) => panic!("filling the node ports: {e:?}"),
        }
    }
    let range_size = 32767 - 30000 + 1;
    assert!(handed_out.len() > range_size - ports.len() - 100);
    assert!(ports.iter().all(|p| !handed_out.contains(p)));
    // A loaded Service's grants are its own: deleting it frees them.
    svcs.delete("lb0", &DeleteParams::default()).await.unwrap();
    svcs.create(
        &PostParams::default(),
        &service(
            "heir",
            json!({"clusterIP": ips[0], "clusterIPs": [ips[0]], "ports": [{"port": 80}]}),
        ),
    )
    .await
    .expect("the cluster IP of a deleted loaded Service is free again");
}

#[tokio::test]
async fn a_missing_state_file_starts_a_fresh_cluster_and_is_written_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let server = spawn("127.0.0.1:0".parse().unwrap(), with_state_file(&path))
        .await
        .expect("a missing state file is a fresh start");
    let names: Vec<String> = Api::<Namespace>::all(client_for(&server.url()))
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "metallb-system"
        ]
    );
    assert!(!path.exists(), "nothing is written before the stop");
    server.shutdown().await.unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(saved["format"], 1);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "state.json")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary file is left: {leftovers:?}"
    );
}

#[tokio::test]
async fn an_unreadable_or_corrupt_state_file_stops_the_start_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let valid = {
        let path = dir.path().join("valid.json");
        let server = spawn("127.0.0.1:0".parse().unwrap(), with_state_file(&path))
            .await
            .unwrap();
        server.shutdown().await.unwrap();
        std::fs::read(&path).unwrap()
    };
    let truncated = valid[..valid.len() / 2].to_vec();
    let cases: [(&str, Option<Vec<u8>>, &str); 5] = [
        ("a directory", None, "cannot read the state file"),
        (
            "garbage",
            Some(b"\x00not json".to_vec()),
            "is not a valid snapshot",
        ),
        ("an empty file", Some(Vec::new()), "is not a valid snapshot"),
        (
            "a truncated snapshot",
            Some(truncated),
            "is not a valid snapshot",
        ),
        (
            "a snapshot of another format",
            Some(
                String::from_utf8(valid.clone())
                    .unwrap()
                    .replacen("\"format\":1", "\"format\":9", 1)
                    .into_bytes(),
            ),
            "is inconsistent: format 9",
        ),
    ];
    for (i, (case, content, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("case-{i}"));
        match &content {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::create_dir(&path).unwrap(),
        }
        let err = spawn("127.0.0.1:0".parse().unwrap(), with_state_file(&path))
            .await
            .expect_err(case);
        assert!(matches!(err, ServerError::State(_)), "{case}: {err:?}");
        let message = err.to_string();
        assert!(
            message.contains(expected) && message.contains(&*path.to_string_lossy()),
            "{case}: {message}"
        );
        if let Some(bytes) = content {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{case}: left as it was"
            );
        }
    }
    let nowhere = dir.path().join("no-such-dir").join("state.json");
    let err = spawn("127.0.0.1:0".parse().unwrap(), with_state_file(&nowhere))
        .await
        .expect_err("a state file that could never be written");
    assert!(
        err.to_string().contains("its directory does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn a_stop_ends_open_watches_so_it_does_not_wait_for_them() {
    let (_dir, _config, server) = start_persistent().await;
    let cms: Api<ConfigMap> = Api::namespaced(client_for(&server.url()), "default");
    cms.create(&PostParams::default(), &configmap("watched"))
        .await
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let started = Instant::now();
    server.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the stop took {:?}",
        started.elapsed()
    );
    let rest: Vec<_> = timeout(Duration::from_secs(5), stream.by_ref().collect::<Vec<_>>())
        .await
        .expect("the watch stream ends with the server");
    let names: Vec<_> = rest
        .iter()
        .map(|e| match e {
            Ok(WatchEvent::Added(o)) => o.metadata.name.clone().unwrap(),
            other => panic!("only the initial ADDED, then the end: {other:?}"),
        })
        .collect();
    assert_eq!(names, ["watched"]);
}
