//! Watchers: one reflector per kind the speaker reads. They keep the local
//! stores current and send a small [`Change`] note to the main loop; they
//! decide nothing themselves.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

/// Which watched source a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Services, all namespaces.
    Services,
    /// EndpointSlices, all namespaces.
    EndpointSlices,
    /// Nodes.
    Nodes,
    /// The speaker Pods (the memberlist seeds).
    SpeakerPods,
    /// The memberlist Secret.
    Secret,
    /// The `basic-auth` Secrets of the namespace (BGP peer passwords).
    PeerSecrets,
    /// The `config` ConfigMap.
    ConfigMap,
    /// A metallb.io custom resource kind (its plural).
    Crd(&'static str),
}

/// What happened to a source, as told to the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An object of the source was added, changed or deleted.
    Touched(Source),
    /// The source finished a full (re)list: its store is complete.
    Synced(Source),
    /// The source is not served (a CRD not installed): it counts as synced
    /// and empty, and is retried in the background.
    Absent(Source),
}

impl Change {
    /// The source the note is about.
    pub fn source(self) -> Source {
        match self {
            Change::Touched(s) | Change::Synced(s) | Change::Absent(s) => s,
        }
    }
}

/// Starts a reflector over `api` with `config`, returning its store.
/// `trim` drops what the speaker never reads before an object is stored
/// (managed fields, annotations, ...), to keep memory small. Every event is
/// reported through `tx`.
pub fn spawn<K>(
    api: Api<K>,
    config: watcher::Config,
    source: Source,
    tx: UnboundedSender<Change>,
    trim: fn(&mut K),
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, mut writer) = reflector::store();
    spawn_with(api, config, source, tx, move |event: Event<K>| {
        writer.apply_watcher_event(&event.modify(trim));
    });
    store
}

/// Runs a watcher over `api` with `config`, handing every event to `sink`
/// and reporting it through `tx`; errors are retried with backoff.
pub(super) fn spawn_with<K>(
    api: Api<K>,
    config: watcher::Config,
    source: Source,
    tx: UnboundedSender<Change>,
    mut sink: impl FnMut(Event<K>) + Send + 'static,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut absent = false;
        while let Some(item) = stream.next().await {
            let change = match item {
                Ok(event) => {
                    let change = match &event {
                        Event::Apply(_) | Event::Delete(_) => Some(Change::Touched(source)),
                        // The store is only swapped in at InitDone: one note then is enough.
                        Event::Init | Event::InitApply(_) => None,
                        Event::InitDone => {
                            absent = false;
                            Some(Change::Synced(source))
                        }
                    };
                    sink(event);
                    change
                }
                Err(e) if is_not_found(&e) => {
                    // Report absence once per outage, not on every backoff retry.
                    (!std::mem::replace(&mut absent, true)).then(|| {
                        tracing::info!(
                            ?source,
                            "resource not served by the API server; treated as empty"
                        );
                        Change::Absent(source)
                    })
                }
                Err(e) => {
                    tracing::warn!(?source, error = %e, "watch failed; retrying with backoff");
                    None
                }
            };
            if let Some(change) = change
                && tx.send(change).is_err()
            {
                break;
            }
        }
    });
}

/// A 404 on list or watch: the kind (a CRD) is not installed.
fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

/// Drops the metadata the speaker never reads.
pub fn trim_metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
}

/// Drops nothing (small objects whose content matters: Secret, ConfigMap, CRDs).
pub fn keep<K>(_: &mut K) {}
