//! Many objects at once: the controller benchmark's shape (5,000 Services created together and
//! watched), and the node port range running out like on a real cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use common::{api_error, start};

const SERVICES: usize = 5_000;

fn lb(name: &str) -> Service {
    // 5,000 load balancers cannot all get node ports (the range has 2,768), as on a real cluster.
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_services_created_at_once_are_listed_and_watched() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let (reader, writer) = reflector::store();
    let watch_task = tokio::spawn(
        reflector(
            writer,
            watcher(svcs.clone(), watcher::Config::default().labels("bench=yes")),
        )
        .applied_objects()
        .for_each(|_| async {}),
    );
    reader.wait_until_ready().await.unwrap();

    let started = Instant::now();
    futures::stream::iter(0..SERVICES)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                svcs.create(&PostParams::default(), &lb(&format!("svc-{i:05}")))
                    .await
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let created = started.elapsed();

    let started = Instant::now();
    let list = svcs
        .list(&ListParams::default().labels("bench=yes"))
        .await
        .unwrap();
    let listed = started.elapsed();
    assert_eq!(list.items.len(), SERVICES);
    let ips: HashSet<String> = list
        .items
        .iter()
        .map(|s| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap())
        .collect();
    assert_eq!(ips.len(), SERVICES, "every Service has its own cluster IP");

    let deadline = Instant::now() + Duration::from_secs(60);
    while reader.state().len() < SERVICES {
        assert!(
            Instant::now() < deadline,
            "the watcher saw only {} Services",
            reader.state().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let watched = created + started.elapsed();
    watch_task.abort();
    println!(
        "5,000 Services (debug build, one run): create {created:?} ({:.0}/s), list {listed:?}, watcher caught up {watched:?}",
        SERVICES as f64 / created.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_port_range_runs_out_after_2768_ports_like_a_real_cluster() {
    let c = start().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let results: Vec<Result<Service, kube::Error>> = futures::stream::iter(0..2_800)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                let s: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("np-{i}")},
                    "spec": {"type": "NodePort", "ports": [{"port": 80}]}
                }))
                .unwrap();
                svcs.create(&PostParams::default(), &s).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 32_767 - 30_000 + 1);
    let failure = results.into_iter().find(|r| r.is_err()).unwrap();
    let err = api_error(failure);
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        err.message,
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );
}
