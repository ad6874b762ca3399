//! Layer-2 mode end to end: 3 lab nodes, the real controller and a real
//! speaker process per node; a client on the LAN checks what its kernel,
//! arping/ndisc6 and TCP see.
//!
//! Needs root and the Debian packages iproute2, arping and ndisc6; fails
//! (never skips) when they are missing. Build the binaries first
//! (`cargo build --workspace --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use cluster::{Cluster, EXCLUDE_LABEL, TUTORIAL_CONFIG, lb_service};
use ferrolb_e2e::measure;

const NODES: [&str; 3] = ["node1", "node2", "node3"];

fn everywhere() -> Vec<(&'static str, bool)> {
    NODES.iter().map(|n| (*n, true)).collect()
}

/// Exactly `node`'s MAC answers a direct question for `ip`, several times in a row.
fn assert_only_answer(cluster: &Cluster, ip: IpAddr, node: &str) {
    for round in 0..2 {
        let answers = cluster.solicit(ip);
        assert_eq!(
            answers,
            vec![(cluster.mac(node), Some(node.to_string()))],
            "round {round}: only {node} may answer for {ip}"
        );
    }
}

/// The client resolves `ip` to `node`'s MAC and TCP reaches `node`.
fn assert_client_reaches(cluster: &Cluster, ip: IpAddr, node: &str) {
    cluster.wait_client_entry(ip, node);
    let name = cluster
        .client()
        .tcp_name(cluster.service_addr(ip), Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("TCP to {ip}: {e}"));
    assert_eq!(name, node, "TCP to {ip} reaches the announcing node");
}

#[test]
fn each_service_ip_resolves_to_its_announcer_and_tcp_reaches_it() {
    let cluster = Cluster::up(TUTORIAL_CONFIG);
    let names: Vec<String> = (0..5).map(|i| format!("web{i}")).collect();
    for name in &names {
        cluster.create_service(lb_service(name, &[80]));
        cluster.set_endpoints(name, &everywhere());
    }
    let mut owners = BTreeSet::new();
    for name in &names {
        let ip = cluster.wait_ips(name, 1)[0];
        let announcer = cluster.wait_announcer(ip, |_| true);
        owners.insert(announcer.clone());
        assert_client_reaches(&cluster, ip, &announcer);
        assert_only_answer(&cluster, ip, &announcer);
        let notes = cluster
            .wait_for("the nodeAssigned Event", || {
                let notes = cluster.node_assigned_notes(name);
                Ok((!notes.is_empty()).then_some(notes))
            })
            .unwrap();
        assert_eq!(
            notes,
            vec![format!(
                "announcing from node \"{announcer}\" with protocol \"layer2\""
            )],
            "one Event for {name}, naming its announcer"
        );
    }
    println!("5 Services announced from {owners:?}");
}

#[test]
fn local_policy_announces_from_a_node_with_a_ready_endpoint_and_follows_it() {
    let cluster = Cluster::up(TUTORIAL_CONFIG);
    let mut svc = lb_service("local", &[80]);
    svc.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    cluster.create_service(svc);
    cluster.set_endpoints("local", &[("node2", true), ("node1", false)]);
    let ip = cluster.wait_ips("local", 1)[0];

    let first = cluster.wait_announcer(ip, |_| true);
    assert_eq!(first, "node2", "the only node with a ready endpoint");
    assert_client_reaches(&cluster, ip, "node2");
    assert_only_answer(&cluster, ip, "node2");

    cluster.set_endpoints("local", &[("node3", true), ("node2", false)]);
    cluster.wait_announcer(ip, |n| n == "node3");
    // The gratuitous ARP moves the client's existing entry.
    assert_client_reaches(&cluster, ip, "node3");
    assert_only_answer(&cluster, ip, "node3");

    cluster.set_endpoints("local", &[("node3", false)]);
    cluster.wait_unannounced(ip);
    assert_eq!(
        cluster.solicit(ip),
        vec![],
        "no ready endpoint anywhere: nobody answers"
    );
}

#[test]
fn services_sharing_an_ip_are_announced_by_one_node() {
    let cluster = Cluster::up(TUTORIAL_CONFIG);
    let shared: IpAddr = "192.168.5.245".parse().unwrap();
    for (name, port) in [("shared-a", 80), ("shared-b", 8080)] {
        let mut svc = lb_service(name, &[port]);
        svc.metadata.annotations = Some(
            [(
                "metallb.universe.tf/allow-shared-ip".to_string(),
                "team".to_string(),
            )]
            .into(),
        );
        svc.spec.as_mut().unwrap().load_balancer_ip = Some(shared.to_string());
        cluster.create_service(svc);
        cluster.set_endpoints(name, &everywhere());
    }
    assert_eq!(cluster.wait_ips("shared-a", 1), vec![shared]);
    assert_eq!(cluster.wait_ips("shared-b", 1), vec![shared]);
    let announcer = cluster.wait_announcer(shared, |_| true);
    let both: BTreeSet<String> = ["default/shared-a", "default/shared-b"]
        .map(String::from)
        .into();
    let announced = cluster
        .wait_for("both Services announced by one node", || {
            let all = cluster.announcers(shared);
            Ok((all.len() == 1 && all.get(&announcer) == Some(&both)).then_some(all))
        })
        .unwrap();
    println!("shared {shared}: {announced:?}");
    assert_client_reaches(&cluster, shared, &announcer);
    assert_only_answer(&cluster, shared, &announcer);
}

#[test]
fn ipv6_and_dual_stack_addresses_are_announced_through_ndp() {
    let cluster = Cluster::up(TUTORIAL_CONFIG);
    let mut v6 = lb_service("v6", &[80]);
    let spec = v6.spec.as_mut().unwrap();
    spec.ip_families = Some(vec!["IPv6".into()]);
    spec.ip_family_policy = Some("SingleStack".into());
    cluster.create_service(v6);
    cluster.set_endpoints("v6", &everywhere());
    let ip = cluster.wait_ips("v6", 1)[0];
    assert!(ip.is_ipv6(), "{ip}");
    let announcer = cluster.wait_announcer(ip, |_| true);
    assert_client_reaches(&cluster, ip, &announcer);
    assert_only_answer(&cluster, ip, &announcer);

    let mut dual = lb_service("dual", &[80]);
    let spec = dual.spec.as_mut().unwrap();
    spec.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    spec.ip_family_policy = Some("RequireDualStack".into());
    cluster.create_service(dual);
    cluster.set_endpoints("dual", &everywhere());
    let ips = cluster.wait_ips("dual", 2);
    let owners: BTreeSet<String> = ips
        .iter()
        .map(|ip| cluster.wait_announcer(*ip, |_| true))
        .collect();
    assert_eq!(owners.len(), 1, "both families on one node: {owners:?}");
    let owner = owners.into_iter().next().unwrap();
    for ip in ips {
        assert_client_reaches(&cluster, ip, &owner);
        assert_only_answer(&cluster, ip, &owner);
    }
}

#[test]
fn the_exclusion_label_moves_an_ip_off_a_node_and_back() {
    let cluster = Cluster::up(TUTORIAL_CONFIG);
    cluster.create_service(lb_service("web", &[80]));
    cluster.set_endpoints("web", &everywhere());
    let ip = cluster.wait_ips("web", 1)[0];
    let first = cluster.wait_announcer(ip, |_| true);
    assert_client_reaches(&cluster, ip, &first);

    cluster.set_node_label(&first, EXCLUDE_LABEL, Some(""));
    let second = cluster.wait_announcer(ip, |n| n != first);
    assert_client_reaches(&cluster, ip, &second);
    assert_only_answer(&cluster, ip, &second);

    cluster.set_node_label(&first, EXCLUDE_LABEL, None);
    cluster.wait_announcer(ip, |n| n == first);
    assert_client_reaches(&cluster, ip, &first);
    assert_only_answer(&cluster, ip, &first);
}

/// Speaker memory with 1,000 LoadBalancer Services (with endpoints), a third
/// of them announced by each node: prints every speaker's resident set.
/// Upgrade from MetalLB 0.12 in place: Services whose status already holds
/// the IPs MetalLB gave them (written before ferrolb starts, with the same
/// ConfigMap) keep exactly those IPs, are announced and reachable; a new
/// Service gets a free address, never one of theirs.
#[test]
fn services_assigned_by_metallb_keep_their_ips_and_become_reachable() {
    let given: [(&str, IpAddr); 2] = [
        ("legacy-a", "192.168.5.247".parse().unwrap()),
        ("legacy-b", "192.168.5.240".parse().unwrap()),
    ];
    let cluster = Cluster::up_after(TUTORIAL_CONFIG, |c| {
        for (name, ip) in given {
            c.create_service(lb_service(name, &[80]));
            c.set_endpoints(name, &everywhere());
            c.set_status_ip(name, ip);
        }
    });
    cluster.create_service(lb_service("fresh", &[80]));
    cluster.set_endpoints("fresh", &everywhere());
    let fresh = cluster.wait_ips("fresh", 1)[0];
    assert!(
        !given.iter().any(|(_, ip)| *ip == fresh),
        "the new Service took a MetalLB-assigned address {fresh}"
    );
    for (name, ip) in given {
        assert_eq!(cluster.wait_ips(name, 1), vec![ip], "{name} kept its IP");
        let announcer = cluster.wait_announcer(ip, |_| true);
        assert_client_reaches(&cluster, ip, &announcer);
    }
}

#[test]
fn speaker_memory_with_1000_services() {
    const SERVICES: usize = 1000;
    let config = format!(
        "{TUTORIAL_CONFIG}- name: bulk
  protocol: layer2
  auto-assign: false
  addresses:
  - 10.200.0.0/22
"
    );
    let mut cluster = Cluster::up(&config);
    let started = Instant::now();
    cluster.api(move |client| async move {
        use k8s_openapi::api::core::v1::Service;
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        use kube::api::PostParams;
        let services = kube::Api::<Service>::namespaced(client.clone(), cluster::APPS);
        let slices = kube::Api::<EndpointSlice>::namespaced(client, cluster::APPS);
        let pp = PostParams::default();
        for i in 0..SERVICES {
            let name = format!("bulk{i}");
            let mut svc = lb_service(&name, &[80]);
            svc.metadata.annotations = Some(
                [(
                    "metallb.universe.tf/address-pool".to_string(),
                    "bulk".to_string(),
                )]
                .into(),
            );
            services.create(&pp, &svc).await?;
            slices
                .create(&pp, &cluster::endpoint_slice(&name, &everywhere()))
                .await?;
        }
        Ok(())
    });
    println!(
        "created {SERVICES} Services and EndpointSlices in {:?}",
        started.elapsed()
    );
    let total = cluster
        .wait_for("every bulk Service announced", || {
            let mut total = 0;
            for node in NODES {
                let text = cluster.metrics(node)?;
                total += text
                    .lines()
                    .filter(|l| {
                        l.starts_with("metallb_speaker_announced{") && l.contains("ip=\"10.200.")
                    })
                    .count();
            }
            Ok((total == SERVICES).then_some(total))
        })
        .unwrap();
    println!("{total} addresses announced after {:?}", started.elapsed());
    // Let allocator churn settle, then measure.
    std::thread::sleep(Duration::from_secs(2));
    let kib = |pid: u32, field: &str| -> u64 {
        measure::status_kib(pid, field).unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
    };
    let (mut worst_rss, mut worst_anon) = (0, 0);
    for node in NODES {
        let pid = cluster.speaker_pid(node);
        let (rss, anon) = (kib(pid, "VmRSS:"), kib(pid, "RssAnon:"));
        let announced = cluster
            .metrics(node)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("metallb_speaker_announced{"))
            .count();
        println!(
            "speaker {node}: RSS {:.1} MiB (anonymous {:.1} MiB, the rest is code pages) with {SERVICES} Services, announcing {announced}",
            rss as f64 / 1024.0,
            anon as f64 / 1024.0
        );
        worst_rss = worst_rss.max(rss);
        worst_anon = worst_anon.max(anon);
    }
    println!(
        "worst speaker RSS: {:.1} MiB, anonymous {:.1} MiB (goal: RSS < 30 MB, release build)",
        worst_rss as f64 / 1024.0,
        worst_anon as f64 / 1024.0
    );
    // The code pages depend on the build (a debug binary is 16 times larger);
    // the speaker's own data does not, and must stay within the goal.
    assert!(
        worst_anon < 30 * 1000 * 1000 / 1024,
        "speaker anonymous memory {worst_anon} KiB with {SERVICES} Services"
    );
}

/// `spec.externalIPs` inside a pool whose advertisement allows them, on a
/// Service annotated for it: elected like a Service IP, and the client
/// reaches it through the elected node. The annotation alone is not enough.
#[test]
fn an_annotated_services_external_ip_is_announced_by_the_elected_node() {
    let external: IpAddr = "192.168.5.249".parse().unwrap();
    let mut cluster = Cluster::up(TUTORIAL_CONFIG);
    let mut svc = lb_service("ext", &[80]);
    let spec = svc.spec.as_mut().unwrap();
    spec.type_ = Some("ClusterIP".into());
    spec.external_ips = Some(vec![external.to_string()]);
    svc.metadata.annotations = Some(
        [(
            "ferrolb.io/announce-external-ips".to_string(),
            "true".to_string(),
        )]
        .into(),
    );
    cluster.create_service(svc);
    cluster.set_endpoints("ext", &everywhere());
    // The pool's advertisement does not allow external IPs yet.
    std::thread::sleep(Duration::from_secs(2));
    cluster.wait_unannounced(external);

    cluster.apply_config(&TUTORIAL_CONFIG.replace(
        "  protocol: layer2\n",
        "  protocol: layer2\n  announce-external-ips: true\n",
    ));
    let node = cluster.wait_announcer(external, |_| true);
    assert_only_answer(&cluster, external, &node);
    assert_client_reaches(&cluster, external, &node);

    // The election moves it like any Service IP.
    cluster.kill_speaker(&node);
    let next = cluster.wait_announcer(external, |n| n != node);
    assert_client_reaches(&cluster, external, &next);
}
