//! UPDATE messages: building ours (many prefixes with the same attributes
//! packed into one message of at most 4096 bytes) and checking the peer's
//! (RFC 4271 section 6.3; the speaker learns no routes, so a received
//! UPDATE is only checked for well-formedness).
//!
//! The envelope and most attributes are encoded with zettabgp. Three are
//! written here because zettabgp 0.6 gets them wrong: AS_PATH (it writes an
//! AS_SEQUENCE with the AS_SET type code), LARGE_COMMUNITY (it sets the
//! Partial bit, which an originating speaker must not) and AS4_PATH (absent).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_config::model::Community;
use ipnet::IpNet;
use zettabgp::BgpMessage as _;
use zettabgp::message::BgpMessageType;
use zettabgp::prelude::{
    BgpAddr, BgpAddrV4, BgpAddrV6, BgpAddrs, BgpAttrItem, BgpAttrOrigin, BgpAttrUnknown,
    BgpCommunity, BgpCommunityList, BgpLocalpref, BgpMPUpdates, BgpMPWithdraws, BgpNextHop,
    BgpOrigin, BgpSessionParams, BgpTransportMode, BgpUpdateMessage,
};

use crate::bgp::message::{AS_TRANS, EncodeError, HEADER_LEN, MAX_MESSAGE_LEN, Notification, code};
use crate::bgp::prefixes::RouteAttributes;

/// Attribute flag: optional.
const OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
const TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
const PARTIAL: u8 = 0x20;
/// Attribute flag: two-byte length.
const EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes.
mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// AS_PATH segment type AS_SEQUENCE (RFC 4271).
const AS_SEQUENCE: u8 = 2;

/// What a session fixes for all its UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateContext {
    /// iBGP (empty AS_PATH) or eBGP (`[local_asn]`).
    pub ibgp: bool,
    /// Our AS.
    pub local_asn: u32,
    /// Both sides sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// The peer takes IPv4 unicast.
    pub ipv4: bool,
    /// The peer takes IPv6 unicast.
    pub ipv6: bool,
    /// NEXT_HOP for IPv4 prefixes (`None`: IPv4 prefixes are not announced).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 prefixes (`None`: IPv6 prefixes are not announced).
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl UpdateContext {
    /// Whether `prefix` can be announced on this session: its family was
    /// negotiated and we have a next hop of that family.
    pub fn can_announce(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => self.ipv4 && self.next_hop_v4.is_some(),
            IpNet::V6(_) => self.ipv6 && self.next_hop_v6.is_some(),
        }
    }

    /// zettabgp's session parameters. The transport mode stays IPv4 even on
    /// an IPv6 session: the mode selects the family of the plain NLRI and
    /// withdrawn-routes fields, which RFC 4271 defines as IPv4 only.
    fn params(&self) -> BgpSessionParams {
        let mut params = BgpSessionParams::new(
            self.local_asn,
            0,
            BgpTransportMode::IPv4,
            Ipv4Addr::UNSPECIFIED,
            Vec::new(),
        );
        params.has_as32bit = self.four_octet_as;
        params.fuzzy_pathid = false;
        params
    }
}

/// Wire size of one prefix in an NLRI field.
fn prefix_size(prefix: &IpNet) -> usize {
    1 + usize::from(prefix.prefix_len()).div_ceil(8)
}

/// An attribute whose value we encode ourselves.
fn raw_attribute(typecode: u8, flags: u8, value: Vec<u8>) -> BgpAttrItem {
    let flags = if value.len() > 255 {
        flags | EXTENDED_LENGTH
    } else {
        flags
    };
    let mut item = BgpAttrUnknown::new(typecode, flags);
    item.value = value;
    BgpAttrItem::Unknown(item)
}

/// AS_PATH (and AS4_PATH when needed): empty for iBGP, `[local_asn]` for eBGP.
fn as_path(ctx: &UpdateContext) -> Vec<BgpAttrItem> {
    if ctx.ibgp {
        return vec![raw_attribute(attr::AS_PATH, TRANSITIVE, Vec::new())];
    }
    let mut value = vec![AS_SEQUENCE, 1];
    if ctx.four_octet_as {
        value.extend_from_slice(&ctx.local_asn.to_be_bytes());
        return vec![raw_attribute(attr::AS_PATH, TRANSITIVE, value)];
    }
    match u16::try_from(ctx.local_asn) {
        Ok(asn) => {
            value.extend_from_slice(&asn.to_be_bytes());
            vec![raw_attribute(attr::AS_PATH, TRANSITIVE, value)]
        }
        Err(_) => {
            // A 2-octet peer and a 4-octet AS: AS_TRANS, and the real path
            // in AS4_PATH (RFC 6793).
            value.extend_from_slice(&AS_TRANS.to_be_bytes());
            let mut as4 = vec![AS_SEQUENCE, 1];
            as4.extend_from_slice(&ctx.local_asn.to_be_bytes());
            vec![
                raw_attribute(attr::AS_PATH, TRANSITIVE, value),
                raw_attribute(attr::AS4_PATH, OPTIONAL | TRANSITIVE, as4),
            ]
        }
    }
}

/// The path attributes of an announcement, in ascending type order as
/// RFC 4271 recommends. `mp_reach` is the IPv6 MP_REACH_NLRI, if any.
fn path_attributes(
    ctx: &UpdateContext,
    attrs: &RouteAttributes,
    next_hop_v4: Option<Ipv4Addr>,
    mp_reach: Option<BgpMPUpdates>,
) -> Vec<BgpAttrItem> {
    let mut items = vec![BgpAttrItem::Origin(BgpOrigin::new(
        BgpAttrOrigin::Incomplete,
    ))];
    let mut paths = as_path(ctx);
    let as4_path = (paths.len() > 1).then(|| paths.remove(1));
    items.extend(paths);
    if let Some(nh) = next_hop_v4 {
        items.push(BgpAttrItem::NextHop(BgpNextHop::new(nh.into())));
    }
    if let Some(pref) = attrs.local_pref {
        items.push(BgpAttrItem::LocalPref(BgpLocalpref::new(pref)));
    }
    let standard: Vec<BgpCommunity> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            Community::Standard(a, n) => Some(BgpCommunity::from(*a, *n)),
            Community::Large(..) => None,
        })
        .collect();
    if !standard.is_empty() {
        items.push(BgpAttrItem::CommunityList(BgpCommunityList::from_vec(
            standard,
        )));
    }
    if let Some(mp) = mp_reach {
        items.push(BgpAttrItem::MPUpdates(mp));
    }
    items.extend(as4_path);
    let large: Vec<u8> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            Community::Large(a, b, c) => Some([*a, *b, *c]),
            Community::Standard(..) => None,
        })
        .flat_map(|words| words.into_iter().flat_map(u32::to_be_bytes))
        .collect();
    if !large.is_empty() {
        items.push(raw_attribute(
            attr::LARGE_COMMUNITY,
            OPTIONAL | TRANSITIVE,
            large,
        ));
    }
    items
}

/// Encodes one UPDATE with zettabgp and checks it fits.
fn encode(ctx: &UpdateContext, message: &BgpUpdateMessage) -> Result<Vec<u8>, EncodeError> {
    let params = ctx.params();
    // Room beyond the limit: zettabgp writes without bounds checks, and the
    // size is checked afterwards.
    let mut buf = vec![0u8; 4 * MAX_MESSAGE_LEN];
    let body_len = message
        .encode_to(&params, &mut buf[HEADER_LEN..])
        .map_err(|e| EncodeError(e.to_string()))?;
    if HEADER_LEN + body_len > MAX_MESSAGE_LEN {
        return Err(EncodeError(format!(
            "UPDATE of {} bytes exceeds {MAX_MESSAGE_LEN}",
            HEADER_LEN + body_len
        )));
    }
    let total = params
        .prepare_message_buf(&mut buf, BgpMessageType::Update, body_len)
        .map_err(|e| EncodeError(e.to_string()))?;
    buf.truncate(total);
    Ok(buf)
}

/// Splits `prefixes` into runs whose NLRI bytes fit in `room`.
fn chunks(prefixes: &[IpNet], room: usize) -> Vec<&[IpNet]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        let size = prefix_size(p);
        if used + size > room && i > start {
            out.push(&prefixes[start..i]);
            start = i;
            used = 0;
        }
        used += size;
    }
    if start < prefixes.len() {
        out.push(&prefixes[start..]);
    }
    out
}

fn v4_nlri(prefixes: &[IpNet]) -> Vec<BgpAddrV4> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Some(BgpAddrV4::new(n.network(), n.prefix_len())),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn v6_nlri(prefixes: &[IpNet]) -> Vec<BgpAddrV6> {
    prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V6(n) => Some(BgpAddrV6::new(n.network(), n.prefix_len())),
            IpNet::V4(_) => None,
        })
        .collect()
}

/// One announcement UPDATE for `prefixes` (all of one family) with `attrs`.
fn announcement(
    ctx: &UpdateContext,
    attrs: &RouteAttributes,
    prefixes: &[IpNet],
    v6: bool,
) -> Result<Vec<u8>, EncodeError> {
    let mut message = BgpUpdateMessage::new();
    if v6 {
        let nh = ctx
            .next_hop_v6
            .ok_or_else(|| EncodeError("no IPv6 next hop".into()))?;
        let mp = BgpMPUpdates {
            nexthop: BgpAddr::V6(nh),
            addrs: BgpAddrs::IPV6U(v6_nlri(prefixes)),
        };
        message.attrs = path_attributes(ctx, attrs, None, Some(mp));
    } else {
        let nh = ctx
            .next_hop_v4
            .ok_or_else(|| EncodeError("no IPv4 next hop".into()))?;
        message.attrs = path_attributes(ctx, attrs, Some(nh), None);
        message.updates = BgpAddrs::IPV4U(v4_nlri(prefixes));
    }
    encode(ctx, &message)
}

/// UPDATEs announcing `routes`: prefixes sharing family and attributes go
/// together, as many per message as fit in 4096 bytes. Prefixes the session
/// cannot announce (see [`UpdateContext::can_announce`]) are left out.
pub fn encode_announcements<'a>(
    ctx: &UpdateContext,
    routes: impl IntoIterator<Item = (&'a IpNet, &'a RouteAttributes)>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut groups: BTreeMap<(bool, &RouteAttributes), Vec<IpNet>> = BTreeMap::new();
    for (prefix, attrs) in routes {
        if ctx.can_announce(prefix) {
            groups
                .entry((matches!(prefix, IpNet::V6(_)), attrs))
                .or_default()
                .push(*prefix);
        }
    }
    let mut out = Vec::new();
    for ((v6, attrs), prefixes) in groups {
        // The size without NLRI; each prefix then adds exactly its own bytes
        // (MP_REACH_NLRI has a two-byte length, so it never changes form).
        let base = announcement(ctx, attrs, &[], v6)?.len();
        let room = MAX_MESSAGE_LEN.saturating_sub(base);
        for chunk in chunks(&prefixes, room) {
            out.push(announcement(ctx, attrs, chunk, v6)?);
        }
    }
    Ok(out)
}

/// UPDATEs withdrawing `prefixes`: IPv4 in the withdrawn-routes field, IPv6
/// in MP_UNREACH_NLRI, as many per message as fit.
pub fn encode_withdrawals<'a>(
    ctx: &UpdateContext,
    prefixes: impl IntoIterator<Item = &'a IpNet>,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let (v6, v4): (Vec<IpNet>, Vec<IpNet>) = prefixes
        .into_iter()
        .partition(|p| matches!(p, IpNet::V6(_)));
    let mut out = Vec::new();
    // Header, two length fields.
    let v4_room = MAX_MESSAGE_LEN - HEADER_LEN - 4;
    for chunk in chunks(&v4, v4_room) {
        let mut message = BgpUpdateMessage::new();
        message.withdraws = BgpAddrs::IPV4U(v4_nlri(chunk));
        out.push(encode(ctx, &message)?);
    }
    // Also the attribute header (4) and AFI/SAFI (3).
    let v6_room = v4_room - 7;
    for chunk in chunks(&v6, v6_room) {
        let mut message = BgpUpdateMessage::new();
        message.attrs = vec![BgpAttrItem::MPWithdraws(BgpMPWithdraws::new(
            BgpAddrs::IPV6U(v6_nlri(chunk)),
        ))];
        out.push(encode(ctx, &message)?);
    }
    Ok(out)
}

/// What a well-formed received UPDATE carried (counts only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// Prefixes withdrawn (IPv4 field and MP_UNREACH_NLRI).
    pub withdrawn: usize,
    /// Prefixes announced (NLRI field and MP_REACH_NLRI).
    pub announced: usize,
}

/// Counts the prefixes of an NLRI-style field whose lengths are at most
/// `max_len`; `None` when a length is too long or a prefix is cut short.
fn count_prefixes(buf: &[u8], max_len: u8) -> Option<usize> {
    let mut pos = 0;
    let mut count = 0;
    while pos < buf.len() {
        let len = *buf.get(pos)?;
        if len > max_len {
            return None;
        }
        let end = pos + 1 + usize::from(len).div_ceil(8);
        if end > buf.len() {
            return None;
        }
        pos = end;
        count += 1;
    }
    Some(count)
}

/// Whether an AS_PATH (or AS4_PATH) value is a sequence of whole segments.
fn as_path_ok(value: &[u8], as_size: usize) -> bool {
    let mut pos = 0;
    while pos < value.len() {
        let (Some(&kind), Some(&count)) = (value.get(pos), value.get(pos + 1)) else {
            return false;
        };
        if !(1..=4).contains(&kind) || count == 0 {
            return false;
        }
        pos += 2 + usize::from(count) * as_size;
        if pos > value.len() {
            return false;
        }
    }
    true
}

/// The prefixes an MP_REACH_NLRI / MP_UNREACH_NLRI value carries, for the
/// families we know (others are counted as zero and otherwise ignored).
fn mp_prefixes(afi: u16, safi: u8, nlri: &[u8]) -> Option<usize> {
    match (afi, safi) {
        (1, 1) => count_prefixes(nlri, 32),
        (2, 1) => count_prefixes(nlri, 128),
        _ => Some(0),
    }
}

/// Checks a received UPDATE body; the NOTIFICATION for the first error.
pub fn check(body: &[u8], four_octet_as: bool) -> Result<UpdateSummary, Notification> {
    let malformed = || Notification::update(code::MALFORMED_ATTRIBUTE_LIST, Vec::new());
    let u16_at = |pos: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *body.get(pos)?,
            *body.get(pos + 1)?,
        ])))
    };
    let withdrawn_len = u16_at(0).ok_or_else(malformed)?;
    let withdrawn = body.get(2..2 + withdrawn_len).ok_or_else(malformed)?;
    let attrs_len = u16_at(2 + withdrawn_len).ok_or_else(malformed)?;
    let attrs_start = 4 + withdrawn_len;
    let attrs = body
        .get(attrs_start..attrs_start + attrs_len)
        .ok_or_else(malformed)?;
    let nlri = body.get(attrs_start + attrs_len..).unwrap_or_default();
    let invalid_network = || Notification::update(code::INVALID_NETWORK_FIELD, Vec::new());
    let mut summary = UpdateSummary {
        withdrawn: count_prefixes(withdrawn, 32).ok_or_else(invalid_network)?,
        announced: count_prefixes(nlri, 32).ok_or_else(invalid_network)?,
    };

    let mut seen = BTreeSet::new();
    let mut mp_reach_nlri = false;
    let mut pos = 0;
    while pos < attrs.len() {
        let start = pos;
        let (Some(&flags), Some(&kind)) = (attrs.get(pos), attrs.get(pos + 1)) else {
            return Err(malformed());
        };
        let (len, header) = if flags & EXTENDED_LENGTH != 0 {
            let hi = attrs.get(pos + 2).ok_or_else(malformed)?;
            let lo = attrs.get(pos + 3).ok_or_else(malformed)?;
            (usize::from(u16::from_be_bytes([*hi, *lo])), 4)
        } else {
            (usize::from(*attrs.get(pos + 2).ok_or_else(malformed)?), 3)
        };
        let value = attrs
            .get(pos + header..pos + header + len)
            .ok_or_else(malformed)?;
        pos += header + len;
        let whole = attrs[start..pos].to_vec();
        if !seen.insert(kind) {
            return Err(malformed());
        }
        let flags_error = || Notification::update(code::ATTRIBUTE_FLAGS_ERROR, whole.clone());
        let length_error = || Notification::update(code::ATTRIBUTE_LENGTH_ERROR, whole.clone());
        let optional_error = || Notification::update(code::OPTIONAL_ATTRIBUTE_ERROR, whole.clone());
        // (optional, transitive) as RFC 4271 and the attribute RFCs define them.
        let expected = match kind {
            attr::ORIGIN
            | attr::AS_PATH
            | attr::NEXT_HOP
            | attr::LOCAL_PREF
            | attr::ATOMIC_AGGREGATE => Some((false, true)),
            attr::MED | attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => Some((true, false)),
            attr::AGGREGATOR
            | attr::COMMUNITIES
            | attr::EXTENDED_COMMUNITIES
            | attr::AS4_PATH
            | attr::LARGE_COMMUNITY => Some((true, true)),
            _ => None,
        };
        let optional = flags & OPTIONAL != 0;
        let transitive = flags & TRANSITIVE != 0;
        match expected {
            None if !optional => {
                return Err(Notification::update(
                    code::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    whole,
                ));
            }
            None => continue,
            Some((want_optional, want_transitive)) => {
                let partial_ok = want_optional && want_transitive || flags & PARTIAL == 0;
                if optional != want_optional || transitive != want_transitive || !partial_ok {
                    return Err(flags_error());
                }
            }
        }
        let as_size = if four_octet_as { 4 } else { 2 };
        match kind {
            attr::ORIGIN => {
                let [origin] = value else {
                    return Err(length_error());
                };
                if *origin > 2 {
                    return Err(Notification::update(code::INVALID_ORIGIN, whole));
                }
            }
            attr::AS_PATH if !as_path_ok(value, as_size) => {
                return Err(Notification::update(code::MALFORMED_AS_PATH, Vec::new()));
            }
            attr::NEXT_HOP | attr::MED | attr::LOCAL_PREF if value.len() != 4 => {
                return Err(length_error());
            }
            attr::ATOMIC_AGGREGATE if !value.is_empty() => return Err(length_error()),
            attr::AGGREGATOR if value.len() != 2 + as_size => return Err(length_error()),
            attr::COMMUNITIES if value.len() % 4 != 0 => return Err(length_error()),
            attr::EXTENDED_COMMUNITIES if value.len() % 8 != 0 => return Err(length_error()),
            attr::LARGE_COMMUNITY if value.len() % 12 != 0 => return Err(length_error()),
            attr::MP_REACH_NLRI => {
                let (Some(&a), Some(&b), Some(&safi), Some(&nh_len)) =
                    (value.first(), value.get(1), value.get(2), value.get(3))
                else {
                    return Err(optional_error());
                };
                let nlri_start = 4 + usize::from(nh_len) + 1;
                let nlri = value.get(nlri_start..).ok_or_else(optional_error)?;
                let n = mp_prefixes(u16::from_be_bytes([a, b]), safi, nlri)
                    .ok_or_else(optional_error)?;
                mp_reach_nlri = n > 0;
                summary.announced += n;
            }
            attr::MP_UNREACH_NLRI => {
                let (Some(&a), Some(&b), Some(&safi)) = (value.first(), value.get(1), value.get(2))
                else {
                    return Err(optional_error());
                };
                summary.withdrawn += mp_prefixes(
                    u16::from_be_bytes([a, b]),
                    safi,
                    value.get(3..).unwrap_or_default(),
                )
                .ok_or_else(optional_error)?;
            }
            _ => {}
        }
    }
    let mut required: Vec<u8> = Vec::new();
    if !nlri.is_empty() {
        required.extend([attr::ORIGIN, attr::AS_PATH, attr::NEXT_HOP]);
    } else if mp_reach_nlri {
        required.extend([attr::ORIGIN, attr::AS_PATH]);
    }
    if let Some(missing) = required.into_iter().find(|k| !seen.contains(k)) {
        return Err(Notification::update(
            code::MISSING_WELL_KNOWN_ATTRIBUTE,
            vec![missing],
        ));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::message::{Framer, MessageType, decode};

    fn ctx(ibgp: bool) -> UpdateContext {
        UpdateContext {
            ibgp,
            local_asn: 64512,
            four_octet_as: true,
            ipv4: true,
            ipv6: true,
            next_hop_v4: Some(Ipv4Addr::new(192, 168, 1, 10)),
            next_hop_v6: Some("fd00::10".parse().unwrap()),
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn attrs(local_pref: Option<u32>, communities: &[Community]) -> RouteAttributes {
        RouteAttributes {
            local_pref,
            communities: communities.iter().copied().collect(),
        }
    }

    /// Decodes our UPDATE with zettabgp, as a second opinion on our bytes.
    fn zettabgp_decode(bytes: &[u8]) -> BgpUpdateMessage {
        let mut params = ctx(true).params();
        params.has_as32bit = true;
        let mut m = BgpUpdateMessage::new();
        m.decode_from(&params, &bytes[HEADER_LEN..]).unwrap();
        m
    }

    fn body(bytes: &[u8]) -> Vec<u8> {
        let mut framer = Framer::default();
        framer.push(bytes);
        let frame = framer.next_frame().unwrap().unwrap();
        assert_eq!(frame.kind, MessageType::Update);
        frame.body
    }

    /// The raw value of attribute `kind` in an UPDATE, with its flags.
    fn raw_attr(bytes: &[u8], kind: u8) -> Option<(u8, Vec<u8>)> {
        let b = body(bytes);
        let wl = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let al = usize::from(u16::from_be_bytes([b[2 + wl], b[3 + wl]]));
        let attrs = &b[4 + wl..4 + wl + al];
        let mut pos = 0;
        while pos < attrs.len() {
            let flags = attrs[pos];
            let (len, h) = if flags & EXTENDED_LENGTH != 0 {
                (
                    usize::from(u16::from_be_bytes([attrs[pos + 2], attrs[pos + 3]])),
                    4,
                )
            } else {
                (usize::from(attrs[pos + 2]), 3)
            };
            if attrs[pos + 1] == kind {
                return Some((flags, attrs[pos + h..pos + h + len].to_vec()));
            }
            pos += h + len;
        }
        None
    }

    #[test]
    fn an_ebgp_ipv4_announcement_carries_every_attribute() {
        let a = attrs(
            None,
            &[Community::Standard(64512, 7), Community::Large(1, 2, 3)],
        );
        let routes = [(net("10.0.0.5/32"), a.clone())];
        let msgs = encode_announcements(&ctx(false), routes.iter().map(|(n, a)| (n, a))).unwrap();
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!(
            check(&body(m), true),
            Ok(UpdateSummary {
                withdrawn: 0,
                announced: 1
            })
        );
        assert_eq!(
            raw_attr(m, attr::ORIGIN),
            Some((TRANSITIVE, vec![2])),
            "INCOMPLETE"
        );
        assert_eq!(
            raw_attr(m, attr::AS_PATH),
            Some((TRANSITIVE, vec![AS_SEQUENCE, 1, 0, 0, 0xfc, 0x00])),
            "AS_SEQUENCE [64512]"
        );
        assert_eq!(
            raw_attr(m, attr::NEXT_HOP).map(|a| a.1),
            Some(vec![192, 168, 1, 10])
        );
        assert_eq!(
            raw_attr(m, attr::LOCAL_PREF),
            None,
            "no LOCAL_PREF unless configured"
        );
        assert_eq!(
            raw_attr(m, attr::LARGE_COMMUNITY),
            Some((
                OPTIONAL | TRANSITIVE,
                vec![0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
            )),
            "large community without the Partial bit"
        );
        let z = zettabgp_decode(m);
        assert_eq!(
            z.get_attr_aspath().map(|p| p.to_string()),
            Some("64512".into())
        );
        let comms = z.get_attr_communitylist().unwrap();
        assert!(comms.value.contains(&BgpCommunity::from(64512, 7)));
        match &z.updates {
            BgpAddrs::IPV4U(v) => {
                assert_eq!(v, &vec![BgpAddrV4::new(Ipv4Addr::new(10, 0, 0, 5), 32)])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ibgp_ipv6_announcement_uses_mp_reach_with_local_pref_and_empty_path() {
        let a = attrs(Some(150), &[]);
        let routes = [(net("fc00::5/128"), a)];
        let msgs = encode_announcements(&ctx(true), routes.iter().map(|(n, a)| (n, a))).unwrap();
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!(
            check(&body(m), true),
            Ok(UpdateSummary {
                withdrawn: 0,
                announced: 1
            })
        );
        assert_eq!(raw_attr(m, attr::AS_PATH), Some((TRANSITIVE, vec![])));
        assert_eq!(
            raw_attr(m, attr::NEXT_HOP),
            None,
            "IPv6 has its next hop in MP_REACH"
        );
        assert_eq!(
            raw_attr(m, attr::LOCAL_PREF).map(|a| a.1),
            Some(150u32.to_be_bytes().to_vec())
        );
        let z = zettabgp_decode(m);
        let mp = z.get_mpupdates().unwrap();
        assert_eq!(mp.nexthop, BgpAddr::V6("fd00::10".parse().unwrap()));
        assert_eq!(
            mp.addrs,
            BgpAddrs::IPV6U(vec![BgpAddrV6::new("fc00::5".parse().unwrap(), 128)])
        );
    }

    #[test]
    fn a_two_octet_peer_gets_as_trans_and_as4_path() {
        let mut c = ctx(false);
        c.four_octet_as = false;
        c.local_asn = 4_200_000_001;
        let a = RouteAttributes::default();
        let routes = [(net("10.0.0.5/32"), a)];
        let msgs = encode_announcements(&c, routes.iter().map(|(n, a)| (n, a))).unwrap();
        let m = &msgs[0];
        assert_eq!(check(&body(m), false).map(|s| s.announced), Ok(1));
        assert_eq!(
            raw_attr(m, attr::AS_PATH).map(|a| a.1),
            Some(vec![2, 1, 0x5b, 0xa0])
        );
        assert_eq!(
            raw_attr(m, attr::AS4_PATH),
            Some((
                OPTIONAL | TRANSITIVE,
                [vec![2, 1], 4_200_000_001u32.to_be_bytes().to_vec()].concat()
            ))
        );
    }

    #[test]
    fn prefixes_with_equal_attributes_share_messages_within_4096_bytes() {
        let plain = RouteAttributes::default();
        let tagged = attrs(None, &[Community::Standard(1, 1)]);
        let mut routes: Vec<(IpNet, RouteAttributes)> = Vec::new();
        for i in 0..2000u32 {
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
            routes.push((IpNet::from(std::net::IpAddr::V4(ip)), plain.clone()));
        }
        for i in 0..700u128 {
            let ip = std::net::Ipv6Addr::from(0xfc00_u128 << 112 | i);
            routes.push((IpNet::from(std::net::IpAddr::V6(ip)), plain.clone()));
        }
        routes.push((net("10.9.0.0/24"), tagged));
        let msgs = encode_announcements(&ctx(false), routes.iter().map(|(n, a)| (n, a))).unwrap();
        let mut total = 0;
        for m in &msgs {
            assert!(m.len() <= MAX_MESSAGE_LEN, "{} bytes", m.len());
            total += check(&body(m), true).unwrap().announced;
        }
        assert_eq!(total, routes.len(), "every prefix announced once");
        // 2000 v4 /32 at 5 bytes, about 810 per message: 3; 700 v6 /128 at
        // 17 bytes, about 238 per message: 3; the tagged one: 1.
        assert_eq!(msgs.len(), 7, "packed, not one message per prefix");
        assert!(
            msgs.iter().filter(|m| m.len() > 4000).count() >= 3,
            "full messages"
        );
    }

    #[test]
    fn withdrawals_use_the_withdrawn_field_and_mp_unreach() {
        let prefixes = [net("10.0.0.5/32"), net("fc00::5/128"), net("10.0.0.0/24")];
        let msgs = encode_withdrawals(&ctx(false), prefixes.iter()).unwrap();
        assert_eq!(msgs.len(), 2, "one for IPv4, one for IPv6");
        let s4 = check(&body(&msgs[0]), true).unwrap();
        let s6 = check(&body(&msgs[1]), true).unwrap();
        assert_eq!((s4.withdrawn, s6.withdrawn), (2, 1));
        assert!(raw_attr(&msgs[1], attr::MP_UNREACH_NLRI).is_some());
        let z = zettabgp_decode(&msgs[0]);
        assert_eq!(z.withdraws.len(), 2);
    }

    #[test]
    fn prefixes_without_next_hop_or_family_are_left_out() {
        let mut c = ctx(false);
        c.next_hop_v6 = None;
        let a = RouteAttributes::default();
        let routes = [(net("10.0.0.5/32"), a.clone()), (net("fc00::5/128"), a)];
        let msgs = encode_announcements(&c, routes.iter().map(|(n, a)| (n, a))).unwrap();
        assert_eq!(msgs.len(), 1, "the IPv6 prefix has no next hop");
        c.next_hop_v6 = Some("fd00::1".parse().unwrap());
        c.ipv4 = false;
        let msgs = encode_announcements(&c, routes.iter().map(|(n, a)| (n, a))).unwrap();
        assert_eq!(msgs.len(), 1, "IPv4 not negotiated");
        assert!(raw_attr(&msgs[0], attr::MP_REACH_NLRI).is_some());
    }

    /// An UPDATE body from withdrawn bytes, raw attributes and NLRI.
    fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(withdrawn);
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
    const EMPTY_PATH: [u8; 3] = [0x40, 2, 0];
    const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 10, 0, 0, 1];

    fn good_attrs() -> Vec<u8> {
        [&ORIGIN_IGP[..], &EMPTY_PATH, &NEXT_HOP].concat()
    }

    #[test]
    fn malformed_updates_get_their_notification() {
        let nlri = [24, 10, 1, 2];
        type Case = (&'static str, Vec<u8>, Result<UpdateSummary, (u8, u8)>);
        let cases: Vec<Case> = vec![
            (
                "a_well_formed_update_passes",
                update_body(&[8, 10], &good_attrs(), &nlri),
                Ok(UpdateSummary {
                    withdrawn: 1,
                    announced: 1,
                }),
            ),
            (
                "withdrawn_length_past_the_end_is_malformed_attribute_list",
                {
                    let mut b = update_body(&[], &[], &[]);
                    b[1] = 200;
                    b
                },
                Err((3, 1)),
            ),
            (
                "attribute_length_past_the_end_is_malformed_attribute_list",
                {
                    let mut b = update_body(&[], &good_attrs(), &[]);
                    b[3] = 99;
                    b
                },
                Err((3, 1)),
            ),
            (
                "an_attribute_overrunning_the_list_is_malformed_attribute_list",
                update_body(&[], &[0x40, 1, 9, 0], &[]),
                Err((3, 1)),
            ),
            (
                "a_repeated_attribute_is_malformed_attribute_list",
                update_body(&[], &[&ORIGIN_IGP[..], &ORIGIN_IGP].concat(), &[]),
                Err((3, 1)),
            ),
            (
                "a_prefix_longer_than_32_is_invalid_network_field",
                update_body(&[], &good_attrs(), &[33, 1, 2, 3, 4, 5]),
                Err((3, 10)),
            ),
            (
                "a_cut_prefix_is_invalid_network_field",
                update_body(&[24, 10], &[], &[]),
                Err((3, 10)),
            ),
            (
                "missing_next_hop_with_nlri_is_missing_well_known",
                update_body(&[], &[&ORIGIN_IGP[..], &EMPTY_PATH].concat(), &nlri),
                Err((3, 3)),
            ),
            (
                "missing_origin_with_mp_reach_is_missing_well_known",
                update_body(
                    &[],
                    &[
                        &EMPTY_PATH[..],
                        &[0x90, 14, 0, 23, 0, 2, 1, 16],
                        &[0xfd; 16],
                        &[0, 8, 0xfc],
                    ]
                    .concat(),
                    &[],
                ),
                Err((3, 3)),
            ),
            (
                "a_well_known_attribute_flagged_optional_is_attribute_flags_error",
                update_body(&[], &[0xc0, 1, 1, 0], &[]),
                Err((3, 4)),
            ),
            (
                "communities_flagged_non_transitive_is_attribute_flags_error",
                update_body(&[], &[0x80, 8, 4, 0, 1, 0, 1], &[]),
                Err((3, 4)),
            ),
            (
                "an_unknown_well_known_attribute_is_unrecognized",
                update_body(&[], &[0x40, 99, 0], &[]),
                Err((3, 2)),
            ),
            (
                "an_unknown_optional_attribute_is_ignored",
                update_body(&[], &[0xc0, 99, 1, 7], &[]),
                Ok(UpdateSummary::default()),
            ),
            (
                "an_origin_of_two_bytes_is_attribute_length_error",
                update_body(&[], &[0x40, 1, 2, 0, 0], &[]),
                Err((3, 5)),
            ),
            (
                "an_origin_of_3_is_invalid_origin",
                update_body(&[], &[0x40, 1, 1, 3], &[]),
                Err((3, 6)),
            ),
            (
                "a_next_hop_of_3_bytes_is_attribute_length_error",
                update_body(&[], &[0x40, 3, 3, 1, 2, 3], &[]),
                Err((3, 5)),
            ),
            (
                "an_as_path_segment_overrun_is_malformed_as_path",
                update_body(&[], &[0x40, 2, 6, 2, 2, 0, 0, 0, 1], &[]),
                Err((3, 11)),
            ),
            (
                "an_as_path_segment_of_bad_type_is_malformed_as_path",
                update_body(&[], &[0x40, 2, 6, 9, 1, 0, 0, 0, 1], &[]),
                Err((3, 11)),
            ),
            (
                "a_bad_mp_reach_is_optional_attribute_error",
                update_body(&[], &[0x80, 14, 2, 0, 2], &[]),
                Err((3, 9)),
            ),
            (
                "an_mp_unreach_with_a_cut_prefix_is_optional_attribute_error",
                update_body(&[], &[0x80, 15, 5, 0, 2, 1, 64, 0xfc], &[]),
                Err((3, 9)),
            ),
            (
                "end_of_rib_is_a_valid_empty_update",
                update_body(&[], &[], &[]),
                Ok(UpdateSummary::default()),
            ),
        ];
        for (rule, body, want) in cases {
            let got = check(&body, true).map_err(|n| (n.code, n.subcode));
            assert_eq!(got, want, "{rule}");
            let frame = crate::bgp::message::Frame {
                kind: MessageType::Update,
                body,
            };
            assert_eq!(
                decode(&frame, true)
                    .map(|_| ())
                    .map_err(|n| (n.code, n.subcode)),
                want.map(|_| ()),
                "{rule} through decode"
            );
        }
    }
}
