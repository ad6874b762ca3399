//! The state file: a JSON snapshot of every object, the resourceVersion counter and the custom
//! kinds served, so that the server can be restarted without losing its objects (a real API
//! server keeps them in etcd). The watch history is not part of it: after a restore, a watch from
//! an older resourceVersion gets 410 Expired and clients relist, as after a real restart.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::allocator::{Allocators, Grant, Refusal};
use crate::auth::{IssuedToken, Tokens};
use crate::kinds::{Behaviour, Registry, StorageKey, custom_kind};
use crate::meta;
use crate::service;
use crate::store::{ObjectKey, Store};
use crate::verbs::State;

/// The version of the file layout; a file of another version is refused, not guessed at.
const FORMAT: u32 = 1;

/// Why the state file could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file exists but cannot be read.
    #[error("cannot read the state file {path}: {error}")]
    Read {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a snapshot this server wrote.
    #[error("the state file {path} is not a valid snapshot: {error}")]
    Parse {
        /// The state file.
        path: PathBuf,
        /// What the JSON decoder found.
        error: serde_json::Error,
    },
    /// The file parses but its content contradicts itself.
    #[error("the state file {path} is inconsistent: {reason}")]
    Inconsistent {
        /// The state file.
        path: PathBuf,
        /// The first contradiction found.
        reason: String,
    },
    /// The file is missing and could not be written later either.
    #[error("the state file {path} cannot be written: its directory does not exist")]
    NoDirectory {
        /// The state file.
        path: PathBuf,
    },
    /// Writing the snapshot failed.
    #[error("cannot write the state file {path}: {error}")]
    Write {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// A custom resource kind as served (the metallb.io ones as a CRD reshaped them, and every kind
/// a CRD registered); built-in kinds never change and are not saved.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedKind {
    group: String,
    version: String,
    plural: String,
    kind: String,
    namespaced: bool,
    status_subresource: bool,
    short_names: Vec<String>,
    from_crd: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotOut<'a> {
    format: u32,
    resource_version: u64,
    kinds: Vec<SavedKind>,
    storages: Vec<StorageOut<'a>>,
    tokens: Vec<&'a IssuedToken>,
}

#[derive(Serialize)]
struct StorageOut<'a> {
    group: &'a str,
    plural: &'a str,
    objects: Vec<&'a Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SnapshotIn {
    format: u32,
    resource_version: u64,
    kinds: Vec<SavedKind>,
    storages: Vec<StorageIn>,
    /// Absent in files written before tokens existed.
    #[serde(default)]
    tokens: Vec<IssuedToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageIn {
    group: String,
    plural: String,
    objects: Vec<Value>,
}

/// The state as the bytes of a state file.
pub fn encode(state: &State) -> Result<Vec<u8>, serde_json::Error> {
    let kinds = state
        .registry
        .all()
        .iter()
        .filter(|k| k.behaviour == Behaviour::Custom)
        .map(|k| SavedKind {
            group: k.group.clone(),
            version: k.version.clone(),
            plural: k.plural.clone(),
            kind: k.kind.clone(),
            namespaced: k.namespaced,
            status_subresource: k.status_subresource,
            short_names: k.short_names.clone(),
            from_crd: k.from_crd,
        })
        .collect();
    let mut keys = state.store.storages();
    keys.sort();
    let storages = keys
        .iter()
        .filter_map(|key| {
            let coll = state.store.get_collection(key)?;
            (!coll.objects.is_empty()).then(|| StorageOut {
                group: &key.group,
                plural: &key.plural,
                objects: coll.objects.values().map(|o| &**o).collect(),
            })
        })
        .collect();
    let mut bytes = serde_json::to_vec(&SnapshotOut {
        format: FORMAT,
        resource_version: state.store.current_rv(),
        kinds,
        storages,
        tokens: state.tokens.values().collect(),
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// How a snapshot's content can contradict itself.
#[derive(Debug)]
pub enum Decoded {
    /// Not JSON of the snapshot's shape.
    Parse(serde_json::Error),
    /// JSON of the right shape that cannot be the state of a server.
    Inconsistent(String),
}

/// Rebuilds a state from the bytes of a state file: objects as they were (resourceVersion, uid
/// and all), the counter, the custom kinds, and the Service allocations the objects hold.
pub fn decode(bytes: &[u8], history_limit: usize) -> Result<State, Decoded> {
    let snapshot: SnapshotIn = serde_json::from_slice(bytes).map_err(Decoded::Parse)?;
    let bad = |reason: String| Decoded::Inconsistent(reason);
    if snapshot.format != FORMAT {
        return Err(bad(format!(
            "format {} is not the supported format {FORMAT}",
            snapshot.format
        )));
    }
    let rv = snapshot.resource_version;
    if rv == 0 {
        return Err(bad("resourceVersion 0 is not a revision".into()));
    }
    let mut registry = Registry::builtin();
    for k in snapshot.kinds {
        registry.register(custom_kind(
            &k.group,
            &k.version,
            &k.plural,
            &k.kind,
            k.namespaced,
            k.status_subresource,
            k.short_names,
            k.from_crd,
        ));
    }
    let services = registry
        .find("", "v1", "services")
        .map(|k| k.storage.clone());
    let mut store = Store::restored(history_limit, rv);
    let mut alloc = Allocators::default();
    for storage in snapshot.storages {
        let key = StorageKey {
            group: storage.group,
            plural: storage.plural,
        };
        let Some(kind) = registry.all().iter().find(|k| k.storage == key).cloned() else {
            return Err(bad(format!(
                "objects are stored for {}/{}, which no served kind uses",
                key.group, key.plural
            )));
        };
        let is_services = services.as_ref() == Some(&key);
        for object in storage.objects {
            let name = meta::name_of(&object).to_string();
            let namespace = meta::meta_str(&object, "namespace")
                .unwrap_or("")
                .to_string();
            let what = format!("{} {namespace}/{name}", kind.qualified_plural());
            if name.is_empty() || kind.namespaced == namespace.is_empty() {
                return Err(bad(format!(
                    "{what}: the name and namespace do not fit the kind"
                )));
            }
            let object_rv = meta::resource_version_of(&object).unwrap_or("");
            if !object_rv
                .parse::<u64>()
                .is_ok_and(|n| (1..=rv).contains(&n))
            {
                return Err(bad(format!(
                    "{what}: resourceVersion {object_rv:?} is not between 1 and the counter {rv}"
                )));
            }
            if is_services {
                take_grants(&mut alloc, &object).map_err(|why| bad(format!("{what}: {why}")))?;
            }
            if !store.insert_loaded(&key, ObjectKey::new(&namespace, &name), object) {
                return Err(bad(format!("{what} is stored twice")));
            }
        }
    }
    let mut tokens = Tokens::new();
    for t in snapshot.tokens {
        if t.token.is_empty() {
            return Err(bad("a token is empty".into()));
        }
        if tokens.insert(t.token.clone(), t).is_some() {
            return Err(bad("a token is stored twice".into()));
        }
    }
    Ok(State {
        store,
        registry,
        alloc,
        tokens,
    })
}

/// Marks the cluster IPs and node ports a loaded Service holds as in use.
fn take_grants(alloc: &mut Allocators, service: &Value) -> Result<(), String> {
    for grant in service::grants_of(service) {
        let (taken, what) = match grant {
            Grant::Ip(ip) => (alloc.take_ip(ip), format!("cluster IP {ip}")),
            Grant::Port(port) => (alloc.take_port(port), format!("node port {port}")),
        };
        match taken {
            Ok(_) => {}
            Err(Refusal::InUse) => return Err(format!("{what} is held by another Service")),
            Err(Refusal::OutOfRange | Refusal::Exhausted) => {
                return Err(format!("{what} is outside the service range"));
            }
        }
    }
    Ok(())
}

/// Loads the state file: `Ok(None)` if it does not exist (the server starts empty), an error if
/// it exists and cannot be read or decoded, or if it is missing and could never be written.
pub fn load(path: &Path, history_limit: usize) -> Result<Option<State>, SnapshotError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Found out now rather than at shutdown, when the objects would be lost.
            if !directory_of(path).is_dir() {
                return Err(SnapshotError::NoDirectory { path: path.into() });
            }
            return Ok(None);
        }
        Err(error) => {
            return Err(SnapshotError::Read {
                path: path.into(),
                error,
            });
        }
    };
    match decode(&bytes, history_limit) {
        Ok(state) => Ok(Some(state)),
        Err(Decoded::Parse(error)) => Err(SnapshotError::Parse {
            path: path.into(),
            error,
        }),
        Err(Decoded::Inconsistent(reason)) => Err(SnapshotError::Inconsistent {
            path: path.into(),
            reason,
        }),
    }
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes the bytes of a snapshot atomically: a temporary file in the same directory, synced,
/// then renamed over the state file, so a crash leaves either the old or the new snapshot.
pub fn store(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let failed = |error: std::io::Error| SnapshotError::Write {
        path: path.into(),
        error,
    };
    let dir = directory_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".state-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(failed)?;
    tmp.write_all(bytes).map_err(failed)?;
    tmp.as_file().sync_all().map_err(failed)?;
    tmp.persist(path).map_err(|e| failed(e.error))?;
    // The rename itself is durable only once the directory is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state_with(objects: &[(&str, &str, Value)]) -> State {
        let mut state = State::new(100);
        for (group, plural, object) in objects {
            let storage = StorageKey {
                group: (*group).into(),
                plural: (*plural).into(),
            };
            let rv = state.store.next_rv();
            let mut object = object.clone();
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            let key = ObjectKey::new(
                meta::meta_str(&object, "namespace").unwrap_or(""),
                meta::name_of(&object),
            );
            state.store.put(&storage, key, rv, object);
        }
        state
    }

    fn snapshot_of(state: &State) -> Value {
        serde_json::from_slice(&encode(state).unwrap()).unwrap()
    }

    #[test]
    fn a_decoded_snapshot_encodes_to_the_same_bytes() {
        let state = state_with(&[(
            "",
            "configmaps",
            json!({"metadata": {"name": "a", "namespace": "default", "uid": "u-1"}}),
        )]);
        let bytes = encode(&state).unwrap();
        let restored = decode(&bytes, 100).unwrap();
        assert_eq!(restored.store.current_rv(), state.store.current_rv());
        assert_eq!(encode(&restored).unwrap(), bytes);
    }

    #[test]
    fn the_kubernetes_service_ip_is_taken_again_on_decode() {
        let state = State::new(100);
        let mut restored = decode(&encode(&state).unwrap(), 100).unwrap();
        assert_eq!(
            restored.alloc.take_ip("10.96.0.1".parse().unwrap()),
            Err(Refusal::InUse)
        );
    }

    #[test]
    fn inconsistent_snapshots_are_refused_with_the_reason() {
        let good = snapshot_of(&state_with(&[(
            "",
            "configmaps",
            json!({"metadata": {"name": "a", "namespace": "default"}}),
        )]));
        let configmaps = |s: &Value| -> usize {
            s["storages"]
                .as_array()
                .unwrap()
                .iter()
                .position(|st| st["plural"] == "configmaps")
                .unwrap()
        };
        type Edit = fn(&mut Value, usize);
        let cases: &[(&str, Edit, &str)] = &[
            ("another format", |s, _| s["format"] = json!(2), "format 2"),
            (
                "a counter behind an object",
                |s, _| s["resourceVersion"] = json!(3),
                "is not between 1 and the counter 3",
            ),
            (
                "an object without a name",
                |s, i| s["storages"][i]["objects"][0]["metadata"]["name"] = json!(""),
                "do not fit the kind",
            ),
            (
                "a namespaced object without a namespace",
                |s, i| {
                    s["storages"][i]["objects"][0]["metadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("namespace");
                },
                "do not fit the kind",
            ),
            (
                "an object stored twice",
                |s, i| {
                    let o = s["storages"][i]["objects"][0].clone();
                    s["storages"][i]["objects"].as_array_mut().unwrap().push(o);
                },
                "is stored twice",
            ),
            (
                "objects of an unknown resource",
                |s, i| s["storages"][i]["group"] = json!("example.com"),
                "which no served kind uses",
            ),
            (
                "two Services holding one cluster IP",
                |s, _| {
                    let i = s["storages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .position(|st| st["plural"] == "services")
                        .unwrap();
                    let mut o = s["storages"][i]["objects"][0].clone();
                    o["metadata"]["name"] = json!("copy");
                    s["storages"][i]["objects"].as_array_mut().unwrap().push(o);
                },
                "cluster IP 10.96.0.1 is held by another Service",
            ),
        ];
        for (case, edit, expected) in cases {
            let mut snapshot = good.clone();
            let i = configmaps(&snapshot);
            edit(&mut snapshot, i);
            match decode(&serde_json::to_vec(&snapshot).unwrap(), 100) {
                Err(Decoded::Inconsistent(reason)) => {
                    assert!(reason.contains(expected), "{case}: {reason}")
                }
                Err(Decoded::Parse(e)) => panic!("{case}: refused as unparsable: {e}"),
                Ok(_) => panic!("{case}: accepted"),
            }
        }
    }

    #[test]
    fn files_that_are_not_snapshots_are_refused_as_unparsable() {
        let cases: &[(&str, &[u8])] = &[
            ("empty", b""),
            (
                "truncated",
                b"{\"format\": 1, \"resourceVersion\": 5, \"kin",
            ),
            ("not JSON", b"\x00\x01garbage"),
            (
                "another document",
                b"{\"apiVersion\": \"v1\", \"kind\": \"List\"}",
            ),
            (
                "an unknown field",
                b"{\"format\":1,\"resourceVersion\":5,\"kinds\":[],\"storages\":[],\"extra\":1}",
            ),
        ];
        for (case, bytes) in cases {
            assert!(
                matches!(decode(bytes, 100), Err(Decoded::Parse(_))),
                "{case}"
            );
        }
    }
}
