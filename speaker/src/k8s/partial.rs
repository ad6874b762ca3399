//! The parts of Services and EndpointSlices the speaker reads, as types of
//! their own. Every speaker lists and watches every Service and every
//! EndpointSlice of the cluster; deserializing only these fields (serde
//! skips the rest without allocating) makes listing 10,000 Services
//! cheaper in CPU and memory than with the full k8s-openapi types, whose
//! managed fields, ports and selectors the speaker never reads (figures in
//! docs/bgp.md). The shapes and field names follow the Kubernetes API, so
//! the objects are the API server's own, just read in part.

use std::collections::BTreeMap;

use ferrolb_config::model::ANNOUNCE_EXTERNAL_IPS_ANNOTATION;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// The metadata fields the speaker reads. `resourceVersion` is kept because
/// the watcher resumes from it; the labels only where asked for.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaPart {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl MetaPart {
    fn into_meta(self, keep_labels: bool) -> ObjectMeta {
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            uid: self.uid,
            resource_version: self.resource_version,
            labels: self.labels.filter(|_| keep_labels),
            // The one annotation the speaker reads; the others are dropped.
            annotations: self
                .annotations
                .and_then(|mut a| a.remove_entry(ANNOUNCE_EXTERNAL_IPS_ANNOTATION))
                .map(|(k, v)| BTreeMap::from([(k, v)])),
            ..ObjectMeta::default()
        }
    }
}

/// Reads `metadata` without labels (a Service's are never read), with
/// only the `ferrolb.io/announce-external-ips` annotation.
fn meta_without_labels<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Ok(Option::<MetaPart>::deserialize(d)?
        .unwrap_or_default()
        .into_meta(false))
}

/// Reads `metadata` with its labels (an EndpointSlice names its Service there).
fn meta_with_labels<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    Ok(Option::<MetaPart>::deserialize(d)?
        .unwrap_or_default()
        .into_meta(true))
}

/// A core/v1 Service, as far as the speaker reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Service {
    /// Name, namespace, uid, resourceVersion and the external-IPs annotation only.
    #[serde(default, deserialize_with = "meta_without_labels")]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default)]
    pub spec: Option<ServiceSpec>,
    /// `status`.
    #[serde(default)]
    pub status: Option<ServiceStatus>,
}

/// The `spec` fields of a Service the speaker reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `spec.type`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// `spec.loadBalancerClass`.
    pub load_balancer_class: Option<String>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: Option<String>,
    /// `spec.externalIPs`.
    #[serde(rename = "externalIPs")]
    pub external_ips: Option<Vec<String>>,
}

/// The `status` fields of a Service the speaker reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// `status.loadBalancer`.
    pub load_balancer: Option<LoadBalancerStatus>,
}

/// `status.loadBalancer`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LoadBalancerStatus {
    /// `status.loadBalancer.ingress`.
    pub ingress: Option<Vec<LoadBalancerIngress>>,
}

/// One `status.loadBalancer.ingress[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LoadBalancerIngress {
    /// `ip` (hostname-only entries have none).
    pub ip: Option<String>,
}

/// A discovery/v1 EndpointSlice, as far as the speaker reads it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EndpointSlice {
    /// Name, namespace, uid, resourceVersion and labels.
    #[serde(default, deserialize_with = "meta_with_labels")]
    pub metadata: ObjectMeta,
    /// `endpoints`.
    #[serde(default)]
    pub endpoints: Option<Vec<Endpoint>>,
}

/// One `endpoints[]` entry of an EndpointSlice.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `conditions`.
    pub conditions: Option<EndpointConditions>,
}

/// `endpoints[].conditions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EndpointConditions {
    /// `ready` (unset: ready, as Kubernetes defines it).
    pub ready: Option<bool>,
}

/// Makes a partial type a Kubernetes resource of the same kind and URL as
/// the full one, so that kube's `Api`, watcher and reflector serve it.
macro_rules! resource_like {
    ($partial:ty, $full:ty) => {
        impl k8s_openapi::Resource for $partial {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$full as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $partial {
            type Ty = ObjectMeta;

            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource_like!(Service, k8s_openapi::api::core::v1::Service);
resource_like!(
    EndpointSlice,
    k8s_openapi::api::discovery::v1::EndpointSlice
);

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use serde_json::json;

    #[test]
    fn only_the_external_ips_annotation_and_the_external_ips_are_kept() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": {
                "metallb.universe.tf/address-pool": "default",
                "ferrolb.io/announce-external-ips": "true",
            }},
            "spec": {"type": "ClusterIP", "externalIPs": ["192.168.5.9"]},
        }))
        .unwrap();
        assert_eq!(
            svc.metadata.annotations,
            Some(
                [(
                    "ferrolb.io/announce-external-ips".to_string(),
                    "true".to_string()
                )]
                .into()
            )
        );
        assert_eq!(
            svc.spec.unwrap().external_ips,
            Some(vec!["192.168.5.9".to_string()])
        );
    }

    /// A Service as a real API server sends it: every field the speaker
    /// does not read included.
    fn full_service() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "uid": "7c1e",
                "resourceVersion": "42",
                "labels": {"app": "web"},
                "annotations": {"metallb.universe.tf/address-pool": "default"},
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {
                "type": "LoadBalancer",
                "loadBalancerClass": "ferrolb",
                "externalTrafficPolicy": "Local",
                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 31000}],
                "selector": {"app": "web"},
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
            },
            "status": {"loadBalancer": {"ingress": [
                {"ip": "192.168.5.5", "ipMode": "VIP"},
                {"hostname": "lb.example"},
            ]}},
        })
    }

    #[test]
    fn a_full_service_is_read_in_part() {
        let svc: Service = serde_json::from_value(full_service()).unwrap();
        assert_eq!(svc.metadata.name.as_deref(), Some("web"));
        assert_eq!(svc.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(svc.metadata.uid.as_deref(), Some("7c1e"));
        assert_eq!(svc.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(svc.metadata.labels, None, "a Service's labels are not kept");
        assert_eq!(svc.metadata.managed_fields, None);
        assert_eq!(svc.metadata.annotations, None);
        assert_eq!(
            svc.spec,
            Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: Some("ferrolb".into()),
                external_traffic_policy: Some("Local".into()),
                external_ips: None,
            })
        );
        let ingress = svc.status.unwrap().load_balancer.unwrap().ingress.unwrap();
        assert_eq!(ingress[0].ip.as_deref(), Some("192.168.5.5"));
        assert_eq!(ingress[1].ip, None, "a hostname-only entry has no ip");
    }

    #[test]
    fn missing_and_null_parts_read_as_absent() {
        let cases = [
            ("no_spec_no_status", json!({"metadata": {"name": "a"}})),
            (
                "null_spec_and_status",
                json!({"metadata": {"name": "a"}, "spec": null, "status": null}),
            ),
            (
                "empty_load_balancer_status",
                json!({"metadata": {"name": "a"}, "status": {"loadBalancer": {}}}),
            ),
            ("no_metadata", json!({})),
            ("null_metadata", json!({"metadata": null})),
        ];
        for (rule, value) in cases {
            let svc: Service =
                serde_json::from_value(value).unwrap_or_else(|e| panic!("{rule}: {e}"));
            let ips = svc
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|l| l.ingress);
            assert_eq!(ips, None, "{rule}");
        }
    }

    #[test]
    fn a_full_endpoint_slice_is_read_in_part() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-abc",
                "namespace": "default",
                "resourceVersion": "43",
                "labels": {"kubernetes.io/service-name": "web"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "7c1e"}],
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.10"], "nodeName": "node1",
                 "conditions": {"ready": true, "serving": true, "terminating": false},
                 "targetRef": {"kind": "Pod", "name": "web-1"}},
                {"addresses": ["10.244.2.10"]},
            ],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }))
        .unwrap();
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            "web"
        );
        assert_eq!(slice.metadata.owner_references, None);
        let endpoints = slice.endpoints.unwrap();
        assert_eq!(endpoints[0].node_name.as_deref(), Some("node1"));
        assert_eq!(endpoints[0].conditions.as_ref().unwrap().ready, Some(true));
        assert_eq!(endpoints[1], Endpoint::default());
    }

    #[test]
    fn partial_kinds_are_served_at_the_full_kinds_urls() {
        assert_eq!(Service::kind(&()), "Service");
        assert_eq!(Service::api_version(&()), "v1");
        assert_eq!(
            Service::url_path(&(), Some("default")),
            "/api/v1/namespaces/default/services"
        );
        assert_eq!(EndpointSlice::api_version(&()), "discovery.k8s.io/v1");
        assert_eq!(
            EndpointSlice::url_path(&(), None),
            "/apis/discovery.k8s.io/v1/endpointslices"
        );
        let svc: Service = serde_json::from_value(full_service()).unwrap();
        let reference = svc.object_ref(&());
        assert_eq!(reference.kind.as_deref(), Some("Service"));
        assert_eq!(reference.api_version.as_deref(), Some("v1"));
        assert_eq!(reference.uid.as_deref(), Some("7c1e"));
    }
}
