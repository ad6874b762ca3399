//! Validating admission webhooks, called as kube-apiserver 1.24 calls them: the stored
//! admissionregistration.k8s.io/v1 ValidatingWebhookConfigurations are matched against each
//! create, update (patch) and delete of a main resource (rules: operations, apiGroups,
//! apiVersions, resources, scope; namespaceSelector on the namespace's labels; objectSelector),
//! and every matching webhook is sent an AdmissionReview v1 over HTTPS (`clientConfig.url`,
//! trusting `caBundle`) with `?timeout=Ns`. A denial becomes the Status the real server answers
//! (`admission webhook "<name>" denied the request: <message>`, the response's code, at least
//! 400); a failed call is ignored under `failurePolicy: Ignore` and is a 500 InternalError under
//! `Fail` (the default).
//!
//! Differences kept on purpose (documented in the README): `clientConfig.service` is never
//! reachable (the lab runs no Services; like the real server, the call dials the Service's
//! cluster IP and fails); webhooks are called one
//! after the other (the real server calls them in parallel and reports the first error it
//! collects); the namespace deletion cascade and deletecollection do not call webhooks.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::kinds::{ResourceKind, StorageKey};
use crate::meta;
use crate::store::ObjectKey;
use crate::verbs::State;

/// The real server's default `timeoutSeconds` (v1).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What is being done, as the AdmissionReview names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object.
    Create,
    /// A changed object.
    Update,
    /// A removed object.
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        }
    }
}

/// One write under review.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// What is done.
    pub operation: Operation,
    /// The resource written.
    pub kind: Arc<ResourceKind>,
    /// Its namespace ("" when cluster-scoped).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The object as it would be stored (CREATE, UPDATE).
    pub object: Option<Value>,
    /// The stored object (UPDATE, DELETE).
    pub old_object: Option<Value>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// Who asks: user name and groups.
    pub user: (String, Vec<String>),
}

/// One webhook to call, resolved from its configuration.
#[derive(Debug, Clone)]
pub struct Hook {
    name: String,
    client: Result<(String, Vec<CertificateDer<'static>>), String>,
    timeout: Duration,
    ignore_failures: bool,
    side_effects_ok: bool,
}

fn storage() -> StorageKey {
    StorageKey {
        group: "admissionregistration.k8s.io".into(),
        plural: "validatingwebhookconfigurations".into(),
    }
}

/// Whether a rule of some stored webhook names this resource for one of `operations` (before
/// the dry run that makes the reviewed object, so writes no webhook covers cost nothing more).
pub fn may_match(state: &State, kind: &ResourceKind, operations: &[Operation]) -> bool {
    let Some(configs) = state.store.get_collection(&storage()) else {
        return false;
    };
    configs.objects.values().any(|config| {
        config["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|hook| {
                hook["rules"].as_array().into_iter().flatten().any(|rule| {
                    operations.iter().any(|op| {
                        listed(&rule["operations"], op.as_str())
                            && listed(&rule["apiGroups"], &kind.group)
                            && listed(&rule["apiVersions"], &kind.version)
                            && listed(&rule["resources"], &kind.plural)
                    })
                })
            })
    })
}

/// Who a request without credentials is: the lab's admin certificate on the real server.
pub fn admin() -> (String, Vec<String>) {
    (
        "lab-admin".into(),
        vec!["system:masters".into(), "system:authenticated".into()],
    )
}

/// The webhooks of every stored configuration whose rules and selectors match (under the lock).
pub fn matching(state: &State, attrs: &Attributes) -> Vec<Hook> {
    let Some(configs) = state.store.get_collection(&storage()) else {
        return Vec::new();
    };
    let namespace_labels = namespace_labels(state, attrs);
    let mut hooks = Vec::new();
    for config in configs.objects.values() {
        for hook in config["webhooks"].as_array().into_iter().flatten() {
            if !hook["rules"]
                .as_array()
                .is_some_and(|rules| rules.iter().any(|r| rule_matches(r, attrs)))
            {
                continue;
            }
            if let Some(labels) = &namespace_labels
                && !selector_matches(&hook["namespaceSelector"], labels)
            {
                continue;
            }
            let object_labels = [&attrs.object, &attrs.old_object]
                .into_iter()
                .flatten()
                .map(|o| o["metadata"]["labels"].clone())
                .collect::<Vec<_>>();
            if !object_labels.is_empty()
                && !object_labels
                    .iter()
                    .any(|l| selector_matches(&hook["objectSelector"], l))
            {
                continue;
            }
            hooks.push(resolve(state, hook));
        }
    }
    hooks
}

/// The labels namespaceSelector is matched against: the namespace's for a namespaced object,
/// the object's own for a Namespace, none (always matches) for other cluster-scoped objects.
fn namespace_labels(state: &State, attrs: &Attributes) -> Option<Value> {
    if attrs.kind.group.is_empty() && attrs.kind.plural == "namespaces" {
        let o = attrs.object.as_ref().or(attrs.old_object.as_ref())?;
        return Some(o["metadata"]["labels"].clone());
    }
    if !attrs.kind.namespaced {
        return None;
    }
    let ns = state.store.get(
        &StorageKey {
            group: String::new(),
            plural: "namespaces".into(),
        },
        &ObjectKey::new("", &attrs.namespace),
    );
    Some(
        ns.map(|n| n["metadata"]["labels"].clone())
            .unwrap_or(Value::Null),
    )
}

fn listed(list: &Value, value: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|v| v == "*" || v == value))
}

fn rule_matches(rule: &Value, attrs: &Attributes) -> bool {
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !attrs.kind.namespaced,
        "Namespaced" => attrs.kind.namespaced,
        _ => true,
    };
    scope_ok
        && listed(&rule["operations"], attrs.operation.as_str())
        && listed(&rule["apiGroups"], &attrs.kind.group)
        && listed(&rule["apiVersions"], &attrs.kind.version)
        && rule["resources"].as_array().is_some_and(|l| {
            // Main resources only: "plural" or "*" ("x/y" entries name subresources).
            l.iter()
                .any(|v| v == "*" || v == attrs.kind.plural.as_str())
        })
}

/// metav1.LabelSelector semantics; an absent or empty selector matches everything.
fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    let labels_ok = selector["matchLabels"].as_object().is_none_or(|m| {
        m.iter()
            .all(|(k, v)| v.as_str().is_some_and(|v| get(k) == Some(v)))
    });
    let expressions_ok = selector["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e["operator"].as_str().unwrap_or_default() {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && expressions_ok
}

fn resolve(state: &State, hook: &Value) -> Hook {
    let name = hook["name"].as_str().unwrap_or_default().to_string();
    let timeout = hook["timeoutSeconds"]
        .as_u64()
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let cc = &hook["clientConfig"];
    let client = match cc["url"].as_str() {
        Some(url) => ca_bundle(cc).map(|ca| (url.to_string(), ca)),
        // The real server dials the Service's cluster IP (its ClusterIP resolver); there is no
        // Service network in the lab, so that fails there as it does here.
        None => match cc["service"]["name"].as_str() {
            Some(svc) => {
                let ns = cc["service"]["namespace"].as_str().unwrap_or_default();
                let port = cc["service"]["port"].as_u64().unwrap_or(443);
                let cluster_ip = state
                    .store
                    .get(
                        &StorageKey {
                            group: String::new(),
                            plural: "services".into(),
                        },
                        &ObjectKey::new(ns, svc),
                    )
                    .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_string));
                let why = match cluster_ip {
                    Some(ip) => format!("dial tcp {ip}:{port}: connect: network is unreachable"),
                    None => format!("service {svc:?} not found"),
                };
                Err(format!(
                    "failed to call webhook: Post \"https://{svc}.{ns}.svc:{port}{}?timeout={}s\": {why}",
                    cc["service"]["path"].as_str().unwrap_or_default(),
                    timeout.as_secs()
                ))
            }
            None => Err("clientConfig has neither url nor service".to_string()),
        },
    };
    Hook {
        name,
        client,
        timeout,
        ignore_failures: hook["failurePolicy"].as_str() == Some("Ignore"),
        side_effects_ok: matches!(hook["sideEffects"].as_str(), Some("None" | "NoneOnDryRun")),
    }
}

fn ca_bundle(cc: &Value) -> Result<Vec<CertificateDer<'static>>, String> {
    use base64::Engine as _;
    let Some(b64) = cc["caBundle"].as_str() else {
        return Ok(Vec::new());
    };
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("caBundle is not base64: {e}"))?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("caBundle holds no certificate: {e}"))
}

/// A refused write: the HTTP code and the Status body.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status code.
    pub code: u16,
    /// The `metav1.Status`.
    pub status: Value,
}

fn internal(message: String) -> Refusal {
    Refusal {
        code: 500,
        status: json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    }
}

/// Call every hook in turn; the first refusal (or failed call under `Fail`) wins.
pub async fn dispatch(hooks: Vec<Hook>, attrs: &Attributes) -> Result<(), Refusal> {
    for hook in hooks {
        if attrs.dry_run && !hook.side_effects_ok {
            return Err(bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            )));
        }
        match call(&hook, attrs).await {
            Ok(None) => {}
            Ok(Some(refusal)) => return Err(refusal),
            Err(reason) => {
                let message = format!("failed calling webhook {:?}: {reason}", hook.name);
                if hook.ignore_failures {
                    tracing::warn!(webhook = %hook.name, %message, "failing open");
                } else {
                    return Err(internal(message));
                }
            }
        }
    }
    Ok(())
}

fn bad_request(message: String) -> Refusal {
    Refusal {
        code: 400,
        status: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "BadRequest", "code": 400}),
    }
}

/// The AdmissionReview v1 the real server sends.
pub fn review(uid: &str, attrs: &Attributes) -> Value {
    let k = &attrs.kind;
    let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
    let gvr = json!({"group": k.group, "version": k.version, "resource": k.plural});
    let mut request = json!({
        "uid": uid,
        "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "operation": attrs.operation.as_str(),
        "userInfo": {"username": attrs.user.0, "groups": attrs.user.1},
        "object": attrs.object, "oldObject": attrs.old_object,
        "dryRun": attrs.dry_run,
        "options": {"kind": attrs.operation.options_kind(), "apiVersion": "meta.k8s.io/v1"},
    });
    if !attrs.name.is_empty() {
        request["name"] = json!(attrs.name);
    }
    if !attrs.namespace.is_empty() {
        request["namespace"] = json!(attrs.namespace);
    }
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request})
}

/// `Ok(None)` allowed, `Ok(Some(_))` denied, `Err(reason)` the call failed.
async fn call(hook: &Hook, attrs: &Attributes) -> Result<Option<Refusal>, String> {
    let (url, roots) = hook.client.clone()?;
    let uid = meta::new_uid();
    let body = review(&uid, attrs).to_string();
    let url_with_timeout = format!(
        "{url}{}timeout={}s",
        if url.contains('?') { '&' } else { '?' },
        hook.timeout.as_secs()
    );
    let answer = tokio::time::timeout(hook.timeout, post(&url_with_timeout, &roots, body))
        .await
        .map_err(|_| {
            format!("failed to call webhook: Post {url_with_timeout:?}: context deadline exceeded")
        })?
        .map_err(|e| format!("failed to call webhook: Post {url_with_timeout:?}: {e}"))?;
    let response =
        verify(&uid, &answer).map_err(|e| format!("received invalid webhook response: {e}"))?;
    if response["allowed"].as_bool() == Some(true) {
        return Ok(None);
    }
    Ok(Some(denial(&hook.name, &response["status"])))
}

/// What `ToStatusErr` makes of a webhook's `status`.
fn denial(name: &str, result: &Value) -> Refusal {
    let denied_by = format!("admission webhook {name:?} denied the request");
    let code = result["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = result["message"].as_str().unwrap_or_default();
    let reason = result["reason"].as_str().unwrap_or_default();
    let text = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": text, "code": code});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    if let Some(d) = result.get("details").filter(|d| !d.is_null()) {
        status["details"] = d.clone();
    }
    Refusal { code, status }
}

/// The checks of `VerifyAdmissionResponse`: the response for our request, and `allowed` set.
fn verify(uid: &str, answer: &Value) -> Result<Value, String> {
    let (api_version, kind) = (
        answer["apiVersion"].as_str().unwrap_or_default(),
        answer["kind"].as_str().unwrap_or_default(),
    );
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let response = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got = response["uid"].as_str().unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    Ok(response.clone())
}

/// POST `body` to an https URL, trusting `roots`; the answer's JSON (any non-2xx is an error).
async fn post(url: &str, roots: &[CertificateDer<'static>], body: String) -> Result<Value, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("unsupported scheme in {url:?} (webhooks are called over https)"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let bad_port = |e: std::num::ParseIntError| format!("bad port in {url:?}: {e}");
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("bad host in {url:?}"))?;
        match tail.strip_prefix(':') {
            Some(p) => (host, p.parse::<u16>().map_err(bad_port)?),
            None => (host, 443),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, p)) => (host, p.parse::<u16>().map_err(bad_port)?),
            None => (authority, 443),
        }
    };
    let mut store = rustls::RootCertStore::empty();
    for ca in roots {
        store
            .add(ca.clone())
            .map_err(|e| format!("caBundle certificate refused: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(host.to_string()).map_err(|e| format!("bad host {host:?}: {e}"))?;
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "an error on the server ({:?}) has prevented the request from succeeding",
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("the response is not JSON: {e}"))
}
