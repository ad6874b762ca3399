//! The `nodeAssigned` Event, recorded on a Service when this node starts
//! announcing it, off the hot path: the main loop queues, the shell's writer
//! ([`ferrolb_shell::events`]) publishes in the background, so a slow events
//! API never delays an announcement.
//!
//! A speaker starting on a cluster of 10,000 Services takes over all of
//! them at once. Its Events must not compete with its own lists and
//! announcements (nor those of the other speakers) for the API server, so
//! they are published one at a time at a bounded rate; what does not fit the
//! queue is dropped and counted in one log line per burst.

use ferrolb_shell::events::{self, Limits, Note, Reporter};
use k8s_openapi::api::core::v1::ObjectReference;

use crate::announce::Protocol;

/// The Event's reason, as MetalLB records it.
pub const NODE_ASSIGNED: &str = "nodeAssigned";

/// The reason of the Warning Event a node gets when a peer's BFD session fails.
pub const BFD_SESSION_DOWN: &str = "bfdSessionDown";

/// The speaker's bounds: a queue of 1,024, one at a time, 20 a second on
/// average with bursts of 50 after a quiet spell.
const LIMITS: Limits = Limits {
    queue: 1024,
    in_flight: 1,
    rate: Some((20.0, 50.0)),
};

/// The Event's message.
pub fn node_assigned_message(node: &str, protocol: Protocol) -> String {
    format!("announcing from node \"{node}\" with protocol \"{protocol}\"")
}

/// What the `nodeAssigned` Event says for `node` announcing with `protocol`.
pub fn node_assigned_note(node: &str, protocol: Protocol) -> Note {
    Note {
        warning: false,
        reason: NODE_ASSIGNED,
        action: "Announce",
        message: node_assigned_message(node, protocol),
    }
}

/// What the node's Event says when a peer's BFD session went down.
pub fn bfd_down_note(message: String) -> Note {
    Note {
        warning: true,
        reason: BFD_SESSION_DOWN,
        action: "DetectFailure",
        message,
    }
}

/// A handle that queues Events for publication.
#[derive(Clone, Debug)]
pub struct EventSink {
    sink: events::EventSink,
}

impl EventSink {
    /// Starts the publishing task; Events name `reporter` as their source
    /// and `instance` (the node) as the reporting instance.
    pub fn spawn(client: kube::Client, reporter: &str, instance: &str) -> Self {
        let reporter = Reporter {
            controller: reporter.to_owned(),
            instance: instance.to_owned(),
        };
        // Nothing of the speaker's own waits on the Events' API calls.
        let sink = events::EventSink::spawn(client, reporter, LIMITS, || false);
        Self { sink }
    }

    /// Queues a `nodeAssigned` Event on the Service `reference` points to.
    pub fn node_assigned(&self, reference: ObjectReference, node: &str, protocol: Protocol) {
        self.sink
            .record(reference, node_assigned_note(node, protocol));
    }

    /// Queues a Warning Event on Node `node`: a peer's BFD session went down.
    pub fn bfd_down(&self, node: &str, uid: Option<String>, message: String) {
        // A Node has no namespace (its Event goes to `default`); kubectl
        // describe node finds the Event by the Node's name, kind and uid.
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            uid,
            ..ObjectReference::default()
        };
        self.sink.record(regarding, bfd_down_note(message));
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

    #[test]
    fn the_bfd_down_note_is_a_warning() {
        let n = bfd_down_note("down".into());
        assert!(n.warning);
        assert_eq!(n.reason, BFD_SESSION_DOWN);
        assert_eq!(n.message, "down");
    }

    #[test]
    fn the_note_is_a_normal_node_assigned_announce() {
        let n = node_assigned_note("node1", Protocol::Layer2);
        assert!(!n.warning);
        assert_eq!(n.reason, NODE_ASSIGNED);
        assert_eq!(n.action, "Announce");
        assert_eq!(n.message, node_assigned_message("node1", Protocol::Layer2));
    }
}
