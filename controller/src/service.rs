//! What a Service asks of the load balancer: which Services ferrolb handles
//! (SPEC A4), and the annotations and spec fields that steer allocation
//! (requested IPs, pool, sharing key, IP families, ports, traffic policy),
//! read from a `k8s_openapi` Service into a [`ServiceRequest`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::model::IpFamily;
use k8s_openapi::api::core::v1::Service;

/// The two annotation prefixes ferrolb accepts (MetalLB's old and new ones).
pub const ANNOTATION_PREFIXES: [&str; 2] = ["metallb.universe.tf/", "metallb.io/"];
/// Annotation naming the pool to allocate from.
pub const ADDRESS_POOL: &str = "address-pool";
/// Annotation carrying the sharing key.
pub const ALLOW_SHARED_IP: &str = "allow-shared-ip";
/// Annotation listing the requested IPs, comma-separated.
pub const LOAD_BALANCER_IPS: &str = "loadBalancerIPs";

/// A Service's identity (shared vocabulary, defined in the config model).
pub use ferrolb_config::model::ServiceKey;

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One `(protocol, port)` pair of `spec.ports`.
pub type PortKey = (Protocol, i32);

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    /// Traffic may be forwarded to any node (the default).
    #[default]
    Cluster,
    /// Traffic only goes to endpoints on the receiving node.
    Local,
}

/// Which IP families a Service wants, resolved from `spec.ipFamilyPolicy` and
/// `spec.ipFamilies` (the primary family is `ipFamilies[0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyRequest {
    /// Exactly one address of this family (`SingleStack`, the default).
    Single(IpFamily),
    /// One address of each family from a pool that has both, else one of the
    /// family the pool has (`PreferDualStack` with both families allowed).
    PreferDual {
        /// The family listed first in the status.
        primary: IpFamily,
    },
    /// One IPv4 and one IPv6 address from the same pool (`RequireDualStack`).
    RequireDual {
        /// The family listed first in the status.
        primary: IpFamily,
    },
}

impl FamilyRequest {
    /// The family listed first in the status.
    pub fn primary(self) -> IpFamily {
        match self {
            FamilyRequest::Single(f)
            | FamilyRequest::PreferDual { primary: f }
            | FamilyRequest::RequireDual { primary: f } => f,
        }
    }
}

impl fmt::Display for FamilyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FamilyRequest::Single(fam) => write!(f, "SingleStack {}", family_name(*fam)),
            FamilyRequest::PreferDual { .. } => f.write_str("PreferDualStack"),
            FamilyRequest::RequireDual { .. } => f.write_str("RequireDualStack"),
        }
    }
}

/// The Kubernetes spelling of a family (`IPv4`, `IPv6`).
pub fn family_name(family: IpFamily) -> &'static str {
    match family {
        IpFamily::V4 => "IPv4",
        IpFamily::V6 => "IPv6",
    }
}

/// Everything about a Service that allocation depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRequest {
    /// Namespace and name.
    pub key: ServiceKey,
    /// The Service's own labels (for pools' service selectors).
    pub labels: BTreeMap<String, String>,
    /// Pool asked for with the `address-pool` annotation.
    pub pool: Option<String>,
    /// Non-empty `allow-shared-ip` key.
    pub sharing_key: Option<String>,
    /// Exact IPs asked for (`loadBalancerIPs` annotation or `spec.loadBalancerIP`),
    /// at most one per family, primary family first.
    pub requested: Vec<IpAddr>,
    /// Which families the Service wants.
    pub families: FamilyRequest,
    /// `(protocol, port)` pairs of `spec.ports`.
    pub ports: Vec<PortKey>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector` (two `Local` Services share an IP only with identical selectors).
    pub selector: BTreeMap<String, String>,
    /// `spec.loadBalancerClass`.
    pub lb_class: Option<String>,
    /// IPs currently in `status.loadBalancer.ingress[].ip`, in status order.
    pub current: Vec<IpAddr>,
}

/// Why a Service's request cannot be understood (reported as a
/// `LoadBalancerFailed` event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// `metadata.name` is missing.
    #[error("the Service has no metadata.name")]
    MissingName,
    /// A requested IP does not parse.
    #[error("{field}: {value:?} is not an IP address")]
    BadIp {
        /// Where it was written.
        field: String,
        /// The offending text.
        value: String,
    },
    /// Two requested IPs of the same family.
    #[error("{field}: {first} and {second} are both {family}; ask for at most one IP per family")]
    TwoOfOneFamily {
        /// Where they were written.
        field: String,
        /// Their family (`IPv4`/`IPv6`).
        family: &'static str,
        /// First IP.
        first: IpAddr,
        /// Second IP.
        second: IpAddr,
    },
    /// Both `spec.loadBalancerIP` and the `loadBalancerIPs` annotation are set.
    #[error("spec.loadBalancerIP and annotation {annotation} are both set; use only one")]
    BothRequestFields {
        /// The annotation's full name.
        annotation: String,
    },
    /// The same annotation under both prefixes with different values.
    #[error("annotations {first} ({first_value:?}) and {second} ({second_value:?}) disagree")]
    ConflictingAnnotations {
        /// One full annotation name.
        first: String,
        /// Its value.
        first_value: String,
        /// The other full annotation name.
        second: String,
        /// Its value.
        second_value: String,
    },
    /// The requested IPs do not fit the Service's IP family policy.
    #[error("requested IPs {requested} do not match the Service's IP families ({families})")]
    FamilyMismatch {
        /// The requested IPs, comma-separated.
        requested: String,
        /// The families the Service wants.
        families: FamilyRequest,
    },
    /// `spec.ipFamilyPolicy` has an unknown value.
    #[error("spec.ipFamilyPolicy {0:?} is not SingleStack, PreferDualStack or RequireDualStack")]
    BadFamilyPolicy(String),
    /// `spec.ipFamilies` has an unknown value.
    #[error("spec.ipFamilies entry {0:?} is not IPv4 or IPv6")]
    BadFamily(String),
    /// A port's protocol is unknown.
    #[error("spec.ports: protocol {protocol:?} of port {port} is not TCP, UDP or SCTP")]
    BadProtocol {
        /// The port number.
        port: i32,
        /// The offending protocol.
        protocol: String,
    },
}

/// Whether ferrolb handles this Service: `type: LoadBalancer` and a
/// `loadBalancerClass` equal to ours (`None` = only Services without a class;
/// a Service with no class belongs to the cluster's default implementation,
/// which a controller run with `--lb-class` is not).
pub fn qualifies(service: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref() == lb_class
}

impl ServiceRequest {
    /// Reads a Service's allocation request; errors name the offending field.
    pub fn from_service(service: &Service) -> Result<Self, ServiceError> {
        let meta = &service.metadata;
        let name = meta.name.clone().ok_or(ServiceError::MissingName)?;
        let namespace = meta
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let empty = BTreeMap::new();
        let annotations = meta.annotations.as_ref().unwrap_or(&empty);
        let spec = service.spec.clone().unwrap_or_default();

        let pool = annotation(annotations, ADDRESS_POOL)?.map(|(_, v)| v.to_string());
        let sharing_key = annotation(annotations, ALLOW_SHARED_IP)?.map(|(_, v)| v.to_string());
        let requested = requested_ips(annotations, spec.load_balancer_ip.as_deref())?;
        let families = family_request(&spec, &requested)?;
        let requested = order_by_family(requested, families.primary());
        check_requested_families(&requested, families)?;

        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let protocol = match p.protocol.as_deref() {
                    None | Some("TCP") => Protocol::Tcp,
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    Some(other) => {
                        return Err(ServiceError::BadProtocol {
                            port: p.port,
                            protocol: other.to_string(),
                        });
                    }
                };
                Ok((protocol, p.port))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let traffic_policy = match spec.external_traffic_policy.as_deref() {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        // Hostname-only ingress entries and garbage are not ours to keep.
        let current = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.trim().parse().ok())
            .collect();

        Ok(Self {
            key: ServiceKey { namespace, name },
            labels: meta.labels.clone().unwrap_or_default(),
            pool,
            sharing_key,
            requested,
            families,
            ports,
            traffic_policy,
            selector: spec.selector.unwrap_or_default(),
            lb_class: spec.load_balancer_class,
            current,
        })
    }
}

/// The value of an annotation under either prefix (full name, trimmed value);
/// empty values count as unset.
fn annotation<'a>(
    annotations: &'a BTreeMap<String, String>,
    suffix: &str,
) -> Result<Option<(String, &'a str)>, ServiceError> {
    let mut found: Option<(String, &'a str)> = None;
    for prefix in ANNOTATION_PREFIXES {
        let full = format!("{prefix}{suffix}");
        let Some(value) = annotations.get(&full).map(|v| v.trim()) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        match &found {
            Some((first, first_value)) if *first_value != value => {
                return Err(ServiceError::ConflictingAnnotations {
                    first: first.clone(),
                    first_value: first_value.to_string(),
                    second: full,
                    second_value: value.to_string(),
                });
            }
            Some(_) => {}
            None => found = Some((full, value)),
        }
    }
    Ok(found)
}

/// The IPs asked for by annotation or `spec.loadBalancerIP` (not both).
fn requested_ips(
    annotations: &BTreeMap<String, String>,
    load_balancer_ip: Option<&str>,
) -> Result<Vec<IpAddr>, ServiceError> {
    let spec_ip = load_balancer_ip.map(str::trim).filter(|v| !v.is_empty());
    let (field, text) = match (annotation(annotations, LOAD_BALANCER_IPS)?, spec_ip) {
        (Some((annotation, _)), Some(_)) => {
            return Err(ServiceError::BothRequestFields { annotation });
        }
        (Some((annotation, value)), None) => (format!("annotation {annotation}"), value),
        (None, Some(value)) => ("spec.loadBalancerIP".to_string(), value),
        (None, None) => return Ok(Vec::new()),
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip: IpAddr = part.parse().map_err(|_| ServiceError::BadIp {
            field: field.clone(),
            value: part.to_string(),
        })?;
        if let Some(&first) = ips.iter().find(|o| IpFamily::of(**o) == IpFamily::of(ip)) {
            return Err(ServiceError::TwoOfOneFamily {
                field,
                family: family_name(IpFamily::of(ip)),
                first,
                second: ip,
            });
        }
        ips.push(ip);
    }
    Ok(ips)
}

/// Resolves the family policy; the primary family comes from `ipFamilies[0]`,
/// else the cluster IP, else the first requested IP, else IPv4.
fn family_request(
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    requested: &[IpAddr],
) -> Result<FamilyRequest, ServiceError> {
    let listed = spec
        .ip_families
        .iter()
        .flatten()
        .map(|f| match f.as_str() {
            "IPv4" => Ok(IpFamily::V4),
            "IPv6" => Ok(IpFamily::V6),
            other => Err(ServiceError::BadFamily(other.to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| ip.parse::<IpAddr>().ok());
    let primary = listed
        .first()
        .copied()
        .or(cluster_ip.map(IpFamily::of))
        .or(requested.first().map(|ip| IpFamily::of(*ip)))
        .unwrap_or(IpFamily::V4);
    match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => Ok(FamilyRequest::Single(primary)),
        // The API server lists one family only when the cluster has one.
        Some("PreferDualStack") if listed.len() == 1 => Ok(FamilyRequest::Single(primary)),
        Some("PreferDualStack") => Ok(FamilyRequest::PreferDual { primary }),
        Some("RequireDualStack") => Ok(FamilyRequest::RequireDual { primary }),
        Some(other) => Err(ServiceError::BadFamilyPolicy(other.to_string())),
    }
}

/// IPs with the primary family first (at most one per family).
pub(crate) fn order_by_family(mut ips: Vec<IpAddr>, primary: IpFamily) -> Vec<IpAddr> {
    ips.sort_by_key(|ip| IpFamily::of(*ip) != primary);
    ips
}

fn check_requested_families(
    requested: &[IpAddr],
    families: FamilyRequest,
) -> Result<(), ServiceError> {
    if requested.is_empty() {
        return Ok(());
    }
    let fits = match families {
        FamilyRequest::Single(f) => requested.len() == 1 && IpFamily::of(requested[0]) == f,
        // Two IPs are always one per family here (checked while parsing).
        FamilyRequest::PreferDual { .. } => true,
        FamilyRequest::RequireDual { .. } => requested.len() == 2,
    };
    if fits {
        Ok(())
    } else {
        Err(ServiceError::FamilyMismatch {
            requested: join_ips(requested),
            families,
        })
    }
}

/// IPs joined with commas, for messages.
pub fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ..spec
            }),
            status: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn annotations_are_read_under_both_prefixes() {
        for prefix in ANNOTATION_PREFIXES {
            let s = svc(
                &[
                    (&format!("{prefix}address-pool"), "prod"),
                    (&format!("{prefix}allow-shared-ip"), "k1"),
                    (&format!("{prefix}loadBalancerIPs"), "10.0.0.5"),
                ],
                ServiceSpec::default(),
            );
            let r = ServiceRequest::from_service(&s).unwrap();
            assert_eq!(r.pool.as_deref(), Some("prod"), "{prefix}");
            assert_eq!(r.sharing_key.as_deref(), Some("k1"), "{prefix}");
            assert_eq!(r.requested, vec![ip("10.0.0.5")], "{prefix}");
            assert_eq!(r.key, ServiceKey::new("shop", "web"));
        }
    }

    #[test]
    fn bad_requests_give_precise_errors() {
        let dual = ServiceSpec {
            ip_family_policy: Some("RequireDualStack".into()),
            ..Default::default()
        };
        let cases: Vec<(&str, Service, ServiceError)> = vec![
            (
                "unparsable IP",
                svc(
                    &[("metallb.io/loadBalancerIPs", "10.0.0.300")],
                    ServiceSpec::default(),
                ),
                ServiceError::BadIp {
                    field: "annotation metallb.io/loadBalancerIPs".into(),
                    value: "10.0.0.300".into(),
                },
            ),
            (
                "two IPs of one family",
                svc(
                    &[("metallb.universe.tf/loadBalancerIPs", "10.0.0.5, 10.0.0.6")],
                    dual.clone(),
                ),
                ServiceError::TwoOfOneFamily {
                    field: "annotation metallb.universe.tf/loadBalancerIPs".into(),
                    family: "IPv4",
                    first: ip("10.0.0.5"),
                    second: ip("10.0.0.6"),
                },
            ),
            (
                "loadBalancerIP together with loadBalancerIPs",
                svc(
                    &[("metallb.io/loadBalancerIPs", "10.0.0.5")],
                    ServiceSpec {
                        load_balancer_ip: Some("10.0.0.5".into()),
                        ..Default::default()
                    },
                ),
                ServiceError::BothRequestFields {
                    annotation: "metallb.io/loadBalancerIPs".into(),
                },
            ),
            (
                "both prefixes disagree",
                svc(
                    &[
                        ("metallb.universe.tf/address-pool", "a"),
                        ("metallb.io/address-pool", "b"),
                    ],
                    ServiceSpec::default(),
                ),
                ServiceError::ConflictingAnnotations {
                    first: "metallb.universe.tf/address-pool".into(),
                    first_value: "a".into(),
                    second: "metallb.io/address-pool".into(),
                    second_value: "b".into(),
                },
            ),
            (
                "dual-stack request on a single-stack Service",
                svc(
                    &[("metallb.io/loadBalancerIPs", "10.0.0.5,fc00::5")],
                    ServiceSpec::default(),
                ),
                ServiceError::FamilyMismatch {
                    requested: "10.0.0.5,fc00::5".into(),
                    families: FamilyRequest::Single(IpFamily::V4),
                },
            ),
            (
                "RequireDualStack with one requested IP",
                svc(&[("metallb.io/loadBalancerIPs", "fc00::5")], dual.clone()),
                ServiceError::FamilyMismatch {
                    requested: "fc00::5".into(),
                    families: FamilyRequest::RequireDual {
                        primary: IpFamily::V6,
                    },
                },
            ),
            (
                "IPv6 requested by an IPv4 Service",
                svc(
                    &[("metallb.io/loadBalancerIPs", "fc00::5")],
                    ServiceSpec {
                        ip_families: Some(vec!["IPv4".into()]),
                        ..Default::default()
                    },
                ),
                ServiceError::FamilyMismatch {
                    requested: "fc00::5".into(),
                    families: FamilyRequest::Single(IpFamily::V4),
                },
            ),
            (
                "unknown family policy",
                svc(
                    &[],
                    ServiceSpec {
                        ip_family_policy: Some("Sometimes".into()),
                        ..Default::default()
                    },
                ),
                ServiceError::BadFamilyPolicy("Sometimes".into()),
            ),
            (
                "unknown protocol",
                svc(
                    &[],
                    ServiceSpec {
                        ports: Some(vec![ServicePort {
                            port: 80,
                            protocol: Some("tcp".into()),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                ),
                ServiceError::BadProtocol {
                    port: 80,
                    protocol: "tcp".into(),
                },
            ),
        ];
        for (name, service, want) in cases {
            assert_eq!(ServiceRequest::from_service(&service), Err(want), "{name}");
        }
    }

    #[test]
    fn families_follow_policy_and_primary_family() {
        type Case = (
            &'static str,
            ServiceSpec,
            &'static [(&'static str, &'static str)],
            FamilyRequest,
        );
        let cases: Vec<Case> = vec![
            (
                "default is single-stack IPv4",
                ServiceSpec::default(),
                &[],
                FamilyRequest::Single(IpFamily::V4),
            ),
            (
                "ipFamilies[0] is the family",
                ServiceSpec {
                    ip_families: Some(vec!["IPv6".into()]),
                    ..Default::default()
                },
                &[],
                FamilyRequest::Single(IpFamily::V6),
            ),
            (
                "cluster IP gives the family when ipFamilies is absent",
                ServiceSpec {
                    cluster_ip: Some("fd00::10".into()),
                    ..Default::default()
                },
                &[],
                FamilyRequest::Single(IpFamily::V6),
            ),
            (
                "requested IP gives the family last",
                ServiceSpec::default(),
                &[("metallb.io/loadBalancerIPs", "fc00::7")],
                FamilyRequest::Single(IpFamily::V6),
            ),
            (
                "PreferDualStack with both families",
                ServiceSpec {
                    ip_family_policy: Some("PreferDualStack".into()),
                    ip_families: Some(vec!["IPv6".into(), "IPv4".into()]),
                    ..Default::default()
                },
                &[],
                FamilyRequest::PreferDual {
                    primary: IpFamily::V6,
                },
            ),
            (
                "PreferDualStack on a single-stack cluster",
                ServiceSpec {
                    ip_family_policy: Some("PreferDualStack".into()),
                    ip_families: Some(vec!["IPv4".into()]),
                    ..Default::default()
                },
                &[],
                FamilyRequest::Single(IpFamily::V4),
            ),
            (
                "RequireDualStack",
                ServiceSpec {
                    ip_family_policy: Some("RequireDualStack".into()),
                    ..Default::default()
                },
                &[],
                FamilyRequest::RequireDual {
                    primary: IpFamily::V4,
                },
            ),
        ];
        for (name, spec, annotations, want) in cases {
            let r = ServiceRequest::from_service(&svc(annotations, spec)).unwrap();
            assert_eq!(r.families, want, "{name}");
        }
    }

    #[test]
    fn requested_ips_are_ordered_primary_family_first() {
        let s = svc(
            &[("metallb.io/loadBalancerIPs", "fc00::5,10.0.0.5")],
            ServiceSpec {
                ip_family_policy: Some("RequireDualStack".into()),
                ip_families: Some(vec!["IPv4".into(), "IPv6".into()]),
                ..Default::default()
            },
        );
        let r = ServiceRequest::from_service(&s).unwrap();
        assert_eq!(r.requested, vec![ip("10.0.0.5"), ip("fc00::5")]);
    }

    #[test]
    fn ports_policy_selector_and_status_are_read() {
        let mut s = svc(
            &[("metallb.io/allow-shared-ip", "  ")],
            ServiceSpec {
                ports: Some(vec![
                    ServicePort {
                        port: 80,
                        ..Default::default()
                    },
                    ServicePort {
                        port: 53,
                        protocol: Some("UDP".into()),
                        ..Default::default()
                    },
                ]),
                external_traffic_policy: Some("Local".into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                load_balancer_class: Some("ferrolb".into()),
                ..Default::default()
            },
        );
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("10.0.0.9".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        });
        let r = ServiceRequest::from_service(&s).unwrap();
        assert_eq!(r.ports, vec![(Protocol::Tcp, 80), (Protocol::Udp, 53)]);
        assert_eq!(r.traffic_policy, TrafficPolicy::Local);
        assert_eq!(r.selector.get("app").map(String::as_str), Some("web"));
        assert_eq!(r.sharing_key, None, "a blank sharing key is no key");
        assert_eq!(r.lb_class.as_deref(), Some("ferrolb"));
        assert_eq!(r.current, vec![ip("10.0.0.9")]);
    }

    #[test]
    fn a4_only_load_balancers_of_our_class_qualify() {
        let with = |type_: &str, class: Option<&str>| Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                load_balancer_class: class.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases = [
            (
                "LoadBalancer, no class, no --lb-class",
                with("LoadBalancer", None),
                None,
                true,
            ),
            ("ClusterIP never", with("ClusterIP", None), None, false),
            ("NodePort never", with("NodePort", None), None, false),
            (
                "another class is not ours",
                with("LoadBalancer", Some("other")),
                None,
                false,
            ),
            (
                "our class",
                with("LoadBalancer", Some("ferrolb")),
                Some("ferrolb"),
                true,
            ),
            (
                "unset class with --lb-class",
                with("LoadBalancer", None),
                Some("ferrolb"),
                false,
            ),
            ("no spec", Service::default(), None, false),
        ];
        for (name, s, class, want) in cases {
            assert_eq!(qualifies(&s, class), want, "{name}");
        }
    }
}
