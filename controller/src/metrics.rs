//! The controller's Prometheus metrics (names of SPEC A8, kept compatible with
//! existing MetalLB dashboards) and the HTTP endpoints on port 7472:
//! `/metrics`, `/healthz` (the process is alive) and `/readyz` (the first full
//! sync with the API server is done and the state was rebuilt).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set naming an address pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// Pool name.
    pub pool: String,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Status updates written to the API server.
    pub updates: Counter,
    /// Status updates the API server refused or that failed.
    pub update_errors: Counter,
    /// 1 once a valid config has been loaded.
    pub config_loaded: Gauge,
    /// 1 while the config in force is older than the one in the cluster (refused).
    pub config_stale: Gauge,
    /// Usable addresses per pool.
    pub addresses_total: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// Addresses in use per pool.
    pub addresses_in_use: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let updates = Counter::default();
        let update_errors = Counter::default();
        let config_loaded = Gauge::default();
        let config_stale = Gauge::default();
        let addresses_total = Family::default();
        let addresses_in_use = Family::default();
        // prometheus-client appends `_total` to counter names itself.
        registry.register(
            "metallb_k8s_client_updates",
            "Number of Kubernetes object updates written",
            updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of Kubernetes object updates that failed",
            update_errors.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if a valid config has been loaded",
            config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if the config in force is stale (the newest one was refused)",
            config_stale.clone(),
        );
        registry.register(
            "metallb_allocator_addresses_total",
            "Number of usable IP addresses, per pool",
            addresses_total.clone(),
        );
        registry.register(
            "metallb_allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            addresses_in_use.clone(),
        );
        Self {
            registry,
            updates,
            update_errors,
            config_loaded,
            config_stale,
            addresses_total,
            addresses_in_use,
            ready: AtomicBool::new(false),
        }
    }

    /// Mark the controller ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn ready_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not synced yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_match_metallb_dashboards() {
        let m = Metrics::new();
        m.updates.inc();
        m.config_loaded.set(1);
        m.addresses_total
            .get_or_create(&PoolLabels {
                pool: "my-ip-space".into(),
            })
            .set(5.0);
        m.addresses_in_use
            .get_or_create(&PoolLabels {
                pool: "my-ip-space".into(),
            })
            .set(2.0);
        let text = m.encode();
        for line in [
            "metallb_k8s_client_updates_total 1",
            "metallb_k8s_client_update_errors_total 0",
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 0",
            "metallb_allocator_addresses_total{pool=\"my-ip-space\"} 5.0",
            "metallb_allocator_addresses_in_use_total{pool=\"my-ip-space\"} 2.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
