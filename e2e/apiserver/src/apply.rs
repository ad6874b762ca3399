//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Ownership is tracked per leaf field path; lists are atomic (one leaf), which is what the real
//! server does for `+listType=atomic` lists and a simplification for associative ones.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::meta;

/// A path of map keys from the object root.
pub type FieldPath = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource; `status` is excluded when the kind has a status subresource.
    Main {
        /// Whether `status` belongs to the /status subresource.
        status_subresource: bool,
    },
    /// The /status subresource: only `status`.
    Status,
}

impl Scope {
    fn subresource(self) -> &'static str {
        match self {
            Scope::Main { .. } => "",
            Scope::Status => "status",
        }
    }

    /// Whether a top-level field is tracked in this scope.
    fn tracks_top(self, key: &str) -> bool {
        match (self, key) {
            (_, "apiVersion" | "kind") => false,
            (Scope::Status, k) => k == "status",
            (Scope::Main { status_subresource }, "status") => !status_subresource,
            (Scope::Main { .. }, _) => true,
        }
    }
}

/// Metadata fields whose ownership is tracked (identity and system fields are not).
const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The operation an ownership entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Apply,
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: Operation,
    subresource: String,
    api_version: String,
    time: String,
    fields: BTreeSet<FieldPath>,
}

/// An apply that would change a field another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The API version that manager used.
    pub api_version: String,
    /// The contested field, as `.spec.x`.
    pub field: String,
}

fn render_path(p: &FieldPath) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

/// The conflict summary of the real server ("Apply failed with N conflicts: ...").
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let n = conflicts.len();
    let mut managers: Vec<(&str, &str)> = Vec::new();
    for c in conflicts {
        if !managers.contains(&(c.manager.as_str(), c.api_version.as_str())) {
            managers.push((&c.manager, &c.api_version));
        }
    }
    let mut parts = Vec::new();
    for (m, v) in managers {
        let fields: Vec<&str> = conflicts
            .iter()
            .filter(|c| c.manager == m)
            .map(|c| c.field.as_str())
            .collect();
        if let [one] = fields.as_slice() {
            parts.push(format!("conflict with \"{m}\" using {v}: {one}"));
        } else {
            let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
            parts.push(format!(
                "conflicts with \"{m}\" using {v}:\n{}",
                list.join("\n")
            ));
        }
    }
    let noun = if n == 1 { "conflict" } else { "conflicts" };
    format!("Apply failed with {n} {noun}: {}", parts.join("\n"))
}

/// Leaf paths of `v` under `prefix`: non-empty maps are walked, everything else is a leaf.
fn leaves_under(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves_under(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Null => {}
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Leaf paths of an object tracked in `scope`.
fn tracked_leaves(object: &Value, scope: Scope) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (k, v) in map {
        if !scope.tracks_top(k) {
            continue;
        }
        if k == "metadata" {
            for mk in TRACKED_METADATA {
                if let Some(mv) = v.get(*mk) {
                    let mut prefix = vec![k.clone(), (*mk).to_string()];
                    leaves_under(mv, &mut prefix, &mut out);
                }
            }
        } else {
            let mut prefix = vec![k.clone()];
            leaves_under(v, &mut prefix, &mut out);
        }
    }
    out
}

fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// Paths whose value differs between `old` and `new` (maps walked, other values compared whole).
fn changed_paths(old: &Value, new: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                prefix.push(k.clone());
                changed_paths(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    prefix,
                    out,
                );
                prefix.pop();
            }
        }
        (a, b) if a != b => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn in_scope(path: &FieldPath, scope: Scope) -> bool {
    match path.first().map(String::as_str) {
        None => false,
        Some("metadata") => {
            !matches!(scope, Scope::Status)
                && path
                    .get(1)
                    .is_some_and(|k| TRACKED_METADATA.contains(&k.as_str()))
        }
        Some(top) => scope.tracks_top(top),
    }
}

fn fields_to_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for k in path {
            let slot = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(next) = slot else {
                break;
            };
            cur = next;
        }
    }
    Value::Object(root)
}

fn fields_from_v1(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    let Some(m) = v.as_object() else {
        return;
    };
    let children: Vec<(&str, &Value)> = m
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("f:").map(|name| (name, v)))
        .collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        return;
    }
    for (name, child) in children {
        prefix.push(name.to_string());
        fields_from_v1(child, prefix, out);
        prefix.pop();
    }
}

fn parse_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let manager = e.get("manager")?.as_str()?.to_string();
            let operation = match e.get("operation")?.as_str()? {
                "Apply" => Operation::Apply,
                _ => Operation::Update,
            };
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                fields_from_v1(f, &mut Vec::new(), &mut fields);
            }
            Some(Entry {
                manager,
                operation,
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                fields,
            })
        })
        .collect()
}

fn write_entries(object: &mut Value, entries: &[Entry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": match e.operation { Operation::Apply => "Apply", Operation::Update => "Update" },
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_to_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let meta = meta::metadata_mut(object);
    if rendered.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(rendered));
    }
}

fn entry_index(
    entries: &mut Vec<Entry>,
    manager: &str,
    op: Operation,
    scope: Scope,
    api_version: &str,
) -> usize {
    if let Some(i) = entries.iter().position(|e| {
        e.manager == manager && e.operation == op && e.subresource == scope.subresource()
    }) {
        return i;
    }
    entries.push(Entry {
        manager: manager.to_string(),
        operation: op,
        subresource: scope.subresource().to_string(),
        api_version: api_version.to_string(),
        time: String::new(),
        fields: BTreeSet::new(),
    });
    entries.len() - 1
}

/// Records a create/update/patch by `manager`: it takes over the fields it changed.
/// `new` must carry the managedFields of `old` (or none on create); they are rewritten.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    scope: Scope,
    api_version: &str,
) {
    let mut entries = old.map(parse_entries).unwrap_or_default();
    let changed: BTreeSet<FieldPath> = match old {
        Some(old) => {
            let mut out = BTreeSet::new();
            changed_paths(old, new, &mut Vec::new(), &mut out);
            out.into_iter().filter(|p| in_scope(p, scope)).collect()
        }
        None => tracked_leaves(new, scope),
    };
    if changed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    let mine = entry_index(&mut entries, manager, Operation::Update, scope, api_version);
    for (i, e) in entries.iter_mut().enumerate() {
        if i != mine {
            e.fields.retain(|f| !changed.iter().any(|c| related(f, c)));
        }
    }
    let now_leaves = tracked_leaves(new, scope);
    let e = &mut entries[mine];
    for c in &changed {
        for leaf in now_leaves.iter().filter(|l| l.starts_with(c)) {
            e.fields.insert(leaf.clone());
        }
    }
    e.fields.retain(|f| now_leaves.contains(f));
    e.time = meta::now_rfc3339();
    e.api_version = api_version.to_string();
    entries.retain(|e| !e.fields.is_empty());
    write_entries(new, &entries);
}

/// Whether applying `config` over `current` changes nothing: maps by key, lists element by
/// element, so that fields the server defaulted inside list items (a port's protocol or node
/// port) do not count as a change, as with the real server's associative lists.
fn unchanged_by(config: &Value, current: &Value) -> bool {
    match (config, current) {
        (Value::Object(c), Value::Object(t)) => c.iter().all(|(k, v)| {
            t.get(k).is_some_and(|tv| unchanged_by(v, tv)) || (v.is_null() && !t.contains_key(k))
        }),
        (Value::Array(c), Value::Array(t)) => {
            c.len() == t.len() && c.iter().zip(t).all(|(a, b)| unchanged_by(a, b))
        }
        (a, b) => a == b,
    }
}

fn changes(current: &Value, config: &Value, p: &[String]) -> bool {
    match (value_at(config, p), value_at(current, p)) {
        (Some(c), Some(t)) => !unchanged_by(c, t),
        (None, None) => false,
        _ => true,
    }
}

/// Merges an applied configuration into a map: maps are merged, other values replaced (a list
/// the configuration leaves unchanged keeps its defaulted fields), null removes.
fn merge_config(target: &mut Value, config: &Value) {
    match (target.as_object_mut(), config) {
        (Some(t), Value::Object(c)) => {
            for (k, v) in c {
                match v {
                    Value::Null => {
                        t.remove(k);
                    }
                    Value::Object(_) => {
                        let slot = t
                            .entry(k.clone())
                            .or_insert_with(|| Value::Object(Map::new()));
                        if !slot.is_object() {
                            *slot = Value::Object(Map::new());
                        }
                        merge_config(slot, v);
                    }
                    other => {
                        if !t.get(k).is_some_and(|cur| unchanged_by(other, cur)) {
                            t.insert(k.clone(), other.clone());
                        }
                    }
                }
            }
        }
        _ => *target = config.clone(),
    }
}

fn remove_path(target: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = target;
    for k in parents {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// The part of an applied configuration a scope may write, without system metadata.
fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    if let Some(m) = config.as_object() {
        for (k, v) in m {
            if k == "metadata" {
                if matches!(scope, Scope::Status) {
                    continue;
                }
                let mut md = Map::new();
                if let Some(mm) = v.as_object() {
                    for tk in TRACKED_METADATA {
                        if let Some(x) = mm.get(*tk) {
                            md.insert((*tk).to_string(), x.clone());
                        }
                    }
                }
                out.insert(k.clone(), Value::Object(md));
            } else if scope.tracks_top(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Server-side apply of `config` by `manager` onto `current` (which carries managedFields).
/// Returns the merged object with updated managedFields, or the conflicts when not forced.
pub fn apply(
    current: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    api_version: &str,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = parse_entries(current);
    let config = scoped_config(config, scope);
    let wanted = tracked_leaves(&config, scope);

    let mut conflicts = Vec::new();
    for e in entries.iter().filter(|e| e.manager != manager) {
        for p in &wanted {
            if e.fields.iter().any(|q| related(p, q)) && changes(current, &config, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: render_path(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    if force {
        for e in entries.iter_mut().filter(|e| e.manager != manager) {
            e.fields.retain(|q| {
                !wanted
                    .iter()
                    .any(|p| related(p, q) && changes(current, &config, p))
            });
        }
    }

    let mut merged = current.clone();
    let mine = entry_index(&mut entries, manager, Operation::Apply, scope, api_version);
    let previously: Vec<FieldPath> = entries[mine].fields.iter().cloned().collect();
    for p in previously {
        let still_wanted = wanted.iter().any(|w| related(w, &p));
        let owned_by_other = entries
            .iter()
            .enumerate()
            .any(|(i, e)| i != mine && e.fields.iter().any(|q| related(q, &p)));
        if !still_wanted && !owned_by_other {
            remove_path(&mut merged, &p);
        }
    }
    merge_config(&mut merged, &config);
    let e = &mut entries[mine];
    e.fields = wanted;
    e.time = meta::now_rfc3339();
    e.api_version = api_version.to_string();
    entries.retain(|e| !e.fields.is_empty());
    write_entries(&mut merged, &entries);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_subresource: true,
    };

    fn managers(o: &Value) -> Vec<(String, String)> {
        o["metadata"]["managedFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["manager"].as_str().unwrap().to_string(),
                            e["operation"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn apply_by_another_manager_conflicts_unless_forced() {
        let mut obj = json!({"metadata": {"name": "a"}, "data": {"k": "v1"}});
        record_update(None, &mut obj, "creator", MAIN, "v1");
        let config = json!({"data": {"k": "v2"}});
        let conflicts = apply(&obj, &config, "applier", false, MAIN, "v1").unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "creator".into(),
                api_version: "v1".into(),
                field: ".data.k".into()
            }]
        );
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"creator\" using v1: .data.k"
        );
        let forced = apply(&obj, &config, "applier", true, MAIN, "v1").unwrap();
        assert_eq!(forced["data"]["k"], "v2");
        assert_eq!(
            managers(&forced),
            vec![("applier".to_string(), "Apply".to_string())]
        );
    }

    #[test]
    fn applying_the_same_value_shares_ownership_without_conflict() {
        let mut obj = json!({"metadata": {"name": "a"}, "data": {"k": "v1"}});
        record_update(None, &mut obj, "creator", MAIN, "v1");
        let out = apply(
            &obj,
            &json!({"data": {"k": "v1"}}),
            "applier",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        assert_eq!(managers(&out).len(), 2);
    }

    #[test]
    fn applying_a_list_the_server_defaulted_is_no_conflict_and_keeps_the_defaults() {
        let mut obj = json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}});
        record_update(None, &mut obj, "client-side", MAIN, "v1");
        obj["spec"]["ports"][0]["protocol"] = json!("TCP");
        let out = apply(
            &obj,
            &json!({"spec": {"ports": [{"port": 80}]}}),
            "ssa",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}])
        );
        let changed = apply(
            &obj,
            &json!({"spec": {"ports": [{"port": 81}]}}),
            "ssa",
            false,
            MAIN,
            "v1",
        );
        assert!(changed.is_err());
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed() {
        let obj = json!({"metadata": {"name": "a"}});
        let first = apply(
            &obj,
            &json!({"data": {"a": "1", "b": "2"}}),
            "m",
            false,
            MAIN,
            "v1",
        )
        .unwrap();
        let second = apply(&first, &json!({"data": {"a": "1"}}), "m", false, MAIN, "v1").unwrap();
        assert_eq!(second["data"], json!({"a": "1"}));
    }

    #[test]
    fn status_scope_ignores_everything_but_status() {
        let obj = json!({"metadata": {"name": "a"}, "spec": {"x": 1}});
        let out = apply(
            &obj,
            &json!({"spec": {"x": 2}, "status": {"ok": true}}),
            "m",
            false,
            Scope::Status,
            "v1",
        )
        .unwrap();
        assert_eq!(out["spec"]["x"], 1);
        assert_eq!(out["status"]["ok"], true);
        assert_eq!(out["metadata"]["managedFields"][0]["subresource"], "status");
    }

    #[test]
    fn an_update_takes_fields_away_from_their_previous_manager() {
        let mut obj = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}});
        record_update(None, &mut obj, "first", MAIN, "v1");
        let mut next = obj.clone();
        next["data"]["k"] = json!("w");
        record_update(Some(&obj), &mut next, "second", MAIN, "v1");
        let fields = parse_entries(&next);
        let first = fields.iter().find(|e| e.manager == "first").unwrap();
        let second = fields.iter().find(|e| e.manager == "second").unwrap();
        assert!(
            !first
                .fields
                .contains(&vec!["data".to_string(), "k".to_string()])
        );
        assert!(first.fields.contains(&vec![
            "metadata".to_string(),
            "labels".to_string(),
            "x".to_string()
        ]));
        assert!(
            second
                .fields
                .contains(&vec!["data".to_string(), "k".to_string()])
        );
    }
}
