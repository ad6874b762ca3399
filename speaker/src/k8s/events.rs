//! The `nodeAssigned` Event, recorded on a Service when this node starts
//! announcing it, off the hot path: the main loop queues, a background task
//! publishes, so a slow events API never delays an announcement.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::announce::Protocol;

/// The Event's reason, as MetalLB records it.
pub const NODE_ASSIGNED: &str = "nodeAssigned";
/// How many Events may wait before new ones are dropped (with a log).
const QUEUE: usize = 4096;
/// Events published concurrently.
const IN_FLIGHT: usize = 8;

/// The Event's message.
pub fn node_assigned_message(node: &str, protocol: Protocol) -> String {
    format!("announcing from node \"{node}\" with protocol \"{protocol}\"")
}

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, String)>,
}

impl EventSink {
    /// Starts the publishing task; Events name `reporter` as their source
    /// and `instance` (the node) as the reporting instance.
    pub fn spawn(client: kube::Client, reporter: &str, instance: &str) -> Self {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, String)>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: reporter.to_owned(),
                instance: Some(instance.to_owned()),
            },
        );
        tokio::spawn(async move {
            futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
                .for_each_concurrent(IN_FLIGHT, |(reference, note)| {
                    let recorder = recorder.clone();
                    async move {
                        let event = Event {
                            type_: EventType::Normal,
                            reason: NODE_ASSIGNED.to_owned(),
                            note: Some(note),
                            action: "Announce".to_owned(),
                            secondary: None,
                        };
                        if let Err(e) = recorder.publish(&event, &reference).await {
                            tracing::warn!(error = %e, "could not record the nodeAssigned event");
                        }
                    }
                })
                .await;
        });
        Self { tx }
    }

    /// Queues a `nodeAssigned` Event on the Service `reference` points to.
    pub fn node_assigned(&self, reference: ObjectReference, node: &str, protocol: Protocol) {
        if self
            .tx
            .try_send((reference, node_assigned_message(node, protocol)))
            .is_err()
        {
            tracing::warn!("event queue full, dropping a nodeAssigned event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_node_and_protocol() {
        assert_eq!(
            node_assigned_message("node1", Protocol::Layer2),
            "announcing from node \"node1\" with protocol \"layer2\""
        );
    }
}
