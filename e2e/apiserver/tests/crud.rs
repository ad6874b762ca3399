//! get / list / create / update / delete through a real kube-rs client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use common::{api_error, start};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "key".to_string(),
            format!("value-of-{name}"),
        )])),
        ..Default::default()
    }
}

#[tokio::test]
async fn get_returns_what_create_stored_with_server_metadata() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let got = cms.get("a").await.unwrap();
    assert_eq!(got.data, created.data);
    let md = &got.metadata;
    assert_eq!(md.namespace.as_deref(), Some("default"));
    assert!(
        md.uid.as_ref().is_some_and(|u| u.len() == 36),
        "uid {:?}",
        md.uid
    );
    assert!(md.creation_timestamp.is_some());
    let rv: u64 = md.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv > 0);
}

#[tokio::test]
async fn list_filters_by_label_selector() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    for (name, labels) in [
        ("web-1", vec![("app", "web"), ("tier", "front")]),
        ("web-2", vec![("app", "web")]),
        ("db-1", vec![("app", "db"), ("tier", "back")]),
        ("plain", vec![]),
    ] {
        cms.create(&PostParams::default(), &config_map(name, &labels))
            .await
            .unwrap();
    }
    let cases: &[(&str, &[&str])] = &[
        ("app=web", &["web-1", "web-2"]),
        ("app==db", &["db-1"]),
        ("app!=web", &["db-1", "plain"]),
        ("app in (web,db)", &["db-1", "web-1", "web-2"]),
        ("app notin (web)", &["db-1", "plain"]),
        ("tier", &["db-1", "web-1"]),
        ("!tier", &["plain", "web-2"]),
        ("app=web,tier=front", &["web-1"]),
    ];
    for (selector, want) in cases {
        let got: Vec<String> = cms
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|cm| cm.metadata.name.unwrap())
            .collect();
        assert_eq!(&got, want, "selector {selector}");
    }
}

#[tokio::test]
async fn list_filters_by_field_selector_on_name_and_namespace() {
    let c = start().await;
    let default: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let system: Api<ConfigMap> = Api::namespaced(c.client.clone(), "kube-system");
    default
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap();
    default
        .create(&PostParams::default(), &config_map("y", &[]))
        .await
        .unwrap();
    system
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap();
    let all: Api<ConfigMap> = Api::all(c.client.clone());
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("metadata.name=x", &[("default", "x"), ("kube-system", "x")]),
        (
            "metadata.namespace=default",
            &[("default", "x"), ("default", "y")],
        ),
        (
            "metadata.name=x,metadata.namespace!=default",
            &[("kube-system", "x")],
        ),
    ];
    for (selector, want) in cases {
        let got: Vec<(String, String)> = all
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|cm| (cm.metadata.namespace.unwrap(), cm.metadata.name.unwrap()))
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "selector {selector}");
    }
    let err = api_error(all.list(&ListParams::default().fields("data.key=1")).await);
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
}

/// Pages through `api` three objects at a time: the names in order, the
/// number of pages, and the `remainingItemCount` of each page.
async fn pages(
    api: &Api<ConfigMap>,
    selector: Option<&str>,
) -> (Vec<String>, usize, Vec<Option<i64>>) {
    let mut names = Vec::new();
    let mut remaining = Vec::new();
    let mut token: Option<String> = None;
    let mut count = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(s) = selector {
            lp = lp.labels(s);
        }
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        count += 1;
        assert!(page.items.len() <= 3);
        names.extend(page.items.into_iter().map(|cm| {
            format!(
                "{}/{}",
                cm.metadata.namespace.unwrap(),
                cm.metadata.name.unwrap()
            )
        }));
        remaining.push(page.metadata.remaining_item_count);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    (names, count, remaining)
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_cover_every_object_once() {
    let c = start().await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    // Namespaces sorting before and after "default", so that a namespaced
    // page must neither start in nor run into its neighbours.
    for ns in ["aaa", "zzz"] {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        nss.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    for ns in ["aaa", "default", "zzz"] {
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), ns);
        for i in 0..7 {
            let labels: &[(&str, &str)] = if i % 2 == 0 { &[("even", "yes")] } else { &[] };
            cms.create(
                &PostParams::default(),
                &config_map(&format!("cm-{i}"), labels),
            )
            .await
            .unwrap();
        }
    }
    let in_ns = |ns: &str, only_even: bool| -> Vec<String> {
        (0..7)
            .filter(|i| !only_even || i % 2 == 0)
            .map(|i| format!("{ns}/cm-{i}"))
            .collect()
    };
    let all = |only_even: bool| -> Vec<String> {
        ["aaa", "default", "zzz"]
            .iter()
            .flat_map(|ns| in_ns(ns, only_even))
            .collect()
    };
    // (rule, api, selector, names wanted, pages wanted, remainingItemCount wanted)
    type Case<'a> = (
        &'a str,
        Api<ConfigMap>,
        Option<&'a str>,
        Vec<String>,
        usize,
        Vec<Option<i64>>,
    );
    let cases: Vec<Case> = vec![
        (
            "a_namespace_is_paged_without_its_neighbours",
            Api::namespaced(c.client.clone(), "default"),
            None,
            in_ns("default", false),
            3,
            vec![Some(4), Some(1), None],
        ),
        (
            "the_first_namespace_is_paged_without_the_next",
            Api::namespaced(c.client.clone(), "aaa"),
            None,
            in_ns("aaa", false),
            3,
            vec![Some(4), Some(1), None],
        ),
        (
            "all_namespaces_are_paged_in_key_order",
            Api::all(c.client.clone()),
            None,
            all(false),
            7,
            vec![
                Some(18),
                Some(15),
                Some(12),
                Some(9),
                Some(6),
                Some(3),
                None,
            ],
        ),
        (
            "a_selective_list_pages_the_matches_without_a_count",
            Api::namespaced(c.client.clone(), "default"),
            Some("even=yes"),
            in_ns("default", true),
            2,
            vec![None, None],
        ),
        (
            "a_selective_list_over_all_namespaces",
            Api::all(c.client.clone()),
            Some("even=yes"),
            all(true),
            4,
            vec![None, None, None, None],
        ),
    ];
    for (rule, api, selector, names, page_count, remaining) in cases {
        let got = pages(&api, selector).await;
        assert_eq!(got, (names, page_count, remaining), "{rule}");
    }
}

#[tokio::test]
async fn list_carries_the_current_global_resource_version() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let nss: Api<Namespace> = Api::all(c.client.clone());
    let a = cms
        .create(&PostParams::default(), &config_map("a", &[]))
        .await
        .unwrap();
    let ns = nss
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("extra".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let rv = |m: &ObjectMeta| {
        m.resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&ns.metadata) > rv(&a.metadata),
        "one counter across resources"
    );
    let list = cms.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert_eq!(
        list_rv,
        rv(&ns.metadata),
        "a list reports the newest revision of the whole store"
    );
}

#[tokio::test]
async fn create_with_generate_name_appends_a_random_suffix() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let mut cm = config_map("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let a = cms.create(&PostParams::default(), &cm).await.unwrap();
    let b = cms.create(&PostParams::default(), &cm).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && a.len() == "gen-".len() + 5, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn create_of_an_existing_name_is_already_exists() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("dup", &[]))
        .await
        .unwrap();
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("dup", &[]))
            .await,
    );
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "AlreadyExists");
    assert_eq!(err.message, "configmaps \"dup\" already exists");
    let details = err.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("dup", "configmaps")
    );
}

#[tokio::test]
async fn create_in_a_missing_namespace_is_not_found() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "nowhere");
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("a", &[]))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn create_with_an_invalid_name_is_invalid() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let err = api_error(
        cms.create(&PostParams::default(), &config_map("Not_Valid", &[]))
            .await,
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message
            .starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn update_with_a_stale_resource_version_is_conflict_and_a_fresh_one_succeeds() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &config_map("cc", &[]))
        .await
        .unwrap();
    let mut a = first.clone();
    a.data = Some(BTreeMap::from([("key".to_string(), "a".to_string())]));
    let after_a = cms.replace("cc", &PostParams::default(), &a).await.unwrap();

    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("key".to_string(), "stale".to_string())]));
    let err = api_error(cms.replace("cc", &PostParams::default(), &stale).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on configmaps \"cc\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let mut fresh = after_a.clone();
    fresh.data = Some(BTreeMap::from([("key".to_string(), "fresh".to_string())]));
    let after = cms
        .replace("cc", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(after.data.unwrap()["key"], "fresh");
}

#[tokio::test]
async fn update_that_changes_nothing_keeps_the_resource_version() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &config_map("same", &[]))
        .await
        .unwrap();
    let again = cms
        .replace("same", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        first.metadata.resource_version
    );
}

#[tokio::test]
async fn delete_returns_the_object_and_then_get_is_not_found() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("gone", &[]))
        .await
        .unwrap();
    let deleted = cms.delete("gone", &DeleteParams::default()).await.unwrap();
    let obj = deleted.left().expect("the deleted object is returned");
    assert_eq!(obj.metadata.name.as_deref(), Some("gone"));
    let err = api_error(cms.get("gone").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"gone\" not found");
    let err = api_error(cms.delete("gone", &DeleteParams::default()).await);
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn delete_with_finalizers_marks_the_object_until_they_are_removed() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let mut cm = config_map("fin", &[]);
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = cms.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    cms.patch("fin", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("fin").await).code, 404);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_what_it_holds() {
    let c = start().await;
    let nss: Api<Namespace> = Api::all(c.client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("team".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = nss.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "team");
    cms.create(&PostParams::default(), &config_map("inside", &[]))
        .await
        .unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("inside").await).code, 404);
    assert_eq!(api_error(nss.get("team").await).code, 404);
}
