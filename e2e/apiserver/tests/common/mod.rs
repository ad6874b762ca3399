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

/// A client that authenticates with a bearer token (a service account's, from TokenRequest).
pub fn client_with_token(url: &str, token: &str) -> Client {
    let mut config = Config::new(url.parse().expect("a valid URL"));
    config.default_namespace = "default".into();
    config.read_timeout = Some(Duration::from_secs(300));
    config.headers.push((
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
    ));
    Client::try_from(config).expect("a kube client for the test server")
}

/// Creates the ServiceAccount `ns/name` (if missing) and returns a token for it.
pub async fn service_account_token(admin: &Client, ns: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    match accounts
        .create(&kube::api::PostParams::default(), &account)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating the ServiceAccount {ns}/{name}: {e}"),
    }
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"audiences": []}})).unwrap();
    accounts
        .create_token_request(name, &kube::api::PostParams::default(), &request)
        .await
        .expect("a TokenRequest for an existing ServiceAccount succeeds")
        .status
        .expect("a TokenRequest answer has a status")
        .token
        .expect("a TokenRequest answer has a token")
}

/// Sends a raw request with `client` and returns the status code and the JSON body.
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = client.send(req).await.expect("the server answers");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).expect("a JSON body"))
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
