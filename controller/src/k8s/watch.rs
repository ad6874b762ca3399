//! Watchers: one reflector per kind the controller reads (the loop itself is
//! the shell's, [`ferrolb_shell::watch`]). They keep the local stores current
//! and send a small [`Change`] note to the reconcile loop; they decide
//! nothing themselves.

use std::fmt::Debug;
use std::hash::Hash;

use ferrolb_shell::watch::{self, Seen};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

/// Which watched source a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Services, all namespaces.
    Services,
    /// The `config` ConfigMap.
    ConfigMap,
    /// Namespaces (for pools' namespace selectors).
    Namespaces,
    /// A metallb.io custom resource kind (its plural).
    Crd(&'static str),
}

/// What changed, as told to the reconcile loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This Service was added, changed or deleted.
    Service(ObjectRef<k8s_openapi::api::core::v1::Service>),
    /// Something that feeds the config (ConfigMap, CRDs) or pool admission
    /// (namespace labels) changed.
    Config(Source),
    /// The source finished a full (re)list: its store is complete. After a
    /// re-list the loop also forgets Services that vanished meanwhile.
    Synced(Source),
    /// The source does not exist on this API server (a CRD not installed);
    /// it counts as synced and empty, and is retried in the background.
    Absent(Source),
}

/// Start a reflector over `api` with `config`, returning its store. Every
/// object touched (and every object of a re-list) is reported through
/// `note`, every (re)list and absence as [`Change::Synced`] /
/// [`Change::Absent`].
pub fn spawn<K>(
    api: Api<K>,
    config: watcher::Config,
    source: Source,
    tx: UnboundedSender<Change>,
    note: fn(&K, Source) -> Change,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    // managedFields are never read and can be most of an object's size.
    let trim = |o: &mut K| o.meta_mut().managed_fields = None;
    watch::spawn(api, config, source, tx, trim, move |seen| {
        Some(match seen {
            Seen::Changed(o) | Seen::Listed(o) => note(o, source),
            Seen::Synced => Change::Synced(source),
            Seen::Absent => Change::Absent(source),
        })
    })
}

/// The note for a Service: its key.
pub fn note_service(svc: &k8s_openapi::api::core::v1::Service, _: Source) -> Change {
    Change::Service(ObjectRef::from_obj(svc))
}

/// The note for anything that feeds the config.
pub fn note_config<K>(_: &K, source: Source) -> Change {
    Change::Config(source)
}
