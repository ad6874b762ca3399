//! The controller's Prometheus metrics (names of SPEC A8, kept compatible with
//! existing MetalLB dashboards), served by the shell's endpoint
//! ([`ferrolb_shell::serve`]) on port 7472: `/metrics`, `/healthz` (the
//! process is alive) and `/readyz` (the first full sync with the API server
//! is done and the state was rebuilt).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ferrolb_shell::serve::{ConfigGauges, Exporter};
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
    /// The registry and the readiness `/readyz` reports.
    pub exporter: Arc<Exporter>,
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
        let ConfigGauges {
            loaded: config_loaded,
            stale: config_stale,
        } = ConfigGauges::register(&mut registry);
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
            exporter: Arc::new(Exporter::new(registry, "not synced yet")),
            updates,
            update_errors,
            config_loaded,
            config_stale,
            addresses_total,
            addresses_in_use,
        }
    }

    /// Mark the controller ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.exporter.set_ready(ready);
    }

    /// Whether `/readyz` answers 200 (the webhook also reads it).
    pub fn is_ready(&self) -> bool {
        self.exporter.is_ready()
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
        let text = m.exporter.encode();
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
