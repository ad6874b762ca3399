//! Native BGP mode end to end: the real controller, a real speaker on each
//! of the three nodes and a real router (BIRD, FRR, GoBGP) in the lab's
//! router namespace. What the router learns is read from the router itself.
//!
//! Needs root and the Debian packages iproute2, bird2, frr and gobgpd; fails
//! (never skips) when one is missing.

// Helpers of an integration test may panic: that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cluster;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use cluster::{
    APPS, BGP_POOL, Cluster, EXCLUDE_LABEL, NAMESPACE, NODE_ASN, Peering, ROUTER_ASN, lb_service,
    summary, v4, v6,
};
use ferrolb_e2e::lab::topology::Host;
use ferrolb_e2e::routers::{self, Neighbor, Route, Router, RouterConfig, RouterKind};
use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

/// How long sessions and routes may take to appear.
const SESSION: Duration = Duration::from_secs(30);
/// The hold time configured on the peers: a SIGTERMed speaker's next hop
/// must go well before it (Cease), not at its expiry.
const HOLD: Duration = Duration::from_secs(90);
/// What "at once" means for a withdrawal after SIGTERM.
const AT_ONCE: Duration = Duration::from_secs(3);

/// The config before the router's address is known.
const POOL_ONLY: &str = BGP_POOL;

/// Plain BGP peering with hold time `hold`.
fn peering(hold: Duration) -> Peering {
    Peering {
        hold,
        bfd: None,
        graceful_restart: false,
        session_timeout: SESSION,
    }
}

/// The host route of `ip`.
fn host_route(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Waits until `router` routes `ip` over exactly `next_hops`.
fn wait_next_hops(router: &dyn Router, ip: IpAddr, next_hops: &[IpAddr]) -> Route {
    let mut want = next_hops.to_vec();
    want.sort();
    routers::wait_route(router, host_route(ip), SESSION, |r| r.next_hops == want)
        .unwrap_or_else(|e| panic!("{} routes {ip} via {want:?}: {e}", router.kind()))
}

/// Waits until `router` has no route to `ip`.
fn wait_withdrawn(router: &dyn Router, ip: IpAddr) {
    let prefix = host_route(ip);
    routers::wait_for(
        &format!("{} to withdraw {prefix}", router.kind()),
        SESSION,
        || Ok((!router.routes()?.iter().any(|r| r.prefix == prefix)).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", router.logs()));
}

/// The lab's router host of `kind`.
fn router_host(cluster: &Cluster, kind: RouterKind) -> Host {
    cluster
        .lab
        .topology()
        .router(kind)
        .expect("the lab has router namespaces")
        .clone()
}

/// A cluster whose three speakers peer with a `kind` router over IPv4 and
/// IPv6 with `hold` as hold time; returns once all six sessions are up.
fn bgp_lab(kind: RouterKind, hold: Duration) -> (Cluster, Box<dyn Router>, Vec<Host>) {
    Cluster::up_peered(kind, &peering(hold))
}

/// The whole BGP scenario against one router kind.
fn three_speakers_announce_to(kind: RouterKind) {
    let (mut cluster, mut router, nodes) = bgp_lab(kind, HOLD);
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let all_v4: Vec<IpAddr> = nodes.iter().map(v4).collect();
    let all_v6: Vec<IpAddr> = nodes.iter().map(v6).collect();

    // Cluster policy: every node is a next hop (ECMP), one Event per node.
    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &[(names[0].as_str(), true)]);
    let web = cluster.wait_ips("web", 1)[0];
    let route = wait_next_hops(router.as_ref(), web, &all_v4);
    assert_eq!(
        route.as_path,
        vec![NODE_ASN],
        "eBGP: the nodes' AS: {route:?}"
    );
    cluster
        .wait_for("a nodeAssigned Event per node", || {
            let notes: BTreeSet<String> = cluster
                .node_assigned_notes("web")
                .into_iter()
                .filter(|n| n.contains("with protocol \"bgp\""))
                .collect();
            Ok((notes.len() == names.len()).then_some(notes))
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // Local policy: only the nodes with a ready endpoint, following the endpoints.
    let mut local = lb_service("local", &[80]);
    local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    cluster.create_service(local);
    cluster.set_endpoints(
        "local",
        &[(names[0].as_str(), true), (names[1].as_str(), false)],
    );
    let local_ip = cluster.wait_ips("local", 1)[0];
    wait_next_hops(router.as_ref(), local_ip, &[v4(&nodes[0])]);
    cluster.set_endpoints(
        "local",
        &[(names[0].as_str(), false), (names[1].as_str(), true)],
    );
    wait_next_hops(router.as_ref(), local_ip, &[v4(&nodes[1])]);
    cluster.set_endpoints("local", &[(names[1].as_str(), false)]);
    wait_withdrawn(router.as_ref(), local_ip);

    // IPv6 Service over the IPv6 sessions.
    let mut v6_svc = lb_service("v6", &[80]);
    let spec = v6_svc.spec.as_mut().unwrap();
    spec.ip_families = Some(vec!["IPv6".into()]);
    spec.ip_family_policy = Some("SingleStack".into());
    cluster.create_service(v6_svc);
    cluster.set_endpoints("v6", &[(names[2].as_str(), true)]);
    let v6_ip = cluster.wait_ips("v6", 1)[0];
    assert!(v6_ip.is_ipv6(), "{v6_ip}");
    wait_next_hops(router.as_ref(), v6_ip, &all_v6);

    // Node labels are re-read: an excluded node withdraws, then comes back.
    cluster.set_node_label(&names[1], EXCLUDE_LABEL, Some(""));
    wait_next_hops(router.as_ref(), web, &[v4(&nodes[0]), v4(&nodes[2])]);
    cluster.set_node_label(&names[1], EXCLUDE_LABEL, None);
    wait_next_hops(router.as_ref(), web, &all_v4);

    // The router restarted under the speakers: they reconnect and send the
    // whole table again.
    router
        .stop()
        .unwrap_or_else(|e| panic!("stop {kind:?}: {e}"));
    router
        .start()
        .unwrap_or_else(|e| panic!("start {kind:?} again: {e}"));
    wait_next_hops(router.as_ref(), web, &all_v4);
    wait_next_hops(router.as_ref(), v6_ip, &all_v6);

    // Service deletion withdraws its route.
    cluster.delete_service("local");
    cluster.create_service(lb_service("gone", &[80]));
    cluster.set_endpoints("gone", &[(names[0].as_str(), true)]);
    let gone = cluster.wait_ips("gone", 1)[0];
    wait_next_hops(router.as_ref(), gone, &all_v4);
    cluster.delete_service("gone");
    wait_withdrawn(router.as_ref(), gone);

    // SIGTERM: the speaker says Cease and the router drops its next hops at once.
    let stopped = &nodes[2];
    let started = Instant::now();
    cluster.stop_speaker(&stopped.name);
    let rest_v4: Vec<IpAddr> = all_v4
        .iter()
        .copied()
        .filter(|a| *a != v4(stopped))
        .collect();
    let rest_v6: Vec<IpAddr> = all_v6
        .iter()
        .copied()
        .filter(|a| *a != v6(stopped))
        .collect();
    wait_next_hops(router.as_ref(), web, &rest_v4);
    wait_next_hops(router.as_ref(), v6_ip, &rest_v6);
    let took = started.elapsed();
    eprintln!("{kind:?}: next hops of a SIGTERMed speaker gone after {took:?}");
    assert!(
        took < AT_ONCE,
        "withdrawal after SIGTERM took {took:?} (hold time {HOLD:?}): no Cease?"
    );
}

#[test]
fn bird_learns_every_service_from_every_eligible_node() {
    three_speakers_announce_to(RouterKind::Bird);
}

#[test]
fn frr_learns_every_service_from_every_eligible_node() {
    three_speakers_announce_to(RouterKind::Frr);
}

#[test]
fn gobgp_learns_every_service_from_every_eligible_node() {
    three_speakers_announce_to(RouterKind::Gobgp);
}

/// A node that vanishes (its link cut: the speaker cannot say Cease) keeps
/// its next hop until the router's hold timer expires, not longer; a
/// SIGKILLed speaker on a live node loses its sessions with its sockets.
/// Every announcing node writes a `ServiceBGPStatus` naming the peers it
/// announces the Service to; the objects follow the endpoints of a Local
/// Service, a SIGKILLed speaker's object is removed by the others, and they
/// go with the Service.
#[test]
fn bgp_status_objects_name_every_announcing_node_and_its_peers() {
    let (mut cluster, router, nodes) = bgp_lab(RouterKind::Bird, HOLD);
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let all_v4: Vec<IpAddr> = nodes.iter().map(v4).collect();
    // ConfigMap peers are named by their index; the IPv4 Service goes to both
    // sessions of each node (IPv4 and IPv6 transport both carry IPv4 unicast).
    let peers: BTreeSet<String> = ["peer0", "peer1"].map(String::from).into();

    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &[(names[0], true)]);
    let web = cluster.wait_ips("web", 1)[0];
    wait_next_hops(router.as_ref(), web, &all_v4);
    cluster.wait_statuses(
        "ServiceBGPStatus",
        Cluster::bgp_statuses,
        "web",
        &names,
        &peers,
    );

    let mut local = lb_service("local", &[80]);
    local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    cluster.create_service(local);
    cluster.set_endpoints("local", &[(names[1], true)]);
    let local_ip = cluster.wait_ips("local", 1)[0];
    wait_next_hops(router.as_ref(), local_ip, &[v4(&nodes[1])]);
    cluster.wait_statuses(
        "ServiceBGPStatus",
        Cluster::bgp_statuses,
        "local",
        &[names[1]],
        &peers,
    );
    cluster.set_endpoints("local", &[(names[2], true)]);
    cluster.wait_statuses(
        "ServiceBGPStatus",
        Cluster::bgp_statuses,
        "local",
        &[names[2]],
        &peers,
    );

    // `ferrolb status` names the three nodes; `status peers` every session.
    let run = cluster.ferrolb(&["status", "web", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let announcers: BTreeSet<&str> = rows[0]["announcers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["node"].as_str().unwrap())
        .collect();
    assert_eq!(announcers, names.iter().copied().collect(), "{rows}");
    let run = cluster.ferrolb(&["status", "peers", "-o", "json"]);
    assert_eq!(run.code, 0, "every session is up: {run:?}");
    let sessions: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        sessions.len(),
        2 * names.len(),
        "two sessions per node: {sessions:?}"
    );
    for s in &sessions {
        assert_eq!(s["state"], "Established", "{s}");
        assert!(
            s["uptime_seconds"].as_f64().is_some_and(|u| u >= 0.0),
            "{s}"
        );
        // The IPv4 Service goes out on each node's IPv4 session; the IPv6
        // session has no IPv4 next hop for it.
        let ipv4_session = !s["peer"].as_str().unwrap().starts_with('[');
        assert!(
            s["prefixes_sent"]
                .as_u64()
                .is_some_and(|n| n >= u64::from(ipv4_session)),
            "{s}"
        );
    }

    cluster.kill_speaker(names[0]);
    cluster.wait_statuses(
        "ServiceBGPStatus",
        Cluster::bgp_statuses,
        "web",
        &names[1..],
        &peers,
    );
    let run = cluster.ferrolb(&["status", "peers"]);
    assert_eq!(run.code, 1, "a node's metrics cannot be read: {run:?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(names[0]) && l.contains("unknown: ")),
        "{run:?}"
    );

    cluster.delete_service("web");
    cluster.wait_statuses(
        "ServiceBGPStatus",
        Cluster::bgp_statuses,
        "web",
        &[],
        &peers,
    );
}

#[test]
fn bird_drops_a_vanished_node_after_the_hold_time() {
    let hold = Duration::from_secs(3);
    let (mut cluster, router, nodes) = bgp_lab(RouterKind::Bird, hold);
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &[(names[0].as_str(), true)]);
    let web = cluster.wait_ips("web", 1)[0];
    let all_v4: Vec<IpAddr> = nodes.iter().map(v4).collect();
    wait_next_hops(router.as_ref(), web, &all_v4);

    let started = Instant::now();
    cluster.set_node_link(&names[2], false);
    wait_next_hops(router.as_ref(), web, &all_v4[..2]);
    let took = started.elapsed();
    eprintln!("Bird: a vanished node's next hop gone after {took:?} (hold time {hold:?})");
    // Keepalives come every hold/3: the last one is at most that old.
    assert!(
        took >= hold * 2 / 3 - Duration::from_millis(100),
        "gone after {took:?}, before the hold time {hold:?} could expire"
    );
    assert!(
        took < hold + Duration::from_secs(2),
        "gone after {took:?}, long after the hold time {hold:?}"
    );

    let started = Instant::now();
    cluster.kill_speaker(&names[1]);
    wait_next_hops(router.as_ref(), web, &all_v4[..1]);
    eprintln!(
        "Bird: a SIGKILLed speaker's next hop gone after {:?}",
        started.elapsed()
    );
}

/// Creates or replaces the `basic-auth` Secret `name` holding `password`.
fn put_password_secret(cluster: &Cluster, name: &str, password: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/basic-auth".to_string()),
        data: Some(
            [(
                "password".to_string(),
                ByteString(password.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    };
    let name = name.to_string();
    cluster.api(move |client| async move {
        let api = Api::<Secret>::namespaced(client, NAMESPACE);
        match api.get_opt(&name).await? {
            Some(old) => {
                let mut new = secret;
                new.metadata.resource_version = old.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &new).await
            }
            None => api.create(&PostParams::default(), &secret).await,
        }
        .map(|_| ())
    });
}

/// A BGPPeer whose TCP MD5 password is in a `basic-auth` Secret: a wrong
/// password keeps every session down; fixing the Secret brings them up
/// (the speakers watch the Secret, no restart).
#[test]
fn bird_md5_password_from_a_basic_auth_secret() {
    let mut cluster = Cluster::up_with_routers(POOL_ONLY);
    let router_host = router_host(&cluster, RouterKind::Bird);
    let nodes = cluster.nodes();
    let mut config = RouterConfig::new(ROUTER_ASN, router_host.ipv4);
    for node in &nodes {
        config = config.neighbor(
            Neighbor::new(v4(node), NODE_ASN)
                .passive()
                .password("right-secret"),
        );
    }
    let router = cluster
        .lab
        .start_router(RouterKind::Bird, config)
        .unwrap_or_else(|e| panic!("start BIRD (Debian package bird2): {e}"));

    put_password_secret(&cluster, "bgp-md5", "wrong-secret");
    let peer = json!({
        "spec": {
            "myASN": NODE_ASN,
            "peerASN": ROUTER_ASN,
            "peerAddress": router_host.ipv4.to_string(),
            "holdTime": "90s",
            "passwordSecret": {"name": "bgp-md5", "namespace": NAMESPACE},
        }
    });
    cluster.api(move |client| async move {
        let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "BGPPeer");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "bgppeers");
        let api = Api::<DynamicObject>::namespaced_with(client, NAMESPACE, &resource);
        let object = DynamicObject::new("md5", &resource).data(peer);
        api.create(&PostParams::default(), &object)
            .await
            .map(|_| ())
    });

    // Every speaker has the peer, with the Secret's (wrong) password.
    assert_wrong_password_keeps_sessions_down(&mut cluster, router.as_ref(), &nodes);

    put_password_secret(&cluster, "bgp-md5", "right-secret");
    wait_sessions(&mut cluster, router.as_ref(), &nodes);
    announce_web(&cluster, router.as_ref(), &nodes);
}

/// Waits until every speaker has started its session, then watches long
/// enough for several connection attempts (1 s backoff, doubling) to fail:
/// with a wrong TCP MD5 password no session may come up.
fn assert_wrong_password_keeps_sessions_down(
    cluster: &mut Cluster,
    router: &dyn Router,
    nodes: &[Host],
) {
    for node in nodes {
        let mut log = String::new();
        routers::wait_for(
            &format!("{} to start the BGP session", node.name),
            SESSION,
            || {
                log = cluster.speaker_log(&node.name);
                Ok(log.contains("starting BGP session").then_some(()))
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nspeaker log:\n{log}"));
    }
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let sessions = router.sessions().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !sessions
                .iter()
                .any(|s| s.state == routers::SessionState::Established),
            "a session came up with the wrong password: {sessions:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Time from a Service's address appearing in its status to the route in
/// BIRD's table, over 20 Services created one after the other (printed;
/// the goal of issue #6 is under 100 ms, the test only fails beyond 2 s).
#[test]
fn bird_route_latency_after_ip_assignment() {
    let (cluster, router, nodes) = bgp_lab(RouterKind::Bird, HOLD);
    let mut samples = Vec::new();
    for i in 0..20 {
        let name = format!("lat{i}");
        cluster.set_endpoints(&name, &[(nodes[0].name.as_str(), true)]);
        cluster.create_service(lb_service(&name, &[80]));
        let ip = routers::wait_for(&format!("an address for {name}"), SESSION, || {
            let name = name.clone();
            let svc = cluster.api(move |client| async move {
                Api::<Service>::namespaced(client, APPS).get(&name).await
            });
            Ok(svc
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .and_then(|i| i.first()?.ip.as_deref()?.parse::<IpAddr>().ok()))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let seen = Instant::now();
        let prefix = host_route(ip);
        loop {
            let routes = router.routes().unwrap_or_else(|e| panic!("{e}"));
            if routes.iter().any(|r| r.prefix == prefix) {
                break;
            }
            assert!(
                seen.elapsed() < Duration::from_secs(2),
                "{prefix} not in BIRD 2 s after {name} got it\n{}",
                router.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        samples.push(seen.elapsed());
    }
    eprintln!(
        "Bird: Service address in status -> route in BIRD: {}",
        summary(&mut samples)
    );
}

/// The pool of the attribute tests: IPv4 only, one advertisement carrying
/// LOCAL_PREF and three communities (a literal, an alias, a large one).
const LOCAL_PREF: u32 = 150;
/// The alias of [`attributes_config`] and the value it stands for.
const ALIAS: (&str, &str) = ("rack7", "64512:7");

/// One IPv4 peer (`router`, AS `peer_asn`) for nodes in AS `my_asn`, and a
/// pool whose advertisement sets LOCAL_PREF and communities.
fn attributes_config(router: &Host, my_asn: u32, peer_asn: u32) -> String {
    format!(
        "peers:
- peer-address: {router}
  peer-asn: {peer_asn}
  my-asn: {my_asn}
bgp-communities:
  {alias}: {value}
address-pools:
- name: bgp
  protocol: bgp
  addresses:
  - 192.168.5.64/27
  bgp-advertisements:
  - localpref: {LOCAL_PREF}
    communities: [\"64512:100\", {alias}, \"large:64512:1:2\"]
",
        router = router.ipv4,
        alias = ALIAS.0,
        value = ALIAS.1,
    )
}

/// A cluster whose speakers (AS `my_asn`) peer over IPv4 with a `kind`
/// router (AS `router_asn`, MD5 `password` if any) and are configured by
/// `config`; the sessions may still be coming up.
fn ipv4_lab(
    kind: RouterKind,
    router_asn: u32,
    my_asn: u32,
    password: Option<&str>,
    config: impl Fn(&Host) -> String,
) -> (Cluster, Box<dyn Router>, Vec<Host>) {
    let cluster = Cluster::up_with_routers(POOL_ONLY);
    let router_host = router_host(&cluster, kind);
    let nodes = cluster.nodes();
    let mut router_config = RouterConfig::new(router_asn, router_host.ipv4);
    for node in &nodes {
        let mut neighbor = Neighbor::new(v4(node), my_asn).passive();
        if let Some(password) = password {
            neighbor = neighbor.password(password);
        }
        router_config = router_config.neighbor(neighbor);
    }
    let router = cluster
        .lab
        .start_router(kind, router_config)
        .unwrap_or_else(|e| panic!("start {kind:?} (its Debian package must be installed): {e}"));
    cluster.apply_config(&config(&router_host));
    (cluster, router, nodes)
}

/// Waits until every node's IPv4 session with `router` is Established.
fn wait_sessions(cluster: &mut Cluster, router: &dyn Router, nodes: &[Host]) {
    for node in nodes {
        routers::wait_established(router, v4(node), SESSION)
            .unwrap_or_else(|e| panic!("{e}\nspeaker log:\n{}", cluster.speaker_log(&node.name)));
    }
}

/// The communities the router must read back, in the router's spelling.
fn expected_communities() -> BTreeSet<String> {
    ["64512:100", ALIAS.1, "64512:1:2"]
        .map(str::to_string)
        .into()
}

/// Creates a Cluster-policy Service and waits until `router` routes it over
/// every node; returns the route.
fn announce_web(cluster: &Cluster, router: &dyn Router, nodes: &[Host]) -> Route {
    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &[(nodes[0].name.as_str(), true)]);
    let web = cluster.wait_ips("web", 1)[0];
    wait_next_hops(router, web, &nodes.iter().map(v4).collect::<Vec<_>>())
}

/// iBGP (my-asn == peer-asn): FRR reads back the advertisement's LOCAL_PREF
/// and its literal, aliased and large communities on every node's path; the
/// AS path is empty (nobody prepends inside the AS).
#[test]
fn frr_ibgp_reads_local_pref_and_communities_from_the_advertisement() {
    let (mut cluster, router, nodes) = ipv4_lab(RouterKind::Frr, NODE_ASN, NODE_ASN, None, |r| {
        attributes_config(r, NODE_ASN, NODE_ASN)
    });
    wait_sessions(&mut cluster, router.as_ref(), &nodes);
    let route = announce_web(&cluster, router.as_ref(), &nodes);
    assert_eq!(route.paths.len(), nodes.len(), "a path per node: {route:?}");
    for path in &route.paths {
        assert_eq!(
            path.local_pref,
            Some(LOCAL_PREF),
            "iBGP LOCAL_PREF: {path:?}"
        );
        let got: BTreeSet<String> = path.communities.iter().cloned().collect();
        assert_eq!(got, expected_communities(), "communities: {path:?}");
        assert!(path.as_path.is_empty(), "iBGP AS path: {path:?}");
    }
}

/// eBGP: the router sees the AS path `[my-asn]` and the communities
/// (LOCAL_PREF is an iBGP attribute: not sent to an external peer).
#[test]
fn frr_ebgp_reads_the_as_path_and_communities() {
    ebgp_reads_the_as_path_and_communities(RouterKind::Frr);
}

/// The same against GoBGP (large communities included).
#[test]
fn gobgp_ebgp_reads_the_as_path_and_communities() {
    ebgp_reads_the_as_path_and_communities(RouterKind::Gobgp);
}

fn ebgp_reads_the_as_path_and_communities(kind: RouterKind) {
    let (mut cluster, router, nodes) = ipv4_lab(kind, ROUTER_ASN, NODE_ASN, None, |r| {
        attributes_config(r, NODE_ASN, ROUTER_ASN)
    });
    wait_sessions(&mut cluster, router.as_ref(), &nodes);
    let route = announce_web(&cluster, router.as_ref(), &nodes);
    assert_eq!(route.paths.len(), nodes.len(), "a path per node: {route:?}");
    for path in &route.paths {
        assert_eq!(path.as_path, vec![NODE_ASN], "eBGP AS path: {path:?}");
        let got: BTreeSet<String> = path.communities.iter().cloned().collect();
        assert_eq!(got, expected_communities(), "communities: {path:?}");
        assert_eq!(path.local_pref, None, "no LOCAL_PREF over eBGP: {path:?}");
    }
}

/// A ConfigMap peer with `password:` (TCP MD5): with a wrong password FRR
/// lets no session up; with the right one every session comes up.
#[test]
fn frr_md5_password_from_the_configmap() {
    let md5_config = |password: &'static str| {
        move |router: &Host| {
            format!(
                "peers:
- peer-address: {router}
  peer-asn: {ROUTER_ASN}
  my-asn: {NODE_ASN}
  password: {password}
{BGP_POOL}",
                router = router.ipv4,
            )
        }
    };
    let (mut cluster, router, nodes) = ipv4_lab(
        RouterKind::Frr,
        ROUTER_ASN,
        NODE_ASN,
        Some("right-secret"),
        md5_config("wrong-secret"),
    );
    assert_wrong_password_keeps_sessions_down(&mut cluster, router.as_ref(), &nodes);

    let router_host = router_host(&cluster, RouterKind::Frr);
    cluster.apply_config(&md5_config("right-secret")(&router_host));
    wait_sessions(&mut cluster, router.as_ref(), &nodes);
    announce_web(&cluster, router.as_ref(), &nodes);
}
