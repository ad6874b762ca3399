//! The speaker's one loop: watchers, membership and the interface tracker
//! send notes of what changed; the loop takes a snapshot of what it knows,
//! lets the pure [`election`](crate::election) decide what this node must
//! announce, and hands the difference to the announcer.
//!
//! Membership starts once the memberlist Secret and this node's host IP
//! are known (both come from the API); until then, and until the first
//! join has finished, the node announces nothing (alone, it would win
//! every address). On shutdown the speaker goes silent first, then leaves
//! the cluster so that the others take over at once.
//!
//! BGP needs no membership (every eligible node announces): it is driven
//! from the same snapshot as soon as every source is listed, and on
//! shutdown its sessions say Cease before anything else so that routers
//! drop this node's next hops at once (sessions with graceful restart
//! close without Cease so that routers keep them).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_config::crd;
use ferrolb_config::model::Config;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::watch as channel;
use tokio::task::JoinHandle;

use crate::announce::{Announcer, Desired, Protocol, ServiceIp, ServiceKey};
use crate::bgp::{BgpDesired, BgpSpeaker, PeerSecrets, desired_bgp};
use crate::election::{self, Snapshot};
use crate::k8s::events::EventSink;
use crate::k8s::partial::{EndpointSlice, Service};
use crate::k8s::projection::{self, Projection};
use crate::k8s::snapshot::{self, Seed, ServiceRecord, SliceRecord};
use crate::k8s::status::StatusInput;
use crate::k8s::watch::{self, Change, Source};
use crate::layer2::interfaces;
use crate::layer2::responder::Layer2Responder;
use crate::membership::{
    GossipMembership, LiveMembers, Membership, MembershipConfig, MembershipError, Timing,
};
use crate::metrics::{AnnouncedLabels, AnnouncedMetric, SpeakerMetrics};

/// What the daemon is told on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's name (the Node object's, and the member name).
    pub node_name: String,
    /// Namespace of the config, the CRDs, the speaker Pods and the memberlist Secret.
    pub namespace: String,
    /// Name of the ConfigMap holding the legacy config (key `config`).
    pub config_name: String,
    /// The load-balancer class handled (`None` = Services without one).
    pub lb_class: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_addr: SocketAddr,
    /// The memberlist port (UDP and TCP), the same on every node.
    pub memberlist_port: u16,
    /// The address to gossip from; `None`: this node's speaker Pod's `status.hostIP`.
    pub host_ip: Option<IpAddr>,
    /// Label selector of the speaker Pods (the memberlist seeds).
    pub speaker_selector: String,
    /// Name of the Secret holding the memberlist key (key `secretkey`).
    pub secret_name: String,
    /// Failure-detection timings.
    pub timing: Timing,
    /// How often members missing from the live set are joined again.
    pub rejoin_interval: Duration,
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The metrics endpoint could not serve.
    #[error("metrics endpoint on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The network interfaces cannot be tracked.
    #[error(transparent)]
    Interfaces(#[from] interfaces::InterfacesError),
    /// An input the loop depends on closed (a bug or a dying runtime).
    #[error("{0} stopped")]
    Stopped(&'static str),
}

/// Every CRD kind, by plural: the first full pass waits for all of them.
const CRD_SOURCES: [&str; 6] = [
    "ipaddresspools",
    "l2advertisements",
    "bgpadvertisements",
    "bgppeers",
    "communities",
    "bfdprofiles",
];

/// The stores the loop reads from: projections of the kinds watched
/// cluster-wide, reflectors of the few others.
struct Stores {
    services: Projection<ServiceRecord>,
    slices: Projection<SliceRecord>,
    nodes: Store<Node>,
    pods: Store<Pod>,
    secrets: Store<Secret>,
    peer_secrets: Store<Secret>,
    configmaps: Store<ConfigMap>,
    pools: Store<crd::IpAddressPool>,
    l2: Store<crd::L2Advertisement>,
    bgp: Store<crd::BgpAdvertisement>,
    peers: Store<crd::BgpPeer>,
    communities: Store<crd::Community>,
    bfd: Store<crd::BfdProfile>,
}

/// Nodes carry image lists and conditions the speaker never reads.
fn trim_node(node: &mut Node) {
    watch::trim_metadata(node);
    node.status = None;
    node.spec = None;
}

/// Only `basic-auth` Secrets (BGP peer passwords) are kept whole; of the
/// others, which the speaker never reads, only the name stays.
fn trim_peer_secret(secret: &mut Secret) {
    watch::trim_metadata(secret);
    if !snapshot::is_basic_auth(secret) {
        secret.data = None;
        secret.string_data = None;
    }
}

/// Of a speaker Pod only its node, IPs and deletion state matter.
fn trim_pod(pod: &mut Pod) {
    watch::trim_metadata(pod);
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers.clear();
        spec.init_containers = None;
        spec.volumes = None;
    }
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.conditions = None;
    }
}

fn crd_watch<K>(
    client: &kube::Client,
    ns: &str,
    plural: &'static str,
    tx: &UnboundedSender<Change>,
) -> Store<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
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
        watch::keep,
    )
}

fn start_watchers(client: &kube::Client, opts: &Options, tx: &UnboundedSender<Change>) -> Stores {
    let ns = opts.namespace.as_str();
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let lb_class = opts.lb_class.clone();
    Stores {
        services: projection::spawn(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            Source::Services,
            tx.clone(),
            move |s| snapshot::service_record(s, lb_class.as_deref()),
        ),
        slices: projection::spawn(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
            Source::EndpointSlices,
            tx.clone(),
            snapshot::slice_record,
        ),
        nodes: watch::spawn(
            Api::all(client.clone()),
            watcher::Config::default(),
            Source::Nodes,
            tx.clone(),
            trim_node,
        ),
        pods: watch::spawn(
            Api::namespaced(client.clone(), ns),
            watcher::Config::default().labels(&opts.speaker_selector),
            Source::SpeakerPods,
            tx.clone(),
            trim_pod,
        ),
        secrets: watch::spawn(
            Api::namespaced(client.clone(), ns),
            by_name(&opts.secret_name),
            Source::Secret,
            tx.clone(),
            watch::keep,
        ),
        // A field selector on the type is not served everywhere; the
        // others are trimmed on arrival instead.
        peer_secrets: watch::spawn(
            Api::namespaced(client.clone(), ns),
            watcher::Config::default(),
            Source::PeerSecrets,
            tx.clone(),
            trim_peer_secret,
        ),
        configmaps: watch::spawn(
            Api::namespaced(client.clone(), ns),
            by_name(&opts.config_name),
            Source::ConfigMap,
            tx.clone(),
            watch::keep,
        ),
        pools: crd_watch(client, ns, CRD_SOURCES[0], tx),
        l2: crd_watch(client, ns, CRD_SOURCES[1], tx),
        bgp: crd_watch(client, ns, CRD_SOURCES[2], tx),
        peers: crd_watch(client, ns, CRD_SOURCES[3], tx),
        communities: crd_watch(client, ns, CRD_SOURCES[4], tx),
        bfd: crd_watch(client, ns, CRD_SOURCES[5], tx),
    }
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

impl Stores {
    /// The configuration from the ConfigMap and the custom resources.
    fn load_config(&self, opts: &Options) -> Result<Config, ferrolb_config::ConfigErrors> {
        let key = ObjectRef::new(&opts.config_name).within(&opts.namespace);
        let cm = self.configmaps.get(&key);
        let text = cm
            .as_ref()
            .and_then(|cm| cm.data.as_ref())
            .and_then(|d| d.get("config"))
            .map(String::as_str);
        let resources = crd::Resources {
            ip_address_pools: cloned(&self.pools),
            l2_advertisements: cloned(&self.l2),
            bgp_advertisements: cloned(&self.bgp),
            bgp_peers: cloned(&self.peers),
            communities: cloned(&self.communities),
            bfd_profiles: cloned(&self.bfd),
        };
        ferrolb_config::load(text, &resources)
    }

    fn secret_key(&self, opts: &Options) -> Option<Vec<u8>> {
        let key = ObjectRef::new(&opts.secret_name).within(&opts.namespace);
        self.secrets
            .get(&key)
            .and_then(|s| snapshot::secret_key(&s))
            .filter(|k| !k.is_empty())
    }

    /// The BGP peer passwords known now.
    fn peer_secrets(&self) -> PeerSecrets {
        let secrets = self.peer_secrets.state();
        snapshot::peer_secrets(secrets.iter().map(|s| s.as_ref()))
    }

    fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods.state()
    }
}

/// Runs the speaker until `shutdown` completes, then hands over and leaves.
pub async fn run(
    client: kube::Client,
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let metrics = Arc::new(SpeakerMetrics::new());
    let bgp_metrics = metrics.bgp.clone();
    let addr = opts.metrics_addr;
    let mut server = tokio::spawn(ferrolb_shell::serve::serve(addr, metrics.exporter.clone()));
    let mut links = interfaces::track().await?;

    let (tx, rx) = unbounded_channel();
    let stores = start_watchers(&client, &opts, &tx);
    let status = crate::k8s::status::spawn(
        client.clone(),
        opts.node_name.clone(),
        metrics.status.clone(),
    );
    let events = EventSink::spawn(client, "ferrolb-speaker", &opts.node_name);
    let (join_tx, join_rx) = unbounded_channel();
    let mut speaker = Speaker {
        responder: Layer2Responder::new(metrics.layer2.clone()),
        bgp: Some(bgp_speaker(
            bgp_metrics,
            &events,
            &opts.node_name,
            stores.nodes.clone(),
        )),
        opts,
        stores,
        metrics,
        events,
        status,
        membership: None,
        members: None,
        joining: None,
        joined: Vec::new(),
        first_join_done: false,
        key_in_use: None,
        join_done: join_tx,
        config: None,
        current: Desired::default(),
        waiting: [
            Source::Services,
            Source::EndpointSlices,
            Source::Nodes,
            Source::SpeakerPods,
            Source::Secret,
            Source::PeerSecrets,
            Source::ConfigMap,
        ]
        .into_iter()
        .chain(CRD_SOURCES.into_iter().map(Source::Crd))
        .collect(),
        links: Vec::new(),
    };
    speaker.links = links.borrow_and_update().clone();

    let outcome = tokio::select! {
        r = speaker.run(rx, join_rx, &mut links) => r,
        () = shutdown => {
            tracing::info!("shutting down: handing over");
            Ok(())
        }
        r = &mut server => match r {
            Ok(Err(source)) => Err(DaemonError::Metrics { addr, source }),
            _ => Ok(()),
        },
    };
    speaker.hand_over().await;
    server.abort();
    outcome
}

/// The main loop's state.
struct Speaker {
    opts: Options,
    stores: Stores,
    metrics: Arc<SpeakerMetrics>,
    events: EventSink,
    /// Where the ServiceL2Status / ServiceBGPStatus writer takes what this node announces.
    status: tokio::sync::watch::Sender<Arc<StatusInput>>,
    responder: Layer2Responder,
    /// The BGP sessions (taken on shutdown).
    bgp: Option<BgpSpeaker>,
    /// What the BGP sessions were last given, and with which passwords.
    membership: Option<Arc<GossipMembership>>,
    members: Option<channel::Receiver<LiveMembers>>,
    /// The join in flight, if any (at most one at a time).
    joining: Option<JoinHandle<()>>,
    /// The seeds of the last join.
    joined: Vec<Seed>,
    /// Whether the first join has finished. Until then this node would see
    /// itself alone and win every address for a moment: it announces
    /// nothing before.
    first_join_done: bool,
    /// Where a finished join reports.
    join_done: UnboundedSender<()>,
    /// The memberlist key gossip runs with (a changed Secret needs a restart).
    key_in_use: Option<Vec<u8>>,
    /// The configuration in force.
    config: Option<Arc<Config>>,
    /// What this node announces now.
    current: Desired,
    /// Sources not listed completely yet.
    waiting: BTreeSet<Source>,
    /// The eligible interfaces, as last reported by the tracker.
    links: Vec<pnet_datalink::NetworkInterface>,
}

/// Waits for the next change of the live set; never, without membership.
async fn members_changed(members: &mut Option<channel::Receiver<LiveMembers>>) {
    match members {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

impl Speaker {
    async fn run(
        &mut self,
        mut rx: UnboundedReceiver<Change>,
        mut joins: UnboundedReceiver<()>,
        links: &mut channel::Receiver<Vec<pnet_datalink::NetworkInterface>>,
    ) -> Result<(), DaemonError> {
        let mut rejoin = tokio::time::interval(self.opts.rejoin_interval);
        rejoin.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut config_dirty = true;
        // Membership is (re)tried when what it needs may have changed, not
        // on every Service update, so that a missing Secret logs sparingly.
        let mut membership_dirty = true;
        loop {
            let mut periodic = false;
            tokio::select! {
                change = rx.recv() => {
                    let Some(first) = change else {
                        return Err(DaemonError::Stopped("the watchers"));
                    };
                    let mut batch = vec![first];
                    while let Ok(c) = rx.try_recv() {
                        batch.push(c);
                    }
                    for change in batch {
                        if let Change::Synced(s) | Change::Absent(s) = change {
                            self.waiting.remove(&s);
                        }
                        if matches!(change.source(), Source::ConfigMap | Source::Crd(_)) {
                            config_dirty = true;
                        }
                        if change == Change::Touched(Source::Secret) {
                            self.warn_on_key_change();
                        }
                        if matches!(change.source(), Source::Secret | Source::SpeakerPods) {
                            membership_dirty = true;
                        }
                    }
                }
                () = members_changed(&mut self.members) => {}
                Some(()) = joins.recv() => self.first_join_done = true,
                changed = links.changed() => {
                    if changed.is_err() {
                        return Err(DaemonError::Stopped("the interface tracker"));
                    }
                    self.links = links.borrow_and_update().clone();
                    self.refresh_interfaces();
                    continue;
                }
                _ = rejoin.tick() => {
                    periodic = true;
                    membership_dirty = true;
                }
            }
            if !self.waiting.is_empty() {
                continue;
            }
            if self.membership.is_none() && std::mem::take(&mut membership_dirty) {
                self.start_membership().await;
            }
            self.join(periodic);
            if config_dirty {
                self.reload_config();
                config_dirty = false;
            }
            self.announce().await;
        }
    }

    /// Opens the responder on the eligible interfaces some L2Advertisement may use.
    fn refresh_interfaces(&mut self) {
        let scope = self.config.as_deref().and_then(interfaces::scope);
        let wanted = interfaces::in_scope(&self.links, scope.as_ref());
        if let Err(e) = self.responder.set_interfaces(&wanted) {
            tracing::warn!(error = %e, "layer2: cannot answer on every interface");
        }
    }

    /// Starts gossiping once the key and the host IP are known.
    async fn start_membership(&mut self) {
        let Some(secret) = self.stores.secret_key(&self.opts) else {
            tracing::error!(
                namespace = %self.opts.namespace,
                secret = %self.opts.secret_name,
                "the memberlist secret (key secretkey) is missing; not joining, nothing announced; retrying"
            );
            return;
        };
        let pods = self.stores.pods();
        let host_ip = self.opts.host_ip.or_else(|| {
            snapshot::own_host_ip(pods.iter().map(|p| p.as_ref()), &self.opts.node_name)
        });
        let Some(host_ip) = host_ip else {
            tracing::error!(
                node = %self.opts.node_name,
                "no host IP: set --host-ip (METALLB_HOST) or run as a Pod matching the speaker selector; retrying"
            );
            return;
        };
        let config = MembershipConfig {
            node_name: self.opts.node_name.clone(),
            bind: SocketAddr::new(host_ip, self.opts.memberlist_port),
            advertise: None,
            secret: secret.clone(),
            timing: self.opts.timing,
        };
        match GossipMembership::start(config).await {
            Ok(m) => {
                self.members = Some(m.subscribe());
                self.membership = Some(Arc::new(m));
                self.key_in_use = Some(secret);
            }
            Err(e) => tracing::error!(error = %e, "cannot start memberlist; retrying"),
        }
    }

    /// memberlist cannot change its key while running: say so when the
    /// Secret changes under a running speaker.
    fn warn_on_key_change(&self) {
        let Some(in_use) = &self.key_in_use else {
            return;
        };
        if self.stores.secret_key(&self.opts).as_ref() != Some(in_use) {
            tracing::warn!(
                secret = %self.opts.secret_name,
                "the memberlist secret changed; restart the speakers (all at once) to use the new key"
            );
        }
    }

    /// Joins the other speakers when their set changed, and, on the
    /// periodic tick, those missing from the live set (a healed partition).
    fn join(&mut self, periodic: bool) {
        let Some(membership) = self.membership.clone() else {
            return;
        };
        if self.joining.as_ref().is_some_and(|j| !j.is_finished()) {
            return;
        }
        let pods = self.stores.pods();
        let seeds = snapshot::seeds(
            pods.iter().map(|p| p.as_ref()),
            &self.opts.node_name,
            self.opts.memberlist_port,
        );
        let targets: Vec<SocketAddr> = if seeds != self.joined {
            seeds.iter().map(|s| s.addr).collect()
        } else if periodic {
            let live = self
                .members
                .as_ref()
                .map(|m| m.borrow().clone())
                .unwrap_or_default();
            seeds
                .iter()
                .filter(|s| !live.contains(&s.node))
                .map(|s| s.addr)
                .collect()
        } else {
            Vec::new()
        };
        self.joined = seeds;
        if targets.is_empty() {
            // Nobody to join: alone for now, and so free to announce.
            self.first_join_done = true;
            return;
        }
        let done = self.join_done.clone();
        self.joining = Some(tokio::spawn(async move {
            match membership.join(&targets).await {
                Ok(n) => tracing::info!(joined = n, tried = targets.len(), "joined speakers"),
                Err(MembershipError::Join { tried, message }) => {
                    tracing::debug!(tried, error = %message, "no speaker answered the join")
                }
                Err(e) => tracing::warn!(error = %e, "memberlist join failed"),
            }
            let _ = done.send(());
        }));
    }

    /// The live set as memberlist knows it now (the watch channel only
    /// says when it changed, and may lag a join by an instant).
    async fn live(&self) -> LiveMembers {
        match &self.membership {
            Some(m) => m.live_members().await,
            None => LiveMembers::new(),
        }
    }

    /// Offers the cluster's config; an invalid one leaves the previous in force.
    fn reload_config(&mut self) {
        match self.stores.load_config(&self.opts) {
            Ok(config) => {
                if self.config.as_deref() != Some(&config) {
                    tracing::info!(
                        pools = config.pools.len(),
                        l2_advertisements = config.l2_advertisements.len(),
                        "config loaded"
                    );
                    self.config = Some(Arc::new(config));
                    self.refresh_interfaces();
                }
                self.metrics.config_loaded.set(1);
                self.metrics.config_stale.set(0);
            }
            Err(errors) => {
                for e in errors.iter() {
                    tracing::error!(error = %e, "invalid config refused; the previous one stays in force");
                }
                self.metrics
                    .config_stale
                    .set(i64::from(self.config.is_some()));
            }
        }
    }

    /// The snapshot of everything known now.
    fn snapshot(&self, config: Arc<Config>, members: LiveMembers) -> Snapshot {
        let mut index = snapshot::endpoint_index(self.stores.slices.read().values());
        let services = self
            .stores
            .services
            .read()
            .iter()
            .map(|((namespace, name), record)| {
                snapshot::service_view(ServiceKey::new(namespace, name), record, &mut index)
            })
            .collect();
        let nodes = self.stores.nodes.state();
        Snapshot {
            config,
            members,
            nodes: snapshot::node_labels(nodes.iter().map(|n| n.as_ref())),
            services,
        }
    }

    /// Computes what this node must announce and applies the difference:
    /// BGP as soon as a config is known, layer 2 once the first join is done.
    async fn announce(&mut self) {
        let live = if self.first_join_done {
            self.live().await
        } else {
            LiveMembers::new()
        };
        let desired = match self.config.clone() {
            None => Desired::default(),
            Some(config) => {
                let snap = self.snapshot(config, live.clone());
                // Before the first join this node would see itself alone and
                // claim every address: layer 2 waits, BGP (no election) does not.
                let layer2 = if self.first_join_done {
                    self.metrics.members.set(snap.members.len() as i64);
                    election::desired_for_node(&self.opts.node_name, &snap).layer2
                } else {
                    Default::default()
                };
                Desired {
                    layer2,
                    bgp: desired_bgp(&self.opts.node_name, &snap),
                    peer_secrets: self.stores.peer_secrets(),
                }
            }
        };
        if self.first_join_done {
            self.metrics.exporter.set_ready(true);
        }
        if desired != self.current {
            self.apply(desired);
        }
        self.report_status(live);
    }

    /// Hands the status writer the objects this node should have now.
    fn report_status(&self, live: LiveMembers) {
        let interfaces: BTreeSet<String> = self.links.iter().map(|l| l.name.clone()).collect();
        let desired = crate::status::desired_objects(&self.current, &interfaces);
        let uids = desired
            .keys()
            .filter_map(|(_, service)| {
                let record = self
                    .stores
                    .services
                    .get(&(service.namespace.clone(), service.name.clone()))?;
                Some((service.clone(), record.uid.clone()?))
            })
            .collect();
        let input = StatusInput {
            desired,
            uids,
            live,
        };
        // Wake the writer only when something changed.
        self.status.send_if_modified(|old| {
            if **old == input {
                false
            } else {
                *old = Arc::new(input);
                true
            }
        });
    }

    /// Queues one `nodeAssigned` Event per Service in `services`.
    fn node_assigned(&self, services: BTreeSet<ServiceKey>, protocol: Protocol) {
        for service in services {
            let key = (service.namespace.clone(), service.name.clone());
            if let Some(record) = self.stores.services.get(&key) {
                self.events.node_assigned(
                    snapshot::service_reference(&service, &record),
                    &self.opts.node_name,
                    protocol,
                );
            }
        }
    }

    /// Hands every announcer the new state, then records the takeovers
    /// (one `nodeAssigned` Event per Service and protocol) and the metrics.
    fn apply(&mut self, desired: Desired) {
        let started = Instant::now();
        let mut announcers: Vec<&mut dyn Announcer> = vec![&mut self.responder];
        if let Some(bgp) = self.bgp.as_mut() {
            announcers.push(bgp);
        }
        for announcer in announcers {
            if let Err(e) = announcer.set(&desired) {
                tracing::warn!(protocol = ?announcer.protocol(), error = %e, "announcer");
            }
        }
        // One Event per Service and takeover, even for two families or a shared address.
        let layer2: BTreeSet<ServiceKey> = desired
            .newly_announced(&self.current)
            .into_iter()
            .map(|(service, _)| service)
            .collect();
        self.node_assigned(layer2, Protocol::Layer2);
        let bgp: BTreeSet<ServiceKey> = desired
            .bgp
            .newly_announced(&self.current.bgp)
            .into_iter()
            .map(|(service, _)| service)
            .collect();
        self.node_assigned(bgp, Protocol::Bgp);
        self.metrics
            .announced
            .update_layer2(&self.opts.node_name, &self.current, &desired);
        update_bgp_announced(
            &self.metrics.announced,
            &self.opts.node_name,
            &self.current.bgp,
            &desired.bgp,
        );
        tracing::debug!(
            addresses = desired.layer2.len(),
            peers = desired.bgp.peers.len(),
            bgp_addresses = desired.bgp.announced.len(),
            elapsed = ?started.elapsed(),
            "announcements applied"
        );
        self.current = desired;
    }

    /// Closes the BGP sessions (Cease), goes silent, then leaves the
    /// cluster so that the others take over within one gossip round
    /// instead of a failure-detection timeout.
    async fn hand_over(&mut self) {
        let started = Instant::now();
        self.metrics.exporter.set_ready(false);
        if let Some(bgp) = self.bgp.take() {
            bgp.shutdown().await;
            tracing::info!(elapsed = ?started.elapsed(), "BGP sessions closed");
        }
        self.apply(Desired::default());
        if let Some(m) = self.membership.take() {
            if let Err(e) = m.leave().await {
                tracing::warn!(error = %e, "memberlist leave");
            }
            if let Err(e) = m.shutdown().await {
                tracing::warn!(error = %e, "memberlist shutdown");
            }
        }
        tracing::info!(elapsed = ?started.elapsed(), "left the speaker cluster");
    }
}

/// The BGP speaker; a peer's BFD failure records a Warning Event on the node.
fn bgp_speaker(
    metrics: crate::bgp::BgpMetrics,
    events: &EventSink,
    node: &str,
    nodes: Store<Node>,
) -> BgpSpeaker {
    let mut bgp = BgpSpeaker::new(metrics);
    let (sink, node) = (events.clone(), node.to_string());
    bgp.on_bfd_down(Arc::new(move |down: &crate::bfd::manager::BfdDown| {
        let uid = nodes
            .get(&kube::runtime::reflector::ObjectRef::new(&node))
            .and_then(|n| n.metadata.uid.clone());
        sink.bfd_down(&node, uid, down.note());
    }));
    bgp
}

/// Moves the `metallb_speaker_announced` series of the BGP part from
/// `previous` to `desired`.
fn update_bgp_announced(
    metric: &AnnouncedMetric,
    node: &str,
    previous: &BgpDesired,
    desired: &BgpDesired,
) {
    let labels = |service: &ServiceKey, ip: &ServiceIp| AnnouncedLabels {
        service: service.to_string(),
        protocol: Protocol::Bgp.as_str().to_owned(),
        node: node.to_owned(),
        ip: ip.to_string(),
    };
    for (ip, before) in &previous.announced {
        for service in before {
            if !desired
                .announced
                .get(ip)
                .is_some_and(|s| s.contains(service))
            {
                metric.announced.remove(&labels(service, ip));
            }
        }
    }
    for (service, ip) in desired.newly_announced(previous) {
        metric
            .announced
            .get_or_create(&labels(&service, &ip))
            .set(1);
    }
}
