//! BIRD 2: `bird -f -c CONF -s SOCKET -P PIDFILE` in the router namespace, queried with
//! `birdc -s SOCKET` (a unix socket: no namespace needed to talk to it).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{
    Family, Path, Route, Router, RouterConfig, RouterKind, Session, SessionState, Site, wait_for,
};
use crate::lab::LabError;
use crate::lab::binaries::require_tools;
use crate::lab::netns;
use crate::lab::process::{NsProcess, Spawn};

/// How long BIRD gets to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A BIRD instance.
#[derive(Debug)]
pub struct Bird {
    site: Site,
    config: RouterConfig,
    process: Option<NsProcess>,
}

impl Bird {
    /// Writes the config and starts BIRD.
    pub fn start(site: Site, config: RouterConfig) -> Result<Self, LabError> {
        require_tools(&[("bird", "bird2"), ("birdc", "bird2")])?;
        let mut bird = Self {
            site,
            config,
            process: None,
        };
        Router::start(&mut bird)?;
        Ok(bird)
    }

    fn socket(&self) -> PathBuf {
        self.site.dir.join("bird.ctl")
    }

    fn conf_path(&self) -> PathBuf {
        self.site.dir.join("bird.conf")
    }

    fn birdc(&self, args: &[&str]) -> Result<String, LabError> {
        let socket = self.socket().display().to_string();
        let mut all = vec!["-s", socket.as_str()];
        all.extend_from_slice(args);
        netns::stdout(None, "birdc", &all)
    }

    fn write_config(&self) -> Result<(), LabError> {
        let path = self.conf_path();
        std::fs::write(&path, config_text(&self.config))
            .map_err(|e| LabError::io(format!("write {}", path.display()), e))
    }
}

impl Router for Bird {
    fn kind(&self) -> RouterKind {
        RouterKind::Bird
    }

    fn config(&self) -> &RouterConfig {
        &self.config
    }

    fn routes(&self) -> Result<Vec<Route>, LabError> {
        // Connected subnets are BIRD's own business, not part of the BGP table.
        parse_routes(&self.birdc(&[
            "show",
            "route",
            "all",
            "where",
            "source",
            "!=",
            "RTS_DEVICE",
        ])?)
    }

    fn sessions(&self) -> Result<Vec<Session>, LabError> {
        Ok(parse_sessions(&self.birdc(&[
            "show",
            "protocols",
            "all",
        ])?))
    }

    fn originate(&mut self, prefix: IpNet) -> Result<(), LabError> {
        self.config.originate.push(prefix);
        self.write_config()?;
        if self.process.is_some() {
            self.birdc(&["configure"])?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        match self.process.take() {
            Some(mut p) => p.stop(),
            None => Ok(()),
        }
    }

    fn start(&mut self) -> Result<(), LabError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.write_config()?;
        let conf = self.conf_path().display().to_string();
        let socket = self.socket().display().to_string();
        let pid = self.site.dir.join("bird.pid").display().to_string();
        let what = Spawn::new("bird", &["-f", "-c", &conf, "-s", &socket, "-P", &pid]);
        let log = self.site.dir.join("bird.log");
        let mut process = NsProcess::start("bird", &self.site.netns, &what, &log)?;
        let ready = wait_for("BIRD's control socket", START_TIMEOUT, || {
            if !process.is_running() {
                return Err(LabError::Missing(format!("bird exited: {}", process.log())));
            }
            Ok(self.birdc(&["show", "status"]).ok().map(|_| ()))
        });
        self.process = Some(process);
        ready
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.site.dir.join("bird.log")).unwrap_or_default()
    }

    fn bfd_sessions(&self) -> Result<Vec<(IpAddr, bool)>, LabError> {
        Ok(parse_bfd_sessions(
            &self.birdc(&["show", "bfd", "sessions"])?,
        ))
    }
}

/// Parses `birdc show bfd sessions`: one line per session, address first, state third.
pub fn parse_bfd_sessions(text: &str) -> Vec<(IpAddr, bool)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let address = words.next()?.parse().ok()?;
            let state = words.nth(1)?;
            Some((address, state == "Up"))
        })
        .collect()
}

/// BIRD's configuration: static blackhole routes for the originated prefixes, BGP routes into
/// the namespace's kernel table with ECMP (`merge paths`), one BGP protocol per neighbour.
pub fn config_text(c: &RouterConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "router id {};", c.router_id);
    s.push_str("log stderr all;\nprotocol device {}\n");
    // Connected routes, so that next hops of multihop (recursive) sessions resolve.
    s.push_str("protocol direct {\n  ipv4;\n  ipv6;\n}\n");
    for (family, channel) in [(Family::Ipv4, "ipv4"), (Family::Ipv6, "ipv6")] {
        let _ = writeln!(s, "protocol static static_{channel} {{\n  {channel};");
        for prefix in c.originated(family) {
            let _ = writeln!(s, "  route {prefix} blackhole;");
        }
        s.push_str("}\n");
        let _ = writeln!(
            s,
            "protocol kernel kernel_{channel} {{\n  {channel} {{ export where source = RTS_BGP; }};\n  merge paths on;\n}}"
        );
    }
    // One BFD protocol; BIRD takes session timers from its interface
    // options, so the first neighbour with BFD sets them for all.
    if let Some(b) = c.neighbors.iter().find_map(|n| n.bfd) {
        let _ = writeln!(
            s,
            "protocol bfd {{\n  interface \"*\" {{\n    min rx interval {i} ms;\n    min tx interval {i} ms;\n    idle tx interval 1000 ms;\n    multiplier {m};\n  }};\n}}",
            i = b.interval_ms,
            m = b.multiplier
        );
    }
    for (i, n) in c.neighbors.iter().enumerate() {
        let _ = writeln!(s, "protocol bgp peer{i} {{");
        let _ = writeln!(s, "  local as {};", c.asn);
        let _ = writeln!(s, "  neighbor {} as {};", n.address, n.asn);
        // Reconnect fast after a peer restarts (defaults wait up to minutes).
        s.push_str("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 2;\n");
        if n.passive {
            s.push_str("  passive on;\n");
        }
        if let Some(password) = &n.password {
            let _ = writeln!(s, "  password \"{password}\";");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, "  multihop {ttl};");
        }
        match (n.bfd.is_some(), n.graceful_restart) {
            // With both, a BFD failure starts a graceful restart instead of
            // dropping the routes (BIRD 2.0 ignores the peer's AdminDown).
            (true, true) => s.push_str("  bfd graceful;\n"),
            (true, false) => s.push_str("  bfd on;\n"),
            _ => {}
        }
        if n.graceful_restart {
            s.push_str("  graceful restart on;\n");
        }
        for family in &n.families {
            let channel = match family {
                Family::Ipv4 => "ipv4",
                Family::Ipv6 => "ipv6",
            };
            // Announce our static routes and what we learned, never connected subnets.
            let _ = writeln!(
                s,
                "  {channel} {{ import all; export where source ~ [RTS_STATIC, RTS_BGP]; }};"
            );
        }
        s.push_str("}\n");
    }
    s
}

/// Parses `birdc show route all`: a prefix line starts a route and its first path, an indented
/// line starts another path, tab-indented lines are the current path's attributes.
pub fn parse_routes(text: &str) -> Result<Vec<Route>, LabError> {
    let mut routes = Vec::new();
    let mut current: Option<(IpNet, Vec<Path>, Vec<Option<IpAddr>>)> = None;
    let finish = |current: Option<(IpNet, Vec<Path>, Vec<Option<IpAddr>>)>,
                  routes: &mut Vec<Route>| {
        if let Some((prefix, mut paths, vias)) = current {
            for (path, via) in paths.iter_mut().zip(vias) {
                path.next_hop = path.next_hop.or(via);
            }
            routes.push(Route::from_paths(prefix, paths));
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("BIRD ") || line.starts_with("Table ") {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let Some((_, paths, vias)) = current.as_mut() else {
                continue;
            };
            let (Some(path), Some(via)) = (paths.last_mut(), vias.last_mut()) else {
                continue;
            };
            parse_attribute(attr.trim(), path, via)?;
        } else if line.starts_with(' ') {
            if let Some((_, paths, vias)) = current.as_mut() {
                paths.push(new_path(line));
                vias.push(None);
            }
        } else {
            finish(current.take(), &mut routes);
            let prefix_text = line.split_whitespace().next().unwrap_or_default();
            let prefix = prefix_text.parse().map_err(|e| LabError::Parse {
                what: format!("BIRD route line {line:?}"),
                detail: format!("{e}"),
            })?;
            current = Some((prefix, vec![new_path(line)], vec![None]));
        }
    }
    finish(current, &mut routes);
    Ok(routes)
}

/// A path from its header line; `*` marks the best one.
fn new_path(header: &str) -> Path {
    Path {
        next_hop: None,
        local_pref: None,
        communities: Vec::new(),
        as_path: Vec::new(),
        best: header.split_whitespace().any(|w| w == "*"),
    }
}

fn parse_attribute(attr: &str, path: &mut Path, via: &mut Option<IpAddr>) -> Result<(), LabError> {
    let bad = |detail: String| LabError::Parse {
        what: format!("BIRD attribute {attr:?}"),
        detail,
    };
    if let Some(rest) = attr.strip_prefix("via ") {
        if via.is_none() {
            *via = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    } else if let Some(rest) = attr.strip_prefix("BGP.next_hop:") {
        path.next_hop = rest.split_whitespace().next().and_then(|a| a.parse().ok());
    } else if let Some(rest) = attr.strip_prefix("BGP.as_path:") {
        path.as_path = rest
            .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().map_err(|e| bad(format!("{e}"))))
            .collect::<Result<_, _>>()?;
    } else if let Some(rest) = attr.strip_prefix("BGP.local_pref:") {
        path.local_pref = Some(rest.trim().parse().map_err(|e| bad(format!("{e}")))?);
    } else if let Some(rest) = attr
        .strip_prefix("BGP.community:")
        .or_else(|| attr.strip_prefix("BGP.large_community:"))
    {
        // `(64500,7) (1,2)` or `(1, 2, 3) (4, 5, 6)` -> `64500:7`, `1:2:3`.
        for group in rest.split(')') {
            let inner: Vec<&str> = group
                .trim()
                .trim_start_matches('(')
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if !inner.is_empty() {
                path.communities.push(inner.join(":"));
            }
        }
    }
    Ok(())
}

/// Parses `birdc show protocols all` into the BGP sessions.
pub fn parse_sessions(text: &str) -> Vec<Session> {
    let mut sessions = Vec::new();
    let mut in_bgp = false;
    let mut state: Option<SessionState> = None;
    let mut neighbor: Option<IpAddr> = None;
    let mut asn: Option<u32> = None;
    let mut flush =
        |state: &mut Option<SessionState>, neighbor: &mut Option<IpAddr>, asn: &mut Option<u32>| {
            if let Some(n) = neighbor.take() {
                sessions.push(Session {
                    neighbor: n,
                    asn: asn.take(),
                    state: state.take().unwrap_or(SessionState::Idle),
                });
            }
            *state = None;
            *asn = None;
        };
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('\t') {
            flush(&mut state, &mut neighbor, &mut asn);
            let words: Vec<&str> = line.split_whitespace().collect();
            in_bgp = words.get(1) == Some(&"BGP");
            continue;
        }
        if !in_bgp {
            continue;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("BGP state:") {
            state = Some(SessionState::from_name(rest.trim()));
        } else if let Some(rest) = trimmed.strip_prefix("Neighbor address:") {
            neighbor = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        } else if let Some(rest) = trimmed.strip_prefix("Neighbor AS:") {
            asn = rest.trim().parse().ok();
        }
    }
    flush(&mut state, &mut neighbor, &mut asn);
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routers::Neighbor;

    #[test]
    fn bfd_and_graceful_restart_lines_follow_each_neighbor() {
        let c = crate::routers::tests::bfd_and_graceful_restart_config(64501, "192.168.4.201");
        let text = config_text(&c);
        let block = |i: usize| {
            text.split(&format!("protocol bgp peer{i} {{"))
                .nth(1)
                .and_then(|rest| rest.split("\n}").next())
                .unwrap()
                .to_string()
        };
        // (rule, neighbour index, line, wanted)
        let cases = [
            ("bfd_alone_is_bfd_on", 0, "bfd on;", true),
            ("graceful_restart_alone", 1, "graceful restart on;", true),
            ("no_bfd_without_a_profile", 1, "bfd", false),
            ("both_make_bfd_down_a_restart", 2, "bfd graceful;", true),
        ];
        for (rule, i, line, wanted) in cases {
            assert_eq!(block(i).contains(line), wanted, "{rule}:\n{}", block(i));
        }
        assert!(
            text.contains("protocol bfd {") && text.contains("min rx interval 100 ms;"),
            "the bfd protocol carries the timers:\n{text}"
        );
        let plain = config_text(&RouterConfig::new(64501, "192.168.4.201".parse().unwrap()));
        assert!(
            !plain.contains("protocol bfd"),
            "no BFD without a BFD neighbour"
        );
    }

    #[test]
    fn bfd_sessions_output_maps_to_up_or_not() {
        let text = "BIRD 2.0.12 ready.\nbfd1:\nIP address                Interface  State      Since         Interval  Timeout\n\
                    192.168.4.11              eth0       Up         19:00:01.123    0.100    0.300\n\
                    fd00:4::11                eth0       Down       19:00:01.123    1.000    0.000\n";
        assert_eq!(
            parse_bfd_sessions(text),
            vec![
                ("192.168.4.11".parse().unwrap(), true),
                ("fd00:4::11".parse().unwrap(), false)
            ]
        );
    }

    /// Output of BIRD 2.0.12 in a lab namespace.
    const SHOW_ROUTE_ALL: &str = "BIRD 2.0.12 ready.
Table master4:
10.3.0.0/24          unicast [gobgp4 15:50:14.961] * (100) [AS64503?]
\tvia 192.168.4.203 on eth0
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 64503
\tBGP.next_hop: 192.168.4.203
\tBGP.local_pref: 100
\tBGP.community: (64503,7)
                     unicast [frr4 15:50:17.006 from 192.168.4.202] (100) [AS64503?]
\tvia 192.168.4.203 on eth0
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 64502 64503
\tBGP.next_hop: 192.168.4.202
\tBGP.local_pref: 90
\tBGP.community: (64503,7) (1,2)
\tBGP.large_community: (1, 2, 3)
10.1.0.0/24          blackhole [s4 15:49:50.364] * (200)
\tType: static univ

Table master6:
fd00:a2::/64         unicast [gobgp6 15:50:14.160] * (100) [AS64502i]
\tvia fd00:4::203 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64503 64502
\tBGP.next_hop: fd00:4::203 fe80::fb:4ff:fe00:203
\tBGP.local_pref: 100
";

    #[test]
    fn routes_keep_every_path_and_the_best_paths_attributes() {
        let routes = parse_routes(SHOW_ROUTE_ALL).unwrap();
        assert_eq!(routes.len(), 3);
        let r = &routes[0];
        assert_eq!(r.prefix.to_string(), "10.3.0.0/24");
        assert_eq!(r.paths.len(), 2);
        assert_eq!(r.as_path, vec![64503]);
        assert_eq!(r.local_pref, Some(100));
        assert_eq!(r.communities, vec!["64503:7"]);
        assert_eq!(r.next_hops.len(), 2);
        assert_eq!(r.paths[1].communities, vec!["64503:7", "1:2", "1:2:3"]);
        assert_eq!(r.paths[1].as_path, vec![64502, 64503]);
        assert!(!r.paths[1].best);
    }

    #[test]
    fn originated_routes_have_no_next_hop_and_v6_takes_the_global_next_hop() {
        let routes = parse_routes(SHOW_ROUTE_ALL).unwrap();
        assert_eq!(routes[1].prefix.to_string(), "10.1.0.0/24");
        assert!(routes[1].next_hops.is_empty());
        assert!(routes[1].as_path.is_empty());
        assert_eq!(
            routes[2].next_hops,
            vec!["fd00:4::203".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn sessions_come_from_bgp_protocol_blocks_only() {
        let text = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     15:49:50.364
static_ipv4 Static    master4    up     15:49:50.364
  Channel ipv4
    State:          UP
peer0      BGP        ---        up     15:49:55.950  Established
  BGP state:          Established
    Neighbor address: 192.168.4.202
    Neighbor AS:      64502
    Local AS:         64501
peer1      BGP        ---        start  15:49:50.364  Active
  BGP state:          Active
    Neighbor address: fd00:4::203
    Neighbor AS:      64503
";
        let sessions = parse_sessions(text);
        assert_eq!(
            sessions,
            vec![
                Session {
                    neighbor: "192.168.4.202".parse().unwrap(),
                    asn: Some(64502),
                    state: SessionState::Established
                },
                Session {
                    neighbor: "fd00:4::203".parse().unwrap(),
                    asn: Some(64503),
                    state: SessionState::Active
                },
            ]
        );
    }

    #[test]
    fn config_has_one_protocol_per_neighbor_with_its_options() {
        let c = RouterConfig::new(64501, "192.168.4.201".parse().unwrap())
            .neighbor(
                Neighbor::new("192.168.4.11".parse().unwrap(), 64500)
                    .passive()
                    .password("pw")
                    .multihop(3),
            )
            .originate("10.1.0.0/24".parse().unwrap());
        let text = config_text(&c);
        for want in [
            "router id 192.168.4.201;",
            "route 10.1.0.0/24 blackhole;",
            "neighbor 192.168.4.11 as 64500;",
            "local as 64501;",
            "passive on;",
            "password \"pw\";",
            "multihop 3;",
            "ipv4 { import all; export where source ~ [RTS_STATIC, RTS_BGP]; };",
            "merge paths on;",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("  ipv6 { import"), "{text}");
    }
}
