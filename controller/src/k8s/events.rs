//! Recording Events on Services (`kubectl describe svc` shows them), off the
//! hot path: reconciliation hands events to a bounded queue and the shell's
//! writer ([`ferrolb_shell::events`]) publishes them, so a slow or failing
//! events API never delays the status writes that make Services reachable.
//!
//! The reconciler already records an Event only when the outcome changes,
//! so nothing is deduplicated here; what this module adds is the controller's
//! bounds: a large queue, few in flight, and Events waiting for a gap in
//! status writes.

use ferrolb_shell::events::{self, Limits, Note, Reporter};
use k8s_openapi::api::core::v1::Service;
use kube::Resource;

use crate::reconcile::ServiceEvent;

/// The controller's bounds: many may wait (a burst of Services), few are
/// published at once so that status writes (which make Services reachable)
/// get the API server's attention first, and no rate limit beyond that.
const LIMITS: Limits = Limits {
    queue: 16_384,
    in_flight: 4,
    rate: None,
};

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    sink: events::EventSink,
}

impl EventSink {
    /// Start the publishing task; `reporter` names the component in the
    /// Events. `busy` tells whether status writes are in flight: Events wait
    /// for a gap, so that a burst of Services gets its IPs first.
    pub fn spawn(
        client: kube::Client,
        reporter: &str,
        busy: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        let reporter = Reporter {
            controller: reporter.to_owned(),
            instance: std::env::var("HOSTNAME").unwrap_or_else(|_| reporter.to_owned()),
        };
        Self {
            sink: events::EventSink::spawn(client, reporter, LIMITS, busy),
        }
    }

    /// Queue an Event on `service`; dropped (and counted) when the queue is full.
    pub fn record(&self, service: &Service, event: ServiceEvent) {
        self.sink.record(service.object_ref(&()), note(event));
    }
}

/// What the Event says: the reconciler's reason, also as its action.
pub fn note(ev: ServiceEvent) -> Note {
    Note {
        warning: ev.warning,
        reason: ev.reason,
        action: ev.reason,
        message: ev.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_carries_the_reconcilers_reason_as_reason_and_action() {
        let ev = ServiceEvent {
            warning: true,
            reason: crate::reconcile::reason::ALLOCATION_FAILED,
            message: "no IP".into(),
        };
        let n = note(ev);
        assert!(n.warning);
        assert_eq!(n.reason, "AllocationFailed");
        assert_eq!(n.action, "AllocationFailed");
        assert_eq!(n.message, "no IP");
    }
}
