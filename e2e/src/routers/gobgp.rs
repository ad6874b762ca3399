//! GoBGP: `gobgpd -f CONFIG.toml --api-hosts 127.0.0.1:PORT` in the router namespace,
//! queried and fed with the `gobgp` CLI from inside the same namespace (its gRPC API listens on
//! the namespace's loopback).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use super::{
    Family, Path, Route, Router, RouterConfig, RouterKind, Session, SessionState, Site, wait_for,
};
use crate::lab::LabError;
use crate::lab::binaries::require_tools;
use crate::lab::netns;
use crate::lab::process::{NsProcess, Spawn};

/// The gRPC port on the namespace's loopback.
const API_PORT: &str = "50051";
/// How long gobgpd gets to answer the CLI.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A GoBGP instance.
#[derive(Debug)]
pub struct Gobgp {
    site: Site,
    config: RouterConfig,
    process: Option<NsProcess>,
}

impl Gobgp {
    /// Writes the config, starts gobgpd and adds the originated prefixes.
    pub fn start(site: Site, config: RouterConfig) -> Result<Self, LabError> {
        require_tools(&[("gobgpd", "gobgpd"), ("gobgp", "gobgpd")])?;
        let mut gobgp = Self {
            site,
            config,
            process: None,
        };
        Router::start(&mut gobgp)?;
        Ok(gobgp)
    }

    fn conf_path(&self) -> PathBuf {
        self.site.dir.join("gobgpd.toml")
    }

    fn cli(&self, args: &[&str]) -> Result<String, LabError> {
        let mut all = vec!["-u", "127.0.0.1", "-p", API_PORT];
        all.extend_from_slice(args);
        netns::stdout(Some(&self.site.netns), "gobgp", &all)
    }

    fn add_route(&self, prefix: &IpNet) -> Result<(), LabError> {
        let afi = afi(Family::of_net(prefix));
        self.cli(&["global", "rib", "add", "-a", afi, &prefix.to_string()])
            .map(|_| ())
    }
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

impl Router for Gobgp {
    fn kind(&self) -> RouterKind {
        RouterKind::Gobgp
    }

    fn config(&self) -> &RouterConfig {
        &self.config
    }

    fn routes(&self) -> Result<Vec<Route>, LabError> {
        let mut routes = Vec::new();
        for family in [Family::Ipv4, Family::Ipv6] {
            let text = self.cli(&["global", "rib", "-a", afi(family), "-j"])?;
            // An empty table prints nothing (or `null`) rather than `{}`.
            if text.trim().is_empty() {
                continue;
            }
            let doc: Value = serde_json::from_str(&text).map_err(|e| LabError::Parse {
                what: "GoBGP RIB JSON".into(),
                detail: e.to_string(),
            })?;
            routes.extend(parse_rib(&doc)?);
        }
        Ok(routes)
    }

    fn sessions(&self) -> Result<Vec<Session>, LabError> {
        let text = self.cli(&["neighbor", "-j"])?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| LabError::Parse {
            what: "GoBGP neighbor JSON".into(),
            detail: e.to_string(),
        })?;
        Ok(parse_neighbors(&doc))
    }

    fn originate(&mut self, prefix: IpNet) -> Result<(), LabError> {
        self.config.originate.push(prefix);
        if self.process.is_some() {
            self.add_route(&prefix)?;
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
        let path = self.conf_path();
        std::fs::write(&path, config_text(&self.config))
            .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
        let conf = path.display().to_string();
        let api = format!("127.0.0.1:{API_PORT}");
        let what = Spawn::new("gobgpd", &["-f", &conf, "--api-hosts", &api, "--log-plain"]);
        let log = self.site.dir.join("gobgpd.log");
        let mut process = NsProcess::start("gobgpd", &self.site.netns, &what, &log)?;
        let ready = wait_for("gobgpd to answer the CLI", START_TIMEOUT, || {
            if !process.is_running() {
                return Err(LabError::Missing(format!(
                    "gobgpd exited: {}",
                    process.log()
                )));
            }
            Ok(self.cli(&["global"]).ok().map(|_| ()))
        });
        self.process = Some(process);
        ready?;
        // Static routes are not part of the TOML config: add them through the API.
        for prefix in &self.config.originate {
            self.add_route(prefix)?;
        }
        Ok(())
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.site.dir.join("gobgpd.log")).unwrap_or_default()
    }
}

/// gobgpd's TOML configuration: multipath on, short reconnect timers.
pub fn config_text(c: &RouterConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[global.config]\n  as = {}\n  router-id = \"{}\"",
        c.asn, c.router_id
    );
    s.push_str("[global.use-multiple-paths.config]\n  enabled = true\n");
    for n in &c.neighbors {
        let _ = writeln!(
            s,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
            n.address, n.asn
        );
        if let Some(password) = &n.password {
            let _ = writeln!(s, "    auth-password = \"{password}\"");
        }
        s.push_str("  [neighbors.timers.config]\n    connect-retry = 2\n    idle-hold-time-after-reset = 2\n");
        if n.passive {
            s.push_str("  [neighbors.transport.config]\n    passive-mode = true\n");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(
                s,
                "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = {ttl}"
            );
        }
        for family in &n.families {
            let _ = writeln!(
                s,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{}-unicast\"",
                afi(*family)
            );
        }
    }
    s
}

/// Parses `gobgp global rib -a AFI -j`: prefix -> list of paths with typed attributes.
pub fn parse_rib(doc: &Value) -> Result<Vec<Route>, LabError> {
    let Some(table) = doc.as_object() else {
        return Ok(Vec::new());
    };
    table
        .iter()
        .map(|(prefix, paths)| {
            let prefix: IpNet = prefix.parse().map_err(|e| LabError::Parse {
                what: format!("GoBGP prefix {prefix:?}"),
                detail: format!("{e}"),
            })?;
            let paths = paths
                .as_array()
                .map(|ps| ps.iter().map(parse_path).collect())
                .unwrap_or_default();
            Ok(Route::from_paths(prefix, paths))
        })
        .collect()
}

/// Path attribute type codes (RFC 4271, 1997, 4760, 8092).
const AS_PATH: u64 = 2;
const NEXT_HOP: u64 = 3;
const LOCAL_PREF: u64 = 5;
const COMMUNITIES: u64 = 8;
const MP_REACH_NLRI: u64 = 14;
const LARGE_COMMUNITIES: u64 = 32;

fn parse_path(p: &Value) -> Path {
    let mut path = Path {
        next_hop: None,
        local_pref: None,
        communities: Vec::new(),
        as_path: Vec::new(),
        best: p["best"].as_bool().unwrap_or(false),
    };
    for attr in p["attrs"].as_array().into_iter().flatten() {
        match attr["type"].as_u64() {
            Some(AS_PATH) => {
                path.as_path = attr["as_paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|seg| seg["asns"].as_array())
                    .flatten()
                    .filter_map(|a| a.as_u64().and_then(|a| u32::try_from(a).ok()))
                    .collect();
            }
            Some(NEXT_HOP) | Some(MP_REACH_NLRI) => {
                path.next_hop = attr["nexthop"]
                    .as_str()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .filter(|ip| !ip.is_unspecified());
            }
            Some(LOCAL_PREF) => {
                path.local_pref = attr["value"].as_u64().and_then(|v| u32::try_from(v).ok());
            }
            Some(COMMUNITIES) => {
                path.communities.extend(
                    attr["communities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .map(|c| format!("{}:{}", c >> 16, c & 0xffff)),
                );
            }
            Some(LARGE_COMMUNITIES) => {
                path.communities
                    // GoBGP 3.10 writes `"value": [{"ASN": a, "LocalData1": b, "LocalData2": c}]`.
                    .extend(attr["value"].as_array().into_iter().flatten().map(|v| {
                        format!(
                            "{}:{}:{}",
                            v["ASN"].as_u64().unwrap_or(0),
                            v["LocalData1"].as_u64().unwrap_or(0),
                            v["LocalData2"].as_u64().unwrap_or(0)
                        )
                    }));
            }
            _ => {}
        }
    }
    path
}

/// Parses `gobgp neighbor -j`; the state is a number (1 Idle ... 6 Established) or a name.
pub fn parse_neighbors(doc: &Value) -> Vec<Session> {
    doc.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let neighbor = n["conf"]["neighbor_address"].as_str()?.parse().ok()?;
            let state = &n["state"]["session_state"];
            let state = match state.as_u64() {
                Some(1) => SessionState::Idle,
                Some(2) => SessionState::Connect,
                Some(3) => SessionState::Active,
                Some(4) => SessionState::OpenSent,
                Some(5) => SessionState::OpenConfirm,
                Some(6) => SessionState::Established,
                Some(other) => SessionState::Other(other.to_string()),
                None => SessionState::from_name(state.as_str().unwrap_or("unknown")),
            };
            Some(Session {
                neighbor,
                asn: n["conf"]["peer_asn"]
                    .as_u64()
                    .and_then(|a| u32::try_from(a).ok()),
                state,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routers::Neighbor;
    use serde_json::json;

    #[test]
    fn rib_paths_read_as_path_next_hop_local_pref_and_communities() {
        // Shape of GoBGP 3.10's `gobgp global rib -j`.
        let doc = json!({
            "10.3.0.0/24": [{"nlri": {"prefix": "10.3.0.0/24"}, "best": true, "attrs": [
                {"type": 1, "value": 0},
                {"type": 2, "as_paths": [{"segment_type": 2, "num": 2, "asns": [64501, 64500]}]},
                {"type": 3, "nexthop": "192.168.4.201"},
                {"type": 5, "value": 120},
                {"type": 8, "communities": [4227268615u64]},
                {"type": 32, "value": [{"ASN": 1, "LocalData1": 2, "LocalData2": 3}]}
            ]}],
            "fd00:a1::/64": [{"best": true, "attrs": [
                {"type": 14, "nexthop": "fd00:4::201", "afi": 2, "safi": 1, "value": [{"prefix": "fd00:a1::/64"}]}
            ]}],
            "10.9.0.0/24": [{"best": true, "attrs": [{"type": 3, "nexthop": "0.0.0.0"}]}]
        });
        let mut routes = parse_rib(&doc).unwrap();
        routes.sort_by_key(|r| r.prefix.to_string());
        let r = &routes[0];
        assert_eq!(r.prefix.to_string(), "10.3.0.0/24");
        assert_eq!(r.as_path, vec![64501, 64500]);
        assert_eq!(
            r.next_hops,
            vec!["192.168.4.201".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.local_pref, Some(120));
        assert_eq!(r.communities, vec!["64503:7", "1:2:3"]);
        assert!(
            routes[1].next_hops.is_empty(),
            "originated route has no next hop"
        );
        assert_eq!(
            routes[2].next_hops,
            vec!["fd00:4::201".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn neighbor_states_are_numbered_like_the_fsm() {
        let doc = json!([
            {"conf": {"neighbor_address": "192.168.4.201", "peer_asn": 64501}, "state": {"session_state": 6}},
            {"conf": {"neighbor_address": "fd00:4::202", "peer_asn": 64502}, "state": {"session_state": 3}},
            {"conf": {"neighbor_address": "192.168.4.11", "peer_asn": 64500}, "state": {"session_state": "established"}}
        ]);
        let s = parse_neighbors(&doc);
        assert_eq!(s[0].state, SessionState::Established);
        assert_eq!(s[0].asn, Some(64501));
        assert_eq!(s[1].state, SessionState::Active);
        assert_eq!(s[2].state, SessionState::Established);
    }

    #[test]
    fn config_lists_neighbors_with_their_options() {
        let c = RouterConfig::new(64503, "192.168.4.203".parse().unwrap()).neighbor(
            Neighbor::new("192.168.4.201".parse().unwrap(), 64501)
                .password("pw")
                .passive()
                .multihop(2),
        );
        let text = config_text(&c);
        for want in [
            "as = 64503",
            "router-id = \"192.168.4.203\"",
            "neighbor-address = \"192.168.4.201\"",
            "auth-password = \"pw\"",
            "passive-mode = true",
            "multihop-ttl = 2",
            "afi-safi-name = \"ipv4-unicast\"",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
