//! Recording Events on Services (`kubectl describe svc` shows them), off the
//! hot path: reconciliation hands events to a bounded queue and a background
//! task publishes them, so a slow or failing events API never delays the
//! status writes that make Services reachable.
//!
//! Events are written directly (events.k8s.io/v1 create) rather than through
//! kube-runtime's `Recorder`: the reconciler already records an Event only
//! when the outcome changes, so the Recorder's per-Event cache (thousands of
//! entries kept six minutes) would only cost memory, and parsing each
//! created Event back costs CPU that the status writes need.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Resource;
use kube::api::PostParams;
use tokio::sync::mpsc;

use crate::reconcile::ServiceEvent;

/// How many Events may wait for publication before new ones are dropped.
const QUEUE: usize = 16_384;
/// Events published concurrently; few, so that status writes (which make
/// Services reachable) get the API server's attention first.
const IN_FLIGHT: usize = 4;
/// How long an Event waits before looking again for a gap in status writes.
const YIELD_TO_WRITES: std::time::Duration = std::time::Duration::from_millis(20);
/// At most this many waits (5 s) before an Event is published anyway.
const MAX_YIELDS: u32 = 250;

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, ServiceEvent)>,
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
        let busy = std::sync::Arc::new(busy);
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, ServiceEvent)>(QUEUE);
        let reporter = reporter.to_string();
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| reporter.clone());
        tokio::spawn(async move {
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                .for_each_concurrent(IN_FLIGHT, |(regarding, ev)| {
                    let client = client.clone();
                    let busy = busy.clone();
                    let event = k8s_event(&reporter, &instance, regarding, &ev);
                    async move {
                        // Bounded, so that a steady stream of writes cannot starve Events.
                        for _ in 0..MAX_YIELDS {
                            if !busy() {
                                break;
                            }
                            tokio::time::sleep(YIELD_TO_WRITES).await;
                        }
                        if let Err(e) = create(client, &event).await {
                            tracing::warn!(reason = %ev.reason, error = %e, "could not record event");
                        }
                    }
                })
                .await;
        });
        Self { tx }
    }

    /// Queue an Event on `service`; dropped (with a log) when the queue is full.
    pub fn record(&self, service: &Service, event: ServiceEvent) {
        let reference = service.object_ref(&());
        if self.tx.try_send((reference, event)).is_err() {
            tracing::warn!("event queue full, dropping an event");
        }
    }
}

/// The events.k8s.io/v1 Event for `ev` on `regarding`.
pub fn k8s_event(
    reporter: &str,
    instance: &str,
    regarding: ObjectReference,
    ev: &ServiceEvent,
) -> Event {
    let name = regarding.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            // A generateName must itself be a valid name prefix: a trailing
            // dot is refused by the real API server, a dash is not.
            generate_name: Some(format!("{name}-")),
            namespace: regarding.namespace.clone(),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        type_: Some(if ev.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(ev.reason.into()),
        action: Some(ev.reason.into()),
        note: Some(ev.message.clone()),
        reporting_controller: Some(reporter.into()),
        reporting_instance: Some(instance.into()),
        regarding: Some(regarding),
        ..Event::default()
    }
}

/// Create the Event without parsing the reply.
async fn create(client: kube::Client, event: &Event) -> Result<(), kube::Error> {
    let url = Event::url_path(&(), event.metadata.namespace.as_deref());
    let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(url)
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_the_service_reason_and_reporter() {
        let reference = ObjectReference {
            kind: Some("Service".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            ..ObjectReference::default()
        };
        let ev = ServiceEvent {
            warning: true,
            reason: crate::reconcile::reason::ALLOCATION_FAILED,
            message: "no IP".into(),
        };
        let e = k8s_event("ferrolb-controller", "pod-1", reference, &ev);
        assert_eq!(e.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.reason.as_deref(), Some("AllocationFailed"));
        assert_eq!(e.note.as_deref(), Some("no IP"));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("ferrolb-controller")
        );
        assert!(
            e.event_time.is_some(),
            "eventTime is required by events.k8s.io/v1"
        );
    }
}
