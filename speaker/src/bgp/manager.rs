//! [`BgpSpeaker`]: the daemon hands it the desired BGP state on every change;
//! it keeps one session task per peer and tells each only what changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::model::PeerPassword;
use tokio::task::JoinHandle;

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
    handle: SessionHandle,
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
#[derive(Debug, Default)]
pub struct BgpSpeaker {
    sessions: BTreeMap<String, Running>,
    stopping: Vec<JoinHandle<()>>,
    metrics: BgpMetrics,
}

impl BgpSpeaker {
    /// A speaker without sessions that records into `metrics`.
    pub fn new(metrics: BgpMetrics) -> Self {
        Self {
            sessions: BTreeMap::new(),
            stopping: Vec::new(),
            metrics,
        }
    }

    /// Makes the sessions and their prefixes equal to `desired`. Must be
    /// called from within a tokio runtime; never blocks.
    pub fn set(&mut self, desired: &BgpDesired, secrets: &PeerSecrets) -> Vec<PeerError> {
        self.stopping.retain(|t| !t.is_finished());
        let mut errors = Vec::new();
        let mut wanted: BTreeMap<String, (SessionSettings, Arc<PeerRoutes>)> = BTreeMap::new();
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
                (
                    SessionSettings::from_peer(&peer.peer, password),
                    peer.routes.clone(),
                ),
            );
        }

        let names: Vec<String> = self.sessions.keys().cloned().collect();
        for name in names {
            let keep = wanted.get(&name).is_some_and(|(settings, _)| {
                self.sessions
                    .get(&name)
                    .is_some_and(|r| r.settings == *settings)
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
                self.metrics.remove(&running.settings.labels());
                self.stopping.push(running.handle.stop(subcode));
            }
        }

        for (name, (settings, routes)) in wanted {
            match self.sessions.get_mut(&name) {
                Some(running) => {
                    if *running.routes != *routes {
                        running.handle.set_routes(routes.clone());
                        running.routes = routes;
                    }
                }
                None => {
                    tracing::info!(peer = %name, address = %settings.peer, "starting BGP session");
                    let handle =
                        session::spawn(settings.clone(), routes.clone(), self.metrics.clone());
                    self.sessions.insert(
                        name,
                        Running {
                            settings,
                            routes,
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

    /// Sends Cease (Administrative Shutdown) on every session and waits up
    /// to [`SHUTDOWN_TIMEOUT`] for them to close.
    pub async fn shutdown(mut self) {
        let mut tasks = std::mem::take(&mut self.stopping);
        for (_, running) in std::mem::take(&mut self.sessions) {
            tasks.push(running.handle.stop(code::ADMINISTRATIVE_SHUTDOWN));
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
