//! The patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// A patch request body type, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header, if supported.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Applies an RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies an RFC 6902 JSON patch; a bad document is 400, a failing operation 422 like the real server.
pub fn json(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    json_patch::patch(target, &ops).map_err(|e| ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("the server rejected our request due to an error in our request: {e}"),
        details: None,
    })
}

/// How a list field is merged by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// The patch's list replaces the target's.
    Replace,
    /// Elements are matched by this key and merged.
    MergeKey(&'static str),
    /// A list of scalars merged as a set.
    Primitive,
}

/// The merge strategy of the list at `path` (keys joined by `.`, list elements as `[]`) of `kind`.
fn list_strategy(kind: &str, path: &str) -> ListStrategy {
    use ListStrategy::*;
    match (kind, path) {
        (_, "metadata.finalizers") => Primitive,
        (_, "metadata.ownerReferences") => MergeKey("uid"),
        (
            "Pod",
            "spec.containers"
            | "spec.initContainers"
            | "spec.ephemeralContainers"
            | "spec.volumes"
            | "spec.imagePullSecrets",
        ) => MergeKey("name"),
        ("Pod", p) if p.ends_with("[].ports") => MergeKey("containerPort"),
        ("Pod", p) if p.ends_with("[].env") => MergeKey("name"),
        ("Pod", p) if p.ends_with("[].volumeMounts") => MergeKey("mountPath"),
        ("Pod" | "Node" | "Namespace" | "Service", "status.conditions") => MergeKey("type"),
        ("Node", "status.addresses") => MergeKey("type"),
        ("Node", "spec.taints") => MergeKey("key"),
        ("Service", "spec.ports") => MergeKey("port"),
        _ => Replace,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes `$patch` and other directives from a value that is inserted as is.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch for a built-in `kind`, with the list merge keys ferrolb and
/// the lab touch; other lists are replaced whole, maps are merged, `null` deletes.
pub fn strategic(target: &mut Value, patch: &Value, kind: &str) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    merge_map(target, p, kind, "")
}

fn merge_map(
    target: &mut Value,
    patch: &Map<String, Value>,
    kind: &str,
    path: &str,
) -> Result<(), ApiError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(&Value::Object(patch.clone()));
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (t.get_mut(field), value) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            // $setElementOrder and $retainKeys only order or prune; ordering is not modelled.
            continue;
        }
        let sub = join(path, key);
        match value {
            Value::Null => {
                t.remove(key);
            }
            Value::Object(pm) => {
                let slot = t.entry(key.clone()).or_insert(Value::Null);
                merge_map(slot, pm, kind, &sub)?;
                if slot.is_null() {
                    t.remove(key);
                }
            }
            Value::Array(items) => {
                let slot = t.entry(key.clone()).or_insert(Value::Null);
                merge_list(slot, items, kind, &sub)?;
            }
            scalar => {
                t.insert(key.clone(), scalar.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Ok(())
}

fn merge_list(target: &mut Value, items: &[Value], kind: &str, path: &str) -> Result<(), ApiError> {
    let replace_whole = items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let strategy = list_strategy(kind, path);
    if replace_whole || strategy == ListStrategy::Replace || !target.is_array() {
        let kept: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        *target = Value::Array(kept);
        return Ok(());
    }
    let Value::Array(list) = target else {
        return Ok(());
    };
    match strategy {
        ListStrategy::Primitive => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
        ListStrategy::MergeKey(merge_key) => {
            let element_path = format!("{path}[]");
            for item in items {
                let Some(key_value) = item.get(merge_key) else {
                    return Err(ApiError::bad_request(format!(
                        "map: {item} does not contain declared merge key: {merge_key}"
                    )));
                };
                let pos = list
                    .iter()
                    .position(|e| e.get(merge_key) == Some(key_value));
                let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        list.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        if let Value::Object(pm) = item {
                            merge_map(&mut list[i], pm, kind, &element_path)?;
                        }
                    }
                    (None, false) => list.push(strip_directives(item)),
                }
            }
        }
        ListStrategy::Replace => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_replaces_ingress_and_merges_annotations() {
        let mut svc = json!({
            "metadata": {"annotations": {"a": "1", "b": "2"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"ip": "fc00::1"}]}}
        });
        let patch = json!({
            "metadata": {"annotations": {"b": null, "c": "3"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}]}}
        });
        strategic(&mut svc, &patch, "Service").unwrap();
        assert_eq!(svc["metadata"]["annotations"], json!({"a": "1", "c": "3"}));
        assert_eq!(
            svc["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "10.0.0.2"}])
        );
    }

    #[test]
    fn strategic_merge_matches_list_elements_by_merge_key() {
        let mut node = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}
        ]}});
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "PIDPressure", "status": "False"},
            {"type": "DiskPressure", "$patch": "delete"}
        ]}});
        strategic(&mut node, &patch, "Node").unwrap();
        assert_eq!(
            node["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PIDPressure", "status": "False"}])
        );
    }

    #[test]
    fn strategic_merge_unions_finalizers_and_honours_delete_from_primitive_list() {
        let mut o = json!({"metadata": {"finalizers": ["a", "b"]}});
        strategic(
            &mut o,
            &json!({"metadata": {"finalizers": ["c", "a"]}}),
            "Service",
        )
        .unwrap();
        assert_eq!(o["metadata"]["finalizers"], json!(["a", "b", "c"]));
        strategic(
            &mut o,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            "Service",
        )
        .unwrap();
        assert_eq!(o["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn json_patch_test_failure_is_unprocessable() {
        let mut o = json!({"a": 1});
        let err = json(&mut o, &json!([{"op": "test", "path": "/a", "value": 2}])).unwrap_err();
        assert_eq!(err.code, 422);
        let err = json(&mut o, &json!({"op": "nope"})).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
