//! The layer-2 responder on a real link: two network namespaces created by
//! the test, joined by a veth pair created inside them (no interface of the
//! machine is touched). The responder runs in namespace A from a thread that
//! setns(2)-ed into it; `arping`, `ndisc6` and the kernel of namespace B ask.
//!
//! Needs root and the Debian packages iproute2, arping and ndisc6: the test
//! fails with a clear message when one is missing.

// Helpers of an integration test may panic: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_speaker::announce::{
    Announcer, Desired, Interfaces, Layer2Announcement, ServiceIp, ServiceKey,
};
use ferrolb_speaker::layer2::responder::{GRATUITOUS_SCHEDULE, Layer2Responder, arp_capable};
use ferrolb_speaker::metrics::{IpLabels, Layer2Metrics};
use nix::sched::{CloneFlags, setns};

mod netlab;
use netlab::{Netns, eventually, require_root_and_tools};

const A_V4: &str = "192.168.77.1";
const B_V4: &str = "192.168.77.2";
const A_V6: &str = "fd00:77::1";
const B_V6: &str = "fd00:77::2";

/// Namespaces A (responder, interface `va`) and B (asker, interface `vb`).
fn lab() -> (Netns, Netns) {
    let a = Netns::new("l2", "a");
    let b = Netns::new("l2", "b");
    a.must(&[
        "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b.0,
    ]);
    for (ns, dev, v4, v6) in [(&a, "va", A_V4, A_V6), (&b, "vb", B_V4, B_V6)] {
        ns.must(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.accept_dad=0"),
        ]);
        ns.must(&["ip", "link", "set", "lo", "up"]);
        ns.must(&["ip", "addr", "add", &format!("{v4}/24"), "dev", dev]);
        ns.must(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            dev,
            "nodad",
        ]);
        ns.must(&["ip", "link", "set", dev, "up"]);
    }
    (a, b)
}

fn desired(entries: &[(&str, Interfaces)]) -> Desired {
    let mut d = Desired::default();
    for (ip, interfaces) in entries {
        d.layer2.insert(
            sip(ip),
            Layer2Announcement {
                interfaces: interfaces.clone(),
                services: [ServiceKey::new("default", "web")].into(),
            },
        );
    }
    d
}

fn sip(s: &str) -> ServiceIp {
    ServiceIp::new(s.parse::<IpAddr>().unwrap())
}

fn count(
    family: &prometheus_client::metrics::family::Family<IpLabels, ferrolb_speaker::metrics::Count>,
    ip: &str,
) -> u64 {
    family.get_or_create(&IpLabels { ip: ip.into() }).get()
}

/// The MAC `arping` sees answering for `ip` from B, if any.
fn arping(b: &Netns, ip: &str) -> Option<String> {
    let out = b.stdout(&["arping", "-c", "2", "-C", "1", "-w", "2", "-i", "vb", ip]);
    out.lines()
        .find(|l| l.contains("bytes from"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
}

/// The MAC `ndisc6` sees answering for `ip` from B, if any.
fn ndisc6(b: &Netns, ip: &str) -> Option<String> {
    let out = b.stdout(&["ndisc6", "-q", "-1", "-r", "3", "-w", "500", ip, "vb"]);
    let mac = out.trim();
    (!mac.is_empty()).then(|| mac.to_owned())
}

/// B's kernel neighbour entry for `ip`, if it has a link-layer address.
fn neighbour(b: &Netns, ip: &str) -> Option<String> {
    let out = b.stdout(&["ip", "neigh", "show", ip, "dev", "vb"]);
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map(|s| s.to_string())
}

#[test]
fn responder_answers_arp_and_ndp_for_owned_addresses_only() {
    require_root_and_tools(&[
        ("ip", "iproute2"),
        ("arping", "arping"),
        ("ndisc6", "ndisc6"),
    ]);
    let (a, b) = lab();
    let ns_path = format!("/run/netns/{}", a.0);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let ns = File::open(&ns_path).unwrap_or_else(|e| panic!("{ns_path}: {e}"));
                setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into namespace A");
                let iface = pnet_datalink::interfaces()
                    .into_iter()
                    .find(|i| i.name == "va")
                    .expect("va inside namespace A");
                assert!(arp_capable(&iface), "{iface:?}");
                let our_mac = iface.mac.expect("va has a MAC").to_string().to_lowercase();
                let metrics = Layer2Metrics::default();
                let mut responder = Layer2Responder::new(metrics.clone());
                responder
                    .set_interfaces(std::slice::from_ref(&iface))
                    .expect("open va");

                // Nothing owned yet: silence.
                assert_eq!(
                    arping(&b, "192.168.77.100"),
                    None,
                    "no answer before owning"
                );

                let owned = desired(&[
                    ("192.168.77.100", Interfaces::All),
                    ("fd00:77::100", Interfaces::All),
                ]);
                let start = Instant::now();
                responder.set(&owned).unwrap();
                assert_eq!(
                    arping(&b, "192.168.77.100").as_deref(),
                    Some(our_mac.as_str()),
                    "arping"
                );
                println!("first ARP answer {:?} after set", start.elapsed());
                assert_eq!(
                    ndisc6(&b, "fd00:77::100").as_deref(),
                    Some(our_mac.as_str()),
                    "ndisc6"
                );

                // B's own kernel resolves both addresses to our MAC.
                let _ = b.exec(&["ping", "-c", "1", "-W", "1", "192.168.77.100"]);
                let _ = b.exec(&["ping", "-6", "-c", "1", "-W", "1", "fd00:77::100"]);
                assert_eq!(
                    neighbour(&b, "192.168.77.100").as_deref(),
                    Some(our_mac.as_str()),
                    "kernel ARP"
                );
                assert_eq!(
                    neighbour(&b, "fd00:77::100").as_deref(),
                    Some(our_mac.as_str()),
                    "kernel NDP"
                );

                assert!(count(&metrics.requests_received, "192.168.77.100") >= 1);
                assert!(count(&metrics.responses_sent, "192.168.77.100") >= 1);
                assert!(count(&metrics.requests_received, "fd00:77::100") >= 1);
                assert!(count(&metrics.responses_sent, "fd00:77::100") >= 1);
                assert!(
                    count(&metrics.gratuitous_sent, "192.168.77.100") >= 2,
                    "request and reply forms at once"
                );
                assert!(count(&metrics.gratuitous_sent, "fd00:77::100") >= 1);
                assert_eq!(
                    count(&metrics.responses_sent, "192.168.77.2"),
                    0,
                    "B's own address is not ours"
                );

                // An address restricted to another interface is not answered here.
                responder
                    .set(&desired(&[(
                        "192.168.77.100",
                        Interfaces::Only(["eth9".to_string()].into()),
                    )]))
                    .unwrap();
                assert_eq!(
                    arping(&b, "192.168.77.100"),
                    None,
                    "restricted to another interface"
                );

                // Loss: silence at once, and no more gratuitous repeats.
                responder.set(&Desired::default()).unwrap();
                let sent_at_loss = count(&metrics.gratuitous_sent, "192.168.77.100");
                assert_eq!(arping(&b, "192.168.77.100"), None, "silent after loss");
                assert_eq!(ndisc6(&b, "fd00:77::100"), None, "silent after loss (v6)");

                // Takeover: B has stale entries pointing elsewhere; the
                // gratuitous packets move them to us without any question.
                for ip in ["192.168.77.101", "fd00:77::101"] {
                    b.must(&[
                        "ip",
                        "neigh",
                        "replace",
                        ip,
                        "lladdr",
                        "02:00:00:00:00:99",
                        "dev",
                        "vb",
                        "nud",
                        "stale",
                    ]);
                }
                let takeover = Instant::now();
                responder
                    .set(&desired(&[
                        ("192.168.77.101", Interfaces::All),
                        ("fd00:77::101", Interfaces::All),
                    ]))
                    .unwrap();
                for ip in ["192.168.77.101", "fd00:77::101"] {
                    let moved = eventually(Duration::from_secs(2), || {
                        neighbour(&b, ip).as_deref() == Some(our_mac.as_str())
                    });
                    assert!(
                        moved,
                        "{ip}: B's entry moved to us by gratuitous packets, has {:?}",
                        neighbour(&b, ip)
                    );
                }
                println!(
                    "B's neighbour entries moved {:?} after takeover",
                    takeover.elapsed()
                );

                // The repeats: the whole schedule goes out, then stops.
                let last = GRATUITOUS_SCHEDULE[GRATUITOUS_SCHEDULE.len() - 1];
                std::thread::sleep(last + Duration::from_millis(500));
                let rounds = GRATUITOUS_SCHEDULE.len() as u64;
                assert_eq!(
                    count(&metrics.gratuitous_sent, "192.168.77.101"),
                    2 * rounds,
                    "v4: 2 forms per round"
                );
                assert_eq!(
                    count(&metrics.gratuitous_sent, "fd00:77::101"),
                    rounds,
                    "v6: one NA per round"
                );
                assert_eq!(
                    count(&metrics.gratuitous_sent, "192.168.77.100"),
                    sent_at_loss,
                    "a lost address gets no more repeats"
                );
                // Re-applying the same interfaces is no takeover: no new burst.
                responder
                    .set_interfaces(std::slice::from_ref(&iface))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(300));
                assert_eq!(
                    count(&metrics.gratuitous_sent, "192.168.77.101"),
                    2 * rounds,
                    "no burst on a resync"
                );
                drop(responder);
            })
            .join()
            .expect("the responder thread");
    });
}
