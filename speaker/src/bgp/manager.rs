//! [`BgpSpeaker`]: the daemon hands it the desired BGP state on every change;
//! it keeps one session task per peer and tells each only what changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::model::PeerPassword;
use tokio::task::JoinHandle;

use crate::bfd::manager::{BfdManager, DownObserver};
use crate::bfd::session::Config as BfdConfig;
use crate::bgp::message::code;
use crate::bgp::metrics::BgpMetrics;
use crate::bgp::prefixes::{BgpDesired, PeerRoutes};
use crate::bgp::session::{self, SessionHandle, SessionSettings};

/// Passwords of `basic-auth` Secrets named by peers, by (namespace, name).
pub type PeerSecrets = BTreeMap<(String, String), String>;

/// How long [`BgpSpeaker::shutdown`] waits for the sessions to say Cease.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// A peer that could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer's password Secret is not (yet) known.
    #[error("peer {peer}: password Secret {namespace}/{name} not found")]
    MissingSecret {
        /// The peer.
        peer: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
}

/// One running session and what it was last given.
#[derive(Debug)]
struct Running {
    settings: SessionSettings,
    routes: Arc<PeerRoutes>,
    /// The BFD session's settings, when the peer names a profile.
    bfd: Option<BfdConfig>,
    handle: SessionHandle,
}

/// What [`BgpSpeaker::set`] wants for one peer.
struct Wanted {
    settings: SessionSettings,
    routes: Arc<PeerRoutes>,
    bfd: Option<BfdConfig>,
}

/// All of this node's BGP sessions.
///
/// [`BgpSpeaker::set`] is level-triggered like
/// [`crate::announce::Announcer::set`]: it takes the whole desired state,
/// starts sessions for new peers, stops those of removed peers (Cease, Peer
/// De-configured), restarts a session whose settings changed (Cease, Other
/// Configuration Change) and passes new prefixes to the others, which send
/// only the difference. Dropping it makes every session send Cease
/// (Administrative Shutdown) on its own; [`BgpSpeaker::shutdown`] also waits
/// for them.
#[derive(Default)]
pub struct BgpSpeaker {
    sessions: BTreeMap<String, Running>,
    stopping: Vec<JoinHandle<()>>,
    metrics: BgpMetrics,
    /// The BFD sessions, started with the first peer that names a profile.
    bfd: Option<BfdManager>,
    /// Told about every BFD failure (the daemon records an Event).
    bfd_observer: Option<DownObserver>,
}

impl std::fmt::Debug for BgpSpeaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BgpSpeaker")
            .field("sessions", &self.sessions)
            .field("bfd", &self.bfd)
            .finish_non_exhaustive()
    }
}

impl BgpSpeaker {
    /// A speaker without sessions that records into `metrics`.
    pub fn new(metrics: BgpMetrics) -> Self {
        Self {
            sessions: BTreeMap::new(),
            stopping: Vec::new(),
            metrics,
            bfd: None,
            bfd_observer: None,
        }
    }

    /// Calls `observer` whenever a peer's BFD session fails.
    pub fn on_bfd_down(&mut self, observer: DownObserver) {
        self.bfd_observer = Some(observer);
    }

    /// Starts the BFD session of peer `name` (the BFD manager first, on
    /// first use); `None` when its socket cannot be opened (logged).
    fn add_bfd(
        &mut self,
        name: &str,
        settings: &SessionSettings,
        config: BfdConfig,
    ) -> Option<tokio::sync::watch::Receiver<crate::bfd::coupling::Status>> {
        let metrics = self.metrics.bfd.clone();
        let observer = self.bfd_observer.clone();
        let manager = self
            .bfd
            .get_or_insert_with(|| BfdManager::start(metrics, observer));
        match manager.add(name, settings.peer.ip(), settings.source, config) {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::error!(peer = %name, error = %e, "cannot open a BFD socket: BGP runs without BFD");
                None
            }
        }
    }

    fn remove_bfd(&self, name: &str) {
        if let Some(manager) = &self.bfd {
            manager.remove(name);
        }
    }

    /// Makes the sessions and their prefixes equal to `desired`. Must be
    /// called from within a tokio runtime; never blocks.
    pub fn set(&mut self, desired: &BgpDesired, secrets: &PeerSecrets) -> Vec<PeerError> {
        self.stopping.retain(|t| !t.is_finished());
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
        for (name, peer) in &desired.peers {
            let password = match &peer.peer.password {
                None => None,
                Some(PeerPassword::Plain(p)) => Some(p.clone()),
                Some(PeerPassword::Secret {
                    namespace,
                    name: secret,
                }) => match secrets.get(&(namespace.clone(), secret.clone())) {
                    Some(p) => Some(p.clone()),
                    None => {
                        errors.push(PeerError::MissingSecret {
                            peer: name.clone(),
                            namespace: namespace.clone(),
                            name: secret.clone(),
                        });
                        continue;
                    }
                },
            };
            wanted.insert(
                name.clone(),
                Wanted {
                    settings: SessionSettings::from_peer(&peer.peer, password),
                    routes: peer.routes.clone(),
                    bfd: peer.bfd.as_ref().map(BfdConfig::from_profile),
                },
            );
        }

        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for name in names {
            let keep = wanted.get(&name).is_some_and(|w| {
                self.sessions
                    .get(&name)
                    .is_some_and(|r| r.settings == w.settings)
            });
            if keep {
                continue;
            }
            if let Some(running) = self.sessions.remove(&name) {
                let subcode = if wanted.contains_key(&name) {
                    code::OTHER_CONFIGURATION_CHANGE
                } else {
                    code::PEER_DECONFIGURED
                };
                tracing::info!(peer = %name, "stopping BGP session");
                if running.bfd.is_some() {
                    self.remove_bfd(&name);
                }
                self.metrics.remove(&running.settings.labels());
                self.stopping.push(running.handle.stop(subcode));
            }
        }

        for (name, w) in wanted {
            let Wanted {
                settings,
                routes,
                bfd,
            } = w;
            let running_bfd = self.sessions.get(&name).map(|r| r.bfd);
            match running_bfd {
                Some(before) => {
                    if before != bfd {
                        // A BFD change never restarts the BGP session.
                        match (before, bfd) {
                            (Some(_), Some(config)) => {
                                if let Some(manager) = &self.bfd {
                                    manager.reconfigure(&name, config);
                                }
                            }
                            (Some(_), None) => {
                                self.remove_bfd(&name);
                                if let Some(r) = self.sessions.get(&name) {
                                    r.handle.set_bfd(None);
                                }
                            }
                            (None, Some(config)) => {
                                let rx = self.add_bfd(&name, &settings, config);
                                if let Some(r) = self.sessions.get(&name) {
                                    r.handle.set_bfd(rx);
                                }
                            }
                            (None, None) => {}
                        }
                    }
                    if let Some(running) = self.sessions.get_mut(&name) {
                        running.bfd = bfd;
                        if *running.routes != *routes {
                            running.handle.set_routes(routes.clone());
                            running.routes = routes;
                        }
                    }
                }
                None => {
                    tracing::info!(peer = %name, address = %settings.peer, "starting BGP session");
                    let rx = bfd.and_then(|config| self.add_bfd(&name, &settings, config));
                    let handle =
                        session::spawn(settings.clone(), routes.clone(), self.metrics.clone(), rx);
                    self.sessions.insert(
                        name,
                        Running {
                            settings,
                            routes,
                            bfd,
                            handle,
                        },
                    );
                }
            }
        }
        errors
    }

    /// The names of the peers with a session task.
    pub fn peers(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    /// Takes the BFD sessions AdminDown (not a failure for the routers),
    /// then sends Cease (Administrative Shutdown) on every session, or,
    /// with graceful restart, closes it without one so that the router
    /// keeps the routes; waits up to [`SHUTDOWN_TIMEOUT`] for them to close.
    pub async fn shutdown(mut self) {
        if let Some(bfd) = self.bfd.take() {
            bfd.shutdown().await;
        }
        let mut tasks = std::mem::take(&mut self.stopping);
        for (_, running) in std::mem::take(&mut self.sessions) {
            tasks.push(running.handle.shutdown());
        }
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, all).await.is_err() {
            tracing::warn!("BGP sessions did not close within {SHUTDOWN_TIMEOUT:?}");
        }
    }
}

impl crate::announce::Announcer for BgpSpeaker {
    fn protocol(&self) -> crate::announce::Protocol {
        crate::announce::Protocol::Bgp
    }

    fn set(
        &mut self,
        desired: &crate::announce::Desired,
    ) -> Result<(), crate::announce::AnnounceError> {
        let errors = BgpSpeaker::set(self, &desired.bgp, &desired.peer_secrets);
        if errors.is_empty() {
            Ok(())
        } else {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Err(crate::announce::AnnounceError::Peers(text.join("; ")))
        }
    }
}
