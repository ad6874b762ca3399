//! The layer-2 responder: raw packet sockets (pnet_datalink) on each
//! interface, answering ARP and Neighbor Solicitations for the owned
//! addresses, and gratuitous bursts on takeover.
//!
//! One receive thread per interface (the receive call blocks; it wakes at
//! least every [`READ_TIMEOUT`] to notice a stop and to send due gratuitous
//! repeats). Promiscuous mode stays off. The table of owned addresses is
//! shared with the threads, so a lost address is answered no more from the
//! moment [`Announcer::set`] returns. Sockets are opened by the thread that
//! calls [`Layer2Responder::set_interfaces`], hence in its network namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};

use crate::announce::{AnnounceError, Announcer, Desired, Interfaces, Protocol, ServiceIp};
use crate::layer2::{Answer, Link, answer, gratuitous_frames, ndp};
use crate::metrics::Layer2Metrics;

/// How long a receive call blocks before the thread looks at its stop flag
/// and its pending gratuitous repeats.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// When gratuitous packets go out after a takeover, from the takeover: at
/// once, then repeated so that caches that missed one converge.
pub const GRATUITOUS_SCHEDULE: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_millis(1500),
    Duration::from_millis(3000),
];

/// `IFF_NOARP` from `<net/if.h>` (not exported by pnet).
const IFF_NOARP: u32 = 0x80;

/// Whether an interface can answer ARP/NDP at all: up, not loopback, not
/// point-to-point, ARP enabled, with a MAC. (Interfaces enslaved to a bond
/// or bridge are excluded by the caller, which knows the link topology.)
pub fn arp_capable(interface: &NetworkInterface) -> bool {
    interface.is_up()
        && !interface.is_loopback()
        && !interface.is_point_to_point()
        && interface.flags & IFF_NOARP == 0
        && interface.mac.is_some_and(|m| !m.is_zero())
}

/// The responder's view of an interface.
fn link_of(interface: &NetworkInterface) -> Option<Link> {
    Some(Link {
        name: interface.name.clone(),
        index: interface.index,
        mac: interface.mac?,
    })
}

/// Owned addresses and where each may be announced.
type Table = Arc<RwLock<BTreeMap<ServiceIp, Interfaces>>>;

/// Whether `ip` is owned and may be announced on `interface`.
fn owns(table: &Table, ip: ServiceIp, interface: &str) -> bool {
    let table = table.read().unwrap_or_else(PoisonError::into_inner);
    table.get(&ip).is_some_and(|ifs| ifs.allows(interface))
}

/// A takeover's remaining gratuitous repeats on one interface.
#[derive(Debug, Clone)]
struct Burst {
    ip: ServiceIp,
    started: Instant,
    /// Index in [`GRATUITOUS_SCHEDULE`] of the next send.
    next: usize,
}

/// What the receive thread and the main loop share for one interface.
struct PortShared {
    link: Link,
    tx: Mutex<Box<dyn DataLinkSender>>,
    bursts: Mutex<Vec<Burst>>,
    stop: AtomicBool,
    table: Table,
    metrics: Layer2Metrics,
}

impl PortShared {
    /// Sends one frame; errors are logged, as the next repeat or question retries.
    fn send(&self, frame: &[u8]) -> bool {
        let mut tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        match tx.send_to(frame, None) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!(interface = %self.link.name, error = %e, "sending a frame failed");
                false
            }
            None => {
                tracing::warn!(interface = %self.link.name, "sending a frame failed: no buffer");
                false
            }
        }
    }

    /// Sends the gratuitous frames for `ip` once.
    fn announce(&self, ip: ServiceIp) {
        for frame in gratuitous_frames(ip, &self.link) {
            if self.send(&frame) {
                self.metrics.gratuitous(ip);
            }
        }
    }

    /// Sends the repeats that are due, dropping bursts of addresses no longer owned here.
    fn run_due_bursts(&self) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut bursts = self.bursts.lock().unwrap_or_else(PoisonError::into_inner);
            bursts.retain_mut(|b| {
                while let Some(offset) = GRATUITOUS_SCHEDULE.get(b.next) {
                    if now < b.started + *offset {
                        break;
                    }
                    b.next += 1;
                    due.push(b.ip);
                }
                b.next < GRATUITOUS_SCHEDULE.len()
            });
        }
        due.dedup();
        for ip in due {
            if owns(&self.table, ip, &self.link.name) {
                self.announce(ip);
            }
        }
    }

    /// Answers one received frame if it asks about an owned address.
    fn handle(&self, frame: &[u8]) {
        match answer(frame, &self.link, |ip| {
            owns(&self.table, ip, &self.link.name)
        }) {
            Answer::Ignore => {}
            Answer::NotOwned(ip) => {
                tracing::trace!(interface = %self.link.name, %ip, "question for an address not ours")
            }
            Answer::Reply(ip, reply) => {
                self.metrics.request(ip);
                if self.send(&reply) {
                    self.metrics.response(ip);
                    tracing::debug!(interface = %self.link.name, %ip, "answered");
                }
            }
        }
    }
}

/// The receive loop of one interface.
fn serve(port: Arc<PortShared>, mut rx: Box<dyn DataLinkReceiver>) {
    tracing::debug!(interface = %port.link.name, "layer2 receive thread started");
    while !port.stop.load(Ordering::Acquire) {
        match rx.next() {
            Ok(frame) => port.handle(frame),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // E.g. the interface went down: do not spin; the caller will
                // replace or remove this port when the link changes.
                tracing::warn!(interface = %port.link.name, error = %e, "receive failed");
                std::thread::sleep(READ_TIMEOUT);
            }
        }
        port.run_due_bursts();
    }
    tracing::debug!(interface = %port.link.name, "layer2 receive thread stopped");
}

/// One open interface.
struct Port {
    shared: Arc<PortShared>,
    thread: Option<JoinHandle<()>>,
    /// Joined solicited-node groups, so that a NIC without promiscuous mode
    /// delivers the Neighbor Solicitations for our IPv6 addresses.
    multicast: Option<UdpSocket>,
    groups: BTreeSet<Ipv6Addr>,
}

impl Port {
    fn open(
        interface: &NetworkInterface,
        table: Table,
        metrics: Layer2Metrics,
    ) -> Result<Port, AnnounceError> {
        let err = |source| AnnounceError::Interface {
            interface: interface.name.clone(),
            source,
        };
        let link = link_of(interface).ok_or_else(|| err(io::Error::other("no MAC address")))?;
        let config = Config {
            read_timeout: Some(READ_TIMEOUT),
            promiscuous: false,
            ..Config::default()
        };
        let (tx, rx) = match pnet_datalink::channel(interface, config).map_err(err)? {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => return Err(err(io::Error::other("not an Ethernet channel"))),
        };
        let shared = Arc::new(PortShared {
            link,
            tx: Mutex::new(tx),
            bursts: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            table,
            metrics,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("l2-{}", interface.name))
            .spawn(move || serve(worker, rx))
            .map_err(err)?;
        tracing::info!(interface = %interface.name, mac = %shared.link.mac, "layer2 responder listening");
        Ok(Port {
            shared,
            thread: Some(thread),
            multicast: None,
            groups: BTreeSet::new(),
        })
    }

    /// Starts a takeover burst for `ip`: the first packets now, repeats later.
    fn start_burst(&self, ip: ServiceIp) {
        let started = Instant::now();
        {
            let mut bursts = self
                .shared
                .bursts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            bursts.retain(|b| b.ip != ip);
            bursts.push(Burst {
                ip,
                started,
                next: 1,
            });
        }
        self.shared.announce(ip);
    }

    /// Joins exactly the solicited-node groups of `wanted`.
    fn set_groups(&mut self, wanted: BTreeSet<Ipv6Addr>) {
        if wanted == self.groups {
            return;
        }
        if self.multicast.is_none() && !wanted.is_empty() {
            match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)) {
                Ok(socket) => self.multicast = Some(socket),
                Err(e) => {
                    tracing::warn!(interface = %self.shared.link.name, error = %e, "no IPv6 socket to join multicast groups");
                    return;
                }
            }
        }
        let Some(socket) = &self.multicast else {
            return;
        };
        let index = self.shared.link.index;
        for group in self.groups.difference(&wanted) {
            if let Err(e) = socket.leave_multicast_v6(group, index) {
                tracing::debug!(interface = %self.shared.link.name, %group, error = %e, "leaving multicast group");
            }
        }
        for group in wanted.difference(&self.groups) {
            if let Err(e) = socket.join_multicast_v6(group, index) {
                tracing::warn!(interface = %self.shared.link.name, %group, error = %e, "joining multicast group");
            }
        }
        self.groups = wanted;
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            // Returns within one read timeout.
            let _ = thread.join();
        }
    }
}

/// The layer-2 [`Announcer`].
pub struct Layer2Responder {
    table: Table,
    ports: BTreeMap<String, Port>,
    metrics: Layer2Metrics,
    current: Desired,
}

impl std::fmt::Debug for Layer2Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer2Responder")
            .field("interfaces", &self.ports.keys().collect::<Vec<_>>())
            .field("announced", &self.current.layer2.len())
            .finish()
    }
}

impl Layer2Responder {
    /// A responder on no interface yet, counting into `metrics`.
    pub fn new(metrics: Layer2Metrics) -> Self {
        Self {
            table: Arc::new(RwLock::new(BTreeMap::new())),
            ports: BTreeMap::new(),
            metrics,
            current: Desired::default(),
        }
    }

    /// The interfaces currently open.
    pub fn interfaces(&self) -> Vec<String> {
        self.ports.keys().cloned().collect()
    }

    /// Answers on exactly these interfaces (the caller has filtered them,
    /// e.g. with [`arp_capable`] and the bond/bridge rule). New interfaces
    /// get a gratuitous burst for the owned addresses they may announce.
    /// Every interface is tried; the first failure is returned.
    pub fn set_interfaces(&mut self, interfaces: &[NetworkInterface]) -> Result<(), AnnounceError> {
        let wanted: BTreeMap<&str, &NetworkInterface> =
            interfaces.iter().map(|i| (i.name.as_str(), i)).collect();
        self.ports.retain(|name, port| {
            let keep = wanted
                .get(name.as_str())
                .and_then(|i| link_of(i))
                .is_some_and(|link| link == port.shared.link);
            if !keep {
                tracing::info!(interface = %name, "layer2 responder closing interface");
            }
            keep
        });
        let mut first_error = None;
        let mut opened = BTreeSet::new();
        for (name, interface) in wanted {
            if self.ports.contains_key(name) {
                continue;
            }
            match Port::open(interface, Arc::clone(&self.table), self.metrics.clone()) {
                Ok(port) => {
                    self.ports.insert(name.to_owned(), port);
                    opened.insert(name.to_owned());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot answer on interface");
                    first_error.get_or_insert(e);
                }
            }
        }
        self.refresh_ports(&[], &opened);
        first_error.map_or(Ok(()), Err)
    }

    /// Joins the multicast groups each port needs, and starts takeover
    /// bursts: for `takeovers` on every port that may announce them, and
    /// for every owned address on the `opened` ports.
    fn refresh_ports(&mut self, takeovers: &[ServiceIp], opened: &BTreeSet<String>) {
        let table = self
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (name, port) in &mut self.ports {
            let here: Vec<ServiceIp> = table
                .iter()
                .filter(|(_, ifs)| ifs.allows(name))
                .map(|(ip, _)| *ip)
                .collect();
            port.set_groups(
                here.iter()
                    .filter_map(|ip| match ip.ip() {
                        IpAddr::V6(v6) => Some(ndp::solicited_node(v6)),
                        IpAddr::V4(_) => None,
                    })
                    .collect(),
            );
            let new_port = opened.contains(name);
            for ip in here.iter().filter(|ip| new_port || takeovers.contains(ip)) {
                port.start_burst(*ip);
            }
        }
    }
}

impl Announcer for Layer2Responder {
    fn protocol(&self) -> Protocol {
        Protocol::Layer2
    }

    fn set(&mut self, desired: &Desired) -> Result<(), AnnounceError> {
        let changes = desired.layer2_changes(&self.current);
        {
            // From here on the receive threads stop answering lost addresses.
            let mut table = self.table.write().unwrap_or_else(PoisonError::into_inner);
            *table = desired
                .layer2
                .iter()
                .map(|(ip, a)| (*ip, a.interfaces.clone()))
                .collect();
        }
        for ip in &changes.lost {
            tracing::info!(%ip, "layer2: stopped announcing");
        }
        for ip in &changes.gained {
            tracing::info!(%ip, "layer2: announcing");
        }
        let takeovers: Vec<ServiceIp> = changes
            .gained
            .iter()
            .chain(&changes.moved)
            .copied()
            .collect();
        // A moved address restarts its burst on the interfaces it now uses.
        for port in self.ports.values() {
            let mut bursts = port
                .shared
                .bursts
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            bursts.retain(|b| !changes.lost.contains(&b.ip) && !changes.moved.contains(&b.ip));
        }
        // Only the layer-2 part: the BGP part may hold every Service.
        self.current = Desired {
            layer2: desired.layer2.clone(),
            ..Desired::default()
        };
        self.refresh_ports(&takeovers, &BTreeSet::new());
        Ok(())
    }
}

impl Drop for Layer2Responder {
    fn drop(&mut self) {
        // Stop every thread first, then join them (Port::drop) in parallel time.
        for port in self.ports.values_mut() {
            port.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gratuitous_schedule_starts_at_once_and_repeats_for_seconds() {
        assert_eq!(GRATUITOUS_SCHEDULE[0], Duration::ZERO);
        assert!(GRATUITOUS_SCHEDULE.windows(2).all(|w| w[0] < w[1]));
        assert!(GRATUITOUS_SCHEDULE.len() >= 3);
        assert!(*GRATUITOUS_SCHEDULE.last().unwrap() >= Duration::from_secs(2));
    }

    #[test]
    fn loopback_and_noarp_interfaces_cannot_answer() {
        let base = NetworkInterface {
            name: "eth0".into(),
            description: String::new(),
            index: 2,
            mac: Some(pnet_datalink::MacAddr(2, 0, 0, 0, 0, 1)),
            ips: vec![],
            flags: 0x1 | 0x2 | 0x1000, // UP | BROADCAST | MULTICAST
        };
        let cases: Vec<(&str, NetworkInterface, bool)> = vec![
            ("an_up_ethernet_interface_answers", base.clone(), true),
            (
                "a_down_interface_does_not",
                NetworkInterface {
                    flags: 0x2,
                    ..base.clone()
                },
                false,
            ),
            (
                "loopback_does_not",
                NetworkInterface {
                    flags: 0x1 | 0x8,
                    ..base.clone()
                },
                false,
            ),
            (
                "point_to_point_does_not",
                NetworkInterface {
                    flags: 0x1 | 0x10,
                    ..base.clone()
                },
                false,
            ),
            (
                "noarp_does_not",
                NetworkInterface {
                    flags: 0x1 | IFF_NOARP,
                    ..base.clone()
                },
                false,
            ),
            (
                "no_mac_does_not",
                NetworkInterface {
                    mac: None,
                    ..base.clone()
                },
                false,
            ),
            (
                "a_zero_mac_does_not",
                NetworkInterface {
                    mac: Some(pnet_datalink::MacAddr::zero()),
                    ..base
                },
                false,
            ),
        ];
        for (rule, interface, want) in cases {
            assert_eq!(arp_capable(&interface), want, "{rule}");
        }
    }
}
