//! Lab benchmark of the status objects (issue #11): 1,000 layer-2 Services
//! with ready endpoints on all three nodes; the speakers start and write a
//! `ServiceL2Status` per Service; then, per trial, the speaker holding the
//! most objects is SIGKILLed and the benchmark measures the time until the
//! objects are right again (none names the dead node, exactly one per
//! Service) and the API writes the survivors made meanwhile
//! (`ferrolb_speaker_status_writes_total`), then restarts it and measures
//! the way back. Prints its figures; run as root:
//!
//! ```sh
//! cargo bench -p ferrolb-e2e --bench status_scale
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_config::crd::ServiceL2Status;
use ferrolb_e2e::cluster::{Cluster, http_get, spawn_controller};
use ferrolb_e2e::lab::{Lab, LabConfig};
use ferrolb_e2e::measure::Summary;
use kube::api::{Api, ListParams};

const SERVICES: usize = 1_000;
const TRIALS: usize = 5;
/// How long one phase may take before the benchmark gives up.
const TIMEOUT: Duration = Duration::from_secs(180);

/// RFC 2544's benchmarking range (no traffic is sent to it).
const CONFIG: &str = "address-pools:
- name: bench
  protocol: layer2
  addresses:
  - 198.18.0.0/22
";

fn main() {
    let mut lab = Lab::up(&LabConfig {
        nodes: 3,
        ..LabConfig::default()
    })
    .expect("lab up (needs root and iproute2)");
    let nodes = lab.nodes().to_vec();
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let cluster = Cluster::new(lab.control_plane().expect("control plane"));
    cluster.apply_config(CONFIG).expect("config");
    spawn_controller(&mut lab, &[]).expect("controller");
    cluster
        .create_bench_services(SERVICES, &names)
        .expect("create Services");
    cluster
        .wait_assigned(SERVICES, TIMEOUT)
        .expect("every Service assigned");

    let started = Instant::now();
    let mut speakers: BTreeMap<String, usize> = BTreeMap::new();
    for n in &names {
        speakers.insert(
            n.clone(),
            lab.spawn_ferrolb("ferrolb-speaker", n, &[])
                .expect("start a speaker"),
        );
    }
    let by_node = wait_settled(&cluster, None);
    let writes = total_writes(&lab, &names);
    println!(
        "start: {SERVICES} ServiceL2Status objects settled {:.2} s after the speakers started, {writes} API writes, objects per node {by_node:?}",
        started.elapsed().as_secs_f64()
    );

    let mut failover = Vec::new();
    let mut failover_rate = Vec::new();
    let mut failover_writes = Vec::new();
    let mut back = Vec::new();
    for trial in 1..=TRIALS {
        let by_node = counts(&cluster);
        let victim = by_node
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(node, _)| node.clone())
            .expect("objects exist");
        let survivors: Vec<String> = names.iter().filter(|n| **n != victim).cloned().collect();
        let before = total_writes(&lab, &survivors);
        let killed = Instant::now();
        lab.process(speakers[&victim])
            .expect("the victim's speaker")
            .kill()
            .expect("SIGKILL");
        wait_settled(&cluster, Some(&victim));
        let took = killed.elapsed();
        let writes = total_writes(&lab, &survivors) - before;
        let rate = writes as f64 / took.as_secs_f64();
        println!(
            "trial {trial}: SIGKILL of {victim} ({} objects): settled in {:.2} s, {writes} API writes by the survivors ({rate:.0} writes/s)",
            by_node.get(&victim).copied().unwrap_or(0),
            took.as_secs_f64()
        );
        failover.push(took.as_secs_f64());
        failover_writes.push(writes as f64);
        failover_rate.push(rate);

        let restarted = Instant::now();
        speakers.insert(
            victim.clone(),
            lab.spawn_ferrolb("ferrolb-speaker", &victim, &[])
                .expect("restart"),
        );
        wait_back(&cluster, &victim);
        back.push(restarted.elapsed().as_secs_f64());
        println!(
            "trial {trial}: {victim} restarted: its objects back in {:.2} s",
            restarted.elapsed().as_secs_f64()
        );
    }
    report(
        "SIGKILL of the busiest speaker -> status settled, s",
        &failover,
    );
    report("API writes by the survivors per failover", &failover_writes);
    report("API writes per second during the failover", &failover_rate);
    report("speaker restart -> its objects back, s", &back);
}

fn report(what: &str, values: &[f64]) {
    let summary = Summary::of(values).expect("at least one trial");
    println!("{what}: {summary}");
}

/// The ServiceL2Status objects per node.
fn counts(cluster: &Cluster) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (node, _) in objects(cluster) {
        *out.entry(node).or_insert(0) += 1;
    }
    out
}

/// (node, Service name) of every ServiceL2Status.
fn objects(cluster: &Cluster) -> Vec<(String, String)> {
    cluster
        .control_plane()
        .run(|client| async move {
            let list = Api::<ServiceL2Status>::namespaced(client, "default")
                .list(&ListParams::default())
                .await?;
            Ok::<_, kube::Error>(
                list.items
                    .into_iter()
                    .filter_map(|o| {
                        let s = o.status?;
                        Some((s.node, s.service_name))
                    })
                    .collect(),
            )
        })
        .expect("API run")
        .expect("list ServiceL2Status")
}

/// Waits until there is exactly one object per Service and none names
/// `dead`; returns the objects per node.
fn wait_settled(cluster: &Cluster, dead: Option<&str>) -> BTreeMap<String, usize> {
    let started = Instant::now();
    loop {
        let all = objects(cluster);
        let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, s) in &all {
            *per_service.entry(s.as_str()).or_insert(0) += 1;
        }
        let settled = per_service.len() == SERVICES
            && per_service.values().all(|n| *n == 1)
            && dead.is_none_or(|d| all.iter().all(|(node, _)| node != d));
        if settled {
            return counts(cluster);
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "after {TIMEOUT:?}: {} objects for {} Services",
            all.len(),
            per_service.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `node` holds objects again and the set is settled.
fn wait_back(cluster: &Cluster, node: &str) {
    let started = Instant::now();
    loop {
        let by_node = wait_settled(cluster, None);
        if by_node.get(node).copied().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "{node} never took its Services back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sum of `ferrolb_speaker_status_writes_total` over `nodes`' speakers.
fn total_writes(lab: &Lab, nodes: &[String]) -> u64 {
    nodes
        .iter()
        .map(|name| {
            let node = lab.node(name).expect("a lab node");
            let addr = SocketAddr::new(IpAddr::V4(node.ipv4), 7472);
            let text = http_get(&node.netns, addr, "/metrics").expect("speaker /metrics");
            text.lines()
                .filter(|l| l.starts_with("ferrolb_speaker_status_writes_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(|v| v as u64)
                .sum::<u64>()
        })
        .sum()
}
