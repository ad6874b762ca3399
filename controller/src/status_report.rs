//! What `ferrolb status` reports about each LoadBalancer Service: its IPs
//! and pool, which nodes announce it (from the speakers' ServiceL2Status /
//! ServiceBGPStatus objects) and, when it has no IP or nobody announces it,
//! why. Pure: the caller reads the cluster and prints.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::ConfigErrors;
use ferrolb_config::crd::{ServiceBgpStatus, ServiceL2Status};
use ferrolb_config::model::Config;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use serde::Serialize;

use crate::plan::{self, Outcome, service_key};
use crate::reconcile::{NamespaceIndex, reason};
use crate::service::{ServiceKey, qualifies};

/// Everything read from the cluster.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Every Service (those that are not LoadBalancers are left out).
    pub services: Vec<Service>,
    /// The cluster's config, loaded as the controller loads it.
    pub config: Result<Config, ConfigErrors>,
    /// Namespace labels (for pools' namespace selectors).
    pub namespaces: NamespaceIndex,
    /// events.k8s.io Events (the controller's `AllocationFailed` ones are used).
    pub events: Vec<Event>,
    /// The speakers' layer-2 status objects.
    pub l2: Vec<ServiceL2Status>,
    /// The speakers' BGP status objects.
    pub bgp: Vec<ServiceBgpStatus>,
    /// The controller's `--lb-class`, if any.
    pub lb_class: Option<String>,
}

/// One node announcing a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announcer {
    /// The node.
    pub node: String,
    /// `layer2` or `bgp`.
    pub protocol: &'static str,
    /// The interfaces (layer 2) or peers (BGP) it announces on.
    pub via: Vec<String>,
}

/// One Service's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The IPs in its status.
    pub ips: Vec<IpAddr>,
    /// Their pool, when the config has one holding them.
    pub pool: Option<String>,
    /// The protocols the pool is advertised with (`layer2`, `bgp`).
    pub protocols: Vec<&'static str>,
    /// Who announces it.
    pub announcers: Vec<Announcer>,
    /// Why it has no IP or is not announced (none when it is).
    pub reason: Option<String>,
}

impl Row {
    /// Whether it has IPs and some node announces them.
    pub fn announced(&self) -> bool {
        !self.ips.is_empty() && !self.announcers.is_empty()
    }
}

/// The rows, sorted by namespace and name, of the LoadBalancer Services
/// the controller handles.
pub fn report(view: &ClusterView) -> Vec<Row> {
    let services: Vec<Service> = view
        .services
        .iter()
        .filter(|s| qualifies(s, view.lb_class.as_deref()))
        .cloned()
        .collect();
    let announcers = announcers_by_service(&view.l2, &view.bgp);
    let failures = allocation_failures(&view.events);
    // The controller's own decision, replayed: pools of held IPs, and why a
    // Service without one gets none.
    let (planned, refused) = match &view.config {
        Ok(config) => match plan::plan(
            config.clone(),
            &services,
            &services,
            &view.namespaces,
            view.lb_class.as_deref(),
        ) {
            Outcome::Planned { rows, .. } => (
                rows.into_iter()
                    .map(|r| (ServiceKey::new(&r.namespace, &r.name), r))
                    .collect::<BTreeMap<_, _>>(),
                None,
            ),
            Outcome::Refused(refused) => (BTreeMap::new(), Some(refused.to_string())),
        },
        Err(_) => (BTreeMap::new(), None),
    };
    let mut rows: Vec<Row> = services
        .iter()
        .map(|service| {
            let key = service_key(service);
            let ips = crate::reconcile::status_ips(service);
            let config = view.config.as_ref().ok();
            let pool = config
                .and_then(|c| ips.first().and_then(|ip| c.pool_of(*ip)))
                .map(|p| p.name.clone());
            let protocols = config
                .zip(pool.as_deref())
                .map(|(c, p)| protocols_of(c, p))
                .unwrap_or_default();
            let announcers = announcers.get(&key).cloned().unwrap_or_default();
            let reason = if ips.is_empty() {
                Some(no_ip_reason(
                    service,
                    &failures,
                    &view.config,
                    refused.as_deref(),
                    planned.get(&key).map(|r| r.error.as_str()),
                ))
            } else if announcers.is_empty() {
                Some(not_announced_reason(pool.as_deref(), &protocols))
            } else {
                None
            };
            Row {
                namespace: key.namespace,
                name: key.name,
                ips,
                pool,
                protocols,
                announcers,
                reason,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

/// Why a Service has no IP: the controller's last `AllocationFailed` Event
/// first (what the controller itself said), then what the config and the
/// allocator say now. A stale config is named even after an Event: the
/// controller decided with its previous config, which may be why.
fn no_ip_reason(
    service: &Service,
    failures: &BTreeMap<String, String>,
    config: &Result<Config, ConfigErrors>,
    refused: Option<&str>,
    planned_error: Option<&str>,
) -> String {
    let stale = match (config, refused) {
        (Err(errors), _) => {
            let first = errors
                .iter()
                .next()
                .map(ToString::to_string)
                .unwrap_or_default();
            Some(format!(
                "config stale: the cluster's config is invalid, the controller keeps its previous one ({first})"
            ))
        }
        (Ok(_), Some(refused)) => Some(format!("config stale: {refused}")),
        (Ok(_), None) => None,
    };
    let event = service
        .metadata
        .uid
        .as_ref()
        .and_then(|uid| failures.get(uid));
    match (event, stale, planned_error) {
        (Some(note), Some(stale), _) => format!("{note}; {stale}"),
        (Some(note), None, _) => note.clone(),
        (None, Some(stale), _) => stale,
        (None, None, Some(error)) if !error.is_empty() => error.to_string(),
        _ => "pending: the config gives it an IP, but the controller has not assigned it (is the controller running?)".to_string(),
    }
}

/// Why a Service with IPs has no announcer.
fn not_announced_reason(pool: Option<&str>, protocols: &[&str]) -> String {
    match pool {
        None => "not announced: its IP is in no pool of the config".to_string(),
        Some(pool) if protocols.is_empty() => {
            format!("not announced: pool {pool:?} has no L2Advertisement or BGPAdvertisement")
        }
        Some(_) => "not announced: no speaker reports it (no eligible node, no ready endpoint for a Local policy, or the speakers are down)".to_string(),
    }
}

/// The protocols `pool` is advertised with.
fn protocols_of(config: &Config, pool: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if config
        .l2_advertisements
        .iter()
        .any(|a| a.pools.iter().any(|p| p == pool))
    {
        out.push("layer2");
    }
    if config
        .bgp_advertisements
        .iter()
        .any(|a| a.pools.iter().any(|p| p == pool))
    {
        out.push("bgp");
    }
    out
}

/// The announcers of each Service, from the status objects.
fn announcers_by_service(
    l2: &[ServiceL2Status],
    bgp: &[ServiceBgpStatus],
) -> BTreeMap<ServiceKey, Vec<Announcer>> {
    // (Service namespace, Service name, node, protocol, interfaces or peers)
    let l2 = l2.iter().filter_map(|o| o.status.as_ref()).map(|s| {
        let via = s.interfaces.iter().map(|i| i.name.clone()).collect();
        (
            &s.service_namespace,
            &s.service_name,
            &s.node,
            "layer2",
            via,
        )
    });
    let bgp = bgp.iter().filter_map(|o| o.status.as_ref()).map(|s| {
        (
            &s.service_namespace,
            &s.service_name,
            &s.node,
            "bgp",
            s.peers.clone(),
        )
    });
    let mut out: BTreeMap<ServiceKey, Vec<Announcer>> = BTreeMap::new();
    for (namespace, name, node, protocol, via) in l2.chain(bgp) {
        out.entry(ServiceKey::new(namespace, name))
            .or_default()
            .push(Announcer {
                node: node.clone(),
                protocol,
                via,
            });
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| (a.protocol, &a.node).cmp(&(b.protocol, &b.node)));
    }
    out
}

/// The note of the newest `AllocationFailed` Event per Service uid.
fn allocation_failures(events: &[Event]) -> BTreeMap<String, String> {
    let mut newest: BTreeMap<String, (Option<k8s_openapi::jiff::Timestamp>, String)> =
        BTreeMap::new();
    for e in events {
        if e.reason.as_deref() != Some(reason::ALLOCATION_FAILED) {
            continue;
        }
        let Some(uid) = e.regarding.as_ref().and_then(|r| r.uid.clone()) else {
            continue;
        };
        let when = e
            .series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let note = e.note.clone().unwrap_or_default();
        let prefix_end = note.find("\": ").map(|i| i + 3);
        // The note starts with `Failed to allocate IP for "ns/name": `; the row names the Service.
        let note = match prefix_end {
            Some(i) if note.starts_with("Failed to allocate IP for ") => note[i..].to_string(),
            _ => note,
        };
        if newest.get(&uid).is_none_or(|(t, _)| *t <= when) {
            newest.insert(uid, (when, note));
        }
    }
    newest
        .into_iter()
        .map(|(uid, (_, note))| (uid, note))
        .collect()
}

#[cfg(test)]
#[path = "status_report_tests.rs"]
mod tests;
