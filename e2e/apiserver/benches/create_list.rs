//! Time to create 5,000 Services at once (64 requests in flight) and list them, over several
//! fresh servers; prints the median and spread. `cargo bench -p ferrolb-e2e-apiserver`.

use std::time::{Duration, Instant};

use ferrolb_e2e_apiserver::{ServerConfig, spawn};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Config};
use serde_json::json;

const SERVICES: usize = 5_000;
const ROUNDS: usize = 7;

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} median {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms   ({} runs)",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

async fn round() -> anyhow::Result<(Duration, Duration)> {
    let server = spawn("127.0.0.1:0".parse()?, ServerConfig::default()).await?;
    let client = Client::try_from(Config::new(server.url().parse()?))?;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let started = Instant::now();
    futures::stream::iter(0..SERVICES)
        .map(|i| {
            let svcs = svcs.clone();
            async move {
                let s: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i:05}")},
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}
                }))?;
                svcs.create(&PostParams::default(), &s).await.map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();
    let started = Instant::now();
    let list = svcs.list(&ListParams::default()).await?;
    let listed = started.elapsed();
    anyhow::ensure!(
        list.items.len() == SERVICES + 1,
        "listed {} Services",
        list.items.len()
    );
    Ok((created, listed))
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut creates = Vec::new();
    let mut lists = Vec::new();
    for _ in 0..ROUNDS {
        let (c, l) = runtime.block_on(round())?;
        creates.push(c);
        lists.push(l);
    }
    summary("create 5,000 Services", creates);
    summary("list 5,000 Services", lists);
    Ok(())
}
