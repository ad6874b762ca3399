//! One BFD session (RFC 5880 asynchronous mode), pure: packets and the
//! current time in, [`Effect`]s out. The caller owns the socket and the
//! clock: it sends every [`Effect::Send`], reports state changes to BGP,
//! and calls [`Session::on_timer`] at [`Session::next_deadline`].
//!
//! What the session never does: authentication (packets carrying it are
//! refused by the codec), echo (we advertise a Required Min Echo RX
//! Interval of zero, so the remote never sends us echo packets, and we send
//! none), demand mode (we never set D; a remote asking for it is honoured
//! only as far as 6.8.7 requires, by not sending periodic packets while
//! both ends are Up).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use ferrolb_config::model::BfdProfile;

use crate::bfd::SINGLE_HOP_TTL;
use crate::bfd::packet::{Diagnostic, Packet, State};

/// The slowest-start rule of 6.8.3: while not Up, Desired Min TX is at
/// least one second.
pub const SLOW_TX_US: u32 = 1_000_000;

/// Per-session settings (from a BFD profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Required Min RX Interval we advertise, ms (0 is read as 1).
    pub receive_interval_ms: u32,
    /// Desired Min TX Interval once Up, ms (0 is read as 1).
    pub transmit_interval_ms: u32,
    /// Detect Mult we advertise (0 is read as 1).
    pub detect_multiplier: u8,
    /// Passive role (6.1): send nothing until the remote is heard.
    pub passive: bool,
    /// Lowest TTL / hop limit accepted on receive. Single hop (RFC 5881
    /// section 5) requires 255, the default; lower values only make sense
    /// for multihop sessions, which are not implemented.
    pub minimum_ttl: u8,
}

impl Default for Config {
    /// The BFD profile defaults MetalLB documents: 300 ms both ways, detect
    /// multiplier 3, active; single-hop TTL.
    fn default() -> Self {
        Config {
            receive_interval_ms: 300,
            transmit_interval_ms: 300,
            detect_multiplier: 3,
            passive: false,
            minimum_ttl: SINGLE_HOP_TTL,
        }
    }
}

impl Config {
    /// Whether a packet that arrived with this TTL (hop limit) is accepted.
    pub fn accepts_ttl(&self, ttl: u8) -> bool {
        ttl >= self.minimum_ttl
    }

    /// A single-hop session's settings from a validated profile: unset
    /// fields take the defaults. The profile's `minimum-ttl` is a multihop
    /// setting and does not lower the single-hop TTL check; `echo-mode` is
    /// not supported and ignored.
    pub fn from_profile(profile: &BfdProfile) -> Config {
        let d = Config::default();
        Config {
            receive_interval_ms: profile.receive_interval_ms.unwrap_or(d.receive_interval_ms),
            transmit_interval_ms: profile
                .transmit_interval_ms
                .unwrap_or(d.transmit_interval_ms),
            detect_multiplier: profile.detect_multiplier.map_or(d.detect_multiplier, |m| {
                u8::try_from(m.clamp(1, 255)).unwrap_or(u8::MAX)
            }),
            passive: profile.passive_mode,
            minimum_ttl: SINGLE_HOP_TTL,
        }
    }

    fn required_min_rx_us(&self) -> u32 {
        ms_to_us(self.receive_interval_ms)
    }

    fn desired_min_tx_us(&self) -> u32 {
        ms_to_us(self.transmit_interval_ms)
    }

    fn detect_mult(&self) -> u8 {
        self.detect_multiplier.max(1)
    }
}

fn ms_to_us(ms: u32) -> u32 {
    ms.max(1).saturating_mul(1000)
}

fn micros(us: u64) -> Duration {
    Duration::from_micros(us)
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// What the caller must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this packet to the peer now.
    Send(Packet),
    /// The session changed state (`diag` is our new local diagnostic).
    StateChanged {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        diag: Diagnostic,
    },
}

/// The two intervals we advertise, microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timers {
    desired_min_tx_us: u32,
    required_min_rx_us: u32,
}

/// A BFD session with one peer.
#[derive(Debug, Clone)]
pub struct Session {
    config: Config,
    state: State,
    local_discriminator: u32,
    local_diag: Diagnostic,
    remote_state: State,
    remote_discriminator: u32,
    remote_min_rx_us: u32,
    remote_desired_min_tx_us: u32,
    remote_detect_mult: u8,
    remote_demand: bool,
    /// What our packets carry now.
    advertised: Timers,
    /// What we use: during a poll sequence, the safer of the values the
    /// remote may hold (6.8.3).
    effective: Timers,
    /// The values a running poll sequence carries.
    poll: Option<Timers>,
    next_tx: Option<Instant>,
    last_received: Option<Instant>,
    rng: fastrand::Rng,
}

impl Session {
    /// A session in Down; an active one wants to send at once. The jitter
    /// is seeded from the discriminator (see [`Session::with_seed`]).
    pub fn new(config: Config, local_discriminator: NonZeroU32, now: Instant) -> Session {
        Session::with_seed(
            config,
            local_discriminator,
            now,
            u64::from(local_discriminator.get()),
        )
    }

    /// As [`Session::new`], with the seed of the transmission jitter.
    pub fn with_seed(
        config: Config,
        local_discriminator: NonZeroU32,
        now: Instant,
        seed: u64,
    ) -> Session {
        let timers = target_timers(&config, State::Down);
        Session {
            config,
            state: State::Down,
            local_discriminator: local_discriminator.get(),
            local_diag: Diagnostic::NoDiagnostic,
            remote_state: State::Down,
            remote_discriminator: 0,
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            advertised: timers,
            effective: timers,
            poll: None,
            next_tx: if config.passive { None } else { Some(now) },
            last_received: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.LocalDiag.
    pub fn local_diag(&self) -> Diagnostic {
        self.local_diag
    }

    /// bfd.LocalDiscr.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// bfd.RemoteDiscr (0 until heard, and again after a detection time of
    /// silence).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discriminator
    }

    /// bfd.RemoteSessionState.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a poll sequence is running.
    pub fn is_polling(&self) -> bool {
        self.poll.is_some()
    }

    /// The negotiated interval between periodic packets before jitter
    /// (6.8.7), or `None` while periodic transmission is off.
    pub fn transmit_interval(&self) -> Option<Duration> {
        self.periodic_allowed()
            .then(|| micros(u64::from(self.tx_interval_us())))
    }

    /// The detection time (6.8.4), or `None` before the remote is heard.
    pub fn detection_time(&self) -> Option<Duration> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        let agreed = self
            .effective
            .required_min_rx_us
            .max(self.remote_desired_min_tx_us)
            .max(1);
        Some(micros(
            u64::from(self.remote_detect_mult) * u64::from(agreed),
        ))
    }

    /// When [`Session::on_timer`] must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detection_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A received packet (already through [`Packet::decode`] and the TTL
    /// check, and demultiplexed to this session): 6.8.6.
    pub fn on_packet(&mut self, packet: &Packet, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if packet.validate().is_err()
            || (packet.your_discriminator != 0
                && packet.your_discriminator != self.local_discriminator)
        {
            return effects;
        }
        self.remote_discriminator = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.demand;
        self.remote_min_rx_us = packet.required_min_rx_us;
        self.remote_desired_min_tx_us = packet.desired_min_tx_us;
        self.remote_detect_mult = packet.detect_mult;
        // Required Min Echo RX is not kept: we never send echo packets.
        if packet.final_ {
            self.terminate_poll();
        }
        if self.state == State::AdminDown {
            return effects;
        }
        let change = match (self.state, packet.state) {
            (from, State::AdminDown) if from != State::Down => {
                Some((State::Down, Diagnostic::NeighborSignaledSessionDown))
            }
            (State::Down, State::Down) => Some((State::Init, Diagnostic::NoDiagnostic)),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                Some((State::Up, Diagnostic::NoDiagnostic))
            }
            (State::Up, State::Down) => {
                Some((State::Down, Diagnostic::NeighborSignaledSessionDown))
            }
            _ => None,
        };
        if let Some((to, diag)) = change {
            self.change_state(to, diag, &mut effects);
        }
        self.last_received = Some(now);
        if packet.poll {
            effects.push(Effect::Send(self.packet(false, true)));
        }
        self.schedule(now, change.is_some(), &mut effects);
        effects
    }

    /// Time has passed: detection timeout (6.8.4) and periodic
    /// transmission (6.8.7).
    pub fn on_timer(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut changed = false;
        if let Some(deadline) = self.detection_deadline()
            && now >= deadline
        {
            self.last_received = None;
            self.forget_remote();
            if matches!(self.state, State::Init | State::Up) {
                self.change_state(
                    State::Down,
                    Diagnostic::ControlDetectionTimeExpired,
                    &mut effects,
                );
                changed = true;
            }
        }
        if changed {
            self.schedule(now, true, &mut effects);
        } else if !self.periodic_allowed() {
            self.next_tx = None;
        } else if self.next_tx.is_some_and(|t| now >= t) {
            self.send_periodic(now, &mut effects);
        }
        effects
    }

    /// Administratively disable the session (6.8.16): AdminDown with
    /// diagnostic 7; AdminDown packets keep going out at the slow rate.
    pub fn admin_down(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state == State::AdminDown {
            return effects;
        }
        self.last_received = None;
        self.change_state(
            State::AdminDown,
            Diagnostic::AdministrativelyDown,
            &mut effects,
        );
        self.schedule(now, true, &mut effects);
        effects
    }

    /// Enable an AdminDown session again (6.8.16): it goes to Down.
    pub fn admin_up(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.state != State::AdminDown {
            return effects;
        }
        let diag = self.local_diag;
        self.change_state(State::Down, diag, &mut effects);
        self.schedule(now, true, &mut effects);
        effects
    }

    /// New settings: changed intervals start a poll sequence (6.8.3).
    pub fn reconfigure(&mut self, config: Config, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.config = config;
        let poll_started = self.update_timers();
        self.schedule(now, poll_started, &mut effects);
        effects
    }

    fn detection_deadline(&self) -> Option<Instant> {
        let last = self.last_received?;
        if self.state == State::AdminDown {
            return None;
        }
        Some(after(last, self.detection_time()?))
    }

    /// 6.8.1: after a detection time of silence the remote is unknown again.
    fn forget_remote(&mut self) {
        self.remote_discriminator = 0;
        self.remote_state = State::Down;
        self.remote_min_rx_us = 1;
        self.remote_desired_min_tx_us = 0;
        self.remote_detect_mult = 0;
        self.remote_demand = false;
    }

    fn change_state(&mut self, to: State, diag: Diagnostic, effects: &mut Vec<Effect>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        effects.push(Effect::StateChanged { from, to, diag });
        self.update_timers();
    }

    /// Bring the advertised intervals in line with the state and settings
    /// (6.8.3); returns whether a poll sequence started.
    fn update_timers(&mut self) -> bool {
        let target = target_timers(&self.config, self.state);
        let changed = target != self.advertised;
        self.advertised = target;
        if self.state != State::Up {
            // Not Up: 6.8.3 restricts nothing, the new values apply at once.
            self.effective = target;
        } else if changed {
            // A faster TX or slower RX is safe at once; a slower TX or a
            // faster RX waits for the remote's Final.
            self.effective = Timers {
                desired_min_tx_us: self
                    .effective
                    .desired_min_tx_us
                    .min(target.desired_min_tx_us),
                required_min_rx_us: self
                    .effective
                    .required_min_rx_us
                    .max(target.required_min_rx_us),
            };
        }
        if !changed {
            return false;
        }
        if self.poll.is_none() {
            self.poll = Some(target);
            true
        } else {
            // Polled again once the running sequence ends.
            false
        }
    }

    /// A Final arrived: the remote holds the polled values (6.5).
    fn terminate_poll(&mut self) {
        let Some(polled) = self.poll.take() else {
            return;
        };
        if polled == self.advertised {
            self.effective = self.advertised;
        } else {
            self.poll = Some(self.advertised);
        }
    }

    /// 6.8.7: periodic packets may go out.
    fn periodic_allowed(&self) -> bool {
        self.may_send()
            && self.remote_min_rx_us != 0
            && !(self.remote_demand
                && self.state == State::Up
                && self.remote_state == State::Up
                && self.poll.is_none())
    }

    /// 6.8.7: a passive session says nothing before it knows the remote.
    fn may_send(&self) -> bool {
        !(self.config.passive && self.remote_discriminator == 0)
    }

    fn tx_interval_us(&self) -> u32 {
        self.effective
            .desired_min_tx_us
            .max(self.remote_min_rx_us)
            .max(1)
    }

    /// The next gap between periodic packets: 75 to 100 % of the interval,
    /// 75 to 90 % with a detect multiplier of 1 (6.8.7).
    fn jittered_interval(&mut self) -> Duration {
        let top = if self.config.detect_mult() == 1 {
            900
        } else {
            1000
        };
        let permille = self.rng.u64(750..=top);
        micros((u64::from(self.tx_interval_us()) * permille / 1000).max(1))
    }

    fn packet(&self, poll: bool, final_: bool) -> Packet {
        Packet {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult(),
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx_us: self.advertised.desired_min_tx_us,
            required_min_rx_us: self.advertised.required_min_rx_us,
            required_min_echo_rx_us: 0,
        }
    }

    fn send_periodic(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        effects.push(Effect::Send(self.packet(self.poll.is_some(), false)));
        let gap = self.jittered_interval();
        self.next_tx = Some(after(now, gap));
    }

    /// Keep the transmission timer consistent after an event; `immediate`
    /// sends a packet now (state change, new poll sequence).
    fn schedule(&mut self, now: Instant, immediate: bool, effects: &mut Vec<Effect>) {
        if !self.periodic_allowed() {
            self.next_tx = None;
            if immediate && self.may_send() {
                effects.push(Effect::Send(self.packet(self.poll.is_some(), false)));
            }
            return;
        }
        match self.next_tx {
            None => self.send_periodic(now, effects),
            Some(_) if immediate => self.send_periodic(now, effects),
            Some(at) => {
                // A faster negotiated rate applies from the next packet.
                let bound = after(now, micros(u64::from(self.tx_interval_us())));
                if at > bound {
                    self.next_tx = Some(bound);
                }
            }
        }
    }
}

fn target_timers(config: &Config, state: State) -> Timers {
    let tx = config.desired_min_tx_us();
    Timers {
        desired_min_tx_us: if state == State::Up {
            tx
        } else {
            tx.max(SLOW_TX_US)
        },
        required_min_rx_us: config.required_min_rx_us(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::packet::DecodeError;
    use proptest::prelude::*;

    const LOCAL: u32 = 0x1111;
    const REMOTE: u32 = 0xbeef;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn disc(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn peer(state: State, your: u32) -> Packet {
        Packet {
            diag: Diagnostic::NoDiagnostic,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: REMOTE,
            your_discriminator: your,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    fn sent(effects: &[Effect]) -> Vec<Packet> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(p) => Some(*p),
                Effect::StateChanged { .. } => None,
            })
            .collect()
    }

    fn changes(effects: &[Effect]) -> Vec<(State, State, Diagnostic)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
                Effect::Send(_) => None,
            })
            .collect()
    }

    fn session(config: Config, now: Instant) -> Session {
        Session::new(config, disc(LOCAL), now)
    }

    /// An active session brought Up by the remote, its first poll answered.
    fn up_session(config: Config, now: Instant) -> Session {
        let mut s = session(config, now);
        s.on_packet(&peer(State::Down, 0), now);
        s.on_packet(&peer(State::Up, LOCAL), now);
        assert_eq!(s.state(), State::Up);
        s.on_packet(
            &Packet {
                final_: true,
                ..peer(State::Up, LOCAL)
            },
            now,
        );
        assert!(!s.is_polling());
        s
    }

    fn in_state(state: State, now: Instant) -> Session {
        let mut s = session(Config::default(), now);
        match state {
            State::Down => {}
            State::Init => {
                s.on_packet(&peer(State::Down, 0), now);
            }
            State::Up => s = up_session(Config::default(), now),
            State::AdminDown => {
                s.admin_down(now);
            }
        }
        assert_eq!(s.state(), state);
        s
    }

    #[test]
    fn rfc5880_6_8_6_state_table() {
        use Diagnostic::{NeighborSignaledSessionDown as Nbr, NoDiagnostic as No};
        use State::{AdminDown, Down, Init, Up};
        // (ours, received) -> (ours after, change diagnostic if any)
        let table = [
            (Down, AdminDown, Down, None),
            (Down, Down, Init, Some(No)),
            (Down, Init, Up, Some(No)),
            (Down, Up, Down, None),
            (Init, AdminDown, Down, Some(Nbr)),
            (Init, Down, Init, None),
            (Init, Init, Up, Some(No)),
            (Init, Up, Up, Some(No)),
            (Up, AdminDown, Down, Some(Nbr)),
            (Up, Down, Down, Some(Nbr)),
            (Up, Init, Up, None),
            (Up, Up, Up, None),
            (AdminDown, AdminDown, AdminDown, None),
            (AdminDown, Down, AdminDown, None),
            (AdminDown, Init, AdminDown, None),
            (AdminDown, Up, AdminDown, None),
        ];
        let now = Instant::now();
        for (ours, received, after, diag) in table {
            let mut s = in_state(ours, now);
            let your = if matches!(received, Init | Up) {
                LOCAL
            } else {
                0
            };
            let effects = s.on_packet(&peer(received, your), now);
            assert_eq!(s.state(), after, "{ours:?} + {received:?}");
            let expected: Vec<_> = diag.map(|d| (ours, after, d)).into_iter().collect();
            assert_eq!(changes(&effects), expected, "{ours:?} + {received:?}");
        }
    }

    #[test]
    fn down_to_init_on_remote_down() {
        let now = Instant::now();
        let mut s = session(Config::default(), now);
        let effects = s.on_packet(&peer(State::Down, 0), now);
        assert_eq!(
            changes(&effects),
            vec![(State::Down, State::Init, Diagnostic::NoDiagnostic)]
        );
        assert_eq!(s.remote_discriminator(), REMOTE);
        // The new state goes out at once, addressed to the remote.
        let out = sent(&effects);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].state, State::Init);
        assert_eq!(out[0].your_discriminator, REMOTE);
        assert_eq!(out[0].my_discriminator, LOCAL);
    }

    #[test]
    fn init_to_up_on_remote_init() {
        let now = Instant::now();
        let mut s = in_state(State::Init, now);
        let effects = s.on_packet(&peer(State::Init, LOCAL), now);
        assert_eq!(
            changes(&effects),
            vec![(State::Init, State::Up, Diagnostic::NoDiagnostic)]
        );
        assert_eq!(sent(&effects)[0].state, State::Up);
    }

    #[test]
    fn up_to_down_on_remote_down_with_diag_3() {
        let now = Instant::now();
        let mut s = in_state(State::Up, now);
        let effects = s.on_packet(&peer(State::Down, LOCAL), now);
        assert_eq!(
            changes(&effects),
            vec![(
                State::Up,
                State::Down,
                Diagnostic::NeighborSignaledSessionDown
            )]
        );
        assert_eq!(sent(&effects)[0].diag.code(), 3);
    }

    #[test]
    fn detection_timeout_brings_up_session_down_with_diag_1() {
        let t = Instant::now();
        let mut s = in_state(State::Up, t);
        // 3 (remote mult) x max(300 ms ours, 300 ms theirs).
        assert_eq!(s.detection_time(), Some(ms(900)));
        assert!(changes(&s.on_timer(t + ms(899))).is_empty());
        assert!(s.next_deadline().is_some_and(|d| d <= t + ms(900)));
        let effects = s.on_timer(t + ms(900));
        assert_eq!(
            changes(&effects),
            vec![(
                State::Up,
                State::Down,
                Diagnostic::ControlDetectionTimeExpired
            )]
        );
        let out = sent(&effects);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].diag.code(), 1);
        assert_eq!(out[0].your_discriminator, 0);
        assert_eq!(s.remote_discriminator(), 0);
        assert_eq!(s.detection_time(), None);
    }

    #[test]
    fn a_packet_restarts_the_detection_timer() {
        let t = Instant::now();
        let mut s = in_state(State::Up, t);
        s.on_packet(&peer(State::Up, LOCAL), t + ms(800));
        assert!(changes(&s.on_timer(t + ms(1600))).is_empty());
        assert_eq!(s.state(), State::Up);
        assert!(!changes(&s.on_timer(t + ms(1700))).is_empty());
    }

    #[test]
    fn detection_timeout_in_down_forgets_the_remote_without_state_change() {
        let t = Instant::now();
        let mut s = session(Config::default(), t);
        s.on_packet(&peer(State::Up, LOCAL), t); // stays Down
        assert_eq!(s.remote_discriminator(), REMOTE);
        let effects = s.on_timer(t + ms(900));
        assert!(changes(&effects).is_empty());
        assert_eq!(s.remote_discriminator(), 0);
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn rfc5880_6_8_4_detection_time_is_remote_mult_times_slower_of_our_rx_and_their_tx() {
        let t = Instant::now();
        let cases = [
            // (our rx ms, their tx us, their mult, expected ms)
            (300, 300_000, 3, 900),
            (300, 1_000_000, 3, 3000),
            (100, 50_000, 5, 500),
            (10, 0, 2, 20),
        ];
        for (rx, their_tx, mult, expected) in cases {
            let config = Config {
                receive_interval_ms: rx,
                ..Config::default()
            };
            let mut s = session(config, t);
            s.on_packet(
                &Packet {
                    detect_mult: mult,
                    desired_min_tx_us: their_tx,
                    ..peer(State::Down, 0)
                },
                t,
            );
            assert_eq!(
                s.detection_time(),
                Some(ms(expected)),
                "{rx} {their_tx} {mult}"
            );
        }
    }

    #[test]
    fn tx_interval_is_at_least_one_second_until_up() {
        let t = Instant::now();
        let config = Config {
            transmit_interval_ms: 10,
            receive_interval_ms: 10,
            ..Config::default()
        };
        let fast_peer = |state, your| Packet {
            desired_min_tx_us: 10_000,
            required_min_rx_us: 10_000,
            ..peer(state, your)
        };
        let mut s = session(config, t);
        assert_eq!(s.transmit_interval(), Some(ms(1000)));
        assert_eq!(sent(&s.on_timer(t))[0].desired_min_tx_us, 1_000_000);
        s.on_packet(&fast_peer(State::Down, 0), t);
        assert_eq!(s.state(), State::Init);
        assert_eq!(s.transmit_interval(), Some(ms(1000)));
        let effects = s.on_packet(&fast_peer(State::Up, LOCAL), t);
        assert_eq!(s.state(), State::Up);
        // Up: the faster rate is advertised (with a poll) and used at once.
        let out = sent(&effects);
        assert!(out.iter().all(|p| p.desired_min_tx_us == 10_000));
        assert!(out.iter().any(|p| p.poll));
        assert_eq!(s.transmit_interval(), Some(ms(10)));
        // Down again: back to one second.
        s.on_packet(&fast_peer(State::Down, LOCAL), t);
        assert_eq!(s.state(), State::Down);
        assert_eq!(s.transmit_interval(), Some(ms(1000)));
        assert_eq!(
            sent(&s.on_timer(t + ms(2000)))[0].desired_min_tx_us,
            1_000_000
        );
    }

    #[test]
    fn rfc5880_6_8_7_tx_interval_is_the_slower_of_our_tx_and_their_rx() {
        let t = Instant::now();
        let cases = [
            (300, 300_000, 300),
            (300, 1_000_000, 1000),
            (1000, 50_000, 1000),
        ];
        for (tx, their_rx, expected) in cases {
            let config = Config {
                transmit_interval_ms: tx,
                ..Config::default()
            };
            let mut s = up_session(config, t);
            s.on_packet(
                &Packet {
                    required_min_rx_us: their_rx,
                    ..peer(State::Up, LOCAL)
                },
                t,
            );
            assert_eq!(s.transmit_interval(), Some(ms(expected)), "{tx} {their_rx}");
        }
    }

    #[test]
    fn remote_min_rx_zero_stops_periodic_transmission() {
        let t = Instant::now();
        let mut s = in_state(State::Up, t);
        s.on_packet(
            &Packet {
                required_min_rx_us: 0,
                ..peer(State::Up, LOCAL)
            },
            t,
        );
        assert_eq!(s.transmit_interval(), None);
        assert!(sent(&s.on_timer(t + ms(500))).is_empty());
        // A poll is still answered.
        let effects = s.on_packet(
            &Packet {
                required_min_rx_us: 0,
                poll: true,
                ..peer(State::Up, LOCAL)
            },
            t + ms(600),
        );
        assert!(sent(&effects)[0].final_);
    }

    #[test]
    fn jitter_stays_within_75_to_100_percent() {
        let t = Instant::now();
        for (mult, top) in [(3u8, 1000u128), (2, 1000), (1, 900)] {
            let config = Config {
                detect_multiplier: mult,
                ..Config::default()
            };
            let (mut lowest, mut highest) = (u128::MAX, 0u128);
            for seed in 0..20 {
                let mut s = Session::with_seed(config, disc(LOCAL), t, seed);
                s.on_packet(&peer(State::Down, 0), t);
                s = {
                    s.on_packet(&peer(State::Up, LOCAL), t);
                    s.on_packet(
                        &Packet {
                            final_: true,
                            ..peer(State::Up, LOCAL)
                        },
                        t,
                    );
                    s
                };
                let interval = s.transmit_interval().unwrap().as_micros();
                assert_eq!(interval, 300_000);
                let mut now = t;
                for _ in 0..50 {
                    s.on_packet(&peer(State::Up, LOCAL), now);
                    let next = s.next_deadline().unwrap();
                    let effects = s.on_timer(next);
                    assert_eq!(sent(&effects).len(), 1);
                    let gap = (s.next_deadline().unwrap() - next).as_micros();
                    let permille = gap * 1000 / interval;
                    assert!((750..=top).contains(&permille), "mult {mult}: {permille}");
                    lowest = lowest.min(permille);
                    highest = highest.max(permille);
                    now = next;
                }
            }
            // It does vary over the whole band.
            assert!(lowest < 770 && highest > top - 20, "{lowest}..{highest}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_jitter() {
        let t = Instant::now();
        let gaps = |seed| {
            let mut s = Session::with_seed(Config::default(), disc(LOCAL), t, seed);
            (0..10)
                .map(|_| {
                    let next = s.next_deadline().unwrap();
                    s.on_timer(next);
                    s.next_deadline().unwrap() - next
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(gaps(7), gaps(7));
        assert_ne!(gaps(7), gaps(8));
    }

    #[test]
    fn poll_is_answered_with_final_at_once() {
        let t = Instant::now();
        for state in [State::Down, State::Init, State::Up] {
            let mut s = in_state(state, t);
            let your = if state == State::Down { 0 } else { LOCAL };
            let received = state;
            let effects = s.on_packet(
                &Packet {
                    poll: true,
                    ..peer(received, your)
                },
                t,
            );
            let finals: Vec<_> = sent(&effects).into_iter().filter(|p| p.final_).collect();
            assert_eq!(finals.len(), 1, "{state:?}");
            assert!(!finals[0].poll, "a Final never carries Poll");
        }
    }

    #[test]
    fn poll_sequence_applies_new_intervals_after_final() {
        let t = Instant::now();
        let slow_sender = |poll: bool, final_: bool| Packet {
            poll,
            final_,
            desired_min_tx_us: 50_000,
            ..peer(State::Up, LOCAL)
        };
        let mut s = up_session(Config::default(), t);
        s.on_packet(&slow_sender(false, false), t);
        assert_eq!(s.transmit_interval(), Some(ms(300)));
        assert_eq!(s.detection_time(), Some(ms(900)));

        // Slower TX, faster RX: advertised with P at once, used only after F.
        let new = Config {
            transmit_interval_ms: 1000,
            receive_interval_ms: 100,
            ..Config::default()
        };
        let effects = s.reconfigure(new, t);
        let out = sent(&effects);
        assert_eq!(out.len(), 1);
        assert!(out[0].poll && !out[0].final_);
        assert_eq!(out[0].desired_min_tx_us, 1_000_000);
        assert_eq!(out[0].required_min_rx_us, 100_000);
        assert!(s.is_polling());
        assert_eq!(s.transmit_interval(), Some(ms(300)));
        assert_eq!(s.detection_time(), Some(ms(900)));

        // Periodic packets keep P until the Final; a packet without F
        // changes nothing.
        s.on_packet(&slow_sender(false, false), t + ms(100));
        let next = s.next_deadline().unwrap();
        assert!(sent(&s.on_timer(next))[0].poll);
        assert_eq!(s.transmit_interval(), Some(ms(300)));

        s.on_packet(&slow_sender(false, true), next);
        assert!(!s.is_polling());
        assert_eq!(s.transmit_interval(), Some(ms(1000)));
        // 3 x max(100 ms ours, 50 ms theirs).
        assert_eq!(s.detection_time(), Some(ms(300)));
        let next = s.next_deadline().unwrap();
        assert!(!sent(&s.on_timer(next))[0].poll);
    }

    #[test]
    fn safe_direction_changes_apply_at_once_during_a_poll() {
        let t = Instant::now();
        let mut s = up_session(
            Config {
                transmit_interval_ms: 1000,
                receive_interval_ms: 100,
                ..Config::default()
            },
            t,
        );
        s.on_packet(
            &Packet {
                desired_min_tx_us: 50_000,
                required_min_rx_us: 50_000,
                ..peer(State::Up, LOCAL)
            },
            t,
        );
        assert_eq!(s.transmit_interval(), Some(ms(1000)));
        assert_eq!(s.detection_time(), Some(ms(300)));
        s.reconfigure(
            Config {
                transmit_interval_ms: 200,
                receive_interval_ms: 400,
                ..Config::default()
            },
            t,
        );
        assert!(s.is_polling());
        assert_eq!(s.transmit_interval(), Some(ms(200)));
        assert_eq!(s.detection_time(), Some(ms(1200)));
    }

    #[test]
    fn a_change_during_a_poll_is_polled_again_after_final() {
        let t = Instant::now();
        let mut s = up_session(Config::default(), t);
        let first = Config {
            transmit_interval_ms: 600,
            ..Config::default()
        };
        let second = Config {
            transmit_interval_ms: 900,
            ..Config::default()
        };
        s.reconfigure(first, t);
        assert!(sent(&s.reconfigure(second, t)).iter().all(|p| p.poll));
        let fin = Packet {
            final_: true,
            ..peer(State::Up, LOCAL)
        };
        s.on_packet(&fin, t);
        // The remote may hold 600 or 900: still polling, still at 300 ms.
        assert!(s.is_polling());
        assert_eq!(s.transmit_interval(), Some(ms(300)));
        s.on_packet(&fin, t);
        assert!(!s.is_polling());
        assert_eq!(s.transmit_interval(), Some(ms(900)));
    }

    #[test]
    fn passive_session_sends_nothing_until_it_hears_the_peer() {
        let t = Instant::now();
        let config = Config {
            passive: true,
            ..Config::default()
        };
        let mut s = session(config, t);
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.transmit_interval(), None);
        for later in [0, 1000, 60_000] {
            assert!(s.on_timer(t + ms(later)).is_empty());
        }
        let effects = s.on_packet(&peer(State::Down, 0), t + ms(61_000));
        assert_eq!(s.state(), State::Init);
        assert_eq!(sent(&effects).len(), 1);
        assert!(s.next_deadline().is_some());
        // Silence again: back to Down, and quiet once the remote is forgotten.
        let effects = s.on_timer(t + ms(70_000));
        assert_eq!(s.state(), State::Down);
        assert!(sent(&effects).is_empty());
        assert!(s.on_timer(t + ms(80_000)).is_empty());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn active_session_sends_down_packets_from_the_start() {
        let t = Instant::now();
        let mut s = session(Config::default(), t);
        assert_eq!(s.next_deadline(), Some(t));
        let out = sent(&s.on_timer(t));
        assert_eq!(
            out,
            vec![Packet {
                diag: Diagnostic::NoDiagnostic,
                state: State::Down,
                poll: false,
                final_: false,
                control_plane_independent: false,
                demand: false,
                detect_mult: 3,
                my_discriminator: LOCAL,
                your_discriminator: 0,
                desired_min_tx_us: 1_000_000,
                required_min_rx_us: 300_000,
                required_min_echo_rx_us: 0,
            }]
        );
        // Nothing more before the next (jittered) second.
        let next = s.next_deadline().unwrap();
        assert!(next >= t + ms(750) && next <= t + ms(1000));
        assert!(s.on_timer(next - ms(1)).is_empty());
    }

    #[test]
    fn admin_down_sends_diag_7_and_ignores_packets_until_admin_up() {
        let t = Instant::now();
        let mut s = in_state(State::Up, t);
        let effects = s.admin_down(t);
        assert_eq!(
            changes(&effects),
            vec![(
                State::Up,
                State::AdminDown,
                Diagnostic::AdministrativelyDown
            )]
        );
        let out = sent(&effects);
        assert_eq!(out[0].state, State::AdminDown);
        assert_eq!(out[0].diag.code(), 7);
        assert_eq!(out[0].desired_min_tx_us, 1_000_000);
        assert!(s.admin_down(t).is_empty());
        assert!(changes(&s.on_packet(&peer(State::Up, LOCAL), t)).is_empty());
        // No detection timeout while AdminDown, but packets keep going out.
        let effects = s.on_timer(t + ms(5000));
        assert!(changes(&effects).is_empty());
        assert_eq!(sent(&effects)[0].state, State::AdminDown);
        let effects = s.admin_up(t + ms(6000));
        assert_eq!(s.state(), State::Down);
        assert_eq!(changes(&effects)[0].1, State::Down);
        assert!(s.admin_up(t).is_empty());
    }

    #[test]
    fn echo_and_demand_are_never_used() {
        let t = Instant::now();
        let mut s = session(Config::default(), t);
        let mut all = sent(&s.on_timer(t));
        let wants_echo = Packet {
            required_min_echo_rx_us: 50_000,
            demand: true,
            ..peer(State::Down, 0)
        };
        all.extend(sent(&s.on_packet(&wants_echo, t)));
        all.extend(sent(&s.on_packet(
            &Packet {
                state: State::Up,
                your_discriminator: LOCAL,
                ..wants_echo
            },
            t,
        )));
        assert_eq!(s.state(), State::Up);
        assert!(!all.is_empty());
        assert!(
            all.iter()
                .all(|p| p.required_min_echo_rx_us == 0 && !p.demand)
        );
    }

    #[test]
    fn rfc5880_6_8_7_remote_demand_stops_periodic_packets_once_both_are_up() {
        let t = Instant::now();
        let mut s = in_state(State::Up, t);
        let demand = Packet {
            demand: true,
            ..peer(State::Up, LOCAL)
        };
        s.on_packet(&demand, t);
        assert_eq!(s.transmit_interval(), None);
        assert!(sent(&s.on_timer(t + ms(500))).is_empty());
        // Its poll is still answered, and our detection keeps running.
        let effects = s.on_packet(
            &Packet {
                poll: true,
                ..demand
            },
            t + ms(600),
        );
        assert!(sent(&effects)[0].final_);
        s.on_timer(t + ms(1600));
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn invalid_or_misaddressed_packets_are_ignored() {
        let t = Instant::now();
        let bad = [
            (
                "detect_mult_zero",
                Packet {
                    detect_mult: 0,
                    ..peer(State::Down, 0)
                },
            ),
            (
                "my_discriminator_zero",
                Packet {
                    my_discriminator: 0,
                    ..peer(State::Down, 0)
                },
            ),
            ("your_zero_in_up", peer(State::Up, 0)),
            (
                "another_sessions_discriminator",
                peer(State::Down, LOCAL + 1),
            ),
        ];
        for (name, packet) in bad {
            let mut s = session(Config::default(), t);
            assert!(s.on_packet(&packet, t).is_empty(), "{name}");
            assert_eq!(s.remote_discriminator(), 0, "{name}");
            assert_eq!(s.state(), State::Down, "{name}");
        }
        assert_eq!(
            peer(State::Up, 0).validate(),
            Err(DecodeError::YourDiscriminatorZero { state: State::Up })
        );
    }

    #[test]
    fn rfc5881_5_single_hop_accepts_only_ttl_255() {
        let config = Config::default();
        assert!(config.accepts_ttl(255));
        for ttl in [0, 1, 64, 254] {
            assert!(!config.accepts_ttl(ttl), "{ttl}");
        }
    }

    #[test]
    fn defaults_follow_bfd_profile_defaults() {
        assert_eq!(
            Config::default(),
            Config {
                receive_interval_ms: 300,
                transmit_interval_ms: 300,
                detect_multiplier: 3,
                passive: false,
                minimum_ttl: 255,
            }
        );
        let mut profile = BfdProfile {
            name: "p".into(),
            receive_interval_ms: None,
            transmit_interval_ms: None,
            echo_interval_ms: None,
            detect_multiplier: None,
            echo_mode: false,
            passive_mode: false,
            minimum_ttl: None,
        };
        assert_eq!(Config::from_profile(&profile), Config::default());
        profile = BfdProfile {
            receive_interval_ms: Some(50),
            transmit_interval_ms: Some(70),
            detect_multiplier: Some(1000),
            passive_mode: true,
            minimum_ttl: Some(10),
            echo_mode: true,
            ..profile
        };
        assert_eq!(
            Config::from_profile(&profile),
            Config {
                receive_interval_ms: 50,
                transmit_interval_ms: 70,
                detect_multiplier: 255,
                passive: true,
                minimum_ttl: 255,
            }
        );
    }

    /// Two sessions wired back to back through encode/decode.
    #[test]
    fn two_sessions_come_up_and_detect_loss() {
        let t = Instant::now();
        let mut a = Session::new(Config::default(), disc(1), t);
        let mut b = Session::new(
            Config {
                passive: true,
                ..Config::default()
            },
            disc(2),
            t,
        );
        let mut now = t;
        let mut link_up = true;
        let mut a_changes = Vec::new();
        let mut b_changes = Vec::new();
        for _ in 0..200 {
            let Some(next) = [a.next_deadline(), b.next_deadline()]
                .into_iter()
                .flatten()
                .min()
            else {
                break;
            };
            now = now.max(next);
            let mut to_b: Vec<Packet> = Vec::new();
            let mut to_a: Vec<Packet> = Vec::new();
            let ea = a.on_timer(now);
            a_changes.extend(changes(&ea));
            to_b.extend(sent(&ea));
            let eb = b.on_timer(now);
            b_changes.extend(changes(&eb));
            to_a.extend(sent(&eb));
            while !to_a.is_empty() || !to_b.is_empty() {
                for p in std::mem::take(&mut to_b) {
                    let p = Packet::decode(&p.encode()).unwrap();
                    let e = b.on_packet(&p, now);
                    b_changes.extend(changes(&e));
                    to_a.extend(sent(&e));
                }
                for p in std::mem::take(&mut to_a) {
                    let p = Packet::decode(&p.encode()).unwrap();
                    if link_up {
                        let e = a.on_packet(&p, now);
                        a_changes.extend(changes(&e));
                        to_b.extend(sent(&e));
                    }
                }
            }
            if link_up && now >= t + ms(5000) {
                assert_eq!((a.state(), b.state()), (State::Up, State::Up));
                assert!(!a.is_polling() && !b.is_polling());
                assert_eq!(a.transmit_interval(), Some(ms(300)));
                assert_eq!(b.transmit_interval(), Some(ms(300)));
                link_up = false; // b -> a is cut from here
                a_changes.clear();
                b_changes.clear();
            }
            if !link_up && now >= t + ms(7000) {
                break;
            }
        }
        assert_eq!(
            a_changes.first(),
            Some(&(
                State::Up,
                State::Down,
                Diagnostic::ControlDetectionTimeExpired
            ))
        );
        assert_eq!(
            b_changes.first(),
            Some(&(
                State::Up,
                State::Down,
                Diagnostic::NeighborSignaledSessionDown
            ))
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Receive(Packet, u16),
        Timer(u16),
        AtDeadline,
        AdminDown,
        AdminUp,
        Reconfigure(Config),
    }

    fn any_packet() -> impl Strategy<Value = Packet> {
        (
            (0u8..32, 0u8..4, any::<[bool; 4]>(), 0u8..6),
            prop_oneof![Just(REMOTE), any::<u32>()],
            prop_oneof![Just(0), Just(LOCAL), any::<u32>()],
            prop_oneof![Just(0u32), 1u32..2_000_000, any::<u32>()],
            prop_oneof![Just(0u32), 1u32..2_000_000, any::<u32>()],
        )
            .prop_map(|((diag, state, flags, mult), my, your, tx, rx)| Packet {
                diag: Diagnostic::from_code(diag),
                state: State::from_code(state),
                poll: flags[0],
                final_: flags[1],
                control_plane_independent: flags[2],
                demand: flags[3],
                detect_mult: mult,
                my_discriminator: my,
                your_discriminator: your,
                desired_min_tx_us: tx,
                required_min_rx_us: rx,
                required_min_echo_rx_us: 0,
            })
    }

    fn any_config() -> impl Strategy<Value = Config> {
        (0u32..3000, 0u32..3000, any::<u8>(), any::<bool>()).prop_map(|(rx, tx, mult, passive)| {
            Config {
                receive_interval_ms: rx,
                transmit_interval_ms: tx,
                detect_multiplier: mult,
                passive,
                minimum_ttl: 255,
            }
        })
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any_packet(), 0u16..2000).prop_map(|(p, d)| Op::Receive(p, d)),
            3 => (0u16..3000).prop_map(Op::Timer),
            3 => Just(Op::AtDeadline),
            1 => Just(Op::AdminDown),
            1 => Just(Op::AdminUp),
            1 => any_config().prop_map(Op::Reconfigure),
        ]
    }

    proptest! {
        #[test]
        fn random_events_never_panic_and_keep_invariants(
            config in any_config(),
            seed in any::<u64>(),
            ops in proptest::collection::vec(any_op(), 0..80),
        ) {
            let t = Instant::now();
            let mut now = t;
            let mut s = Session::with_seed(config, disc(LOCAL), t, seed);
            for op in ops {
                let before = s.state();
                let effects = match op {
                    Op::Receive(p, d) => {
                        now += ms(u64::from(d));
                        // Deliver only what the decoder would.
                        match Packet::decode(&p.encode()) {
                            Ok(p) => s.on_packet(&p, now),
                            Err(_) => Vec::new(),
                        }
                    }
                    Op::Timer(d) => {
                        now += ms(u64::from(d));
                        s.on_timer(now)
                    }
                    Op::AtDeadline => {
                        if let Some(d) = s.next_deadline() {
                            now = now.max(d);
                        }
                        s.on_timer(now)
                    }
                    Op::AdminDown => s.admin_down(now),
                    Op::AdminUp => s.admin_up(now),
                    Op::Reconfigure(c) => s.reconfigure(c, now),
                };
                let mut state = before;
                for e in &effects {
                    match e {
                        Effect::Send(p) => {
                            prop_assert!(!(p.poll && p.final_));
                            prop_assert!(!p.demand);
                            prop_assert_eq!(p.required_min_echo_rx_us, 0);
                            prop_assert_eq!(p.my_discriminator, LOCAL);
                            prop_assert!(p.detect_mult >= 1);
                            prop_assert!(p.desired_min_tx_us > 0 && p.required_min_rx_us > 0);
                            if p.state != State::Up {
                                prop_assert!(p.desired_min_tx_us >= SLOW_TX_US);
                            }
                            prop_assert_eq!(Packet::decode(&p.encode()), Ok(*p));
                        }
                        Effect::StateChanged { from, to, .. } => {
                            prop_assert_eq!(*from, state);
                            prop_assert_ne!(from, to);
                            state = *to;
                        }
                    }
                }
                prop_assert_eq!(state, s.state());
                if s.config().passive && s.remote_discriminator() == 0 {
                    prop_assert!(effects.iter().all(|e| !matches!(e, Effect::Send(_))));
                    prop_assert_eq!(s.transmit_interval(), None);
                }
                if s.state() == State::Up || s.state() == State::Init {
                    prop_assert!(s.remote_discriminator() != 0);
                }
                if let Some(d) = s.transmit_interval() {
                    prop_assert!(d > Duration::ZERO);
                    if s.state() != State::Up {
                        prop_assert!(d >= ms(1000));
                    }
                }
                if let Some(d) = s.detection_time() {
                    prop_assert!(d > Duration::ZERO);
                }
            }
        }
    }
}
