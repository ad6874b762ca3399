//! Starting the server in-process and connecting a real kube-rs client to it.
#![allow(dead_code)] // Each test file uses a different part of this module.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly.

use std::time::Duration;

use ferrolb_e2e_apiserver::{RunningServer, ServerConfig, spawn};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running server and a client pointed at it.
pub struct Cluster {
    pub server: RunningServer,
    pub client: Client,
}

/// Starts a server with the default configuration.
pub async fn start() -> Cluster {
    start_with(ServerConfig::default()).await
}

/// Starts a server with a given configuration on 127.0.0.1, port chosen by the kernel.
pub async fn start_with(config: ServerConfig) -> Cluster {
    let server = spawn("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the test API server must bind 127.0.0.1:0");
    let client = client_for(&server.url());
    Cluster { server, client }
}

/// A client for a plain-HTTP cluster URL.
pub fn client_for(url: &str) -> Client {
    let mut config = Config::new(url.parse().expect("a valid URL"));
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(300));
    Client::try_from(config).expect("a kube client for the test server")
}

/// The Status of a failed call, or a panic saying the call succeeded.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

/// What a reflector saw, reduced to what restart tests check.
#[derive(Debug, PartialEq)]
pub enum Seen {
    /// A (re)list started.
    Init,
    /// A (re)list finished.
    InitDone,
    /// An object was added or changed (by name).
    Apply(String),
    /// An object was deleted (by name).
    Delete(String),
    /// The watch got 410 Expired.
    Expired,
    /// Any other error, such as the server being down.
    Unreachable,
}

/// A ConfigMap reflector with kube-rs's default backoff on a background task: its store, what
/// it sees, and the task.
pub fn reflect(
    api: Api<ConfigMap>,
) -> (
    Store<ConfigMap>,
    mpsc::UnboundedReceiver<Seen>,
    JoinHandle<()>,
) {
    let (reader, writer) = reflector::store();
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    );
    let task = tokio::spawn(stream.for_each(move |event| {
        let seen = match event {
            Ok(watcher::Event::Init) => Some(Seen::Init),
            Ok(watcher::Event::InitDone) => Some(Seen::InitDone),
            Ok(watcher::Event::Apply(o)) => Some(Seen::Apply(o.metadata.name.unwrap())),
            Ok(watcher::Event::Delete(o)) => Some(Seen::Delete(o.metadata.name.unwrap())),
            Ok(watcher::Event::InitApply(_)) => None,
            Err(watcher::Error::WatchError(s)) if s.code == 410 => Some(Seen::Expired),
            Err(_) => Some(Seen::Unreachable),
        };
        if let Some(seen) = seen {
            let _ = tx.send(seen);
        }
        async {}
    }));
    (reader, rx, task)
}

/// The next thing a reflector saw, within 30 s.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the reflector reports within 30 s")
        .expect("the reflector task runs")
}

/// Waits for a reflector that lost its server to get 410 Expired and relist; panics on
/// anything else (a resumed watch would have skipped the relist).
pub async fn expect_expired_then_relist(rx: &mut mpsc::UnboundedReceiver<Seen>) {
    let mut saw_expired = false;
    loop {
        match next(rx).await {
            Seen::Expired => saw_expired = true,
            Seen::Unreachable => {}
            Seen::Init if saw_expired => break,
            other => panic!("unexpected before the relist: {other:?}"),
        }
    }
    assert_eq!(next(rx).await, Seen::InitDone);
}
