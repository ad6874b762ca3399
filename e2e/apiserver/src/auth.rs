//! Service-account tokens (TokenRequest), bearer-token authentication and RBAC authorization,
//! evaluated like the real kube-apiserver 1.24 for what ferrolb uses.
//!
//! A request without `Authorization` (or with an empty bearer token) is not authenticated and
//! gets full access: it stands in for the lab's admin client certificate. A request with a
//! bearer token issued here is the service account's user and goes through RBAC, with the
//! Roles, ClusterRoles and bindings read from the store at each request.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kinds::{ResourceKind, custom_kind};
use crate::meta;
use crate::status::{ApiError, FieldError};
use crate::store::ObjectKey;
use crate::verbs::State;

/// The RBAC API group.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The audience a token gets when its TokenRequest names none (the API server's own).
const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// TokenRequest's default `spec.expirationSeconds`.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Issued tokens, by token.
pub type Tokens = BTreeMap<String, IssuedToken>;

/// One token issued by a TokenRequest, kept (in the state file too) until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuedToken {
    /// The opaque bearer token.
    pub token: String,
    /// The service account's namespace.
    pub namespace: String,
    /// The service account's name.
    pub name: String,
    /// The service account's uid: a recreated account does not accept the old tokens.
    pub uid: String,
    /// Expiry, in Unix seconds.
    pub expires: i64,
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `system:serviceaccount:<ns>:<name>`.
    pub name: String,
    /// The user's groups.
    pub groups: Vec<String>,
}

/// 401 Unauthorized, exactly as the real server answers an invalid token.
pub fn unauthorized() -> ApiError {
    ApiError {
        code: 401,
        reason: "Unauthorized",
        message: "Unauthorized".into(),
        details: None,
    }
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn service_account_kind(state: &State) -> Option<std::sync::Arc<ResourceKind>> {
    state.registry.find("", "v1", "serviceaccounts")
}

/// Authenticates a request: `Ok(None)` without credentials (full access), the service
/// account's user for a valid token, 401 for any other bearer token.
pub fn authenticate(state: &State, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| unauthorized())?.trim();
    let mut parts = value.splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Like the real server with no other authenticator configured: not a bearer token, so
        // the request is as if it carried no credentials.
        return Ok(None);
    }
    let token = parts.next().unwrap_or("").trim();
    if token.is_empty() {
        return Ok(None);
    }
    let issued = state.tokens.get(token).ok_or_else(unauthorized)?;
    if issued.expires <= now_unix() {
        return Err(unauthorized());
    }
    let kind = service_account_kind(state).ok_or_else(unauthorized)?;
    let account = state
        .store
        .get(
            &kind.storage,
            &ObjectKey::new(&issued.namespace, &issued.name),
        )
        .ok_or_else(unauthorized)?;
    if meta::meta_str(&account, "uid") != Some(issued.uid.as_str()) {
        return Err(unauthorized());
    }
    Ok(Some(User {
        name: format!("system:serviceaccount:{}:{}", issued.namespace, issued.name),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", issued.namespace),
            "system:authenticated".into(),
        ],
    }))
}

fn token_request_kind() -> ResourceKind {
    custom_kind(
        "authentication.k8s.io",
        "v1",
        "tokenrequests",
        "TokenRequest",
        true,
        false,
        Vec::new(),
        false,
    )
}

/// `POST .../serviceaccounts/{name}/token`: issues a token for the account and answers the
/// TokenRequest with `status.token` and `status.expirationTimestamp`.
pub fn create_token(
    state: &mut State,
    namespace: &str,
    name: &str,
    mut request: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let tr = token_request_kind();
    if !request.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    for (field, want) in [
        ("apiVersion", "authentication.k8s.io/v1"),
        ("kind", "TokenRequest"),
    ] {
        match request.get(field).and_then(Value::as_str) {
            Some(got) if !got.is_empty() && got != want => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({got}) does not match the expected {field} ({want})"
                )));
            }
            _ => request[field] = json!(want),
        }
    }
    let body_name = meta::meta_str(&request, "name").unwrap_or("").to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::invalid(
            &tr,
            name,
            &[FieldError::invalid(
                "metadata.name",
                &json!(body_name),
                "must match the service account name if specified",
            )],
        ));
    }
    let body_ns = meta::meta_str(&request, "namespace")
        .unwrap_or("")
        .to_string();
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(ApiError::invalid(
            &tr,
            name,
            &[FieldError::invalid(
                "metadata.namespace",
                &json!(body_ns),
                "must match the service account namespace if specified",
            )],
        ));
    }
    let kind = service_account_kind(state).ok_or_else(ApiError::no_such_path)?;
    let account = state
        .store
        .get(&kind.storage, &ObjectKey::new(namespace, name))
        .ok_or_else(|| ApiError::not_found(&kind, name))?;
    let uid = meta::meta_str(&account, "uid").unwrap_or("").to_string();

    let now = now_unix();
    {
        let md = meta::metadata_mut(&mut request);
        md.insert("name".into(), json!(name));
        md.insert("namespace".into(), json!(namespace));
        md.insert("creationTimestamp".into(), json!(rfc3339(now)));
    }
    if !request["spec"].is_object() {
        request["spec"] = json!({});
    }
    let spec = &mut request["spec"];
    if spec["audiences"].as_array().is_none_or(Vec::is_empty) {
        spec["audiences"] = json!([DEFAULT_AUDIENCE]);
    }
    let seconds = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            ApiError::bad_request("spec.expirationSeconds must be an integer".to_string())
        })?,
    };
    spec["expirationSeconds"] = json!(seconds);
    let too = if seconds < 600 {
        Some("may not specify a duration less than 10 minutes")
    } else if seconds > 1 << 32 {
        Some("may not specify a duration larger than 2^32 seconds")
    } else {
        None
    };
    if let Some(why) = too {
        return Err(ApiError::invalid(
            &tr,
            "",
            &[FieldError::invalid(
                "spec.expirationSeconds",
                &json!(seconds),
                why,
            )],
        ));
    }
    let expires = now + seconds;
    let token = format!(
        "ferrolb.{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    request["status"] = json!({"token": token, "expirationTimestamp": rfc3339(expires)});
    if !dry_run {
        state.tokens.retain(|_, t| t.expires > now);
        state.tokens.insert(
            token.clone(),
            IssuedToken {
                token,
                namespace: namespace.into(),
                name: name.into(),
                uid,
                expires,
            },
        );
    }
    Ok(request)
}

/// What a request asks to do, as the real server's RequestInfo and authorizer attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, ... (the lowercase method for non-resource paths).
    pub verb: String,
    /// Whether the path names an API resource.
    pub resource_request: bool,
    /// The URL path.
    pub path: String,
    /// API group ("" for core).
    pub group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource, e.g. `status` or `token`.
    pub subresource: String,
    /// Object name ("" for collections).
    pub name: String,
    /// Namespace ("" for cluster scope).
    pub namespace: String,
}

/// The name an exact `metadata.name=` field selector asks for, if any.
fn selected_name(field_selector: Option<&str>) -> Option<String> {
    field_selector?.split(',').find_map(|term| {
        let (key, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, _)| !k.ends_with('!'))?;
        (key.trim() == "metadata.name").then(|| value.trim().to_string())
    })
}

fn valid_path_segment(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// Derives the attributes of a request from its method, path and query, as the real
/// RequestInfoFactory does (`watch` is the query's watch flag).
pub fn attributes(
    method: &Method,
    path: &str,
    watch: bool,
    field_selector: Option<&str>,
) -> Attributes {
    let mut a = Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
        ..Attributes::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return a;
    }
    let mut rest = &parts[1..];
    if parts[0] == "apis" {
        if rest.len() < 3 {
            return a;
        }
        a.group = rest[0].to_string();
        rest = &rest[1..];
    }
    a.resource_request = true;
    rest = &rest[1..];
    a.verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if let Some(r) = rest.first() {
        a.resource = (*r).to_string();
    }
    if let Some(n) = rest.get(1) {
        a.name = (*n).to_string();
    }
    if let Some(s) = rest.get(2) {
        a.subresource = (*s).to_string();
    }
    if a.name.is_empty() && a.verb == "get" {
        a.verb = if watch { "watch" } else { "list" }.into();
        if let Some(name) = selected_name(field_selector).filter(|n| valid_path_segment(n)) {
            a.name = name;
        }
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".into();
    }
    a
}

/// The non-resource URLs every authenticated user may GET (the real `system:discovery` and
/// `system:public-info-viewer` ClusterRoles bound to `system:authenticated`).
const PUBLIC_URLS: &[&str] = &[
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
];

fn url_matches(pattern: &str, path: &str) -> bool {
    pattern == "*"
        || pattern == path
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether one PolicyRule allows the request (the real RuleAllows).
fn rule_allows(a: &Attributes, rule: &Value) -> bool {
    let verbs = strings(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.resource_request {
        return strings(&rule["nonResourceURLs"])
            .iter()
            .any(|p| url_matches(p, &a.path));
    }
    if !strings(&rule["apiGroups"])
        .iter()
        .any(|g| *g == "*" || *g == a.group)
    {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resource_ok = strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || names.contains(&a.name.as_str())
}

/// Whether a binding's subjects include the user (`binding_ns` is "" for ClusterRoleBindings).
fn applies_to(user: &User, subjects: &Value, binding_ns: &str) -> bool {
    subjects.as_array().is_some_and(|subjects| {
        subjects.iter().any(|s| {
            let name = s["name"].as_str().unwrap_or("");
            match s["kind"].as_str().unwrap_or("") {
                "ServiceAccount" => {
                    let ns = s["namespace"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .unwrap_or(binding_ns);
                    !name.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
                }
                "User" => user.name == name,
                "Group" => user.groups.iter().any(|g| g == name),
                _ => false,
            }
        })
    })
}

/// The objects of an RBAC kind (in one namespace, or all cluster-scoped ones).
fn rbac_objects(state: &State, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(kind) = state.registry.find(RBAC_GROUP, "v1", plural) else {
        return Vec::new();
    };
    let Some(coll) = state.store.get_collection(&kind.storage) else {
        return Vec::new();
    };
    coll.iter_namespace(namespace)
        .map(|(_, o)| (**o).clone())
        .collect()
}

/// The rules a roleRef points to, or the error the real rule resolver reports.
fn referenced_rules(state: &State, role_ref: &Value, binding_ns: &str) -> Result<Value, String> {
    let name = role_ref["name"].as_str().unwrap_or("");
    let (plural, namespace, singular) = match role_ref["kind"].as_str().unwrap_or("") {
        "ClusterRole" => ("clusterroles", "", "clusterrole"),
        "Role" => ("roles", binding_ns, "role"),
        other => return Err(format!("unsupported role reference kind: \"{other}\"")),
    };
    state
        .registry
        .find(RBAC_GROUP, "v1", plural)
        .and_then(|k| {
            state
                .store
                .get(&k.storage, &ObjectKey::new(namespace, name))
        })
        .map(|role| role["rules"].clone())
        .ok_or_else(|| format!("{singular}.{RBAC_GROUP} \"{name}\" not found"))
}

/// Authorizes a service-account request with RBAC; the 403 Forbidden Status the real server
/// answers otherwise.
pub fn authorize(state: &State, user: &User, a: &Attributes) -> Result<(), ApiError> {
    if !a.resource_request && a.verb == "get" && PUBLIC_URLS.iter().any(|p| url_matches(p, &a.path))
    {
        return Ok(());
    }
    let mut errors: Vec<String> = Vec::new();
    let mut bindings: Vec<(Value, String)> = rbac_objects(state, "clusterrolebindings", None)
        .into_iter()
        .map(|b| (b, String::new()))
        .collect();
    if !a.namespace.is_empty() {
        bindings.extend(
            rbac_objects(state, "rolebindings", Some(&a.namespace))
                .into_iter()
                .map(|b| (b, a.namespace.clone())),
        );
    }
    for (binding, binding_ns) in &bindings {
        if binding_ns.is_empty() && binding["roleRef"]["kind"] != "ClusterRole" {
            // A ClusterRoleBinding can only reference a ClusterRole.
            if applies_to(user, &binding["subjects"], "") {
                errors.push(format!(
                    "unsupported role reference kind: \"{}\"",
                    binding["roleRef"]["kind"].as_str().unwrap_or("")
                ));
            }
            continue;
        }
        if !applies_to(user, &binding["subjects"], binding_ns) {
            continue;
        }
        match referenced_rules(state, &binding["roleRef"], binding_ns) {
            Ok(rules) => {
                if rules
                    .as_array()
                    .is_some_and(|rules| rules.iter().any(|r| rule_allows(a, r)))
                {
                    return Ok(());
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let reason = match errors.as_slice() {
        [] => String::new(),
        [one] => format!("RBAC: {one}"),
        many => format!("RBAC: [{}]", many.join(", ")),
    };
    Err(forbidden(user, a, &reason))
}

/// The real server's 403: `NewForbidden(groupResource, name, forbiddenMessage(attributes))`.
pub fn forbidden(user: &User, a: &Attributes, reason: &str) -> ApiError {
    let what = if !a.resource_request {
        format!(
            "User \"{}\" cannot {} path \"{}\"",
            user.name, a.verb, a.path
        )
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", a.namespace)
        };
        format!(
            "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
            user.name, a.verb, a.group
        )
    };
    let what = what
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let what = if reason.is_empty() {
        what
    } else {
        format!("{what}: {reason}")
    };
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {what}")
    } else if a.name.is_empty() {
        format!("{qualified} is forbidden: {what}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {what}", a.name)
    };
    let mut details = serde_json::Map::new();
    for (key, value) in [
        ("name", &a.name),
        ("group", &a.group),
        ("kind", &a.resource),
    ] {
        if !value.is_empty() {
            details.insert(key.into(), json!(value));
        }
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(Value::Object(details)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_attributes_follow_the_real_request_info() {
        /// Method, path, watch flag, field selector; verb, resource, name, subresource, namespace.
        type Case<'a> = (
            Method,
            &'a str,
            bool,
            Option<&'a str>,
            (&'a str, &'a str, &'a str, &'a str, &'a str),
        );
        let cases: &[Case<'_>] = &[
            (
                Method::GET,
                "/api/v1/namespaces/default/services",
                false,
                None,
                ("list", "services", "", "", "default"),
            ),
            (
                Method::GET,
                "/api/v1/services",
                true,
                None,
                ("watch", "services", "", "", ""),
            ),
            (
                Method::PATCH,
                "/api/v1/namespaces/default/services/web/status",
                false,
                None,
                ("patch", "services", "web", "status", "default"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/kube-system",
                false,
                None,
                ("get", "namespaces", "kube-system", "", "kube-system"),
            ),
            (
                Method::DELETE,
                "/apis/metallb.io/v1beta1/namespaces/x/ipaddresspools",
                false,
                None,
                ("deletecollection", "ipaddresspools", "", "", "x"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/m/secrets",
                false,
                Some("metadata.name=memberlist"),
                ("list", "secrets", "memberlist", "", "m"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/m/serviceaccounts/sa/token",
                false,
                None,
                ("create", "serviceaccounts", "sa", "token", "m"),
            ),
        ];
        for (method, path, watch, fields, (verb, resource, name, sub, ns)) in cases {
            let a = attributes(method, path, *watch, *fields);
            assert!(a.resource_request, "{path}");
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.resource.as_str(),
                    a.name.as_str(),
                    a.subresource.as_str(),
                    a.namespace.as_str()
                ),
                (*verb, *resource, *name, *sub, *ns),
                "{method} {path}"
            );
        }
        for path in ["/api", "/api/v1", "/apis/apps/v1", "/version", "/"] {
            assert!(!attributes(&Method::GET, path, false, None).resource_request);
        }
    }

    #[test]
    fn rules_match_groups_resources_subresources_verbs_and_names() {
        let a = attributes(
            &Method::PATCH,
            "/api/v1/namespaces/default/services/web/status",
            false,
            None,
        );
        let cases = [
            (
                json!({"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]}),
                true,
            ),
            (
                json!({"apiGroups": [""], "resources": ["services"], "verbs": ["patch"]}),
                false,
            ),
            (
                json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}),
                true,
            ),
            (
                json!({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}),
                false,
            ),
            (
                json!({"apiGroups": [""], "resources": ["*"], "verbs": ["patch"], "resourceNames": ["web"]}),
                true,
            ),
            (
                json!({"apiGroups": [""], "resources": ["*"], "verbs": ["patch"], "resourceNames": ["db"]}),
                false,
            ),
            (
                json!({"apiGroups": [""], "resources": ["*"], "verbs": ["update"]}),
                false,
            ),
        ];
        for (rule, ok) in cases {
            assert_eq!(rule_allows(&a, &rule), ok, "{rule}");
        }
    }
}
