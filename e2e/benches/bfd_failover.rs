//! Lab benchmark of BGP failover with BFD and of graceful restart (issue
//! #10). Three nodes, the controller and three speakers peer over IPv4 with
//! BIRD and FRR at once; one Cluster-policy Service is announced by all
//! three nodes.
//!
//! 1. BFD (profile 100 ms x 3, hold time 90 s): per trial one node is cut
//!    off the LAN (its bridge port down) and the time until its next hop
//!    is gone is read at BIRD and at FRR, each polled on its own thread;
//!    then the link comes back and the next hop returns.
//! 2. Graceful restart (routers restarted with it, no BFD): per trial one
//!    speaker is SIGTERMed and started again; both routers are polled every
//!    20 ms during the restart and until 1 s after the session is back,
//!    counting the polls that miss the node's next hop (a withdrawal).
//!
//! Prints its figures (median, min, max over the trials); run as root:
//!
//! ```sh
//! cargo build --workspace --bins && cargo bench -p ferrolb-e2e --bench bfd_failover
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb_e2e::cluster::{Cluster, lb_service, spawn_controller};
use ferrolb_e2e::lab::netns;
use ferrolb_e2e::lab::topology::Host;
use ferrolb_e2e::lab::{Lab, LabConfig};
use ferrolb_e2e::measure::Summary;
use ferrolb_e2e::routers::{self, Neighbor, Router, RouterConfig, RouterKind, bird, frr};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use serde_json::json;

const TRIALS: usize = 20;
const ROUTER_ASN: u32 = 64500;
const NODE_ASN: u32 = 64512;
const BFD_INTERVAL_MS: u32 = 100;
const BFD_MULTIPLIER: u8 = 3;
/// How long anything may take before the benchmark gives up.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How often the routers are polled during a graceful restart.
const POLL: Duration = Duration::from_millis(20);
const KINDS: [RouterKind; 2] = [RouterKind::Bird, RouterKind::Frr];

/// The ConfigMap: one peer per router, with BFD or with graceful restart.
fn config(routers: &[Host], bfd: bool) -> String {
    let extra = if bfd {
        "  bfd-profile: fast\n"
    } else {
        "  graceful-restart: true\n"
    };
    let mut s = String::from("peers:\n");
    for r in routers {
        s.push_str(&format!(
            "- peer-address: {}\n  peer-asn: {ROUTER_ASN}\n  my-asn: {NODE_ASN}\n  hold-time: 90s\n{extra}",
            r.ipv4
        ));
    }
    s.push_str(&format!(
        "bfd-profiles:\n- name: fast\n  receive-interval: {BFD_INTERVAL_MS}\n  transmit-interval: {BFD_INTERVAL_MS}\n  detect-multiplier: {BFD_MULTIPLIER}\n\
         address-pools:\n- name: bench\n  protocol: bgp\n  addresses:\n  - 198.18.0.0/28\n"
    ));
    s
}

/// A light query of one router for the next hops of `ip`: one CLI call.
#[derive(Clone)]
enum Probe {
    Bird(String),
    Frr(String),
}

impl Probe {
    fn of(lab: &Lab, kind: RouterKind) -> Self {
        let dir: PathBuf = lab.run_dir().join(kind.name());
        match kind {
            RouterKind::Bird => Probe::Bird(dir.join("bird.ctl").display().to_string()),
            _ => Probe::Frr(dir.display().to_string()),
        }
    }

    fn next_hops(&self, ip: IpAddr) -> Vec<IpAddr> {
        let prefix = format!("{ip}/32");
        match self {
            Probe::Bird(socket) => netns::stdout(
                None,
                "birdc",
                &["-s", socket, "show", "route", &prefix, "all"],
            )
            .ok()
            .and_then(|text| bird::parse_routes(&text).ok())
            .and_then(|routes| routes.into_iter().next())
            .map(|r| r.next_hops)
            .unwrap_or_default(),
            Probe::Frr(dir) => {
                let command = format!("show bgp ipv4 unicast {prefix} json");
                netns::stdout(None, "vtysh", &["--vty_socket", dir, "-c", &command])
                    .ok()
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .and_then(|doc| frr::parse_prefix_detail(&doc).ok().flatten())
                    .map(|r| r.next_hops)
                    .unwrap_or_default()
            }
        }
    }

    /// Polls until `accept` holds for the next hops of `ip`; the time it took.
    fn wait(&self, ip: IpAddr, accept: impl Fn(&[IpAddr]) -> bool) -> Duration {
        let started = Instant::now();
        while started.elapsed() < TIMEOUT {
            if accept(&self.next_hops(ip)) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("router never reached the expected next hops for {ip}");
    }
}

fn start_routers(lab: &Lab, nodes: &[Host], bfd: bool) -> Vec<Box<dyn Router>> {
    KINDS
        .iter()
        .map(|&kind| {
            let host = lab.topology().router(kind).expect("router host").clone();
            let mut rc = RouterConfig::new(ROUTER_ASN, host.ipv4);
            for node in nodes {
                let n = Neighbor::new(IpAddr::V4(node.ipv4), NODE_ASN).passive();
                rc = rc.neighbor(if bfd {
                    n.bfd(BFD_INTERVAL_MS, BFD_MULTIPLIER)
                } else {
                    n.graceful_restart()
                });
            }
            lab.start_router(kind, rc)
                .unwrap_or_else(|e| panic!("start {kind} (Debian bird2, frr): {e}"))
        })
        .collect()
}

fn set_link(lab: &Lab, node: &Host, up: bool) {
    let state = if up { "up" } else { "down" };
    netns::ip_batch(
        Some(&lab.topology().lan_netns),
        &[format!("link set dev {} {state}", node.port)],
    )
    .expect("set a node's link");
}

fn wait_sessions(routers: &[Box<dyn Router>], nodes: &[Host], bfd: bool) {
    for router in routers {
        for node in nodes {
            let address = IpAddr::V4(node.ipv4);
            routers::wait_established(router.as_ref(), address, TIMEOUT).expect("session");
            if bfd {
                routers::wait_bfd_up(router.as_ref(), address, TIMEOUT).expect("BFD up");
            }
        }
    }
}

fn report(what: &str, values: &[f64]) {
    match Summary::of(values) {
        Some(s) => println!("{what}: {s}"),
        None => println!("{what}: no values"),
    }
}

fn main() {
    let mut lab = Lab::up(&LabConfig {
        nodes: 3,
        routers: true,
        ..LabConfig::default()
    })
    .expect("lab up (needs root, iproute2, bird2 and frr)");
    let nodes = lab.nodes().to_vec();
    let router_hosts: Vec<Host> = KINDS
        .iter()
        .map(|k| lab.topology().router(*k).expect("router host").clone())
        .collect();
    let probes: Vec<Probe> = KINDS.iter().map(|k| Probe::of(&lab, *k)).collect();
    let all: Vec<IpAddr> = nodes.iter().map(|n| IpAddr::V4(n.ipv4)).collect();

    // Phase 1: BFD.
    let mut routers = start_routers(&lab, &nodes, true);
    let cluster = Cluster::new(lab.control_plane().expect("control plane"));
    cluster
        .apply_config(&config(&router_hosts, true))
        .expect("config");
    spawn_controller(&mut lab, &[]).expect("controller");
    let mut speakers: Vec<usize> = nodes
        .iter()
        .map(|n| {
            lab.spawn_ferrolb("ferrolb-speaker", &n.name, &[])
                .expect("speaker")
        })
        .collect();
    let ip = create_service(&cluster, &nodes[0].name);
    wait_sessions(&routers, &nodes, true);
    for p in &probes {
        p.wait(ip, |hops| hops.len() == all.len());
    }

    let mut cut: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    for trial in 0..TRIALS {
        let node = &nodes[trial % nodes.len()];
        let gone = IpAddr::V4(node.ipv4);
        let started = Instant::now();
        set_link(&lab, node, false);
        let took: Vec<Duration> = std::thread::scope(|scope| {
            let handles: Vec<_> = probes
                .iter()
                .map(|p| {
                    scope.spawn(move || {
                        p.wait(ip, |hops| !hops.contains(&gone) && !hops.is_empty());
                        started.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("probe"))
                .collect()
        });
        println!(
            "cut trial {}: {} next hop gone at BIRD after {:.0} ms, at FRR after {:.0} ms",
            trial + 1,
            node.name,
            took[0].as_secs_f64() * 1000.0,
            took[1].as_secs_f64() * 1000.0
        );
        for (i, t) in took.iter().enumerate() {
            cut[i].push(t.as_secs_f64() * 1000.0);
        }
        set_link(&lab, node, true);
        for p in &probes {
            p.wait(ip, |hops| hops.len() == all.len());
        }
    }

    // Phase 2: graceful restart, without BFD.
    for r in &mut routers {
        r.stop().expect("stop a router");
    }
    drop(routers);
    let routers = start_routers(&lab, &nodes, false);
    cluster
        .apply_config(&config(&router_hosts, false))
        .expect("config");
    wait_sessions(&routers, &nodes, false);
    for p in &probes {
        p.wait(ip, |hops| hops.len() == all.len());
    }
    let mut missing_polls: Vec<Vec<f64>> = vec![Vec::new(); KINDS.len()];
    let mut withdrawn_trials = vec![0usize; KINDS.len()];
    let mut back: Vec<f64> = Vec::new();
    for trial in 0..TRIALS {
        let index = trial % nodes.len();
        let node = nodes[index].clone();
        let address = IpAddr::V4(node.ipv4);
        let done = std::sync::atomic::AtomicBool::new(false);
        let (counts, restart): (Vec<(usize, usize)>, Duration) = std::thread::scope(|scope| {
            let handles: Vec<_> = probes
                .iter()
                .map(|p| {
                    let done = &done;
                    scope.spawn(move || {
                        let (mut polls, mut missing) = (0, 0);
                        while !done.load(std::sync::atomic::Ordering::SeqCst) {
                            polls += 1;
                            if !p.next_hops(ip).contains(&address) {
                                missing += 1;
                            }
                            std::thread::sleep(POLL);
                        }
                        (polls, missing)
                    })
                })
                .collect();
            let started = Instant::now();
            lab.process(speakers[index])
                .expect("speaker process")
                .stop()
                .expect("SIGTERM the speaker");
            speakers[index] = lab
                .spawn_ferrolb("ferrolb-speaker", &node.name, &[])
                .expect("restart the speaker");
            for r in &routers {
                wait_reestablished(r.as_ref(), address);
            }
            let restart = started.elapsed();
            std::thread::sleep(Duration::from_secs(1));
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let counts = handles
                .into_iter()
                .map(|h| h.join().expect("probe"))
                .collect();
            (counts, restart)
        });
        println!(
            "restart trial {}: {} back at both routers after {:.0} ms; polls missing its next hop: BIRD {} of {}, FRR {} of {}",
            trial + 1,
            node.name,
            restart.as_secs_f64() * 1000.0,
            counts[0].1,
            counts[0].0,
            counts[1].1,
            counts[1].0
        );
        back.push(restart.as_secs_f64() * 1000.0);
        for (i, (_, missing)) in counts.iter().enumerate() {
            missing_polls[i].push(*missing as f64);
            if *missing > 0 {
                withdrawn_trials[i] += 1;
            }
        }
    }

    println!("== BFD {BFD_INTERVAL_MS} ms x {BFD_MULTIPLIER}, hold time 90 s, {TRIALS} trials");
    for (i, kind) in KINDS.iter().enumerate() {
        report(&format!("node cut -> next hop gone at {kind}, ms"), &cut[i]);
    }
    println!("== graceful restart (SIGTERM + start), {TRIALS} trials");
    report(
        "SIGTERM -> session established again at both routers, ms",
        &back,
    );
    for (i, kind) in KINDS.iter().enumerate() {
        report(
            &format!("polls missing the next hop at {kind} per restart"),
            &missing_polls[i],
        );
        println!(
            "restarts with a withdrawal seen at {kind}: {} of {TRIALS}",
            withdrawn_trials[i]
        );
    }
}

/// Waits until `router`'s session with `address` is Established again
/// (it may still show Established from before the restart for a moment:
/// the caller's SIGTERM has returned, so the old process is gone).
fn wait_reestablished(router: &dyn Router, address: IpAddr) {
    routers::wait_for("session back", TIMEOUT, || {
        Ok(router
            .sessions()?
            .iter()
            .any(|s| s.neighbor == address && s.state == routers::SessionState::Established)
            .then_some(()))
    })
    .expect("session back after restart");
}

/// One Cluster-policy Service with a ready endpoint on `node`; its address.
fn create_service(cluster: &Cluster, node: &str) -> IpAddr {
    let node = node.to_string();
    cluster
        .control_plane()
        .run(|client| async move {
            let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
            let slice: EndpointSlice = serde_json::from_value(json!({
                "metadata": {
                    "name": "web-bench",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "web"},
                },
                "addressType": "IPv4",
                "endpoints": [{
                    "addresses": ["10.244.1.10"],
                    "nodeName": node,
                    "conditions": {"ready": true},
                }],
            }))
            .expect("an EndpointSlice");
            slices
                .create(&PostParams::default(), &slice)
                .await
                .map(|_| ())
        })
        .expect("API run")
        .expect("create the EndpointSlice");
    cluster
        .create_service(&lb_service("web", &[80], &[]))
        .expect("create the Service");
    cluster
        .wait_for_ips("default", "web", TIMEOUT, |ips| {
            ips.iter().any(IpAddr::is_ipv4)
        })
        .expect("an address")
        .into_iter()
        .find(IpAddr::is_ipv4)
        .expect("an IPv4 address")
}
