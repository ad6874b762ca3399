//! Drivers for real BGP routers (BIRD, FRR, GoBGP) running in lab namespaces: start one with
//! an ASN, a router id and neighbours, read back its routes and sessions as data, originate
//! prefixes, stop and restart it.
//!
//! Every driver sets short reconnect timers (about 2 s) so that sessions come back quickly
//! after a peer restarts, and enables multipath (ECMP) so that a prefix announced by several
//! nodes keeps all its next hops.

pub mod bird;
pub mod frr;
pub mod gobgp;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::lab::LabError;

/// The router implementations the lab drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterKind {
    /// BIRD 2 (Debian `bird2`).
    Bird,
    /// FRRouting's zebra and bgpd (Debian `frr`).
    Frr,
    /// GoBGP (Debian `gobgpd`).
    Gobgp,
}

impl RouterKind {
    /// Every kind, in host-number order.
    pub const ALL: [RouterKind; 3] = [RouterKind::Bird, RouterKind::Frr, RouterKind::Gobgp];

    /// Its short name, also its lab host and namespace suffix.
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
            RouterKind::Gobgp => "gobgp",
        }
    }

    /// Its host number on the LAN (`192.168.4.201` for BIRD ...).
    pub fn host_number(self) -> u16 {
        match self {
            RouterKind::Bird => 201,
            RouterKind::Frr => 202,
            RouterKind::Gobgp => 203,
        }
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An address family a session carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// The family of prefix `net`.
    pub fn of_net(net: &IpNet) -> Self {
        Self::of(net.addr())
    }
}

/// A BGP neighbour of the router under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// Its address.
    pub address: IpAddr,
    /// Its ASN (equal to ours for iBGP).
    pub asn: u32,
    /// Wait for it to connect instead of connecting.
    pub passive: bool,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// eBGP multihop TTL.
    pub multihop: Option<u8>,
    /// The address families of the session (default: the family of `address`).
    pub families: Vec<Family>,
    /// Protect the session with BFD (the router's BFD: BIRD's `protocol bfd`, FRR's bfdd).
    pub bfd: Option<Bfd>,
    /// Graceful restart (RFC 4724): keep the neighbour's routes while it restarts.
    pub graceful_restart: bool,
}

/// The router side of a BFD session: both intervals and the detect multiplier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bfd {
    /// Receive and transmit interval, ms.
    pub interval_ms: u32,
    /// Detect multiplier.
    pub multiplier: u8,
}

impl Neighbor {
    /// An active, unauthenticated, single-hop neighbour carrying its address's family.
    pub fn new(address: IpAddr, asn: u32) -> Self {
        Self {
            address,
            asn,
            passive: false,
            password: None,
            multihop: None,
            families: vec![Family::of(address)],
            bfd: None,
            graceful_restart: false,
        }
    }

    /// Protects the session with BFD at `interval_ms` x `multiplier`.
    pub fn bfd(mut self, interval_ms: u32, multiplier: u8) -> Self {
        self.bfd = Some(Bfd {
            interval_ms,
            multiplier,
        });
        self
    }

    /// Enables graceful restart (helper for the neighbour).
    pub fn graceful_restart(mut self) -> Self {
        self.graceful_restart = true;
        self
    }

    /// Waits for the neighbour to connect.
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }

    /// Protects the session with TCP MD5.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// Allows the neighbour `ttl` hops away.
    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }

    /// Carries these families on the session.
    pub fn families(mut self, families: &[Family]) -> Self {
        self.families = families.to_vec();
        self
    }
}

/// How a router is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// Our ASN.
    pub asn: u32,
    /// Our router id.
    pub router_id: Ipv4Addr,
    /// The neighbours.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes the router originates itself (static routes announced to every neighbour).
    pub originate: Vec<IpNet>,
}

impl RouterConfig {
    /// A router with no neighbours and no routes of its own yet.
    pub fn new(asn: u32, router_id: Ipv4Addr) -> Self {
        Self {
            asn,
            router_id,
            neighbors: Vec::new(),
            originate: Vec::new(),
        }
    }

    /// Adds a neighbour.
    pub fn neighbor(mut self, neighbor: Neighbor) -> Self {
        self.neighbors.push(neighbor);
        self
    }

    /// Adds a prefix to originate.
    pub fn originate(mut self, prefix: IpNet) -> Self {
        self.originate.push(prefix);
        self
    }

    /// The prefixes to originate of family `family`.
    pub fn originated(&self, family: Family) -> impl Iterator<Item = &IpNet> {
        self.originate
            .iter()
            .filter(move |p| Family::of_net(p) == family)
    }

    /// The neighbours whose session carries `family`.
    pub fn neighbors_for(&self, family: Family) -> impl Iterator<Item = &Neighbor> {
        self.neighbors
            .iter()
            .filter(move |n| n.families.contains(&family))
    }
}

/// One path to a prefix in a router's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Path {
    /// The BGP next hop; `None` for routes the router originates itself.
    pub next_hop: Option<IpAddr>,
    /// LOCAL_PREF, when the path carries one.
    pub local_pref: Option<u32>,
    /// Standard communities as `AA:NN`, large ones as `A:B:C`.
    pub communities: Vec<String>,
    /// The AS path, nearest AS first (sets flattened).
    pub as_path: Vec<u32>,
    /// Whether the router chose it as best.
    pub best: bool,
}

/// A prefix in a router's table: the best path's attributes and every path's next hop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The prefix.
    pub prefix: IpNet,
    /// The next hops of all paths (ECMP candidates), sorted, without duplicates.
    pub next_hops: Vec<IpAddr>,
    /// The best path's LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// The best path's communities.
    pub communities: Vec<String>,
    /// The best path's AS path.
    pub as_path: Vec<u32>,
    /// Every path.
    pub paths: Vec<Path>,
}

impl Route {
    /// The route to `prefix` over `paths` (best path first if none is marked best).
    pub fn from_paths(prefix: IpNet, paths: Vec<Path>) -> Self {
        let best = paths
            .iter()
            .find(|p| p.best)
            .or_else(|| paths.first())
            .cloned();
        let mut next_hops: Vec<IpAddr> = paths.iter().filter_map(|p| p.next_hop).collect();
        next_hops.sort();
        next_hops.dedup();
        let (local_pref, communities, as_path) = match best {
            Some(p) => (p.local_pref, p.communities, p.as_path),
            None => (None, Vec::new(), Vec::new()),
        };
        Self {
            prefix,
            next_hops,
            local_pref,
            communities,
            as_path,
            paths,
        }
    }
}

/// The state of a BGP session (RFC 4271 finite state machine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionState {
    /// Idle.
    Idle,
    /// Connect.
    Connect,
    /// Active.
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established: routes flow.
    Established,
    /// Something the router reports that is none of the above.
    Other(String),
}

impl SessionState {
    /// The state a router names `name` (case and separators ignored).
    pub fn from_name(name: &str) -> Self {
        let key: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "idle" => Self::Idle,
            "connect" => Self::Connect,
            "active" => Self::Active,
            "opensent" => Self::OpenSent,
            "openconfirm" => Self::OpenConfirm,
            "established" => Self::Established,
            _ => Self::Other(name.to_string()),
        }
    }
}

/// A router's session with one neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The neighbour's address.
    pub neighbor: IpAddr,
    /// The neighbour's ASN as configured.
    pub asn: Option<u32>,
    /// The session state.
    pub state: SessionState,
}

/// Where a router runs: its namespace, its folder (config, sockets, logs) and a name unique on
/// the machine (FRR's pathspace).
#[derive(Clone, Debug)]
pub struct Site {
    /// The namespace.
    pub netns: String,
    /// The folder for its files.
    pub dir: PathBuf,
    /// A machine-wide unique name.
    pub instance: String,
}

/// A running router.
pub trait Router: Send + fmt::Debug {
    /// Which implementation it is.
    fn kind(&self) -> RouterKind;
    /// Its configuration, including prefixes originated since it started.
    fn config(&self) -> &RouterConfig;
    /// Every prefix in its BGP table (learned and originated), both families.
    fn routes(&self) -> Result<Vec<Route>, LabError>;
    /// The state of every configured session.
    fn sessions(&self) -> Result<Vec<Session>, LabError>;
    /// Starts originating `prefix` (kept across restarts).
    fn originate(&mut self, prefix: IpNet) -> Result<(), LabError>;
    /// Stops the router's processes (SIGTERM).
    fn stop(&mut self) -> Result<(), LabError>;
    /// Starts it again with the same configuration.
    fn start(&mut self) -> Result<(), LabError>;
    /// Its processes' output so far.
    fn logs(&self) -> String;
    /// Its BFD sessions: neighbour address and whether the session is Up.
    fn bfd_sessions(&self) -> Result<Vec<(IpAddr, bool)>, LabError> {
        Err(LabError::Missing(format!(
            "{}: no BFD in the lab driver",
            self.kind()
        )))
    }
}

/// Waits until `router`'s BFD session with `neighbor` is Up.
pub fn wait_bfd_up(
    router: &dyn Router,
    neighbor: IpAddr,
    timeout: Duration,
) -> Result<(), LabError> {
    wait_for(
        &format!("{} BFD session with {neighbor} to be up", router.kind()),
        timeout,
        || {
            Ok(router
                .bfd_sessions()?
                .iter()
                .any(|(a, up)| *a == neighbor && *up)
                .then_some(()))
        },
    )
    .map_err(|e| with_logs(e, router))
}

/// Starts a router of `kind` at `site` with `config`, after checking that its Debian package is
/// installed.
pub fn start(
    kind: RouterKind,
    site: Site,
    config: RouterConfig,
) -> Result<Box<dyn Router>, LabError> {
    std::fs::create_dir_all(&site.dir)
        .map_err(|e| LabError::io(format!("create {}", site.dir.display()), e))?;
    Ok(match kind {
        RouterKind::Bird => Box::new(bird::Bird::start(site, config)?),
        RouterKind::Frr => Box::new(frr::Frr::start(site, config)?),
        RouterKind::Gobgp => Box::new(gobgp::Gobgp::start(site, config)?),
    })
}

/// Polls `check` every 100 ms until it yields a value or `timeout` passes; the error names
/// `what` and the last thing `check` saw.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>, LabError>,
) -> Result<T, LabError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("nothing yet");
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("{what} (last error: {last})"),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `router`'s session with `neighbor` is Established.
pub fn wait_established(
    router: &dyn Router,
    neighbor: IpAddr,
    timeout: Duration,
) -> Result<(), LabError> {
    wait_for(
        &format!(
            "{} session with {neighbor} to be established",
            router.kind()
        ),
        timeout,
        || {
            let sessions = router.sessions()?;
            Ok(sessions
                .iter()
                .any(|s| s.neighbor == neighbor && s.state == SessionState::Established)
                .then_some(()))
        },
    )
    .map_err(|e| with_logs(e, router))
}

/// Waits until `router` has a route to `prefix` that satisfies `accept`, and returns it.
pub fn wait_route(
    router: &dyn Router,
    prefix: IpNet,
    timeout: Duration,
    accept: impl Fn(&Route) -> bool,
) -> Result<Route, LabError> {
    let mut seen = None;
    let result = wait_for(
        &format!("{} to have a matching route to {prefix}", router.kind()),
        timeout,
        || {
            let route = router.routes()?.into_iter().find(|r| r.prefix == prefix);
            let ok = route.as_ref().is_some_and(&accept);
            seen = route.clone();
            Ok(if ok { route } else { None })
        },
    );
    result.map_err(|e| match e {
        LabError::Timeout { what, after } => with_logs(
            LabError::Timeout {
                what: format!("{what}; last seen: {seen:?}"),
                after,
            },
            router,
        ),
        other => other,
    })
}

/// Appends the router's logs to a timeout error, to tell why.
fn with_logs(e: LabError, router: &dyn Router) -> LabError {
    match e {
        LabError::Timeout { what, after } => LabError::Timeout {
            what: format!("{what}\n--- {} logs ---\n{}", router.kind(), router.logs()),
            after,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router config the drivers' BFD and graceful-restart tests render:
    /// three neighbours, with BFD (100 ms x 3), with graceful restart, and with both.
    pub(crate) fn bfd_and_graceful_restart_config(asn: u32, router_id: &str) -> RouterConfig {
        let neighbor = |address: &str| Neighbor::new(address.parse().unwrap(), 64512);
        RouterConfig::new(asn, router_id.parse().unwrap())
            .neighbor(neighbor("192.168.4.11").bfd(100, 3))
            .neighbor(neighbor("192.168.4.12").graceful_restart())
            .neighbor(neighbor("192.168.4.13").bfd(100, 3).graceful_restart())
    }

    #[test]
    fn route_takes_best_path_attributes_and_all_next_hops() {
        let path = |nh: &str, best: bool, lp: u32| Path {
            next_hop: Some(nh.parse().unwrap()),
            local_pref: Some(lp),
            communities: vec![],
            as_path: vec![64500],
            best,
        };
        let r = Route::from_paths(
            "192.168.5.1/32".parse().unwrap(),
            vec![
                path("192.168.4.12", false, 50),
                path("192.168.4.11", true, 100),
                path("192.168.4.12", false, 50),
            ],
        );
        assert_eq!(
            r.next_hops,
            vec![
                "192.168.4.11".parse::<IpAddr>().unwrap(),
                "192.168.4.12".parse().unwrap()
            ]
        );
        assert_eq!(r.local_pref, Some(100));
    }

    #[test]
    fn session_state_names_of_all_routers_map_to_the_fsm() {
        let cases = [
            ("Established", SessionState::Established),
            ("ESTABLISHED", SessionState::Established),
            ("OpenSent", SessionState::OpenSent),
            ("open_confirm", SessionState::OpenConfirm),
            ("Active", SessionState::Active),
            ("Passive", SessionState::Other("Passive".into())),
        ];
        for (name, want) in cases {
            assert_eq!(SessionState::from_name(name), want, "{name}");
        }
    }

    #[test]
    fn neighbors_carry_their_own_family_unless_told_otherwise() {
        let n = Neighbor::new("fd00:4::11".parse().unwrap(), 64500);
        assert_eq!(n.families, vec![Family::Ipv6]);
        let n = n.families(&[Family::Ipv4, Family::Ipv6]);
        assert_eq!(n.families.len(), 2);
    }
}
