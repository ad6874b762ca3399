//! Who is alive: the speaker cluster's membership.
//!
//! [`Membership`] is the small trait the speaker's main loop and election
//! see; [`GossipMembership`] implements it on the `memberlist` crate (SWIM
//! gossip over UDP + TCP, AES-256-GCM encrypted). Member names are node
//! names, so the live set feeds [`crate::election::Snapshot::members`]
//! directly.
//!
//! Pitfalls of memberlist 0.8 handled here: encryption is only on when the
//! primary key, the algorithm and `gossip_verify_outgoing` are all set;
//! `gossip_verify_incoming` must be set to refuse plaintext peers; the leave
//! event and `members()` still list departed nodes, so the live set is read
//! from `online_members()`; dropping the handle does not stop the node.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use memberlist::Memberlist;
use memberlist::Options;
use memberlist::delegate::{
    CompositeDelegate, EventSubscriber, SubscribleEventDelegate, VoidDelegate,
};
use memberlist::net::{NetTransport, NetTransportOptions};
use memberlist::proto::{EncryptionAlgorithm, MaybeResolvedAddress, NodeId, SecretKey};
use memberlist::tokio::{TokioRuntime, TokioSocketAddrResolver, TokioTcp};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The default memberlist port (MetalLB's, so firewall rules carry over).
pub const DEFAULT_PORT: u16 = 7946;

/// The set of live members, by node name.
pub type LiveMembers = BTreeSet<String>;

/// Errors of the membership layer.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The node name cannot be a member id (empty or longer than 255 bytes).
    #[error("node name {0:?} cannot be a member name")]
    BadName(String),
    /// The memberlist Secret's key is empty.
    #[error("the memberlist secret key is empty")]
    EmptyKey,
    /// The gossip endpoint could not start (address in use, ...).
    #[error("cannot start memberlist on {bind}: {message}")]
    Start {
        /// The bind address.
        bind: SocketAddr,
        /// What memberlist said.
        message: String,
    },
    /// No seed could be joined.
    #[error("could not join any of {tried} seeds: {message}")]
    Join {
        /// How many seeds were tried.
        tried: usize,
        /// What memberlist said.
        message: String,
    },
    /// Leaving or shutting down failed.
    #[error("memberlist {operation}: {message}")]
    Stop {
        /// `leave` or `shutdown`.
        operation: &'static str,
        /// What memberlist said.
        message: String,
    },
}

/// Membership as the speaker sees it.
///
/// The main loop subscribes once, recomputes the desired state whenever the
/// live set changes, calls `join` whenever the set of speaker pods changes
/// (so the cluster heals after a partition or a restart), and on SIGTERM
/// calls `leave` then `shutdown`.
pub trait Membership: Send + Sync {
    /// Contacts the seeds (other speakers' gossip addresses; our own is
    /// skipped) and merges state with them. Returns how many answered.
    fn join(
        &self,
        seeds: &[SocketAddr],
    ) -> impl Future<Output = Result<usize, MembershipError>> + Send;

    /// The node names of the live members, this node included.
    fn live_members(&self) -> impl Future<Output = LiveMembers> + Send;

    /// A channel holding the live set, updated on every change.
    fn subscribe(&self) -> watch::Receiver<LiveMembers>;

    /// Tells the others that this node leaves, so that they react at once
    /// instead of waiting for failure detection.
    fn leave(&self) -> impl Future<Output = Result<(), MembershipError>> + Send;

    /// Stops gossiping and closes the sockets.
    fn shutdown(&self) -> impl Future<Output = Result<(), MembershipError>> + Send;
}

/// Failure-detection timings. The defaults are tuned for a LAN: a crashed
/// node is declared dead in about 0.75 s (measured on loopback among 3),
/// memberlist's own `lan()` preset takes about 3 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often each node probes a random other node.
    pub probe_interval: Duration,
    /// How long a probe waits for the direct ack before indirect probes.
    pub probe_timeout: Duration,
    /// Suspicion lasts `suspicion_mult * max(1, log10(n)) * probe_interval`.
    pub suspicion_mult: u32,
    /// How often gossip messages are sent.
    pub gossip_interval: Duration,
    /// TCP connect/read timeout for joins and state syncs.
    pub tcp_timeout: Duration,
    /// How long `leave` waits for the leave message to go out.
    pub leave_timeout: Duration,
    /// Whether a failed UDP probe is also tried over TCP before the node is
    /// suspected. Off by default: memberlist 0.8 waits the whole
    /// `tcp_timeout` for that TCP ping when the node is unreachable (a
    /// crash, a cut cable), which measured 2.6 s instead of 0.75 s to
    /// detect a crashed node; the indirect UDP probes through other
    /// members already cover a single lossy path.
    pub reliable_pings: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(100),
            suspicion_mult: 2,
            gossip_interval: Duration::from_millis(100),
            tcp_timeout: Duration::from_secs(2),
            leave_timeout: Duration::from_secs(1),
            reliable_pings: false,
        }
    }
}

/// How to start a [`GossipMembership`].
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name (the Node object's name).
    pub node_name: String,
    /// Where to listen (UDP and TCP), normally the host IP and [`DEFAULT_PORT`].
    pub bind: SocketAddr,
    /// The address others should use, when it differs from `bind`.
    pub advertise: Option<SocketAddr>,
    /// The raw bytes of the memberlist Secret's `secretkey`.
    pub secret: Vec<u8>,
    /// Failure-detection timings.
    pub timing: Timing,
}

/// The AES-256 key derived from the memberlist Secret: sha256 of its bytes.
///
/// The Secret holds an arbitrary string (the tutorial stores 128 random
/// bytes in base64); hashing maps any length to the 32 bytes AES-256 needs
/// while keeping all of its entropy up to 256 bits. Every speaker derives
/// the same key from the same Secret.
pub fn derive_key(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

type Transport = NetTransport<NodeId, TokioSocketAddrResolver, TokioTcp, TokioRuntime>;
type Events = SubscribleEventDelegate<NodeId, SocketAddr>;
type Delegate = CompositeDelegate<
    NodeId,
    SocketAddr,
    VoidDelegate<NodeId, SocketAddr>,
    VoidDelegate<NodeId, SocketAddr>,
    Events,
>;
type List = Memberlist<Transport, Delegate>;

/// memberlist options for our timings and key, with encryption really on.
fn options(timing: &Timing, key: [u8; 32]) -> Options {
    Options::lan()
        .with_probe_interval(timing.probe_interval)
        .with_probe_timeout(timing.probe_timeout)
        .with_suspicion_mult(timing.suspicion_mult as usize)
        .with_gossip_interval(timing.gossip_interval)
        .with_timeout(timing.tcp_timeout)
        .with_disable_reliable_pings(!timing.reliable_pings)
        .with_primary_key(SecretKey::Aes256(key))
        .with_encryption_algo(EncryptionAlgorithm::NoPadding)
        .with_gossip_verify_outgoing(true)
        .with_gossip_verify_incoming(true)
}

/// [`Membership`] on memberlist.
pub struct GossipMembership {
    list: List,
    live: watch::Sender<LiveMembers>,
    watcher: JoinHandle<()>,
    timing: Timing,
}

impl std::fmt::Debug for GossipMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipMembership")
            .field("node", &self.list.local_id().as_str())
            .field("advertise", self.list.advertise_address())
            .finish()
    }
}

/// Reads the live set from memberlist (departed and dead nodes excluded).
async fn online(list: &List) -> LiveMembers {
    list.online_members()
        .await
        .iter()
        .map(|n| n.id().as_str().to_owned())
        .collect()
}

/// Publishes the live set whenever memberlist reports an event, and on a
/// slow tick as a safety net.
async fn watch_members(
    list: List,
    events: EventSubscriber<NodeId, SocketAddr>,
    live: watch::Sender<LiveMembers>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => tracing::debug!(
                    member = %event.node_state().id(),
                    kind = ?event.kind(),
                    "membership event"
                ),
                Err(_) => return,
            },
            _ = tick.tick() => {}
        }
        let now = online(&list).await;
        live.send_if_modified(|current| {
            if *current == now {
                return false;
            }
            tracing::info!(live = ?now, "speaker membership changed");
            *current = now;
            true
        });
    }
}

impl GossipMembership {
    /// Starts gossiping on `config.bind`; the node is alone until [`Membership::join`].
    pub async fn start(config: MembershipConfig) -> Result<Self, MembershipError> {
        if config.secret.is_empty() {
            return Err(MembershipError::EmptyKey);
        }
        let id = NodeId::new(&config.node_name)
            .map_err(|_| MembershipError::BadName(config.node_name.clone()))?;
        let mut transport =
            NetTransportOptions::<NodeId, TokioSocketAddrResolver, TokioTcp>::new(id);
        transport.add_bind_address(config.bind);
        if let Some(advertise) = config.advertise {
            transport = transport.with_advertise_address(advertise);
        }
        let (events_delegate, events) = Events::unbounded();
        let delegate = CompositeDelegate::new().with_event_delegate(events_delegate);
        let list = List::with_delegate(
            delegate,
            transport,
            options(&config.timing, derive_key(&config.secret)),
        )
        .await
        .map_err(|e| MembershipError::Start {
            bind: config.bind,
            message: e.to_string(),
        })?;
        if !list.encryption_enabled() {
            // Cannot happen with the options above; refuse to gossip in clear if it ever does.
            let _ = list.shutdown().await;
            return Err(MembershipError::Start {
                bind: config.bind,
                message: "encryption did not turn on".into(),
            });
        }
        let (live, _) = watch::channel(online(&list).await);
        let watcher = tokio::spawn(watch_members(list.clone(), events, live.clone()));
        tracing::info!(node = %config.node_name, bind = %config.bind, "memberlist started (encrypted)");
        Ok(Self {
            list,
            live,
            watcher,
            timing: config.timing,
        })
    }

    /// The address others reach this member at.
    pub fn advertise_address(&self) -> SocketAddr {
        *self.list.advertise_address()
    }
}

impl Membership for GossipMembership {
    async fn join(&self, seeds: &[SocketAddr]) -> Result<usize, MembershipError> {
        let ours = self.advertise_address();
        let others: Vec<SocketAddr> = seeds.iter().copied().filter(|s| *s != ours).collect();
        if others.is_empty() {
            return Ok(0);
        }
        let tried = others.len();
        // One `join` per seed: memberlist's `join_many` future is not `Send`.
        let results = futures::future::join_all(
            others
                .iter()
                .map(|seed| self.list.join(MaybeResolvedAddress::Resolved(*seed))),
        )
        .await;
        let mut joined = 0;
        let mut last_error = String::new();
        for (seed, result) in others.iter().zip(results) {
            match result {
                Ok(_) => joined += 1,
                Err(e) => {
                    tracing::debug!(%seed, error = %e, "memberlist seed did not answer");
                    last_error = e.to_string();
                }
            }
        }
        if joined == 0 {
            return Err(MembershipError::Join {
                tried,
                message: last_error,
            });
        }
        if joined < tried {
            tracing::warn!(joined, tried, error = %last_error, "some memberlist seeds did not answer");
        }
        Ok(joined)
    }

    async fn live_members(&self) -> LiveMembers {
        online(&self.list).await
    }

    fn subscribe(&self) -> watch::Receiver<LiveMembers> {
        self.live.subscribe()
    }

    async fn leave(&self) -> Result<(), MembershipError> {
        self.list
            .leave(self.timing.leave_timeout)
            .await
            .map(|_| ())
            .map_err(|e| MembershipError::Stop {
                operation: "leave",
                message: e.to_string(),
            })
    }

    async fn shutdown(&self) -> Result<(), MembershipError> {
        self.watcher.abort();
        self.list
            .shutdown()
            .await
            .map_err(|e| MembershipError::Stop {
                operation: "shutdown",
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_sha256_of_the_secret_bytes() {
        let secret = b"tutorial-secret";
        let want: [u8; 32] = Sha256::digest(secret).into();
        assert_eq!(derive_key(secret), want);
        assert_ne!(
            derive_key(b"a"),
            derive_key(b"b"),
            "different secrets give different keys"
        );
    }

    #[test]
    fn default_timings_are_the_lan_tuning() {
        let t = Timing::default();
        assert_eq!(t.probe_interval, Duration::from_millis(200));
        assert_eq!(t.probe_timeout, Duration::from_millis(100));
        assert_eq!(t.suspicion_mult, 2);
        assert_eq!(t.gossip_interval, Duration::from_millis(100));
        assert!(
            !t.reliable_pings,
            "a TCP fallback would wait tcp_timeout for a crashed node"
        );
    }

    #[test]
    fn options_turn_encryption_fully_on() {
        let o = options(&Timing::default(), [7; 32]);
        assert!(o.primary_key().is_some());
        assert!(o.encryption_algo().is_some());
        assert!(
            o.gossip_verify_outgoing(),
            "without it memberlist sends in clear"
        );
        assert!(
            o.gossip_verify_incoming(),
            "without it plaintext peers are accepted"
        );
    }
}
