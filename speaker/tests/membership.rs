//! Membership on loopback: real memberlist nodes on 127.77.x.y addresses
//! (each test its own /24 so tests run in parallel), with the LAN timings.

// Helpers of an integration test may panic: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::{
    DEFAULT_PORT, GossipMembership, LiveMembers, Membership, MembershipConfig, Timing,
};
use tokio::sync::watch;

const SECRET: &[u8] = b"c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Q=";
/// Generous bound for a loaded 2-core machine; the figures printed are the real ones.
const DETECTION_BOUND: Duration = Duration::from_secs(3);

fn addr(test: u8, member: u8) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 77, test, member)),
        DEFAULT_PORT,
    )
}

async fn member(name: &str, bind: SocketAddr, secret: &[u8]) -> GossipMembership {
    GossipMembership::start(MembershipConfig {
        node_name: name.into(),
        bind,
        advertise: None,
        secret: secret.to_vec(),
        timing: Timing::default(),
    })
    .await
    .unwrap_or_else(|e| panic!("starting {name} on {bind}: {e}"))
}

fn names(list: &[&str]) -> LiveMembers {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until the live set satisfies `pred`; returns how long it took.
async fn wait_for(
    rx: &mut watch::Receiver<LiveMembers>,
    within: Duration,
    pred: impl Fn(&LiveMembers) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    tokio::time::timeout(within, rx.wait_for(|m| pred(m)))
        .await
        .ok()
        .and_then(Result::ok)
        .map(|_| start.elapsed())
}

/// Starts `n` members of one cluster in subnet 127.77.`test`.0/24, all joined.
async fn cluster(test: u8, n: u8) -> Vec<(String, GossipMembership)> {
    let mut out = Vec::new();
    for i in 1..=n {
        let name = format!("node-{i}");
        out.push((name.clone(), member(&name, addr(test, i), SECRET).await));
    }
    let seed = [addr(test, 1)];
    for (name, m) in out.iter().skip(1) {
        let joined = m
            .join(&seed)
            .await
            .unwrap_or_else(|e| panic!("{name} joining: {e}"));
        assert_eq!(joined, 1, "{name} joined the seed");
    }
    let all: LiveMembers = out.iter().map(|(n, _)| n.clone()).collect();
    for (name, m) in &out {
        let mut rx = m.subscribe();
        let took = wait_for(&mut rx, Duration::from_secs(5), |live| *live == all).await;
        assert!(
            took.is_some(),
            "{name} sees {all:?}, has {:?}",
            m.live_members().await
        );
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_join_and_see_each_other() {
    let members = cluster(1, 3).await;
    for (name, m) in &members {
        assert_eq!(
            m.live_members().await,
            names(&["node-1", "node-2", "node-3"]),
            "{name}"
        );
    }
    for (_, m) in &members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_disappears_within_the_tuned_time() {
    let mut took = Vec::new();
    for trial in 0..5u8 {
        let members = cluster(10 + trial, 3).await;
        let (dead, victim) = &members[2];
        let mut watchers: Vec<_> = members[..2].iter().map(|(_, m)| m.subscribe()).collect();
        let start = Instant::now();
        // A crash: no leave message, the sockets just go silent.
        victim.shutdown().await.unwrap();
        for rx in &mut watchers {
            let seen = wait_for(rx, DETECTION_BOUND * 2, |live| !live.contains(dead)).await;
            assert!(
                seen.is_some(),
                "trial {trial}: {dead} still live after {:?}",
                DETECTION_BOUND * 2
            );
        }
        took.push(start.elapsed());
        for (_, m) in &members[..2] {
            m.shutdown().await.unwrap();
        }
    }
    let (med, max) = (
        median(took.clone()),
        took.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "crash detection among 3 members, 5 trials: median {med:?}, max {max:?}, all {took:?}"
    );
    assert!(max < DETECTION_BOUND, "crash detection took {max:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_leave_is_seen_quickly() {
    let mut took = Vec::new();
    for trial in 0..5u8 {
        let members = cluster(20 + trial, 3).await;
        let (gone, leaver) = &members[2];
        let mut watchers: Vec<_> = members[..2].iter().map(|(_, m)| m.subscribe()).collect();
        let start = Instant::now();
        // The others react when the leave message reaches them; `leave` itself
        // returns later, once memberlist has retransmitted it enough.
        let (left, (seen, both_saw)) = tokio::join!(leaver.leave(), async {
            let mut seen = true;
            for rx in &mut watchers {
                seen &= wait_for(rx, DETECTION_BOUND, |live| !live.contains(gone))
                    .await
                    .is_some();
            }
            (seen, start.elapsed())
        });
        left.unwrap();
        leaver.shutdown().await.unwrap();
        assert!(seen, "trial {trial}: {gone} still live after leaving");
        took.push(both_saw);
        for (_, m) in &members[..2] {
            m.shutdown().await.unwrap();
        }
    }
    let (med, max) = (
        median(took.clone()),
        took.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "clean leave seen by both others, 5 trials: median {med:?}, max {max:?}, all {took:?}"
    );
    assert!(
        med < Duration::from_millis(300),
        "a leave is not waited for like a crash: {med:?}"
    );
}

/// Asserts for `during` that the cluster's live sets stay exactly `expected`.
async fn stays(members: &[(String, GossipMembership)], expected: &LiveMembers, during: Duration) {
    let deadline = Instant::now() + during;
    while Instant::now() < deadline {
        for (name, m) in members {
            assert_eq!(&m.live_members().await, expected, "{name}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_key_cannot_join() {
    let members = cluster(30, 2).await;
    let intruder = member("intruder", addr(30, 9), b"another secret").await;
    let result = intruder.join(&[addr(30, 1), addr(30, 2)]).await;
    assert!(
        result.is_err(),
        "joining with another key must fail: {result:?}"
    );
    stays(
        &members,
        &names(&["node-1", "node-2"]),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(intruder.live_members().await, names(&["intruder"]));
    intruder.shutdown().await.unwrap();
    for (_, m) in &members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_member_cannot_join() {
    use memberlist::net::{NetTransport, NetTransportOptions};
    use memberlist::proto::{MaybeResolvedAddress, NodeId};
    use memberlist::tokio::{TokioRuntime, TokioSocketAddrResolver, TokioTcp};
    use memberlist::{Memberlist, Options};
    type Plain = Memberlist<NetTransport<NodeId, TokioSocketAddrResolver, TokioTcp, TokioRuntime>>;

    let members = cluster(31, 2).await;
    // A plaintext peer, as memberlist builds one without a key.
    let mut transport = NetTransportOptions::<NodeId, TokioSocketAddrResolver, TokioTcp>::new(
        NodeId::new("plain").unwrap(),
    );
    transport.add_bind_address(addr(31, 9));
    let plain = Plain::new(transport, Options::lan()).await.unwrap();
    assert!(!plain.encryption_enabled());
    let result = plain
        .join(MaybeResolvedAddress::Resolved(addr(31, 1)))
        .await;
    assert!(
        result.is_err(),
        "a plaintext join must be refused: {result:?}"
    );
    stays(
        &members,
        &names(&["node-1", "node-2"]),
        Duration::from_secs(2),
    )
    .await;
    let seen_by_plain: BTreeSet<String> = plain
        .online_members()
        .await
        .iter()
        .map(|n| n.id().as_str().to_owned())
        .collect();
    assert_eq!(seen_by_plain, names(&["plain"]));
    plain.shutdown().await.unwrap();
    for (_, m) in &members {
        m.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_rejoins_under_its_name() {
    let members = cluster(40, 3).await;
    let mut watcher = members[0].1.subscribe();
    members[2].1.shutdown().await.unwrap();
    let gone = wait_for(&mut watcher, DETECTION_BOUND * 2, |live| {
        !live.contains("node-3")
    })
    .await;
    assert!(gone.is_some(), "the crash is seen first");

    // The pod comes back on the same host: same name, same address.
    let restarted = member("node-3", addr(40, 3), SECRET).await;
    let start = Instant::now();
    restarted.join(&[addr(40, 1)]).await.unwrap();
    let all = names(&["node-1", "node-2", "node-3"]);
    for (name, m) in members[..2].iter() {
        let mut rx = m.subscribe();
        let back = wait_for(&mut rx, Duration::from_secs(5), |live| *live == all).await;
        assert!(
            back.is_some(),
            "{name} sees node-3 again, has {:?}",
            m.live_members().await
        );
    }
    println!(
        "restarted member live again everywhere after {:?}",
        start.elapsed()
    );
    restarted.shutdown().await.unwrap();
    for (_, m) in &members[..2] {
        m.shutdown().await.unwrap();
    }
}
