//! Watch streams: initial events, changes after a resourceVersion, bookmarks, timeouts, and the
//! 410 Expired ERROR event when the history no longer reaches back far enough (or, after a
//! restore from the state file, reaches back only to the restored resourceVersion).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::kinds::ResourceKind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{Change, ChangeType};
use crate::verbs::{to_view, view_is_identity};

/// What a watch request asked for.
#[derive(Debug)]
pub struct WatchParams {
    /// The kind watched.
    pub kind: Arc<ResourceKind>,
    /// Only this namespace, if set.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// Start after this resourceVersion; `None` (unset or "0") sends the current objects first.
    pub resource_version: Option<u64>,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// When the server ends the watch.
    pub timeout: Duration,
}

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    ty: &'a str,
    object: &'a Value,
}

fn line(ty: &str, object: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(&Event { ty, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

fn bookmark(kind: &ResourceKind, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        &json!({ "kind": kind.kind, "apiVersion": kind.api_version(), "metadata": metadata }),
    )
}

impl WatchParams {
    fn selects(&self, object: &Value) -> bool {
        if self.kind.namespaced
            && let Some(ns) = &self.namespace
            && object["metadata"]["namespace"].as_str() != Some(ns.as_str())
        {
            return false;
        }
        self.labels.matches(object) && self.fields.matches(object)
    }

    fn encode(&self, ty: &str, stored: &Value) -> Bytes {
        if view_is_identity(&self.kind, stored) {
            line(ty, stored)
        } else {
            line(ty, &to_view(&self.kind, stored))
        }
    }

    /// The event a change becomes for this watch; selector watches turn objects that start or
    /// stop matching into ADDED or DELETED, like the real watch cache.
    fn translate(&self, change: &Change) -> Option<Bytes> {
        let now = self.selects(&change.object);
        let ty = match change.kind {
            ChangeType::Added | ChangeType::Deleted => now.then_some(change.kind.as_str()),
            ChangeType::Modified => {
                let was = change.previous.as_ref().is_some_and(|p| self.selects(p));
                match (was, now) {
                    (true, true) => Some("MODIFIED"),
                    (true, false) => Some("DELETED"),
                    (false, true) => Some("ADDED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(self.encode(ty, &change.object))
    }
}

/// Starts a watch and returns its streaming body.
pub fn start(shared: Arc<Shared>, params: WatchParams) -> Result<Body, ApiError> {
    let (initial, cursor, notify) = {
        let mut state = shared.lock();
        let current = state.store.current_rv();
        let coll = state.store.collection(&params.kind.storage);
        let notify = coll.subscribe();
        match params.resource_version {
            Some(rv) if !params.send_initial_events => (Vec::new(), rv, notify),
            _ => {
                let initial: Vec<Arc<Value>> = coll
                    .iter_namespace(
                        params
                            .namespace
                            .as_deref()
                            .filter(|_| params.kind.namespaced),
                    )
                    .filter(|(_, o)| params.selects(o))
                    .map(|(_, o)| o.clone())
                    .collect();
                (initial, current, notify)
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let bookmark_interval = shared.config.bookmark_interval;
    tokio::spawn(run(
        shared,
        params,
        initial,
        cursor,
        notify,
        tx,
        bookmark_interval,
    ));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    Ok(Body::from_stream(stream))
}

enum Drained {
    Lines(Vec<Bytes>),
    Expired(Bytes),
}

fn drain(shared: &Shared, params: &WatchParams, cursor: &mut u64) -> Drained {
    let changes = {
        let state = shared.lock();
        let Some(coll) = state.store.get_collection(&params.kind.storage) else {
            return Drained::Lines(Vec::new());
        };
        match coll.changes_after(*cursor) {
            Ok(changes) => {
                *cursor = (*cursor).max(state.store.current_rv());
                changes
            }
            Err(oldest) => {
                let status =
                    ApiError::expired(format!("too old resource version: {cursor} ({oldest})"));
                return Drained::Expired(line("ERROR", &status.to_status()));
            }
        }
    };
    Drained::Lines(changes.iter().filter_map(|c| params.translate(c)).collect())
}

/// Resolves once the server stops (the borrowed value is dropped here: it must not cross an
/// await of the watch task, which moves between threads).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

async fn run(
    shared: Arc<Shared>,
    params: WatchParams,
    initial: Vec<Arc<Value>>,
    mut cursor: u64,
    mut notify: watch::Receiver<u64>,
    tx: mpsc::Sender<Bytes>,
    bookmark_interval: Duration,
) {
    let deadline = Instant::now() + params.timeout;
    let mut stopping = shared.stopping();
    for obj in &initial {
        if tx.send(params.encode("ADDED", obj)).await.is_err() {
            return;
        }
    }
    drop(initial);
    if params.send_initial_events
        && params.bookmarks
        && tx.send(bookmark(&params.kind, cursor, true)).await.is_err()
    {
        return;
    }
    let mut tick = tokio::time::interval_at(Instant::now() + bookmark_interval, bookmark_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        match drain(&shared, &params, &mut cursor) {
            Drained::Lines(lines) => {
                for l in lines {
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
            }
            Drained::Expired(l) => {
                let _ = tx.send(l).await;
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            // A stopping server ends its watches, as a real one closes them on shutdown.
            () = stopped(&mut stopping) => return,
            changed = notify.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick.tick(), if params.bookmarks => {
                match drain(&shared, &params, &mut cursor) {
                    Drained::Lines(lines) => {
                        for l in lines {
                            if tx.send(l).await.is_err() {
                                return;
                            }
                        }
                    }
                    Drained::Expired(l) => {
                        let _ = tx.send(l).await;
                        return;
                    }
                }
                if tx.send(bookmark(&params.kind, cursor, false)).await.is_err() {
                    return;
                }
            }
        }
    }
}
