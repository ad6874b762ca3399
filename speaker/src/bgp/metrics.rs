//! The BGP metrics of SPEC A8, per peer (`peer` = `address:port`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The label set of every BGP metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer, as `address:port` (`[v6]:port` for IPv6).
    pub peer: String,
}

/// Per-peer BGP metrics; clones share the same series.
#[derive(Debug, Clone, Default)]
pub struct BgpMetrics {
    /// `metallb_bgp_session_up`: 1 while the session is Established.
    pub session_up: Family<PeerLabels, Gauge>,
    /// `metallb_bgp_updates_total`: UPDATE messages sent.
    pub updates: Family<PeerLabels, Counter>,
    /// `metallb_bgp_announced_prefixes_total`: prefixes the peer has from us.
    pub announced_prefixes: Family<PeerLabels, Gauge>,
    /// `metallb_bgp_pending_prefixes_total`: prefixes to announce that the
    /// peer does not have yet (session down, family not negotiated, no next hop).
    pub pending_prefixes: Family<PeerLabels, Gauge>,
    /// `ferrolb_bgp_session_established_timestamp_seconds`: when the session
    /// last reached Established (Unix time; `ferrolb status peers` shows the uptime).
    pub established_at: Family<PeerLabels, Gauge>,
    /// The BFD sessions that protect the BGP sessions.
    pub bfd: crate::bfd::metrics::BfdMetrics,
}

impl BgpMetrics {
    /// Registers the four families (and the BFD ones) in `registry` and
    /// returns handles to them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            bfd: crate::bfd::metrics::BfdMetrics::register(registry),
            ..Self::default()
        };
        registry.register(
            "metallb_bgp_session_up",
            "BGP session state (1 is up, 0 is down)",
            metrics.session_up.clone(),
        );
        // prometheus-client appends `_total` to counters.
        registry.register(
            "metallb_bgp_updates",
            "Number of BGP UPDATE messages sent",
            metrics.updates.clone(),
        );
        registry.register(
            "metallb_bgp_announced_prefixes_total",
            "Number of prefixes currently being advertised on the BGP session",
            metrics.announced_prefixes.clone(),
        );
        registry.register(
            "metallb_bgp_pending_prefixes_total",
            "Number of prefixes that should be advertised on the BGP session but are not",
            metrics.pending_prefixes.clone(),
        );
        registry.register(
            "ferrolb_bgp_session_established_timestamp_seconds",
            "When the BGP session last reached Established (Unix time), while it is",
            metrics.established_at.clone(),
        );
        metrics
    }

    /// Removes every series of a peer that is no longer configured.
    pub fn remove(&self, labels: &PeerLabels) {
        self.session_up.remove(labels);
        self.updates.remove(labels);
        self.announced_prefixes.remove(labels);
        self.pending_prefixes.remove(labels);
        self.established_at.remove(labels);
    }

    /// Sets the state series of a peer.
    pub fn record(&self, labels: &PeerLabels, up: bool, announced: usize, pending: usize) {
        let was_up = self.session_up.get_or_create(labels).set(i64::from(up)) == 1;
        match (was_up, up) {
            (false, true) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                self.established_at.get_or_create(labels).set(now);
            }
            (true, false) => {
                self.established_at.remove(labels);
            }
            _ => {}
        }
        self.announced_prefixes
            .get_or_create(labels)
            .set(i64::try_from(announced).unwrap_or(i64::MAX));
        self.pending_prefixes
            .get_or_create(labels)
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_metallb_dashboards() {
        let mut registry = Registry::default();
        let metrics = BgpMetrics::register(&mut registry);
        let peer = PeerLabels {
            peer: "192.0.2.1:179".into(),
        };
        metrics.record(&peer, true, 3, 1);
        metrics.updates.get_or_create(&peer).inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "metallb_bgp_session_up{peer=\"192.0.2.1:179\"} 1",
            "metallb_bgp_updates_total{peer=\"192.0.2.1:179\"} 1",
            "metallb_bgp_announced_prefixes_total{peer=\"192.0.2.1:179\"} 3",
            "metallb_bgp_pending_prefixes_total{peer=\"192.0.2.1:179\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(
            text.contains(
                "ferrolb_bgp_session_established_timestamp_seconds{peer=\"192.0.2.1:179\"} 1"
            ),
            "the time of the first Established is kept:\n{text}"
        );
        metrics.record(&peer, false, 0, 3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            !text.contains("ferrolb_bgp_session_established_timestamp_seconds{"),
            "no timestamp while down:\n{text}"
        );
        metrics.remove(&peer);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("192.0.2.1"), "series removed:\n{text}");
    }
}
