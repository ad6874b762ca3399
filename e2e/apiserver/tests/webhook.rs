//! Validating admission webhooks, called the way kube-apiserver 1.24 calls them (checked against
//! its source, `apiserver/pkg/admission/plugin/webhook`, and ferrolb's lab on the real server):
//! which writes reach a webhook, the AdmissionReview it gets, the Status a denial becomes,
//! failurePolicy, timeoutSeconds and caBundle trust. Each test is a conformance test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{api_error, raw, start};

/// What the test webhook answers: the `response` fields besides uid (or a whole body), and a delay.
#[derive(Clone)]
enum Answer {
    Allow,
    Deny(Value),
    WrongUid,
    Slow(Duration),
}

/// A test webhook on 127.0.0.1 over TLS, recording every AdmissionReview it gets.
struct Webhook {
    addr: SocketAddr,
    ca_pem: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    answer: Arc<Mutex<Answer>>,
}

fn certificate(names: &[&str]) -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
    (
        ca_cert.pem(),
        vec![leaf.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
}

impl Webhook {
    async fn start() -> Self {
        let (ca_pem, chain, key) = certificate(&["127.0.0.1"]);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer::Allow));
        let (s, a) = (seen.clone(), answer.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, answer) = (acceptor.clone(), s.clone(), a.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (target, body) = read_request(&mut tls).await;
                    let review: Value = serde_json::from_slice(&body).unwrap();
                    seen.lock().unwrap().push((target, review.clone()));
                    let uid = review["request"]["uid"].clone();
                    let choice = answer.lock().unwrap().clone();
                    let response = match choice {
                        Answer::Allow => json!({"uid": uid, "allowed": true}),
                        Answer::Deny(status) => {
                            json!({"uid": uid, "allowed": false, "status": status})
                        }
                        Answer::WrongUid => json!({"uid": "someone-else", "allowed": true}),
                        Answer::Slow(d) => {
                            tokio::time::sleep(d).await;
                            json!({"uid": uid, "allowed": true})
                        }
                    };
                    let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}).to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        out.len()
                    );
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(out.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            ca_pem,
            seen,
            answer,
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }

    fn url(&self) -> String {
        format!("https://{}/validate", self.addr)
    }
}

/// The request line's target and the body of one HTTP/1.1 request.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before the headers ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let target = head.split(' ').nth(1).unwrap().to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a content-length");
    while buf.len() < end + length {
        let n = s.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    (target, buf[end..end + length].to_vec())
}

/// A configuration with one webhook on ConfigMaps of namespaces labelled `webhook=on`.
fn configuration(name: &str, client_config: Value, policy: &str, timeout: u64) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": format!("{name}.example.io"),
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": policy, "timeoutSeconds": timeout,
            "clientConfig": client_config,
            "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["hooked"]}]},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
                       "operations": ["CREATE", "UPDATE", "DELETE"], "scope": "Namespaced"}],
        }]
    })
}

fn trusted(hook: &Webhook) -> Value {
    json!({"url": hook.url(), "caBundle": base64::engine::general_purpose::STANDARD.encode(&hook.ca_pem)})
}

async fn register(client: &Client, config: Value) {
    let (code, body) = raw(
        client,
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        "application/json",
        &config.to_string(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

async fn namespace(client: &Client, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let (code, out) = raw(
        client,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        &body.to_string(),
    )
    .await;
    assert_eq!(code, 201, "{out}");
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

async fn create_raw(client: &Client, ns: &str, name: &str) -> (u16, Value) {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    raw(
        client,
        "POST",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        "application/json",
        &body.to_string(),
    )
    .await
}

/// conformance: a denial is answered with the webhook's code and reason and the message
/// `admission webhook "<name>" denied the request: <message>`; nothing is stored.
#[tokio::test]
async fn a_denial_is_the_status_the_real_server_answers() {
    let c = start().await;
    let hook = Webhook::start().await;
    namespace(&c.client, "hooked").await;
    register(&c.client, configuration("deny", trusted(&hook), "Fail", 5)).await;
    let cases = [
        (
            json!({"code": 422, "reason": "Invalid", "message": "pool a: bad"}),
            422,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "admission webhook \"deny.example.io\" denied the request: pool a: bad", "reason": "Invalid", "code": 422}),
        ),
        // No code (or one below 400): 400; no message: the reason; neither: "without explanation".
        (
            json!({"reason": "Forbidden", "code": 200}),
            400,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "admission webhook \"deny.example.io\" denied the request: Forbidden", "reason": "Forbidden", "code": 400}),
        ),
        (
            json!({}),
            400,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "admission webhook \"deny.example.io\" denied the request without explanation", "code": 400}),
        ),
    ];
    for (status, code, expected) in cases {
        hook.set(Answer::Deny(status.clone()));
        let (got_code, body) = create_raw(&c.client, "hooked", "cm").await;
        assert_eq!((got_code, &body), (code, &expected), "{status}");
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "hooked");
        assert_eq!(
            api_error(cms.get("cm").await).code,
            404,
            "a refused object is not stored"
        );
    }
}

/// conformance: the AdmissionReview v1 request: uid, kind, resource, name, namespace,
/// operation, object/oldObject (null where absent), userInfo, dryRun, options, and the
/// `?timeout=Ns` query the real server adds.
#[tokio::test]
async fn the_review_names_the_object_the_operation_and_the_user() {
    let c = start().await;
    let hook = Webhook::start().await;
    namespace(&c.client, "hooked").await;
    register(&c.client, configuration("look", trusted(&hook), "Fail", 7)).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "hooked");
    cms.create(&PostParams::default(), &configmap("cm"))
        .await
        .unwrap();
    cms.patch(
        "cm",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &configmap("dry"),
    )
    .await
    .unwrap();
    cms.delete("cm", &DeleteParams::default()).await.unwrap();
    let seen = hook.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (target, review) in &seen {
        assert_eq!(target, "/validate?timeout=7s");
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        let r = &review["request"];
        assert!(r["uid"].as_str().is_some_and(|u| !u.is_empty()), "{r}");
        assert_eq!(
            r["kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(
            r["resource"],
            json!({"group": "", "version": "v1", "resource": "configmaps"})
        );
        assert_eq!(r["requestKind"], r["kind"]);
        assert_eq!(r["namespace"], "hooked");
        assert_eq!(r["userInfo"]["username"], "lab-admin");
    }
    let ops: Vec<(&str, &str, bool, bool, bool)> = seen
        .iter()
        .map(|(_, v)| {
            let r = &v["request"];
            (
                r["operation"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                r["object"].is_object(),
                r["oldObject"].is_object(),
                r["dryRun"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("CREATE", "cm", true, false, false),
            ("UPDATE", "cm", true, true, false),
            ("CREATE", "dry", true, false, true),
            ("DELETE", "cm", false, true, false),
        ]
    );
    let update = &seen[1].1["request"];
    assert_eq!(update["object"]["data"]["k"], "w");
    assert_eq!(update["oldObject"]["data"]["k"], "v");
    assert_eq!(update["options"]["kind"], "UpdateOptions");
    assert!(
        seen[0].1["request"]["oldObject"].is_null()
            && seen[0].1["request"].get("oldObject").is_some()
    );
}

/// conformance: rules (operation, group, resource) and the namespaceSelector on the namespace's
/// `kubernetes.io/metadata.name` label decide which writes reach the webhook.
#[tokio::test]
async fn only_writes_the_rules_and_selectors_match_reach_the_webhook() {
    let c = start().await;
    let hook = Webhook::start().await;
    namespace(&c.client, "hooked").await;
    namespace(&c.client, "other").await;
    hook.set(Answer::Deny(json!({"message": "no"})));
    let mut config = configuration("pick", trusted(&hook), "Fail", 5);
    config["webhooks"][0]["rules"][0]["operations"] = json!(["CREATE"]);
    register(&c.client, config).await;
    // Another namespace, another resource, an operation not listed: not called.
    assert_eq!(create_raw(&c.client, "other", "cm").await.0, 201);
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    let (code, _) = raw(
        &c.client,
        "POST",
        "/api/v1/namespaces/hooked/secrets",
        "application/json",
        &secret.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    assert!(hook.seen().is_empty(), "{:?}", hook.seen());
    // The matching write is refused.
    assert_eq!(create_raw(&c.client, "hooked", "cm").await.0, 400);
    assert_eq!(hook.seen().len(), 1);
}

/// conformance: a webhook that cannot be called (nothing listens, an untrusted certificate, a
/// wrong response uid, too slow for timeoutSeconds) fails the write under failurePolicy Fail
/// with a 500 InternalError `failed calling webhook "<name>": ...`, and is skipped under Ignore.
#[tokio::test]
async fn failure_policy_decides_what_a_failed_call_does() {
    let c = start().await;
    let hook = Webhook::start().await;
    namespace(&c.client, "hooked").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (other_ca, _, _) = certificate(&["127.0.0.1"]);
    let untrusted = json!({"url": hook.url(), "caBundle": base64::engine::general_purpose::STANDARD.encode(other_ca)});
    let cases: Vec<(&str, Value, Answer, &str)> = vec![
        (
            "closed",
            json!({"url": format!("https://{closed}/validate")}),
            Answer::Allow,
            "failed to call webhook: Post \"https://",
        ),
        (
            "untrusted",
            untrusted,
            Answer::Allow,
            "failed to call webhook: Post \"https://",
        ),
        (
            "uid",
            trusted(&hook),
            Answer::WrongUid,
            "received invalid webhook response: expected response.uid=",
        ),
        (
            "slow",
            trusted(&hook),
            Answer::Slow(Duration::from_secs(4)),
            "context deadline exceeded",
        ),
        (
            "service",
            json!({"service": {"name": "svc", "namespace": "hooked", "path": "/validate"}}),
            Answer::Allow,
            "failed to call webhook: Post \"https://svc.hooked.svc:443/validate?timeout=1s\": service \"svc\" not found",
        ),
        // The real server dials the Service's cluster IP, out of reach in the lab.
        (
            "clusterip",
            json!({"service": {"name": "websvc", "namespace": "hooked", "path": "/validate"}}),
            Answer::Allow,
            ":443: connect: network is unreachable",
        ),
    ];
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "websvc"},
        "spec": {"ports": [{"port": 443}]}});
    let (code, out) = raw(
        &c.client,
        "POST",
        "/api/v1/namespaces/hooked/services",
        "application/json",
        &svc.to_string(),
    )
    .await;
    assert_eq!(code, 201, "{out}");
    for (name, client_config, answer, needle) in cases {
        hook.set(answer);
        for policy in ["Fail", "Ignore"] {
            let config_name = format!("{name}-{}", policy.to_lowercase());
            register(
                &c.client,
                configuration(&config_name, client_config.clone(), policy, 1),
            )
            .await;
            let started = Instant::now();
            let (code, body) = create_raw(&c.client, "hooked", &config_name).await;
            if policy == "Ignore" {
                assert_eq!(code, 201, "{name}: {body}");
            } else {
                assert_eq!(
                    (code, body["reason"].as_str()),
                    (500, Some("InternalError")),
                    "{name}: {body}"
                );
                let message = body["message"].as_str().unwrap();
                let prefix = format!(
                    "Internal error occurred: failed calling webhook \"{config_name}.example.io\": "
                );
                assert!(
                    message.starts_with(&prefix) && message.contains(needle),
                    "{name}: {message}"
                );
                assert_eq!(
                    body["details"]["causes"][0]["message"],
                    message.trim_start_matches("Internal error occurred: ")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{name}: timeoutSeconds 1 was not kept"
            );
            let (del, _) = raw(&c.client, "DELETE", &format!("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{config_name}"), "application/json", "").await;
            assert_eq!(del, 200);
        }
    }
}
