//! `metadata.generateName` is validated like the real ValidateObjectMeta: with the kind's name
//! rule in prefix mode (a trailing '-' masked), on every kind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Service};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, PostParams};
use serde_json::json;

use common::{api_error, start};

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn event(generate_name: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"generateName": generate_name},
        "involvedObject": {"kind": "Service", "name": "s1", "namespace": "default"},
        "reason": "Test", "message": "m", "type": "Normal"
    }))
    .unwrap()
}

/// conformance: the real kube-apiserver 1.24 refuses an Event whose generateName `s1.` is not
/// a DNS-1123 subdomain prefix with 422 Invalid, naming the generated name in the message and
/// `metadata.generateName: Invalid value: "s1."` as the cause; `s1-` is fine (the trailing dash
/// is masked).
#[tokio::test]
async fn generate_name_with_a_trailing_dot_is_invalid_and_a_trailing_dash_is_not() {
    let c = start().await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let err = api_error(events.create(&PostParams::default(), &event("s1.")).await);
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let details = err.details.unwrap();
    assert!(
        details.name.starts_with("s1.") && details.name.len() == 8,
        "{}",
        details.name
    );
    assert_eq!(details.kind, "Event");
    assert_eq!(
        err.message,
        format!(
            "Event \"{}\" is invalid: metadata.generateName: Invalid value: \"s1.\": {SUBDOMAIN}",
            details.name
        )
    );
    assert_eq!(details.causes.len(), 1);
    assert_eq!(details.causes[0].field, "metadata.generateName");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");
    assert_eq!(
        details.causes[0].message,
        format!("Invalid value: \"s1.\": {SUBDOMAIN}")
    );

    let created = events
        .create(&PostParams::default(), &event("s1-"))
        .await
        .unwrap();
    assert!(created.metadata.name.unwrap().starts_with("s1-"));
}

/// conformance: the real kube-apiserver 1.24 checks generateName with each kind's own name rule
/// (ConfigMaps: DNS-1123 subdomain, Namespaces: DNS-1123 label, Services: DNS-1035 label,
/// RBAC kinds: path segment), on create.
#[tokio::test]
async fn generate_name_follows_each_kinds_name_rule() {
    let c = start().await;
    let post = PostParams::default();
    let cm = |g: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"generateName": g}})).unwrap()
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let services: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let roles: Api<ClusterRole> = Api::all(c.client.clone());
    let ns = |g: &str| -> Namespace {
        serde_json::from_value(json!({"metadata": {"generateName": g}})).unwrap()
    };
    let svc = |g: &str| -> Service {
        serde_json::from_value(
            json!({"metadata": {"generateName": g}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap()
    };
    let role = |g: &str| -> ClusterRole {
        serde_json::from_value(json!({"metadata": {"generateName": g}})).unwrap()
    };
    // (what, outcome: None = created, Some(message fragment) = 422 with it)
    let cases: Vec<(&str, Result<(), kube::Error>, Option<&str>)> = vec![
        (
            "configmap a.b-",
            configmaps.create(&post, &cm("a.b-")).await.map(drop),
            None,
        ),
        (
            "configmap a_",
            configmaps.create(&post, &cm("a_")).await.map(drop),
            Some("RFC 1123 subdomain"),
        ),
        (
            "namespace team-",
            namespaces.create(&post, &ns("team-")).await.map(drop),
            None,
        ),
        (
            "namespace team.",
            namespaces.create(&post, &ns("team.")).await.map(drop),
            Some("RFC 1123 label"),
        ),
        (
            "service web-",
            services.create(&post, &svc("web-")).await.map(drop),
            None,
        ),
        (
            "service 1web-",
            services.create(&post, &svc("1web-")).await.map(drop),
            Some("DNS-1035 label"),
        ),
        (
            "clusterrole metallb-system:",
            roles
                .create(&post, &role("metallb-system:"))
                .await
                .map(drop),
            None,
        ),
        (
            "clusterrole a/",
            roles.create(&post, &role("a/")).await.map(drop),
            Some("may not contain '/'"),
        ),
    ];
    for (what, result, refused) in cases {
        match refused {
            None => result.unwrap_or_else(|e| panic!("{what}: {e}")),
            Some(fragment) => {
                let err = api_error(result);
                assert_eq!(err.code, 422, "{what}");
                assert!(
                    err.message
                        .contains("metadata.generateName: Invalid value:")
                        && err.message.contains(fragment),
                    "{what}: {}",
                    err.message
                );
            }
        }
    }
}
