//! The `metallb.io/v1beta1` custom resources, with field names and meanings
//! of MetalLB's published API, and the generation of their CRDs.
//!
//! Specs refuse unknown fields, so a field ferrolb does not implement (for
//! example a newer MetalLB's `serviceSelectors`) is an error rather than
//! silently ignored.

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every ferrolb/MetalLB resource.
pub const GROUP: &str = "metallb.io";
/// The one served version.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of the resources.
pub const API_VERSION: &str = "metallb.io/v1beta1";
/// The kinds a configuration is made of (the status kinds are not).
pub const CONFIG_KINDS: [&str; 6] = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
];

/// `IPAddressPool`: addresses that may be handed to Services.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    doc = "IPAddressPool: addresses that may be handed to LoadBalancer Services.",
    root = "IpAddressPool",
    plural = "ipaddresspools",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpAddressPoolSpec {
    /// CIDRs (`192.168.10.0/24`) or inclusive ranges (`192.168.5.5-192.168.5.9`); v4 and v6 may mix.
    pub addresses: Vec<String>,
    /// Whether Services that do not ask for this pool may get addresses from it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Never hand out IPv4 addresses ending in `.0` or `.255` (default false).
    #[serde(
        default,
        rename = "avoidBuggyIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub avoid_buggy_ips: Option<bool>,
    /// Which Services the pool serves and in what priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// `IPAddressPool.spec.serviceAllocation`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAllocation {
    /// Lower values are tried first; 0 or absent = after every prioritised pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Labels of namespaces whose Services may use the pool (OR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Labels of Services that may use the pool (OR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// `L2Advertisement`: announce pools in layer-2 mode.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    doc = "L2Advertisement: announce the selected pools in layer-2 mode (ARP/NDP).",
    plural = "l2advertisements",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L2AdvertisementSpec {
    /// Pools by name (with `ipAddressPoolSelectors` empty too: every IPAddressPool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools by the labels of their IPAddressPool objects (OR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce (OR; empty = all nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce on (empty = every eligible interface).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// ferrolb: also announce the `spec.externalIPs` (inside a selected pool)
    /// of Services annotated `ferrolb.io/announce-external-ips: "true"`.
    #[serde(
        default,
        rename = "announceExternalIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub announce_external_ips: Option<bool>,
}

/// `BGPAdvertisement`: announce pools over BGP.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    doc = "BGPAdvertisement: announce the selected pools over BGP.",
    root = "BgpAdvertisement",
    plural = "bgpadvertisements",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpAdvertisementSpec {
    /// IPv4 prefix length the address is aggregated to (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<i32>,
    /// IPv6 prefix length the address is aggregated to (default 128).
    #[serde(
        default,
        rename = "aggregationLengthV6",
        skip_serializing_if = "Option::is_none"
    )]
    pub aggregation_length_v6: Option<i32>,
    /// LOCAL_PREF sent to iBGP peers (absent or 0 = not sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Communities: `AA:NN`, `large:A:B:C`, or a Community alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Pools by name (with `ipAddressPoolSelectors` empty too: every IPAddressPool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools by the labels of their IPAddressPool objects (OR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (OR; empty = all nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Names of the BGPPeers to announce to (empty = all peers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// ferrolb: also announce the `spec.externalIPs` (inside a selected pool)
    /// of Services annotated `ferrolb.io/announce-external-ips: "true"`.
    #[serde(
        default,
        rename = "announceExternalIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub announce_external_ips: Option<bool>,
}

/// `BGPPeer`: a router the speakers open BGP sessions to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    doc = "BGPPeer: a router the speakers open BGP sessions to.",
    root = "BgpPeer",
    plural = "bgppeers",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    /// Our AS number (1..=4294967295).
    #[serde(rename = "myASN")]
    pub my_asn: u32,
    /// The router's AS number (1..=4294967295).
    #[serde(rename = "peerASN")]
    pub peer_asn: u32,
    /// The router's address.
    pub peer_address: String,
    /// The router's TCP port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// Local address to connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// Proposed hold time, e.g. `90s` (default 90s, or 3 x keepaliveTime when only that is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval, at most the hold time (default hold time / 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// BGP identifier (an IPv4 address).
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Nodes that peer (OR; empty = all nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A `kubernetes.io/basic-auth` Secret holding the TCP MD5 password (not with `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    /// Name of a BFDProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// Allow an eBGP peer more than one hop away.
    #[serde(
        default,
        rename = "ebgpMultiHop",
        skip_serializing_if = "Option::is_none"
    )]
    pub ebgp_multi_hop: Option<bool>,
    /// Graceful restart (RFC 4724): the router keeps our routes while the speaker restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_graceful_restart: Option<bool>,
}

/// `Community`: named aliases for BGP community values.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "Community",
    doc = "Community: named aliases for BGP community values.",
    plural = "communities",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunitySpec {
    /// The aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAlias>,
}

/// One alias of a `Community`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunityAlias {
    /// The alias.
    #[serde(default)]
    pub name: String,
    /// `AA:NN` or `large:A:B:C`.
    #[serde(default)]
    pub value: String,
}

/// `BFDProfile`: BFD session settings a BGPPeer can refer to.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    doc = "BFDProfile: BFD session settings a BGPPeer can refer to.",
    root = "BfdProfile",
    plural = "bfdprofiles",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdProfileSpec {
    /// Minimum receive interval, ms (10..=60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_interval: Option<u32>,
    /// Minimum transmit interval, ms (10..=60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_interval: Option<u32>,
    /// Detect multiplier (2..=255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_multiplier: Option<u32>,
    /// Echo interval, ms (10..=60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_interval: Option<u32>,
    /// Echo mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Passive mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Minimum TTL (1..=254).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ttl: Option<u32>,
}

/// `ServiceL2Status`: which node answers ARP/NDP for a Service, on which
/// interfaces. Written by the speakers, one per (node, Service), in the
/// Service's namespace and owned by it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    doc = "ServiceL2Status: the node that answers for a LoadBalancer Service in layer 2.",
    root = "ServiceL2Status",
    plural = "servicel2statuses",
    namespaced,
    status = "ServiceL2StatusStatus",
    printcolumn = r#"{"name":"Allocated Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Service Name","type":"string","jsonPath":".status.serviceName"}"#,
    printcolumn = r#"{"name":"Service Namespace","type":"string","jsonPath":".status.serviceNamespace"}"#,
    derive = "PartialEq"
)]
/// Empty, as MetalLB's: everything is in `status`.
pub struct ServiceL2StatusSpec {}

/// What a `ServiceL2Status` reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node that answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The Service's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// The Service's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    /// The interfaces it answers on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One interface of a `ServiceL2Status`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct InterfaceInfo {
    /// The interface's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `ServiceBGPStatus`: the BGP peers a node announces a Service to. Written
/// by each announcing speaker, one per (node, Service), in the Service's
/// namespace and owned by it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "metallb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    doc = "ServiceBGPStatus: the peers a node announces a LoadBalancer Service to.",
    root = "ServiceBgpStatus",
    plural = "servicebgpstatuses",
    namespaced,
    status = "ServiceBgpStatusStatus",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Service Name","type":"string","jsonPath":".status.serviceName"}"#,
    printcolumn = r#"{"name":"Service Namespace","type":"string","jsonPath":".status.serviceNamespace"}"#,
    derive = "PartialEq"
)]
/// Empty, as MetalLB's: everything is in `status`.
pub struct ServiceBgpStatusSpec {}

/// What a `ServiceBGPStatus` reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBgpStatusStatus {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The Service's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_name: String,
    /// The Service's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_namespace: String,
    /// The peers (BGPPeer names) the Service is announced to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// All custom resources of a configuration, as a watcher or a file hands them over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// IPAddressPool objects.
    pub ip_address_pools: Vec<IpAddressPool>,
    /// L2Advertisement objects.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// BGPAdvertisement objects.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// BGPPeer objects.
    pub bgp_peers: Vec<BgpPeer>,
    /// Community objects.
    pub communities: Vec<Community>,
    /// BFDProfile objects.
    pub bfd_profiles: Vec<BfdProfile>,
}

impl Resources {
    /// Whether there is no object at all.
    pub fn is_empty(&self) -> bool {
        self.ip_address_pools.is_empty()
            && self.l2_advertisements.is_empty()
            && self.bgp_advertisements.is_empty()
            && self.bgp_peers.is_empty()
            && self.communities.is_empty()
            && self.bfd_profiles.is_empty()
    }

    /// How each object is named in messages ([`object_path`]), in the order
    /// pools, L2 advertisements, BGP advertisements, peers, communities,
    /// BFD profiles.
    pub fn object_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(
            self.ip_address_pools
                .iter()
                .map(|o| object_path("IPAddressPool", &o.metadata)),
        );
        out.extend(
            self.l2_advertisements
                .iter()
                .map(|o| object_path("L2Advertisement", &o.metadata)),
        );
        out.extend(
            self.bgp_advertisements
                .iter()
                .map(|o| object_path("BGPAdvertisement", &o.metadata)),
        );
        out.extend(
            self.bgp_peers
                .iter()
                .map(|o| object_path("BGPPeer", &o.metadata)),
        );
        out.extend(
            self.communities
                .iter()
                .map(|o| object_path("Community", &o.metadata)),
        );
        out.extend(
            self.bfd_profiles
                .iter()
                .map(|o| object_path("BFDProfile", &o.metadata)),
        );
        out
    }

    /// Add every object of `other`.
    pub fn extend(&mut self, other: Resources) {
        self.ip_address_pools.extend(other.ip_address_pools);
        self.l2_advertisements.extend(other.l2_advertisements);
        self.bgp_advertisements.extend(other.bgp_advertisements);
        self.bgp_peers.extend(other.bgp_peers);
        self.communities.extend(other.communities);
        self.bfd_profiles.extend(other.bfd_profiles);
    }
}

/// Namespace assumed for objects written without one: where ferrolb runs.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// How an object is named in messages: `Kind namespace/name`.
pub fn object_path(kind: &str, meta: &ObjectMeta) -> String {
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    match meta.namespace.as_deref() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Kinds whose objects may omit `spec` (MetalLB's docs show an
/// L2Advertisement with metadata only). IPAddressPool and BGPPeer require it:
/// their specs have required fields, so a default of `{}` would violate the
/// CRD's own schema (the real apiextensions server refuses such a CRD).
pub const SPEC_OPTIONAL: [&str; 6] = [
    "BFDProfile",
    "BGPAdvertisement",
    "Community",
    "L2Advertisement",
    "ServiceBGPStatus",
    "ServiceL2Status",
];

/// The CustomResourceDefinitions: the six configuration kinds, then the
/// two status kinds the speakers write.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        BfdProfile::crd(),
        BgpAdvertisement::crd(),
        BgpPeer::crd(),
        Community::crd(),
        IpAddressPool::crd(),
        L2Advertisement::crd(),
        ServiceBgpStatus::crd(),
        ServiceL2Status::crd(),
    ];
    for crd in &mut crds {
        if SPEC_OPTIONAL.contains(&crd.spec.names.kind.as_str()) {
            spec_defaults_to_empty(crd);
        }
    }
    crds
}

/// Make `spec` optional and have the API server default it to `{}`, so
/// objects written without one are stored (and read back) with an empty spec.
fn spec_defaults_to_empty(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = schema.required.as_mut() {
            required.retain(|r| r != "spec");
            if required.is_empty() {
                schema.required = None;
            }
        }
        if let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec")) {
            spec.default = Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                    serde_json::json!({}),
                ),
            );
        }
    }
}

/// Header of the generated `manifests/crds.yaml`.
pub const CRDS_HEADER: &str = "# Generated from ferrolb-config's Rust types: do not edit.\n# Regenerate with: cargo run -p ferrolb-controller --bin ferrolb -- crds > manifests/crds.yaml\n";

/// All CRDs as one multi-document YAML text (the content of `manifests/crds.yaml`).
pub fn definitions_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::from(CRDS_HEADER);
    for crd in definitions() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}
