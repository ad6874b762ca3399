//! BFD and graceful restart end to end: the real controller and three real
//! speakers peering with BIRD (its `bfd` protocol) and FRR (bfdd) in the
//! lab's router namespace, over IPv4 and IPv6, with a 100 ms x 3 BFD
//! profile and a 90 s hold time, so that anything faster than the hold
//! time is BFD's doing.
//!
//! Needs root and the Debian packages iproute2, bird2 and frr; fails (never
//! skips) when one is missing.

// Helpers of an integration test may panic: that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cluster;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use cluster::{Cluster, Peering, lb_service, peers_config, v4, v6};
use ferrolb_e2e::lab::netns;
use ferrolb_e2e::lab::topology::Host;
use ferrolb_e2e::routers::{self, Router, RouterKind};
use ipnet::IpNet;

/// How long sessions and routes may take to appear.
const SESSION: Duration = Duration::from_secs(40);
/// The hold time: BFD must beat it by far.
const HOLD: Duration = Duration::from_secs(90);
/// The BFD profile: 100 ms x 3 on both sides, a detection time of 300 ms.
const BFD_INTERVAL_MS: u32 = 100;
const BFD_MULTIPLIER: u8 = 3;
/// A correctness bound, not a speed figure (the benchmark measures): the
/// detection time plus the router's reaction and our polling of its CLI.
const WITHIN_DETECTION: Duration = Duration::from_secs(3);

/// Options of a lab run.
#[derive(Clone, Copy)]
pub struct Options {
    /// Peers and router neighbours with BFD.
    pub bfd: bool,
    /// Peers and router neighbours with graceful restart.
    pub graceful_restart: bool,
}

/// The ConfigMap: two peers (the router's IPv4 and IPv6 addresses), with
/// the BFD profile and graceful restart `opts` asks for.
fn config(router: &Host, opts: Options) -> String {
    peers_config(router, &peering(opts))
}

fn peering(opts: Options) -> Peering {
    Peering {
        hold: HOLD,
        bfd: opts.bfd.then_some((BFD_INTERVAL_MS, BFD_MULTIPLIER)),
        graceful_restart: opts.graceful_restart,
        session_timeout: SESSION,
    }
}

/// A cluster whose three speakers peer with a `kind` router over IPv4 and
/// IPv6; returns once every BGP session (and, with BFD, every BFD session)
/// is up at the router.
pub fn lab(kind: RouterKind, opts: Options) -> (Cluster, Box<dyn Router>, Vec<Host>) {
    Cluster::up_peered(kind, &peering(opts))
}

/// The next hops `router` has for `ip` (none when it has no route).
pub fn next_hops(router: &dyn Router, ip: IpAddr) -> Vec<IpAddr> {
    let prefix = IpNet::from(ip);
    router
        .routes()
        .map(|routes| {
            routes
                .into_iter()
                .find(|r| r.prefix == prefix)
                .map(|r| r.next_hops)
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Waits until `router` routes `ip` over exactly `want`.
fn wait_next_hops(router: &dyn Router, ip: IpAddr, want: &[IpAddr]) {
    let mut want = want.to_vec();
    want.sort();
    routers::wait_route(router, IpNet::from(ip), SESSION, |r| r.next_hops == want)
        .unwrap_or_else(|e| panic!("{} routes {ip} via {want:?}: {e}", router.kind()));
}

/// A Cluster-policy Service `web` with one ready endpoint: its IPv4 address.
fn web(cluster: &Cluster, nodes: &[Host]) -> IpAddr {
    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &[(nodes[0].name.as_str(), true)]);
    cluster
        .wait_ips("web", 1)
        .into_iter()
        .find(IpAddr::is_ipv4)
        .expect("an IPv4 address")
}

/// Node 2 cut off the LAN: the router drops its next hop within the BFD
/// detection time, not the 90 s hold time; node 1's speaker SIGKILLed
/// likewise; both BFD state metrics are exported.
fn bfd_failover(kind: RouterKind) {
    let opts = Options {
        bfd: true,
        graceful_restart: false,
    };
    let (mut cluster, router, nodes) = lab(kind, opts);
    let ip = web(&cluster, &nodes);
    let all: Vec<IpAddr> = nodes.iter().map(v4).collect();
    wait_next_hops(router.as_ref(), ip, &all);

    let metrics = cluster.metrics(&nodes[0].name).expect("metrics");
    let peer = format!(
        "peer=\"{}\"",
        cluster.lab.topology().router(kind).unwrap().ipv4
    );
    for series in ["metallb_bfd_session_up{", "ferrolb_bfd_session_state{"] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(series) && l.contains(&peer))
            .unwrap_or_else(|| panic!("{series} for {peer} missing in\n{metrics}"));
        let want = if series.starts_with("metallb") {
            " 1"
        } else {
            " 3"
        };
        assert!(line.ends_with(want), "{line}: BFD Up");
    }

    let started = Instant::now();
    cluster.set_node_link(&nodes[2].name, false);
    wait_next_hops(router.as_ref(), ip, &all[..2]);
    let took = started.elapsed();
    eprintln!("{kind}: a cut node's next hop gone after {took:?} (BFD 100 ms x 3, hold {HOLD:?})");
    assert!(
        took < WITHIN_DETECTION,
        "{kind}: next hop gone after {took:?}: not BFD's detection but something slower"
    );

    let started = Instant::now();
    cluster.kill_speaker(&nodes[1].name);
    wait_next_hops(router.as_ref(), ip, &all[..1]);
    let took = started.elapsed();
    eprintln!("{kind}: a SIGKILLed speaker's next hop gone after {took:?}");
    assert!(took < WITHIN_DETECTION, "{kind}: gone after {took:?}");

    // The cut node comes back: BFD Up again, then BGP, then its next hop.
    cluster.set_node_link(&nodes[2].name, true);
    routers::wait_bfd_up(router.as_ref(), v4(&nodes[2]), SESSION)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.speaker_log(&nodes[2].name)));
    wait_next_hops(router.as_ref(), ip, &[all[0], all[2]]);
}

#[test]
fn bird_drops_a_cut_node_within_the_bfd_detection_time() {
    bfd_failover(RouterKind::Bird);
}

#[test]
fn frr_drops_a_cut_node_within_the_bfd_detection_time() {
    bfd_failover(RouterKind::Frr);
}

/// The notes of the `bfdSessionDown` Warning Events on Node `node`.
fn bfd_down_events(cluster: &Cluster, node: &str) -> Vec<String> {
    cluster.event_notes(|e| {
        e.reason.as_deref() == Some("bfdSessionDown")
            && e.type_.as_deref() == Some("Warning")
            && e.regarding.as_ref().is_some_and(|r| {
                // kubectl describe node matches kind, name and uid.
                r.kind.as_deref() == Some("Node")
                    && r.name.as_deref() == Some(node)
                    && r.uid.is_some()
                    && r.namespace.is_none()
            })
    })
}

/// The router cut off the LAN: every node's BFD sessions fail, and each
/// node gets a Warning Event naming the peer; the metrics count the
/// change; with the router back, BFD and BGP come back.
#[test]
fn a_failed_bfd_session_records_an_event_on_the_node() {
    let kind = RouterKind::Bird;
    let opts = Options {
        bfd: true,
        graceful_restart: false,
    };
    let (cluster, router, nodes) = lab(kind, opts);
    let router_host = cluster.lab.topology().router(kind).unwrap().clone();
    let lan = cluster.lab.topology().lan_netns.clone();
    let link = |state: &str| {
        netns::ip_batch(
            Some(&lan),
            &[format!("link set dev {} {state}", router_host.port)],
        )
        .unwrap_or_else(|e| panic!("router link {state}: {e}"));
    };
    link("down");
    for node in &nodes {
        let notes = cluster
            .wait_for(&format!("a bfdSessionDown Event on {}", node.name), || {
                let notes = bfd_down_events(&cluster, &node.name);
                Ok((notes.len() >= 2).then_some(notes))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        for address in [router_host.ipv4.to_string(), router_host.ipv6.to_string()] {
            assert!(
                notes.iter().any(|n| n.contains(&address)),
                "{}: no Event names {address}: {notes:?}",
                node.name
            );
        }
        let metrics = cluster.metrics(&node.name).expect("metrics");
        let peer = format!("peer=\"{}\"", router_host.ipv4);
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("metallb_bfd_session_down_events_total{")
                    && l.contains(&peer)
                    && l.ends_with(" 1")),
            "one down event counted:\n{metrics}"
        );
    }
    link("up");
    for node in &nodes {
        for address in [v4(node), v6(node)] {
            routers::wait_bfd_up(router.as_ref(), address, SESSION)
                .unwrap_or_else(|e| panic!("{e}"));
            routers::wait_established(router.as_ref(), address, SESSION)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// A changed BFD profile is applied to the running BFD sessions (a poll
/// sequence) without restarting BGP: the speakers log the reconfiguration
/// and no session stop, the router keeps every next hop and BFD stays Up.
#[test]
fn a_changed_bfd_profile_reconfigures_bfd_without_restarting_bgp() {
    let kind = RouterKind::Bird;
    let opts = Options {
        bfd: true,
        graceful_restart: false,
    };
    let (mut cluster, router, nodes) = lab(kind, opts);
    let router_host = cluster.lab.topology().router(kind).unwrap().clone();
    let ip = web(&cluster, &nodes);
    let all: Vec<IpAddr> = nodes.iter().map(v4).collect();
    wait_next_hops(router.as_ref(), ip, &all);
    let slower = config(&router_host, opts).replace(
        &format!("receive-interval: {BFD_INTERVAL_MS}"),
        "receive-interval: 200",
    );
    let cluster_ref = &cluster;
    let (polls, missing) = polls_missing(
        router.as_ref(),
        ip,
        &all,
        || cluster_ref.apply_config(&slower),
        Duration::from_secs(3),
    );
    assert_eq!(missing, 0, "{missing} of {polls} polls missed a next hop");
    for node in &nodes {
        let log = cluster.speaker_log(&node.name);
        assert_eq!(
            log.matches("reconfiguring BFD session").count(),
            2,
            "{}: both BFD sessions reconfigured:\n{log}",
            node.name
        );
        assert!(
            !log.contains("stopping BGP session"),
            "{}: BGP restarted:\n{log}",
            node.name
        );
        for address in [v4(node), v6(node)] {
            routers::wait_bfd_up(router.as_ref(), address, SESSION)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// Every 20 ms while `during` runs, whether `router` still routes `ip` over
/// every one of `want`: returns how many polls saw fewer next hops.
fn polls_missing(
    router: &dyn Router,
    ip: IpAddr,
    want: &[IpAddr],
    during: impl FnOnce() + Send,
    then_for: Duration,
) -> (usize, usize) {
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut polls, mut missing) = (0, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            during();
            std::thread::sleep(then_for);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let hops = next_hops(router, ip);
            polls += 1;
            if !want.iter().all(|h| hops.contains(h)) {
                missing += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (polls, missing)
}

/// A speaker restarted (SIGTERM, then started again) under graceful
/// restart: the router keeps its next hop all along (no withdrawal), and
/// the session is back afterwards with the routes refreshed.
fn graceful_restart_keeps_routes(kind: RouterKind, bfd: bool) {
    let opts = Options {
        bfd,
        graceful_restart: true,
    };
    let (mut cluster, router, nodes) = lab(kind, opts);
    let ip = web(&cluster, &nodes);
    let all: Vec<IpAddr> = nodes.iter().map(v4).collect();
    wait_next_hops(router.as_ref(), ip, &all);
    let node = nodes[1].name.clone();
    let address = v4(&nodes[1]);
    let cluster_ref = &mut cluster;
    let (polls, missing) = polls_missing(
        router.as_ref(),
        ip,
        &all,
        || {
            cluster_ref.stop_speaker(&node);
            cluster_ref.start_speaker(&node);
        },
        Duration::from_secs(1),
    );
    routers::wait_established(router.as_ref(), address, SESSION)
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.speaker_log(&node)));
    let (after, missing_after) =
        polls_missing(router.as_ref(), ip, &all, || {}, Duration::from_secs(3));
    eprintln!(
        "{kind} (bfd {bfd}): {missing} of {polls} polls during the restart and {missing_after} of {after} after it saw a next hop missing"
    );
    assert_eq!(
        missing, 0,
        "{kind}: routes withdrawn during a graceful restart"
    );
    assert_eq!(
        missing_after, 0,
        "{kind}: routes withdrawn after End-of-RIB"
    );
    wait_next_hops(router.as_ref(), ip, &all);
}

#[test]
fn bird_keeps_the_routes_of_a_gracefully_restarting_speaker() {
    graceful_restart_keeps_routes(RouterKind::Bird, false);
}

#[test]
fn frr_keeps_the_routes_of_a_gracefully_restarting_speaker() {
    graceful_restart_keeps_routes(RouterKind::Frr, false);
}

#[test]
fn bird_keeps_the_routes_of_a_gracefully_restarting_speaker_with_bfd() {
    graceful_restart_keeps_routes(RouterKind::Bird, true);
}

#[test]
fn frr_keeps_the_routes_of_a_gracefully_restarting_speaker_with_bfd() {
    graceful_restart_keeps_routes(RouterKind::Frr, true);
}
