//! The validating admission webhook's decisions, pure: an AdmissionReview
//! request, the config objects the controller's watchers hold and the
//! Services' assigned IPs in; the AdmissionReview response out. No client
//! and no socket here (the TLS/HTTP shell is `crate::webhook`).
//!
//! A change is refused when the configuration it leads to (the proposed
//! object merged with every other current config object, exactly as the
//! controller merges them with `ferrolb_config::load`) has a validation error
//! the current one does not have, or would leave an IP a Service holds in
//! its status outside every pool (when the current one does not already).
//! Problems that exist before the change do not block it, so a broken
//! configuration can always be repaired one object at a time.

use std::collections::BTreeSet;

use ferrolb_config::ConfigErrors;
use ferrolb_config::crd::{self, Resources};
use ferrolb_config::documents;
use ferrolb_config::model::Config;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::allocator::{Allocator, ConfigRefused, OrphanedIp};
use crate::service::{ServiceRequest, qualifies};

/// The only AdmissionReview version served (the one kube-apiserver 1.24 sends first).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// HTTP-like code of a refusal: the object does not validate.
pub const DENIED_CODE: u16 = 422;

/// Why a body cannot be answered with an AdmissionReview response at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The body is not a JSON AdmissionReview.
    #[error("the body is not an AdmissionReview: {0}")]
    Malformed(String),
    /// Another apiVersion than admission.k8s.io/v1.
    #[error("AdmissionReview apiVersion {0:?} is not served (only admission.k8s.io/v1)")]
    Version(String),
    /// No `request` to answer.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// What the webhook reviews for: the controller's own flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The controller's namespace (its `--namespace`).
    pub namespace: String,
    /// The ConfigMap it reads (its `--config`).
    pub config_name: String,
    /// The load-balancer class it handles (its `--lb-class`).
    pub lb_class: Option<String>,
}

/// The cluster as the controller's watchers see it when a request arrives.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// The `config` key of the controller's ConfigMap, if it exists.
    pub configmap: Option<&'a str>,
    /// The metallb.io objects of the controller's namespace.
    pub resources: &'a Resources,
    /// Every Service (their status holds the assigned IPs).
    pub services: &'a [&'a Service],
    /// Whether the controller's namespace is being deleted (uninstall).
    pub namespace_terminating: bool,
}

/// The operation under review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// A new object.
    Create,
    /// A changed object.
    Update,
    /// A removed object.
    Delete,
    /// exec/attach/proxy (never registered for; allowed).
    Connect,
}

/// `request.kind` of an AdmissionReview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Kind {
    /// API group ("" for core).
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// The fields of an AdmissionReview request the decision reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Echoed in the response.
    pub uid: String,
    /// The object's kind.
    pub kind: Kind,
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: String,
    /// What is done to it.
    pub operation: Operation,
    /// The new object (CREATE, UPDATE).
    #[serde(default)]
    pub object: Option<Value>,
    /// The current object (UPDATE, DELETE).
    #[serde(default)]
    pub old_object: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: String,
    request: Option<Value>,
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Allowed,
    /// Refuse it with this message (the reason the API server shows).
    Denied {
        /// HTTP-like code the API server answers with.
        code: u16,
        /// Every problem, one per line.
        message: String,
    },
}

impl Verdict {
    fn denied(message: impl Into<String>) -> Self {
        Verdict::Denied {
            code: DENIED_CODE,
            message: message.into(),
        }
    }
}

/// Answer an AdmissionReview body. A request whose fields cannot be read
/// but whose uid can is refused with the reason (never a panic); a body
/// without even that is an error (the caller answers 400).
pub fn review(body: &[u8], cluster: &Cluster<'_>, scope: &Scope) -> Result<Value, ReviewError> {
    let review: Review =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    if review.api_version != API_VERSION {
        return Err(ReviewError::Version(review.api_version));
    }
    let raw = review.request.ok_or(ReviewError::NoRequest)?;
    let uid = raw
        .get("uid")
        .and_then(Value::as_str)
        .ok_or_else(|| ReviewError::Malformed("request.uid is missing".into()))?
        .to_string();
    let verdict = match serde_json::from_value::<Request>(raw) {
        Ok(request) => decide(&request, cluster, scope),
        Err(e) => Verdict::Denied {
            code: 400,
            message: format!("ferrolb cannot read the AdmissionReview request: {e}"),
        },
    };
    Ok(respond(&uid, &verdict))
}

/// The AdmissionReview response for `uid`.
pub fn respond(uid: &str, verdict: &Verdict) -> Value {
    let response = match verdict {
        Verdict::Allowed => json!({"uid": uid, "allowed": true}),
        Verdict::Denied { code, message } => json!({
            "uid": uid,
            "allowed": false,
            "status": {"status": "Failure", "code": code, "reason": "Invalid", "message": message},
        }),
    };
    json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response})
}

/// The change the request makes to the controller's configuration.
enum Change {
    /// Not one of ferrolb's config objects.
    Unrelated,
    /// The ConfigMap's `config` text becomes this (`None` = gone).
    ConfigMap(Option<String>),
    /// A metallb.io object of `kind` named `name` is replaced by `object` (`None` = deleted).
    Resource {
        kind: String,
        name: String,
        object: Option<Value>,
    },
}

/// Decide on one request.
pub fn decide(request: &Request, cluster: &Cluster<'_>, scope: &Scope) -> Verdict {
    if request.operation == Operation::Connect {
        return Verdict::Allowed;
    }
    // Uninstall deletes the namespace: its contents go with it, whatever they hold.
    if request.operation == Operation::Delete && cluster.namespace_terminating {
        return Verdict::Allowed;
    }
    let change = match change_of(request, scope) {
        Ok(c) => c,
        Err(message) => return Verdict::Denied { code: 400, message },
    };
    let (configmap, resources, read_errors) = match change {
        Change::Unrelated => return Verdict::Allowed,
        Change::ConfigMap(text) => (text, sorted(cluster.resources.clone()), ConfigErrors::new()),
        Change::Resource { kind, name, object } => {
            let mut resources = cluster.resources.clone();
            remove(&mut resources, &kind, &scope.namespace, &name);
            let mut errors = ConfigErrors::new();
            if let Some(object) = object {
                let read = read_object(object);
                errors = read.errors;
                resources.extend(read.resources);
            }
            (
                cluster.configmap.map(str::to_string),
                sorted(resources),
                errors,
            )
        }
    };
    let before = ferrolb_config::load(cluster.configmap, &sorted(cluster.resources.clone()));
    let after = ferrolb_config::load(configmap.as_deref(), &resources);
    let after = match (read_errors.is_empty(), after) {
        (true, after) => after,
        (false, Ok(_)) => Err(read_errors),
        (false, Err(mut e)) => {
            let mut all = read_errors;
            all.extend(std::mem::take(&mut e));
            Err(all)
        }
    };
    let config = match after {
        Ok(config) => config,
        Err(errors) => {
            let known: BTreeSet<String> = match &before {
                Ok(_) => BTreeSet::new(),
                Err(e) => e.iter().map(ToString::to_string).collect(),
            };
            if errors.iter().all(|e| known.contains(&e.to_string())) {
                return Verdict::Allowed;
            }
            return Verdict::denied(errors.to_string());
        }
    };
    let requests = service_requests(cluster.services, scope.lb_class.as_deref());
    let already: BTreeSet<OrphanedIp> = match &before {
        Ok(before) => orphans(before, &requests).into_iter().collect(),
        Err(_) => BTreeSet::new(),
    };
    let orphaned: Vec<OrphanedIp> = orphans(&config, &requests)
        .into_iter()
        .filter(|o| !already.contains(o))
        .collect();
    if orphaned.is_empty() {
        Verdict::Allowed
    } else {
        Verdict::denied(ConfigRefused { orphaned }.to_string())
    }
}

/// Which config object the request is about, and what it becomes.
fn change_of(request: &Request, scope: &Scope) -> Result<Change, String> {
    let new_object = || match request.operation {
        Operation::Delete | Operation::Connect => Ok(None),
        Operation::Create | Operation::Update => match &request.object {
            Some(o) if o.is_object() => Ok(Some(o.clone())),
            _ => Err(format!(
                "request.object is missing for {} {:?}",
                request.kind.kind, request.name
            )),
        },
    };
    let ours = request.namespace == scope.namespace;
    match (request.kind.group.as_str(), request.kind.kind.as_str()) {
        ("", "ConfigMap") if ours && request.name == scope.config_name => {
            let text = new_object()?.and_then(|o| {
                o.pointer("/data/config")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            Ok(Change::ConfigMap(text))
        }
        (crd::GROUP, kind) if ours && crd::CONFIG_KINDS.contains(&kind) => Ok(Change::Resource {
            kind: kind.to_string(),
            name: request.name.clone(),
            object: new_object()?.map(|mut o| {
                // The controller reads its own namespace; say so where the object does not.
                if o.pointer("/metadata/namespace").is_none()
                    && let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    md.insert("namespace".into(), json!(scope.namespace));
                }
                o
            }),
        }),
        _ => Ok(Change::Unrelated),
    }
}

/// Read one metallb.io object exactly as `ferrolb validate` reads a file
/// holding it (so a decoding error is worded the same).
fn read_object(object: Value) -> documents::Documents {
    match serde_saphyr::to_string(&object) {
        Ok(text) => documents::read(&text),
        Err(e) => {
            let mut docs = documents::Documents::default();
            docs.errors
                .push("", format!("the object cannot be read as YAML: {e}"));
            docs
        }
    }
}

/// Drop the object of `kind` named `namespace/name`.
fn remove(resources: &mut Resources, kind: &str, namespace: &str, name: &str) {
    fn without<K: kube::Resource>(list: &mut Vec<K>, namespace: &str, name: &str) {
        list.retain(|o| {
            !(o.meta().name.as_deref() == Some(name)
                && o.meta().namespace.as_deref() == Some(namespace))
        });
    }
    match kind {
        "IPAddressPool" => without(&mut resources.ip_address_pools, namespace, name),
        "L2Advertisement" => without(&mut resources.l2_advertisements, namespace, name),
        "BGPAdvertisement" => without(&mut resources.bgp_advertisements, namespace, name),
        "BGPPeer" => without(&mut resources.bgp_peers, namespace, name),
        "Community" => without(&mut resources.communities, namespace, name),
        "BFDProfile" => without(&mut resources.bfd_profiles, namespace, name),
        _ => {}
    }
}

/// Objects in name order: a store's order is arbitrary, and messages that
/// name two objects (an overlap) must not change from one request to the next.
fn sorted(mut resources: Resources) -> Resources {
    fn by_name<K: kube::Resource>(list: &mut [K]) {
        list.sort_by_key(|o| (o.namespace(), o.name_any()));
    }
    by_name(&mut resources.ip_address_pools);
    by_name(&mut resources.l2_advertisements);
    by_name(&mut resources.bgp_advertisements);
    by_name(&mut resources.bgp_peers);
    by_name(&mut resources.communities);
    by_name(&mut resources.bfd_profiles);
    resources
}

/// The allocation requests of the Services the controller handles (the same
/// filter its reconciler applies at start-up).
fn service_requests(services: &[&Service], lb_class: Option<&str>) -> Vec<ServiceRequest> {
    services
        .iter()
        .filter(|s| qualifies(s, lb_class))
        .filter_map(|s| ServiceRequest::from_service(s).ok())
        .collect()
}

/// The status IPs `config` would leave outside every pool.
fn orphans(config: &Config, requests: &[ServiceRequest]) -> Vec<OrphanedIp> {
    match Allocator::rebuild(config, requests) {
        Ok(_) => Vec::new(),
        Err(refused) => refused.orphaned,
    }
}

#[cfg(test)]
mod tests;
