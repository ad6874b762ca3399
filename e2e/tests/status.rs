//! Status objects in the lab: the speakers write one `ServiceL2Status` per
//! (node, Service) they answer for, and one `ServiceBGPStatus` per (node,
//! Service) they announce to peers; the objects follow a failover, go when
//! the Service stops being a LoadBalancer or is deleted, and none survives
//! a SIGKILLed speaker.
//!
//! Needs root and the Debian packages iproute2, arping and ndisc6; fails
//! (never skips) when they are missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use cluster::{APPS, Cluster, TUTORIAL_CONFIG, lb_service};
use ferrolb_config::crd::ServiceL2Status;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn eth0() -> BTreeSet<String> {
    BTreeSet::from(["eth0".to_string()])
}

/// Waits until the only `ServiceL2Status` of `service` is `node`'s, on eth0.
fn wait_l2_status(cluster: &Cluster, service: &str, node: &str) -> ServiceL2Status {
    cluster.wait_statuses(
        "ServiceL2Status",
        Cluster::l2_statuses,
        service,
        &[node],
        &eth0(),
    );
    let name = format!("{service}.{node}");
    cluster.api(move |client| async move {
        Api::<ServiceL2Status>::namespaced(client, APPS)
            .get(&name)
            .await
    })
}

fn wait_no_l2_status(cluster: &Cluster, service: &str) {
    cluster.wait_statuses(
        "ServiceL2Status",
        Cluster::l2_statuses,
        service,
        &[],
        &eth0(),
    );
}

fn cluster_with_service(name: &str) -> (Cluster, IpAddr) {
    let cluster = Cluster::up(TUTORIAL_CONFIG);
    cluster.create_service(lb_service(name, &[80]));
    cluster.set_endpoints(name, &[("node1", true), ("node2", true), ("node3", true)]);
    let ip = cluster.wait_ips(name, 1)[0];
    (cluster, ip)
}

fn service_uid(cluster: &Cluster, name: &str) -> String {
    let name = name.to_string();
    let svc = cluster.api(move |client| async move {
        Api::<Service>::namespaced(client, APPS).get(&name).await
    });
    svc.metadata.uid.expect("a stored Service has a uid")
}

#[test]
fn the_elected_node_writes_one_l2_status_labelled_and_owned_by_the_service() {
    let (cluster, ip) = cluster_with_service("web");
    let leader = cluster.wait_announcer(ip, |_| true);
    let object = wait_l2_status(&cluster, "web", &leader);

    let labels = object.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("metallb.io/node"),
        Some(&leader),
        "labelled with the node"
    );
    assert_eq!(
        labels.get("metallb.io/service-name").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        labels
            .get("metallb.io/service-namespace")
            .map(String::as_str),
        Some(APPS)
    );
    let owners = object.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "one owner: {owners:?}");
    assert_eq!(
        (
            owners[0].kind.as_str(),
            owners[0].name.as_str(),
            owners[0].uid.clone()
        ),
        ("Service", "web", service_uid(&cluster, "web")),
        "owned by the Service"
    );
    let status = object.status.clone().unwrap_or_default();
    assert_eq!(
        (
            status.service_name.as_str(),
            status.service_namespace.as_str()
        ),
        ("web", APPS)
    );
}

#[test]
fn the_l2_status_moves_with_a_sigkilled_leader_and_none_is_left_behind() {
    let (mut cluster, ip) = cluster_with_service("web");
    let old = cluster.wait_announcer(ip, |_| true);
    wait_l2_status(&cluster, "web", &old);

    cluster.kill_speaker(&old);
    let new = cluster.wait_announcer(ip, |n| n != old);
    let took_over = Instant::now();
    wait_l2_status(&cluster, "web", &new);
    let settled = took_over.elapsed();
    println!(
        "status moved {:.0} ms after the takeover was visible",
        settled.as_secs_f64() * 1000.0
    );
    assert!(
        settled < Duration::from_secs(5),
        "the object follows the takeover promptly (took {settled:?})"
    );
    assert!(
        cluster.l2_statuses().iter().all(|r| r.node != old),
        "nothing of the killed node's speaker survives"
    );
}

#[test]
fn the_l2_status_goes_when_the_service_becomes_cluster_ip_or_is_deleted() {
    let (cluster, ip) = cluster_with_service("web");
    cluster.create_service(lb_service("shop", &[80]));
    cluster.set_endpoints("shop", &[("node1", true), ("node2", true), ("node3", true)]);
    let shop_ip = cluster.wait_ips("shop", 1)[0];
    let leader = cluster.wait_announcer(ip, |_| true);
    wait_l2_status(&cluster, "web", &leader);
    let shop_leader = cluster.wait_announcer(shop_ip, |_| true);
    wait_l2_status(&cluster, "shop", &shop_leader);

    cluster.api(|client| async move {
        Api::<Service>::namespaced(client, APPS)
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
            )
            .await
    });
    wait_no_l2_status(&cluster, "web");

    cluster.delete_service("shop");
    wait_no_l2_status(&cluster, "shop");
}

/// The rows `ferrolb status -o json` prints, by Service name.
fn status_json(cluster: &Cluster, args: &[&str]) -> (i32, BTreeMap<String, serde_json::Value>) {
    let mut full = vec!["status", "-o", "json"];
    full.extend_from_slice(args);
    let run = cluster.ferrolb(&full);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("ferrolb status -o json printed no JSON ({e}): {run:?}"));
    let by_name = rows
        .into_iter()
        .map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r))
        .collect();
    (run.code, by_name)
}

/// A Service asking for pool `pool`.
fn in_pool(name: &str, pool: &str) -> Service {
    let mut s = lb_service(name, &[80]);
    s.metadata.annotations = Some(BTreeMap::from([(
        "metallb.universe.tf/address-pool".to_string(),
        pool.to_string(),
    )]));
    s
}

#[test]
fn ferrolb_status_shows_who_announces_and_why_the_others_are_pending() {
    let cluster = Cluster::up(&format!(
        "{TUTORIAL_CONFIG}- name: tiny\n  protocol: layer2\n  auto-assign: false\n  addresses:\n  - 192.168.5.251/32\n"
    ));
    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &[("node1", true), ("node2", true), ("node3", true)]);
    let ip = cluster.wait_ips("web", 1)[0];
    let leader = cluster.wait_announcer(ip, |_| true);
    wait_l2_status(&cluster, "web", &leader);

    // Announced: exit 0, and the line names IP, pool, protocol and node.
    let run = cluster.ferrolb(&["status", "web"]);
    assert_eq!(run.code, 0, "an announced Service exits 0: {run:?}");
    let line = run.stdout.lines().nth(1).unwrap_or_default().to_string();
    for part in ["web", &ip.to_string(), "default", "layer2", &leader] {
        assert!(line.contains(part), "{part:?} in {line:?}");
    }
    let run = cluster.ferrolb(&["status", "web", "-o", "wide"]);
    assert!(
        run.stdout.contains(&format!("{leader}:eth0")),
        "wide shows the interfaces: {run:?}"
    );

    // Pending, each with its reason: an unknown pool and an exhausted one.
    cluster.create_service(in_pool("first", "tiny"));
    cluster.wait_ips("first", 1);
    cluster.create_service(in_pool("second", "tiny"));
    cluster.create_service(in_pool("lost", "nosuch"));
    let mut last = BTreeMap::new();
    cluster
        .wait_for("ferrolb status to give both reasons", || {
            let (code, rows) = status_json(&cluster, &[]);
            let reason = |n: &str| {
                rows.get(n)
                    .and_then(|r| r["reason"].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let done = code == 1
                && reason("second").contains("pool \"tiny\" is exhausted")
                && reason("lost").contains("unknown pool \"nosuch\"");
            last = rows;
            Ok(done.then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}; last rows: {last:?}"));
    let web = &last["web"];
    assert_eq!(
        web["ips"],
        json!([ip.to_string()]),
        "JSON parses back with the IPs"
    );
    assert_eq!(web["announcers"][0]["node"], json!(leader));
    assert_eq!(
        web["reason"],
        serde_json::Value::Null,
        "an announced Service has no reason"
    );

    // Scoping: another namespace shows nothing; -A shows the namespace column.
    let run = cluster.ferrolb(&["status", "-n", "kube-system"]);
    assert_eq!(
        (run.code, run.stdout.lines().count()),
        (0, 1),
        "only the header: {run:?}"
    );
    let run = cluster.ferrolb(&["status", "-A"]);
    assert!(run.stdout.starts_with("NAMESPACE"), "{run:?}");
    assert_eq!(run.code, 1, "some Service shown is pending");
    let run = cluster.ferrolb(&["status", "nosuch"]);
    assert_eq!(run.code, 2, "an unknown Service is a usage error: {run:?}");

    // A config the controller refuses (a pool `fresh` with a bad address):
    // a Service asking for `fresh` is told the pool is unknown, and why.
    cluster.apply_config(&format!(
        "{TUTORIAL_CONFIG}- name: fresh\n  protocol: layer2\n  addresses:\n  - not-an-address\n"
    ));
    cluster.create_service(in_pool("late", "fresh"));
    cluster
        .wait_for("ferrolb status to say the config is stale", || {
            let (_, rows) = status_json(&cluster, &["late"]);
            let reason = rows
                .get("late")
                .and_then(|r| r["reason"].as_str())
                .unwrap_or_default()
                .to_string();
            last = rows;
            Ok(
                (reason.contains("unknown pool \"fresh\"") && reason.contains("config stale: "))
                    .then_some(()),
            )
        })
        .unwrap_or_else(|e| panic!("{e}; last rows: {last:?}"));
}

#[test]
fn the_garbage_collector_deletes_the_objects_of_a_deleted_service_with_every_speaker_down() {
    let (mut cluster, ip) = cluster_with_service("web");
    let leader = cluster.wait_announcer(ip, |_| true);
    wait_l2_status(&cluster, "web", &leader);
    for node in ["node1", "node2", "node3"] {
        cluster.kill_speaker(node);
    }
    cluster.delete_service("web");
    // No speaker is left to remove it: only the owner reference can. A real
    // kube-controller-manager's garbage collector finds a new kind (the CRD
    // installed when the lab started) at its next discovery resync, every
    // 30 s, so it may take that long in a fresh cluster.
    let deadline = Instant::now() + GC_DEADLINE;
    while cluster.l2_statuses().iter().any(|r| r.service == "web") {
        assert!(
            Instant::now() < deadline,
            "the status object outlived its Service by {GC_DEADLINE:?}: {:?}",
            cluster.l2_statuses()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How long the garbage collector may take to delete dependents (see above).
const GC_DEADLINE: Duration = Duration::from_secs(90);
