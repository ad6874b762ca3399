//! Watchers: one reflector per kind the speaker reads (the loop itself is
//! the shell's, [`ferrolb_shell::watch`]). They keep the local stores
//! current and send a small [`Change`] note to the main loop; they decide
//! nothing themselves.

use std::fmt::Debug;
use std::hash::Hash;

use ferrolb_shell::watch::{self, Seen};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::Store;
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
    watch::spawn(api, config, source, tx, trim, move |seen| {
        note(source, seen)
    })
}

/// Runs a watcher over `api` with `config`, handing every event to `sink`
/// and reporting it through `tx`; errors are retried with backoff.
pub(super) fn spawn_with<K>(
    api: Api<K>,
    config: watcher::Config,
    source: Source,
    tx: UnboundedSender<Change>,
    sink: impl FnMut(Event<K>) + Send + 'static,
) where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    watch::spawn_with(
        api,
        config,
        source,
        tx,
        move |seen| note(source, seen),
        sink,
    );
}

/// The note for what a watcher of `source` saw: one per change, none per
/// object of a (re)list (the store is only swapped in when it is complete).
fn note<K>(source: Source, seen: Seen<'_, K>) -> Option<Change> {
    match seen {
        Seen::Changed(_) => Some(Change::Touched(source)),
        Seen::Listed(_) => None,
        Seen::Synced => Some(Change::Synced(source)),
        Seen::Absent => Some(Change::Absent(source)),
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
