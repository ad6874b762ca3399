//! Validating a big configuration: 1,000 pools with 10,000 address blocks,
//! IPv4 and IPv6, CIDRs and ranges, half of the pools announced over BGP
//! with an aggregating advertisement. Goal: under 50 ms.
//!
//! `cargo bench -p ferrolb-config`; criterion writes the median and its
//! spread to `target/criterion/<name>/new/estimates.json`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb_config::crd::{IpAddressPool, IpAddressPoolSpec, Resources};
use ferrolb_config::{load, load_documents};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const POOLS: usize = 1_000;
const BLOCKS_PER_POOL: usize = 10;

/// The `b`-th address entry of pool `p`: four shapes in turn.
fn address(p: usize, b: usize) -> String {
    let (hi, lo) = (p / 256, p % 256);
    match b % 4 {
        0 => format!("10.{hi}.{lo}.{}/30", b * 16),
        1 => format!("10.{hi}.{lo}.{}-10.{hi}.{lo}.{}", b * 16, b * 16 + 9),
        2 => format!("fc00:{p:x}:{b:x}::/64"),
        _ => format!("fc00:{p:x}:{b:x}::10 - fc00:{p:x}:{b:x}::ff"),
    }
}

fn configmap_text() -> String {
    let mut text = String::from("address-pools:\n");
    for p in 0..POOLS {
        let protocol = if p % 2 == 0 { "layer2" } else { "bgp" };
        text.push_str(&format!(
            "- name: pool-{p}\n  protocol: {protocol}\n  addresses:\n"
        ));
        for b in 0..BLOCKS_PER_POOL {
            text.push_str(&format!("  - {}\n", address(p, b)));
        }
        if p % 2 == 1 {
            text.push_str("  bgp-advertisements:\n  - aggregation-length: 30\n    aggregation-length-v6: 124\n  - {}\n");
        }
    }
    text
}

fn resources() -> Resources {
    Resources {
        ip_address_pools: (0..POOLS)
            .map(|p| IpAddressPool {
                metadata: ObjectMeta {
                    name: Some(format!("pool-{p}")),
                    namespace: Some("metallb-system".into()),
                    ..ObjectMeta::default()
                },
                spec: IpAddressPoolSpec {
                    addresses: (0..BLOCKS_PER_POOL).map(|b| address(p, b)).collect(),
                    ..IpAddressPoolSpec::default()
                },
            })
            .collect(),
        ..Resources::default()
    }
}

fn bench(c: &mut Criterion) {
    let text = configmap_text();
    let config =
        load_documents(&text).unwrap_or_else(|e| panic!("benchmark config is invalid: {e}"));
    assert_eq!(config.pools.len(), POOLS);
    assert_eq!(
        config.pools.iter().map(|p| p.blocks.len()).sum::<usize>(),
        POOLS * BLOCKS_PER_POOL
    );

    let objects = resources();
    assert!(load(None, &objects).is_ok());

    let mut group = c.benchmark_group("validate_1000_pools_10000_blocks");
    group.sample_size(30);
    group.bench_function("configmap_yaml", |b| {
        b.iter(|| load_documents(black_box(&text)))
    });
    // Reading the YAML alone, to see what validation itself costs.
    group.bench_function("configmap_yaml_parse_only", |b| {
        b.iter(|| ferrolb_config::configmap::parse_config(black_box(&text)))
    });
    group.bench_function("crd_objects", |b| {
        b.iter(|| load(None, black_box(&objects)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
