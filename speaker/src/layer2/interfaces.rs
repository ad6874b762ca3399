//! Which interfaces the responder answers on, tracked live with rtnetlink.
//!
//! An interface qualifies when it is up, not loopback, not point-to-point,
//! ARP-capable, has a MAC, and is not enslaved to a bond, team or bridge
//! (the bond or bridge itself answers instead: that is where the node's
//! address lives and where the LAN's frames arrive). The L2Advertisements'
//! `interfaces` lists narrow this further per address, in the responder.
//!
//! [`track`] dumps the links once, then again whenever the kernel reports a
//! link or address change, and publishes the qualifying set when it
//! changes. [`from_message`] and [`eligible`] are the pure part.

use std::time::Duration;

use futures::StreamExt;
use pnet_datalink::{MacAddr, NetworkInterface};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoPortKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::watch;

use crate::announce::Interfaces;
use crate::layer2::responder::arp_capable;
use ferrolb_config::model::Config;

/// How long to wait after a change notification before dumping, so that a
/// burst of notifications (a link coming up with its addresses) costs one dump.
const SETTLE: Duration = Duration::from_millis(20);

/// Why the kernel's links could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InterfacesError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The link dump failed.
    #[error("cannot list links: {0}")]
    Dump(#[from] rtnetlink::Error),
}

/// What a link is enslaved to, when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controller {
    /// A bonding device.
    Bond,
    /// A team device.
    Team,
    /// A bridge.
    Bridge,
    /// Something else (a VRF, ...): the link still answers.
    Other(String),
}

impl Controller {
    /// Whether a link enslaved to this must stay silent.
    fn silences_port(&self) -> bool {
        matches!(
            self,
            Controller::Bond | Controller::Team | Controller::Bridge
        )
    }
}

/// One link, reduced to what eligibility needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// Interface name.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// `IFF_*` flags.
    pub flags: u32,
    /// Hardware address, when it is a 6-byte MAC.
    pub mac: Option<MacAddr>,
    /// The device it is enslaved to, if any.
    pub controller: Option<Controller>,
}

impl LinkView {
    /// The link as pnet describes an interface (no addresses: the
    /// responder answers with the MAC, whatever the link's addresses).
    pub fn to_interface(&self) -> NetworkInterface {
        NetworkInterface {
            name: self.name.clone(),
            description: String::new(),
            index: self.index,
            mac: self.mac,
            ips: Vec::new(),
            flags: self.flags,
        }
    }
}

/// Reads a link from an RTM_NEWLINK message; `None` without a name.
pub fn from_message(message: &LinkMessage) -> Option<LinkView> {
    let mut name = None;
    let mut mac = None;
    let mut controller = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Address(bytes) => {
                if let [a, b, c, d, e, f] = bytes.as_slice() {
                    mac = Some(MacAddr(*a, *b, *c, *d, *e, *f));
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::PortKind(kind) = info {
                        controller = Some(match kind {
                            InfoPortKind::Bond => Controller::Bond,
                            InfoPortKind::Team => Controller::Team,
                            InfoPortKind::Bridge => Controller::Bridge,
                            other => Controller::Other(other.to_string()),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Some(LinkView {
        name: name?,
        index: message.header.index,
        flags: message.header.flags.bits(),
        mac,
        controller,
    })
}

/// The interfaces the responder answers on, in name order.
pub fn eligible(links: &[LinkView]) -> Vec<NetworkInterface> {
    let mut out: Vec<NetworkInterface> = links
        .iter()
        .filter(|l| !l.controller.as_ref().is_some_and(Controller::silences_port))
        .map(LinkView::to_interface)
        .filter(arp_capable)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The interfaces any layer-2 announcement may use under `config`: the
/// union of the L2Advertisements' `interfaces` (an advertisement without
/// any allows all); `None` when nothing is announced in layer 2, so that
/// no socket is opened for nothing.
pub fn scope(config: &Config) -> Option<Interfaces> {
    config
        .l2_advertisements
        .iter()
        .map(|ad| {
            if ad.interfaces.is_empty() {
                Interfaces::All
            } else {
                Interfaces::Only(ad.interfaces.iter().cloned().collect())
            }
        })
        .reduce(Interfaces::union)
}

/// The eligible interfaces inside `scope`.
pub fn in_scope(
    eligible: &[NetworkInterface],
    scope: Option<&Interfaces>,
) -> Vec<NetworkInterface> {
    match scope {
        None => Vec::new(),
        Some(scope) => eligible
            .iter()
            .filter(|i| scope.allows(&i.name))
            .cloned()
            .collect(),
    }
}

/// Dumps every link of this network namespace.
pub async fn list(handle: &Handle) -> Result<Vec<LinkView>, rtnetlink::Error> {
    let mut links = Vec::new();
    let mut dump = handle.link().get().execute();
    while let Some(message) = dump.next().await {
        if let Some(link) = from_message(&message?) {
            links.push(link);
        }
    }
    Ok(links)
}

/// Starts tracking: returns a channel holding the eligible interfaces, kept
/// current by a background task for as long as a receiver lives.
pub async fn track() -> Result<watch::Receiver<Vec<NetworkInterface>>, InterfacesError> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    let (events_connection, _, mut events) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    tokio::spawn(events_connection);
    // Subscribed first, dumped second: no change can fall in between.
    let first = eligible(&list(&handle).await?);
    log_set(&first);
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        while let Some((message, _)) = events.next().await {
            if !is_relevant(&message.payload) {
                continue;
            }
            tokio::time::sleep(SETTLE).await;
            // Everything that arrived meanwhile is covered by the dump below.
            while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, events.next()).await {}
            match list(&handle).await {
                Ok(links) => {
                    let now = eligible(&links);
                    tx.send_if_modified(|current| {
                        if *current == now {
                            return false;
                        }
                        log_set(&now);
                        *current = now;
                        true
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot list links after a change"),
            }
            if tx.is_closed() {
                return;
            }
        }
        tracing::warn!("the netlink notification socket closed; interfaces are no longer tracked");
    });
    Ok(rx)
}

/// Link and address notifications matter; anything else is noise.
fn is_relevant(payload: &rtnetlink::packet_core::NetlinkPayload<RouteNetlinkMessage>) -> bool {
    use rtnetlink::packet_core::NetlinkPayload;
    matches!(
        payload,
        NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewLink(_)
                | RouteNetlinkMessage::DelLink(_)
                | RouteNetlinkMessage::SetLink(_)
                | RouteNetlinkMessage::NewAddress(_)
                | RouteNetlinkMessage::DelAddress(_)
        )
    )
}

fn log_set(interfaces: &[NetworkInterface]) {
    let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    tracing::info!(interfaces = ?names, "layer2 interfaces");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::LinkFlags;

    const UP: u32 = 0x1;
    const BROADCAST: u32 = 0x2;
    const LOOPBACK: u32 = 0x8;

    fn link(name: &str, flags: u32, controller: Option<Controller>) -> LinkView {
        LinkView {
            name: name.into(),
            index: 7,
            flags,
            mac: Some(MacAddr(2, 0, 0, 0, 0, 7)),
            controller,
        }
    }

    #[test]
    fn eligibility_rules() {
        let cases: Vec<(&str, LinkView, bool)> = vec![
            (
                "an_up_ethernet_link_answers",
                link("eth0", UP | BROADCAST, None),
                true,
            ),
            ("a_down_link_does_not", link("eth0", BROADCAST, None), false),
            ("loopback_does_not", link("lo", UP | LOOPBACK, None), false),
            (
                "a_bond_port_does_not",
                link("eth1", UP, Some(Controller::Bond)),
                false,
            ),
            (
                "a_bridge_port_does_not",
                link("veth1", UP, Some(Controller::Bridge)),
                false,
            ),
            (
                "a_team_port_does_not",
                link("eth2", UP, Some(Controller::Team)),
                false,
            ),
            (
                "a_vrf_port_still_answers",
                link("eth3", UP, Some(Controller::Other("vrf".into()))),
                true,
            ),
            (
                "a_link_without_mac_does_not",
                LinkView {
                    mac: None,
                    ..link("wg0", UP, None)
                },
                false,
            ),
        ];
        for (rule, view, want) in cases {
            assert_eq!(!eligible(&[view]).is_empty(), want, "{rule}");
        }
    }

    #[test]
    fn the_scope_is_the_union_of_the_advertisements_interfaces() {
        use ferrolb_config::model::L2Advertisement;
        let ad = |ifs: &[&str]| L2Advertisement {
            name: "a".into(),
            pools: vec!["p".into()],
            node_selectors: vec![],
            interfaces: ifs.iter().map(|s| s.to_string()).collect(),
            external_ips: false,
        };
        let config = |ads: Vec<L2Advertisement>| Config {
            l2_advertisements: ads,
            ..Config::default()
        };
        let only = |names: &[&str]| Interfaces::Only(names.iter().map(|s| s.to_string()).collect());
        let cases: Vec<(&str, Config, Option<Interfaces>)> = vec![
            (
                "no_layer2_advertisement_needs_no_interface",
                config(vec![]),
                None,
            ),
            (
                "an_unrestricted_advertisement_needs_all",
                config(vec![ad(&[])]),
                Some(Interfaces::All),
            ),
            (
                "restricted_advertisements_unite",
                config(vec![ad(&["eth1"]), ad(&["eth2"])]),
                Some(only(&["eth1", "eth2"])),
            ),
            (
                "one_unrestricted_advertisement_wins",
                config(vec![ad(&["eth1"]), ad(&[])]),
                Some(Interfaces::All),
            ),
        ];
        for (rule, config, want) in cases {
            assert_eq!(scope(&config), want, "{rule}");
        }
        let eligible = eligible(&[link("eth1", UP, None), link("eth2", UP, None)]);
        let names =
            |list: Vec<NetworkInterface>| list.into_iter().map(|i| i.name).collect::<Vec<_>>();
        assert_eq!(names(in_scope(&eligible, None)), Vec::<String>::new());
        assert_eq!(
            names(in_scope(&eligible, Some(&only(&["eth2"])))),
            vec!["eth2"]
        );
        assert_eq!(
            names(in_scope(&eligible, Some(&Interfaces::All))),
            vec!["eth1", "eth2"]
        );
    }

    #[test]
    fn a_newlink_message_gives_name_index_flags_mac_and_controller() {
        let mut message = LinkMessage::default();
        message.header.index = 4;
        message.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        message.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Address(vec![2, 0xfb, 4, 0, 0, 0x11]),
            LinkAttribute::LinkInfo(vec![LinkInfo::PortKind(InfoPortKind::Bridge)]),
        ];
        let view = from_message(&message).unwrap();
        assert_eq!(view.name, "eth0");
        assert_eq!(view.index, 4);
        assert_eq!(view.flags, UP | BROADCAST);
        assert_eq!(view.mac, Some(MacAddr(2, 0xfb, 4, 0, 0, 0x11)));
        assert_eq!(view.controller, Some(Controller::Bridge));
        message
            .attributes
            .retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        assert_eq!(
            from_message(&message),
            None,
            "a link without a name is skipped"
        );
    }
}
