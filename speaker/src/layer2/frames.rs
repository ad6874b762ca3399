//! Test fixtures: ARP and NDP questions written byte by byte from the RFCs,
//! independently of the codecs under test, and an independent ICMPv6
//! checksum.

use std::net::Ipv6Addr;

use pnet_datalink::MacAddr;

/// An Ethernet/IPv4 ARP frame (RFC 826) with a zero target hardware address.
pub fn arp_request(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    sender_ip: [u8; 4],
    target_ip: [u8; 4],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&eth_src);
    f.extend_from_slice(&[0x08, 0x06]); // ethertype ARP
    f.extend_from_slice(&[0x00, 0x01]); // htype Ethernet
    f.extend_from_slice(&[0x08, 0x00]); // ptype IPv4
    f.extend_from_slice(&[6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&eth_src); // sha
    f.extend_from_slice(&sender_ip);
    f.extend_from_slice(&[0; 6]); // tha
    f.extend_from_slice(&target_ip);
    f
}

/// RFC 1071 one's-complement sum of the RFC 8200 8.1 pseudo-header and an
/// ICMPv6 message: a message with a correct checksum sums to 0xffff.
pub fn ones_complement_sum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut data = Vec::new();
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(icmp);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum field an ICMPv6 message must carry.
pub fn checksum_of(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> [u8; 2] {
    let mut zeroed = icmp.to_vec();
    zeroed[2] = 0;
    zeroed[3] = 0;
    (!ones_complement_sum(src, dst, &zeroed)).to_be_bytes()
}

/// A Neighbor Solicitation frame (RFC 4861 4.3) sent by `eth_src`, to the
/// `33:33` MAC of `dst`.
pub fn neighbor_solicitation(
    eth_src: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
    options: &[u8],
    hop_limit: u8,
) -> Vec<u8> {
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(options);
    let sum = checksum_of(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum);
    let d = dst.octets();
    let mut f = vec![0x33, 0x33, d[12], d[13], d[14], d[15]];
    f.extend_from_slice(&eth_src.octets());
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, hop_limit]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

/// A source link-layer address option.
pub fn source_ll_option(mac: MacAddr) -> Vec<u8> {
    let mut o = vec![1, 1];
    o.extend_from_slice(&mac.octets());
    o
}
