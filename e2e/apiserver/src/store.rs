//! The object store: one global resourceVersion counter (like etcd's revision), one ordered map per
//! storage, and a bounded history of changes per storage for watches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use crate::kinds::StorageKey;

/// The key of one object inside a storage: namespace ("" when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace, "" for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from namespace and name.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

impl ChangeType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change in a storage's history.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// What happened.
    pub kind: ChangeType,
    /// The object after the change (for a deletion, its last state stamped with the deletion rv).
    pub object: Arc<Value>,
    /// The object before a modification, used to turn a selector watch into ADDED/DELETED.
    pub previous: Option<Arc<Value>>,
}

/// All objects of one storage and their recent changes.
#[derive(Debug)]
pub struct Collection {
    /// Objects ordered by namespace then name, like etcd keys.
    pub objects: BTreeMap<ObjectKey, Arc<Value>>,
    history: VecDeque<Change>,
    /// The newest resourceVersion no longer in `history` (0 while nothing was dropped).
    compacted: u64,
    notify: watch::Sender<u64>,
}

impl Collection {
    /// An empty collection whose history starts after `floor` (see [`Store::restored`]).
    fn new(floor: u64) -> Self {
        let (notify, _) = watch::channel(0);
        Self {
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: floor,
            notify,
        }
    }

    /// A receiver woken on every change of this collection.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Changes strictly newer than `after`, or `Err(oldest_kept)` if some of them were dropped.
    pub fn changes_after(&self, after: u64) -> Result<Vec<Change>, u64> {
        if after < self.compacted {
            return Err(self.compacted);
        }
        let start = self.history.partition_point(|c| c.rv <= after);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// Objects in one namespace (or all, with `None`), in key order.
    pub fn iter_namespace<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        self.iter_after(namespace, None)
    }

    /// Like [`Collection::iter_namespace`], but only the keys after `after`
    /// (a continue token's last key): a page starts where the last one ended
    /// instead of walking past every earlier object again.
    pub fn iter_after<'a>(
        &'a self,
        namespace: Option<&'a str>,
        after: Option<&ObjectKey>,
    ) -> Box<dyn Iterator<Item = (&'a ObjectKey, &'a Arc<Value>)> + 'a> {
        use std::ops::Bound;
        let start = match (after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included(ObjectKey::new(ns, "")),
            (None, None) => Bound::Unbounded,
        };
        let range = self.objects.range((start, Bound::Unbounded));
        match namespace {
            None => Box::new(range),
            Some(ns) => Box::new(
                range
                    .skip_while(move |(k, _)| k.namespace.as_str() < ns)
                    .take_while(move |(k, _)| k.namespace == ns),
            ),
        }
    }
}

/// The whole store: collections plus the global revision.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    history_limit: usize,
    /// The revision the store was restored at: no history reaches back before it.
    floor: u64,
    collections: HashMap<StorageKey, Collection>,
}

impl Store {
    /// An empty store keeping at most `history_limit` changes per storage.
    pub fn new(history_limit: usize) -> Self {
        Self {
            rv: 1,
            history_limit: history_limit.max(1),
            floor: 0,
            collections: HashMap::new(),
        }
    }

    /// An empty store continuing from revision `rv`, as after a restart: a watch from an older
    /// resourceVersion, in any storage, gets 410 Expired because the changes up to `rv` are not
    /// kept, like a real server whose watch cache starts at etcd's current revision.
    pub fn restored(history_limit: usize, rv: u64) -> Self {
        Self {
            rv,
            floor: rv,
            ..Self::new(history_limit)
        }
    }

    /// Puts a loaded object in place without recording a change or consuming a resourceVersion.
    /// Returns false if the key was already taken.
    pub fn insert_loaded(&mut self, storage: &StorageKey, key: ObjectKey, object: Value) -> bool {
        let coll = self.collection(storage);
        if coll.objects.contains_key(&key) {
            return false;
        }
        coll.objects.insert(key, Arc::new(object));
        true
    }

    /// The current global resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The collection of a storage, created on first use.
    pub fn collection(&mut self, key: &StorageKey) -> &mut Collection {
        let floor = self.floor;
        self.collections
            .entry(key.clone())
            .or_insert_with(|| Collection::new(floor))
    }

    /// The collection of a storage if it exists.
    pub fn get_collection(&self, key: &StorageKey) -> Option<&Collection> {
        self.collections.get(key)
    }

    /// One object.
    pub fn get(&self, storage: &StorageKey, key: &ObjectKey) -> Option<Arc<Value>> {
        self.collections.get(storage)?.objects.get(key).cloned()
    }

    /// The next resourceVersion, consumed.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Stores an object that already carries resourceVersion `rv` and records the change.
    pub fn put(
        &mut self,
        storage: &StorageKey,
        key: ObjectKey,
        rv: u64,
        object: Value,
    ) -> Arc<Value> {
        let object = Arc::new(object);
        let limit = self.history_limit;
        let coll = self.collection(storage);
        let previous = coll.objects.insert(key, object.clone());
        let kind = if previous.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        coll.record(
            Change {
                rv,
                kind,
                object: object.clone(),
                previous,
            },
            limit,
        );
        object
    }

    /// Removes an object; `last_state` is its final form stamped with the deletion rv.
    pub fn remove(
        &mut self,
        storage: &StorageKey,
        key: &ObjectKey,
        rv: u64,
        last_state: Value,
    ) -> Arc<Value> {
        let object = Arc::new(last_state);
        let limit = self.history_limit;
        let coll = self.collection(storage);
        coll.objects.remove(key);
        coll.record(
            Change {
                rv,
                kind: ChangeType::Deleted,
                object: object.clone(),
                previous: None,
            },
            limit,
        );
        object
    }

    /// Keys of the objects in a storage, optionally only in one namespace.
    pub fn keys_in(&self, storage: &StorageKey, namespace: Option<&str>) -> Vec<ObjectKey> {
        match self.collections.get(storage) {
            Some(c) => c
                .iter_namespace(namespace)
                .map(|(k, _)| k.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every storage key present.
    pub fn storages(&self) -> Vec<StorageKey> {
        self.collections.keys().cloned().collect()
    }
}

impl Collection {
    fn record(&mut self, change: Change, limit: usize) {
        let rv = change.rv;
        self.history.push_back(change);
        while self.history.len() > limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        self.notify.send_replace(rv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage() -> StorageKey {
        StorageKey {
            group: String::new(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn history_keeps_only_the_newest_changes_and_reports_compaction() {
        let mut store = Store::new(2);
        for i in 0..4 {
            let rv = store.next_rv();
            store.put(
                &storage(),
                ObjectKey::new("ns", &format!("o{i}")),
                rv,
                json!({}),
            );
        }
        let coll = store.collection(&storage());
        // rvs 2,3,4,5 were written; 2 and 3 were dropped.
        assert_eq!(coll.changes_after(2).err(), Some(3));
        let kept: Vec<u64> = coll
            .changes_after(3)
            .unwrap()
            .iter()
            .map(|c| c.rv)
            .collect();
        assert_eq!(kept, vec![4, 5]);
        assert_eq!(coll.changes_after(4).unwrap().len(), 1);
    }

    #[test]
    fn namespace_iteration_stays_inside_the_namespace() {
        let mut store = Store::new(10);
        for (ns, name) in [("a", "x"), ("b", "y"), ("b", "z"), ("c", "w")] {
            let rv = store.next_rv();
            store.put(&storage(), ObjectKey::new(ns, name), rv, json!({}));
        }
        let names: Vec<String> = store
            .collection(&storage())
            .iter_namespace(Some("b"))
            .map(|(k, _)| k.name.clone())
            .collect();
        assert_eq!(names, vec!["y", "z"]);
    }

    #[test]
    fn a_restored_store_expires_watches_from_before_the_restore_in_every_storage() {
        let mut store = Store::restored(10, 40);
        assert!(store.insert_loaded(&storage(), ObjectKey::new("ns", "a"), json!({})));
        assert!(!store.insert_loaded(&storage(), ObjectKey::new("ns", "a"), json!({})));
        let other = StorageKey {
            group: String::new(),
            plural: "secrets".into(),
        };
        for key in [storage(), other] {
            let coll = store.collection(&key);
            assert_eq!(coll.changes_after(39).err(), Some(40), "{key:?}");
            assert_eq!(coll.changes_after(40).map(|c| c.len()), Ok(0), "{key:?}");
        }
        assert_eq!(store.next_rv(), 41);
    }
}
