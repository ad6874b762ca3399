//! The server: shared state, configuration, serving on a listener, and stopping cleanly with the
//! state saved to the state file.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::http;
use crate::snapshot::{self, SnapshotError};
use crate::verbs::State;

/// How long a stopping server waits for open requests before saving anyway. Watches end at once;
/// every other request is answered in microseconds, so this only bounds a stuck client.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Tunables of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Changes kept per storage for watches from a resourceVersion; older ones answer 410.
    pub history_limit: usize,
    /// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// The longest a watch lasts when the client gives no `timeoutSeconds`.
    pub max_watch_timeout: Duration,
    /// Where the objects are loaded from at start (if the file exists) and saved to on a clean
    /// stop; `None` keeps everything in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            history_limit: 20_000,
            bookmark_interval: Duration::from_secs(30),
            max_watch_timeout: Duration::from_secs(1800),
            state_file: None,
        }
    }
}

/// Why the server could not start, serve, or save its state.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The state file could not be loaded or written.
    #[error(transparent)]
    State(#[from] SnapshotError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Reading the bound address or serving failed.
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
    /// The background task of a [`RunningServer`] panicked or was cancelled.
    #[error("the server task ended abnormally: {0}")]
    Task(tokio::task::JoinError),
}

/// State shared by all requests.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// The configuration the server started with.
    pub config: ServerConfig,
    /// Set once the server stops, to end the watches (they would otherwise hold it open).
    stopping: watch::Sender<bool>,
}

impl Shared {
    /// A fresh server state.
    pub fn new(config: ServerConfig) -> Self {
        let state = State::new(config.history_limit);
        Self::with_state(config, state)
    }

    fn with_state(config: ServerConfig, state: State) -> Self {
        Self {
            state: Mutex::new(state),
            config,
            stopping: watch::Sender::new(false),
        }
    }

    /// Locks the state; a panic elsewhere does not make the state unusable for tests.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that turns true when the server stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

/// The axum router serving the whole API.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(http::handle).with_state(shared)
}

/// A server with its state ready (loaded from the state file, if there is one), not yet serving.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// Prepares a server: loads `config.state_file` if it exists, otherwise starts with a fresh
    /// cluster. An existing file that cannot be read or decoded is an error, never an empty start.
    pub fn new(config: ServerConfig) -> Result<Self, ServerError> {
        let loaded = match &config.state_file {
            Some(path) => {
                let loaded = snapshot::load(path, config.history_limit)?;
                match &loaded {
                    Some(state) => tracing::info!(
                        path = %path.display(),
                        resource_version = state.store.current_rv(),
                        "state restored"
                    ),
                    None => {
                        tracing::info!(path = %path.display(), "no state file yet, starting empty")
                    }
                }
                loaded
            }
            None => None,
        };
        let shared = match loaded {
            Some(state) => Shared::with_state(config, state),
            None => Shared::new(config),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// Writes the state file now (nothing without one), atomically.
    pub fn save(&self) -> Result<(), ServerError> {
        let Some(path) = &self.shared.config.state_file else {
            return Ok(());
        };
        let bytes = {
            let state = self.shared.lock();
            let bytes = snapshot::encode(&state).map_err(|e| SnapshotError::Write {
                path: path.clone(),
                error: std::io::Error::other(e),
            })?;
            tracing::info!(
                path = %path.display(),
                resource_version = state.store.current_rv(),
                bytes = bytes.len(),
                "state saved"
            );
            bytes
        };
        snapshot::store(path, &bytes)?;
        Ok(())
    }

    /// Serves on `listener` until `shutdown` resolves; then stops accepting, ends the watches,
    /// lets open requests finish, and saves the state file.
    pub async fn serve_until(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let shared = self.shared.clone();
        let signal = async move {
            shutdown.await;
            shared.stopping.send_replace(true);
        };
        let serving = axum::serve(listener, router(self.shared.clone()))
            .with_graceful_shutdown(signal)
            .into_future();
        let mut stopping = self.shared.stopping();
        let drained = async move {
            // An error means the sender is gone, which cannot happen while `self` lives.
            let _ = stopping.wait_for(|stop| *stop).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        };
        tokio::select! {
            served = serving => served.map_err(ServerError::Serve)?,
            () = drained => tracing::warn!(
                timeout = ?DRAIN_TIMEOUT,
                "requests still open after the drain timeout; saving the state anyway"
            ),
        }
        self.save()
    }
}

/// Serves the API on `listener` until the task is dropped or fails (the state file, if any, is
/// loaded but never saved: use [`Server::serve_until`] or [`spawn`] and
/// [`RunningServer::shutdown`] for that).
pub async fn serve(listener: TcpListener, config: ServerConfig) -> Result<(), ServerError> {
    Server::new(config)?
        .serve_until(listener, std::future::pending())
        .await
}

/// A server running on a background task; dropping it stops the server without saving,
/// [`RunningServer::shutdown`] stops it cleanly and saves the state file.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl RunningServer {
    /// `http://ADDR`, the cluster URL for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server cleanly: no new connections, watches ended, open requests answered,
    /// the state file written. The address is free once this returns.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(ServerError::Task)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves on a background task; the state file, if any,
/// is loaded before this returns.
pub async fn spawn(addr: SocketAddr, config: ServerConfig) -> Result<RunningServer, ServerError> {
    let server = Server::new(config)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| ServerError::Bind { addr, error })?;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve_until(listener, async move {
        // A dropped sender also stops the server (the task is aborted right after anyway).
        let _ = stopped.await;
    }));
    Ok(RunningServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}
