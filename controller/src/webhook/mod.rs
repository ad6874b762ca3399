//! The validating admission webhook's shell: HTTPS (rustls) on its own
//! port, each request answered by the pure [`crate::admission::review`]
//! from a snapshot of the controller's watch stores.
//!
//! Nothing is decided here. Until the stores are synced the webhook answers
//! 503, which the API server treats as a failed call (failurePolicy
//! `Ignore`: the change goes through, and the controller still refuses it
//! itself if it is bad).

pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ferrolb_config::crd::Resources;
use k8s_openapi::api::core::v1::Service;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::admission::{self, Cluster, Scope};

/// The path the ValidatingWebhookConfiguration calls.
pub const PATH: &str = "/validate";
/// A TLS handshake that takes longer is dropped (the API server's own
/// timeout for the whole call is a few seconds).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once before new connections wait.
const PENDING_HANDSHAKES: usize = 64;

/// How the webhook is served and registered (the controller's `--webhook-*` flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where HTTPS is served.
    pub addr: SocketAddr,
    /// The ValidatingWebhookConfiguration whose caBundle (and, with `url`, clientConfig) is written.
    pub configuration: String,
    /// The Service in front of the controller (names of the generated certificate).
    pub service: String,
    /// More names and IPs the generated certificate is valid for.
    pub extra_names: Vec<String>,
    /// Register this URL instead of the Service (when the API server cannot reach Services).
    pub url: Option<String>,
    /// Serve this certificate folder (`tls.crt`, `tls.key`, optional `ca.crt`) instead of a generated one.
    pub cert_dir: Option<PathBuf>,
}

impl Options {
    /// The names the generated certificate carries: the Service's in-cluster
    /// DNS names, the URL's host, and the extra names.
    pub fn certificate_names(&self, namespace: &str) -> Vec<String> {
        let mut names = vec![
            format!("{}.{namespace}.svc", self.service),
            format!("{}.{namespace}.svc.cluster.local", self.service),
        ];
        if let Some(host) = self.url.as_deref().and_then(url_host) {
            names.push(host);
        }
        names.extend(self.extra_names.iter().cloned());
        names.dedup();
        names
    }
}

/// The host of an `https://host[:port]/path` URL (brackets of an IPv6 address removed).
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().map(str::to_string);
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    (!host.is_empty()).then(|| host.to_string())
}

/// What the webhook reads from the controller's stores for one request.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Whether the stores are synced (else the webhook answers 503).
    pub synced: bool,
    /// The ConfigMap's `config` text.
    pub configmap: Option<String>,
    /// The metallb.io objects of the controller's namespace.
    pub resources: Resources,
    /// Every Service.
    pub services: Vec<Arc<Service>>,
    /// Whether the controller's namespace is being deleted.
    pub namespace_terminating: bool,
}

/// Takes a [`Snapshot`] of the stores.
pub type Snapshotter = Arc<dyn Fn() -> Snapshot + Send + Sync>;

struct Shared {
    scope: Scope,
    snapshot: Snapshotter,
}

/// Serve the webhook until the process ends.
pub async fn serve(
    opts: &Options,
    identity: &tls::Identity,
    scope: Scope,
    snapshot: Snapshotter,
) -> Result<(), WebhookError> {
    let config = tls::server_config(identity)?;
    let tcp = TcpListener::bind(opts.addr)
        .await
        .map_err(|e| WebhookError::Bind(opts.addr, e))?;
    let listener = TlsListener::spawn(tcp, TlsAcceptor::from(config), opts.addr)?;
    let app = Router::new()
        .route(PATH, post(handle))
        .with_state(Arc::new(Shared { scope, snapshot }));
    tracing::info!(addr = %opts.addr, path = PATH, "admission webhook serving");
    axum::serve(listener, app)
        .await
        .map_err(|e| WebhookError::Serve(opts.addr, e))
}

/// Why the webhook stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// TLS set-up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The port could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The server failed.
    #[error("webhook server on {0} failed: {1}")]
    Serve(SocketAddr, std::io::Error),
}

async fn handle(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let snap = (shared.snapshot)();
    if !snap.synced {
        return (StatusCode::SERVICE_UNAVAILABLE, "not synced yet").into_response();
    }
    let services: Vec<&Service> = snap.services.iter().map(AsRef::as_ref).collect();
    let cluster = Cluster {
        configmap: snap.configmap.as_deref(),
        resources: &snap.resources,
        services: &services,
        namespace_terminating: snap.namespace_terminating,
    };
    match admission::review(&body, &cluster, &shared.scope) {
        Ok(answer) => {
            if answer["response"]["allowed"] == false {
                tracing::info!(
                    uid = %answer["response"]["uid"],
                    reason = %answer["response"]["status"]["message"].as_str().unwrap_or_default(),
                    "admission refused"
                );
            }
            (
                [(header::CONTENT_TYPE, "application/json")],
                answer.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "unreadable admission request");
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
    }
}

/// TLS connections for `axum::serve`: handshakes run in their own tasks,
/// with a timeout, so a slow client never holds up the next one.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn spawn(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        addr: SocketAddr,
    ) -> Result<Self, WebhookError> {
        let local = tcp.local_addr().map_err(|e| WebhookError::Bind(addr, e))?;
        let (tx, rx) = mpsc::channel(PENDING_HANDSHAKES);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "webhook TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends; should it, serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    // Test code: a panic is how a failure is reported.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn certificate_names_cover_the_service_the_url_host_and_extra_names() {
        let cases = [
            (None, vec![], vec!["w.ns.svc", "w.ns.svc.cluster.local"]),
            (
                Some("https://192.168.4.2:9443/validate"),
                vec!["x.example"],
                vec![
                    "w.ns.svc",
                    "w.ns.svc.cluster.local",
                    "192.168.4.2",
                    "x.example",
                ],
            ),
            (
                Some("https://[fd00:4::2]:9443/validate"),
                vec![],
                vec!["w.ns.svc", "w.ns.svc.cluster.local", "fd00:4::2"],
            ),
        ];
        for (url, extra, expected) in cases {
            let opts = Options {
                addr: "0.0.0.0:9443".parse().unwrap(),
                configuration: "c".into(),
                service: "w".into(),
                extra_names: extra.into_iter().map(String::from).collect(),
                url: url.map(String::from),
                cert_dir: None,
            };
            assert_eq!(opts.certificate_names("ns"), expected, "{url:?}");
        }
    }
}
