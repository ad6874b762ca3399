//! events.k8s.io/v1 Events are a view of core/v1 Events (one storage, renamed fields), as in the
//! real server; this module converts between the two and validates new-style events.

use serde_json::{Map, Value, json};

use crate::status::FieldError;

/// (core/v1 field, events.k8s.io/v1 field) pairs that differ only by name.
const RENAMES: &[(&str, &str)] = &[
    ("message", "note"),
    ("involvedObject", "regarding"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(object: &Value, to_v1: bool, api_version: &str) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = RENAMES.iter().find_map(|(core, v1)| {
            if to_v1 && k == core {
                Some(*v1)
            } else if !to_v1 && k == v1 {
                Some(*core)
            } else {
                None
            }
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// The events.k8s.io/v1 view of a stored core/v1 Event.
pub fn to_events_v1(core: &Value) -> Value {
    rename(core, true, "events.k8s.io/v1")
}

/// The stored core/v1 form of an events.k8s.io/v1 Event.
pub fn from_events_v1(v1: &Value) -> Value {
    rename(v1, false, "v1")
}

/// Maps an events.k8s.io/v1 field selector label onto the stored form.
pub fn core_field_label(label: &str) -> String {
    if let Some(rest) = label.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match label {
        "reportingController" => "reportingComponent".into(),
        "deprecatedSource" => "source".into(),
        other => other.into(),
    }
}

/// The create-time rules of events.k8s.io/v1 (on the v1 view).
pub fn validate_v1_create(event: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let text = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    if event.get("eventTime").is_none_or(Value::is_null) {
        errors.push(FieldError::required("eventTime", ""));
    }
    for (field, max) in [
        ("reportingController", 253),
        ("reportingInstance", 128),
        ("action", 128),
        ("reason", 128),
    ] {
        let v = text(field);
        if v.is_empty() {
            errors.push(FieldError::required(field, ""));
        } else if v.len() > max {
            errors.push(FieldError::invalid(
                field,
                &json!(v),
                &format!("can have at most {max} characters"),
            ));
        }
    }
    if text("note").len() > 1024 {
        errors.push(FieldError::invalid(
            "note",
            &json!(""),
            "can have at most 1024 bytes",
        ));
    }
    let ty = text("type");
    if ty != "Normal" && ty != "Warning" {
        errors.push(FieldError::invalid(
            "type",
            &json!(ty),
            "has invalid value: must be Normal or Warning",
        ));
    }
    if let Some(series) = event.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errors.push(FieldError::invalid(
                "series.count",
                series.get("count").unwrap_or(&Value::Null),
                "should be at least 2",
            ));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            errors.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_round_trips_and_renames_fields() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "message": "hello", "involvedObject": {"kind": "Service", "name": "s"},
            "reason": "IPAllocated", "reportingComponent": "ctl", "count": 3
        });
        let v1 = to_events_v1(&core);
        assert_eq!(v1["note"], "hello");
        assert_eq!(v1["regarding"]["name"], "s");
        assert_eq!(v1["reportingController"], "ctl");
        assert_eq!(v1["deprecatedCount"], 3);
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(from_events_v1(&v1), core);
    }

    #[test]
    fn new_style_events_need_time_controller_instance_action_and_reason() {
        let errs = validate_v1_create(&json!({"type": "Normal"}));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "eventTime",
                "reportingController",
                "reportingInstance",
                "action",
                "reason"
            ]
        );
    }
}
