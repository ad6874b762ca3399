//! `ferrolb plan`: offline, which IPs Services would get under a config, or
//! why not. It drives the controller's own [`Reconciler`] (and so the same
//! allocator): Services given as "current" are restored from their status
//! first, exactly as the controller does on start-up, then each Service is
//! decided in the order given. Pure: the caller reads files and prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ferrolb_config::model::Config;
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

use crate::allocator::{ConfigRefused, NamespaceLabels};
use crate::reconcile::{Action, ConfigOutcome, NamespaceIndex, Reconciler, status_ips};
use crate::service::{ServiceKey, join_ips, qualifies};

/// The label the API server puts on every namespace (Kubernetes 1.21+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Why an input file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The text is not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// A document is not a Service, Namespace or List of those.
    #[error("{at}: {why}")]
    Document {
        /// Which document (`document 2`, `document 1 item 3`).
        at: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The Services (in file order) and namespace labels a file holds.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Services, in order.
    pub services: Vec<Service>,
    /// Labels of the Namespace objects found, by name.
    pub namespaces: NamespaceIndex,
}

impl Objects {
    /// Adds another file's objects after these.
    pub fn extend(&mut self, other: Objects) {
        self.services.extend(other.services);
        self.namespaces.extend(other.namespaces);
    }
}

/// Reads Service and Namespace objects from YAML: one or many documents,
/// `kind: List` (what `kubectl get -o yaml` prints) or a YAML sequence.
pub fn read_objects(text: &str) -> Result<Objects, PlanError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| PlanError::Yaml(one_line(&e.to_string())))?;
    let mut objects = Objects::default();
    for (n, document) in documents.into_iter().enumerate() {
        let at = format!("document {}", n + 1);
        match document {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    add_object(&mut objects, item, &format!("{at} item {}", i + 1))?;
                }
            }
            other => add_object(&mut objects, other, &at)?,
        }
    }
    Ok(objects)
}

fn add_object(objects: &mut Objects, value: Value, at: &str) -> Result<(), PlanError> {
    let error = |why: String| PlanError::Document {
        at: at.to_string(),
        why,
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match kind.as_str() {
        "List" | "ServiceList" | "NamespaceList" => {
            let items = match value.get("items") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(error("items is not a list".into())),
            };
            for (i, item) in items.into_iter().enumerate() {
                add_object(objects, item, &format!("{at} item {}", i + 1))?;
            }
            Ok(())
        }
        "Service" => {
            let service: Service = serde_json::from_value(value)
                .map_err(|e| error(format!("not a valid Service: {e}")))?;
            if service.metadata.name.as_deref().is_none_or(str::is_empty) {
                return Err(error("Service without metadata.name".into()));
            }
            objects.services.push(service);
            Ok(())
        }
        "Namespace" => {
            let namespace: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(value)
                .map_err(|e| error(format!("not a valid Namespace: {e}")))?;
            let name = namespace
                .metadata
                .name
                .ok_or_else(|| error("Namespace without metadata.name".into()))?;
            objects
                .namespaces
                .insert(name, namespace.metadata.labels.unwrap_or_default());
            Ok(())
        }
        "" => Err(error("no kind; expected Service, Namespace or List".into())),
        other => Err(error(format!(
            "kind {other} is not Service, Namespace or List"
        ))),
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The Service's key, as the controller names it (no namespace = `default`).
pub fn service_key(service: &Service) -> ServiceKey {
    ServiceKey::new(
        service.metadata.namespace.as_deref().unwrap_or("default"),
        service.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// What one Service gets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The IPs it would hold (status order).
    pub ips: Vec<IpAddr>,
    /// Their pool (empty when none).
    pub pool: String,
    /// Why it gets no IP, or why its request is bad (empty on success).
    pub error: String,
    /// The IPs its status showed before (not part of the YAML output).
    #[serde(skip)]
    pub previous: Vec<IpAddr>,
}

/// The result of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// One row per handled Service, in the order given, and notes about the
    /// Services skipped because ferrolb does not handle them.
    Planned {
        /// The rows.
        rows: Vec<Row>,
        /// `(Service, reason)` of skipped Services.
        skipped: Vec<(ServiceKey, String)>,
    },
    /// The config would orphan IPs held by the current Services: the
    /// controller would refuse it as stale and keep its previous config.
    Refused(ConfigRefused),
}

/// Decides every Service of `services` in order under `config`, after
/// restoring the IPs in the status of `current` (as the controller does on
/// start-up). Services of both lists are matched by namespace/name.
pub fn plan(
    config: Config,
    services: &[Service],
    current: &[Service],
    namespaces: &NamespaceIndex,
    lb_class: Option<&str>,
) -> Outcome {
    let mut reconciler = Reconciler::new(lb_class.map(str::to_string));
    let current_refs: Vec<&Service> = current.iter().collect();
    match reconciler.offer_config(Ok(config), &current_refs) {
        ConfigOutcome::Refused(refused) => return Outcome::Refused(refused),
        ConfigOutcome::Loaded | ConfigOutcome::Unchanged | ConfigOutcome::Invalid(_) => {}
    }
    let previous: BTreeMap<ServiceKey, Vec<IpAddr>> = current
        .iter()
        .map(|s| (service_key(s), status_ips(s)))
        .collect();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut last_error: BTreeMap<ServiceKey, String> = BTreeMap::new();
    for service in services {
        let key = service_key(service);
        let labels = namespace_labels(namespaces, &key.namespace);
        let actions = reconciler.service(&key, Some(service), &labels);
        if !qualifies(service, lb_class) {
            skipped.push((key, not_handled(service, lb_class)));
            continue;
        }
        let assignment = reconciler.allocator().and_then(|a| a.assignment(&key));
        // The Event's text, without the Service name the row already shows.
        let prefix = format!("Failed to allocate IP for \"{key}\": ");
        let warning = actions.iter().find_map(|a| match a {
            Action::Event { event, .. } if event.warning => Some(
                event
                    .message
                    .strip_prefix(&prefix)
                    .unwrap_or(&event.message)
                    .to_string(),
            ),
            _ => None,
        });
        // The reconciler does not repeat an Event: a Service listed twice
        // with the same failure keeps the error it had.
        let error = match warning {
            Some(message) => {
                last_error.insert(key.clone(), message.clone());
                message
            }
            None if assignment.is_none() => last_error.get(&key).cloned().unwrap_or_default(),
            None => {
                last_error.remove(&key);
                String::new()
            }
        };
        let (ips, pool) = assignment.map(|a| (a.ips, a.pool)).unwrap_or_default();
        rows.push(Row {
            previous: previous
                .get(&key)
                .cloned()
                .unwrap_or_else(|| status_ips(service)),
            namespace: key.namespace,
            name: key.name,
            ips,
            pool,
            error,
        });
    }
    Outcome::Planned { rows, skipped }
}

/// A namespace's labels: those of its Namespace object if given, always with
/// the name label the API server adds.
pub fn namespace_labels(namespaces: &NamespaceIndex, namespace: &str) -> NamespaceLabels {
    let mut labels = namespaces.get(namespace).cloned().unwrap_or_default();
    labels.insert(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string());
    labels
}

fn not_handled(service: &Service, lb_class: Option<&str>) -> String {
    let spec = service.spec.as_ref();
    let type_ = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if type_ != "LoadBalancer" {
        return format!("type {type_} is not LoadBalancer");
    }
    match (
        spec.and_then(|s| s.load_balancer_class.as_deref()),
        lb_class,
    ) {
        (Some(theirs), Some(ours)) => format!("loadBalancerClass {theirs} is not {ours}"),
        (Some(theirs), None) => {
            format!("loadBalancerClass {theirs} belongs to another implementation")
        }
        (None, _) => "no loadBalancerClass while --lb-class is set".to_string(),
    }
}

/// Whether every row got an IP.
pub fn all_placed(rows: &[Row]) -> bool {
    rows.iter().all(|r| !r.ips.is_empty())
}

/// The rows as an aligned table; the NOTE column holds the error, or the
/// IPs the Service had before when they change.
pub fn render_table(rows: &[Row]) -> String {
    let header = ["NAMESPACE", "NAME", "POOL", "IPS", "NOTE"].map(str::to_string);
    let lines: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let note = if !r.error.is_empty() {
                r.error.clone()
            } else if !r.previous.is_empty() && r.previous != r.ips {
                format!("changed (was {})", join_ips(&r.previous))
            } else {
                String::new()
            };
            let ips = if r.ips.is_empty() {
                "<none>".to_string()
            } else {
                join_ips(&r.ips)
            };
            let pool = if r.pool.is_empty() {
                "-".to_string()
            } else {
                r.pool.clone()
            };
            [r.namespace.clone(), r.name.clone(), pool, ips, note]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&lines) {
        let mut text = String::new();
        for (i, (cell, w)) in line.iter().zip(widths).enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}   ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The rows as YAML: a list of `{namespace, name, ips, pool, error}`.
pub fn render_yaml(rows: &[Row]) -> Result<String, String> {
    serde_saphyr::to_string(&rows.to_vec()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(objects: &Objects) -> Vec<String> {
        objects
            .services
            .iter()
            .map(|s| service_key(s).to_string())
            .collect()
    }

    #[test]
    fn services_come_from_documents_lists_and_sequences_in_order() {
        let text = "\
---
- {apiVersion: v1, kind: Service, metadata: {name: a}}
- {apiVersion: v1, kind: Namespace, metadata: {name: shop, labels: {env: prod}}}
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: b, namespace: shop}}
---
apiVersion: v1
kind: Service
metadata: {name: c}
---
";
        let objects = read_objects(text).unwrap();
        assert_eq!(names(&objects), vec!["default/a", "shop/b", "default/c"]);
        let labels = namespace_labels(&objects.namespaces, "shop");
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        assert_eq!(
            labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("shop")
        );
        assert_eq!(
            namespace_labels(&objects.namespaces, "dev").len(),
            1,
            "an unknown namespace has only its name label"
        );
    }

    #[test]
    fn unusable_documents_are_named() {
        let cases = [
            (
                "kind: Pod\nmetadata: {name: p}\n",
                "document 1: kind Pod is not Service, Namespace or List",
            ),
            (
                "metadata: {name: p}\n",
                "document 1: no kind; expected Service, Namespace or List",
            ),
            (
                "kind: List\nitems:\n- {kind: Service, metadata: {namespace: x}}\n",
                "document 1 item 1: Service without metadata.name",
            ),
            (
                "kind: Service\nmetadata: {name: [1]}\n",
                "document 1: not a valid Service",
            ),
            ("a: [\n", "not valid YAML"),
        ];
        for (text, want) in cases {
            let err = read_objects(text).unwrap_err().to_string();
            assert!(err.starts_with(want), "{text:?}: {err}");
        }
    }
}
