//! Watchers: one reflector per kind the controller reads. They keep the local
//! stores current and send a small [`Change`] note to the reconcile loop; they
//! decide nothing themselves.

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
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
/// object touched is reported through `note`, every (re)list and absence as
/// [`Change::Synced`] / [`Change::Absent`].
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
    let (store, writer): (Store<K>, Writer<K>) = reflector::store();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config)
            .default_backoff()
            // managedFields are never read and can be most of an object's size.
            .modify(|o: &mut K| {
                o.meta_mut().managed_fields = None;
            })
            .reflect(writer)
            .boxed();
        let mut absent = false;
        while let Some(item) = stream.next().await {
            let change = match item {
                Ok(Event::Apply(o)) | Ok(Event::Delete(o)) | Ok(Event::InitApply(o)) => {
                    Some(note(&o, source))
                }
                Ok(Event::Init) => None,
                Ok(Event::InitDone) => {
                    absent = false;
                    Some(Change::Synced(source))
                }
                Err(e) => {
                    if is_not_found(&e) {
                        // Report absence once per outage, not on every backoff retry.
                        if absent {
                            None
                        } else {
                            absent = true;
                            tracing::info!(
                                ?source,
                                "resource not served by the API server; treated as empty"
                            );
                            Some(Change::Absent(source))
                        }
                    } else {
                        tracing::warn!(?source, error = %e, "watch failed; retrying with backoff");
                        None
                    }
                }
            };
            if let Some(change) = change
                && tx.send(change).is_err()
            {
                break;
            }
        }
    });
    store
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

/// The note for a Service: its key.
pub fn note_service(svc: &k8s_openapi::api::core::v1::Service, _: Source) -> Change {
    Change::Service(ObjectRef::from_obj(svc))
}

/// The note for anything that feeds the config.
pub fn note_config<K>(_: &K, source: Source) -> Change {
    Change::Config(source)
}
