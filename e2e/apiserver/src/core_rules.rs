//! Smaller per-kind rules of the real server: Secrets (stringData, type) and EndpointSlices
//! (address type and addresses).

use std::net::IpAddr;

use base64::Engine;
use serde_json::{Value, json};

use crate::status::FieldError;

/// Folds `stringData` into `data` (base64) and defaults `type`, as the real server does on write.
pub fn prepare_secret(secret: &mut Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(map) = secret.as_object_mut() else {
        return errors;
    };
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    if let Some(Value::Object(data)) = map.get("data") {
        for (k, v) in data {
            let ok = v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                errors.push(FieldError::invalid(
                    format!("data[{k}]"),
                    v,
                    "must be base64-encoded",
                ));
            }
        }
    }
    let ty = map
        .get("type")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("Opaque")
        .to_string();
    if let Some(old_ty) = old.and_then(|o| o["type"].as_str())
        && old_ty != ty
    {
        errors.push(FieldError::invalid(
            "type",
            &json!(ty),
            "field is immutable",
        ));
    }
    map.insert("type".into(), json!(ty));
    errors
}

/// Checks an EndpointSlice's address type and every endpoint's addresses.
pub fn validate_endpoint_slice(slice: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let ty = slice["addressType"].as_str().unwrap_or("");
    match ty {
        "IPv4" | "IPv6" | "FQDN" => {}
        "" => errors.push(FieldError::required("addressType", "")),
        other => errors.push(FieldError::not_supported(
            "addressType",
            &json!(other),
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    if let Some(old_ty) = old.and_then(|o| o["addressType"].as_str())
        && old_ty != ty
    {
        errors.push(FieldError::invalid(
            "addressType",
            &json!(ty),
            "field is immutable",
        ));
    }
    for (i, ep) in slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let addresses = ep["addresses"].as_array().cloned().unwrap_or_default();
        if addresses.is_empty() {
            errors.push(FieldError::required(
                format!("endpoints[{i}].addresses"),
                "must contain at least 1 address",
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            let parsed = a.as_str().and_then(|s| s.parse::<IpAddr>().ok());
            let fits = match ty {
                "IPv4" => parsed.is_some_and(|ip| ip.is_ipv4()),
                "IPv6" => parsed.is_some_and(|ip| ip.is_ipv6()),
                _ => a.is_string(),
            };
            if !fits {
                errors.push(FieldError::invalid(
                    format!("endpoints[{i}].addresses[{j}]"),
                    a,
                    &format!("must be a valid {ty} address"),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_is_folded_into_base64_data() {
        let mut s = json!({"stringData": {"secretkey": "abc"}, "data": {"other": "eHl6"}});
        assert!(prepare_secret(&mut s, None).is_empty());
        assert_eq!(s["data"], json!({"other": "eHl6", "secretkey": "YWJj"}));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn endpoint_slice_addresses_must_match_the_address_type() {
        let cases = [
            (
                json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}),
                0,
            ),
            (
                json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fd00::1"]}]}),
                1,
            ),
            (
                json!({"addressType": "IPv4", "endpoints": [{"addresses": []}]}),
                1,
            ),
            (json!({"endpoints": []}), 1),
        ];
        for (slice, n) in cases {
            assert_eq!(validate_endpoint_slice(&slice, None).len(), n, "{slice}");
        }
    }
}
