//! From Kubernetes objects to the election's inputs, pure: which Services
//! count and with which addresses and endpoints, the Nodes' labels, the
//! memberlist seeds, the memberlist key.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use ferrolb_config::model::ANNOUNCE_EXTERNAL_IPS_ANNOTATION;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Secret};

use super::partial::{EndpointSlice, Service};

use crate::announce::ServiceKey;
use crate::bgp::PeerSecrets;
use crate::election::{Endpoint, ServiceView, TrafficPolicy};

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The key of the memberlist Secret holding the gossip key.
pub const SECRET_KEY: &str = "secretkey";

/// The type of the Secrets holding BGP peer passwords.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
/// The key of a `basic-auth` Secret holding the password.
pub const PASSWORD_KEY: &str = "password";

/// The endpoints of every Service, by Service.
pub type EndpointIndex = HashMap<ServiceKey, Vec<Endpoint>>;

/// What the speaker keeps of an EndpointSlice: its Service and endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceRecord {
    /// The Service named by the `kubernetes.io/service-name` label.
    pub service: ServiceKey,
    /// Its endpoints, reduced to node and readiness.
    pub endpoints: Vec<Endpoint>,
}

/// The record of `slice`, or `None` when it names no Service.
pub fn slice_record(slice: &EndpointSlice) -> Option<SliceRecord> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(SliceRecord {
        service: ServiceKey::new(
            slice.metadata.namespace.clone().unwrap_or_default(),
            service.clone(),
        ),
        endpoints: slice
            .endpoints
            .iter()
            .flatten()
            .map(|e| Endpoint {
                node_name: e.node_name.clone(),
                ready: e.conditions.as_ref().and_then(|c| c.ready),
            })
            .collect(),
    })
}

/// Groups the endpoints of all EndpointSlices by the Service they belong to.
pub fn endpoint_index<'a>(slices: impl IntoIterator<Item = &'a SliceRecord>) -> EndpointIndex {
    let mut index = EndpointIndex::new();
    for slice in slices {
        index
            .entry(slice.service.clone())
            .or_default()
            .extend(slice.endpoints.iter().cloned());
    }
    index
}

/// Whether the speaker handles `service`: type LoadBalancer, and the
/// load-balancer class it is configured with (`None`: only Services without one).
pub fn is_handled(service: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref() == lb_class
}

/// What the speaker keeps of a Service it handles and that has addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// `metadata.uid`, for the Events recorded on it.
    pub uid: Option<String>,
    /// `status.loadBalancer.ingress[].ip`, in status order.
    pub ips: Vec<IpAddr>,
    /// `spec.externalIPs` to announce too (the Service carries the
    /// annotation), in spec order, without the status IPs.
    pub external_ips: Vec<IpAddr>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
}

/// The record of `service`, or `None` when it has nothing to announce: a
/// LoadBalancer Service of ours without an address yet, and a Service of
/// another type without announced external IPs. A LoadBalancer Service of
/// another class is never ours, external IPs included.
pub fn service_record(service: &Service, lb_class: Option<&str>) -> Option<ServiceRecord> {
    let spec = service.spec.as_ref()?;
    let handled = is_handled(service, lb_class);
    if spec.type_.as_deref() == Some("LoadBalancer") && !handled {
        return None;
    }
    let ips: Vec<IpAddr> = if handled {
        status_ips(service)
    } else {
        Vec::new()
    };
    let wants_external = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOUNCE_EXTERNAL_IPS_ANNOTATION))
        .is_some_and(|v| v == "true");
    let mut external_ips: Vec<IpAddr> = Vec::new();
    if wants_external {
        for ip in spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
        {
            if !ips.contains(&ip) && !external_ips.contains(&ip) {
                external_ips.push(ip);
            }
        }
    }
    if ips.is_empty() && external_ips.is_empty() {
        return None;
    }
    let traffic_policy = match spec.external_traffic_policy.as_deref() {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    Some(ServiceRecord {
        uid: service.metadata.uid.clone(),
        ips,
        external_ips,
        traffic_policy,
    })
}

/// `status.loadBalancer.ingress[].ip`, in status order.
fn status_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .iter()
        .filter_map(|s| s.load_balancer.as_ref()?.ingress.as_ref())
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// What election needs of the Service `key` with `record`; its endpoints
/// are taken out of `endpoints` (moved, not copied: each Service is viewed
/// once per snapshot).
pub fn service_view(
    key: ServiceKey,
    record: &ServiceRecord,
    endpoints: &mut EndpointIndex,
) -> ServiceView {
    ServiceView {
        endpoints: endpoints.remove(&key).unwrap_or_default(),
        key,
        ips: record.ips.clone(),
        external_ips: record.external_ips.clone(),
        traffic_policy: record.traffic_policy,
    }
}

/// The reference an Event on the Service `key` names.
pub fn service_reference(key: &ServiceKey, record: &ServiceRecord) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        uid: record.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Every Node's labels, by name.
pub fn node_labels<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    nodes
        .into_iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.clone()?,
                n.metadata.labels.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// One other speaker to gossip with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seed {
    /// The node it runs on (its member name).
    pub node: String,
    /// Its memberlist address.
    pub addr: SocketAddr,
}

/// The other speakers' memberlist addresses: the pod IP (the host IP, as
/// speakers use the host network) of every speaker Pod not on `own_node`
/// and not being deleted, at `port`.
pub fn seeds<'a>(pods: impl IntoIterator<Item = &'a Pod>, own_node: &str, port: u16) -> Vec<Seed> {
    let mut out: Vec<Seed> = pods
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let ip: IpAddr = p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
            (node != own_node).then(|| Seed {
                node,
                addr: SocketAddr::new(ip, port),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The host IP of this node's speaker Pod (`status.hostIP`).
pub fn own_host_ip<'a>(pods: impl IntoIterator<Item = &'a Pod>, own_node: &str) -> Option<IpAddr> {
    pods.into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(own_node))
        .find_map(|p| p.status.as_ref()?.host_ip.as_deref()?.parse().ok())
}

/// The raw bytes of the Secret's `secretkey` (as Kubernetes decodes `data`);
/// `stringData` is only a write-side field, but a test API server may keep it.
pub fn secret_key(secret: &Secret) -> Option<Vec<u8>> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(SECRET_KEY)) {
        return Some(bytes.0.clone());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(SECRET_KEY))
        .map(|s| s.as_bytes().to_vec())
}

/// Whether `secret` may hold a BGP peer password (type `basic-auth`).
pub fn is_basic_auth(secret: &Secret) -> bool {
    secret.type_.as_deref() == Some(BASIC_AUTH)
}

/// The peer passwords of the `basic-auth` Secrets among `secrets`, by
/// (namespace, name); a Secret without a UTF-8 `password` is left out.
pub fn peer_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> PeerSecrets {
    secrets
        .into_iter()
        .filter(|s| is_basic_auth(s))
        .filter_map(|s| {
            let password = match s.data.as_ref().and_then(|d| d.get(PASSWORD_KEY)) {
                Some(bytes) => String::from_utf8(bytes.0.clone()).ok()?,
                None => s.string_data.as_ref()?.get(PASSWORD_KEY)?.clone(),
            };
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone()?,
            );
            Some((key, password))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::partial::{
        Endpoint as SliceEndpoint, EndpointConditions, LoadBalancerIngress, LoadBalancerStatus,
        ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn lb_service(name: &str, class: Option<&str>, policy: Option<&str>, ips: &[&str]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(String::from),
                external_traffic_policy: policy.map(String::from),
                external_ips: None,
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ips.iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                            })
                            .collect(),
                    ),
                }),
            }),
        }
    }

    fn slice(service: &str, endpoints: &[(Option<&str>, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-abc")),
                namespace: Some("default".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into()),
                ..ObjectMeta::default()
            },
            endpoints: Some(
                endpoints
                    .iter()
                    .map(|(node, ready)| SliceEndpoint {
                        node_name: node.map(String::from),
                        conditions: Some(EndpointConditions { ready: *ready }),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn external_ips_are_kept_only_for_services_that_ask() {
        let with = |type_: &str,
                    class: Option<&str>,
                    annotated: bool,
                    status: &[&str],
                    external: &[&str]| {
            let mut svc = lb_service("e", class, None, status);
            let spec = svc.spec.as_mut().unwrap();
            spec.type_ = Some(type_.into());
            spec.external_ips = Some(external.iter().map(|s| s.to_string()).collect());
            if annotated {
                svc.metadata.annotations = Some(
                    [(
                        ANNOUNCE_EXTERNAL_IPS_ANNOTATION.to_string(),
                        "true".to_string(),
                    )]
                    .into(),
                );
            }
            svc
        };
        // (rule, Service, (status IPs, external IPs) of its record if any)
        type Case<'a> = (&'a str, Service, Option<(Vec<&'a str>, Vec<&'a str>)>);
        let cases: Vec<Case> = vec![
            (
                "not annotated: ignored",
                with("ClusterIP", None, false, &[], &["10.0.0.9"]),
                None,
            ),
            (
                "annotated ClusterIP Service",
                with("ClusterIP", None, true, &[], &["10.0.0.9"]),
                Some((vec![], vec!["10.0.0.9"])),
            ),
            (
                "LoadBalancer: status IPs first, external ones without repeats",
                with(
                    "LoadBalancer",
                    None,
                    true,
                    &["10.0.0.1"],
                    &["10.0.0.1", "10.0.0.9", "10.0.0.9", "bad"],
                ),
                Some((vec!["10.0.0.1"], vec!["10.0.0.9"])),
            ),
            (
                "an annotated LoadBalancer waiting for its IP announces the external one",
                with("LoadBalancer", None, true, &[], &["10.0.0.9"]),
                Some((vec![], vec!["10.0.0.9"])),
            ),
            (
                "another class's LoadBalancer is never ours",
                with("LoadBalancer", Some("other"), true, &[], &["10.0.0.9"]),
                None,
            ),
        ];
        for (rule, svc, want) in cases {
            let got = service_record(&svc, None).map(|r| (r.ips, r.external_ips));
            let want = want.map(|(ips, ext)| {
                let parse = |v: Vec<&str>| {
                    v.into_iter()
                        .map(|s| s.parse().unwrap())
                        .collect::<Vec<IpAddr>>()
                };
                (parse(ips), parse(ext))
            });
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn services_the_speaker_handles() {
        let mut cluster_ip = lb_service("c", None, None, &["10.0.0.1"]);
        if let Some(spec) = cluster_ip.spec.as_mut() {
            spec.type_ = Some("ClusterIP".into());
        }
        let cases: Vec<(&str, Service, Option<&str>, bool)> = vec![
            (
                "a_loadbalancer_without_class_is_handled_by_default",
                lb_service("a", None, None, &["10.0.0.1"]),
                None,
                true,
            ),
            (
                "another_class_is_not_handled",
                lb_service("b", Some("other"), None, &["10.0.0.1"]),
                None,
                false,
            ),
            (
                "the_configured_class_is_handled",
                lb_service("b", Some("ferrolb"), None, &["10.0.0.1"]),
                Some("ferrolb"),
                true,
            ),
            (
                "no_class_is_not_handled_when_a_class_is_configured",
                lb_service("b", None, None, &["10.0.0.1"]),
                Some("ferrolb"),
                false,
            ),
            (
                "a_cluster_ip_service_is_not_handled",
                cluster_ip,
                None,
                false,
            ),
            (
                "a_service_without_address_has_no_view",
                lb_service("e", None, None, &[]),
                None,
                false,
            ),
        ];
        for (rule, svc, class, want) in cases {
            let record = service_record(&svc, class);
            assert_eq!(record.is_some(), want, "{rule}");
        }
    }

    #[test]
    fn a_view_carries_addresses_in_status_order_policy_and_endpoints() {
        let svc = lb_service(
            "web",
            None,
            Some("Local"),
            &["fc00::5", "10.0.0.5", "not-an-ip"],
        );
        let slices: Vec<SliceRecord> = [
            slice("web", &[(Some("n1"), Some(true)), (Some("n2"), None)]),
            slice("web", &[(Some("n3"), Some(false))]),
            slice("other", &[(Some("n9"), Some(true))]),
        ]
        .iter()
        .filter_map(slice_record)
        .collect();
        let mut index = endpoint_index(&slices);
        let record = service_record(&svc, None).unwrap();
        assert_eq!(record.uid.as_deref(), Some("uid-web"));
        let key = ServiceKey::new("default", "web");
        let reference = service_reference(&key, &record);
        assert_eq!(
            (
                reference.kind.as_deref(),
                reference.name.as_deref(),
                reference.uid.as_deref()
            ),
            (Some("Service"), Some("web"), Some("uid-web"))
        );
        let view = service_view(key, &record, &mut index);
        assert_eq!(view.key, ServiceKey::new("default", "web"));
        assert_eq!(
            view.ips,
            vec![
                "fc00::5".parse::<IpAddr>().unwrap(),
                "10.0.0.5".parse().unwrap()
            ]
        );
        assert_eq!(view.traffic_policy, TrafficPolicy::Local);
        assert_eq!(
            view.endpoints.len(),
            3,
            "both slices of the Service, not the other's"
        );
        assert!(
            view.has_ready_endpoint_on("n2"),
            "ready unset counts as ready"
        );
        assert!(!view.has_ready_endpoint_on("n3"));
    }

    #[test]
    fn a_slice_without_the_service_name_label_has_no_record() {
        let mut unlabelled = slice("web", &[(Some("n1"), Some(true))]);
        unlabelled.metadata.labels = None;
        assert_eq!(slice_record(&unlabelled), None);
        let labelled = slice_record(&slice("web", &[(Some("n1"), Some(true))])).unwrap();
        assert_eq!(labelled.service, ServiceKey::new("default", "web"));
    }

    fn pod(node: &str, ip: Option<&str>, deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(format!("speaker-{node}")),
                deletion_timestamp: deleting
                    .then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                pod_ip: ip.map(String::from),
                host_ip: ip.map(String::from),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn seeds_are_the_other_live_speaker_pods() {
        let pods = [
            pod("n1", Some("192.168.4.11"), false),
            pod("n2", Some("192.168.4.12"), false),
            pod("n3", None, false),
            pod("n4", Some("192.168.4.14"), true),
        ];
        let got = seeds(&pods, "n1", 7946);
        assert_eq!(
            got,
            vec![Seed {
                node: "n2".into(),
                addr: "192.168.4.12:7946".parse().unwrap()
            }],
            "not ourselves, not without IP, not being deleted"
        );
        assert_eq!(
            own_host_ip(&pods, "n1"),
            Some("192.168.4.11".parse().unwrap())
        );
        assert_eq!(own_host_ip(&pods, "n9"), None);
    }

    #[test]
    fn the_secret_key_comes_from_data_then_string_data() {
        let mut secret = Secret::default();
        assert_eq!(secret_key(&secret), None);
        secret.string_data = Some([(SECRET_KEY.to_string(), "plain".to_string())].into());
        assert_eq!(secret_key(&secret), Some(b"plain".to_vec()));
        secret.data = Some([(SECRET_KEY.to_string(), ByteString(b"bytes".to_vec()))].into());
        assert_eq!(secret_key(&secret), Some(b"bytes".to_vec()));
    }

    #[test]
    fn node_labels_by_name() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some([("zone".to_string(), "a".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        let labels = node_labels(&[node]);
        assert_eq!(labels["n1"]["zone"], "a");
    }

    #[test]
    fn peer_passwords_come_only_from_basic_auth_secrets() {
        let secret = |name: &str, type_: &str, data: Option<&[u8]>, text: Option<&str>| Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("metallb-system".into()),
                ..ObjectMeta::default()
            },
            type_: Some(type_.into()),
            data: data.map(|d| [(PASSWORD_KEY.to_string(), ByteString(d.to_vec()))].into()),
            string_data: text.map(|t| [(PASSWORD_KEY.to_string(), t.to_string())].into()),
            ..Secret::default()
        };
        let secrets = [
            secret("bytes", BASIC_AUTH, Some(b"s3cret"), None),
            secret("text", BASIC_AUTH, None, Some("plain")),
            secret("opaque", "Opaque", Some(b"nope"), None),
            secret("binary", BASIC_AUTH, Some(&[0xff, 0xfe]), None),
            secret("empty", BASIC_AUTH, None, None),
        ];
        let got = peer_secrets(&secrets);
        let key = |n: &str| ("metallb-system".to_string(), n.to_string());
        assert_eq!(got.get(&key("bytes")).map(String::as_str), Some("s3cret"));
        assert_eq!(got.get(&key("text")).map(String::as_str), Some("plain"));
        assert_eq!(
            got.len(),
            2,
            "not Opaque, not non-UTF-8, not without password: {got:?}"
        );
    }
}
