//! The BGP speaker against a real BIRD 2: two network namespaces created by
//! the test and joined by a veth pair (no interface of the machine is
//! touched). BIRD runs passive in namespace R; the speaker's sessions run in
//! namespace S on a thread that setns(2)-ed into it, with a current-thread
//! tokio runtime so that every socket is opened inside S. Routes are read
//! back with `birdc show route all`.
//!
//! Needs root and the Debian packages iproute2 and bird2: the test fails
//! with a clear message when one is missing.

// Helpers of an integration test may panic: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_config::model::{
    AddressBlock, BgpAdvertisement, Community, Config, Origin, Peer, PeerPassword, Pool,
};
use ferrolb_speaker::announce::ServiceKey;
use ferrolb_speaker::bgp::metrics::PeerLabels;
use ferrolb_speaker::bgp::{BgpDesired, BgpMetrics, BgpSpeaker, PeerSecrets, desired_bgp};
use ferrolb_speaker::election::{Endpoint, ServiceView, Snapshot, TrafficPolicy};
use nix::sched::{CloneFlags, setns};

mod netlab;
use netlab::{Netns, eventually, require_root_and_tools, unique};

const ROUTER_V4: &str = "10.77.0.1";
const ROUTER_V6: &str = "fd77::1";
const NODE: &str = "node-a";

/// Namespaces R (BIRD, `vr`: 10.77.0.1, fd77::1) and S (speaker, `vs`:
/// 10.77.0.2-9 and fd77::2, one source address per session).
/// Fails first unless run as root with iproute2 and bird2 installed.
fn lab() -> (Netns, Netns) {
    require_root_and_tools(&[("ip", "iproute2"), ("bird", "bird2"), ("birdc", "bird2")]);
    let r = Netns::new("bgp", "r");
    let s = Netns::new("bgp", "s");
    r.must(&[
        "ip", "link", "add", "vr", "type", "veth", "peer", "name", "vs", "netns", &s.0,
    ]);
    for (ns, dev) in [(&r, "vr"), (&s, "vs")] {
        ns.must(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{dev}.accept_dad=0"),
        ]);
        ns.must(&["ip", "link", "set", "lo", "up"]);
    }
    r.must(&["ip", "addr", "add", "10.77.0.1/24", "dev", "vr"]);
    r.must(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd77::1/64",
        "dev",
        "vr",
        "nodad",
    ]);
    for host in 2..=9 {
        s.must(&[
            "ip",
            "addr",
            "add",
            &format!("10.77.0.{host}/24"),
            "dev",
            "vs",
        ]);
    }
    s.must(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd77::2/64",
        "dev",
        "vs",
        "nodad",
    ]);
    for (ns, dev) in [(&r, "vr"), (&s, "vs")] {
        ns.must(&["ip", "link", "set", dev, "up"]);
    }
    (r, s)
}

/// One BIRD `protocol bgp` block, passive, importing everything.
struct BirdPeer {
    name: &'static str,
    local: &'static str,
    neighbor: &'static str,
    asn: u32,
    password: Option<&'static str>,
    hold: u32,
}

/// BIRD 2 in namespace R, killed on drop.
struct Bird {
    child: Child,
    dir: PathBuf,
}

impl Bird {
    fn start(r: &Netns, peers: &[BirdPeer]) -> Self {
        let dir = std::env::temp_dir().join(format!("flb-bgp-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut conf = String::from(
            "router id 10.77.0.1;\nlog stderr all;\nprotocol device {}\n\
             protocol direct { ipv4; ipv6; }\n\
             protocol static { ipv4; route 10.88.0.0/24 blackhole; }\n",
        );
        for p in peers {
            conf.push_str(&format!(
                "protocol bgp {} {{\n  local {} as 64512;\n  neighbor {} as {};\n  passive on;\n  \
                 hold time {};\n  error wait time 1, 2;\n  ipv4 {{ import all; export where proto = \"static1\"; }};\n  \
                 ipv6 {{ import all; export none; }};\n",
                p.name, p.local, p.neighbor, p.asn, p.hold
            ));
            if let Some(pw) = p.password {
                conf.push_str(&format!("  password \"{pw}\";\n"));
            }
            conf.push_str("}\n");
        }
        std::fs::write(dir.join("bird.conf"), conf).unwrap();
        let log = File::create(dir.join("bird.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &r.0, "bird", "-f", "-c"])
            .arg(dir.join("bird.conf"))
            .arg("-s")
            .arg(dir.join("bird.ctl"))
            .arg("-P")
            .arg(dir.join("bird.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bird");
        let bird = Bird { child, dir };
        assert!(
            eventually(Duration::from_secs(10), || bird
                .birdc(&["show", "status"])
                .contains("Daemon is up")),
            "BIRD did not start: {}",
            bird.log()
        );
        bird
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join("bird.ctl"))
            .args(args)
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }

    /// The routes BIRD learnt from protocol `proto`: prefix -> attribute lines.
    fn routes(&self, proto: &str) -> BTreeMap<String, Vec<String>> {
        parse_routes(&self.birdc(&["show", "route", "all", "protocol", proto]))
    }

    fn established(&self, proto: &str) -> bool {
        self.birdc(&["show", "protocols", proto])
            .contains("Established")
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parses `birdc show route all` of one protocol: a line starting with a
/// prefix opens a route; tab-indented lines are its attributes.
fn parse_routes(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut routes = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('\t') {
            if let Some(prefix) = &current {
                routes
                    .entry(prefix.clone())
                    .or_insert_with(Vec::new)
                    .push(line.trim().to_string());
            }
        } else if let Some(first) = line.split_whitespace().next()
            && first.contains('/')
            && first.parse::<ipnet::IpNet>().is_ok()
        {
            current = Some(first.to_string());
            routes.entry(first.to_string()).or_insert_with(Vec::new);
        }
    }
    routes
}

/// What the test thread asks the speaker thread.
enum Request {
    Set(BgpDesired, PeerSecrets),
    Shutdown,
}

/// A [`BgpSpeaker`] running in namespace S on its own thread.
struct SpeakerThread {
    requests: tokio::sync::mpsc::UnboundedSender<(Request, std::sync::mpsc::Sender<()>)>,
    thread: Option<std::thread::JoinHandle<()>>,
    metrics: BgpMetrics,
}

impl SpeakerThread {
    fn start(s: &Netns) -> Self {
        let path = format!("/run/netns/{}", s.0);
        let metrics = BgpMetrics::default();
        let (requests, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(Request, std::sync::mpsc::Sender<()>)>();
        let thread_metrics = metrics.clone();
        let thread = std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into namespace S");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut speaker = BgpSpeaker::new(thread_metrics);
                while let Some((request, done)) = rx.recv().await {
                    match request {
                        Request::Set(desired, secrets) => {
                            let errors = speaker.set(&desired, &secrets);
                            assert!(errors.is_empty(), "{errors:?}");
                            let _ = done.send(());
                        }
                        Request::Shutdown => {
                            speaker.shutdown().await;
                            let _ = done.send(());
                            return;
                        }
                    }
                }
            });
        });
        SpeakerThread {
            requests,
            thread: Some(thread),
            metrics,
        }
    }

    fn request(&self, request: Request) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.requests
            .send((request, tx))
            .expect("speaker thread alive");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("speaker thread answered");
    }

    fn set(&self, desired: BgpDesired) {
        self.request(Request::Set(desired, PeerSecrets::new()));
    }

    fn up(&self, peer: &str) -> bool {
        self.metrics
            .session_up
            .get_or_create(&PeerLabels { peer: peer.into() })
            .get()
            == 1
    }

    fn shutdown(mut self) {
        self.request(Request::Shutdown);
        if let Some(t) = self.thread.take() {
            t.join().expect("speaker thread");
        }
    }
}

fn peer(name: &str, source: &str, address: &str, my_asn: u32, hold_secs: u64) -> Peer {
    Peer {
        name: name.into(),
        my_asn,
        peer_asn: 64512,
        address: address.parse().unwrap(),
        port: 179,
        source_address: Some(source.parse().unwrap()),
        hold_time: Duration::from_secs(hold_secs),
        keepalive_time: Duration::from_secs(hold_secs / 3),
        router_id: None,
        node_selectors: vec![],
        password: None,
        ebgp_multihop: false,
        bfd_profile: None,
        graceful_restart: false,
    }
}

/// A config with one BGP pool (v4 + v6), one advertisement with LOCAL_PREF
/// 150 and communities, and `peers`.
fn config(peers: Vec<Peer>) -> Config {
    Config {
        pools: vec![Pool {
            name: "bgp".into(),
            blocks: vec![
                AddressBlock::from_net("10.77.96.0/20".parse().unwrap()),
                AddressBlock::from_net("fc77::/120".parse().unwrap()),
                AddressBlock::from_net("10.80.0.0/16".parse().unwrap()),
                AddressBlock::from_net("fc78::/112".parse().unwrap()),
            ],
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
            origin: Origin::ConfigMap { index: 0 },
        }],
        bgp_advertisements: vec![BgpAdvertisement {
            name: "bgp-0".into(),
            pools: vec!["bgp".into()],
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: Some(150),
            communities: vec![Community::Standard(64512, 7), Community::Large(1, 2, 3)],
            node_selectors: vec![],
            peers: vec![],
            external_ips: false,
        }],
        peers,
        ..Config::default()
    }
}

/// The desired BGP state of our node with Services holding `ips`, each
/// with a ready endpoint on this node.
fn desired(config: &Arc<Config>, ips: &[&str]) -> BgpDesired {
    let snapshot = Snapshot {
        config: config.clone(),
        members: Default::default(),
        nodes: [(NODE.to_string(), BTreeMap::new())].into(),
        services: ips
            .iter()
            .enumerate()
            .map(|(i, ip)| ServiceView {
                key: ServiceKey::new("default", format!("svc-{i}")),
                ips: vec![ip.parse::<IpAddr>().unwrap()],
                external_ips: vec![],
                traffic_policy: TrafficPolicy::Local,
                endpoints: vec![Endpoint {
                    node_name: Some(NODE.into()),
                    ready: Some(true),
                }],
            })
            .collect(),
    };
    desired_bgp(NODE, &snapshot)
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l == wanted)
}

#[test]
fn bird_learns_v4_and_v6_prefixes_with_their_attributes_and_their_withdrawal() {
    let (r, s) = lab();
    let bird = Bird::start(
        &r,
        &[
            BirdPeer {
                name: "ibgp4",
                local: ROUTER_V4,
                neighbor: "10.77.0.2",
                asn: 64512,
                password: None,
                hold: 90,
            },
            BirdPeer {
                name: "ebgp4",
                local: ROUTER_V4,
                neighbor: "10.77.0.3",
                asn: 65001,
                password: None,
                hold: 90,
            },
            BirdPeer {
                name: "ibgp6",
                local: ROUTER_V6,
                neighbor: "fd77::2",
                asn: 64512,
                password: None,
                hold: 90,
            },
        ],
    );
    let speaker = SpeakerThread::start(&s);
    let config = Arc::new(config(vec![
        peer("ibgp4", "10.77.0.2", ROUTER_V4, 64512, 90),
        peer("ebgp4", "10.77.0.3", ROUTER_V4, 65001, 90),
        peer("ibgp6", "fd77::2", ROUTER_V6, 64512, 90),
    ]));
    speaker.set(desired(&config, &["10.77.96.1", "fc77::1"]));
    for proto in ["ibgp4", "ebgp4", "ibgp6"] {
        assert!(
            eventually(Duration::from_secs(10), || bird.routes(proto).len() == 2),
            "{proto}: BIRD has {:?}\n{}",
            bird.routes(proto),
            bird.log()
        );
        assert!(bird.established(proto));
    }
    for peer in ["10.77.0.1:179", "[fd77::1]:179"] {
        assert!(speaker.up(peer), "metallb_bgp_session_up for {peer}");
    }

    // iBGP over IPv4: empty AS path, LOCAL_PREF 150, communities, next hops
    // of the session (IPv6: the node's address on the same interface).
    let ibgp4 = bird.routes("ibgp4");
    let v4 = &ibgp4["10.77.96.1/32"];
    let v6 = &ibgp4["fc77::1/128"];
    for (rule, lines, wanted) in [
        ("origin_incomplete", v4, "BGP.origin: Incomplete"),
        ("ibgp_as_path_empty", v4, "BGP.as_path:"),
        ("ibgp_local_pref", v4, "BGP.local_pref: 150"),
        (
            "next_hop_is_the_session_address",
            v4,
            "BGP.next_hop: 10.77.0.2",
        ),
        ("community", v4, "BGP.community: (64512,7)"),
        ("large_community", v4, "BGP.large_community: (1, 2, 3)"),
        ("v6_over_v4_session_next_hop", v6, "BGP.next_hop: fd77::2"),
        ("v6_local_pref", v6, "BGP.local_pref: 150"),
    ] {
        assert!(
            has(lines, wanted),
            "ibgp4 {rule}: {wanted:?} not in {lines:#?}"
        );
    }
    // eBGP: AS path [65001], no LOCAL_PREF from us (BIRD shows its default 100).
    let ebgp4 = bird.routes("ebgp4");
    for (rule, lines, wanted) in [
        (
            "ebgp_as_path",
            &ebgp4["10.77.96.1/32"],
            "BGP.as_path: 65001",
        ),
        (
            "ebgp_v6_as_path",
            &ebgp4["fc77::1/128"],
            "BGP.as_path: 65001",
        ),
        (
            "ebgp_next_hop",
            &ebgp4["10.77.96.1/32"],
            "BGP.next_hop: 10.77.0.3",
        ),
        (
            "ebgp_community",
            &ebgp4["10.77.96.1/32"],
            "BGP.community: (64512,7)",
        ),
    ] {
        assert!(
            has(lines, wanted),
            "ebgp4 {rule}: {wanted:?} not in {lines:#?}"
        );
    }
    assert!(
        !has(&ebgp4["10.77.96.1/32"], "BGP.local_pref: 150"),
        "LOCAL_PREF is never sent to eBGP peers: {:#?}",
        ebgp4["10.77.96.1/32"]
    );
    // An IPv6 session: IPv6 next hop is the session address, IPv4 prefixes
    // get the IPv4 address of the same interface.
    let ibgp6 = bird.routes("ibgp6");
    assert!(
        has(&ibgp6["fc77::1/128"], "BGP.next_hop: fd77::2"),
        "{ibgp6:#?}"
    );
    assert!(
        has(&ibgp6["10.77.96.1/32"], "BGP.next_hop: 10.77.0.2"),
        "{ibgp6:#?}"
    );

    // BIRD sends us a route (10.88.0.0/24): received UPDATEs are checked and
    // do not disturb the session.
    assert!(bird.established("ibgp4"), "session survived BIRD's UPDATE");

    // Time from the desired state changing to the route present in BIRD.
    let mut ips: Vec<String> = vec!["10.77.96.1".into(), "fc77::1".into()];
    let mut samples = Vec::new();
    for i in 0..20 {
        let ip = format!("10.77.97.{}", i + 1);
        ips.push(ip.clone());
        let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
        let want = format!("{ip}/32");
        let wanted = desired(&config, &refs);
        let start = Instant::now();
        speaker.set(wanted);
        assert!(
            eventually(Duration::from_secs(5), || {
                bird.birdc(&["show", "route", &want, "protocol", "ibgp4"])
                    .contains(&want)
            }),
            "{want} never reached BIRD"
        );
        samples.push(start.elapsed());
    }
    samples.sort();
    println!(
        "announce -> route in BIRD (20 samples, birdc polling included): median {:?}, min {:?}, max {:?}",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1]
    );
    let updates = speaker
        .metrics
        .updates
        .get_or_create(&PeerLabels {
            peer: "10.77.0.1:179".into(),
        })
        .get();
    assert!(updates >= 21, "one UPDATE per change: {updates}");

    // Withdrawal: the Services go away, BIRD forgets every prefix.
    speaker.set(desired(&config, &[]));
    for proto in ["ibgp4", "ebgp4", "ibgp6"] {
        assert!(
            eventually(Duration::from_secs(5), || bird.routes(proto).is_empty()),
            "{proto}: still has {:?}",
            bird.routes(proto)
        );
    }
    speaker.shutdown();
}

#[test]
fn md5_with_the_right_password_establishes_and_with_a_wrong_one_does_not() {
    let (r, s) = lab();
    let bird = Bird::start(
        &r,
        &[
            BirdPeer {
                name: "good",
                local: ROUTER_V4,
                neighbor: "10.77.0.4",
                asn: 64512,
                password: Some("s3cret"),
                hold: 90,
            },
            BirdPeer {
                name: "bad",
                local: ROUTER_V4,
                neighbor: "10.77.0.5",
                asn: 64512,
                password: Some("s3cret"),
                hold: 90,
            },
        ],
    );
    let speaker = SpeakerThread::start(&s);
    let mut good = peer("good", "10.77.0.4", ROUTER_V4, 64512, 90);
    good.password = Some(PeerPassword::Plain("s3cret".into()));
    let mut bad = peer("bad", "10.77.0.5", ROUTER_V4, 64512, 90);
    bad.password = Some(PeerPassword::Plain("wrong".into()));
    let config = Arc::new(config(vec![good, bad]));
    speaker.set(desired(&config, &["10.77.96.1"]));
    assert!(
        eventually(Duration::from_secs(10), || bird.routes("good").len() == 1),
        "right password: {:?}\n{}",
        bird.birdc(&["show", "protocols", "all", "good"]),
        bird.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !bird.established("bad"),
        "wrong password must not establish"
    );
    assert!(bird.routes("bad").is_empty());
    speaker.shutdown();
}

#[test]
fn a_silent_speaker_is_dropped_after_hold_time_and_cease_drops_at_once() {
    let (r, s) = lab();
    let bird = Bird::start(
        &r,
        &[BirdPeer {
            name: "silent",
            local: ROUTER_V4,
            neighbor: "10.77.0.6",
            asn: 64512,
            password: None,
            hold: 6,
        }],
    );
    let speaker = SpeakerThread::start(&s);
    let config = Arc::new(config(vec![peer(
        "silent",
        "10.77.0.6",
        ROUTER_V4,
        64512,
        6,
    )]));
    speaker.set(desired(&config, &["10.77.96.1"]));
    assert!(
        eventually(Duration::from_secs(10), || bird.routes("silent").len() == 1),
        "{}",
        bird.log()
    );

    // The node falls silent without a word (as if it lost power): nothing
    // it sends reaches BIRD any more. BIRD keeps the route until its hold
    // timer (6 s) runs out.
    s.must(&["ip", "route", "add", "blackhole", "10.77.0.1/32"]);
    let silent = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        bird.routes("silent").len(),
        1,
        "kept while the hold timer runs"
    );
    assert!(
        eventually(Duration::from_secs(10), || bird.routes("silent").is_empty()),
        "dropped after the hold time"
    );
    let held = silent.elapsed();
    println!("silent speaker: BIRD dropped the route after {held:?} (hold time 6 s)");
    assert!(
        held >= Duration::from_secs(3),
        "not before the hold time: {held:?}"
    );

    // The path comes back; the speaker reconnects (backoff) and re-announces.
    s.must(&["ip", "route", "del", "blackhole", "10.77.0.1/32"]);
    assert!(
        eventually(Duration::from_secs(20), || bird.routes("silent").len() == 1),
        "re-announced after reconnect: {}",
        bird.log()
    );

    // A clean shutdown sends Cease: BIRD drops the route at once.
    let start = Instant::now();
    speaker.shutdown();
    assert!(
        eventually(Duration::from_secs(2), || bird.routes("silent").is_empty()),
        "Cease withdraws at once"
    );
    println!(
        "Cease: BIRD dropped the route {:?} after shutdown began",
        start.elapsed()
    );
    let log = bird.log();
    assert!(
        log.contains("Received: Administrative shutdown"),
        "BIRD saw our Cease:\n{log}"
    );
}

/// The routes BIRD holds from `proto`, both tables together.
fn route_count(bird: &Bird, proto: &str) -> usize {
    bird.birdc(&["show", "route", "protocol", proto, "count"])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn ten_thousand_prefixes_reach_bird_in_few_updates() {
    let (r, s) = lab();
    let bird = Bird::start(
        &r,
        &[BirdPeer {
            name: "bulk",
            local: ROUTER_V4,
            neighbor: "10.77.0.7",
            asn: 64512,
            password: None,
            hold: 90,
        }],
    );
    let config = Arc::new(config(vec![peer(
        "bulk",
        "10.77.0.7",
        ROUTER_V4,
        64512,
        90,
    )]));
    let v4: Vec<String> = (0..8000u32)
        .map(|i| std::net::Ipv4Addr::from(0x0a50_0000 + i).to_string())
        .collect();
    let v6: Vec<String> = (0..2000u128)
        .map(|i| std::net::Ipv6Addr::from(0xfc78_u128 << 112 | i).to_string())
        .collect();
    let ips: Vec<&str> = v4.iter().chain(&v6).map(String::as_str).collect();
    let wanted = desired(&config, &ips);
    assert_eq!(wanted.peers["bulk"].routes.len(), 10_000);
    let rss_before = rss_kib();
    let start = Instant::now();
    let speaker = SpeakerThread::start(&s);
    speaker.set(wanted);
    assert!(
        eventually(Duration::from_secs(30), || route_count(&bird, "bulk")
            == 10_000),
        "BIRD has {} routes\n{}",
        route_count(&bird, "bulk"),
        bird.log()
    );
    let elapsed = start.elapsed();
    let updates = speaker
        .metrics
        .updates
        .get_or_create(&PeerLabels {
            peer: "10.77.0.1:179".into(),
        })
        .get();
    let rss_after = rss_kib();
    println!(
        "10,000 prefixes (8,000 IPv4 + 2,000 IPv6): speaker start -> all in BIRD {elapsed:?}, \
         {updates} UPDATE messages, test process RSS {rss_before} KiB -> {rss_after} KiB"
    );
    // 8,000 IPv4 /32 at ~810 per message, 2,000 IPv6 /128 at ~238 per message.
    assert!(updates <= 25, "packed: {updates} UPDATEs");
    speaker.shutdown();
}
