//! Watches: from a resourceVersion, 410 Expired, bookmarks, timeouts, selectors, and kube-rs's
//! watcher and reflector on top of them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use tokio::time::timeout;

use common::{start, start_with};
use ferrolb_e2e_apiserver::ServerConfig;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
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
        ..Default::default()
    }
}

fn rv_of(c: &ConfigMap) -> String {
    c.metadata.resource_version.clone().unwrap()
}

/// Collects (type, name) of watch events until `n` arrived.
async fn take_events(
    stream: impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>>,
    n: usize,
) -> Vec<(String, String)> {
    let events: Vec<_> = timeout(
        Duration::from_secs(10),
        stream.take(n).try_collect::<Vec<_>>(),
    )
    .await
    .expect("events arrive within 10 s")
    .expect("the watch stream has no errors");
    events
        .into_iter()
        .map(|e| match e {
            WatchEvent::Added(o) => ("ADDED".to_string(), o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => ("MODIFIED".to_string(), o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => ("DELETED".to_string(), o.metadata.name.unwrap()),
            WatchEvent::Bookmark(_) => ("BOOKMARK".to_string(), String::new()),
            WatchEvent::Error(s) => ("ERROR".to_string(), s.message.clone()),
        })
        .collect()
}

#[tokio::test]
async fn watch_from_a_resource_version_sees_exactly_the_later_events() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();
    let mark = cms
        .create(&PostParams::default(), &cm("mark", &[]))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("after", &[]))
        .await
        .unwrap();
    cms.patch(
        "before",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    cms.delete("mark", &DeleteParams::default()).await.unwrap();

    let stream = cms
        .watch(&WatchParams::default().disable_bookmarks(), &rv_of(&mark))
        .await
        .unwrap();
    let got = take_events(stream, 3).await;
    assert_eq!(
        got,
        vec![
            ("ADDED".into(), "after".into()),
            ("MODIFIED".into(), "before".into()),
            ("DELETED".into(), "mark".into()),
        ]
    );
}

#[tokio::test]
async fn watch_from_zero_starts_with_every_current_object() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    let stream = cms
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap();
    let got = take_events(stream, 2).await;
    assert_eq!(
        got,
        vec![("ADDED".into(), "a".into()), ("ADDED".into(), "b".into())]
    );
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_gets_an_expired_error_event() {
    let c = start_with(ServerConfig {
        history_limit: 3,
        ..ServerConfig::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &cm("first", &[]))
        .await
        .unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}"), &[]))
            .await
            .unwrap();
    }
    let mut stream = cms
        .watch(&WatchParams::default(), &rv_of(&first))
        .await
        .unwrap()
        .boxed();
    let event = timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Error(status) = event else {
        panic!("expected an ERROR event, got {event:?}");
    };
    assert_eq!(status.code, 410);
    assert_eq!(status.reason, "Expired");
    assert!(
        status.message.starts_with("too old resource version: "),
        "{}",
        status.message
    );
    let end = timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends after the error");
}

#[tokio::test]
async fn watcher_relists_after_410_and_keeps_up() {
    // A selector watch does not see the unrelated changes; with bookmarks off its
    // resourceVersion falls behind the short history, so its next watch gets 410.
    let c = start_with(ServerConfig {
        history_limit: 3,
        ..ServerConfig::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("seen-0", &[("app", "x")]))
        .await
        .unwrap();
    let config = watcher::Config::default()
        .labels("app=x")
        .timeout(1)
        .disable_bookmarks();
    let mut stream = watcher(cms.clone(), config).boxed();

    let writer = {
        let cms = cms.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            for i in 0..10 {
                cms.create(&PostParams::default(), &cm(&format!("noise-{i}"), &[]))
                    .await
                    .unwrap();
            }
        })
    };
    let mut saw_410 = false;
    let mut created_after = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = timeout(deadline - Instant::now(), stream.next())
            .await
            .expect("the watcher recovers within 20 s")
            .expect("the watcher stream never ends");
        match next {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_410 = true,
            Err(other) => panic!("unexpected watcher error: {other:?}"),
            Ok(watcher::Event::InitDone) if saw_410 && !created_after => {
                cms.create(&PostParams::default(), &cm("seen-1", &[("app", "x")]))
                    .await
                    .unwrap();
                created_after = true;
            }
            Ok(watcher::Event::Apply(o)) if o.metadata.name.as_deref() == Some("seen-1") => break,
            Ok(_) => {}
        }
    }
    writer.await.unwrap();
    assert!(saw_410 && created_after);
}

#[tokio::test]
async fn idle_watch_receives_bookmarks_with_the_current_resource_version() {
    let c = start_with(ServerConfig {
        bookmark_interval: Duration::from_millis(200),
        ..ServerConfig::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let a = cms
        .create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let other: Api<ConfigMap> = Api::namespaced(c.client.clone(), "kube-system");
    let later = other
        .create(&PostParams::default(), &cm("elsewhere", &[]))
        .await
        .unwrap();
    let mut stream = cms
        .watch(
            &WatchParams::default().fields("metadata.name=nothing"),
            &rv_of(&a),
        )
        .await
        .unwrap()
        .boxed();
    let event = timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let WatchEvent::Bookmark(b) = event else {
        panic!("expected a BOOKMARK, got {event:?}");
    };
    let bm: u64 = b.metadata.resource_version.parse().unwrap();
    assert!(
        bm >= rv_of(&later).parse::<u64>().unwrap(),
        "bookmarks move the resourceVersion forward"
    );
    assert_eq!(b.types.kind, "ConfigMap");
}

#[tokio::test]
async fn timeout_seconds_ends_the_watch() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let started = Instant::now();
    let stream = cms
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap();
    let rest: Vec<_> = timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("the watch ends");
    assert!(
        rest.iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "{rest:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn selector_watch_turns_label_changes_into_added_and_deleted() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let start_obj = cms
        .create(&PostParams::default(), &cm("s", &[("app", "other")]))
        .await
        .unwrap();
    let stream = cms
        .watch(
            &WatchParams::default().labels("app=web").disable_bookmarks(),
            &rv_of(&start_obj),
        )
        .await
        .unwrap();
    let relabel = |v: &str| json!({"metadata": {"labels": {"app": v}}});
    cms.patch("s", &PatchParams::default(), &Patch::Merge(&relabel("web")))
        .await
        .unwrap();
    cms.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(&relabel("gone")),
    )
    .await
    .unwrap();
    let got = take_events(stream, 3).await;
    assert_eq!(
        got,
        vec![
            ("ADDED".into(), "s".into()),
            ("MODIFIED".into(), "s".into()),
            ("DELETED".into(), "s".into())
        ]
    );
}

#[tokio::test]
async fn streaming_list_sends_initial_events_then_an_end_bookmark() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("one", &[]))
        .await
        .unwrap();
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    loop {
        match timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(o) => seen.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, vec!["one"]);
}

#[tokio::test]
async fn reflector_store_converges_to_the_server_state() {
    let c = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("r{i}"), &[]))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().page_size(7)),
    )
    .applied_objects()
    .for_each(|_| async {});
    let task = tokio::spawn(stream);
    timeout(Duration::from_secs(5), reader.wait_until_ready())
        .await
        .unwrap()
        .unwrap();

    for i in 0..5 {
        cms.delete(&format!("r{i}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    for i in 5..10 {
        let p = json!({"data": {"n": i.to_string()}});
        cms.patch(&format!("r{i}"), &PatchParams::default(), &Patch::Merge(&p))
            .await
            .unwrap();
    }
    cms.create(&PostParams::default(), &cm("late", &[]))
        .await
        .unwrap();

    let want: BTreeMap<String, Option<BTreeMap<String, String>>> = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| (o.metadata.name.unwrap(), o.data))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got: BTreeMap<String, Option<BTreeMap<String, String>>> = reader
            .state()
            .iter()
            .map(|o| (o.metadata.name.clone().unwrap(), o.data.clone()))
            .collect();
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "store did not converge: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}
