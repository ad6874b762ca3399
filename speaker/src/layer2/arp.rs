//! ARP (RFC 826) over Ethernet, pure: parse requests, build replies and
//! gratuitous announcements.
//!
//! Parsing never panics and returns `None` for anything that is not a
//! well-formed Ethernet/IPv4 ARP request addressed to us (broadcast or our
//! MAC), including our own frames, which a packet socket also delivers.

use std::net::Ipv4Addr;

use pnet_datalink::MacAddr;
use pnet_packet::Packet;
use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};

/// Size of an Ethernet header.
const ETHERNET_HEADER: usize = 14;
/// Size of an Ethernet/IPv4 ARP payload.
const ARP_PAYLOAD: usize = 28;
/// Size of the frames built here (the NIC pads them to the 60-byte minimum).
pub const ARP_FRAME_LEN: usize = ETHERNET_HEADER + ARP_PAYLOAD;

/// An ARP request seen on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRequest {
    /// Who asks (sender hardware address).
    pub sender_mac: MacAddr,
    /// The asker's address (`0.0.0.0` for an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// The address asked about.
    pub target_ip: Ipv4Addr,
}

/// The two forms of gratuitous ARP; both are sent because hosts differ in
/// which one updates their cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GratuitousForm {
    /// A broadcast request for our own address (target hardware address zero).
    Request,
    /// A broadcast reply for our own address (target hardware address = ours, RFC 2002 4.6).
    Reply,
}

/// Parses an Ethernet frame received on an interface whose MAC is `our_mac`
/// into an ARP request worth answering, or `None`.
///
/// Ignored: non-ARP frames, malformed or truncated ARP, non-Ethernet/IPv4
/// ARP, replies, frames sent by `our_mac`, frames unicast to another host,
/// and gratuitous announcements by others (sender IP = target IP).
pub fn parse_request(frame: &[u8], our_mac: MacAddr) -> Option<ArpRequest> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let dst = eth.get_destination();
    if eth.get_source() == our_mac || !(dst.is_broadcast() || dst == our_mac) {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    let well_formed = arp.get_hardware_type() == ArpHardwareTypes::Ethernet
        && arp.get_protocol_type() == EtherTypes::Ipv4
        && arp.get_hw_addr_len() == 6
        && arp.get_proto_addr_len() == 4
        && arp.get_operation() == ArpOperations::Request;
    if !well_formed || arp.get_sender_hw_addr() == our_mac {
        return None;
    }
    let request = ArpRequest {
        sender_mac: arp.get_sender_hw_addr(),
        sender_ip: arp.get_sender_proto_addr(),
        target_ip: arp.get_target_proto_addr(),
    };
    (request.sender_ip != request.target_ip).then_some(request)
}

/// Writes one Ethernet + ARP frame.
#[allow(clippy::too_many_arguments)]
fn build(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    operation: ArpOperation,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut buf = vec![0u8; ARP_FRAME_LEN];
    // The buffer has exactly the sizes these views require, so both succeed;
    // an empty frame would be dropped by the caller's send, never sent half-built.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(eth_dst);
        eth.set_source(eth_src);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut buf[ETHERNET_HEADER..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(operation);
        arp.set_sender_hw_addr(sender_mac);
        arp.set_sender_proto_addr(sender_ip);
        arp.set_target_hw_addr(target_mac);
        arp.set_target_proto_addr(target_ip);
    }
    buf
}

/// The reply to `request` saying that `request.target_ip` is at `our_mac`,
/// unicast to the asker.
pub fn reply(request: &ArpRequest, our_mac: MacAddr) -> Vec<u8> {
    build(
        request.sender_mac,
        our_mac,
        ArpOperations::Reply,
        our_mac,
        request.target_ip,
        request.sender_mac,
        request.sender_ip,
    )
}

/// A broadcast gratuitous ARP announcing that `ip` is at `our_mac`.
pub fn gratuitous(ip: Ipv4Addr, our_mac: MacAddr, form: GratuitousForm) -> Vec<u8> {
    let (operation, target_mac) = match form {
        GratuitousForm::Request => (ArpOperations::Request, MacAddr::zero()),
        GratuitousForm::Reply => (ArpOperations::Reply, our_mac),
    };
    build(
        MacAddr::broadcast(),
        our_mac,
        operation,
        our_mac,
        ip,
        target_mac,
        ip,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const US: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);
    const ASKER: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x02);

    fn raw_request(
        eth_dst: [u8; 6],
        eth_src: [u8; 6],
        op: u16,
        sender_ip: [u8; 4],
        target_ip: [u8; 4],
    ) -> Vec<u8> {
        crate::layer2::frames::arp_request(eth_dst, eth_src, op, sender_ip, target_ip)
    }

    fn octets(m: MacAddr) -> [u8; 6] {
        [m.0, m.1, m.2, m.3, m.4, m.5]
    }

    #[test]
    fn parse_accepts_or_ignores_by_rule() {
        let bcast = [0xff; 6];
        let asker = octets(ASKER);
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            (
                "broadcast_request_is_parsed",
                raw_request(bcast, asker, 1, [10, 0, 0, 9], [10, 0, 0, 5]),
                true,
            ),
            (
                "unicast_request_to_us_is_parsed",
                raw_request(octets(US), asker, 1, [10, 0, 0, 9], [10, 0, 0, 5]),
                true,
            ),
            (
                "probe_from_0_0_0_0_is_parsed",
                raw_request(bcast, asker, 1, [0, 0, 0, 0], [10, 0, 0, 5]),
                true,
            ),
            (
                "unicast_to_another_host_is_ignored",
                raw_request([2, 9, 9, 9, 9, 9], asker, 1, [10, 0, 0, 9], [10, 0, 0, 5]),
                false,
            ),
            (
                "our_own_frame_is_ignored",
                raw_request(bcast, octets(US), 1, [10, 0, 0, 9], [10, 0, 0, 5]),
                false,
            ),
            (
                "a_reply_is_ignored",
                raw_request(bcast, asker, 2, [10, 0, 0, 9], [10, 0, 0, 5]),
                false,
            ),
            (
                "gratuitous_from_others_is_ignored",
                raw_request(bcast, asker, 1, [10, 0, 0, 5], [10, 0, 0, 5]),
                false,
            ),
            (
                "truncated_arp_is_ignored",
                raw_request(bcast, asker, 1, [10, 0, 0, 9], [10, 0, 0, 5])[..30].to_vec(),
                false,
            ),
            ("empty_frame_is_ignored", vec![], false),
            (
                "non_arp_ethertype_is_ignored",
                {
                    let mut f = raw_request(bcast, asker, 1, [10, 0, 0, 9], [10, 0, 0, 5]);
                    f[12..14].copy_from_slice(&[0x08, 0x00]);
                    f
                },
                false,
            ),
            (
                "wrong_hardware_length_is_ignored",
                {
                    let mut f = raw_request(bcast, asker, 1, [10, 0, 0, 9], [10, 0, 0, 5]);
                    f[18] = 8;
                    f
                },
                false,
            ),
            (
                "non_ipv4_protocol_is_ignored",
                {
                    let mut f = raw_request(bcast, asker, 1, [10, 0, 0, 9], [10, 0, 0, 5]);
                    f[16..18].copy_from_slice(&[0x86, 0xdd]);
                    f
                },
                false,
            ),
        ];
        for (rule, frame, parsed) in cases {
            let got = parse_request(&frame, US);
            assert_eq!(got.is_some(), parsed, "{rule}: {got:?}");
            if let Some(req) = got {
                assert_eq!(req.sender_mac, ASKER, "{rule}");
                assert_eq!(req.target_ip, Ipv4Addr::new(10, 0, 0, 5), "{rule}");
            }
        }
    }

    #[test]
    fn reply_bytes_follow_rfc_826() {
        let req = ArpRequest {
            sender_mac: ASKER,
            sender_ip: Ipv4Addr::new(10, 0, 0, 9),
            target_ip: Ipv4Addr::new(10, 0, 0, 5),
        };
        let f = reply(&req, US);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &octets(ASKER), "unicast to the asker");
        assert_eq!(&f[6..12], &octets(US));
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..20], &[0, 1, 0x08, 0, 6, 4]);
        assert_eq!(&f[20..22], &[0, 2], "operation reply");
        assert_eq!(&f[22..28], &octets(US), "sender hardware = our MAC");
        assert_eq!(
            &f[28..32],
            &[10, 0, 0, 5],
            "sender protocol = the owned address"
        );
        assert_eq!(&f[32..38], &octets(ASKER));
        assert_eq!(&f[38..42], &[10, 0, 0, 9]);
    }

    #[test]
    fn gratuitous_forms_are_broadcast_announcements_of_our_address() {
        for (form, op, tha) in [
            (GratuitousForm::Request, [0u8, 1], [0u8; 6]),
            (GratuitousForm::Reply, [0, 2], octets(US)),
        ] {
            let f = gratuitous(Ipv4Addr::new(10, 0, 0, 5), US, form);
            assert_eq!(&f[0..6], &[0xff; 6], "{form:?}: broadcast");
            assert_eq!(&f[20..22], &op, "{form:?}: operation");
            assert_eq!(&f[22..28], &octets(US), "{form:?}: sender mac");
            assert_eq!(&f[28..32], &[10, 0, 0, 5], "{form:?}: sender ip");
            assert_eq!(&f[32..38], &tha, "{form:?}: target mac");
            assert_eq!(
                &f[38..42],
                &[10, 0, 0, 5],
                "{form:?}: target ip = sender ip"
            );
        }
    }

    #[test]
    fn a_request_encoded_as_a_frame_decodes_back() {
        let asked = raw_request(
            [0xff; 6],
            octets(ASKER),
            1,
            [192, 168, 1, 2],
            [192, 168, 1, 200],
        );
        let req = parse_request(&asked, US).unwrap();
        assert_eq!(
            req,
            ArpRequest {
                sender_mac: ASKER,
                sender_ip: Ipv4Addr::new(192, 168, 1, 2),
                target_ip: Ipv4Addr::new(192, 168, 1, 200),
            }
        );
        // What we send is itself valid ARP: seen from the asker, our gratuitous
        // request parses, and our reply is a reply (never parsed as a request).
        let g = gratuitous(Ipv4Addr::new(192, 168, 1, 200), US, GratuitousForm::Request);
        assert!(
            parse_request(&g, ASKER).is_none(),
            "gratuitous announcements are not questions"
        );
        assert!(parse_request(&reply(&req, US), ASKER).is_none());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_request(&frame, US);
        }

        #[test]
        fn mutated_requests_never_panic(pos in 0usize..42, byte in any::<u8>(), cut in 0usize..=42) {
            let mut f = raw_request([0xff; 6], octets(ASKER), 1, [10, 0, 0, 9], [10, 0, 0, 5]);
            f[pos] = byte;
            f.truncate(cut);
            let _ = parse_request(&f, US);
        }
    }
}
