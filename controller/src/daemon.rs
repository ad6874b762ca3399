//! The controller's one loop: watchers send notes of what changed; the loop
//! takes what it needs from the stores, lets the pure [`Reconciler`] decide,
//! and applies only the resulting actions (status patches, Events, metrics).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::crd;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::allocator::NamespaceLabels;
use crate::k8s::events::EventSink;
use crate::k8s::secret::{SecretOutcome, ensure_memberlist_secret};
use crate::k8s::status::write_ingress;
use crate::k8s::watch::{self, Change, Source};
use crate::metrics::{Metrics, PoolLabels};
use crate::reconcile::{Action, ConfigOutcome, Reconciler};
use crate::service::ServiceKey;

/// Status patches in flight at once (the API server's own limit is far higher).
const STATUS_WRITES_IN_FLIGHT: usize = 64;
/// Delay before a failed status write is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the daemon is told on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace of the ConfigMap, CRDs and memberlist Secret.
    pub namespace: String,
    /// Name of the ConfigMap holding the legacy config (key `config`).
    pub config_name: String,
    /// The load-balancer class handled (`None` = Services without one).
    pub lb_class: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// Name the controller reports in Events.
    pub reporter: String,
    /// The admission webhook, when served (`--webhook-addr`).
    pub webhook: Option<crate::webhook::Options>,
}

/// The reflector stores the loop reads from.
#[derive(Clone)]
struct Stores {
    services: Store<Service>,
    configmaps: Store<ConfigMap>,
    namespaces: Store<Namespace>,
    pools: Store<crd::IpAddressPool>,
    l2: Store<crd::L2Advertisement>,
    bgp: Store<crd::BgpAdvertisement>,
    peers: Store<crd::BgpPeer>,
    communities: Store<crd::Community>,
    bfd: Store<crd::BfdProfile>,
}

/// Every source the first full pass waits for.
const CRD_SOURCES: [&str; 6] = [
    "ipaddresspools",
    "l2advertisements",
    "bgpadvertisements",
    "bgppeers",
    "communities",
    "bfdprofiles",
];

fn start_watchers(client: &kube::Client, opts: &Options, tx: &UnboundedSender<Change>) -> Stores {
    let ns = opts.namespace.as_str();
    let cm_config =
        watcher::Config::default().fields(&format!("metadata.name={}", opts.config_name));
    Stores {
        services: watch::spawn(
            Api::all(client.clone()),
            watcher::Config::default(),
            Source::Services,
            tx.clone(),
            watch::note_service,
        ),
        configmaps: watch::spawn(
            Api::namespaced(client.clone(), ns),
            cm_config,
            Source::ConfigMap,
            tx.clone(),
            watch::note_config,
        ),
        namespaces: watch::spawn(
            Api::all(client.clone()),
            watcher::Config::default(),
            Source::Namespaces,
            tx.clone(),
            watch::note_config,
        ),
        pools: crd_watch(client, ns, CRD_SOURCES[0], tx),
        l2: crd_watch(client, ns, CRD_SOURCES[1], tx),
        bgp: crd_watch(client, ns, CRD_SOURCES[2], tx),
        peers: crd_watch(client, ns, CRD_SOURCES[3], tx),
        communities: crd_watch(client, ns, CRD_SOURCES[4], tx),
        bfd: crd_watch(client, ns, CRD_SOURCES[5], tx),
    }
}

fn crd_watch<K>(
    client: &kube::Client,
    ns: &str,
    plural: &'static str,
    tx: &UnboundedSender<Change>,
) -> Store<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    watch::spawn(
        Api::namespaced(client.clone(), ns),
        watcher::Config::default(),
        Source::Crd(plural),
        tx.clone(),
        watch::note_config,
    )
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

impl Stores {
    /// Load the config from the ConfigMap and the custom resources.
    fn load_config(
        &self,
        opts: &Options,
    ) -> Result<ferrolb_config::model::Config, ferrolb_config::ConfigErrors> {
        let key = ObjectRef::new(&opts.config_name).within(&opts.namespace);
        let cm = self.configmaps.get(&key);
        let text = cm
            .as_ref()
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get("config"))
            .map(String::as_str);
        ferrolb_config::load(text, &self.resources())
    }

    /// The custom resources in the stores.
    fn resources(&self) -> crd::Resources {
        crd::Resources {
            ip_address_pools: cloned(&self.pools),
            l2_advertisements: cloned(&self.l2),
            bgp_advertisements: cloned(&self.bgp),
            bgp_peers: cloned(&self.peers),
            communities: cloned(&self.communities),
            bfd_profiles: cloned(&self.bfd),
        }
    }

    fn namespace_labels(&self) -> HashMap<String, NamespaceLabels> {
        self.namespaces
            .state()
            .iter()
            .filter_map(|ns| {
                Some((
                    ns.metadata.name.clone()?,
                    ns.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect()
    }

    fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}

fn key_of(r: &ObjectRef<Service>) -> ServiceKey {
    ServiceKey::new(r.namespace.clone().unwrap_or_default(), r.name.clone())
}

/// Run the controller until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), std::io::Error> {
    let metrics = Arc::new(Metrics::new());
    let server = tokio::spawn(ferrolb_shell::serve::serve(
        opts.metrics_addr,
        metrics.exporter.clone(),
    ));

    match ensure_memberlist_secret(client.clone(), &opts.namespace).await {
        Ok(SecretOutcome::Created) => {
            tracing::info!(namespace = %opts.namespace, "created the memberlist secret")
        }
        Ok(SecretOutcome::Existing) => {}
        // The speakers cannot gossip without it, but allocation can go on.
        Err(e) => tracing::error!(error = %e, "could not ensure the memberlist secret"),
    }

    let opts_lb_class = opts.lb_class.clone();
    let (tx, rx) = unbounded_channel();
    let stores = start_watchers(&client, &opts, &tx);
    if let Some(webhook) = opts.webhook.clone() {
        start_webhook(&client, &opts, webhook, &stores, metrics.clone());
    }
    let writes = Arc::new(tokio::sync::Semaphore::new(STATUS_WRITES_IN_FLIGHT));
    let idle = writes.clone();
    let events = EventSink::spawn(client.clone(), &opts.reporter, move || {
        idle.available_permits() < STATUS_WRITES_IN_FLIGHT
    });
    let mut looper = Loop {
        client,
        opts,
        stores,
        events,
        metrics,
        tx,
        reconciler: Reconciler::new(opts_lb_class),
        writes,
    };
    tokio::select! {
        () = looper.run(rx) => {}
        () = shutdown => tracing::info!("shutting down"),
        r = server => if let Ok(Err(e)) = r { return Err(e) },
    }
    Ok(())
}

/// Serve the admission webhook from the stores, and register it (its
/// caBundle, and a URL when given) until the API server takes the patch.
fn start_webhook(
    client: &kube::Client,
    opts: &Options,
    webhook: crate::webhook::Options,
    stores: &Stores,
    metrics: Arc<Metrics>,
) {
    let identity = match &webhook.cert_dir {
        Some(dir) => crate::webhook::tls::from_dir(dir),
        None => crate::webhook::tls::self_signed(&webhook.certificate_names(&opts.namespace)),
    };
    let identity = match identity {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "admission webhook not started");
            return;
        }
    };
    let scope = crate::admission::Scope {
        namespace: opts.namespace.clone(),
        config_name: opts.config_name.clone(),
        lb_class: opts.lb_class.clone(),
    };
    let snapshot = stores.snapshotter(opts, metrics);
    let registration = (client.clone(), webhook.clone(), identity.ca_pem.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::webhook::serve(&webhook, &identity, scope, snapshot).await {
            tracing::error!(error = %e, "admission webhook stopped");
        }
    });
    tokio::spawn(async move {
        let (client, webhook, ca) = registration;
        if ca.is_none() && webhook.url.is_none() {
            return;
        }
        loop {
            match crate::k8s::webhook_config::register(
                client.clone(),
                &webhook.configuration,
                ca.as_deref(),
                webhook.url.as_deref(),
            )
            .await
            {
                Ok(()) => {
                    tracing::info!(configuration = %webhook.configuration, "admission webhook registered");
                    return;
                }
                Err(e) => {
                    tracing::warn!(configuration = %webhook.configuration, error = %e, "cannot register the admission webhook; retrying");
                    tokio::time::sleep(WEBHOOK_RETRY).await;
                }
            }
        }
    });
}

/// Delay between attempts to register the webhook.
const WEBHOOK_RETRY: Duration = Duration::from_secs(3);

impl Stores {
    /// What the webhook reads for each request (clones of the stores' handles).
    fn snapshotter(&self, opts: &Options, metrics: Arc<Metrics>) -> crate::webhook::Snapshotter {
        let stores = self.clone();
        let opts = opts.clone();
        Arc::new(move || {
            let key = ObjectRef::new(&opts.config_name).within(&opts.namespace);
            let configmap = stores
                .configmaps
                .get(&key)
                .and_then(|cm| cm.data.as_ref()?.get("config").cloned());
            let namespace_terminating = stores
                .namespaces
                .get(&ObjectRef::new(&opts.namespace))
                .is_some_and(|ns| {
                    ns.metadata.deletion_timestamp.is_some()
                        || ns.status.as_ref().and_then(|s| s.phase.as_deref())
                            == Some("Terminating")
                });
            crate::webhook::Snapshot {
                synced: metrics.is_ready(),
                configmap,
                resources: stores.resources(),
                services: stores.services.state(),
                namespace_terminating,
            }
        })
    }
}

struct Loop {
    client: kube::Client,
    opts: Options,
    stores: Stores,
    events: EventSink,
    metrics: Arc<Metrics>,
    tx: UnboundedSender<Change>,
    reconciler: Reconciler,
    /// Permits for status writes in flight.
    writes: Arc<tokio::sync::Semaphore>,
}

impl Loop {
    async fn run(&mut self, mut rx: UnboundedReceiver<Change>) {
        self.wait_for_sync(&mut rx).await;
        // First pass: rebuild from every Service's status, then allocate.
        self.apply_config();
        let all = self.all_keys();
        self.process(all);
        self.metrics.set_ready(true);
        tracing::info!("initial sync done; ready");

        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(c) = rx.try_recv() {
                batch.push(c);
            }
            let mut dirty = BTreeSet::new();
            let mut config_changed = false;
            for change in batch {
                match change {
                    Change::Service(r) => {
                        dirty.insert(key_of(&r));
                    }
                    Change::Synced(Source::Services) => dirty.extend(self.all_keys()),
                    Change::Config(_) | Change::Synced(_) | Change::Absent(_) => {
                        config_changed = true;
                    }
                }
            }
            if config_changed && self.apply_config() {
                dirty.extend(self.all_keys());
            }
            self.process(dirty);
        }
    }

    /// Wait until every source has been listed once (or is absent).
    async fn wait_for_sync(&mut self, rx: &mut UnboundedReceiver<Change>) {
        let mut waiting: BTreeSet<Source> =
            [Source::Services, Source::ConfigMap, Source::Namespaces]
                .into_iter()
                .chain(CRD_SOURCES.into_iter().map(Source::Crd))
                .collect();
        while !waiting.is_empty() {
            match rx.recv().await {
                Some(Change::Synced(s)) | Some(Change::Absent(s)) => {
                    waiting.remove(&s);
                }
                Some(_) => {}
                None => return,
            }
        }
    }

    /// Every Service in the store and every one the reconciler knows.
    fn all_keys(&self) -> BTreeSet<ServiceKey> {
        let mut keys = self.reconciler.known();
        keys.extend(self.stores.services.state().iter().filter_map(|s| {
            Some(ServiceKey::new(
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone()?,
            ))
        }));
        keys
    }

    /// Offer the cluster's config; true when a new one came into force.
    fn apply_config(&mut self) -> bool {
        let loaded = self.stores.load_config(&self.opts);
        let services = self.stores.services.state();
        let refs: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
        let outcome = self.reconciler.offer_config(loaded, &refs);
        match &outcome {
            ConfigOutcome::Unchanged => {}
            ConfigOutcome::Loaded => tracing::info!("config loaded"),
            ConfigOutcome::Invalid(errors) => {
                for e in errors.iter() {
                    tracing::error!(error = %e, "invalid config refused; the previous one stays in force");
                }
            }
            ConfigOutcome::Refused(refused) => {
                tracing::error!(reason = %refused, "config refused: it would orphan assigned IPs; the previous one stays in force");
            }
        }
        self.metrics
            .config_loaded
            .set(i64::from(self.reconciler.config_loaded()));
        self.metrics
            .config_stale
            .set(i64::from(self.reconciler.config_stale()));
        if outcome == ConfigOutcome::Loaded {
            self.metrics.addresses_total.clear();
            self.metrics.addresses_in_use.clear();
            true
        } else {
            false
        }
    }

    /// Decide for the dirty Services (and those waiting for a freed IP), then apply.
    fn process(&mut self, dirty: BTreeSet<ServiceKey>) {
        let namespaces = self.stores.namespace_labels();
        let empty = NamespaceLabels::new();
        let mut actions = Vec::new();
        let mut todo: Vec<ServiceKey> = dirty.into_iter().collect();
        // A freed IP may serve a waiting Service; a few rounds settle it.
        for _ in 0..4 {
            for key in &todo {
                let svc = self.stores.service(key);
                let labels = namespaces.get(&key.namespace).unwrap_or(&empty);
                actions.extend(self.reconciler.service(key, svc.as_deref(), labels));
            }
            todo = self.reconciler.take_freed();
            if todo.is_empty() {
                break;
            }
        }
        self.apply(actions);
        self.update_pool_metrics();
    }

    /// Apply the decisions: Events go to their queue, status writes run as
    /// tasks (at most [`STATUS_WRITES_IN_FLIGHT`] at once) so the loop goes on
    /// deciding while they are in flight. Every write is self-correcting: the
    /// watch shows the status it left, and a Service whose status differs from
    /// its assignment is written again.
    fn apply(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::WriteStatus { key, ips } => self.spawn_write(key, ips),
                Action::Event { key, event } => {
                    if let Some(svc) = self.stores.service(&key) {
                        self.events.record(&svc, event);
                    }
                }
            }
        }
    }

    fn spawn_write(&self, key: ServiceKey, ips: Vec<IpAddr>) {
        let client = self.client.clone();
        let metrics = self.metrics.clone();
        let tx = self.tx.clone();
        let permits = self.writes.clone();
        tokio::spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let result = write_ingress(client, &key.namespace, &key.name, &ips).await;
            drop(permit);
            match result {
                Ok(()) => {
                    metrics.updates.inc();
                }
                // Deleted meanwhile: its Delete note frees the IP.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    metrics.update_errors.inc();
                    tracing::warn!(service = %key, error = %e, "status update failed; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                    let _ = tx.send(Change::Service(
                        ObjectRef::new(&key.name).within(&key.namespace),
                    ));
                }
            }
        });
    }

    fn update_pool_metrics(&self) {
        let Some(allocator) = self.reconciler.allocator() else {
            return;
        };
        for pool in &allocator.config().pools {
            let labels = PoolLabels {
                pool: pool.name.clone(),
            };
            if let Some(total) = allocator.addresses_total(&pool.name) {
                self.metrics
                    .addresses_total
                    .get_or_create(&labels)
                    .set(total.to_f64());
            }
            if let Some(used) = allocator.addresses_in_use(&pool.name) {
                self.metrics
                    .addresses_in_use
                    .get_or_create(&labels)
                    .set(used.to_f64());
            }
        }
    }
}
