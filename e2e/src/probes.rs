//! Looking at the LAN from a namespace (normally the client's): which MAC an IP resolves to
//! and which node owns it, which node answers a TCP connection, and how the neighbour table
//! changes over time.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::lab::LabError;
use crate::lab::binaries::require_tools;
use crate::lab::netns;
use crate::lab::topology::{HOST_IFACE, MacAddr, Topology};

/// A kernel neighbour-table state (`ip neigh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighState {
    /// No entry.
    Absent,
    /// Resolution in progress.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently; used until traffic re-checks it.
    Stale,
    /// Waiting before probing.
    Delay,
    /// Probing by unicast.
    Probe,
    /// Resolution failed.
    Failed,
    /// Static entry.
    Permanent,
    /// Something else (`NOARP`, ...).
    Other,
}

impl NeighState {
    fn from_names(names: &[String]) -> Self {
        // `ip` can list several flags; the first known state wins.
        names
            .iter()
            .map(|n| match n.as_str() {
                "INCOMPLETE" => Self::Incomplete,
                "REACHABLE" => Self::Reachable,
                "STALE" => Self::Stale,
                "DELAY" => Self::Delay,
                "PROBE" => Self::Probe,
                "FAILED" => Self::Failed,
                "PERMANENT" => Self::Permanent,
                _ => Self::Other,
            })
            .find(|s| *s != Self::Other)
            .unwrap_or(Self::Other)
    }

    /// Whether the entry holds a usable MAC.
    pub fn is_resolved(self) -> bool {
        matches!(
            self,
            Self::Reachable | Self::Stale | Self::Delay | Self::Probe | Self::Permanent
        )
    }
}

/// What the kernel's neighbour table says about an IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The IP looked up.
    pub ip: IpAddr,
    /// The entry's state.
    pub state: NeighState,
    /// The MAC, when the entry has one.
    pub mac: Option<MacAddr>,
    /// The lab host owning that MAC (a node name, usually).
    pub owner: Option<String>,
}

/// One sample of a [`NeighborWatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Time since the watch started.
    pub at: Duration,
    /// The neighbour entry at that time.
    pub resolution: Resolution,
}

/// Probes that run inside one namespace and name lab hosts by their MACs.
#[derive(Clone, Debug)]
pub struct Probe {
    netns: String,
    topology: Arc<Topology>,
}

#[derive(Deserialize)]
struct NeighJson {
    dst: String,
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
}

impl Probe {
    /// Probes from `netns`, naming MACs after `topology`'s hosts.
    pub fn new(topology: &Topology, netns: &str) -> Self {
        Self {
            netns: netns.to_string(),
            topology: Arc::new(topology.clone()),
        }
    }

    /// The current neighbour entry for `ip` on `eth0`, without sending anything.
    pub fn neighbor(&self, ip: IpAddr) -> Result<Resolution, LabError> {
        neighbor_in(Some(&self.netns), &self.topology, ip)
    }

    /// Removes the neighbour entry for `ip`, so that the next resolution starts afresh.
    pub fn flush(&self, ip: IpAddr) -> Result<(), LabError> {
        netns::ip_batch(
            Some(&self.netns),
            &[format!("neigh flush to {ip} dev {HOST_IFACE}")],
        )
    }

    /// Makes the kernel resolve `ip` (a datagram to its discard port triggers ARP/NDP) and
    /// waits until the entry holds a MAC, fails, or `timeout` passes. With the kernel's default
    /// timers an unanswered resolution fails after about 3 s.
    pub fn resolve(&self, ip: IpAddr, timeout: Duration) -> Result<Resolution, LabError> {
        let topology = self.topology.clone();
        netns::run_in(&self.netns, move || {
            nudge(ip);
            let deadline = Instant::now() + timeout;
            loop {
                // Already inside the namespace: `ip` inherits it.
                let r = neighbor_in(None, &topology, ip)?;
                if r.state.is_resolved()
                    || r.state == NeighState::Failed
                    || Instant::now() >= deadline
                {
                    return Ok(r);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })?
    }

    /// Asks the LAN directly who has `ip` (`arping` for IPv4, `ndisc6` for IPv6), bypassing the
    /// kernel's table, and returns every MAC that answered within `wait`, in order, with its
    /// owner. More than one MAC means more than one host claims the IP.
    pub fn solicit(
        &self,
        ip: IpAddr,
        wait: Duration,
    ) -> Result<Vec<(MacAddr, Option<String>)>, LabError> {
        let secs = wait.as_secs().max(1).to_string();
        let text = match ip {
            IpAddr::V4(v4) => {
                require_tools(&[("arping", "arping")])?;
                let ip = v4.to_string();
                // Exit status 1 means "no reply": not an error here.
                let args = ["-i", HOST_IFACE, "-c", "1", "-w", &secs, &ip];
                match netns::stdout(Some(&self.netns), "arping", &args) {
                    Ok(out) => out,
                    Err(LabError::Command { output, .. }) => output,
                    Err(e) => return Err(e),
                }
            }
            IpAddr::V6(v6) => {
                require_tools(&[("ndisc6", "ndisc6")])?;
                let ip = v6.to_string();
                let wait_ms = wait.as_millis().max(100).to_string();
                let args = ["-m", "-n", "-r", "1", "-w", &wait_ms, &ip, HOST_IFACE];
                match netns::stdout(Some(&self.netns), "ndisc6", &args) {
                    Ok(out) => out,
                    Err(LabError::Command { output, .. }) => output,
                    Err(e) => return Err(e),
                }
            }
        };
        let mut macs = parse_solicit_output(&text);
        macs.dedup();
        Ok(macs
            .into_iter()
            .map(|mac| (mac, self.topology.owner_of(mac).map(|h| h.name.clone())))
            .collect())
    }

    /// Connects to `addr` over TCP and returns what the responder there says: the name of the
    /// node that answered.
    pub fn tcp_name(&self, addr: SocketAddr, timeout: Duration) -> Result<String, LabError> {
        netns::run_in(&self.netns, move || {
            let mut stream = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| LabError::io(format!("connect to {addr}"), e))?;
            stream
                .set_read_timeout(Some(timeout))
                .map_err(|e| LabError::io("set a read timeout", e))?;
            let mut reply = String::new();
            stream
                .read_to_string(&mut reply)
                .map_err(|e| LabError::io(format!("read from {addr}"), e))?;
            Ok(reply.trim().to_string())
        })?
    }

    /// Samples the neighbour entry of `ip` every `interval` until [`NeighborWatch::stop`];
    /// with `traffic`, also sends a datagram to `ip` before each sample so that the kernel keeps
    /// (re)resolving it as a real client would.
    pub fn watch(
        &self,
        ip: IpAddr,
        interval: Duration,
        traffic: bool,
    ) -> Result<NeighborWatch, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (topology, flag) = (self.topology.clone(), stop.clone());
        let handle = netns::spawn_in(&self.netns, move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if traffic {
                    nudge(ip);
                }
                samples.push(Sample {
                    at: start.elapsed(),
                    resolution: neighbor_in(None, &topology, ip)?,
                });
                std::thread::sleep(interval);
            }
            Ok(samples)
        })?;
        Ok(NeighborWatch { stop, handle })
    }
}

/// A running sampler of one neighbour entry.
#[derive(Debug)]
pub struct NeighborWatch {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Result<Result<Vec<Sample>, LabError>, LabError>>,
}

impl NeighborWatch {
    /// Stops sampling and returns the samples in time order.
    pub fn stop(self) -> Result<Vec<Sample>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| LabError::Panicked("the neighbour watch".into()))??
    }
}

/// Sends one datagram to `ip`'s discard port: the kernel resolves the IP on the way out.
fn nudge(ip: IpAddr) {
    let local: SocketAddr = match ip {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // Errors (an unreachable host) are what resolution is about; the table tells the outcome.
    if let Ok(socket) = UdpSocket::bind(local) {
        let _ = socket.send_to(b"ferrolb-lab probe", (ip, 9));
    }
}

/// Reads the neighbour entry of `ip` from inside `netns` (`None`: the calling thread's).
fn neighbor_in(
    netns: Option<&str>,
    topology: &Topology,
    ip: IpAddr,
) -> Result<Resolution, LabError> {
    let text = netns::stdout(
        netns,
        "ip",
        &[
            "-j",
            "neigh",
            "show",
            "to",
            &ip.to_string(),
            "dev",
            HOST_IFACE,
        ],
    )?;
    parse_neigh(&text, ip, topology)
}

/// Reads `ip -j neigh show to IP dev eth0` into a resolution of `ip`.
fn parse_neigh(text: &str, ip: IpAddr, topology: &Topology) -> Result<Resolution, LabError> {
    let entries: Vec<NeighJson> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(text).map_err(|e| LabError::Parse {
            what: format!("ip neigh JSON {text:?}"),
            detail: e.to_string(),
        })?
    };
    let entry = entries
        .into_iter()
        .find(|e| e.dst.parse::<IpAddr>().ok() == Some(ip));
    Ok(match entry {
        None => Resolution {
            ip,
            state: NeighState::Absent,
            mac: None,
            owner: None,
        },
        Some(e) => {
            let mac = e.lladdr.and_then(|m| m.parse::<MacAddr>().ok());
            Resolution {
                ip,
                state: NeighState::from_names(&e.state),
                mac,
                owner: mac
                    .and_then(|m| topology.owner_of(m))
                    .map(|h| h.name.clone()),
            }
        }
    })
}

/// The MACs in `arping` (`... bytes from 02:fb:...`) or `ndisc6 -m` (`Target link-layer
/// address: 02:FB:...`) output, in order.
fn parse_solicit_output(text: &str) -> Vec<MacAddr> {
    text.lines()
        .filter(|l| l.contains("bytes from") || l.contains("link-layer address"))
        .filter_map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '[' || c == ']')
                .find_map(|w| w.parse::<MacAddr>().ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_entries_name_the_owner_of_their_mac() {
        let t = Topology::new("p", 2, false).unwrap();
        let ip: IpAddr = "192.168.5.1".parse().unwrap();
        let cases = [
            (
                r#"[{"dst":"192.168.5.1","lladdr":"02:fb:04:00:00:12","state":["REACHABLE"]}]"#,
                NeighState::Reachable,
                Some("node2"),
            ),
            (
                r#"[{"dst":"192.168.5.1","state":["FAILED"]}]"#,
                NeighState::Failed,
                None,
            ),
            (
                r#"[{"dst":"192.168.5.1","state":["INCOMPLETE"]}]"#,
                NeighState::Incomplete,
                None,
            ),
            ("[]", NeighState::Absent, None),
            ("", NeighState::Absent, None),
        ];
        for (text, state, owner) in cases {
            let r = parse_neigh(text, ip, &t).unwrap();
            assert_eq!(r.state, state, "{text}");
            assert_eq!(r.owner.as_deref(), owner, "{text}");
        }
    }

    #[test]
    fn solicit_output_of_arping_and_ndisc6_lists_each_answering_mac() {
        let arping = "ARPING 192.168.4.11\n60 bytes from 02:fb:04:00:00:11 (192.168.4.11): index=0 time=1.1 usec\n\
                      60 bytes from 02:fb:04:00:00:12 (192.168.4.11): index=1 time=2.1 usec\n";
        let ndisc6 = "Soliciting fd00:4::11 (fd00:4::11) on eth0...\nTarget link-layer address: 02:FB:04:00:00:11\n";
        assert_eq!(parse_solicit_output(arping).len(), 2);
        assert_eq!(
            parse_solicit_output(ndisc6),
            vec!["02:fb:04:00:00:11".parse().unwrap()]
        );
        assert!(parse_solicit_output("Timeout\n").is_empty());
    }
}
