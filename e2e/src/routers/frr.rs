//! FRR: `zebra` and `bgpd` in the router namespace, each with its own pid file (`-i`), zserv
//! socket (`-z`), vty socket folder (`--vty_socket`, owned by user `frr`) and pathspace name
//! (`-N`); queried with `vtysh --vty_socket DIR -c "... json"`.

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

/// Where Debian installs the FRR daemons.
const DAEMON_DIR: &str = "/usr/lib/frr";
/// How long bgpd gets to answer vtysh.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// An FRR instance (zebra + bgpd).
#[derive(Debug)]
pub struct Frr {
    site: Site,
    config: RouterConfig,
    processes: Vec<NsProcess>,
}

impl Frr {
    /// Writes the config and starts zebra and bgpd.
    pub fn start(site: Site, config: RouterConfig) -> Result<Self, LabError> {
        require_tools(&[
            ("/usr/lib/frr/zebra", "frr"),
            ("/usr/lib/frr/bgpd", "frr"),
            ("/usr/lib/frr/bfdd", "frr"),
            ("vtysh", "frr"),
        ])?;
        let mut frr = Self {
            site,
            config,
            processes: Vec::new(),
        };
        Router::start(&mut frr)?;
        Ok(frr)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.site.dir.join(name)
    }

    /// Runs vtysh commands (each one `-c`) and returns the output.
    fn vtysh(&self, commands: &[String]) -> Result<String, LabError> {
        let dir = self.site.dir.display().to_string();
        let mut args = vec!["--vty_socket", dir.as_str()];
        for c in commands {
            args.extend(["-c", c.as_str()]);
        }
        netns::stdout(None, "vtysh", &args)
    }

    fn write_config(&self) -> Result<(), LabError> {
        for (name, text) in [
            ("zebra.conf", String::new()),
            ("bgpd.conf", config_text(&self.config, &self.site.instance)),
            ("bfdd.conf", bfdd_config_text(&self.config)),
        ] {
            let path = self.file(name);
            std::fs::write(&path, text)
                .map_err(|e| LabError::io(format!("write {}", path.display()), e))?;
        }
        // The daemons drop privileges to user frr and must write their sockets and pid files.
        netns::output(
            None,
            "chown",
            &["-R", "frr:frr", &self.site.dir.display().to_string()],
        )?;
        Ok(())
    }

    fn daemon(&self, name: &str) -> Spawn {
        let dir = self.site.dir.display().to_string();
        let file = |f: &str| self.file(f).display().to_string();
        let mut args = vec![
            "-N".to_string(),
            self.site.instance.clone(),
            "-i".into(),
            file(&format!("{name}.pid")),
            "-z".into(),
            file("zserv.api"),
            "--vty_socket".into(),
            dir,
            "-f".into(),
            file(&format!("{name}.conf")),
        ];
        if name == "bfdd" {
            // bfdd's control socket, per instance (the default is machine-wide).
            args.extend(["--bfdctl".to_string(), file("bfdd.sock")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Spawn::new(format!("{DAEMON_DIR}/{name}"), &args)
    }

    /// The daemons this configuration needs: bfdd only with BFD neighbours.
    fn daemons(&self) -> Vec<&'static str> {
        if self.config.neighbors.iter().any(|n| n.bfd.is_some()) {
            vec!["zebra", "bfdd", "bgpd"]
        } else {
            vec!["zebra", "bgpd"]
        }
    }
}

impl Router for Frr {
    fn kind(&self) -> RouterKind {
        RouterKind::Frr
    }

    fn config(&self) -> &RouterConfig {
        &self.config
    }

    fn routes(&self) -> Result<Vec<Route>, LabError> {
        let mut routes = Vec::new();
        for afi in ["ipv4", "ipv6"] {
            let table: Value = parse_json(&self.vtysh(&[format!("show bgp {afi} unicast json")])?)?;
            let prefixes: Vec<String> = table
                .get("routes")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if prefixes.is_empty() {
                continue;
            }
            // The table lacks communities and LOCAL_PREF: ask for every prefix, in one vtysh run.
            let commands: Vec<String> = prefixes
                .iter()
                .map(|p| format!("show bgp {afi} unicast {p} json"))
                .collect();
            let text = self.vtysh(&commands)?;
            for doc in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
                let doc = doc.map_err(|e| LabError::Parse {
                    what: "FRR prefix JSON".into(),
                    detail: e.to_string(),
                })?;
                routes.extend(parse_prefix_detail(&doc)?);
            }
        }
        Ok(routes)
    }

    fn sessions(&self) -> Result<Vec<Session>, LabError> {
        let doc = parse_json(&self.vtysh(&["show bgp neighbors json".to_string()])?)?;
        Ok(parse_neighbors(&doc))
    }

    fn originate(&mut self, prefix: IpNet) -> Result<(), LabError> {
        self.config.originate.push(prefix);
        self.write_config()?;
        if self.processes.is_empty() {
            return Ok(());
        }
        let afi = match Family::of_net(&prefix) {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        };
        self.vtysh(&[
            "configure terminal".to_string(),
            format!("router bgp {}", self.config.asn),
            format!("address-family {afi} unicast"),
            format!("network {prefix}"),
        ])?;
        Ok(())
    }

    fn stop(&mut self) -> Result<(), LabError> {
        // bgpd first, so that it can say goodbye to its peers before zebra goes.
        let mut result = Ok(());
        while let Some(mut p) = self.processes.pop() {
            if let Err(e) = p.stop() {
                result = Err(e);
            }
        }
        result
    }

    fn start(&mut self) -> Result<(), LabError> {
        if !self.processes.is_empty() {
            return Ok(());
        }
        self.write_config()?;
        for name in self.daemons() {
            if name == "bgpd" && self.processes.iter().any(|p| p.name() == "bfdd") {
                // bgpd registers its BFD sessions once, through zebra: a
                // registration sent before bfdd is zebra's client is lost.
                wait_for("FRR's bfdd to be zebra's client", START_TIMEOUT, || {
                    Ok(self
                        .vtysh(&["show zebra client summary".to_string()])
                        .ok()
                        .filter(|text| text.to_ascii_lowercase().contains("bfd"))
                        .map(|_| ()))
                })?;
            }
            let log = self.file(&format!("{name}.log"));
            self.processes.push(NsProcess::start(
                name,
                &self.site.netns,
                &self.daemon(name),
                &log,
            )?);
        }
        let mut processes = std::mem::take(&mut self.processes);
        let ready = wait_for("FRR's bgpd to answer vtysh", START_TIMEOUT, || {
            if let Some(dead) = processes
                .iter_mut()
                .find_map(|p| (!p.is_running()).then_some(p))
            {
                return Err(LabError::Missing(format!(
                    "{} exited: {}",
                    dead.name(),
                    dead.log()
                )));
            }
            Ok(self
                .vtysh(&["show bgp summary json".to_string()])
                .ok()
                .map(|_| ()))
        });
        self.processes = processes;
        ready
    }

    fn bfd_sessions(&self) -> Result<Vec<(IpAddr, bool)>, LabError> {
        let doc = parse_json(&self.vtysh(&["show bfd peers json".to_string()])?)?;
        Ok(parse_bfd_peers(&doc))
    }

    fn logs(&self) -> String {
        ["zebra.log", "bfdd.log", "bgpd.log"]
            .iter()
            .map(|f| {
                format!(
                    "== {f}\n{}",
                    std::fs::read_to_string(self.file(f)).unwrap_or_default()
                )
            })
            .collect()
    }
}

/// bgpd's configuration: no eBGP policy requirement (so routes flow without route-maps),
/// networks originated without a matching RIB entry, multipath across ASes, short connect timer.
pub fn config_text(c: &RouterConfig, hostname: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "frr defaults traditional\nhostname {hostname}\nlog stdout informational\n!"
    );
    let _ = writeln!(s, "router bgp {}", c.asn);
    let _ = writeln!(s, " bgp router-id {}", c.router_id);
    s.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n");
    s.push_str(" bgp bestpath as-path multipath-relax\n");
    for n in &c.neighbors {
        let a = n.address;
        let _ = writeln!(s, " neighbor {a} remote-as {}", n.asn);
        if n.bfd.is_some() {
            let _ = writeln!(s, " neighbor {a} bfd profile {}", bfd_profile_name(n));
        }
        if n.graceful_restart {
            let _ = writeln!(s, " neighbor {a} graceful-restart");
            if n.bfd.is_some() {
                // A BFD down from a peer whose BFD shares fate with its
                // control plane (C bit clear, as ours) keeps the stale routes.
                let _ = writeln!(s, " neighbor {a} bfd check-control-plane-failure");
            }
        }
        let _ = writeln!(s, " neighbor {a} timers connect 2");
        if n.passive {
            let _ = writeln!(s, " neighbor {a} passive");
        }
        if let Some(password) = &n.password {
            let _ = writeln!(s, " neighbor {a} password {password}");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, " neighbor {a} ebgp-multihop {ttl}");
        }
    }
    for (family, afi) in [(Family::Ipv4, "ipv4"), (Family::Ipv6, "ipv6")] {
        let _ = writeln!(s, " address-family {afi} unicast");
        for prefix in c.originated(family) {
            let _ = writeln!(s, "  network {prefix}");
        }
        s.push_str("  maximum-paths 16\n  maximum-paths ibgp 16\n");
        for n in c.neighbors_for(family) {
            let _ = writeln!(s, "  neighbor {} activate", n.address);
        }
        s.push_str(" exit-address-family\n");
    }
    s.push_str("!\n");
    s
}

/// Parses `show bfd peers json`: peer address and whether its status is `up`.
pub fn parse_bfd_peers(doc: &Value) -> Vec<(IpAddr, bool)> {
    doc.as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|p| {
                    let address = p["peer"].as_str()?.parse().ok()?;
                    Some((address, p["status"].as_str() == Some("up")))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The bfdd profile of a neighbour's BFD timers.
fn bfd_profile_name(n: &super::Neighbor) -> String {
    n.bfd
        .map(|b| format!("t{}x{}", b.interval_ms, b.multiplier))
        .unwrap_or_default()
}

/// bfdd's configuration: one profile per distinct set of BFD timers.
pub fn bfdd_config_text(c: &RouterConfig) -> String {
    let mut s = String::from("bfd\n");
    let mut seen = Vec::new();
    for n in &c.neighbors {
        let Some(b) = n.bfd else { continue };
        let name = bfd_profile_name(n);
        if seen.contains(&name) {
            continue;
        }
        let _ = writeln!(
            s,
            " profile {name}\n  receive-interval {i}\n  transmit-interval {i}\n  detect-multiplier {m}\n exit",
            i = b.interval_ms,
            m = b.multiplier
        );
        seen.push(name);
    }
    s.push_str("exit\n");
    s
}

fn parse_json(text: &str) -> Result<Value, LabError> {
    serde_json::from_str(text).map_err(|e| LabError::Parse {
        what: format!("FRR JSON {:?}", text.chars().take(200).collect::<String>()),
        detail: e.to_string(),
    })
}

/// Parses `show bgp <afi> unicast <prefix> json` (`{}` when the prefix went away meanwhile).
pub fn parse_prefix_detail(doc: &Value) -> Result<Option<Route>, LabError> {
    let Some(prefix) = doc.get("prefix").and_then(Value::as_str) else {
        return Ok(None);
    };
    let prefix: IpNet = prefix.parse().map_err(|e| LabError::Parse {
        what: format!("FRR prefix {prefix:?}"),
        detail: format!("{e}"),
    })?;
    let paths = doc
        .get("paths")
        .and_then(Value::as_array)
        .map(|paths| paths.iter().map(parse_path).collect())
        .unwrap_or_default();
    Ok(Some(Route::from_paths(prefix, paths)))
}

fn parse_path(p: &Value) -> Path {
    let as_path = p["aspath"]["segments"]
        .as_array()
        .map(|segments| {
            segments
                .iter()
                .filter_map(|s| s["list"].as_array())
                .flatten()
                .filter_map(|a| a.as_u64().and_then(|a| u32::try_from(a).ok()))
                .collect()
        })
        .unwrap_or_default();
    // IPv6 paths list the global next hop first and may add a link-local one.
    let next_hop = p["nexthops"]
        .as_array()
        .and_then(|hops| {
            hops.iter()
                .find_map(|h| h["ip"].as_str()?.parse::<IpAddr>().ok())
        })
        .filter(|ip| !ip.is_unspecified());
    let mut communities: Vec<String> = Vec::new();
    for key in ["community", "largeCommunity"] {
        if let Some(list) = p[key]["string"].as_str() {
            communities.extend(list.split_whitespace().map(str::to_string));
        }
    }
    Path {
        next_hop,
        local_pref: p["locPrf"].as_u64().and_then(|v| u32::try_from(v).ok()),
        communities,
        as_path,
        best: p["bestpath"]["overall"].as_bool().unwrap_or(false),
    }
}

/// Parses `show bgp neighbors json`: neighbour address -> `bgpState`, `remoteAs`.
pub fn parse_neighbors(doc: &Value) -> Vec<Session> {
    doc.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(addr, v)| {
                    Some(Session {
                        neighbor: addr.parse().ok()?,
                        asn: v["remoteAs"].as_u64().and_then(|a| u32::try_from(a).ok()),
                        state: SessionState::from_name(v["bgpState"].as_str().unwrap_or("unknown")),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routers::Neighbor;
    use serde_json::json;

    #[test]
    fn prefix_detail_gives_as_path_next_hop_communities_and_local_pref() {
        // Shape of FRR 8.4's `show bgp ipv4 unicast 10.1.0.0/24 json`.
        let doc = json!({
            "prefix": "10.1.0.0/24",
            "paths": [
                {"aspath": {"string": "64501", "segments": [{"type": "as-sequence", "list": [64501]}], "length": 1},
                 "origin": "IGP", "valid": true, "locPrf": 150,
                 "community": {"string": "64501:7 64501:8", "list": ["64501:7", "64501:8"]},
                 "largeCommunity": {"string": "1:2:3"},
                 "bestpath": {"overall": true},
                 "nexthops": [{"ip": "192.168.4.201", "afi": "ipv4", "used": true}]},
                {"aspath": {"segments": [{"type": "as-sequence", "list": [64503, 64501]}]},
                 "nexthops": [{"ip": "192.168.4.203", "afi": "ipv4"}]}
            ]
        });
        let r = parse_prefix_detail(&doc).unwrap().unwrap();
        assert_eq!(r.prefix.to_string(), "10.1.0.0/24");
        assert_eq!(r.as_path, vec![64501]);
        assert_eq!(r.local_pref, Some(150));
        assert_eq!(r.communities, vec!["64501:7", "64501:8", "1:2:3"]);
        assert_eq!(r.next_hops.len(), 2);
        assert_eq!(r.paths[1].as_path, vec![64503, 64501]);
    }

    #[test]
    fn locally_originated_paths_have_no_next_hop() {
        let doc = json!({"prefix": "10.2.0.0/24", "paths": [
            {"aspath": {"string": "Local", "segments": [], "length": 0}, "bestpath": {"overall": true},
             "nexthops": [{"ip": "0.0.0.0", "afi": "ipv4"}]}]});
        let r = parse_prefix_detail(&doc).unwrap().unwrap();
        assert!(r.next_hops.is_empty());
        assert!(r.as_path.is_empty());
        assert_eq!(parse_prefix_detail(&json!({})).unwrap(), None);
    }

    #[test]
    fn neighbors_json_maps_to_sessions() {
        let doc = json!({
            "192.168.4.201": {"remoteAs": 64501, "bgpState": "Established"},
            "fd00:4::203": {"remoteAs": 64503, "bgpState": "Active"},
        });
        let mut s = parse_neighbors(&doc);
        s.sort_by_key(|s| s.neighbor);
        assert_eq!(s[0].state, SessionState::Established);
        assert_eq!(s[0].asn, Some(64501));
        assert_eq!(s[1].state, SessionState::Active);
    }

    #[test]
    fn bfd_and_graceful_restart_lines_follow_each_neighbor() {
        let c = crate::routers::tests::bfd_and_graceful_restart_config(64502, "192.168.4.202");
        let text = config_text(&c, "x");
        // (rule, line, wanted)
        let cases = [
            (
                "bfd_names_the_profile",
                " neighbor 192.168.4.11 bfd profile t100x3",
                true,
            ),
            (
                "no_bfd_no_profile",
                " neighbor 192.168.4.12 bfd profile",
                false,
            ),
            (
                "graceful_restart_per_neighbor",
                " neighbor 192.168.4.12 graceful-restart",
                true,
            ),
            (
                "both_keep_routes_on_a_control_plane_bfd_down",
                " neighbor 192.168.4.13 bfd check-control-plane-failure",
                true,
            ),
            (
                "bfd_alone_drops_routes_on_bfd_down",
                " neighbor 192.168.4.11 bfd check-control-plane-failure",
                false,
            ),
        ];
        for (rule, line, wanted) in cases {
            assert_eq!(text.contains(line), wanted, "{rule}:\n{text}");
        }
        let bfdd = bfdd_config_text(&c);
        assert_eq!(
            bfdd.matches("profile t100x3").count(),
            1,
            "one profile per timer set:\n{bfdd}"
        );
        assert!(bfdd.contains("receive-interval 100") && bfdd.contains("detect-multiplier 3"));
    }

    #[test]
    fn bfd_peers_json_maps_to_up_or_not() {
        let doc: Value = serde_json::from_str(
            r#"[{"peer":"192.168.4.11","status":"up"},{"peer":"fd00:4::11","status":"down"},{"status":"up"}]"#,
        )
        .unwrap();
        assert_eq!(
            parse_bfd_peers(&doc),
            vec![
                ("192.168.4.11".parse().unwrap(), true),
                ("fd00:4::11".parse().unwrap(), false)
            ]
        );
    }

    #[test]
    fn config_activates_each_neighbor_in_its_families_only() {
        let c = RouterConfig::new(64502, "192.168.4.202".parse().unwrap())
            .neighbor(Neighbor::new("192.168.4.201".parse().unwrap(), 64501).password("pw"))
            .neighbor(
                Neighbor::new("fd00:4::203".parse().unwrap(), 64503)
                    .passive()
                    .multihop(2),
            )
            .originate("fd00:a2::/64".parse().unwrap());
        let text = config_text(&c, "x");
        let v4 = text
            .split("address-family ipv4")
            .nth(1)
            .unwrap()
            .split("exit-address-family")
            .next()
            .unwrap();
        let v6 = text
            .split("address-family ipv6")
            .nth(1)
            .unwrap()
            .split("exit-address-family")
            .next()
            .unwrap();
        assert!(v4.contains("neighbor 192.168.4.201 activate") && !v4.contains("fd00:4::203"));
        assert!(
            v6.contains("neighbor fd00:4::203 activate") && v6.contains("network fd00:a2::/64")
        );
        for want in [
            "neighbor 192.168.4.201 password pw",
            "neighbor fd00:4::203 passive",
            "neighbor fd00:4::203 ebgp-multihop 2",
            "no bgp ebgp-requires-policy",
            "maximum-paths 16",
        ] {
            assert!(text.contains(want), "missing {want:?}");
        }
    }
}
