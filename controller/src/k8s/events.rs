//! Recording Events on Services (`kubectl describe svc` shows them), off the
//! hot path: reconciliation hands events to a bounded queue and a background
//! task publishes them, so a slow or failing events API never delays the
//! status writes that make Services reachable.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::reconcile::ServiceEvent;

/// How many Events may wait for publication before new ones are dropped.
const QUEUE: usize = 16_384;
/// Events published concurrently; few, so that status writes (which make
/// Services reachable) get the API server's attention first.
const IN_FLIGHT: usize = 4;

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, ServiceEvent)>,
}

impl EventSink {
    /// Start the publishing task; `reporter` names the component in the Events.
    pub fn spawn(client: kube::Client, reporter: &str) -> Self {
        let (tx, rx) = mpsc::channel::<(ObjectReference, ServiceEvent)>(QUEUE);
        let recorder = Recorder::new(client, Reporter::from(reporter));
        tokio::spawn(async move {
            tokio_stream_from(rx)
                .for_each_concurrent(IN_FLIGHT, |(reference, ev)| {
                    let recorder = recorder.clone();
                    async move {
                        let event = Event {
                            type_: if ev.warning { EventType::Warning } else { EventType::Normal },
                            reason: ev.reason.to_string(),
                            note: Some(ev.message.clone()),
                            action: ev.reason.to_string(),
                            secondary: None,
                        };
                        if let Err(e) = recorder.publish(&event, &reference).await {
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

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
