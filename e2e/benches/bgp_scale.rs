//! Lab benchmark of BGP mode at scale (issue #6): 10,000 Service IPs are
//! assigned (controller running, EndpointSlices ready) before the three
//! speakers start; then the time from speaker start until BIRD has
//! installed all of them, the UPDATE messages each speaker sent
//! (`metallb_bgp_updates_total`) and the speakers' peak RSS. Each trial
//! stops the speakers (BIRD withdraws everything) and starts them again on
//! the same 10,000 Services. Prints its figures; run as root after
//! `cargo build --release --workspace --bins`:
//!
//! ```sh
//! cargo bench -p ferrolb-e2e --bench bgp_scale
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::{Cluster, http_get, spawn_controller};
use ferrolb_e2e::lab::netns;
use ferrolb_e2e::lab::{Lab, LabConfig};
use ferrolb_e2e::measure::{self, Summary};
use ferrolb_e2e::routers::{Neighbor, RouterConfig, RouterKind};

const SERVICES: usize = 10_000;
const TRIALS: usize = 5;
const ROUTER_ASN: u32 = 64500;
const NODE_ASN: u32 = 64512;
/// How long one trial may take before the benchmark gives up.
const TIMEOUT: Duration = Duration::from_secs(120);

/// RFC 2544's benchmarking range, announced only to the lab's BIRD (no
/// traffic is sent to it).
fn config(router: IpAddr) -> String {
    format!(
        "peers:
- peer-address: {router}
  peer-asn: {ROUTER_ASN}
  my-asn: {NODE_ASN}
address-pools:
- name: bench
  protocol: bgp
  addresses:
  - 198.18.0.0/17
"
    )
}

/// One trial's figures.
struct Trial {
    /// Speaker start -> BIRD has its first route from a speaker.
    first_prefix: Duration,
    /// Speaker start -> BIRD has a route to every Service IP.
    all_prefixes: Duration,
    /// Speaker start -> BIRD has every Service IP from all three nodes.
    all_paths: Duration,
    /// UPDATE messages sent, per speaker.
    updates: Vec<u64>,
    /// Peak RSS, per speaker, in bytes.
    peak_rss: Vec<u64>,
    /// CPU seconds each lab process (speakers, API server, controller)
    /// spent from speaker start until BIRD had every path.
    cpu: Vec<(String, f64)>,
}

fn main() {
    let mut lab = Lab::up(&LabConfig {
        nodes: 3,
        routers: true,
        ..LabConfig::default()
    })
    .expect("lab up (needs root, iproute2 and bird2)");
    let router_host = lab
        .topology()
        .router(RouterKind::Bird)
        .expect("the lab has router namespaces")
        .clone();
    let nodes = lab.nodes().to_vec();
    let mut router_config = RouterConfig::new(ROUTER_ASN, router_host.ipv4);
    for node in &nodes {
        router_config =
            router_config.neighbor(Neighbor::new(IpAddr::V4(node.ipv4), NODE_ASN).passive());
    }
    let _router = lab
        .start_router(RouterKind::Bird, router_config)
        .expect("start BIRD (Debian package bird2)");
    let socket = lab.run_dir().join("bird").join("bird.ctl");
    let socket = socket.display().to_string();

    let cluster = Cluster::new(lab.control_plane().expect("control plane"));
    cluster
        .apply_config(&config(IpAddr::V4(router_host.ipv4)))
        .expect("config");
    spawn_controller(&mut lab, &[]).expect("controller");
    let started = Instant::now();
    cluster
        .create_bench_services(SERVICES, &[nodes[0].name.clone()])
        .expect("create Services");
    cluster
        .wait_assigned(SERVICES, Duration::from_secs(600))
        .expect("every Service assigned");
    println!(
        "setup: {SERVICES} Services with EndpointSlices created and assigned in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut trials = Vec::new();
    for trial in 1..=TRIALS {
        let t = trial_once(&mut lab, &socket);
        println!(
            "trial {trial}: first prefix in BIRD {:.3} s, all {SERVICES} {:.3} s, from all 3 nodes {:.3} s, UPDATEs sent {:?}, peak RSS {:?} MB",
            t.first_prefix.as_secs_f64(),
            t.all_prefixes.as_secs_f64(),
            t.all_paths.as_secs_f64(),
            t.updates,
            t.peak_rss
                .iter()
                .map(|b| format!("{:.1}", *b as f64 / 1e6))
                .collect::<Vec<_>>()
        );
        println!(
            "trial {trial}: CPU s until converged: {}",
            t.cpu
                .iter()
                .map(|(name, s)| format!("{name} {s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        trials.push(t);
    }
    report(
        "speaker start -> first prefix in BIRD, s",
        &trials
            .iter()
            .map(|t| t.first_prefix.as_secs_f64())
            .collect::<Vec<_>>(),
    );
    report(
        "speaker start -> all 10,000 prefixes in BIRD, s",
        &trials
            .iter()
            .map(|t| t.all_prefixes.as_secs_f64())
            .collect::<Vec<_>>(),
    );
    report(
        "speaker start -> all 30,000 paths (3 nodes) in BIRD, s",
        &trials
            .iter()
            .map(|t| t.all_paths.as_secs_f64())
            .collect::<Vec<_>>(),
    );
    report(
        "UPDATE messages per speaker",
        &trials
            .iter()
            .flat_map(|t| t.updates.iter().map(|u| *u as f64))
            .collect::<Vec<_>>(),
    );
    report(
        "speaker peak RSS, MB",
        &trials
            .iter()
            .flat_map(|t| t.peak_rss.iter().map(|b| *b as f64 / 1e6))
            .collect::<Vec<_>>(),
    );
}

fn report(what: &str, values: &[f64]) {
    let summary = Summary::of(values).expect("at least one trial");
    println!("{what}: {summary}");
}

/// Starts the three speakers, measures until BIRD has everything, reads
/// their counters and peak RSS, then stops them and waits until BIRD's
/// table is empty again.
fn trial_once(lab: &mut Lab, socket: &str) -> Trial {
    let nodes = lab.nodes().to_vec();
    // BIRD's own static routes stay: count what the speakers add to them.
    let (base_paths, base_prefixes) = route_count(socket);
    let cpu_before = cpu_seconds(lab);
    let started = Instant::now();
    let speakers: Vec<usize> = nodes
        .iter()
        .map(|n| {
            lab.spawn_ferrolb("ferrolb-speaker", &n.name, &[])
                .expect("start a speaker")
        })
        .collect();
    let mut first_prefix = None;
    let mut all_prefixes = None;
    let all_paths = loop {
        let (paths, prefixes) = route_count(socket);
        let (paths, prefixes) = (
            paths.saturating_sub(base_paths),
            prefixes.saturating_sub(base_prefixes),
        );
        if first_prefix.is_none() && prefixes > 0 {
            first_prefix = Some(started.elapsed());
        }
        if all_prefixes.is_none() && prefixes >= SERVICES as u64 {
            all_prefixes = Some(started.elapsed());
        }
        if paths >= 3 * SERVICES as u64 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "BIRD has {paths} paths for {prefixes} prefixes after {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu_after = cpu_seconds(lab);
    let cpu = cpu_after
        .into_iter()
        .map(|(name, after)| {
            let before = cpu_before
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0.0, |(_, b)| *b);
            (name, after - before)
        })
        .collect();
    let all_prefixes = all_prefixes.unwrap_or(all_paths);
    let first_prefix = first_prefix.unwrap_or(all_prefixes);

    let mut updates = Vec::new();
    let mut peak_rss = Vec::new();
    for (node, index) in nodes.iter().zip(&speakers) {
        let addr = SocketAddr::new(IpAddr::V4(node.ipv4), 7472);
        let text = http_get(&node.netns, addr, "/metrics").expect("speaker /metrics");
        updates.push(
            updates_sent(&text).unwrap_or_else(|| {
                panic!("no metallb_bgp_updates_total in {}'s /metrics", node.name)
            }),
        );
        let pid = lab
            .process(*index)
            .and_then(|p| p.pid())
            .expect("speaker pid");
        peak_rss.push(measure::peak_rss_bytes(pid).expect("VmHWM of a speaker"));
        if node.name == nodes[0].name {
            let (rss, anon) = measure::rss_parts_mb(pid).expect("smaps_rollup of a speaker");
            println!(
                "{}: RSS now {rss:.1} MB: anonymous {anon:.1} MB, file-backed {:.1} MB",
                node.name,
                rss - anon
            );
        }
    }
    for index in speakers {
        lab.process(index)
            .expect("a speaker")
            .stop()
            .expect("stop a speaker");
    }
    let stopped = Instant::now();
    while route_count(socket).0 > base_paths {
        assert!(
            stopped.elapsed() < TIMEOUT,
            "BIRD kept routes after the speakers stopped"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Trial {
        first_prefix,
        all_prefixes,
        all_paths,
        updates,
        peak_rss,
        cpu,
    }
}

/// CPU seconds (user + system) used so far by each running lab process.
fn cpu_seconds(lab: &Lab) -> Vec<(String, f64)> {
    lab.processes()
        .iter()
        .filter_map(|p| Some((p.name().to_string(), measure::cpu_seconds(p.pid()?)?)))
        .collect()
}

/// (routes, networks) in BIRD's IPv4 table, from `birdc show route count`.
fn route_count(socket: &str) -> (u64, u64) {
    let text = netns::stdout(None, "birdc", &["-s", socket, "show", "route", "count"])
        .expect("birdc show route count");
    // "30000 of 30000 routes for 10000 networks in table master4"
    text.lines()
        .filter(|l| l.contains("table master4"))
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let routes = words.first()?.parse().ok()?;
            let at = words.iter().position(|w| *w == "for")?;
            let networks = words.get(at + 1)?.parse().ok()?;
            Some((routes, networks))
        })
        .unwrap_or((0, 0))
}

/// The sum of `metallb_bgp_updates_total` over the speaker's sessions.
fn updates_sent(metrics: &str) -> Option<u64> {
    let values: Vec<u64> = metrics
        .lines()
        .filter(|l| l.starts_with("metallb_bgp_updates_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
