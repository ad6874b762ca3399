//! Object metadata: names, timestamps, uids, and small accessors over `serde_json::Value`.

use serde_json::{Map, Value};

use crate::status::FieldError;

/// The current time as RFC 3339 with seconds, as `metav1.Time` is written.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A fresh random uid.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The 5-character random suffix appended to `generateName` (the real alphabet has no vowels).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// `metadata` as a mutable map, created if missing or not a map.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let map = match object {
        Value::Object(m) => m,
        _ => unreachable!("object was just made a map"),
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made a map"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The object's name, or "".
pub fn name_of(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or("")
}

/// The object's resourceVersion parsed as a number, if present and numeric.
pub fn resource_version_of(object: &Value) -> Option<&str> {
    meta_str(object, "resourceVersion").filter(|s| !s.is_empty())
}

/// Which naming rule a kind's names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035Label,
    /// A path segment: not `.` or `..`, no `/` or `%` (the rbac.authorization.k8s.io kinds).
    PathSegment,
}

fn is_label(s: &str, first_alpha: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (if first_alpha {
            b[0].is_ascii_lowercase()
        } else {
            b[0].is_ascii_alphanumeric()
        })
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Validates a name; returns the field error the real server would give.
#[cfg(test)]
pub fn validate_name(name: &str, rule: NameRule) -> Option<FieldError> {
    name_errors(name, rule, false, "metadata.name")
        .into_iter()
        .next()
}

/// What the real `ValidateNameFunc`s do in prefix mode (for `generateName`): a trailing '-'
/// of a string longer than one character is masked. The real mask replaces the last *two*
/// characters with "a" (`name[:len(name)-2] + "a"`), so this does the same.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let mut cut = name.len() - 2;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}a", &name[..cut])
    } else {
        name.to_string()
    }
}

/// The field errors of `value` (a name, or with `prefix` a `generateName`) under a kind's name
/// rule, as `metadata.name` / `metadata.generateName` errors of the real ValidateObjectMeta.
pub fn name_errors(value: &str, rule: NameRule, prefix: bool, field: &str) -> Vec<FieldError> {
    let shown = Value::String(value.to_string());
    let checked = if prefix && rule != NameRule::PathSegment {
        mask_trailing_dash(value)
    } else {
        value.to_string()
    };
    let name = checked.as_str();
    let one = |detail: &str| vec![FieldError::invalid(field, &shown, detail)];
    match rule {
        NameRule::Subdomain => {
            let ok = name.len() <= 253 && name.split('.').all(|part| is_label(part, false));
            if ok {
                Vec::new()
            } else {
                one(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                )
            }
        }
        NameRule::Label => {
            if is_label(name, false) {
                Vec::new()
            } else {
                one(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            }
        }
        NameRule::Dns1035Label => {
            if is_label(name, true) {
                Vec::new()
            } else {
                one(
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                )
            }
        }
        NameRule::PathSegment => {
            if !prefix && (name == "." || name == "..") {
                return one(&format!("may not be '{name}'"));
            }
            ["/", "%"]
                .iter()
                .filter(|bad| name.contains(**bad))
                .map(|bad| FieldError::invalid(field, &shown, &format!("may not contain '{bad}'")))
                .collect()
        }
    }
}

/// Validates `metadata.labels` keys and values loosely (strings only).
pub fn validate_string_map(object: &Value, field: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(map) = object.get("metadata").and_then(|m| m.get(field)) {
        match map {
            Value::Object(m) => {
                for (k, v) in m {
                    if !v.is_string() {
                        errors.push(FieldError::invalid(
                            format!("metadata.{field}.{k}"),
                            v,
                            "must be a string",
                        ));
                    }
                }
            }
            Value::Null => {}
            other => errors.push(FieldError::invalid(
                format!("metadata.{field}"),
                other,
                "must be a map of strings",
            )),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_accept_and_reject_like_the_real_validation() {
        let cases = [
            ("web", NameRule::Dns1035Label, true),
            ("1web", NameRule::Dns1035Label, false),
            ("Web", NameRule::Dns1035Label, false),
            ("web-", NameRule::Dns1035Label, false),
            ("a.b-c", NameRule::Subdomain, true),
            ("a..b", NameRule::Subdomain, false),
            ("1abc", NameRule::Label, true),
            ("a.b", NameRule::Label, false),
            ("svc.17f3a", NameRule::Subdomain, true),
            ("metallb-system:controller", NameRule::PathSegment, true),
            ("..", NameRule::PathSegment, false),
            ("a/b", NameRule::PathSegment, false),
        ];
        for (name, rule, ok) in cases {
            assert_eq!(validate_name(name, rule).is_none(), ok, "{name} {rule:?}");
        }
    }

    #[test]
    fn generate_name_is_checked_in_prefix_mode_with_the_real_trailing_dash_mask() {
        let cases = [
            ("web-", NameRule::Subdomain, true),
            ("s1-", NameRule::Subdomain, true),
            ("s1.", NameRule::Subdomain, false),
            ("-", NameRule::Subdomain, false),
            ("web-", NameRule::Dns1035Label, true),
            ("ns-", NameRule::Label, true),
            ("a.b", NameRule::Label, false),
            ("..", NameRule::PathSegment, true),
            ("a%", NameRule::PathSegment, false),
        ];
        for (prefix, rule, ok) in cases {
            let errors = name_errors(prefix, rule, true, "metadata.generateName");
            assert_eq!(errors.is_empty(), ok, "{prefix} {rule:?}: {errors:?}");
        }
        assert_eq!(mask_trailing_dash("s1-"), "sa");
    }

    #[test]
    fn generated_suffix_has_five_characters_from_the_real_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(
            s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{s}"
        );
    }
}
