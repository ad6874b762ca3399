//! CustomResourceDefinitions: validation, the status the real server reports once a CRD is
//! established, and the resource kinds a CRD serves.

use serde_json::{Value, json};

use crate::kinds::{ResourceKind, custom_kind};
use crate::meta;
use crate::status::FieldError;

/// Checks the parts of a CRD the server relies on.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    }
    if plural.is_empty() {
        errors.push(FieldError::required("spec.names.plural", ""));
    }
    if spec["names"]["kind"].as_str().unwrap_or("").is_empty() {
        errors.push(FieldError::required("spec.names.kind", ""));
    }
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        other => errors.push(FieldError::not_supported(
            "spec.scope",
            &json!(other.unwrap_or("")),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    } else if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
    {
        errors.push(FieldError::invalid(
            "spec.versions",
            &json!(versions.len()),
            "must have exactly one version marked as storage version",
        ));
    }
    let name = meta::name_of(crd);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    errors
}

/// Sets the status of an established CRD (the real server does so within moments).
pub fn establish(crd: &mut Value) {
    let now = meta::now_rfc3339();
    let names = crd["spec"]["names"].clone();
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    crd["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}

/// The kinds a CRD serves (one per served version).
pub fn served_kinds(crd: &Value) -> Vec<ResourceKind> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    let namespaced = spec["scope"].as_str() == Some("Namespaced");
    let short: Vec<String> = spec["names"]["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    spec["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["served"] != json!(false))
                .filter_map(|v| {
                    let version = v["name"].as_str()?;
                    let status = v["subresources"]["status"].is_object();
                    Some(custom_kind(
                        group,
                        version,
                        plural,
                        kind,
                        namespaced,
                        status,
                        short.clone(),
                        true,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                    {"name": "v1alpha1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn crd_name_must_be_plural_dot_group() {
        assert!(validate(&crd("widgets.example.com")).is_empty());
        assert_eq!(validate(&crd("widget")).len(), 1);
    }

    #[test]
    fn only_served_versions_become_kinds() {
        let kinds = served_kinds(&crd("widgets.example.com"));
        assert_eq!(kinds.len(), 1);
        assert_eq!(kinds[0].version, "v1");
        assert!(kinds[0].status_subresource);
        assert!(kinds[0].namespaced);
    }
}
