//! Builders for configs and Service requests in the allocator's tests.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::model::{AddressBlock, Config, IpFamily, Origin, Pool, ServiceAllocation};

use crate::service::{FamilyRequest, Protocol, ServiceKey, ServiceRequest, TrafficPolicy};

use super::NamespaceLabels;

/// `"10.0.0.0/30"` or `"10.0.0.5-10.0.0.9"`.
pub(crate) fn block(text: &str) -> AddressBlock {
    match text.split_once('-') {
        Some((a, b)) => {
            AddressBlock::new(a.trim().parse().unwrap(), b.trim().parse().unwrap()).unwrap()
        }
        None => AddressBlock::from_net(text.parse().unwrap()),
    }
}

/// An auto-assign pool without restrictions.
pub(crate) fn pool(name: &str, blocks: &[&str]) -> Pool {
    Pool {
        name: name.into(),
        blocks: blocks.iter().map(|b| block(b)).collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
        origin: Origin::ConfigMap { index: 0 },
    }
}

/// A pool with `auto-assign: false`.
pub(crate) fn manual(mut p: Pool) -> Pool {
    p.auto_assign = false;
    p
}

/// A pool with `avoid-buggy-ips: true`.
pub(crate) fn avoid_buggy(mut p: Pool) -> Pool {
    p.avoid_buggy_ips = true;
    p
}

/// A pool restricted by `serviceAllocation`.
pub(crate) fn restricted(mut p: Pool, allocation: ServiceAllocation) -> Pool {
    p.allocation = Some(allocation);
    p
}

/// A config with these pools, in this order.
pub(crate) fn config(pools: Vec<Pool>) -> Config {
    Config {
        pools,
        ..Default::default()
    }
}

/// An IP from text.
pub(crate) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// IPs from text.
pub(crate) fn ips(texts: &[&str]) -> Vec<IpAddr> {
    texts.iter().map(|t| ip(t)).collect()
}

/// Labels of a namespace as the API server sets them, plus `env=prod` for
/// namespaces whose name starts with `prod`.
pub(crate) fn ns_labels(namespace: &str) -> NamespaceLabels {
    let mut labels = BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        namespace.to_string(),
    )]);
    if namespace.starts_with("prod") {
        labels.insert("env".into(), "prod".into());
    }
    labels
}

/// A single-stack IPv4 Service `default/<name>` on TCP/80, Cluster policy.
pub(crate) fn svc(name: &str) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new("default", name),
        labels: BTreeMap::new(),
        pool: None,
        sharing_key: None,
        requested: Vec::new(),
        families: FamilyRequest::Single(IpFamily::V4),
        ports: vec![(Protocol::Tcp, 80)],
        traffic_policy: TrafficPolicy::Cluster,
        selector: BTreeMap::from([("app".to_string(), name.to_string())]),
        lb_class: None,
        current: Vec::new(),
    }
}

/// Fluent changes to a request.
pub(crate) trait Req {
    /// In namespace `ns`.
    fn ns(self, ns: &str) -> Self;
    /// With the `address-pool` annotation.
    fn pool(self, pool: &str) -> Self;
    /// With the `allow-shared-ip` key.
    fn share(self, key: &str) -> Self;
    /// With these TCP ports only.
    fn tcp(self, ports: &[i32]) -> Self;
    /// Adding a UDP port.
    fn udp(self, port: i32) -> Self;
    /// Asking for these IPs.
    fn ask(self, ips: &[&str]) -> Self;
    /// With this family request.
    fn fam(self, families: FamilyRequest) -> Self;
    /// `externalTrafficPolicy: Local` with the selector `app=<app>`.
    fn local(self, app: &str) -> Self;
    /// With these Service labels.
    fn labels(self, labels: &[(&str, &str)]) -> Self;
    /// With these IPs in the status.
    fn status(self, ips: &[&str]) -> Self;
}

impl Req for ServiceRequest {
    fn ns(mut self, ns: &str) -> Self {
        self.key.namespace = ns.into();
        self
    }
    fn pool(mut self, pool: &str) -> Self {
        self.pool = Some(pool.into());
        self
    }
    fn share(mut self, key: &str) -> Self {
        self.sharing_key = Some(key.into());
        self
    }
    fn tcp(mut self, ports: &[i32]) -> Self {
        self.ports = ports.iter().map(|p| (Protocol::Tcp, *p)).collect();
        self
    }
    fn udp(mut self, port: i32) -> Self {
        self.ports.push((Protocol::Udp, port));
        self
    }
    fn ask(mut self, texts: &[&str]) -> Self {
        self.requested = ips(texts);
        self
    }
    fn fam(mut self, families: FamilyRequest) -> Self {
        self.families = families;
        self
    }
    fn local(mut self, app: &str) -> Self {
        self.traffic_policy = TrafficPolicy::Local;
        self.selector = BTreeMap::from([("app".to_string(), app.to_string())]);
        self
    }
    fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        self.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
    fn status(mut self, texts: &[&str]) -> Self {
        self.current = ips(texts);
        self
    }
}
