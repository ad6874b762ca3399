//! The Kubernetes objects that make the lab look like a cluster to ferrolb: a Node per node
//! and a speaker Pod per node. Pure builders; [`super::api`] writes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::topology::Host;

/// The namespace ferrolb runs in (MetalLB's, unchanged).
pub const SPEAKER_NAMESPACE: &str = "metallb-system";
/// The labels MetalLB's speaker Pods carry and ferrolb selects them by.
pub const SPEAKER_LABELS: [(&str, &str); 2] = [("app", "metallb"), ("component", "speaker")];

/// The speaker Pod's name on node `node`.
pub fn speaker_pod_name(node: &str) -> String {
    format!("speaker-{node}")
}

/// The `metallb-system` namespace.
pub fn speaker_namespace() -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(SPEAKER_NAMESPACE.to_string()),
            labels: Some(labels(&[(
                "pod-security.kubernetes.io/enforce",
                "privileged",
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The Node object of lab node `host` (its status goes in with [`node_status`]).
pub fn node(host: &Host) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(host.name.clone()),
            labels: Some(labels(&[
                ("kubernetes.io/hostname", &host.name),
                ("kubernetes.io/os", "linux"),
            ])),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// A merge patch for the Node's status: its addresses and a Ready condition.
pub fn node_status(host: &Host) -> Value {
    json!({
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": host.ipv4.to_string()},
                {"type": "InternalIP", "address": host.ipv6.to_string()},
                {"type": "Hostname", "address": host.name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }
    })
}

/// The speaker Pod on lab node `host` (its status goes in with [`speaker_pod_status`]).
pub fn speaker_pod(host: &Host) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(speaker_pod_name(&host.name)),
            namespace: Some(SPEAKER_NAMESPACE.to_string()),
            labels: Some(labels(&SPEAKER_LABELS)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(host.name.clone()),
            host_network: Some(true),
            // As the DaemonSet of manifests/ferrolb.yaml runs it (the ServiceAccount exists
            // once ferrolb is installed; a real server's admission needs one).
            service_account_name: Some("speaker".to_string()),
            containers: vec![Container {
                name: "speaker".to_string(),
                image: Some("ferrolb/speaker:lab".to_string()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// A merge patch for the speaker Pod's status: Running and Ready, with the node's addresses
/// (a host-network Pod's IPs are its node's).
pub fn speaker_pod_status(host: &Host) -> Value {
    json!({
        "status": {
            "phase": "Running",
            "hostIP": host.ipv4.to_string(),
            "podIP": host.ipv4.to_string(),
            "podIPs": [{"ip": host.ipv4.to_string()}, {"ip": host.ipv6.to_string()}],
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
            ],
        }
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::Topology;

    #[test]
    fn speaker_pods_are_bound_to_their_node_and_labelled_like_metallb() {
        let t = Topology::new("p", 2, false).unwrap();
        let pod = speaker_pod(&t.nodes[1]);
        assert_eq!(pod.metadata.name.as_deref(), Some("speaker-node2"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("metallb-system"));
        let l = pod.metadata.labels.unwrap();
        assert_eq!(l.get("app").map(String::as_str), Some("metallb"));
        assert_eq!(l.get("component").map(String::as_str), Some("speaker"));
        assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node2"));
        let status = speaker_pod_status(&t.nodes[1]);
        assert_eq!(status["status"]["podIP"], "192.168.4.12");
        assert_eq!(status["status"]["phase"], "Running");
    }

    #[test]
    fn nodes_carry_their_hostname_label_and_internal_ips() {
        let t = Topology::new("p", 1, false).unwrap();
        let n = node(&t.nodes[0]);
        assert_eq!(n.metadata.name.as_deref(), Some("node1"));
        assert_eq!(
            n.metadata
                .labels
                .unwrap()
                .get("kubernetes.io/hostname")
                .map(String::as_str),
            Some("node1")
        );
        let status = node_status(&t.nodes[0]);
        assert_eq!(status["status"]["addresses"][0]["address"], "192.168.4.11");
        assert_eq!(status["status"]["addresses"][1]["address"], "fd00:4::11");
    }
}
