//! BFD metrics per session, label `peer` = the peer's address. Names
//! follow those MetalLB's FRR mode exports (`metallb_bfd_*`), plus the
//! state as a number (RFC 5880 codes).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::bfd::packet::State;

/// The label set of every BFD metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BfdLabels {
    /// The peer's address.
    pub peer: String,
}

/// Per-session BFD metrics; clones share the same series.
#[derive(Debug, Clone, Default)]
pub struct BfdMetrics {
    /// `metallb_bfd_session_up`: 1 while the session is Up.
    pub session_up: Family<BfdLabels, Gauge>,
    /// `ferrolb_bfd_session_state`: 0 AdminDown, 1 Down, 2 Init, 3 Up.
    pub session_state: Family<BfdLabels, Gauge>,
    /// `metallb_bfd_session_up_events_total`: transitions to Up.
    pub up_events: Family<BfdLabels, Counter>,
    /// `metallb_bfd_session_down_events_total`: transitions from Up to Down.
    pub down_events: Family<BfdLabels, Counter>,
    /// `ferrolb_bfd_state_changes_total`: every state change.
    pub state_changes: Family<BfdLabels, Counter>,
}

impl BfdMetrics {
    /// Registers the families in `registry` and returns handles to them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "metallb_bfd_session_up",
            "BFD session state (1 is up, 0 is down)",
            m.session_up.clone(),
        );
        registry.register(
            "ferrolb_bfd_session_state",
            "BFD session state (RFC 5880 code: 0 AdminDown, 1 Down, 2 Init, 3 Up)",
            m.session_state.clone(),
        );
        // prometheus-client appends `_total` to counters.
        registry.register(
            "metallb_bfd_session_up_events",
            "Number of times the BFD session went Up",
            m.up_events.clone(),
        );
        registry.register(
            "metallb_bfd_session_down_events",
            "Number of times the BFD session went Down after being Up",
            m.down_events.clone(),
        );
        registry.register(
            "ferrolb_bfd_state_changes",
            "Number of BFD session state changes",
            m.state_changes.clone(),
        );
        m
    }

    /// Sets the state series of a session.
    pub fn state(&self, labels: &BfdLabels, state: State) {
        self.session_up
            .get_or_create(labels)
            .set(i64::from(state == State::Up));
        self.session_state
            .get_or_create(labels)
            .set(i64::from(state.code()));
    }

    /// Counts one state change.
    pub fn changed(&self, labels: &BfdLabels, from: State, to: State) {
        self.state_changes.get_or_create(labels).inc();
        if to == State::Up {
            self.up_events.get_or_create(labels).inc();
        }
        if from == State::Up && to != State::Up {
            self.down_events.get_or_create(labels).inc();
        }
        self.state(labels, to);
    }

    /// Removes every series of a session that is gone.
    pub fn remove(&self, labels: &BfdLabels) {
        self.session_up.remove(labels);
        self.session_state.remove(labels);
        self.up_events.remove(labels);
        self.down_events.remove(labels);
        self.state_changes.remove(labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_are_counted_and_the_state_exported() {
        let mut registry = Registry::default();
        let m = BfdMetrics::register(&mut registry);
        let peer = BfdLabels {
            peer: "192.0.2.1".into(),
        };
        m.state(&peer, State::Down);
        m.changed(&peer, State::Down, State::Init);
        m.changed(&peer, State::Init, State::Up);
        m.changed(&peer, State::Up, State::Down);
        m.changed(&peer, State::Down, State::Up);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "metallb_bfd_session_up{peer=\"192.0.2.1\"} 1",
            "ferrolb_bfd_session_state{peer=\"192.0.2.1\"} 3",
            "metallb_bfd_session_up_events_total{peer=\"192.0.2.1\"} 2",
            "metallb_bfd_session_down_events_total{peer=\"192.0.2.1\"} 1",
            "ferrolb_bfd_state_changes_total{peer=\"192.0.2.1\"} 4",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        m.remove(&peer);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("192.0.2.1"), "series removed:\n{text}");
    }
}
