//! The speaker's Prometheus metrics (SPEC A8 names, compatible with
//! existing MetalLB dashboards), served by the shell's endpoint
//! ([`ferrolb_shell::serve`]) on port 7472.
//!
//! prometheus-client appends `_total` to every counter name, which would
//! rename MetalLB's `metallb_layer2_requests_received` and friends; they are
//! therefore exported as monotonic gauges under their exact names (`rate()`
//! works the same on them).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ferrolb_shell::serve::{ConfigGauges, Exporter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::announce::{Desired, Protocol, ServiceIp};

/// A monotonic count exported as a gauge (see the module doc).
pub type Count = Gauge<u64, AtomicU64>;

/// Label set naming one announced address.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpLabels {
    /// The address.
    pub ip: String,
}

impl From<ServiceIp> for IpLabels {
    fn from(ip: ServiceIp) -> Self {
        Self { ip: ip.to_string() }
    }
}

/// Label set of `metallb_speaker_announced`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnnouncedLabels {
    /// `namespace/name` of the Service.
    pub service: String,
    /// `layer2` or `bgp`.
    pub protocol: String,
    /// This node's name.
    pub node: String,
    /// The address.
    pub ip: String,
}

/// Per-address counters of the layer-2 responder.
#[derive(Debug, Clone, Default)]
pub struct Layer2Metrics {
    /// ARP requests and Neighbor Solicitations received for an owned address.
    pub requests_received: Family<IpLabels, Count>,
    /// ARP replies and Neighbor Advertisements sent in answer.
    pub responses_sent: Family<IpLabels, Count>,
    /// Gratuitous ARP and unsolicited Neighbor Advertisements sent.
    pub gratuitous_sent: Family<IpLabels, Count>,
}

impl Layer2Metrics {
    /// Registers the three families in `registry` and returns handles to them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "metallb_layer2_requests_received",
            "Number of layer2 requests received for owned IPs",
            metrics.requests_received.clone(),
        );
        registry.register(
            "metallb_layer2_responses_sent",
            "Number of layer2 responses sent for owned IPs",
            metrics.responses_sent.clone(),
        );
        registry.register(
            "metallb_layer2_gratuitous_sent",
            "Number of gratuitous layer2 packets sent for owned IPs",
            metrics.gratuitous_sent.clone(),
        );
        metrics
    }

    /// One more request for `ip`.
    pub fn request(&self, ip: ServiceIp) {
        self.requests_received.get_or_create(&ip.into()).inc();
    }

    /// One more response for `ip`.
    pub fn response(&self, ip: ServiceIp) {
        self.responses_sent.get_or_create(&ip.into()).inc();
    }

    /// One more gratuitous packet for `ip`.
    pub fn gratuitous(&self, ip: ServiceIp) {
        self.gratuitous_sent.get_or_create(&ip.into()).inc();
    }
}

/// `metallb_speaker_announced`: 1 per (Service, protocol, node, address)
/// announced by this node, removed when it stops (MetalLB v0.12 left
/// stale series behind).
#[derive(Debug, Clone, Default)]
pub struct AnnouncedMetric {
    /// The family.
    pub announced: Family<AnnouncedLabels, Gauge>,
}

impl AnnouncedMetric {
    /// Registers the family in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metric = Self::default();
        registry.register(
            "metallb_speaker_announced",
            "Services being announced from this node",
            metric.announced.clone(),
        );
        metric
    }

    /// Moves the series from `previous` to `desired` for the layer-2 part.
    pub fn update_layer2(&self, node: &str, previous: &Desired, desired: &Desired) {
        let labels = |service: &crate::announce::ServiceKey, ip: &ServiceIp| AnnouncedLabels {
            service: service.to_string(),
            protocol: Protocol::Layer2.as_str().to_owned(),
            node: node.to_owned(),
            ip: ip.to_string(),
        };
        for (ip, before) in &previous.layer2 {
            for service in &before.services {
                let still = desired
                    .layer2
                    .get(ip)
                    .is_some_and(|now| now.services.contains(service));
                if !still {
                    self.announced.remove(&labels(service, ip));
                }
            }
        }
        for (service, ip) in desired.newly_announced(previous) {
            self.announced.get_or_create(&labels(&service, &ip)).set(1);
        }
    }
}

/// Every metric the speaker exports, and the exporter serving them with the
/// readiness `/readyz` reports (ready: the first sync is done and the
/// speaker is a member).
#[derive(Debug)]
pub struct SpeakerMetrics {
    /// The registry and the readiness flag.
    pub exporter: Arc<Exporter>,
    /// The layer-2 responder's counters.
    pub layer2: Layer2Metrics,
    /// `metallb_speaker_announced`.
    pub announced: AnnouncedMetric,
    /// 1 once a valid config has been loaded.
    pub config_loaded: Gauge,
    /// 1 while the config in force is older than the cluster's (refused).
    pub config_stale: Gauge,
    /// Live members of the speaker cluster, as this node sees them.
    pub members: Gauge,
    /// The BGP sessions' metrics (`metallb_bgp_*`).
    pub bgp: crate::bgp::BgpMetrics,
    /// The status object writer's metrics.
    pub status: crate::k8s::status::StatusMetrics,
}

impl Default for SpeakerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SpeakerMetrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let layer2 = Layer2Metrics::register(&mut registry);
        let announced = AnnouncedMetric::register(&mut registry);
        let members = Gauge::default();
        let bgp = crate::bgp::BgpMetrics::register(&mut registry);
        let status = crate::k8s::status::StatusMetrics::register(&mut registry);
        let ConfigGauges {
            loaded: config_loaded,
            stale: config_stale,
        } = ConfigGauges::register(&mut registry);
        registry.register(
            "ferrolb_speaker_members",
            "Live members of the speaker cluster seen by this speaker",
            members.clone(),
        );
        Self {
            exporter: Arc::new(Exporter::new(registry, "not ready")),
            layer2,
            announced,
            config_loaded,
            config_stale,
            members,
            bgp,
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::{Interfaces, Layer2Announcement, ServiceKey};
    use prometheus_client::encoding::text::encode;

    fn render(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn layer2_counters_keep_metallb_names_without_total_suffix() {
        let mut registry = Registry::default();
        let m = Layer2Metrics::register(&mut registry);
        let ip = ServiceIp::new("10.0.0.5".parse().unwrap());
        m.request(ip);
        m.request(ip);
        m.response(ip);
        m.gratuitous(ip);
        let text = render(&registry);
        assert!(
            text.contains("metallb_layer2_requests_received{ip=\"10.0.0.5\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("metallb_layer2_responses_sent{ip=\"10.0.0.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("metallb_layer2_gratuitous_sent{ip=\"10.0.0.5\"} 1"),
            "{text}"
        );
        assert!(!text.contains("_total"), "{text}");
    }

    #[test]
    fn announced_series_follow_the_desired_state_and_are_removed() {
        let mut registry = Registry::default();
        let m = AnnouncedMetric::register(&mut registry);
        let ip = ServiceIp::new("10.0.0.5".parse().unwrap());
        let mut on = Desired::default();
        on.layer2.insert(
            ip,
            Layer2Announcement {
                interfaces: Interfaces::All,
                services: [ServiceKey::new("default", "web")].into(),
            },
        );
        m.update_layer2("n1", &Desired::default(), &on);
        let text = render(&registry);
        assert!(
            text.contains(r#"metallb_speaker_announced{service="default/web",protocol="layer2",node="n1",ip="10.0.0.5"} 1"#),
            "{text}"
        );
        m.update_layer2("n1", &on, &Desired::default());
        assert!(
            !render(&registry).contains("default/web"),
            "a stopped announcement leaves no series"
        );
    }

    #[test]
    fn speaker_registry_exports_the_bgp_metrics() {
        let m = SpeakerMetrics::new();
        let peer = crate::bgp::metrics::PeerLabels {
            peer: "192.168.4.201:179".into(),
        };
        m.bgp.record(&peer, true, 3, 1);
        let text = m.exporter.encode();
        for line in [
            "metallb_bgp_session_up{peer=\"192.168.4.201:179\"} 1",
            "metallb_bgp_announced_prefixes_total{peer=\"192.168.4.201:179\"} 3",
            "metallb_bgp_pending_prefixes_total{peer=\"192.168.4.201:179\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
}
