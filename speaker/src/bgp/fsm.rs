//! The session state machine (RFC 4271 section 8, active side only), pure:
//! [`Event`]s in, [`Action`]s out. The I/O driver ([`crate::bgp::session`])
//! performs the actions (connect, send, close, timers) and feeds back what
//! happens; every rule is tested here without a socket or a clock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::bgp::backoff::Backoff;
use crate::bgp::message::{
    LocalOpen, Message, MessageType, Notification, OpenMessage, code, encode_end_of_rib,
    encode_keepalive, encode_open,
};
use crate::bgp::prefixes::{PeerRoutes, RouteAttributes};
use crate::bgp::update::{UpdateContext, encode_announcements, encode_withdrawals};

/// How long we wait for the peer's OPEN (RFC 4271 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// The restart time we advertise with graceful restart (RFC 4724): how
/// long the router keeps our routes while the speaker is away (a restarted
/// speaker pod is back in seconds; an upgrade that pulls an image may take
/// a minute).
pub const GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(120);

/// The session states; Active is folded into Idle (we never listen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No connection; waiting for the connect-retry timer (or stopped).
    Idle,
    /// A TCP connection attempt is under way.
    Connect,
    /// Connected, our OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes flow.
    Established,
}

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// When to try connecting again.
    ConnectRetry,
    /// The receive hold timer: the peer must speak before it fires.
    Hold,
    /// When to send the next KEEPALIVE.
    Keepalive,
}

/// What the session is configured with (from a `Peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_asn: u32,
    /// The AS the peer must announce.
    pub peer_asn: u32,
    /// Our proposed hold time.
    pub hold_time: Duration,
    /// The KEEPALIVE interval at that hold time.
    pub keepalive_time: Duration,
    /// The configured BGP identifier, if any.
    pub router_id: Option<Ipv4Addr>,
    /// Graceful restart (RFC 4724): the capability, End-of-RIB after the
    /// initial table, and no Cease when the speaker shuts down.
    pub graceful_restart: bool,
}

impl SessionConfig {
    /// iBGP when both ends share an AS.
    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }
}

/// What the driver learnt about our end once TCP is connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// The session's local address.
    pub address: IpAddr,
    /// Next hop for IPv4 prefixes: the local address of an IPv4 session, or
    /// an IPv4 address of the same interface for an IPv6 session.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 prefixes, likewise.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The BGP identifier to use when none is configured.
    pub router_id: Option<Ipv4Addr>,
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The peer sent a NOTIFICATION.
    PeerNotification(Notification),
    /// We sent a NOTIFICATION (an error of the peer's, or hold timer expiry).
    SentNotification(Notification),
    /// The TCP connection broke or was closed by the peer.
    ConnectionLost,
    /// We were told to stop (Cease sent if a connection was open).
    Stopped,
    /// No BGP identifier could be found for the session.
    NoRouterId,
    /// The speaker is restarting with graceful restart: the connection was
    /// closed without Cease so that the router keeps our routes.
    GracefulRestart,
}

/// Something happening to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Begin: connect.
    Start,
    /// Stop for good, with this Cease subcode.
    Stop(u8),
    /// The speaker shuts down (SIGTERM): with graceful restart, close the
    /// connection without a NOTIFICATION (a Cease would end graceful
    /// restart at the router); else as `Stop(Administrative Shutdown)`.
    Shutdown,
    /// The BFD session failed (Down after Up, RFC 5882): go down now, and
    /// do not connect again before [`Event::BfdUp`].
    BfdDown,
    /// BFD allows the session again (Up, or no longer configured).
    BfdUp,
    /// TCP connected.
    Connected(LocalEndpoint),
    /// TCP connection attempt failed.
    ConnectFailed,
    /// The connection closed or broke.
    Closed,
    /// A message arrived, or the NOTIFICATION its bytes deserve.
    Received(Result<Message, Notification>),
    /// A timer fired.
    TimerExpired(Timer),
    /// The prefixes to announce changed.
    Routes(Arc<PeerRoutes>),
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send one encoded message.
    Send(MessageType, Vec<u8>),
    /// Close the connection (after the sends before it).
    Close,
    /// (Re)arm a timer.
    StartTimer(Timer, Duration),
    /// Disarm a timer.
    StopTimer(Timer),
    /// The session reached Established.
    Up,
    /// A connection was torn down (from any connected state).
    Down(DownReason),
    /// UPDATEs could not be encoded (a bug): the prefixes stay pending.
    EncodeFailed(String),
}

/// The state machine of one session.
#[derive(Debug)]
pub struct Fsm {
    config: SessionConfig,
    state: State,
    stopped: bool,
    backoff: Backoff,
    desired: Arc<PeerRoutes>,
    /// Adj-RIB-Out: what the peer has from us on this connection.
    sent: PeerRoutes,
    endpoint: Option<LocalEndpoint>,
    router_id: Ipv4Addr,
    context: Option<UpdateContext>,
    /// Negotiated hold time and keepalive interval (`None`: hold time 0).
    negotiated: Option<(Duration, Duration)>,
    /// BFD failed and has not been Up since: no connection until it is.
    bfd_failed: bool,
}

impl Fsm {
    /// A session in Idle; `seed` drives the reconnect jitter.
    pub fn new(config: SessionConfig, seed: u64) -> Self {
        Self {
            config,
            state: State::Idle,
            stopped: false,
            backoff: Backoff::new(seed),
            desired: Arc::default(),
            sent: PeerRoutes::new(),
            endpoint: None,
            router_id: Ipv4Addr::UNSPECIFIED,
            context: None,
            negotiated: None,
            bfd_failed: false,
        }
    }

    /// Whether a BFD failure keeps the session down.
    pub fn held_by_bfd(&self) -> bool {
        self.bfd_failed
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the session was told to stop for good.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether AS numbers in received UPDATEs are 4 octets wide.
    pub fn four_octet_as(&self) -> bool {
        self.context.as_ref().is_some_and(|c| c.four_octet_as)
    }

    /// Prefixes the peer currently has from us.
    pub fn announced(&self) -> usize {
        self.sent.len()
    }

    /// Desired prefixes the peer does not have (yet), or has with other attributes.
    pub fn pending(&self) -> usize {
        self.desired
            .iter()
            .filter(|(p, a)| self.sent.get(p) != Some(a))
            .count()
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Start => self.start(),
            Event::Stop(subcode) => self.stop(subcode),
            Event::Shutdown => {
                if self.config.graceful_restart {
                    self.close_for_restart()
                } else {
                    self.stop(code::ADMINISTRATIVE_SHUTDOWN)
                }
            }
            Event::BfdDown => self.bfd_down(),
            Event::BfdUp => {
                if !self.bfd_failed {
                    return Vec::new();
                }
                self.bfd_failed = false;
                self.start()
            }
            Event::Routes(routes) => {
                self.desired = routes;
                if self.state == State::Established {
                    self.sync()
                } else {
                    Vec::new()
                }
            }
            Event::TimerExpired(Timer::ConnectRetry) => self.start(),
            Event::Connected(endpoint) => self.connected(endpoint),
            Event::ConnectFailed => {
                if self.state != State::Connect {
                    return Vec::new();
                }
                self.state = State::Idle;
                vec![Action::StartTimer(
                    Timer::ConnectRetry,
                    self.backoff.next_delay(),
                )]
            }
            Event::Closed => {
                if !self.connected_state() {
                    return Vec::new();
                }
                self.drop_connection(Vec::new(), DownReason::ConnectionLost)
            }
            Event::TimerExpired(Timer::Hold) => {
                if !self.connected_state() {
                    return Vec::new();
                }
                self.fail(Notification::hold_timer_expired())
            }
            Event::TimerExpired(Timer::Keepalive) => {
                if !matches!(self.state, State::OpenConfirm | State::Established) {
                    return Vec::new();
                }
                let mut actions = vec![Action::Send(MessageType::Keepalive, encode_keepalive())];
                actions.extend(self.keepalive_timer());
                actions
            }
            Event::Received(received) => self.received(received),
        }
    }

    fn connected_state(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }

    fn start(&mut self) -> Vec<Action> {
        if self.stopped || self.state != State::Idle || self.bfd_failed {
            return Vec::new();
        }
        self.state = State::Connect;
        vec![Action::Connect]
    }

    fn stop(&mut self, subcode: u8) -> Vec<Action> {
        let cease = Notification::cease(subcode);
        self.end(
            vec![Action::Send(MessageType::Notification, cease.encode())],
            DownReason::Stopped,
        )
    }

    /// Graceful restart's shutdown: the connection closes without a
    /// NOTIFICATION, so that the router keeps forwarding on our routes.
    fn close_for_restart(&mut self) -> Vec<Action> {
        self.end(Vec::new(), DownReason::GracefulRestart)
    }

    /// Ends the session for good (no reconnect): a connected one sends
    /// `first` (a NOTIFICATION, or nothing) and is dropped for `reason`.
    fn end(&mut self, first: Vec<Action>, reason: DownReason) -> Vec<Action> {
        self.stopped = true;
        let actions = match self.state {
            State::Idle => vec![Action::StopTimer(Timer::ConnectRetry)],
            State::Connect => vec![Action::Close],
            State::OpenSent | State::OpenConfirm | State::Established => {
                return self.drop_connection(first, reason);
            }
        };
        self.reset_to_idle();
        actions
    }

    /// Back to Idle, forgetting the connection's state.
    fn reset_to_idle(&mut self) {
        self.state = State::Idle;
        self.sent.clear();
        self.context = None;
        self.negotiated = None;
    }

    /// BFD failed: Cease (BFD Down) now if connected, then wait for BFD.
    fn bfd_down(&mut self) -> Vec<Action> {
        self.bfd_failed = true;
        match self.state {
            State::Idle => vec![Action::StopTimer(Timer::ConnectRetry)],
            State::Connect => {
                self.state = State::Idle;
                vec![Action::Close]
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                let mut actions = self.fail(Notification::cease(code::BFD_DOWN));
                // The reconnect waits for BFD, not for a timer.
                actions.retain(|a| !matches!(a, Action::StartTimer(Timer::ConnectRetry, _)));
                actions
            }
        }
    }

    fn connected(&mut self, endpoint: LocalEndpoint) -> Vec<Action> {
        if self.state != State::Connect {
            return Vec::new();
        }
        let Some(router_id) = self.config.router_id.or(endpoint.router_id) else {
            self.state = State::Idle;
            return vec![
                Action::Close,
                Action::Down(DownReason::NoRouterId),
                Action::StartTimer(Timer::ConnectRetry, self.backoff.next_delay()),
            ];
        };
        self.router_id = router_id;
        self.endpoint = Some(endpoint);
        let open = LocalOpen {
            asn: self.config.local_asn,
            hold_time: secs_u16(self.config.hold_time),
            router_id,
            graceful_restart: self
                .config
                .graceful_restart
                .then(|| secs_u16(GRACEFUL_RESTART_TIME)),
        };
        match encode_open(&open) {
            Ok(bytes) => {
                self.state = State::OpenSent;
                vec![
                    Action::Send(MessageType::Open, bytes),
                    Action::StartTimer(Timer::Hold, OPEN_HOLD_TIME),
                ]
            }
            Err(e) => {
                self.state = State::Idle;
                vec![
                    Action::EncodeFailed(e.to_string()),
                    Action::Close,
                    Action::StartTimer(Timer::ConnectRetry, self.backoff.next_delay()),
                ]
            }
        }
    }

    /// Tears the connection down: `first` (a NOTIFICATION, maybe) is sent,
    /// then the socket closed and a reconnect scheduled.
    fn drop_connection(&mut self, first: Vec<Action>, reason: DownReason) -> Vec<Action> {
        let mut actions = first;
        actions.extend([
            Action::Close,
            Action::StopTimer(Timer::Hold),
            Action::StopTimer(Timer::Keepalive),
            Action::Down(reason),
        ]);
        self.reset_to_idle();
        if !self.stopped {
            actions.push(Action::StartTimer(
                Timer::ConnectRetry,
                self.backoff.next_delay(),
            ));
        }
        actions
    }

    /// Sends `notification` and drops the connection.
    fn fail(&mut self, notification: Notification) -> Vec<Action> {
        let send = vec![Action::Send(
            MessageType::Notification,
            notification.encode(),
        )];
        self.drop_connection(send, DownReason::SentNotification(notification))
    }

    fn fsm_error(&mut self) -> Vec<Action> {
        let subcode = match self.state {
            State::OpenSent => code::FSM_UNEXPECTED_IN_OPEN_SENT,
            State::OpenConfirm => code::FSM_UNEXPECTED_IN_OPEN_CONFIRM,
            _ => code::FSM_UNEXPECTED_IN_ESTABLISHED,
        };
        self.fail(Notification::new(code::FSM, subcode, Vec::new()))
    }

    fn received(&mut self, received: Result<Message, Notification>) -> Vec<Action> {
        if !self.connected_state() {
            return Vec::new();
        }
        let message = match received {
            Ok(message) => message,
            Err(notification) => return self.fail(notification),
        };
        match (self.state, message) {
            (_, Message::Notification(n)) => {
                self.drop_connection(Vec::new(), DownReason::PeerNotification(n))
            }
            (State::OpenSent, Message::Open(open)) => self.open_received(open),
            (State::OpenConfirm, Message::Keepalive) => self.established(),
            (State::Established, Message::Keepalive | Message::Update(_)) => self.hold_timer(),
            (State::Established, Message::RouteRefresh { afi, safi }) => {
                let mut actions = self.hold_timer();
                actions.extend(self.refresh(afi, safi));
                actions
            }
            _ => self.fsm_error(),
        }
    }

    /// Checks the peer's OPEN (RFC 4271 section 6.2).
    fn check_open(&self, open: &OpenMessage) -> Result<(), Notification> {
        if open.asn() != self.config.peer_asn {
            return Err(Notification::open(code::BAD_PEER_AS));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(Notification::open(code::UNACCEPTABLE_HOLD_TIME));
        }
        let same_id = self.config.is_ibgp() && open.router_id == self.router_id;
        if open.router_id.is_unspecified() || same_id {
            return Err(Notification::open(code::BAD_BGP_IDENTIFIER));
        }
        Ok(())
    }

    fn open_received(&mut self, open: OpenMessage) -> Vec<Action> {
        if let Err(n) = self.check_open(&open) {
            return self.fail(n);
        }
        let ours = secs_u16(self.config.hold_time);
        let hold = ours.min(open.hold_time);
        let endpoint = self.endpoint.clone();
        let caps = &open.capabilities;
        self.context = Some(UpdateContext {
            ibgp: self.config.is_ibgp(),
            local_asn: self.config.local_asn,
            four_octet_as: caps.four_octet_as.is_some(),
            ipv4: caps.ipv4_unicast,
            ipv6: caps.ipv6_unicast,
            next_hop_v4: endpoint.as_ref().and_then(|e| e.next_hop_v4),
            next_hop_v6: endpoint.as_ref().and_then(|e| e.next_hop_v6),
        });
        self.state = State::OpenConfirm;
        let mut actions = vec![Action::Send(MessageType::Keepalive, encode_keepalive())];
        if hold == 0 {
            self.negotiated = None;
            actions.push(Action::StopTimer(Timer::Hold));
            return actions;
        }
        let hold = Duration::from_secs(u64::from(hold));
        // Keep the configured ratio when the peer lowered the hold time.
        let keepalive = if hold == Duration::from_secs(u64::from(ours)) {
            self.config.keepalive_time
        } else {
            self.config
                .keepalive_time
                .mul_f64(hold.as_secs_f64() / f64::from(ours))
        }
        .max(Duration::from_secs(1));
        self.negotiated = Some((hold, keepalive));
        actions.push(Action::StartTimer(Timer::Hold, hold));
        actions.push(Action::StartTimer(Timer::Keepalive, keepalive));
        actions
    }

    fn hold_timer(&self) -> Vec<Action> {
        match self.negotiated {
            Some((hold, _)) => vec![Action::StartTimer(Timer::Hold, hold)],
            None => Vec::new(),
        }
    }

    fn keepalive_timer(&self) -> Vec<Action> {
        match self.negotiated {
            Some((_, keepalive)) => vec![Action::StartTimer(Timer::Keepalive, keepalive)],
            None => Vec::new(),
        }
    }

    fn established(&mut self) -> Vec<Action> {
        self.state = State::Established;
        self.backoff.reset();
        let mut actions = self.hold_timer();
        actions.push(Action::Up);
        actions.extend(self.sync());
        if self.config.graceful_restart
            && let Some(ctx) = &self.context
        {
            // RFC 4724: the initial table is complete; the router may now
            // drop the stale routes of our previous incarnation.
            for (negotiated, afi) in [(ctx.ipv4, 1), (ctx.ipv6, 2)] {
                if negotiated {
                    actions.push(Action::Send(MessageType::Update, encode_end_of_rib(afi, 1)));
                }
            }
        }
        actions
    }

    /// Sends what changed between the Adj-RIB-Out and the desired routes.
    fn sync(&mut self) -> Vec<Action> {
        let Some(ctx) = self.context.clone() else {
            return Vec::new();
        };
        let target: PeerRoutes = self
            .desired
            .iter()
            .filter(|(p, _)| ctx.can_announce(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        let withdraw: Vec<&IpNet> = self
            .sent
            .keys()
            .filter(|p| !target.contains_key(p))
            .collect();
        let announce: Vec<(&IpNet, &RouteAttributes)> = target
            .iter()
            .filter(|(p, a)| self.sent.get(p) != Some(a))
            .collect();
        let encoded = encode_withdrawals(&ctx, withdraw).and_then(|mut w| {
            w.extend(encode_announcements(&ctx, announce)?);
            Ok(w)
        });
        match encoded {
            Ok(messages) => {
                self.sent = target;
                messages
                    .into_iter()
                    .map(|m| Action::Send(MessageType::Update, m))
                    .collect()
            }
            Err(e) => vec![Action::EncodeFailed(e.to_string())],
        }
    }

    /// Answers a ROUTE-REFRESH: the whole Adj-RIB-Out of that family again.
    fn refresh(&self, afi: u16, safi: u8) -> Vec<Action> {
        let Some(ctx) = &self.context else {
            return Vec::new();
        };
        let family =
            |p: &IpNet| matches!((afi, safi, p), (1, 1, IpNet::V4(_)) | (2, 1, IpNet::V6(_)));
        match encode_announcements(ctx, self.sent.iter().filter(|(p, _)| family(p))) {
            Ok(messages) => messages
                .into_iter()
                .map(|m| Action::Send(MessageType::Update, m))
                .collect(),
            Err(e) => vec![Action::EncodeFailed(e.to_string())],
        }
    }
}

/// Whole seconds, saturated to the 16-bit OPEN field.
fn secs_u16(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::message::{Capabilities, Framer, Message, decode};
    use crate::bgp::update::UpdateSummary;
    use ferrolb_config::model::Community;
    use proptest::prelude::*;

    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

    fn config(peer_asn: u32) -> SessionConfig {
        SessionConfig {
            local_asn: 64512,
            peer_asn,
            hold_time: Duration::from_secs(90),
            keepalive_time: Duration::from_secs(30),
            router_id: None,
            graceful_restart: false,
        }
    }

    fn endpoint() -> LocalEndpoint {
        LocalEndpoint {
            address: IpAddr::V4(ROUTER),
            next_hop_v4: Some(ROUTER),
            next_hop_v6: Some("fd00::10".parse().unwrap()),
            router_id: Some(ROUTER),
        }
    }

    fn open(asn: u32, hold: u16, id: Ipv4Addr) -> Event {
        Event::Received(Ok(Message::Open(OpenMessage {
            as2: u16::try_from(asn).unwrap_or(crate::bgp::message::AS_TRANS),
            hold_time: hold,
            router_id: id,
            capabilities: Capabilities {
                ipv4_unicast: true,
                ipv6_unicast: true,
                four_octet_as: Some(asn),
                route_refresh: true,
                graceful_restart: None,
            },
        })))
    }

    fn keepalive() -> Event {
        Event::Received(Ok(Message::Keepalive))
    }

    fn update() -> Event {
        Event::Received(Ok(Message::Update(UpdateSummary::default())))
    }

    /// A compact, comparable form of actions; reconnect delays are jittered
    /// and shown without their value.
    fn show(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Connect => "connect".to_string(),
                Action::Send(MessageType::Notification, bytes) => {
                    format!("send NOTIFICATION {}/{}", bytes[19], bytes[20])
                }
                Action::Send(kind, _) => format!("send {kind:?}"),
                Action::Close => "close".into(),
                Action::StartTimer(Timer::ConnectRetry, _) => "retry later".into(),
                Action::StartTimer(t, d) => format!("start {t:?} {}s", d.as_secs()),
                Action::StopTimer(t) => format!("stop {t:?}"),
                Action::Up => "up".into(),
                Action::Down(DownReason::PeerNotification(n)) => {
                    format!("down: peer sent {}/{}", n.code, n.subcode)
                }
                Action::Down(DownReason::SentNotification(n)) => {
                    format!("down: sent {}/{}", n.code, n.subcode)
                }
                Action::Down(r) => format!("down: {r:?}"),
                Action::EncodeFailed(e) => format!("encode failed: {e}"),
            })
            .collect()
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// The teardown after we send `code/subcode`.
    fn torn_down(code: u8, subcode: u8) -> Vec<String> {
        v(&[
            &format!("send NOTIFICATION {code}/{subcode}"),
            "close",
            "stop Hold",
            "stop Keepalive",
            &format!("down: sent {code}/{subcode}"),
            "retry later",
        ])
    }

    fn fsm_in(state: State, peer_asn: u32) -> Fsm {
        let mut fsm = Fsm::new(config(peer_asn), 1);
        let steps: Vec<Event> = match state {
            State::Idle => vec![],
            State::Connect => vec![Event::Start],
            State::OpenSent => vec![Event::Start, Event::Connected(endpoint())],
            State::OpenConfirm => vec![
                Event::Start,
                Event::Connected(endpoint()),
                open(peer_asn, 90, PEER_ID),
            ],
            State::Established => vec![
                Event::Start,
                Event::Connected(endpoint()),
                open(peer_asn, 90, PEER_ID),
                keepalive(),
            ],
        };
        for e in steps {
            fsm.handle(e);
        }
        assert_eq!(fsm.state(), state);
        fsm
    }

    #[test]
    fn the_session_comes_up_step_by_step() {
        let mut fsm = Fsm::new(config(65000), 1);
        let steps: Vec<(&str, Event, Vec<String>, State)> = vec![
            (
                "start_connects",
                Event::Start,
                v(&["connect"]),
                State::Connect,
            ),
            (
                "tcp_up_sends_open_and_waits_four_minutes",
                Event::Connected(endpoint()),
                v(&["send Open", "start Hold 240s"]),
                State::OpenSent,
            ),
            (
                "peer_open_is_answered_with_keepalive_and_timers_negotiated",
                open(65000, 90, PEER_ID),
                v(&["send Keepalive", "start Hold 90s", "start Keepalive 30s"]),
                State::OpenConfirm,
            ),
            (
                "peer_keepalive_establishes",
                keepalive(),
                v(&["start Hold 90s", "up"]),
                State::Established,
            ),
            (
                "keepalives_restart_the_hold_timer",
                keepalive(),
                v(&["start Hold 90s"]),
                State::Established,
            ),
            (
                "updates_restart_the_hold_timer",
                update(),
                v(&["start Hold 90s"]),
                State::Established,
            ),
            (
                "the_keepalive_timer_sends_a_keepalive",
                Event::TimerExpired(Timer::Keepalive),
                v(&["send Keepalive", "start Keepalive 30s"]),
                State::Established,
            ),
        ];
        for (rule, event, want, state) in steps {
            assert_eq!(show(&fsm.handle(event)), want, "{rule}");
            assert_eq!(fsm.state(), state, "{rule}");
        }
    }

    #[test]
    fn peer_open_checks() {
        let cases: Vec<(&str, u32, Event, Vec<String>)> = vec![
            (
                "an_as_other_than_peer_asn_is_bad_peer_as",
                65000,
                open(65001, 90, PEER_ID),
                torn_down(2, 2),
            ),
            (
                "a_hold_time_of_one_second_is_unacceptable",
                65000,
                open(65000, 1, PEER_ID),
                torn_down(2, 6),
            ),
            (
                "a_hold_time_of_two_seconds_is_unacceptable",
                65000,
                open(65000, 2, PEER_ID),
                torn_down(2, 6),
            ),
            (
                "identifier_zero_is_bad_bgp_identifier",
                65000,
                open(65000, 90, Ipv4Addr::UNSPECIFIED),
                torn_down(2, 3),
            ),
            (
                "ibgp_peer_with_our_identifier_is_bad_bgp_identifier",
                64512,
                open(64512, 90, ROUTER),
                torn_down(2, 3),
            ),
            (
                "ebgp_peer_may_share_our_identifier",
                65000,
                open(65000, 90, ROUTER),
                v(&["send Keepalive", "start Hold 90s", "start Keepalive 30s"]),
            ),
            (
                "a_lower_peer_hold_time_wins_and_scales_keepalive",
                65000,
                open(65000, 30, PEER_ID),
                v(&["send Keepalive", "start Hold 30s", "start Keepalive 10s"]),
            ),
            (
                "hold_time_zero_disables_both_timers",
                65000,
                open(65000, 0, PEER_ID),
                v(&["send Keepalive", "stop Hold"]),
            ),
            (
                "a_four_octet_peer_as_is_read_from_the_capability",
                4_200_000_000,
                open(4_200_000_000, 90, PEER_ID),
                v(&["send Keepalive", "start Hold 90s", "start Keepalive 30s"]),
            ),
        ];
        for (rule, peer_asn, event, want) in cases {
            let mut fsm = fsm_in(State::OpenSent, peer_asn);
            assert_eq!(show(&fsm.handle(event)), want, "{rule}");
        }
    }

    #[test]
    fn unexpected_messages_are_fsm_errors_naming_the_state() {
        let cases: Vec<(&str, State, Event, (u8, u8))> = vec![
            (
                "keepalive_in_open_sent",
                State::OpenSent,
                keepalive(),
                (5, 1),
            ),
            ("update_in_open_sent", State::OpenSent, update(), (5, 1)),
            (
                "open_in_open_confirm",
                State::OpenConfirm,
                open(65000, 90, PEER_ID),
                (5, 2),
            ),
            (
                "update_in_open_confirm",
                State::OpenConfirm,
                update(),
                (5, 2),
            ),
            (
                "open_in_established",
                State::Established,
                open(65000, 90, PEER_ID),
                (5, 3),
            ),
        ];
        for (rule, state, event, (c, s)) in cases {
            let mut fsm = fsm_in(state, 65000);
            assert_eq!(show(&fsm.handle(event)), torn_down(c, s), "{rule}");
            assert_eq!(fsm.state(), State::Idle, "{rule}");
        }
    }

    #[test]
    fn hold_timer_expiry_sends_hold_timer_expired_and_reconnects() {
        for state in [State::OpenSent, State::OpenConfirm, State::Established] {
            let mut fsm = fsm_in(state, 65000);
            let actions = fsm.handle(Event::TimerExpired(Timer::Hold));
            assert_eq!(show(&actions), torn_down(4, 0), "{state:?}");
            assert_eq!(
                show(&fsm.handle(Event::TimerExpired(Timer::ConnectRetry))),
                v(&["connect"]),
                "{state:?}: reconnects when the retry timer fires"
            );
        }
        let mut idle = fsm_in(State::Idle, 65000);
        assert!(
            idle.handle(Event::TimerExpired(Timer::Hold)).is_empty(),
            "a stale timer is ignored"
        );
    }

    #[test]
    fn a_peer_notification_or_lost_connection_reconnects_without_answering() {
        let peer_cease = Event::Received(Ok(Message::Notification(Notification::cease(2))));
        let mut fsm = fsm_in(State::Established, 65000);
        assert_eq!(
            show(&fsm.handle(peer_cease)),
            v(&[
                "close",
                "stop Hold",
                "stop Keepalive",
                "down: peer sent 6/2",
                "retry later"
            ])
        );
        let mut fsm = fsm_in(State::OpenConfirm, 65000);
        assert_eq!(
            show(&fsm.handle(Event::Closed)),
            v(&[
                "close",
                "stop Hold",
                "stop Keepalive",
                "down: ConnectionLost",
                "retry later"
            ])
        );
        let mut fsm = fsm_in(State::Connect, 65000);
        assert_eq!(show(&fsm.handle(Event::ConnectFailed)), v(&["retry later"]));
        assert_eq!(fsm.state(), State::Idle);
    }

    #[test]
    fn stop_sends_cease_and_never_reconnects() {
        let mut fsm = fsm_in(State::Established, 65000);
        assert_eq!(
            show(&fsm.handle(Event::Stop(code::ADMINISTRATIVE_SHUTDOWN))),
            v(&[
                "send NOTIFICATION 6/2",
                "close",
                "stop Hold",
                "stop Keepalive",
                "down: Stopped"
            ])
        );
        assert!(fsm.is_stopped());
        assert!(
            fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
                .is_empty()
        );
        assert!(fsm.handle(Event::Start).is_empty());
        let mut connecting = fsm_in(State::Connect, 65000);
        assert_eq!(show(&connecting.handle(Event::Stop(2))), v(&["close"]));
        assert!(
            connecting.handle(Event::Connected(endpoint())).is_empty(),
            "a late connect is ignored"
        );
    }

    /// A session with graceful restart in `state`.
    fn gr_fsm_in(state: State) -> Fsm {
        let mut fsm = Fsm::new(
            SessionConfig {
                graceful_restart: true,
                ..config(65000)
            },
            1,
        );
        let mut steps = vec![Event::Start, Event::Connected(endpoint())];
        if matches!(state, State::OpenConfirm | State::Established) {
            steps.push(open(65000, 90, PEER_ID));
        }
        if state == State::Established {
            steps.push(keepalive());
        }
        for e in steps {
            fsm.handle(e);
        }
        assert_eq!(fsm.state(), state);
        fsm
    }

    #[test]
    fn bfd_down_tears_the_session_down_with_cease_bfd_down_and_waits_for_bfd_up() {
        // (rule, state, actions on BfdDown)
        let cases = [
            (
                "established_sends_cease_bfd_down_and_does_not_schedule_a_reconnect",
                State::Established,
                v(&[
                    "send NOTIFICATION 6/10",
                    "close",
                    "stop Hold",
                    "stop Keepalive",
                    "down: sent 6/10",
                ]),
            ),
            (
                "open_sent_likewise",
                State::OpenSent,
                v(&[
                    "send NOTIFICATION 6/10",
                    "close",
                    "stop Hold",
                    "stop Keepalive",
                    "down: sent 6/10",
                ]),
            ),
            (
                "a_connection_attempt_is_abandoned",
                State::Connect,
                v(&["close"]),
            ),
            (
                "idle_stops_the_retry_timer",
                State::Idle,
                v(&["stop ConnectRetry"]),
            ),
        ];
        for (rule, state, want) in cases {
            let mut fsm = fsm_in(state, 65000);
            assert_eq!(show(&fsm.handle(Event::BfdDown)), want, "{rule}");
            assert_eq!(fsm.state(), State::Idle, "{rule}");
            assert!(fsm.held_by_bfd(), "{rule}");
            // RFC 5882: no new session while BFD is down, whatever the timers say.
            assert!(
                fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
                    .is_empty(),
                "{rule}"
            );
            assert!(fsm.handle(Event::Start).is_empty(), "{rule}");
            assert_eq!(show(&fsm.handle(Event::BfdUp)), v(&["connect"]), "{rule}");
            assert!(!fsm.held_by_bfd(), "{rule}");
        }
    }

    #[test]
    fn bfd_up_without_a_failure_changes_nothing() {
        for state in [State::Idle, State::Connect, State::Established] {
            let mut fsm = fsm_in(state, 65000);
            assert!(fsm.handle(Event::BfdUp).is_empty(), "{state:?}");
            assert_eq!(fsm.state(), state);
        }
    }

    #[test]
    fn a_stopped_session_stays_stopped_after_bfd_up() {
        let mut fsm = fsm_in(State::Established, 65000);
        fsm.handle(Event::BfdDown);
        fsm.handle(Event::Stop(code::PEER_DECONFIGURED));
        assert!(fsm.handle(Event::BfdUp).is_empty());
    }

    #[test]
    fn graceful_restart_shutdown_closes_without_cease() {
        let mut fsm = gr_fsm_in(State::Established);
        assert_eq!(
            show(&fsm.handle(Event::Shutdown)),
            v(&[
                "close",
                "stop Hold",
                "stop Keepalive",
                "down: GracefulRestart"
            ])
        );
        assert!(fsm.is_stopped());
        assert!(fsm.handle(Event::Start).is_empty(), "never reconnects");
    }

    #[test]
    fn shutdown_without_graceful_restart_sends_cease_administrative_shutdown() {
        let mut fsm = fsm_in(State::Established, 65000);
        assert_eq!(
            show(&fsm.handle(Event::Shutdown)),
            v(&[
                "send NOTIFICATION 6/2",
                "close",
                "stop Hold",
                "stop Keepalive",
                "down: Stopped"
            ])
        );
    }

    #[test]
    fn graceful_restart_sends_the_table_then_end_of_rib_for_each_family() {
        let mut fsm = gr_fsm_in(State::OpenConfirm);
        fsm.handle(Event::Routes(routes(&[
            ("10.0.0.1/32", None),
            ("fd00::1/128", None),
        ])));
        let actions = fsm.handle(keepalive());
        let updates: Vec<&Vec<u8>> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(MessageType::Update, b) => Some(b),
                _ => None,
            })
            .collect();
        let eor_v4 = encode_end_of_rib(1, 1);
        let eor_v6 = encode_end_of_rib(2, 1);
        assert_eq!(updates.len(), 4, "two tables and two End-of-RIB markers");
        assert_eq!(updates[2], &eor_v4, "IPv4 End-of-RIB after the tables");
        assert_eq!(updates[3], &eor_v6, "IPv6 End-of-RIB last");
        let (_, announced, _) = sent_updates(&actions);
        assert_eq!(announced, 2);
        // Later changes carry no End-of-RIB.
        let later = fsm.handle(Event::Routes(routes(&[("10.0.0.2/32", None)])));
        assert!(
            !later
                .iter()
                .any(|a| matches!(a, Action::Send(_, b) if *b == eor_v4 || *b == eor_v6))
        );
    }

    #[test]
    fn without_graceful_restart_no_end_of_rib_is_sent() {
        let mut fsm = fsm_in(State::OpenConfirm, 65000);
        let actions = fsm.handle(keepalive());
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Send(MessageType::Update, _))),
            "an empty table sends nothing, not even End-of-RIB"
        );
    }

    #[test]
    fn reconnect_delays_grow_and_reset_once_established() {
        let mut fsm = fsm_in(State::Idle, 65000);
        let mut delays = Vec::new();
        for _ in 0..4 {
            fsm.handle(Event::Start);
            for a in fsm.handle(Event::ConnectFailed) {
                if let Action::StartTimer(Timer::ConnectRetry, d) = a {
                    delays.push(d);
                }
            }
        }
        assert_eq!(delays.len(), 4);
        assert!(delays.windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        for e in [
            Event::Start,
            Event::Connected(endpoint()),
            open(65000, 90, PEER_ID),
            keepalive(),
        ] {
            fsm.handle(e);
        }
        let retry = fsm
            .handle(Event::Closed)
            .into_iter()
            .find_map(|a| match a {
                Action::StartTimer(Timer::ConnectRetry, d) => Some(d),
                _ => None,
            })
            .unwrap();
        assert!(
            retry <= Duration::from_millis(1200),
            "back to about 1 s: {retry:?}"
        );
    }

    fn routes(entries: &[(&str, Option<u32>)]) -> Arc<PeerRoutes> {
        Arc::new(
            entries
                .iter()
                .map(|(n, pref)| {
                    (
                        n.parse().unwrap(),
                        RouteAttributes {
                            local_pref: *pref,
                            communities: [Community::Standard(1, 1)].into(),
                        },
                    )
                })
                .collect(),
        )
    }

    /// Announced and withdrawn prefix counts of the UPDATEs among actions.
    fn sent_updates(actions: &[Action]) -> (usize, usize, usize) {
        let mut framer = Framer::default();
        for a in actions {
            if let Action::Send(MessageType::Update, bytes) = a {
                framer.push(bytes);
            }
        }
        let (mut messages, mut announced, mut withdrawn) = (0, 0, 0);
        while let Some(frame) = framer.next_frame().unwrap() {
            let Ok(Message::Update(s)) = decode(&frame, true) else {
                panic!("not an update");
            };
            messages += 1;
            announced += s.announced;
            withdrawn += s.withdrawn;
        }
        (messages, announced, withdrawn)
    }

    #[test]
    fn only_the_difference_is_sent_and_the_full_table_after_reconnect() {
        let mut fsm = fsm_in(State::OpenConfirm, 64512);
        assert!(
            fsm.handle(Event::Routes(routes(&[("10.0.0.1/32", None)])))
                .is_empty(),
            "nothing is sent before Established"
        );
        assert_eq!(fsm.pending(), 1);
        type Step = (&'static str, Event, (usize, usize, usize), usize);
        let steps: Vec<Step> = vec![
            ("establishing_sends_the_table", keepalive(), (1, 1, 0), 1),
            (
                "a_new_prefix_alone_is_announced",
                Event::Routes(routes(&[("10.0.0.1/32", None), ("fc00::1/128", None)])),
                (1, 1, 0),
                2,
            ),
            (
                "the_same_routes_again_send_nothing",
                Event::Routes(routes(&[("10.0.0.1/32", None), ("fc00::1/128", None)])),
                (0, 0, 0),
                2,
            ),
            (
                "changed_attributes_are_announced_again",
                Event::Routes(routes(&[("10.0.0.1/32", Some(200)), ("fc00::1/128", None)])),
                (1, 1, 0),
                2,
            ),
            (
                "removed_prefixes_are_withdrawn_per_family",
                Event::Routes(routes(&[])),
                (2, 0, 2),
                0,
            ),
        ];
        for (rule, event, want, announced) in steps {
            let actions = fsm.handle(event);
            assert_eq!(sent_updates(&actions), want, "{rule}");
            assert_eq!(fsm.announced(), announced, "{rule}");
            assert_eq!(fsm.pending(), 0, "{rule}");
        }
        fsm.handle(Event::Routes(routes(&[
            ("10.0.0.1/32", None),
            ("10.0.0.2/32", None),
        ])));
        fsm.handle(Event::Closed);
        assert_eq!(
            (fsm.announced(), fsm.pending()),
            (0, 2),
            "down: all pending"
        );
        for e in [
            Event::TimerExpired(Timer::ConnectRetry),
            Event::Connected(endpoint()),
            open(64512, 90, PEER_ID),
        ] {
            fsm.handle(e);
        }
        let actions = fsm.handle(keepalive());
        assert_eq!(
            sent_updates(&actions),
            (1, 2, 0),
            "the full table in one UPDATE"
        );
    }

    #[test]
    fn route_refresh_resends_that_family() {
        let mut fsm = fsm_in(State::Established, 65000);
        fsm.handle(Event::Routes(routes(&[
            ("10.0.0.1/32", None),
            ("fc00::1/128", None),
        ])));
        let refresh = |afi| Event::Received(Ok(Message::RouteRefresh { afi, safi: 1 }));
        assert_eq!(sent_updates(&fsm.handle(refresh(2))), (1, 1, 0));
        assert_eq!(sent_updates(&fsm.handle(refresh(1))), (1, 1, 0));
    }

    #[test]
    fn families_without_next_hop_stay_pending() {
        let mut fsm = fsm_in(State::Idle, 65000);
        let mut ep = endpoint();
        ep.next_hop_v6 = None;
        for e in [Event::Start, Event::Connected(ep), open(65000, 90, PEER_ID)] {
            fsm.handle(e);
        }
        fsm.handle(Event::Routes(routes(&[
            ("10.0.0.1/32", None),
            ("fc00::1/128", None),
        ])));
        assert_eq!(sent_updates(&fsm.handle(keepalive())), (1, 1, 0));
        assert_eq!((fsm.announced(), fsm.pending()), (1, 1));
    }

    /// A whole message from a type and body.
    fn raw(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(kind);
        m.extend_from_slice(body);
        m
    }

    /// Feeds bytes from the peer through the framer and decoder into `fsm`,
    /// as the session driver does; returns all actions.
    fn feed(fsm: &mut Fsm, bytes: &[u8]) -> Vec<Action> {
        let mut framer = Framer::default();
        framer.push(bytes);
        let mut actions = Vec::new();
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    let decoded = decode(&frame, fsm.four_octet_as());
                    actions.extend(fsm.handle(Event::Received(decoded)));
                }
                Ok(None) => break,
                Err(n) => {
                    actions.extend(fsm.handle(Event::Received(Err(n))));
                    break;
                }
            }
        }
        actions
    }

    #[test]
    fn malformed_messages_from_the_peer_get_a_notification_and_a_reconnect() {
        let mut bad_marker = raw(4, &[]);
        bad_marker[0] = 0;
        let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
            ("bad_marker", bad_marker, (1, 1)),
            (
                "short_length",
                {
                    let mut m = raw(4, &[]);
                    m[17] = 10;
                    m
                },
                (1, 2),
            ),
            ("unknown_type", raw(7, &[]), (1, 3)),
            ("keepalive_with_a_body", raw(4, &[0]), (1, 2)),
            ("update_lengths_overrun", raw(2, &[0, 50, 0, 0]), (3, 1)),
            (
                "update_nlri_without_attributes",
                raw(2, &[0, 0, 0, 0, 24, 10, 0, 0]),
                (3, 3),
            ),
            (
                "update_bad_origin",
                raw(2, &[0, 0, 0, 4, 0x40, 1, 1, 7]),
                (3, 6),
            ),
        ];
        for (rule, bytes, (c, s)) in cases {
            let mut fsm = fsm_in(State::Established, 65000);
            assert_eq!(show(&feed(&mut fsm, &bytes)), torn_down(c, s), "{rule}");
            assert_eq!(fsm.state(), State::Idle, "{rule}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never crash the decoder or the state machine; any
        /// error is answered by a NOTIFICATION, a close and a reconnect.
        #[test]
        fn random_bytes_never_crash_and_errors_reset_the_session(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            kind in 1u8..=6,
            garbage_header in any::<bool>(),
        ) {
            let mut fsm = fsm_in(State::Established, 65000);
            let bytes = if garbage_header { body.clone() } else { raw(kind, &body) };
            let actions = feed(&mut fsm, &bytes);
            let shown = show(&actions);
            if fsm.state() == State::Idle {
                prop_assert!(shown.contains(&"close".to_string()), "{shown:?}");
                prop_assert!(shown.contains(&"retry later".to_string()), "{shown:?}");
                let peer_notified = shown.iter().any(|s| s.starts_with("down: peer sent"));
                prop_assert!(
                    peer_notified || shown.iter().any(|s| s.starts_with("send NOTIFICATION")),
                    "{shown:?}"
                );
            }
        }

        /// Random corruption of a valid UPDATE of ours: never a crash.
        #[test]
        fn corrupted_updates_never_crash(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..6),
        ) {
            let mut fsm = fsm_in(State::Established, 65000);
            let ctx = UpdateContext {
                ibgp: false,
                local_asn: 65000,
                four_octet_as: true,
                ipv4: true,
                ipv6: true,
                next_hop_v4: Some(ROUTER),
                next_hop_v6: Some("fd00::1".parse().unwrap()),
            };
            let table = routes(&[("10.0.0.1/32", None), ("fc00::1/128", Some(5))]);
            let mut bytes: Vec<u8> = encode_announcements(&ctx, table.iter())
                .unwrap()
                .concat();
            let len = bytes.len();
            for (pos, value) in flips {
                bytes[pos % len] = value;
            }
            let _ = feed(&mut fsm, &bytes);
        }
    }
}
