//! One BGP session on a TCP socket: a tokio task that runs the pure
//! [`Fsm`], performs its actions (connect, send, close, timers) and feeds
//! back what the socket and the clock do.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::model::Peer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::bfd::coupling::Status as BfdStatus;
use crate::bgp::fsm::{Action, DownReason, Event, Fsm, LocalEndpoint, SessionConfig, State, Timer};
use crate::bgp::md5;
use crate::bgp::message::{Framer, MessageType, code, decode};
use crate::bgp::metrics::{BgpMetrics, PeerLabels};
use crate::bgp::prefixes::PeerRoutes;

/// How long a TCP connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write may block before the connection is declared broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection is drained so that a final NOTIFICATION
/// is not destroyed by a reset (closing with unread data sends RST).
const CLOSE_DRAIN: Duration = Duration::from_millis(200);

/// Everything that defines a session; a change restarts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// The peer's name (for logs).
    pub name: String,
    /// Where to connect.
    pub peer: SocketAddr,
    /// The local address to connect from.
    pub source: Option<IpAddr>,
    /// The TCP MD5 key.
    pub password: Option<String>,
    /// eBGP peer more than one hop away (TTL 255 instead of 1).
    pub ebgp_multihop: bool,
    /// What the state machine needs.
    pub config: SessionConfig,
}

impl SessionSettings {
    /// The settings of `peer`, its password already resolved.
    pub fn from_peer(peer: &Peer, password: Option<String>) -> Self {
        Self {
            name: peer.name.clone(),
            peer: SocketAddr::new(peer.address, peer.port),
            source: peer.source_address,
            password,
            ebgp_multihop: peer.ebgp_multihop,
            config: SessionConfig {
                local_asn: peer.my_asn,
                peer_asn: peer.peer_asn,
                hold_time: peer.hold_time,
                keepalive_time: peer.keepalive_time,
                router_id: peer.router_id,
                graceful_restart: peer.graceful_restart,
            },
        }
    }

    /// The metric labels of this session.
    pub fn labels(&self) -> PeerLabels {
        PeerLabels {
            peer: self.peer.to_string(),
        }
    }
}

/// What the owner tells a running session.
#[derive(Debug, Clone)]
pub enum Command {
    /// Announce exactly these prefixes.
    Routes(Arc<PeerRoutes>),
    /// Send Cease with this subcode and end the task.
    Stop(u8),
    /// The speaker shuts down: end the task (without Cease under graceful restart).
    Shutdown,
    /// Follow this BFD session's status (`None`: BFD no longer configured).
    Bfd(Option<watch::Receiver<BfdStatus>>),
}

/// A running session task.
#[derive(Debug)]
pub struct SessionHandle {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Hands the session a new set of prefixes.
    pub fn set_routes(&self, routes: Arc<PeerRoutes>) {
        // A session that ended has nothing left to announce to.
        let _ = self.commands.send(Command::Routes(routes));
    }

    /// Asks the session to send Cease (`subcode`) and end; returns its task.
    pub fn stop(self, subcode: u8) -> JoinHandle<()> {
        let _ = self.commands.send(Command::Stop(subcode));
        self.task
    }

    /// Asks the session to end because the speaker shuts down (no Cease
    /// under graceful restart); returns its task.
    pub fn shutdown(self) -> JoinHandle<()> {
        let _ = self.commands.send(Command::Shutdown);
        self.task
    }

    /// Makes the session follow a BFD session (or none).
    pub fn set_bfd(&self, bfd: Option<watch::Receiver<BfdStatus>>) {
        let _ = self.commands.send(Command::Bfd(bfd));
    }
}

/// Starts a session task on the current tokio runtime.
pub fn spawn(
    settings: SessionSettings,
    routes: Arc<PeerRoutes>,
    metrics: BgpMetrics,
    bfd: Option<watch::Receiver<BfdStatus>>,
) -> SessionHandle {
    let (commands, receiver) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(settings, routes, metrics, receiver, bfd));
    SessionHandle { commands, task }
}

/// The local end of a session: next hops and identifier, from the session's
/// local address and the addresses of the node's interfaces (one list per
/// interface). The other family's next hop is an address of the same
/// interface; without one, that family is not announced on this session.
pub fn local_endpoint(local: IpAddr, interfaces: &[Vec<IpAddr>]) -> LocalEndpoint {
    let same: &[IpAddr] = interfaces
        .iter()
        .find(|addrs| addrs.contains(&local))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let usable_v4 = |ip: &&IpAddr| matches!(ip, IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified());
    let usable_v6 = |ip: &&IpAddr| matches!(ip, IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unicast_link_local() && !v6.is_unspecified());
    let v4 = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    };
    let v6 = |ip: &IpAddr| match ip {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    };
    let next_hop_v4: Option<Ipv4Addr> =
        v4(&local).or_else(|| same.iter().filter(usable_v4).find_map(v4));
    let next_hop_v6: Option<Ipv6Addr> =
        v6(&local).or_else(|| same.iter().filter(usable_v6).find_map(v6));
    let router_id =
        next_hop_v4.or_else(|| interfaces.iter().flatten().filter(usable_v4).find_map(v4));
    LocalEndpoint {
        address: local,
        next_hop_v4,
        next_hop_v6,
        router_id,
    }
}

/// The node's interface addresses, one list per interface.
fn interface_addresses() -> Vec<Vec<IpAddr>> {
    pnet_datalink::interfaces()
        .into_iter()
        .map(|i| i.ips.iter().map(|net| net.ip()).collect())
        .collect()
}

/// Opens the TCP connection: MD5 key, TTL and source address first.
async fn connect(settings: SessionSettings) -> io::Result<(TcpStream, LocalEndpoint)> {
    let peer = settings.peer;
    let socket = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(password) = &settings.password {
        md5::set_key(&socket, peer.ip(), password.as_bytes())?;
    }
    if !settings.config.is_ibgp() {
        // Single-hop eBGP keeps its packets on the link; multihop may cross routers.
        let ttl = if settings.ebgp_multihop { 255 } else { 1 };
        let sock = socket2::SockRef::from(&socket);
        match peer {
            SocketAddr::V4(_) => sock.set_ttl_v4(ttl)?,
            SocketAddr::V6(_) => sock.set_unicast_hops_v6(ttl)?,
        }
    }
    if let Some(source) = settings.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    socket.set_nodelay(true)?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(peer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let local = stream.local_addr()?.ip();
    // On this thread, not a blocking-pool one: the thread's network
    // namespace is the session's (tests run sessions inside namespaces).
    let interfaces = interface_addresses();
    Ok((stream, local_endpoint(local, &interfaces)))
}

/// Writes, then drains the connection briefly so the peer reads everything.
async fn close_gracefully(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(CLOSE_DRAIN, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A connection attempt under way.
type Connecting = Pin<Box<dyn Future<Output = io::Result<(TcpStream, LocalEndpoint)>> + Send>>;

/// What the loop has to feed to the state machine, in order. Frames are
/// decoded only when their turn comes: how to read an UPDATE depends on
/// the OPEN before it.
enum Input {
    Event(Event),
    Frame(crate::bgp::message::Frame),
}

/// The timers' deadlines.
#[derive(Default)]
struct Deadlines {
    connect_retry: Option<Instant>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
}

impl Deadlines {
    fn slot(&mut self, timer: Timer) -> &mut Option<Instant> {
        match timer {
            Timer::ConnectRetry => &mut self.connect_retry,
            Timer::Hold => &mut self.hold,
            Timer::Keepalive => &mut self.keepalive,
        }
    }

    fn next(&self) -> Option<Instant> {
        [self.connect_retry, self.hold, self.keepalive]
            .into_iter()
            .flatten()
            .min()
    }

    /// Takes every timer due at `now`.
    fn expired(&mut self, now: Instant) -> Vec<Timer> {
        let mut out = Vec::new();
        for timer in [Timer::Hold, Timer::Keepalive, Timer::ConnectRetry] {
            let slot = self.slot(timer);
            if slot.is_some_and(|d| d <= now) {
                *slot = None;
                out.push(timer);
            }
        }
        out
    }
}

/// The session task.
async fn run(
    settings: SessionSettings,
    routes: Arc<PeerRoutes>,
    metrics: BgpMetrics,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut bfd: Option<watch::Receiver<BfdStatus>>,
) {
    let labels = settings.labels();
    let peer = settings.name.clone();
    let mut fsm = Fsm::new(settings.config.clone(), fastrand::u64(..));
    let mut inputs: VecDeque<Input> = VecDeque::from([
        Input::Event(Event::Routes(routes)),
        Input::Event(Event::Start),
    ]);
    if let Some(rx) = bfd.as_mut() {
        inputs.push_back(Input::Event(bfd_event(*rx.borrow_and_update())));
    }
    let mut deadlines = Deadlines::default();
    let mut stream: Option<TcpStream> = None;
    let mut framer = Framer::default();
    let mut reading = false;
    let mut connecting: Option<Connecting> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut commands_open = true;

    loop {
        while let Some(input) = inputs.pop_front() {
            let event = match input {
                Input::Event(event) => event,
                Input::Frame(frame) => Event::Received(decode(&frame, fsm.four_octet_as())),
            };
            let mut closed_after_send = false;
            for action in fsm.handle(event) {
                match action {
                    Action::Connect => {
                        connecting = Some(Box::pin(connect(settings.clone())));
                    }
                    Action::Send(kind, bytes) => {
                        let Some(s) = stream.as_mut() else { continue };
                        let written =
                            tokio::time::timeout(WRITE_TIMEOUT, s.write_all(&bytes)).await;
                        match written {
                            Ok(Ok(())) => {
                                if kind == MessageType::Update {
                                    metrics.updates.get_or_create(&labels).inc();
                                }
                                closed_after_send |= kind == MessageType::Notification;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "write failed");
                                stream = None;
                                inputs.push_back(Input::Event(Event::Closed));
                            }
                            Err(_) => {
                                tracing::warn!(%peer, "write blocked for {WRITE_TIMEOUT:?}");
                                stream = None;
                                inputs.push_back(Input::Event(Event::Closed));
                            }
                        }
                    }
                    Action::Close => {
                        connecting = None;
                        reading = false;
                        framer.clear();
                        // Frames still queued belong to the closed connection.
                        inputs.retain(|i| matches!(i, Input::Event(_)));
                        let closing = stream.take();
                        if let Some(s) = closing
                            && closed_after_send
                        {
                            close_gracefully(s).await;
                        }
                    }
                    Action::StartTimer(timer, after) => {
                        *deadlines.slot(timer) = Some(Instant::now() + after);
                    }
                    Action::StopTimer(timer) => *deadlines.slot(timer) = None,
                    Action::Up => {
                        tracing::info!(%peer, address = %settings.peer, "BGP session established");
                    }
                    Action::Down(reason) => match reason {
                        DownReason::Stopped => {
                            tracing::info!(%peer, "BGP session closed (Cease sent)");
                        }
                        DownReason::PeerNotification(n) => {
                            tracing::warn!(%peer, notification = %n, "peer closed the BGP session");
                        }
                        DownReason::SentNotification(n) => {
                            tracing::warn!(%peer, notification = %n, "BGP session closed on error");
                        }
                        DownReason::ConnectionLost => {
                            tracing::warn!(%peer, "BGP connection lost");
                        }
                        DownReason::GracefulRestart => {
                            tracing::info!(%peer, "BGP connection closed without Cease (graceful restart)");
                        }
                        DownReason::NoRouterId => {
                            tracing::error!(%peer, "no IPv4 address for the BGP identifier: set router-id");
                        }
                    },
                    Action::EncodeFailed(e) => {
                        tracing::error!(%peer, error = %e, "cannot encode UPDATE");
                    }
                }
            }
        }
        if fsm.is_stopped() && fsm.state() == State::Idle {
            // The owner removed this peer's series; a successor may own them now.
            return;
        }
        metrics.record(
            &labels,
            fsm.state() == State::Established,
            fsm.announced(),
            fsm.pending(),
        );

        let next_deadline = deadlines.next();
        tokio::select! {
            command = commands.recv(), if commands_open => match command {
                Some(Command::Routes(routes)) => inputs.push_back(Input::Event(Event::Routes(routes))),
                Some(Command::Stop(subcode)) => inputs.push_back(Input::Event(Event::Stop(subcode))),
                Some(Command::Shutdown) => inputs.push_back(Input::Event(Event::Shutdown)),
                Some(Command::Bfd(rx)) => {
                    bfd = rx;
                    let status = bfd.as_mut().map_or(BfdStatus::NotYetUp, |rx| *rx.borrow_and_update());
                    inputs.push_back(Input::Event(bfd_event(status)));
                }
                None => {
                    // The owner is gone: shut down cleanly.
                    commands_open = false;
                    inputs.push_back(Input::Event(Event::Stop(code::ADMINISTRATIVE_SHUTDOWN)));
                }
            },
            result = async { match connecting.as_mut() { Some(c) => c.await, None => std::future::pending().await } }, if connecting.is_some() => {
                connecting = None;
                match result {
                    Ok((s, endpoint)) => {
                        tracing::debug!(%peer, local = %endpoint.address, "TCP connected");
                        stream = Some(s);
                        reading = true;
                        framer.clear();
                        inputs.push_back(Input::Event(Event::Connected(endpoint)));
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "connect failed");
                        inputs.push_back(Input::Event(Event::ConnectFailed));
                    }
                }
            },
            read = async { match stream.as_mut() { Some(s) => s.read(&mut buf).await, None => std::future::pending().await } }, if reading => {
                match read {
                    Ok(0) | Err(_) => {
                        reading = false;
                        inputs.push_back(Input::Event(Event::Closed));
                    }
                    Ok(n) => {
                        framer.push(&buf[..n]);
                        loop {
                            match framer.next_frame() {
                                Ok(Some(frame)) => inputs.push_back(Input::Frame(frame)),
                                Ok(None) => break,
                                Err(notification) => {
                                    // The stream cannot be re-synchronised: stop reading.
                                    reading = false;
                                    inputs.push_back(Input::Event(Event::Received(Err(notification))));
                                    break;
                                }
                            }
                        }
                    }
                }
            },
            changed = async { match bfd.as_mut() { Some(rx) => rx.changed().await, None => std::future::pending().await } }, if bfd.is_some() => {
                let status = match (changed, bfd.as_mut()) {
                    (Ok(()), Some(rx)) => *rx.borrow_and_update(),
                    // The BFD session is gone: BGP runs without it.
                    _ => {
                        bfd = None;
                        BfdStatus::NotYetUp
                    }
                };
                if !status.allows_bgp() {
                    tracing::warn!(%peer, "BFD session down: closing the BGP session");
                }
                inputs.push_back(Input::Event(bfd_event(status)));
            },
            _ = sleep_until_opt(next_deadline), if next_deadline.is_some() => {
                for timer in deadlines.expired(Instant::now()) {
                    inputs.push_back(Input::Event(Event::TimerExpired(timer)));
                }
            },
        }
    }
}

/// The state machine's event for a BFD status (RFC 5882).
fn bfd_event(status: BfdStatus) -> Event {
    if status.allows_bgp() {
        Event::BfdUp
    } else {
        Event::BfdDown
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_hops_and_router_id_come_from_the_session_interface() {
        let eth0 = vec![ip("192.168.1.10"), ip("fe80::1"), ip("fd00:1::10")];
        let eth1 = vec![ip("10.1.0.5"), ip("fd00:2::5")];
        let lo = vec![ip("127.0.0.1"), ip("::1")];
        let v6only = vec![ip("fd00:3::7")];
        let all = vec![lo.clone(), eth0.clone(), eth1.clone(), v6only.clone()];
        let cases = [
            (
                "ipv4_session_takes_the_ipv6_of_the_same_interface_not_link_local",
                ip("192.168.1.10"),
                all.clone(),
                LocalEndpoint {
                    address: ip("192.168.1.10"),
                    next_hop_v4: Some("192.168.1.10".parse().unwrap()),
                    next_hop_v6: Some("fd00:1::10".parse().unwrap()),
                    router_id: Some("192.168.1.10".parse().unwrap()),
                },
            ),
            (
                "ipv6_session_takes_the_ipv4_of_the_same_interface",
                ip("fd00:2::5"),
                all.clone(),
                LocalEndpoint {
                    address: ip("fd00:2::5"),
                    next_hop_v4: Some("10.1.0.5".parse().unwrap()),
                    next_hop_v6: Some("fd00:2::5".parse().unwrap()),
                    router_id: Some("10.1.0.5".parse().unwrap()),
                },
            ),
            (
                "an_interface_without_ipv4_announces_no_ipv4_and_borrows_a_router_id",
                ip("fd00:3::7"),
                all.clone(),
                LocalEndpoint {
                    address: ip("fd00:3::7"),
                    next_hop_v4: None,
                    next_hop_v6: Some("fd00:3::7".parse().unwrap()),
                    router_id: Some("192.168.1.10".parse().unwrap()),
                },
            ),
            (
                "no_ipv4_anywhere_means_no_router_id",
                ip("fd00:3::7"),
                vec![lo, v6only],
                LocalEndpoint {
                    address: ip("fd00:3::7"),
                    next_hop_v4: None,
                    next_hop_v6: Some("fd00:3::7".parse().unwrap()),
                    router_id: None,
                },
            ),
        ];
        for (rule, local, interfaces, want) in cases {
            assert_eq!(local_endpoint(local, &interfaces), want, "{rule}");
        }
    }
}
