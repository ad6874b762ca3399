//! Allocation cost must not grow with the addresses already handed out:
//! 100,000 allocations from one /12 pool and 100,000 from a mix of 64 blocks
//! in 5 pools, timing the first 10% (allocations 1 to 10,000) and the last
//! 10% (90,001 to 100,000) of one continuous run. Criterion reports the time
//! per 10,000 allocations; divide by 10,000 for one.
// Constant addresses and a bench's own invariants: a panic is the right report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_config::model::{AddressBlock, Config, IpFamily, Origin, Pool};
use ferrolb_controller::allocator::Allocator;
use ferrolb_controller::service::{
    FamilyRequest, Protocol, ServiceKey, ServiceRequest, TrafficPolicy,
};

const TOTAL: usize = 100_000;
const WINDOW: usize = TOTAL / 10;

fn pool(name: &str, blocks: Vec<AddressBlock>, auto_assign: bool, avoid_buggy_ips: bool) -> Pool {
    Pool {
        name: name.into(),
        blocks,
        auto_assign,
        avoid_buggy_ips,
        allocation: None,
        origin: Origin::ConfigMap { index: 0 },
    }
}

fn net(text: &str) -> AddressBlock {
    AddressBlock::from_net(text.parse().unwrap())
}

fn range(first: u32, count: u32) -> AddressBlock {
    AddressBlock::new(first.into_ip(), (first + count - 1).into_ip()).unwrap()
}

trait IntoIp {
    fn into_ip(self) -> std::net::IpAddr;
}

impl IntoIp for u32 {
    fn into_ip(self) -> std::net::IpAddr {
        std::net::IpAddr::V4(self.into())
    }
}

/// One pool, one /12 (1,048,576 addresses).
fn slash12() -> Config {
    Config {
        pools: vec![pool("big", vec![net("10.0.0.0/12")], true, false)],
        ..Default::default()
    }
}

/// 64 blocks in 5 pools: CIDRs and ranges, IPv4 and IPv6, avoid-buggy-ips on
/// and off, one manual pool; the first pools run out on the way.
fn mix() -> Config {
    let gold = (0..8).map(|i| net(&format!("192.168.{i}.0/26"))).collect();
    // Ranges of 1,000 that straddle .255/.0 boundaries.
    let silver = (0..16u32)
        .map(|i| {
            range(
                u32::from(std::net::Ipv4Addr::new(172, 16, 0, 100)) + i * 4096,
                1000,
            )
        })
        .collect();
    let v6 = (0..16).map(|i| net(&format!("fd00:{i:x}::/116"))).collect();
    let bronze = (0..16).map(|i| net(&format!("10.{i}.0.0/20"))).collect();
    let manual = (0..8).map(|i| net(&format!("198.18.{i}.0/24"))).collect();
    Config {
        pools: vec![
            pool("gold", gold, true, false),
            pool("silver", silver, true, true),
            pool("v6", v6, true, false),
            pool("bronze", bronze, true, true),
            pool("manual", manual, false, false),
        ],
        ..Default::default()
    }
}

fn request(i: usize) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i}")),
        labels: BTreeMap::new(),
        pool: None,
        sharing_key: None,
        requested: Vec::new(),
        families: FamilyRequest::Single(IpFamily::V4),
        ports: vec![(Protocol::Tcp, 80)],
        traffic_policy: TrafficPolicy::Cluster,
        selector: BTreeMap::from([("app".to_string(), format!("svc-{i}"))]),
        lb_class: None,
        current: Vec::new(),
    }
}

/// Plain IPv4 Services.
fn plain() -> Vec<ServiceRequest> {
    (0..TOTAL).map(request).collect()
}

/// A third IPv6, pairs sharing an IP (TCP/80 + TCP/443), a few asking for the manual pool.
fn mixed() -> Vec<ServiceRequest> {
    (0..TOTAL)
        .map(|i| {
            let mut r = request(i);
            if i % 3 == 2 {
                r.families = FamilyRequest::Single(IpFamily::V6);
            }
            if i % 10 < 2 {
                r.sharing_key = Some(format!("pair-{}", i / 10));
                r.ports = vec![(Protocol::Tcp, if i % 10 == 0 { 80 } else { 443 })];
            }
            if i % 100 == 99 && i % 3 != 2 {
                r.pool = Some("manual".into());
            }
            r
        })
        .collect()
}

/// Runs all 100,000 allocations into a fresh allocator, timing only the
/// allocations of `window` (so both windows are measured in the same
/// conditions: one continuous run, nothing else touching the caches).
fn timed_run(config: &Config, requests: &[ServiceRequest], window: Range<usize>) -> Duration {
    let labels = BTreeMap::new();
    let mut a = Allocator::new(config);
    let mut elapsed = Duration::ZERO;
    let mut start = None;
    for (i, r) in requests.iter().enumerate() {
        if i == window.start {
            start = Some(Instant::now());
        }
        black_box(
            a.assign(r, &labels)
                .expect("the bench pools are large enough"),
        );
        if i + 1 == window.end
            && let Some(s) = start.take()
        {
            elapsed = s.elapsed();
            break;
        }
    }
    black_box(a);
    elapsed
}

fn bench(c: &mut Criterion) {
    for (name, config, requests) in [("slash12", slash12(), plain()), ("mix64", mix(), mixed())] {
        let mut group = c.benchmark_group(format!("allocate_{name}"));
        group.throughput(Throughput::Elements(WINDOW as u64));
        group.sample_size(20);
        for (label, window) in [
            ("first_10pct", 0..WINDOW),
            ("last_10pct", TOTAL - WINDOW..TOTAL),
        ] {
            group.bench_function(label, |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| timed_run(&config, &requests, window.clone()))
                        .sum()
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
