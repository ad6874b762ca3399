//! Stores of compact records made from watched objects, for the kinds the
//! speaker watches cluster-wide (Services, EndpointSlices). A reflector
//! keeps every object whole, with its metadata and a copy of its key; at
//! 10,000 Services that is most of the speaker's memory. A projection keeps
//! only what the pure core reads, made by a plain function on arrival, and
//! nothing at all for objects that do not count (a ClusterIP Service).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use kube::Resource;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::UnboundedSender;

use super::watch::{Change, Source, spawn_with};

/// An object's namespace and name.
pub type NamespacedName = (String, String);

/// The records of the objects that count, by namespace and name.
#[derive(Debug)]
pub struct Projection<V> {
    records: Arc<RwLock<HashMap<NamespacedName, V>>>,
}

impl<V> Clone for Projection<V> {
    fn clone(&self) -> Self {
        Self {
            records: self.records.clone(),
        }
    }
}

impl<V> Default for Projection<V> {
    fn default() -> Self {
        Self {
            records: Arc::new(RwLock::new(HashMap::new())),
        }
    }
}

impl<V> Projection<V> {
    /// The records now; hold the guard briefly, the watcher waits on it.
    pub fn read(&self) -> RwLockReadGuard<'_, HashMap<NamespacedName, V>> {
        // A writer that panicked left whole records: they are still usable.
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of `key`, if the object counts.
    pub fn get(&self, key: &NamespacedName) -> Option<V>
    where
        V: Clone,
    {
        self.read().get(key).cloned()
    }

    fn write(&self, f: impl FnOnce(&mut HashMap<NamespacedName, V>)) {
        f(&mut self.records.write().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Builds `projection`'s records from watcher events: applies and deletes
/// at once; a (re)list into a fresh map swapped in when complete, so that
/// readers never see half a list and objects deleted meanwhile disappear.
#[derive(Debug)]
pub struct Projector<K, V, F> {
    projection: Projection<V>,
    project: F,
    building: Option<HashMap<NamespacedName, V>>,
    _kind: std::marker::PhantomData<fn(&K)>,
}

impl<K, V, F> Projector<K, V, F>
where
    K: Resource,
    F: FnMut(&K) -> Option<V>,
{
    /// A projector filling `projection` with `project`.
    pub fn new(projection: Projection<V>, project: F) -> Self {
        Self {
            projection,
            project,
            building: None,
            _kind: std::marker::PhantomData,
        }
    }

    /// Takes one watcher event.
    pub fn apply(&mut self, event: Event<K>) {
        match event {
            Event::Apply(object) => {
                let key = key_of(&object);
                let record = (self.project)(&object);
                self.projection.write(|records| match record {
                    Some(r) => {
                        records.insert(key, r);
                    }
                    None => {
                        records.remove(&key);
                    }
                });
            }
            Event::Delete(object) => {
                let key = key_of(&object);
                self.projection.write(|records| {
                    records.remove(&key);
                });
            }
            Event::Init => self.building = Some(HashMap::new()),
            Event::InitApply(object) => {
                if let Some(record) = (self.project)(&object) {
                    self.building
                        .get_or_insert_with(HashMap::new)
                        .insert(key_of(&object), record);
                }
            }
            Event::InitDone => {
                let mut fresh = self.building.take().unwrap_or_default();
                fresh.shrink_to_fit();
                self.projection.write(|records| *records = fresh);
            }
        }
    }
}

fn key_of<K: Resource>(object: &K) -> NamespacedName {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Starts a watcher over `api` with `config` whose objects are kept as
/// `project` makes them (`None`: not kept). Every event is reported through `tx`.
pub fn spawn<K, V>(
    api: Api<K>,
    config: watcher::Config,
    source: Source,
    tx: UnboundedSender<Change>,
    project: impl FnMut(&K) -> Option<V> + Send + 'static,
) -> Projection<V>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let projection = Projection::default();
    let mut projector = Projector::new(projection.clone(), project);
    spawn_with(api, config, source, tx, move |event| projector.apply(event));
    projection
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_string(), value.to_string())].into()),
            ..ConfigMap::default()
        }
    }

    /// Keeps the value of key `v`, except "skip".
    fn value(cm: &ConfigMap) -> Option<String> {
        cm.data.as_ref()?.get("v").filter(|v| *v != "skip").cloned()
    }

    fn contents(p: &Projection<String>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = p
            .read()
            .iter()
            .map(|((_, name), v)| (name.clone(), v.clone()))
            .collect();
        out.sort();
        out
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn projection_rules() {
        // (rule, events, records wanted after them)
        type Case<'a> = (&'a str, Vec<Event<ConfigMap>>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "an_applied_object_is_kept_as_its_record",
                vec![Event::Apply(cm("a", "1"))],
                vec![("a", "1")],
            ),
            (
                "a_changed_object_replaces_its_record",
                vec![Event::Apply(cm("a", "1")), Event::Apply(cm("a", "2"))],
                vec![("a", "2")],
            ),
            (
                "an_object_that_stops_counting_loses_its_record",
                vec![Event::Apply(cm("a", "1")), Event::Apply(cm("a", "skip"))],
                vec![],
            ),
            (
                "a_deleted_object_loses_its_record",
                vec![
                    Event::Apply(cm("a", "1")),
                    Event::Apply(cm("b", "2")),
                    Event::Delete(cm("a", "1")),
                ],
                vec![("b", "2")],
            ),
            (
                "a_list_in_progress_is_not_visible",
                vec![
                    Event::Apply(cm("old", "1")),
                    Event::Init,
                    Event::InitApply(cm("new", "2")),
                ],
                vec![("old", "1")],
            ),
            (
                "a_finished_list_replaces_everything",
                vec![
                    Event::Apply(cm("old", "1")),
                    Event::Init,
                    Event::InitApply(cm("new", "2")),
                    Event::InitApply(cm("skipped", "skip")),
                    Event::InitDone,
                ],
                vec![("new", "2")],
            ),
            (
                "an_empty_list_empties_the_store",
                vec![Event::Apply(cm("old", "1")), Event::Init, Event::InitDone],
                vec![],
            ),
        ];
        for (rule, events, want) in cases {
            let projection = Projection::default();
            let mut projector = Projector::new(projection.clone(), value);
            for e in events {
                projector.apply(e);
            }
            assert_eq!(contents(&projection), pairs(&want), "{rule}");
        }
    }
}
