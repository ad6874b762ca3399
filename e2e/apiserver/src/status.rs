//! API errors rendered as `metav1.Status`, with the codes, reasons and messages of the real server.

use serde_json::{Value, json};

use crate::kinds::ResourceKind;

/// One field problem inside a 422 Invalid error.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The JSON path of the field, e.g. `spec.ports[0].port`.
    pub field: String,
    /// The cause reason (`FieldValueInvalid`, `FieldValueRequired`, ...).
    pub reason: &'static str,
    /// The message without the field prefix.
    pub message: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            message,
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", render_value(value)),
        }
    }

    /// `Unsupported value: <value>: supported values: ...`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            field: field.into(),
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        }
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {}", render_value(value)),
        }
    }

    /// An allocator ran out; the real server answers 500 InternalError for this, not 422.
    pub fn range_full(field: impl Into<String>, what: &str) -> Self {
        Self {
            field: field.into(),
            reason: "RangeFull",
            message: format!("failed to allocate a {what}: range is full"),
        }
    }

    fn full_message(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// Renders a value like Go's `%#v` would for the simple cases (strings quoted, numbers bare).
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// An error answered as a `metav1.Status` body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`.
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`, when the real server sets them.
    pub details: Option<Value>,
}

fn details(kind: &ResourceKind, name: &str, kind_field: &str) -> Value {
    let mut d = json!({ "name": name, "kind": kind_field });
    if !kind.group.is_empty() {
        d["group"] = json!(kind.group);
    }
    d
}

impl ApiError {
    /// 404 NotFound for a named object.
    pub fn not_found(kind: &ResourceKind, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", kind.qualified_plural()),
            details: Some(details(kind, name, &kind.plural)),
        }
    }

    /// 404 NotFound for a namespace that does not exist.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("namespaces \"{namespace}\" not found"),
            details: Some(json!({ "name": namespace, "kind": "namespaces" })),
        }
    }

    /// 404 NotFound for a path that serves nothing.
    pub fn no_such_path() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(kind: &ResourceKind, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", kind.qualified_plural()),
            details: Some(details(kind, name, &kind.plural)),
        }
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(kind: &ResourceKind, name: &str) -> Self {
        Self::conflict_with(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict with a custom reason text.
    pub fn conflict_with(kind: &ResourceKind, name: &str, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                kind.qualified_plural()
            ),
            details: Some(details(kind, name, &kind.plural)),
        }
    }

    /// 422 Invalid with one or more field errors (500 if an allocator ran out, as the real server).
    pub fn invalid(kind: &ResourceKind, name: &str, errors: &[FieldError]) -> Self {
        if let Some(full) = errors.iter().find(|e| e.reason == "RangeFull") {
            return Self::internal(format!("Internal error occurred: {}", full.message));
        }
        let summary = match errors {
            [one] => one.full_message(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(FieldError::full_message)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut d = details(kind, name, &kind.kind);
        d["causes"] = Value::Array(
            errors
                .iter()
                .map(|e| json!({ "reason": e.reason, "message": e.message, "field": e.field }))
                .collect(),
        );
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {summary}", kind.qualified_kind()),
            details: Some(d),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(method: &str) -> Self {
        Self {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method on the requested resource ({method})"
            ),
            details: Some(json!({})),
        }
    }

    /// 410 Expired: a watch or list from a resourceVersion older than the retained history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self {
            code: 410,
            reason: "Expired",
            message: message.into(),
            details: None,
        }
    }

    /// 415 UnsupportedMediaType for a patch type the kind does not accept.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml ({content_type})"
            ),
            details: None,
        }
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: message.into(),
            details: None,
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
