//! The writer of `ServiceL2Status` / `ServiceBGPStatus` objects: a task that
//! watches this node's objects, takes what the node announces from the main
//! loop, and performs the writes the pure [`crate::status`] functions plan,
//! at a bounded rate. The first live member also deletes the objects of
//! nodes that left the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::crd::{ServiceBgpStatus, ServiceL2Status};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::announce::ServiceKey;
use crate::status::{
    Detail, NODE_LABEL, ObjectKey, Observed, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL,
    StaleGroup, StatusKind, Write, WriteQueue, is_janitor, object_name, plan, stale_groups,
};

/// API requests per second for status objects at most (a create is two),
/// and the burst allowed after a quiet time.
pub const WRITE_RATE: u32 = 50;
/// See [`WRITE_RATE`].
pub const WRITE_BURST: u32 = 100;
/// How often the janitor looks again for objects of departed nodes, and a
/// failed write is retried.
const RECHECK: Duration = Duration::from_secs(15);

/// What the main loop hands the writer after each change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInput {
    /// The objects this node should have ([`crate::status::desired_objects`]).
    pub desired: BTreeMap<ObjectKey, Detail>,
    /// The uid of every Service in `desired`, for the owner reference.
    pub uids: BTreeMap<ServiceKey, String>,
    /// The live members of the speaker cluster (empty before the first join).
    pub live: BTreeSet<String>,
}

/// Labels of the write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// `ServiceL2Status` or `ServiceBGPStatus`.
    pub kind: String,
    /// The request: `create`, `status` (the status subresource), `delete`
    /// or `deletecollection`.
    pub op: String,
}

/// The writer's metrics.
#[derive(Debug, Clone, Default)]
pub struct StatusMetrics {
    /// `ferrolb_speaker_status_writes_total`: API writes done, by kind and operation.
    pub writes: Family<WriteLabels, Counter>,
    /// `ferrolb_speaker_status_pending`: writes waiting for the rate limit.
    pub pending: Gauge,
}

impl StatusMetrics {
    /// Registers the writer's series in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "ferrolb_speaker_status_writes",
            "API writes of ServiceL2Status/ServiceBGPStatus objects, by kind and operation",
            metrics.writes.clone(),
        );
        registry.register(
            "ferrolb_speaker_status_pending",
            "Status object writes waiting for the write rate limit",
            metrics.pending.clone(),
        );
        metrics
    }
}

/// Starts the writer for `node`; the returned sender takes each new input.
pub fn spawn(
    client: Client,
    node: String,
    metrics: StatusMetrics,
) -> watch::Sender<Arc<StatusInput>> {
    let (input_tx, input_rx) = watch::channel(Arc::new(StatusInput::default()));
    tokio::spawn(async move {
        let mut writer = Writer::new(client, node, metrics);
        writer.run(input_rx).await;
    });
    input_tx
}

/// The writer task's state.
struct Writer {
    client: Client,
    node: String,
    metrics: StatusMetrics,
    l2: Store<ServiceL2Status>,
    bgp: Store<ServiceBgpStatus>,
    changed: mpsc::UnboundedReceiver<()>,
    /// Writes done that the stores may not show yet: `Some` for a create or
    /// update with its detail, `None` for a delete; planning reads through them
    /// so that a watch lagging behind does not cause the same write twice.
    written: BTreeMap<(ObjectKey, String), Option<Detail>>,
    queue: WriteQueue,
}

impl Writer {
    fn new(client: Client, node: String, metrics: StatusMetrics) -> Self {
        let (tx, changed) = mpsc::unbounded_channel();
        let own = watcher::Config::default().labels(&format!("{NODE_LABEL}={node}"));
        let l2 = ferrolb_shell::watch::spawn(
            Api::<ServiceL2Status>::all(client.clone()),
            own.clone(),
            "ServiceL2Status",
            tx.clone(),
            |o| o.managed_fields_mut().clear(),
            |_: ferrolb_shell::watch::Seen<'_, _>| Some(()),
        );
        let bgp = ferrolb_shell::watch::spawn(
            Api::<ServiceBgpStatus>::all(client.clone()),
            own,
            "ServiceBGPStatus",
            tx,
            |o| o.managed_fields_mut().clear(),
            |_: ferrolb_shell::watch::Seen<'_, _>| Some(()),
        );
        Self {
            client,
            node,
            metrics,
            l2,
            bgp,
            changed,
            written: BTreeMap::new(),
            queue: WriteQueue::new(WRITE_RATE, WRITE_BURST, Instant::now().into_std()),
        }
    }

    async fn run(&mut self, mut input: watch::Receiver<Arc<StatusInput>>) {
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut live = BTreeSet::new();
        loop {
            let now = Instant::now();
            let wake = self
                .queue
                .next_release(now.into_std())
                .map(Instant::from_std)
                .unwrap_or(now + RECHECK);
            // A plan is made again only when something changed (or on the
            // recheck, which retries failed writes), not each time the rate
            // limit lets the next queued write go.
            let dirty = tokio::select! {
                changed = input.changed() => {
                    if changed.is_err() {
                        return; // the daemon is stopping
                    }
                    true
                }
                Some(()) = self.changed.recv() => {
                    while self.changed.try_recv().is_ok() {}
                    true
                }
                _ = recheck.tick() => {
                    let current = input.borrow().live.clone();
                    self.janitor(&current).await;
                    true
                }
                () = tokio::time::sleep_until(wake) => false,
            };
            let current = input.borrow().clone();
            if current.live != live {
                live = current.live.clone();
                self.janitor(&live).await;
            }
            if dirty {
                self.replan(&current);
            }
            self.release(&current).await;
        }
    }

    /// This node's objects as the stores hold them, overlaid with the writes
    /// they do not show yet.
    fn observed(&mut self) -> Vec<Observed> {
        let mut by_name: BTreeMap<(StatusKind, String, String), Observed> = BTreeMap::new();
        for o in self.l2.state() {
            if let Some(seen) = l2_observed(&o) {
                by_name.insert(
                    (seen.kind, seen.service.namespace.clone(), seen.name.clone()),
                    seen,
                );
            }
        }
        for o in self.bgp.state() {
            if let Some(seen) = bgp_observed(&o) {
                by_name.insert(
                    (seen.kind, seen.service.namespace.clone(), seen.name.clone()),
                    seen,
                );
            }
        }
        // Forget the overlay entries the stores have caught up with.
        self.written.retain(|((kind, service), name), detail| {
            let stored = by_name.get(&(*kind, service.namespace.clone(), name.clone()));
            match (stored, detail) {
                (Some(o), Some(d)) => o.detail != *d,
                (None, None) => false,
                _ => true,
            }
        });
        for (((kind, service), name), detail) in &self.written {
            let slot = (*kind, service.namespace.clone(), name.clone());
            match detail {
                Some(d) => {
                    by_name.insert(
                        slot,
                        Observed {
                            name: name.clone(),
                            kind: *kind,
                            service: service.clone(),
                            node: self.node.clone(),
                            detail: d.clone(),
                        },
                    );
                }
                None => {
                    by_name.remove(&slot);
                }
            }
        }
        by_name.into_values().collect()
    }

    fn replan(&mut self, input: &StatusInput) {
        let observed = self.observed();
        let refs: Vec<&Observed> = observed.iter().collect();
        let mut writes = plan(&input.desired, &refs);
        // A Service whose uid is unknown (deleted meanwhile) gets no object.
        writes.retain(
            |w| !matches!(w, Write::Create { key, .. } if !input.uids.contains_key(&key.1)),
        );
        self.queue.replace(writes);
        self.metrics
            .pending
            .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
    }

    async fn release(&mut self, input: &StatusInput) {
        let writes = self.queue.release(Instant::now().into_std());
        for w in writes {
            let kind = w.key().0;
            let op = match &w {
                Write::Create { .. } => "create",
                Write::Update { .. } => "update",
                Write::Delete { .. } => "delete",
            };
            match self.perform(&w, input).await {
                Ok(()) => {
                    // One count per API request: a create is two.
                    let requests: &[&str] = match &w {
                        Write::Create { .. } => &["create", "status"],
                        Write::Update { .. } => &["status"],
                        Write::Delete { .. } => &["delete"],
                    };
                    for op in requests {
                        self.metrics
                            .writes
                            .get_or_create(&WriteLabels {
                                kind: kind.kind().into(),
                                op: (*op).into(),
                            })
                            .inc();
                    }
                    self.remember(&w);
                }
                Err(e) => {
                    tracing::warn!(kind = kind.kind(), op, service = %w.key().1, error = %e, "status object write failed; retried later");
                }
            }
        }
        self.metrics
            .pending
            .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
    }

    fn remember(&mut self, w: &Write) {
        match w {
            Write::Create { key, detail } => {
                let name = object_name(&key.1, &self.node);
                self.written
                    .insert((key.clone(), name), Some(detail.clone()));
            }
            Write::Update { key, name, detail } => {
                self.written
                    .insert((key.clone(), name.clone()), Some(detail.clone()));
            }
            Write::Delete { key, name } => {
                self.written.insert((key.clone(), name.clone()), None);
            }
        }
    }

    fn api(&self, kind: StatusKind, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &resource(kind))
    }

    async fn perform(&self, w: &Write, input: &StatusInput) -> Result<(), kube::Error> {
        let (kind, service) = w.key();
        let api = self.api(*kind, &service.namespace);
        match w {
            Write::Create { detail, .. } => {
                let name = object_name(service, &self.node);
                let uid = input.uids.get(service).cloned().unwrap_or_default();
                let object = new_object(*kind, &name, service, &self.node, &uid);
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => {}
                    // A create retried after a lost reply finds the first one.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e),
                }
                self.patch_status(&api, *kind, &name, service, detail).await
            }
            Write::Update { name, detail, .. } => {
                self.patch_status(&api, *kind, name, service, detail).await
            }
            Write::Delete { name, .. } => match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    async fn patch_status(
        &self,
        api: &Api<DynamicObject>,
        kind: StatusKind,
        name: &str,
        service: &ServiceKey,
        detail: &Detail,
    ) -> Result<(), kube::Error> {
        let body = json!({ "status": status_body(kind, service, &self.node, detail) });
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map(|_| ())
    }

    /// As the first live member, deletes the objects of nodes that are not
    /// live members: one `deletecollection` per kind, namespace and node.
    async fn janitor(&mut self, live: &BTreeSet<String>) {
        if !is_janitor(&self.node, live) {
            return;
        }
        let members: Vec<&str> = live.iter().map(String::as_str).collect();
        let selector = format!("{NODE_LABEL},{NODE_LABEL} notin ({})", members.join(","));
        let params = ListParams::default().labels(&selector);
        let mut found = Vec::new();
        match Api::<ServiceL2Status>::all(self.client.clone())
            .list(&params)
            .await
        {
            Ok(list) => found.extend(
                list.items
                    .iter()
                    .filter_map(|o| observed(o, StatusKind::Layer2, Detail::new())),
            ),
            Err(e) => tracing::warn!(error = %e, "listing ServiceL2Status of departed nodes"),
        }
        match Api::<ServiceBgpStatus>::all(self.client.clone())
            .list(&params)
            .await
        {
            Ok(list) => found.extend(
                list.items
                    .iter()
                    .filter_map(|o| observed(o, StatusKind::Bgp, Detail::new())),
            ),
            Err(e) => tracing::warn!(error = %e, "listing ServiceBGPStatus of departed nodes"),
        }
        let refs: Vec<&Observed> = found.iter().collect();
        for group in stale_groups(&refs, live) {
            self.delete_group(&group).await;
        }
    }

    /// Deletes every object of `group` in one request.
    async fn delete_group(&self, group: &StaleGroup) {
        let api = self.api(group.kind, &group.namespace);
        let params = ListParams::default().labels(&format!("{NODE_LABEL}={}", group.node));
        match api
            .delete_collection(&DeleteParams::default(), &params)
            .await
        {
            Ok(_) => {
                tracing::info!(kind = group.kind.kind(), namespace = %group.namespace, node = %group.node, "removed the status objects of a departed node");
                self.metrics
                    .writes
                    .get_or_create(&WriteLabels {
                        kind: group.kind.kind().into(),
                        op: "deletecollection".into(),
                    })
                    .inc();
            }
            Err(e) => {
                tracing::warn!(kind = group.kind.kind(), node = %group.node, error = %e, "removing the status objects of a departed node; retried later")
            }
        }
    }
}

/// The labels of an object: node and Service.
fn labels(service: &ServiceKey, node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NODE_LABEL.to_string(), node.to_string()),
        (SERVICE_NAME_LABEL.to_string(), service.name.clone()),
        (
            SERVICE_NAMESPACE_LABEL.to_string(),
            service.namespace.clone(),
        ),
    ])
}

/// The API resource of a kind.
fn resource(kind: StatusKind) -> ApiResource {
    match kind {
        StatusKind::Layer2 => ApiResource::erase::<ServiceL2Status>(&()),
        StatusKind::Bgp => ApiResource::erase::<ServiceBgpStatus>(&()),
    }
}

/// A new object (without status: the status subresource ignores it on create).
fn new_object(
    kind: StatusKind,
    name: &str,
    service: &ServiceKey,
    node: &str,
    uid: &str,
) -> DynamicObject {
    let mut object = DynamicObject::new(name, &resource(kind)).within(&service.namespace);
    object.metadata.labels = Some(labels(service, node));
    // Owned by the Service: deleting it deletes its status objects.
    object.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.name.clone(),
        uid: uid.into(),
        ..Default::default()
    }]);
    object.data = json!({ "spec": {} });
    object
}

/// The `status` of an object.
fn status_body(
    kind: StatusKind,
    service: &ServiceKey,
    node: &str,
    detail: &Detail,
) -> serde_json::Value {
    let detail: serde_json::Value = match kind {
        StatusKind::Layer2 => detail.iter().map(|name| json!({ "name": name })).collect(),
        StatusKind::Bgp => detail.iter().map(|peer| json!(peer)).collect(),
    };
    let mut body = json!({
        "node": node,
        "serviceName": service.name,
        "serviceNamespace": service.namespace,
    });
    body[kind.detail_field()] = detail;
    body
}

/// What a stored `ServiceL2Status` says, if it is labelled as ours are.
fn l2_observed(o: &ServiceL2Status) -> Option<Observed> {
    let detail = o
        .status
        .as_ref()
        .map(|s| s.interfaces.iter().map(|i| i.name.clone()).collect())
        .unwrap_or_default();
    observed(o, StatusKind::Layer2, detail)
}

/// What a stored `ServiceBGPStatus` says, if it is labelled as ours are.
fn bgp_observed(o: &ServiceBgpStatus) -> Option<Observed> {
    let detail = o
        .status
        .as_ref()
        .map(|s| s.peers.iter().cloned().collect())
        .unwrap_or_default();
    observed(o, StatusKind::Bgp, detail)
}

fn observed<K: Resource>(o: &K, kind: StatusKind, detail: Detail) -> Option<Observed> {
    let meta = o.meta();
    let labels = meta.labels.as_ref()?;
    Some(Observed {
        name: meta.name.clone()?,
        kind,
        service: ServiceKey::new(
            meta.namespace.clone()?,
            labels.get(SERVICE_NAME_LABEL)?.clone(),
        ),
        node: labels.get(NODE_LABEL)?.clone(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Detail {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn status_bodies_use_metallbs_field_shapes() {
        let service = ServiceKey::new("default", "web");
        let cases = [
            (
                "layer 2: interfaces are objects with a name",
                StatusKind::Layer2,
                json!({"node": "n1", "serviceName": "web", "serviceNamespace": "default", "interfaces": [{"name": "eth0"}]}),
            ),
            (
                "BGP: peers are names",
                StatusKind::Bgp,
                json!({"node": "n1", "serviceName": "web", "serviceNamespace": "default", "peers": ["eth0"]}),
            ),
        ];
        for (rule, kind, want) in cases {
            assert_eq!(
                status_body(kind, &service, "n1", &set(&["eth0"])),
                want,
                "{rule}"
            );
        }
    }

    #[test]
    fn new_objects_are_labelled_and_owned_by_the_service() {
        let service = ServiceKey::new("shop", "web");
        let o = new_object(StatusKind::Layer2, "web.n1", &service, "n1", "uid-1");
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["apiVersion"], "metallb.io/v1beta1");
        assert_eq!(v["kind"], "ServiceL2Status");
        assert_eq!(
            v["metadata"]["namespace"], "shop",
            "in the Service's namespace, where its owner is"
        );
        assert_eq!(v["metadata"]["labels"]["metallb.io/node"], "n1");
        assert_eq!(v["metadata"]["labels"]["metallb.io/service-name"], "web");
        assert_eq!(
            v["metadata"]["labels"]["metallb.io/service-namespace"],
            "shop"
        );
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-1"}])
        );
        let back: ServiceL2Status = serde_json::from_value(v).unwrap();
        assert_eq!(
            l2_observed(&back),
            Some(Observed {
                name: "web.n1".into(),
                kind: StatusKind::Layer2,
                service,
                node: "n1".into(),
                detail: Detail::new(),
            }),
            "an object reads back as the one written"
        );
    }

    #[test]
    fn objects_without_our_labels_are_not_ours() {
        let mut o = ServiceBgpStatus::new("x", Default::default());
        o.metadata.namespace = Some("default".into());
        assert_eq!(bgp_observed(&o), None, "no labels: not read");
        o.metadata.labels = Some(BTreeMap::from([(NODE_LABEL.to_string(), "n1".to_string())]));
        assert_eq!(bgp_observed(&o), None, "no service label: not read");
    }
}
