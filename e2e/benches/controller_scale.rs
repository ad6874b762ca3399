//! Lab benchmark of the controller at scale (issue #4, benchmarks b and c):
//! 5,000 Services created at once, time until all have an IP, next to the
//! time the same client needs to create them and write 5,000 status updates
//! itself (the API's own ceiling, measured in the same run); and the
//! controller's peak RSS. Prints its figures; run as root after
//! `cargo build --release --workspace --bins`:
//!
//! ```sh
//! cargo bench -p ferrolb-e2e --bench controller_scale
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::{Cluster, ingress_ips, lb_service, spawn_controller};
use ferrolb_e2e::lab::{Lab, LabConfig};
use ferrolb_e2e::measure::{self, Summary};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const SERVICES: usize = 5_000;
const IN_FLIGHT: usize = 64;
const TRIALS: usize = 5;
/// RFC 2544's benchmarking range: never routed, and no traffic is sent to it here.
const POOL: &str =
    "address-pools:\n- name: bench\n  protocol: layer2\n  addresses:\n  - 198.18.0.0/18\n";

fn main() {
    let mut ceilings = Vec::new();
    let mut controller_times = Vec::new();
    let mut rss = Vec::new();
    for trial in 1..=TRIALS {
        let (ceiling, took, peak) = trial_once();
        println!(
            "trial {trial}: client create+status {:.2} s, controller create->all IPs {:.2} s ({:.2}x), controller peak RSS {:.1} MB",
            ceiling.as_secs_f64(),
            took.as_secs_f64(),
            took.as_secs_f64() / ceiling.as_secs_f64(),
            peak as f64 / 1e6
        );
        ceilings.push(ceiling.as_secs_f64());
        controller_times.push(took.as_secs_f64());
        rss.push(peak as f64 / 1e6);
    }
    let ratios: Vec<f64> = controller_times
        .iter()
        .zip(&ceilings)
        .map(|(c, l)| c / l)
        .collect();
    report(
        "API ceiling (client creates + writes 5,000 statuses), s",
        &ceilings,
    );
    report(
        "controller (create 5,000 -> all have IPs), s",
        &controller_times,
    );
    report("ratio controller / ceiling", &ratios);
    report("controller peak RSS, MB", &rss);
}

fn report(what: &str, values: &[f64]) {
    let summary = Summary::of(values).expect("at least one trial");
    println!("{what}: {summary}");
}

/// One trial in a fresh lab: (ceiling, controller time, controller peak RSS bytes).
fn trial_once() -> (Duration, Duration, u64) {
    let mut lab = Lab::up(&LabConfig::control_plane_only()).expect("lab up (needs root)");
    let cluster = Cluster::new(lab.control_plane().expect("control plane"));

    // The ceiling: the client creates the Services and writes their status itself.
    let ceiling = cluster
        .control_plane()
        .run(|client| async move {
            let api: Api<Service> = Api::namespaced(client, "default");
            let started = Instant::now();
            create_all(&api, "ceiling").await;
            futures::stream::iter(0..SERVICES)
                .map(|i| {
                    let api = api.clone();
                    async move {
                        let ip = IpAddr::V4(Ipv4Addr::from(
                            u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i as u32,
                        ));
                        let patch =
                            json!({"status":{"loadBalancer":{"ingress":[{"ip": ip.to_string()}]}}});
                        api.patch_status(
                            &format!("ceiling-{i}"),
                            &PatchParams::default(),
                            &Patch::Merge(patch),
                        )
                        .await
                        .expect("status patch");
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<()>>()
                .await;
            let took = started.elapsed();
            futures::stream::iter(0..SERVICES)
                .map(|i| {
                    let api = api.clone();
                    async move {
                        api.delete(&format!("ceiling-{i}"), &DeleteParams::default())
                            .await
                            .expect("delete");
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<()>>()
                .await;
            took
        })
        .expect("ceiling run");

    cluster.apply_config(POOL).expect("config");
    let index = spawn_controller(&mut lab, &[]).expect("controller");
    let pid = lab
        .process(index)
        .and_then(|p| p.pid())
        .expect("controller pid");
    // Let it sync (an empty cluster) before the burst.
    std::thread::sleep(Duration::from_millis(500));

    let took = cluster
        .control_plane()
        .run(|client| async move {
            let api: Api<Service> = Api::namespaced(client, "default");
            // A watch sees the IPs arrive; polling lists of 5,000 Services would
            // load the API server and slow down what is measured.
            let mut events = api
                .watch(&WatchParams::default().timeout(290), "0")
                .await
                .expect("watch")
                .boxed();
            let started = Instant::now();
            let creating = tokio::spawn({
                let api = api.clone();
                async move { create_all(&api, "svc").await }
            });
            let mut with_ip = HashSet::new();
            while with_ip.len() < SERVICES {
                match events.try_next().await.expect("watch event") {
                    Some(WatchEvent::Added(s)) | Some(WatchEvent::Modified(s)) => {
                        if !ingress_ips(&s).is_empty() {
                            with_ip.insert(s.metadata.name.unwrap_or_default());
                        }
                    }
                    Some(_) => {}
                    None => panic!("the watch ended with {} of {SERVICES} IPs", with_ip.len()),
                }
            }
            let took = started.elapsed();
            creating.await.expect("creates");
            took
        })
        .expect("controller run");
    let peak = measure::peak_rss_bytes(pid).expect("VmHWM of the controller");
    drop(lab);
    (ceiling, took, peak)
}

async fn create_all(api: &Api<Service>, prefix: &str) {
    futures::stream::iter(0..SERVICES)
        .map(|i| {
            let api = api.clone();
            let mut svc = lb_service(&format!("{prefix}-{i}"), &[80], &[]);
            // 5,000 LoadBalancer Services would exhaust the node-port range.
            if let Some(spec) = svc.spec.as_mut() {
                spec.allocate_load_balancer_node_ports = Some(false);
            }
            async move {
                api.create(&PostParams::default(), &svc)
                    .await
                    .expect("create");
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
}
