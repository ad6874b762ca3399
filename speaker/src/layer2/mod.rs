//! Layer-2 announcement: answering ARP (IPv4) and Neighbor Solicitations
//! (IPv6) for the addresses this node won, and announcing them gratuitously
//! on takeover.
//!
//! [`arp`] and [`ndp`] are pure packet codecs and [`answer`] /
//! [`gratuitous_frames`] the pure decisions on top of them; [`responder`]
//! owns the raw sockets and threads.

pub mod arp;
#[cfg(test)]
mod frames;
pub mod interfaces;
pub mod ndp;
pub mod responder;

use std::net::IpAddr;

use pnet_datalink::MacAddr;

use crate::announce::ServiceIp;

/// One interface as the responder uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Its MAC address: the answer to every question.
    pub mac: MacAddr,
}

/// What to do with one received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not an ARP request or Neighbor Solicitation for us: ignore it.
    Ignore,
    /// A question about an address we do not own (here): stay silent.
    NotOwned(ServiceIp),
    /// A question about an owned address, and the frame answering it.
    Reply(ServiceIp, Vec<u8>),
}

/// Decides the answer to `frame` received on `link`, given which addresses
/// this node owns on that link.
pub fn answer(frame: &[u8], link: &Link, owns: impl Fn(ServiceIp) -> bool) -> Answer {
    if let Some(request) = arp::parse_request(frame, link.mac) {
        let ip = ServiceIp::new(IpAddr::V4(request.target_ip));
        if !owns(ip) {
            return Answer::NotOwned(ip);
        }
        return Answer::Reply(ip, arp::reply(&request, link.mac));
    }
    if let Some(ns) = ndp::parse_solicitation(frame, link.mac) {
        let ip = ServiceIp::new(IpAddr::V6(ns.target_ip));
        if !owns(ip) {
            return Answer::NotOwned(ip);
        }
        return Answer::Reply(ip, ndp::solicited_advertisement(&ns, link.mac));
    }
    Answer::Ignore
}

/// The frames announcing `ip` at `link`'s MAC on takeover: gratuitous ARP
/// in request and reply form for IPv4, an unsolicited Neighbor
/// Advertisement with the Override flag for IPv6.
pub fn gratuitous_frames(ip: ServiceIp, link: &Link) -> Vec<Vec<u8>> {
    match ip.ip() {
        IpAddr::V4(v4) => vec![
            arp::gratuitous(v4, link.mac, arp::GratuitousForm::Request),
            arp::gratuitous(v4, link.mac, arp::GratuitousForm::Reply),
        ],
        IpAddr::V6(v6) => vec![ndp::unsolicited_advertisement(v6, link.mac)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer2::frames;
    use std::net::Ipv6Addr;

    const US: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);
    const ASKER: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x02);

    fn link() -> Link {
        Link {
            name: "eth0".into(),
            index: 2,
            mac: US,
        }
    }

    fn sip(s: &str) -> ServiceIp {
        ServiceIp::new(s.parse().unwrap())
    }

    fn arp_question(target: [u8; 4]) -> Vec<u8> {
        frames::arp_request([0xff; 6], ASKER.octets(), 1, [10, 0, 0, 9], target)
    }

    fn ns_question(target: &str) -> Vec<u8> {
        let target: Ipv6Addr = target.parse().unwrap();
        let src = "fc00::9".parse().unwrap();
        frames::neighbor_solicitation(
            ASKER,
            src,
            ndp::solicited_node(target),
            target,
            &frames::source_ll_option(ASKER),
            255,
        )
    }

    #[test]
    fn answers_follow_ownership() {
        let owned = |ip: ServiceIp| ip == sip("10.0.0.5") || ip == sip("fc00::5");
        let target: Ipv6Addr = "fc00::5".parse().unwrap();
        type Check = Box<dyn Fn(&Answer) -> bool>;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            (
                "an_owned_ipv4_address_gets_an_arp_reply_to_the_asker",
                arp_question([10, 0, 0, 5]),
                Box::new(|a| {
                    matches!(a, Answer::Reply(ip, f)
                        if *ip == sip("10.0.0.5") && f[0..6] == ASKER.octets() && f[20..22] == [0, 2] && f[22..28] == US.octets())
                }),
            ),
            (
                "an_ipv4_address_we_do_not_own_gets_silence",
                arp_question([10, 0, 0, 6]),
                Box::new(|a| *a == Answer::NotOwned(sip("10.0.0.6"))),
            ),
            (
                "an_owned_ipv6_address_gets_an_na_from_that_address",
                ns_question("fc00::5"),
                Box::new(move |a| {
                    matches!(a, Answer::Reply(ip, f)
                        if *ip == sip("fc00::5") && f[54] == 136 && f[22..38] == target.octets() && f[0..6] == ASKER.octets())
                }),
            ),
            (
                "an_ipv6_address_we_do_not_own_gets_silence",
                ns_question("fc00::6"),
                Box::new(|a| *a == Answer::NotOwned(sip("fc00::6"))),
            ),
            (
                "a_frame_that_is_no_question_is_ignored",
                vec![0u8; 60],
                Box::new(|a| *a == Answer::Ignore),
            ),
        ];
        for (rule, frame, check) in cases {
            let got = answer(&frame, &link(), owned);
            assert!(check(&got), "{rule}: {got:?}");
        }
    }

    #[test]
    fn gratuitous_frames_per_family() {
        let v4 = gratuitous_frames(sip("10.0.0.5"), &link());
        assert_eq!(v4.len(), 2, "request and reply forms");
        assert_eq!([v4[0][21], v4[1][21]], [1, 2]);
        let v6 = gratuitous_frames(sip("fc00::5"), &link());
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0][54], 136, "a Neighbor Advertisement");
        assert_eq!(&v6[0][38..54], &ndp::ALL_NODES.octets());
        assert_eq!(
            &v6[0][22..38],
            &"fc00::5".parse::<Ipv6Addr>().unwrap().octets(),
            "from the address itself"
        );
    }
}
