//! The controller's decisions, pure: given what the watchers saw (the config
//! sources' load result, Services, namespace labels) decide which status to
//! write and which Events to record. The daemon (`crate::daemon`) feeds it
//! and applies its [`Action`]s; `ferrolb plan` drives the same allocator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_config::ConfigErrors;
use ferrolb_config::model::Config;
use k8s_openapi::api::core::v1::Service;

use crate::allocator::{Allocator, ConfigRefused, NamespaceLabels};
use crate::service::{ServiceKey, ServiceRequest, join_ips, qualifies};

/// Event reasons (SPEC A4).
pub mod reason {
    /// An IP was assigned (Normal).
    pub const IP_ALLOCATED: &str = "IPAllocated";
    /// No IP could be assigned (Warning).
    pub const ALLOCATION_FAILED: &str = "AllocationFailed";
    /// The Service's request cannot be understood (Warning).
    pub const LOAD_BALANCER_FAILED: &str = "LoadBalancerFailed";
    /// An IP was removed from the Service (Normal).
    pub const CLEAR_ASSIGNMENT: &str = "ClearAssignment";
}

/// One Event to record on a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceEvent {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// Machine-readable reason (see [`reason`]).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
}

/// What the daemon must do after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the Service's `status.loadBalancer.ingress` to exactly these IPs (empty = clear).
    WriteStatus {
        /// The Service.
        key: ServiceKey,
        /// The IPs.
        ips: Vec<IpAddr>,
    },
    /// Record an Event on the Service.
    Event {
        /// The Service.
        key: ServiceKey,
        /// The Event.
        event: ServiceEvent,
    },
}

/// The outcome of offering a (new) config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The config is the one already in force.
    Unchanged,
    /// The config is now in force; every Service must be looked at again.
    Loaded,
    /// The config does not validate; the previous one (if any) stays.
    Invalid(ConfigErrors),
    /// The config would orphan assigned IPs; the previous one (if any) stays.
    Refused(ConfigRefused),
}

/// The controller's state between events.
#[derive(Debug, Default)]
pub struct Reconciler {
    lb_class: Option<String>,
    allocator: Option<Allocator>,
    stale: bool,
    /// Qualifying Services that got no IP; retried whenever an IP is freed.
    pending: BTreeSet<ServiceKey>,
    /// The last Event recorded per Service, so a resync does not repeat it.
    last_event: HashMap<ServiceKey, ServiceEvent>,
    /// Whether an IP was freed since [`Reconciler::take_freed`] was last called.
    freed: bool,
}

impl Reconciler {
    /// A reconciler for Services of `lb_class` (`None` = Services without a class).
    pub fn new(lb_class: Option<String>) -> Self {
        Self {
            lb_class,
            ..Self::default()
        }
    }

    /// Whether a valid config is in force.
    pub fn config_loaded(&self) -> bool {
        self.allocator.is_some()
    }

    /// Whether the newest config was refused and an older one is in force.
    pub fn config_stale(&self) -> bool {
        self.stale
    }

    /// The allocator (once a config is loaded), for metrics.
    pub fn allocator(&self) -> Option<&Allocator> {
        self.allocator.as_ref()
    }

    /// Offer the config read from the cluster. The first valid one rebuilds
    /// the state from every Service's status before anything is allocated
    /// (so a restart never moves an IP); later ones replace the config only
    /// if no assigned IP would be orphaned (SPEC A5 rules 7 and 8).
    pub fn offer_config(
        &mut self,
        loaded: Result<Config, ConfigErrors>,
        services: &[&Service],
    ) -> ConfigOutcome {
        let config = match loaded {
            Ok(c) => c,
            Err(errors) => {
                self.stale = self.allocator.is_some();
                return ConfigOutcome::Invalid(errors);
            }
        };
        match &mut self.allocator {
            Some(allocator) if allocator.config() == &config => {
                self.stale = false;
                ConfigOutcome::Unchanged
            }
            Some(allocator) => match allocator.set_config(config) {
                Ok(()) => {
                    self.stale = false;
                    ConfigOutcome::Loaded
                }
                Err(refused) => {
                    self.stale = true;
                    ConfigOutcome::Refused(refused)
                }
            },
            None => {
                let requests: Vec<ServiceRequest> = services
                    .iter()
                    .filter(|s| qualifies(s, self.lb_class.as_deref()))
                    .filter_map(|s| ServiceRequest::from_service(s).ok())
                    .collect();
                match Allocator::rebuild(&config, &requests) {
                    Ok((allocator, _not_kept)) => {
                        // Services whose status could not be kept get fresh IPs
                        // when the daemon looks at every Service next.
                        self.allocator = Some(allocator);
                        self.stale = false;
                        ConfigOutcome::Loaded
                    }
                    Err(refused) => {
                        self.stale = true;
                        ConfigOutcome::Refused(refused)
                    }
                }
            }
        }
    }

    /// Decide for one Service (`None` = it was deleted).
    pub fn service(
        &mut self,
        key: &ServiceKey,
        service: Option<&Service>,
        namespace_labels: &NamespaceLabels,
    ) -> Vec<Action> {
        let Some(service) = service else {
            // Deleted: free its IPs; there is no status left to write.
            self.forget(key);
            return Vec::new();
        };
        let current = status_ips(service);
        if !qualifies(service, self.lb_class.as_deref()) {
            self.pending.remove(key);
            self.last_event.remove(key);
            let held = self.allocator.as_mut().and_then(|a| a.release(key));
            if held.is_some() {
                self.freed = true;
            }
            // Clear only an IP ferrolb gave: one it held, or (after a restart)
            // one of its pools on a Service that is no longer a LoadBalancer.
            let ours =
                held.is_some() || (!is_load_balancer(service) && self.in_our_pools(&current));
            // A real API server empties status.loadBalancer itself when the type
            // changes away from LoadBalancer: then there is nothing to write, but
            // the release of the IP ferrolb held is still worth an Event.
            let cleared = match (&held, current.is_empty()) {
                (_, false) => current.clone(),
                (Some(assignment), true) => assignment.ips.clone(),
                (None, true) => Vec::new(),
            };
            if !ours || cleared.is_empty() {
                return Vec::new();
            }
            let mut actions = Vec::new();
            if !current.is_empty() {
                actions.push(Action::WriteStatus {
                    key: key.clone(),
                    ips: Vec::new(),
                });
            }
            actions.extend(self.event(
                key,
                false,
                reason::CLEAR_ASSIGNMENT,
                clear_message(&cleared),
            ));
            return actions;
        }
        let request = match ServiceRequest::from_service(service) {
            Ok(r) => r,
            // Bad input never costs an IP already held: keep it, say why.
            Err(e) => {
                return self
                    .event(key, true, reason::LOAD_BALANCER_FAILED, e.to_string())
                    .into_iter()
                    .collect();
            }
        };
        let Some(allocator) = self.allocator.as_mut() else {
            // No valid config yet: nothing can be decided, nothing is lost.
            return Vec::new();
        };
        match allocator.assign(&request, namespace_labels) {
            Ok(assignment) => {
                self.pending.remove(key);
                if assignment.ips == current {
                    return Vec::new();
                }
                let message = format!("Assigned IP [{}]", join_ips(&assignment.ips));
                let mut actions = vec![Action::WriteStatus {
                    key: key.clone(),
                    ips: assignment.ips,
                }];
                actions.extend(self.event(key, false, reason::IP_ALLOCATED, message));
                actions
            }
            Err(e) => {
                self.pending.insert(key.clone());
                let mut actions = Vec::new();
                if !current.is_empty() {
                    self.freed = true;
                    actions.push(Action::WriteStatus {
                        key: key.clone(),
                        ips: Vec::new(),
                    });
                    actions.extend(self.event(
                        key,
                        false,
                        reason::CLEAR_ASSIGNMENT,
                        clear_message(&current),
                    ));
                }
                actions.extend(self.event(
                    key,
                    true,
                    reason::ALLOCATION_FAILED,
                    format!("Failed to allocate IP for \"{key}\": {e}"),
                ));
                actions
            }
        }
    }

    /// Forget a Service that no longer exists.
    pub fn forget(&mut self, key: &ServiceKey) {
        self.pending.remove(key);
        self.last_event.remove(key);
        if let Some(a) = self.allocator.as_mut()
            && a.release(key).is_some()
        {
            self.freed = true;
        }
    }

    /// Services known to hold IPs or to wait for one.
    pub fn known(&self) -> BTreeSet<ServiceKey> {
        let mut keys = self.pending.clone();
        if let Some(a) = &self.allocator {
            keys.extend(a.assignments().into_iter().map(|(k, _)| k));
        }
        keys
    }

    /// If an IP was freed since the last call: the Services waiting for one.
    pub fn take_freed(&mut self) -> Vec<ServiceKey> {
        if std::mem::take(&mut self.freed) {
            self.pending.iter().cloned().collect()
        } else {
            Vec::new()
        }
    }

    /// An Event action, unless it repeats the last one recorded on the Service.
    fn event(
        &mut self,
        key: &ServiceKey,
        warning: bool,
        reason: &'static str,
        message: String,
    ) -> Option<Action> {
        let event = ServiceEvent {
            warning,
            reason,
            message,
        };
        if self.last_event.get(key) == Some(&event) {
            return None;
        }
        self.last_event.insert(key.clone(), event.clone());
        Some(Action::Event {
            key: key.clone(),
            event,
        })
    }

    fn in_our_pools(&self, ips: &[IpAddr]) -> bool {
        self.allocator
            .as_ref()
            .is_some_and(|a| !ips.is_empty() && ips.iter().all(|ip| a.pool_of(*ip).is_some()))
    }
}

fn is_load_balancer(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

fn clear_message(ips: &[IpAddr]) -> String {
    format!(
        "Cleared IP [{}]: the Service no longer gets one from ferrolb",
        join_ips(ips)
    )
}

/// The IPs in a Service's `status.loadBalancer.ingress` (entries that are not IPs are ignored).
pub fn status_ips(service: &Service) -> Vec<IpAddr> {
    service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            ingress
                .iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Namespace labels by namespace name, as the daemon's store holds them.
pub type NamespaceIndex = BTreeMap<String, NamespaceLabels>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TUTORIAL: &str = "address-pools:\n- name: my-ip-space\n  protocol: layer2\n  addresses:\n  - 192.168.5.5-192.168.5.9\n";

    fn config(text: &str) -> Result<Config, ConfigErrors> {
        ferrolb_config::load(Some(text), &Default::default())
    }

    fn svc(
        name: &str,
        type_: &str,
        annotations: serde_json::Value,
        status_ip: Option<&str>,
    ) -> Service {
        let ingress = status_ip.map(|ip| json!([{ "ip": ip }]));
        serde_json::from_value(json!({
            "metadata": { "namespace": "default", "name": name, "annotations": annotations },
            "spec": { "type": type_, "ports": [{ "port": 80, "protocol": "TCP" }] },
            "status": { "loadBalancer": { "ingress": ingress } },
        }))
        .unwrap()
    }

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    fn writes(actions: &[Action]) -> Vec<(String, Vec<String>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::WriteStatus { key, ips } => Some((
                    key.name.clone(),
                    ips.iter().map(|i| i.to_string()).collect(),
                )),
                Action::Event { .. } => None,
            })
            .collect()
    }

    fn reasons(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { event, .. } => Some(event.reason),
                Action::WriteStatus { .. } => None,
            })
            .collect()
    }

    fn loaded(services: &[&Service]) -> Reconciler {
        let mut r = Reconciler::new(None);
        assert_eq!(
            r.offer_config(config(TUTORIAL), services),
            ConfigOutcome::Loaded
        );
        r
    }

    #[test]
    fn assigns_the_first_address_and_records_ip_allocated() {
        let mut r = loaded(&[]);
        let s = svc("web", "LoadBalancer", json!({}), None);
        let actions = r.service(&key("web"), Some(&s), &NamespaceLabels::new());
        assert_eq!(
            writes(&actions),
            vec![("web".into(), vec!["192.168.5.5".into()])]
        );
        assert_eq!(reasons(&actions), vec![reason::IP_ALLOCATED]);
    }

    #[test]
    fn status_already_right_writes_nothing() {
        let s = svc("web", "LoadBalancer", json!({}), Some("192.168.5.7"));
        let mut r = loaded(&[&s]);
        let actions = r.service(&key("web"), Some(&s), &NamespaceLabels::new());
        assert!(actions.is_empty(), "{actions:?}");
    }

    #[test]
    fn restart_keeps_status_ips_before_allocating_others() {
        let old = svc("old", "LoadBalancer", json!({}), Some("192.168.5.5"));
        let new = svc("new", "LoadBalancer", json!({}), None);
        let mut r = loaded(&[&old, &new]);
        // The new Service is looked at first, yet cannot take the old one's IP.
        let actions = r.service(&key("new"), Some(&new), &NamespaceLabels::new());
        assert_eq!(
            writes(&actions),
            vec![("new".into(), vec!["192.168.5.6".into()])]
        );
        assert!(
            r.service(&key("old"), Some(&old), &NamespaceLabels::new())
                .is_empty()
        );
    }

    #[test]
    fn type_change_clears_and_frees_the_ip() {
        let mut r = loaded(&[]);
        let lb = svc("web", "LoadBalancer", json!({}), None);
        r.service(&key("web"), Some(&lb), &NamespaceLabels::new());
        let cluster_ip = svc("web", "ClusterIP", json!({}), Some("192.168.5.5"));
        let actions = r.service(&key("web"), Some(&cluster_ip), &NamespaceLabels::new());
        assert_eq!(writes(&actions), vec![("web".into(), vec![])]);
        assert_eq!(reasons(&actions), vec![reason::CLEAR_ASSIGNMENT]);
        let other = svc("other", "LoadBalancer", json!({}), None);
        let actions = r.service(&key("other"), Some(&other), &NamespaceLabels::new());
        assert_eq!(
            writes(&actions),
            vec![("other".into(), vec!["192.168.5.5".into()])]
        );
    }

    /// The real API server empties `status.loadBalancer` on a change to
    /// ClusterIP before the controller sees it: nothing to write, still an Event.
    #[test]
    fn type_change_with_status_already_emptied_still_reports_the_release() {
        let mut r = loaded(&[]);
        let lb = svc("web", "LoadBalancer", json!({}), None);
        r.service(&key("web"), Some(&lb), &NamespaceLabels::new());
        let cluster_ip = svc("web", "ClusterIP", json!({}), None);
        let actions = r.service(&key("web"), Some(&cluster_ip), &NamespaceLabels::new());
        assert!(writes(&actions).is_empty(), "{actions:?}");
        assert_eq!(reasons(&actions), vec![reason::CLEAR_ASSIGNMENT]);
        let again = r.service(&key("web"), Some(&cluster_ip), &NamespaceLabels::new());
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn other_load_balancer_class_is_never_touched() {
        let mut r = loaded(&[]);
        let mut s = svc("web", "LoadBalancer", json!({}), Some("203.0.113.9"));
        s.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
        assert!(
            r.service(&key("web"), Some(&s), &NamespaceLabels::new())
                .is_empty()
        );
    }

    #[test]
    fn bad_annotation_keeps_the_ip_and_warns_once() {
        let mut r = loaded(&[]);
        let good = svc("web", "LoadBalancer", json!({}), None);
        r.service(&key("web"), Some(&good), &NamespaceLabels::new());
        let bad = svc(
            "web",
            "LoadBalancer",
            json!({ "metallb.universe.tf/loadBalancerIPs": "not-an-ip" }),
            Some("192.168.5.5"),
        );
        let actions = r.service(&key("web"), Some(&bad), &NamespaceLabels::new());
        assert!(writes(&actions).is_empty());
        assert_eq!(reasons(&actions), vec![reason::LOAD_BALANCER_FAILED]);
        assert!(
            r.service(&key("web"), Some(&bad), &NamespaceLabels::new())
                .is_empty()
        );
        assert_eq!(
            r.allocator().unwrap().assignment(&key("web")).unwrap().ips,
            vec!["192.168.5.5".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn exhausted_pool_fails_then_serves_the_waiter_when_an_ip_is_freed() {
        let mut r = loaded(&[]);
        for i in 0..5 {
            let s = svc(&format!("s{i}"), "LoadBalancer", json!({}), None);
            r.service(&key(&format!("s{i}")), Some(&s), &NamespaceLabels::new());
        }
        let sixth = svc("s5", "LoadBalancer", json!({}), None);
        let actions = r.service(&key("s5"), Some(&sixth), &NamespaceLabels::new());
        assert_eq!(reasons(&actions), vec![reason::ALLOCATION_FAILED]);
        assert!(r.take_freed().is_empty());
        r.forget(&key("s2"));
        assert_eq!(r.take_freed(), vec![key("s5")]);
        let actions = r.service(&key("s5"), Some(&sixth), &NamespaceLabels::new());
        assert_eq!(
            writes(&actions),
            vec![("s5".into(), vec!["192.168.5.7".into()])]
        );
    }

    #[test]
    fn invalid_config_keeps_the_old_one_and_marks_stale() {
        let mut r = loaded(&[]);
        let s = svc("web", "LoadBalancer", json!({}), None);
        r.service(&key("web"), Some(&s), &NamespaceLabels::new());
        let outcome = r.offer_config(config("address-pools: [{name: x}]\n"), &[]);
        assert!(matches!(outcome, ConfigOutcome::Invalid(_)), "{outcome:?}");
        assert!(r.config_stale());
        assert!(r.allocator().unwrap().assignment(&key("web")).is_some());
    }

    #[test]
    fn config_orphaning_an_ip_is_refused_and_the_ip_stays() {
        let mut r = loaded(&[]);
        let s = svc("web", "LoadBalancer", json!({}), None);
        r.service(&key("web"), Some(&s), &NamespaceLabels::new());
        let moved =
            "address-pools:\n- name: other\n  protocol: layer2\n  addresses:\n  - 192.168.6.0/24\n";
        let outcome = r.offer_config(config(moved), &[]);
        assert!(matches!(outcome, ConfigOutcome::Refused(_)), "{outcome:?}");
        assert!(r.config_stale());
        assert_eq!(
            r.offer_config(config(TUTORIAL), &[]),
            ConfigOutcome::Unchanged
        );
        assert!(!r.config_stale());
    }

    #[test]
    fn first_config_orphaning_status_ips_is_refused() {
        let s = svc("web", "LoadBalancer", json!({}), Some("10.9.9.9"));
        let mut r = Reconciler::new(None);
        let outcome = r.offer_config(config(TUTORIAL), &[&s]);
        assert!(matches!(outcome, ConfigOutcome::Refused(_)), "{outcome:?}");
        assert!(!r.config_loaded());
        assert!(
            r.service(&key("web"), Some(&s), &NamespaceLabels::new())
                .is_empty()
        );
    }
}
