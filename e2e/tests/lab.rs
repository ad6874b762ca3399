//! The lab itself: topology, kube-proxy stand-in, routers, API objects, leftovers.
//! Needs root and the Debian packages iproute2, arping, ndisc6, bird2, frr, gobgpd; fails
//! (never skips) when they are missing.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrolb_e2e::lab::leftovers;
use ferrolb_e2e::lab::netns;
use ferrolb_e2e::lab::topology::{Host, SERVICE_V4, SERVICE_V6};
use ferrolb_e2e::lab::{ApiServer, Lab, LabConfig};
use ferrolb_e2e::probes::NeighState;
use ferrolb_e2e::routers::{self, Neighbor, RouterConfig, RouterKind};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;

const TIMEOUT: Duration = Duration::from_secs(5);

fn small_lab() -> Lab {
    Lab::up(&LabConfig {
        routers: false,
        control_plane: None,
        ..LabConfig::default()
    })
    .expect("lab up (needs root and iproute2)")
}

fn service_ips() -> [IpAddr; 2] {
    [
        IpAddr::V4(SERVICE_V4.hosts().nth(9).expect("a v4 Service IP")),
        IpAddr::V6(SERVICE_V6.hosts().nth(16).expect("a v6 Service IP")),
    ]
}

#[test]
fn client_reaches_every_node_over_ipv4_and_ipv6() {
    let lab = small_lab();
    let probe = lab.client_probe();
    for node in lab.nodes() {
        for ip in node.ips() {
            let name = probe
                .tcp_name(SocketAddr::new(ip, lab.responder_port()), TIMEOUT)
                .unwrap_or_else(|e| panic!("TCP to {} at {ip}: {e}", node.name));
            assert_eq!(name, node.name, "responder at {ip}");
            let r = probe.resolve(ip, TIMEOUT).unwrap();
            assert_eq!(
                r.mac,
                Some(node.mac),
                "{ip} resolves to {}'s MAC",
                node.name
            );
            assert_eq!(r.owner.as_deref(), Some(node.name.as_str()));
        }
    }
}

#[test]
fn neighbour_watch_follows_an_ip_moving_between_nodes() {
    let lab = small_lab();
    let (node1, node2) = (lab.nodes()[0].clone(), lab.nodes()[1].clone());
    let moving: IpAddr = "192.168.4.50".parse().unwrap();
    let ip = |ns: &str, args: &[&str]| {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        netns::output(None, "ip", &all).unwrap();
    };
    ip(
        &node1.netns,
        &["addr", "add", "192.168.4.50/32", "dev", "eth0"],
    );
    let probe = lab.client_probe();
    let watch = probe
        .watch(moving, Duration::from_millis(10), true)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The address moves to node2, which announces it with a gratuitous ARP.
    ip(
        &node1.netns,
        &["addr", "del", "192.168.4.50/32", "dev", "eth0"],
    );
    ip(
        &node2.netns,
        &["addr", "add", "192.168.4.50/32", "dev", "eth0"],
    );
    let garp = Command::new("ip")
        .args(["netns", "exec", &node2.netns, "arping", "-U", "-i", "eth0"])
        .args(["-S", "192.168.4.50", "-c", "1", "-w", "1", "192.168.4.50"])
        .output()
        .expect("run arping (apt-get install arping)");
    assert!(garp.status.code().is_some(), "arping: {garp:?}");
    std::thread::sleep(Duration::from_millis(300));
    let samples = watch.stop().unwrap();

    let owners: Vec<Option<String>> = samples.iter().map(|s| s.resolution.owner.clone()).collect();
    assert!(
        samples.windows(2).all(|w| w[0].at <= w[1].at),
        "samples in time order"
    );
    let first_node2 = owners
        .iter()
        .position(|o| o.as_deref() == Some("node2"))
        .expect("moved to node2");
    assert!(
        owners[..first_node2]
            .iter()
            .any(|o| o.as_deref() == Some("node1")),
        "{owners:?}"
    );
    assert!(
        owners[first_node2..]
            .iter()
            .all(|o| o.as_deref() == Some("node2")),
        "{owners:?}"
    );
}

#[test]
fn node_kernel_does_not_answer_arp_or_ndp_for_service_ips() {
    let lab = small_lab();
    let probe = lab.client_probe();
    // The probes work: a node's own address is answered.
    let node1: &Host = &lab.nodes()[0];
    let answers = probe
        .solicit(IpAddr::V4(node1.ipv4), Duration::from_secs(1))
        .unwrap();
    assert_eq!(answers, vec![(node1.mac, Some("node1".to_string()))]);

    // Resolve both Service IPs at once: each unanswered resolution takes about 3 s.
    let workers: Vec<_> = service_ips()
        .into_iter()
        .map(|ip| {
            let probe = probe.clone();
            std::thread::spawn(move || (ip, probe.resolve(ip, Duration::from_secs(10))))
        })
        .collect();
    for w in workers {
        let (ip, r) = w.join().expect("resolver thread");
        let r = r.unwrap();
        assert_eq!(
            r.state,
            NeighState::Failed,
            "no node kernel may answer for Service IP {ip}: {r:?}"
        );
        assert_eq!(r.mac, None);
    }
    for ip in service_ips() {
        let answers = probe.solicit(ip, Duration::from_secs(1)).unwrap();
        assert!(answers.is_empty(), "{ip} answered by {answers:?}");
    }

    // The kube-proxy stand-in: inside each node, the Service IPs are local and reach its
    // responder.
    for node in lab.nodes() {
        let inside = lab.probe_from(&node.netns);
        for ip in service_ips() {
            let name = inside
                .tcp_name(SocketAddr::new(ip, lab.responder_port()), TIMEOUT)
                .unwrap();
            assert_eq!(name, node.name, "Service IP {ip} inside {}", node.name);
        }
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("a prefix")
}

#[test]
fn bird_frr_and_gobgp_exchange_routes_with_each_other() {
    let lab = Lab::up(&LabConfig {
        nodes: 1,
        control_plane: None,
        ..LabConfig::default()
    })
    .expect("lab up");
    let t = lab.topology().clone();
    let host = |kind| t.router(kind).expect("router namespace").clone();
    let (bird_h, frr_h, gobgp_h) = (
        host(RouterKind::Bird),
        host(RouterKind::Frr),
        host(RouterKind::Gobgp),
    );
    let v4 = |h: &Host| IpAddr::V4(h.ipv4);
    let v6 = |h: &Host| IpAddr::V6(h.ipv6);
    let (bird_as, frr_as, gobgp_as) = (64501, 64502, 64503);

    // BIRD <-> FRR over IPv4 with TCP MD5; FRR <-> GoBGP over IPv6 and IPv4 (GoBGP passive on
    // v4); GoBGP <-> BIRD over IPv4 (BIRD multihop). BIRD and GoBGP both originate
    // 10.9.0.0/24, so FRR sees it over two paths (ECMP).
    let bird = lab
        .start_router(
            RouterKind::Bird,
            RouterConfig::new(bird_as, bird_h.ipv4)
                .neighbor(Neighbor::new(v4(&frr_h), frr_as).password("lab-secret"))
                .neighbor(Neighbor::new(v4(&gobgp_h), gobgp_as).multihop(2))
                .originate(net("10.1.0.0/24"))
                .originate(net("10.9.0.0/24")),
        )
        .expect("start BIRD");
    let mut frr = lab
        .start_router(
            RouterKind::Frr,
            RouterConfig::new(frr_as, frr_h.ipv4)
                .neighbor(Neighbor::new(v4(&bird_h), bird_as).password("lab-secret"))
                .neighbor(Neighbor::new(v6(&gobgp_h), gobgp_as))
                .neighbor(Neighbor::new(v4(&gobgp_h), gobgp_as))
                .originate(net("fd00:a2::/64")),
        )
        .expect("start FRR");
    let mut gobgp = lab
        .start_router(
            RouterKind::Gobgp,
            RouterConfig::new(gobgp_as, gobgp_h.ipv4)
                .neighbor(Neighbor::new(v6(&frr_h), frr_as))
                .neighbor(Neighbor::new(v4(&frr_h), frr_as).passive())
                .neighbor(Neighbor::new(v4(&bird_h), bird_as))
                .originate(net("10.3.0.0/24"))
                .originate(net("10.9.0.0/24")),
        )
        .expect("start GoBGP");

    let session = Duration::from_secs(30);
    routers::wait_established(bird.as_ref(), v4(&frr_h), session).unwrap();
    routers::wait_established(frr.as_ref(), v6(&gobgp_h), session).unwrap();
    routers::wait_established(gobgp.as_ref(), v4(&bird_h), session).unwrap();

    // Each driver reads a route learned straight from its neighbour as data.
    let cases = [
        (frr.as_ref(), "10.1.0.0/24", v4(&bird_h), vec![bird_as]),
        (gobgp.as_ref(), "fd00:a2::/64", v6(&frr_h), vec![frr_as]),
        (bird.as_ref(), "10.3.0.0/24", v4(&gobgp_h), vec![gobgp_as]),
    ];
    for (router, prefix, next_hop, as_path) in cases {
        let route = routers::wait_route(router, net(prefix), session, |r| r.as_path == as_path)
            .unwrap_or_else(|e| panic!("{} learns {prefix}: {e}", router.kind()));
        assert!(
            route.next_hops.contains(&next_hop),
            "{}: {route:?}",
            router.kind()
        );
    }

    // Multipath: FRR keeps both next hops of 10.9.0.0/24.
    let ecmp = routers::wait_route(frr.as_ref(), net("10.9.0.0/24"), session, |r| {
        r.next_hops.len() == 2
    })
    .unwrap();
    assert_eq!(ecmp.next_hops, vec![v4(&bird_h), v4(&gobgp_h)]);

    // Originating at run time, and a restart: GoBGP's session with BIRD comes back, and so do
    // its routes.
    frr.originate(net("fd00:a9::/64")).unwrap();
    routers::wait_route(gobgp.as_ref(), net("fd00:a9::/64"), session, |r| {
        r.next_hops == vec![v6(&frr_h)]
    })
    .unwrap();
    gobgp.stop().unwrap();
    routers::wait_for("BIRD to withdraw 10.3.0.0/24", session, || {
        Ok((!bird
            .routes()?
            .iter()
            .any(|r| r.prefix == net("10.3.0.0/24")))
        .then_some(()))
    })
    .unwrap();
    gobgp.start().unwrap();
    routers::wait_established(bird.as_ref(), v4(&gobgp_h), session).unwrap();
    routers::wait_route(bird.as_ref(), net("10.3.0.0/24"), session, |r| {
        r.as_path == vec![gobgp_as]
    })
    .unwrap();
    let sessions = gobgp.sessions().unwrap();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
}

#[test]
fn api_server_lists_nodes_and_speaker_pods() {
    let lab = Lab::up(&LabConfig {
        routers: false,
        control_plane: Some(ApiServer::Test),
        ..LabConfig::default()
    })
    .expect("lab up with the test API server");
    let cp = lab.control_plane().expect("a control plane");
    let (nodes, pods) = cp
        .run(|client| async move {
            let nodes = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await?;
            let pods = Api::<Pod>::namespaced(client, "metallb-system")
                .list(&ListParams::default().labels("app=metallb,component=speaker"))
                .await?;
            Ok::<_, kube::Error>((nodes.items, pods.items))
        })
        .unwrap()
        .unwrap();
    let mut names: Vec<String> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["node1", "node2", "node3"]);
    for node in lab.nodes() {
        let n = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(&node.name))
            .unwrap();
        let addresses = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.clone())
            .unwrap_or_default();
        assert!(
            addresses
                .iter()
                .any(|a| a.type_ == "InternalIP" && a.address == node.ipv4.to_string()),
            "{addresses:?}"
        );
        let pod = pods
            .iter()
            .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&node.name))
            .unwrap_or_else(|| panic!("no speaker Pod on {}", node.name));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(
            status.pod_ip.as_deref(),
            Some(node.ipv4.to_string().as_str())
        );
    }
}

#[test]
fn real_cluster_mode_runs_the_given_command_in_the_control_plane() {
    // The test API server started through the real-cluster path: a shell command that gets
    // APISERVER_ADDR/APISERVER_PORT and the lab's own kubeconfig path, and writes the
    // kubeconfig itself, late (after the server started), as serve.sh of the real control
    // plane does: the lab must wait for the file rather than read it at once.
    let kubeconfig = ferrolb_e2e::lab::api::plain_kubeconfig("http://192.168.4.2:6443");
    let command = format!(
        "{} --listen \"$APISERVER_ADDR:$APISERVER_PORT\" & sleep 1; printf '%s' '{kubeconfig}' > \"$FERROLB_E2E_KUBECONFIG.tmp\"; mv \"$FERROLB_E2E_KUBECONFIG.tmp\" \"$FERROLB_E2E_KUBECONFIG\"; wait",
        ferrolb_e2e::lab::binaries::locate("ferrolb-test-apiserver")
            .expect("the test API server binary (cargo build --workspace --bins)")
            .display()
    );
    let config = LabConfig {
        nodes: 2,
        routers: false,
        control_plane: Some(ApiServer::External {
            command,
            kubeconfig: None,
        }),
        ..LabConfig::default()
    };
    // Two labs at once: each has its own kubeconfig path in its own run folder.
    let lab = Lab::up(&config).expect("lab up in real-cluster mode");
    let other = Lab::up(&config).expect("a second lab in real-cluster mode");
    assert_eq!(
        lab.kubeconfig(),
        Some(lab.run_dir().join("kubeconfig").as_path())
    );
    assert_ne!(lab.kubeconfig(), other.kubeconfig());
    let pods = lab
        .control_plane()
        .unwrap()
        .run(|client| async move {
            Api::<Pod>::namespaced(client, "metallb-system")
                .list(&ListParams::default())
                .await
        })
        .unwrap()
        .unwrap();
    assert_eq!(pods.items.len(), 2);
}

/// A `lab hold` child process (a lab owned by that process); killed when dropped, so that a
/// failing test leaves no holder behind (its lab is then a leftover the next run removes).
struct Holder {
    child: std::process::Child,
    prefix: String,
}

impl Holder {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lab"))
            .args(["hold", "--nodes", "1", "--no-routers", "--no-control-plane"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lab hold");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read lab hold's output");
        let prefix = line
            .strip_prefix("lab ")
            .and_then(|l| l.strip_suffix(" is up\n"))
            .unwrap_or_else(|| panic!("unexpected lab hold output {line:?}"))
            .to_string();
        Self { child, prefix }
    }

    fn signal(&mut self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signal lab hold");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn namespaces_of(prefix: &str) -> Vec<String> {
    netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

/// Whether `pid` runs (a zombie waiting for init to reap it does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn leftovers_of_a_killed_run_are_removed_and_live_labs_are_kept() {
    let mut killed = Holder::start();
    let mut alive = Holder::start();
    let (dead_prefix, live_prefix) = (killed.prefix.clone(), alive.prefix.clone());
    let dead_namespaces = namespaces_of(&dead_prefix);
    assert_eq!(
        dead_namespaces.len(),
        4,
        "lan, node1, client, cp: {dead_namespaces:?}"
    );
    let orphans: Vec<u32> = dead_namespaces
        .iter()
        .flat_map(|n| netns::pids(n).unwrap())
        .collect();
    assert!(!orphans.is_empty(), "the held lab runs a responder");

    killed.signal(rustix::process::Signal::KILL);
    killed.child.wait().unwrap();
    // Killed without cleanup: namespaces and the responder outlive their owner.
    assert_eq!(namespaces_of(&dead_prefix), dead_namespaces);
    assert!(orphans.iter().all(|p| running(*p)));

    // The next run cleans up.
    let lab = small_lab();
    assert!(
        namespaces_of(&dead_prefix).is_empty(),
        "{:?}",
        namespaces_of(&dead_prefix)
    );
    assert!(!leftovers::run_dir(&dead_prefix).exists());
    assert!(
        !orphans.iter().any(|p| running(*p)),
        "orphans {orphans:?} still run"
    );
    assert_eq!(
        namespaces_of(&live_prefix).len(),
        4,
        "a live owner's lab is kept"
    );
    drop(lab);

    // A graceful stop of the holder removes its lab itself.
    alive.signal(rustix::process::Signal::TERM);
    assert!(alive.child.wait().unwrap().success());
    assert!(namespaces_of(&live_prefix).is_empty());
}
