//! IPv6 Neighbor Discovery (RFC 4861) over Ethernet, pure: parse Neighbor
//! Solicitations, build solicited and unsolicited Neighbor Advertisements.
//!
//! Parsing never panics and applies the validity checks of RFC 4861 7.1.1
//! (hop limit 255, ICMPv6 checksum, code 0, length, no zero-length option,
//! target not multicast, no source link-layer option from the unspecified
//! address); everything else returns `None`. NDP options are walked here
//! rather than through pnet's option iterator, whose length arithmetic can
//! overflow on hostile input.

use std::net::Ipv6Addr;

use pnet_datalink::MacAddr;
use pnet_packet::Packet;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{NeighborAdvertFlags, NeighborSolicitPacket};
use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};

/// Size of an Ethernet header.
const ETHERNET_HEADER: usize = 14;
/// Size of the fixed IPv6 header.
const IPV6_HEADER: usize = 40;
/// Fixed part of an NS or NA message (type, code, checksum, flags, target).
const ND_FIXED: usize = 24;
/// An NA with one target link-layer address option.
const NA_LEN: usize = ND_FIXED + 8;
/// Size of the frames built here.
pub const NA_FRAME_LEN: usize = ETHERNET_HEADER + IPV6_HEADER + NA_LEN;
/// NDP option: source link-layer address.
const OPTION_SOURCE_LL: u8 = 1;
/// NDP option: target link-layer address.
const OPTION_TARGET_LL: u8 = 2;
/// All-nodes multicast address.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A Neighbor Solicitation seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// Where to send the answer: the source link-layer address option, else
    /// the Ethernet source.
    pub sender_mac: MacAddr,
    /// The solicitor's address (`::` during duplicate address detection).
    pub sender_ip: Ipv6Addr,
    /// The address asked about.
    pub target_ip: Ipv6Addr,
}

/// The solicited-node multicast address of `ip` (`ff02::1:ffXX:XXXX`).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast address of an IPv6 multicast group (`33:33` + low 32 bits).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr(0x33, 0x33, o[12], o[13], o[14], o[15])
}

/// Parses an Ethernet frame received on an interface whose MAC is `our_mac`
/// into a Neighbor Solicitation worth answering, or `None`.
pub fn parse_solicitation(frame: &[u8], our_mac: MacAddr) -> Option<NeighborSolicitation> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv6 {
        return None;
    }
    let dst_mac = eth.get_destination();
    let ipv6_multicast_mac = dst_mac.0 == 0x33 && dst_mac.1 == 0x33;
    if eth.get_source() == our_mac || !(dst_mac == our_mac || ipv6_multicast_mac) {
        return None;
    }
    let ip = Ipv6Packet::new(eth.payload())?;
    if ip.get_version() != 6
        || ip.get_next_header() != IpNextHeaderProtocols::Icmpv6
        || ip.get_hop_limit() != 255
    {
        return None;
    }
    let body = eth.payload().get(IPV6_HEADER..)?;
    let icmp_bytes = body.get(..usize::from(ip.get_payload_length()))?;
    let (src, dst) = (ip.get_source(), ip.get_destination());

    let icmp = Icmpv6Packet::new(icmp_bytes)?;
    if icmp.get_icmpv6_type() != Icmpv6Types::NeighborSolicit
        || icmp.get_icmpv6_code().0 != 0
        || icmp_bytes.len() < ND_FIXED
        || icmpv6::checksum(&icmp, &src, &dst) != icmp.get_checksum()
    {
        return None;
    }
    let ns = NeighborSolicitPacket::new(icmp_bytes)?;
    let target = ns.get_target_addr();
    if target.is_multicast() || !(dst == solicited_node(target) || dst == target) {
        return None;
    }
    let source_ll = source_link_layer(icmp_bytes.get(ND_FIXED..)?)?;
    let dad = src.is_unspecified();
    if dad && (source_ll.is_some() || dst != solicited_node(target)) {
        return None;
    }
    Some(NeighborSolicitation {
        sender_mac: source_ll.unwrap_or_else(|| eth.get_source()),
        sender_ip: src,
        target_ip: target,
    })
}

/// Walks NDP options: `Some(mac)` of the source link-layer option if any,
/// `Some(None)` without one, `None` when an option is malformed.
fn source_link_layer(mut options: &[u8]) -> Option<Option<MacAddr>> {
    let mut found = None;
    while !options.is_empty() {
        let kind = *options.first()?;
        let units = usize::from(*options.get(1)?);
        if units == 0 {
            return None;
        }
        let option = options.get(..units * 8)?;
        if kind == OPTION_SOURCE_LL && units == 1 {
            found = Some(MacAddr(
                option[2], option[3], option[4], option[5], option[6], option[7],
            ));
        }
        options = &options[units * 8..];
    }
    Some(found)
}

/// Writes one Ethernet + IPv6 + NA frame with a target link-layer option.
fn advertisement(
    eth_dst: MacAddr,
    our_mac: MacAddr,
    src_ip: Ipv6Addr,
    dst_ip: Ipv6Addr,
    target: Ipv6Addr,
    flags: u8,
) -> Vec<u8> {
    let mut buf = vec![0u8; NA_FRAME_LEN];
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(eth_dst);
        eth.set_source(our_mac);
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    if let Some(mut ip) = MutableIpv6Packet::new(&mut buf[ETHERNET_HEADER..]) {
        ip.set_version(6);
        ip.set_payload_length(NA_LEN as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(255);
        ip.set_source(src_ip);
        ip.set_destination(dst_ip);
    }
    let icmp = &mut buf[ETHERNET_HEADER + IPV6_HEADER..];
    icmp[0] = Icmpv6Types::NeighborAdvert.0;
    icmp[1] = 0;
    icmp[4] = flags;
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = OPTION_TARGET_LL;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&our_mac.octets());
    let sum = Icmpv6Packet::new(icmp).map(|p| icmpv6::checksum(&p, &src_ip, &dst_ip));
    if let Some(sum) = sum {
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    buf
}

/// The answer to `ns`: `ns.target_ip` is at `our_mac`. Unicast to the
/// solicitor with the Solicited and Override flags; to all nodes without
/// Solicited when the solicitor is doing duplicate address detection.
/// The source address is the target itself, as a host answering for its
/// own address does (Linux does so; `ndisc6` ignores answers from any
/// other source).
pub fn solicited_advertisement(ns: &NeighborSolicitation, our_mac: MacAddr) -> Vec<u8> {
    if ns.sender_ip.is_unspecified() {
        return unsolicited_advertisement(ns.target_ip, our_mac);
    }
    advertisement(
        ns.sender_mac,
        our_mac,
        ns.target_ip,
        ns.sender_ip,
        ns.target_ip,
        NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override,
    )
}

/// An unsolicited advertisement to all nodes (`ff02::1`, `33:33:00:00:00:01`)
/// with the Override flag, so that caches move to `our_mac` on takeover;
/// sent from the target address, like Linux's own unsolicited NAs.
pub fn unsolicited_advertisement(target: Ipv6Addr, our_mac: MacAddr) -> Vec<u8> {
    advertisement(
        multicast_mac(ALL_NODES),
        our_mac,
        target,
        ALL_NODES,
        target,
        NeighborAdvertFlags::Override,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const US: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);
    const ASKER: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x02);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    use crate::layer2::frames::{checksum_of, ones_complement_sum};

    fn raw_ns(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        options: &[u8],
        hop_limit: u8,
    ) -> Vec<u8> {
        crate::layer2::frames::neighbor_solicitation(ASKER, src, dst, target, options, hop_limit)
    }

    fn slla(mac: MacAddr) -> Vec<u8> {
        crate::layer2::frames::source_ll_option(mac)
    }

    #[test]
    fn solicited_node_address_and_mac_follow_rfc_4291() {
        let target = v6("fc00::12:3456");
        assert_eq!(solicited_node(target), v6("ff02::1:ff12:3456"));
        assert_eq!(
            multicast_mac(solicited_node(target)),
            MacAddr(0x33, 0x33, 0xff, 0x12, 0x34, 0x56)
        );
        assert_eq!(multicast_mac(ALL_NODES), MacAddr(0x33, 0x33, 0, 0, 0, 1));
    }

    #[test]
    fn parse_accepts_or_ignores_by_rule() {
        let target = v6("fc00::5");
        let asker = v6("fc00::9");
        let snm = solicited_node(target);
        let good = || raw_ns(asker, snm, target, &slla(ASKER), 255);
        type Expect = Option<(MacAddr, Ipv6Addr)>;
        let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
            (
                "multicast_ns_with_source_option_is_parsed",
                good(),
                Some((ASKER, asker)),
            ),
            (
                "unicast_ns_to_the_target_is_parsed",
                raw_ns(asker, target, target, &slla(ASKER), 255),
                Some((ASKER, asker)),
            ),
            (
                "the_source_option_wins_over_the_ethernet_source",
                raw_ns(asker, snm, target, &slla(MacAddr(2, 7, 7, 7, 7, 7)), 255),
                Some((MacAddr(2, 7, 7, 7, 7, 7), asker)),
            ),
            (
                "without_source_option_the_ethernet_source_is_used",
                raw_ns(asker, snm, target, &[], 255),
                Some((ASKER, asker)),
            ),
            (
                "dad_probe_from_the_unspecified_address_is_parsed",
                raw_ns(Ipv6Addr::UNSPECIFIED, snm, target, &[], 255),
                Some((ASKER, Ipv6Addr::UNSPECIFIED)),
            ),
            (
                "dad_probe_with_source_option_is_invalid",
                raw_ns(Ipv6Addr::UNSPECIFIED, snm, target, &slla(ASKER), 255),
                None,
            ),
            (
                "hop_limit_below_255_is_invalid",
                raw_ns(asker, snm, target, &slla(ASKER), 64),
                None,
            ),
            (
                "zero_length_option_is_invalid",
                raw_ns(asker, snm, target, &[1, 0, 0, 0, 0, 0, 0, 0], 255),
                None,
            ),
            (
                "option_running_past_the_end_is_invalid",
                raw_ns(asker, snm, target, &[1, 2, 0, 0, 0, 0, 0, 0], 255),
                None,
            ),
            (
                "multicast_target_is_invalid",
                raw_ns(
                    asker,
                    solicited_node(v6("ff02::1")),
                    v6("ff02::1"),
                    &[],
                    255,
                ),
                None,
            ),
            (
                "destination_unrelated_to_target_is_ignored",
                raw_ns(asker, v6("ff02::1:ff00:9999"), target, &[], 255),
                None,
            ),
            (
                "bad_checksum_is_invalid",
                {
                    let mut f = good();
                    let last = f.len() - 1;
                    f[last] ^= 0xff;
                    f
                },
                None,
            ),
            (
                "non_zero_code_is_invalid",
                {
                    let mut f = good();
                    f[55] = 1;
                    f
                },
                None,
            ),
            (
                "an_advertisement_is_not_a_solicitation",
                unsolicited_advertisement(target, ASKER),
                None,
            ),
            (
                "our_own_frame_is_ignored",
                {
                    let mut f = good();
                    f[6..12].copy_from_slice(&US.octets());
                    f
                },
                None,
            ),
            (
                "unicast_to_another_mac_is_ignored",
                {
                    let mut f = good();
                    f[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
                    f
                },
                None,
            ),
            ("truncated_frame_is_ignored", good()[..70].to_vec(), None),
            (
                "payload_length_beyond_the_frame_is_ignored",
                {
                    let mut f = good();
                    f[18..20].copy_from_slice(&200u16.to_be_bytes());
                    f
                },
                None,
            ),
        ];
        for (rule, frame, want) in cases {
            let got = parse_solicitation(&frame, US);
            assert_eq!(got.map(|n| (n.sender_mac, n.sender_ip)), want, "{rule}");
            if let Some(ns) = got {
                assert_eq!(ns.target_ip, target, "{rule}");
            }
        }
    }

    /// Checks an NA frame field by field (RFC 4861 4.4) and its checksum
    /// with the independent sum above.
    fn check_na(
        f: &[u8],
        eth_dst: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        flags: u8,
    ) {
        assert_eq!(f.len(), NA_FRAME_LEN);
        assert_eq!(&f[0..6], &eth_dst.octets());
        assert_eq!(&f[6..12], &US.octets());
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14] >> 4, 6, "version");
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 32, "payload length");
        assert_eq!(f[20], 58, "next header ICMPv6");
        assert_eq!(f[21], 255, "hop limit");
        assert_eq!(&f[22..38], &src.octets());
        assert_eq!(&f[38..54], &dst.octets());
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136, "type NA");
        assert_eq!(icmp[1], 0, "code");
        assert_eq!(icmp[4], flags, "flags");
        assert_eq!(&icmp[5..8], &[0, 0, 0], "reserved");
        assert_eq!(&icmp[8..24], &target.octets());
        assert_eq!(&icmp[24..26], &[2, 1], "target link-layer option, 8 bytes");
        assert_eq!(&icmp[26..32], &US.octets());
        assert_eq!(
            ones_complement_sum(src, dst, icmp),
            0xffff,
            "checksum verifies"
        );
        assert_eq!(&icmp[2..4], &checksum_of(src, dst, icmp));
    }

    #[test]
    fn solicited_advertisement_answers_the_solicitor() {
        let target = v6("fc00::5");
        let ns = parse_solicitation(
            &raw_ns(
                v6("fc00::9"),
                solicited_node(target),
                target,
                &slla(ASKER),
                255,
            ),
            US,
        )
        .unwrap();
        let f = solicited_advertisement(&ns, US);
        check_na(&f, ASKER, target, v6("fc00::9"), target, 0b0110_0000);
    }

    #[test]
    fn dad_probe_is_answered_to_all_nodes_without_solicited_flag() {
        let target = v6("fc00::5");
        let ns = parse_solicitation(
            &raw_ns(
                Ipv6Addr::UNSPECIFIED,
                solicited_node(target),
                target,
                &[],
                255,
            ),
            US,
        )
        .unwrap();
        let f = solicited_advertisement(&ns, US);
        check_na(
            &f,
            MacAddr(0x33, 0x33, 0, 0, 0, 1),
            target,
            ALL_NODES,
            target,
            0b0010_0000,
        );
    }

    #[test]
    fn unsolicited_advertisement_goes_to_all_nodes_with_override() {
        for target in [v6("fc00::5"), v6("2001:db8::ffff:1")] {
            let f = unsolicited_advertisement(target, US);
            check_na(
                &f,
                MacAddr(0x33, 0x33, 0, 0, 0, 1),
                target,
                ALL_NODES,
                target,
                0b0010_0000,
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_solicitation(&frame, US);
        }

        #[test]
        fn mutated_solicitations_never_panic(pos in 0usize..86, byte in any::<u8>(), cut in 0usize..=86) {
            let target = v6("fc00::5");
            let mut f = raw_ns(v6("fc00::9"), solicited_node(target), target, &slla(ASKER), 255);
            f[pos] = byte;
            f.truncate(cut);
            let _ = parse_solicitation(&f, US);
        }

        #[test]
        fn random_options_never_panic(options in proptest::collection::vec(any::<u8>(), 0..64)) {
            let target = v6("fc00::5");
            let f = raw_ns(v6("fc00::9"), solicited_node(target), target, &options, 255);
            let _ = parse_solicitation(&f, US);
        }
    }
}
