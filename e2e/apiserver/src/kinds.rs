//! The table of resource kinds the server knows, and how each one behaves.

use std::sync::Arc;

/// Where a kind's objects live: two kinds may share one storage (core and events.k8s.io Events).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey {
    /// API group of the stored form ("" for core).
    pub group: String,
    /// Plural resource name of the stored form.
    pub plural: String,
}

/// Kind-specific rules applied on create, update and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Plain storage, no defaulting.
    Plain,
    /// core/v1 Namespace: phase Active, metadata.name label, deletion cascades.
    Namespace,
    /// core/v1 Service: cluster IPs, node ports, families, validation.
    Service,
    /// core/v1 Pod: status starts Pending.
    Pod,
    /// core/v1 Node: status is kept on create (the kubelet registers nodes with a status).
    Node,
    /// core/v1 Secret: stringData folded into data, type defaulted to Opaque.
    Secret,
    /// discovery.k8s.io/v1 EndpointSlice: address type and addresses validated.
    EndpointSlice,
    /// core/v1 Event, the stored form of every Event.
    CoreEvent,
    /// events.k8s.io/v1 Event: a view of core/v1 Events with renamed fields.
    EventsV1,
    /// apiextensions.k8s.io/v1 CustomResourceDefinition: status and kind registration.
    Crd,
    /// An object of a custom resource.
    Custom,
    /// rbac.authorization.k8s.io/v1 kinds: names are path segments (`metallb-system:controller`).
    Rbac,
}

/// One served resource: a (group, version, plural) and its rules.
#[derive(Debug, Clone)]
pub struct ResourceKind {
    /// API group ("" for core).
    pub group: String,
    /// API version inside the group.
    pub version: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular resource name.
    pub singular: String,
    /// Kind of one object.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether status is written only through the /status subresource.
    pub status_subresource: bool,
    /// Short names for discovery (kubectl).
    pub short_names: Vec<String>,
    /// Where the objects are stored.
    pub storage: StorageKey,
    /// Kind-specific rules.
    pub behaviour: Behaviour,
    /// Whether an update without metadata.resourceVersion is accepted.
    pub allow_unconditional_update: bool,
    /// Whether an update of a missing object creates it.
    pub allow_create_on_update: bool,
    /// Whether metadata.generation is set and bumped on spec changes.
    pub tracks_generation: bool,
    /// Field selector labels accepted besides metadata.name and metadata.namespace.
    pub field_labels: Vec<String>,
    /// Whether the kind was registered by a CustomResourceDefinition (not built in).
    pub from_crd: bool,
}

impl ResourceKind {
    /// The `apiVersion` of this kind's objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The `group/version` string used in discovery (same as `api_version`).
    pub fn group_version(&self) -> String {
        self.api_version()
    }

    /// The kind of a list of these objects.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `plural` or `plural.group`, as the real server names a resource in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind` or `Kind.group`, as the real server names a kind in validation messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether strategic merge patch is accepted (built-in kinds only, like the real server).
    pub fn accepts_strategic_merge(&self) -> bool {
        !matches!(self.behaviour, Behaviour::Custom | Behaviour::Crd)
    }
}

/// A compact description used to build the built-in table.
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    short: &'static [&'static str],
    behaviour: Behaviour,
    create_on_update: bool,
    fields: &'static [&'static str],
}

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The metallb.io/v1beta1 kinds served from the start (see README: no CRD needed).
const METALLB_KINDS: &[(&str, &str)] = &[
    ("ipaddresspools", "IPAddressPool"),
    ("l2advertisements", "L2Advertisement"),
    ("bgpadvertisements", "BGPAdvertisement"),
    ("bgppeers", "BGPPeer"),
    ("communities", "Community"),
    ("bfdprofiles", "BFDProfile"),
];

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        status: true,
        short: &["ns"],
        behaviour: Behaviour::Namespace,
        create_on_update: false,
        fields: &["status.phase"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "nodes",
        kind: "Node",
        namespaced: false,
        status: true,
        short: &["no"],
        behaviour: Behaviour::Node,
        create_on_update: false,
        fields: &["spec.unschedulable"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
        status: true,
        short: &["po"],
        behaviour: Behaviour::Pod,
        create_on_update: false,
        fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        status: true,
        short: &["svc"],
        behaviour: Behaviour::Service,
        create_on_update: false,
        fields: &["spec.clusterIP", "spec.type"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        status: false,
        short: &["ep"],
        behaviour: Behaviour::Plain,
        create_on_update: true,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        status: false,
        short: &["cm"],
        behaviour: Behaviour::Plain,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        status: false,
        short: &[],
        behaviour: Behaviour::Secret,
        create_on_update: false,
        fields: &["type"],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status: false,
        short: &["ev"],
        behaviour: Behaviour::CoreEvent,
        create_on_update: true,
        fields: EVENT_FIELDS,
    },
    Builtin {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        namespaced: true,
        status: false,
        short: &[],
        behaviour: Behaviour::EndpointSlice,
        create_on_update: false,
        fields: &["addressType"],
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        status: false,
        short: &[],
        behaviour: Behaviour::Plain,
        create_on_update: true,
        fields: &[],
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        status: false,
        short: &["ev"],
        behaviour: Behaviour::EventsV1,
        create_on_update: true,
        fields: EVENT_FIELDS,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        status: true,
        short: &["crd", "crds"],
        behaviour: Behaviour::Crd,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        status: false,
        short: &["sa"],
        behaviour: Behaviour::Plain,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        status: true,
        short: &["deploy"],
        behaviour: Behaviour::Plain,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
        status: true,
        short: &["ds"],
        behaviour: Behaviour::Plain,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        namespaced: true,
        status: false,
        short: &[],
        behaviour: Behaviour::Rbac,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
        status: false,
        short: &[],
        behaviour: Behaviour::Rbac,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        status: false,
        short: &[],
        behaviour: Behaviour::Rbac,
        create_on_update: false,
        fields: &[],
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        status: false,
        short: &[],
        behaviour: Behaviour::Rbac,
        create_on_update: false,
        fields: &[],
    },
    // Called on writes of the resources their rules match (see `admission`).
    Builtin {
        group: "admissionregistration.k8s.io",
        version: "v1",
        plural: "validatingwebhookconfigurations",
        kind: "ValidatingWebhookConfiguration",
        namespaced: false,
        status: false,
        short: &[],
        behaviour: Behaviour::Plain,
        create_on_update: false,
        fields: &[],
    },
];

/// The set of kinds served right now; CRDs add and remove entries.
#[derive(Debug, Clone)]
pub struct Registry {
    kinds: Vec<Arc<ResourceKind>>,
}

impl Registry {
    /// The built-in kinds plus the metallb.io/v1beta1 custom resources.
    pub fn builtin() -> Self {
        let mut kinds: Vec<Arc<ResourceKind>> = BUILTINS
            .iter()
            .map(|b| {
                let storage = if b.behaviour == Behaviour::EventsV1 {
                    StorageKey {
                        group: String::new(),
                        plural: "events".into(),
                    }
                } else {
                    StorageKey {
                        group: b.group.into(),
                        plural: b.plural.into(),
                    }
                };
                Arc::new(ResourceKind {
                    group: b.group.into(),
                    version: b.version.into(),
                    plural: b.plural.into(),
                    singular: b.kind.to_ascii_lowercase(),
                    kind: b.kind.into(),
                    namespaced: b.namespaced,
                    status_subresource: b.status,
                    short_names: b.short.iter().map(|s| (*s).to_string()).collect(),
                    storage,
                    behaviour: b.behaviour,
                    allow_unconditional_update: b.behaviour != Behaviour::Crd,
                    allow_create_on_update: b.create_on_update,
                    tracks_generation: b.behaviour == Behaviour::Crd || b.group == "apps",
                    field_labels: b.fields.iter().map(|s| (*s).to_string()).collect(),
                    from_crd: false,
                })
            })
            .collect();
        for (plural, kind) in METALLB_KINDS {
            kinds.push(Arc::new(custom_kind(
                "metallb.io",
                "v1beta1",
                plural,
                kind,
                true,
                true,
                Vec::new(),
                false,
            )));
        }
        Self { kinds }
    }

    /// The kind served at `group/version/plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceKind>> {
        self.kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    }

    /// Every served kind, in registration order.
    pub fn all(&self) -> &[Arc<ResourceKind>] {
        &self.kinds
    }

    /// Adds or replaces the kind at the same group/version/plural.
    pub fn register(&mut self, kind: ResourceKind) {
        let kind = Arc::new(kind);
        match self
            .kinds
            .iter_mut()
            .find(|k| k.group == kind.group && k.version == kind.version && k.plural == kind.plural)
        {
            Some(slot) => *slot = kind,
            None => self.kinds.push(kind),
        }
    }

    /// Removes the kinds a CRD registered for `group/plural`; built-in ones stay.
    pub fn unregister_crd(&mut self, group: &str, plural: &str) {
        self.kinds
            .retain(|k| !(k.from_crd && k.group == group && k.plural == plural));
    }

    /// Groups in first-seen order, each with its versions in first-seen order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for k in &self.kinds {
            match groups.iter_mut().find(|(g, _)| *g == k.group) {
                Some((_, versions)) => {
                    if !versions.contains(&k.version) {
                        versions.push(k.version.clone());
                    }
                }
                None => groups.push((k.group.clone(), vec![k.version.clone()])),
            }
        }
        groups
    }
}

/// A custom resource kind (built-in metallb.io ones or one registered by a CRD).
#[allow(clippy::too_many_arguments)]
pub fn custom_kind(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    status_subresource: bool,
    short_names: Vec<String>,
    from_crd: bool,
) -> ResourceKind {
    ResourceKind {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        namespaced,
        status_subresource,
        short_names,
        storage: StorageKey {
            group: group.into(),
            plural: plural.into(),
        },
        behaviour: Behaviour::Custom,
        allow_unconditional_update: false,
        allow_create_on_update: false,
        tracks_generation: true,
        field_labels: Vec::new(),
        from_crd,
    }
}
