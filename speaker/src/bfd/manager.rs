//! [`BfdManager`]: the thin shell around the pure [`Session`]s. One tokio
//! task owns the two control sockets (port 3784, IPv4 and IPv6) and every
//! session; it demultiplexes received packets (by Your Discriminator, else
//! by the peer's address), checks their TTL, runs each session's timers at
//! its `next_deadline`, sends what the sessions ask for from each
//! session's own source port, and publishes each session's RFC 5882
//! [`Status`] on a watch channel for the BGP session it protects.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::bfd::CONTROL_PORT;
use crate::bfd::coupling::Status;
use crate::bfd::metrics::{BfdLabels, BfdMetrics};
use crate::bfd::packet::{Diagnostic, Packet};
use crate::bfd::session::{Config, Effect, Session};
use crate::bfd::socket::{self, Datagram};

/// A BFD session that failed (went Down from Up, not by the peer's
/// administrative action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdDown {
    /// The BGP peer's name.
    pub name: String,
    /// The peer's address.
    pub peer: IpAddr,
    /// Our diagnostic: why it went down.
    pub diag: Diagnostic,
}

impl BfdDown {
    /// A one-line description (for logs and the node Event).
    pub fn note(&self) -> String {
        format!(
            "BFD session with peer {} ({}) went down: {:?}",
            self.peer, self.name, self.diag
        )
    }
}

/// Called (on the manager's task) for every [`BfdDown`].
pub type DownObserver = Arc<dyn Fn(&BfdDown) + Send + Sync>;

enum Command {
    Add {
        name: String,
        peer: IpAddr,
        socket: UdpSocket,
        config: Config,
        status: watch::Sender<Status>,
    },
    Reconfigure {
        name: String,
        config: Config,
    },
    Remove(String),
    Shutdown(oneshot::Sender<()>),
}

/// The BFD sessions of this node, one per BGP peer that names a profile.
pub struct BfdManager {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for BfdManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BfdManager").finish_non_exhaustive()
    }
}

impl BfdManager {
    /// Opens the control sockets (on this thread, so in its network
    /// namespace) and starts the task. A family whose socket cannot be
    /// opened logs an error; its sessions then never come Up, which leaves
    /// their BGP sessions alone (RFC 5882).
    pub fn start(metrics: BfdMetrics, observer: Option<DownObserver>) -> Self {
        let open = |v6: bool| match socket::control_socket(v6) {
            Ok(s) => Some(s),
            Err(e) => {
                let family = if v6 { "IPv6" } else { "IPv4" };
                tracing::error!(error = %e, "cannot open the {family} BFD socket on port {CONTROL_PORT}");
                None
            }
        };
        let (v4, v6) = (open(false), open(true));
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(rx, v4, v6, metrics, observer));
        Self { commands, task }
    }

    /// Starts a session named `name` with `peer`, sending from `local`
    /// (or the address the kernel picks); returns its status.
    pub fn add(
        &self,
        name: &str,
        peer: IpAddr,
        local: Option<IpAddr>,
        config: Config,
    ) -> io::Result<watch::Receiver<Status>> {
        let socket = socket::session_socket(peer, local)?;
        let (status, rx) = watch::channel(Status::NotYetUp);
        let _ = self.commands.send(Command::Add {
            name: name.to_string(),
            peer,
            socket,
            config,
            status,
        });
        Ok(rx)
    }

    /// Changes a session's settings (a poll sequence tells the peer).
    pub fn reconfigure(&self, name: &str, config: Config) {
        let _ = self.commands.send(Command::Reconfigure {
            name: name.to_string(),
            config,
        });
    }

    /// Ends a session: one AdminDown packet tells the peer it is not a failure.
    pub fn remove(&self, name: &str) {
        let _ = self.commands.send(Command::Remove(name.to_string()));
    }

    /// Takes every session AdminDown (one packet each) and ends the task.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

struct Entry {
    peer: IpAddr,
    socket: UdpSocket,
    session: Session,
    status: watch::Sender<Status>,
    labels: BfdLabels,
}

/// A random nonzero discriminator no other session uses (RFC 5880 6.8.1).
fn new_discriminator(sessions: &BTreeMap<String, Entry>) -> NonZeroU32 {
    loop {
        if let Some(d) = NonZeroU32::new(fastrand::u32(1..))
            && !sessions
                .values()
                .any(|e| e.session.local_discriminator() == d.get())
        {
            return d;
        }
    }
}

/// Which session a packet from `from` belongs to: by Your Discriminator
/// when set, else by the peer's address; either way only from that peer.
fn demux<'a>(
    sessions: &'a BTreeMap<String, Entry>,
    packet: &Packet,
    from: IpAddr,
) -> Option<&'a str> {
    sessions
        .iter()
        .find(|(_, e)| {
            e.peer == from
                && (packet.your_discriminator == 0
                    || e.session.local_discriminator() == packet.your_discriminator)
        })
        .map(|(name, _)| name.as_str())
}

async fn receive(socket: Option<&UdpSocket>) -> io::Result<Datagram> {
    match socket {
        Some(s) => socket::receive(s).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Performs a session's effects: sends its packets, publishes its status.
async fn apply(
    name: &str,
    entry: &Entry,
    effects: Vec<Effect>,
    metrics: &BfdMetrics,
    observer: Option<&DownObserver>,
) {
    for effect in effects {
        match effect {
            Effect::Send(packet) => {
                let to = SocketAddr::new(entry.peer, CONTROL_PORT);
                if let Err(e) = entry.socket.send_to(&packet.encode(), to).await {
                    tracing::debug!(peer = %name, error = %e, "BFD send failed");
                }
            }
            Effect::StateChanged { from, to, diag } => {
                metrics.changed(&entry.labels, from, to);
                let before = *entry.status.borrow();
                let after = before.after(to, entry.session.remote_state());
                tracing::info!(peer = %name, address = %entry.peer, ?from, ?to, ?diag, status = ?after, "BFD session state changed");
                if after != before {
                    entry.status.send_replace(after);
                }
                if after == Status::Failed && before == Status::Up {
                    let down = BfdDown {
                        name: name.to_string(),
                        peer: entry.peer,
                        diag,
                    };
                    tracing::warn!(peer = %name, "{}", down.note());
                    if let Some(observe) = observer {
                        observe(&down);
                    }
                }
            }
        }
    }
}

/// Handles one received datagram.
async fn received(
    sessions: &mut BTreeMap<String, Entry>,
    datagram: Datagram,
    metrics: &BfdMetrics,
    observer: Option<&DownObserver>,
) {
    let packet = match Packet::decode(&datagram.payload) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(from = %datagram.from, error = %e, "BFD packet discarded");
            return;
        }
    };
    let Some(name) = demux(sessions, &packet, datagram.from.ip()).map(str::to_string) else {
        tracing::debug!(from = %datagram.from, "BFD packet for no session");
        return;
    };
    let Some(entry) = sessions.get_mut(&name) else {
        return;
    };
    // RFC 5881 section 5: a single-hop packet must arrive with TTL 255.
    if !datagram
        .ttl
        .is_some_and(|t| entry.session.config().accepts_ttl(t))
    {
        tracing::debug!(peer = %name, ttl = ?datagram.ttl, "BFD packet discarded: TTL");
        return;
    }
    let effects = entry.session.on_packet(&packet, Instant::now());
    apply(&name, entry, effects, metrics, observer).await;
}

/// The manager's task.
async fn run(
    mut commands: mpsc::UnboundedReceiver<Command>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    metrics: BfdMetrics,
    observer: Option<DownObserver>,
) {
    let observer = observer.as_ref();
    let mut sessions: BTreeMap<String, Entry> = BTreeMap::new();
    loop {
        let next = sessions
            .values()
            .filter_map(|e| e.session.next_deadline())
            .min();
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Add { name, peer, socket, config, status }) => {
                    let now = Instant::now();
                    let discriminator = new_discriminator(&sessions);
                    let session = Session::new(config, discriminator, now);
                    let labels = BfdLabels { peer: peer.to_string() };
                    metrics.state(&labels, session.state());
                    tracing::info!(peer = %name, address = %peer, ?config, "starting BFD session");
                    if let Some(old) = sessions.insert(name, Entry { peer, socket, session, status, labels }) {
                        metrics.remove(&old.labels);
                    }
                }
                Some(Command::Reconfigure { name, config }) => {
                    if let Some(entry) = sessions.get_mut(&name) {
                        tracing::info!(peer = %name, ?config, "reconfiguring BFD session");
                        let effects = entry.session.reconfigure(config, Instant::now());
                        apply(&name, entry, effects, &metrics, observer).await;
                    }
                }
                Some(Command::Remove(name)) => {
                    if let Some(mut entry) = sessions.remove(&name) {
                        tracing::info!(peer = %name, "stopping BFD session");
                        let effects = entry.session.admin_down(Instant::now());
                        apply(&name, &entry, effects, &metrics, observer).await;
                        metrics.remove(&entry.labels);
                    }
                }
                Some(Command::Shutdown(done)) => {
                    for (name, entry) in &mut sessions {
                        let effects = entry.session.admin_down(Instant::now());
                        apply(name, entry, effects, &metrics, observer).await;
                    }
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
            datagram = receive(v4.as_ref()) => match datagram {
                Ok(d) => received(&mut sessions, d, &metrics, observer).await,
                Err(e) => tracing::debug!(error = %e, "BFD receive (IPv4)"),
            },
            datagram = receive(v6.as_ref()) => match datagram {
                Ok(d) => received(&mut sessions, d, &metrics, observer).await,
                Err(e) => tracing::debug!(error = %e, "BFD receive (IPv6)"),
            },
            () = sleep_until(next) => {
                let now = Instant::now();
                for (name, entry) in &mut sessions {
                    if entry.session.next_deadline().is_some_and(|d| d <= now) {
                        let effects = entry.session.on_timer(now);
                        apply(name, entry, effects, &metrics, observer).await;
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::State;

    fn packet(your: u32) -> Packet {
        Packet {
            diag: Diagnostic::NoDiagnostic,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 9,
            your_discriminator: your,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[tokio::test]
    async fn demux_by_your_discriminator_then_by_peer_address() {
        let now = Instant::now();
        let mut sessions = BTreeMap::new();
        for (name, peer, disc) in [
            ("a", "127.0.0.1", 11),
            ("b", "127.0.0.2", 22),
            ("c", "127.0.0.2", 33),
        ] {
            let peer: IpAddr = peer.parse().unwrap();
            sessions.insert(
                name.to_string(),
                Entry {
                    peer,
                    socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                    session: Session::new(Config::default(), NonZeroU32::new(disc).unwrap(), now),
                    status: watch::channel(Status::NotYetUp).0,
                    labels: BfdLabels {
                        peer: peer.to_string(),
                    },
                },
            );
        }
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            (
                "your_discriminator_selects_the_session",
                33,
                "127.0.0.2",
                Some("c"),
            ),
            (
                "no_discriminator_matches_by_address",
                0,
                "127.0.0.1",
                Some("a"),
            ),
            (
                "a_known_discriminator_from_another_peer_is_refused",
                11,
                "127.0.0.2",
                None,
            ),
            ("an_unknown_discriminator_is_refused", 44, "127.0.0.1", None),
            ("an_unknown_peer_is_refused", 0, "127.0.0.9", None),
        ];
        for (rule, your, from, want) in cases {
            assert_eq!(demux(&sessions, &packet(your), ip(from)), want, "{rule}");
        }
        let d = new_discriminator(&sessions);
        assert!(
            ![11, 22, 33].contains(&d.get()),
            "discriminators are unique"
        );
    }
}
