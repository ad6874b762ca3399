//! BGP messages on the wire (RFC 4271): framing, OPEN, KEEPALIVE,
//! NOTIFICATION, ROUTE-REFRESH; UPDATE lives in [`crate::bgp::update`].
//!
//! Outgoing OPENs are encoded with zettabgp. Incoming bytes are checked and
//! parsed here, by our own code: zettabgp's decoders index buffers without
//! bounds checks (a malformed message from a peer would panic the task) and
//! its OPEN decoder rejects a valid hostname capability, which FRR sends by
//! default. Every malformed input maps to the [`Notification`] RFC 4271
//! section 6 prescribes.

use std::fmt;
use std::net::Ipv4Addr;

use zettabgp::BgpMessage as _;
use zettabgp::message::BgpMessageType;
use zettabgp::prelude::{BgpCapGR, BgpCapability, BgpSessionParams, BgpTransportMode};

use crate::bgp::update::{self, UpdateSummary};

/// Length of the fixed header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// The largest message RFC 4271 allows.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// AS_TRANS (RFC 6793): what a 4-octet AS writes in 2-octet fields.
pub const AS_TRANS: u16 = 23456;
/// The BGP version we speak.
pub const BGP_VERSION: u8 = 4;

/// NOTIFICATION error codes and subcodes (RFC 4271, 4486, 6608).
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;

    /// Message Header Error: the marker is not all ones.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Message Header Error: a length out of range for the type.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Message Header Error: an unknown type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;

    /// OPEN Message Error: unspecific (a malformed optional parameter).
    pub const OPEN_UNSPECIFIC: u8 = 0;
    /// OPEN Message Error: a version other than 4.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// OPEN Message Error: the AS is not the configured peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// OPEN Message Error: an unacceptable BGP identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// OPEN Message Error: an optional parameter other than capabilities.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// OPEN Message Error: a hold time of 1 or 2 seconds.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;

    /// UPDATE Message Error: lengths that do not add up, a repeated attribute.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// UPDATE Message Error: an unknown attribute flagged well-known.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// UPDATE Message Error: ORIGIN, AS_PATH or NEXT_HOP missing.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// UPDATE Message Error: flags that contradict the attribute type.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// UPDATE Message Error: a length wrong for the attribute type.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// UPDATE Message Error: an ORIGIN other than 0, 1, 2.
    pub const INVALID_ORIGIN: u8 = 6;
    /// UPDATE Message Error: a malformed optional attribute (MP_REACH_NLRI...).
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// UPDATE Message Error: a bad prefix in the withdrawn routes or NLRI.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// UPDATE Message Error: a malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;

    /// FSM Error: unexpected message in OpenSent (RFC 6608).
    pub const FSM_UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// FSM Error: unexpected message in OpenConfirm.
    pub const FSM_UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// FSM Error: unexpected message in Established.
    pub const FSM_UNEXPECTED_IN_ESTABLISHED: u8 = 3;

    /// Cease: the speaker shuts down (RFC 4486).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Cease: the peer was removed from the configuration.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Cease: the peer's configuration changed; the session restarts.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Cease: BFD Down (RFC 9384).
    pub const BFD_DOWN: u8 = 10;
}

/// The BGP message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// OPEN (1).
    Open,
    /// UPDATE (2).
    Update,
    /// NOTIFICATION (3).
    Notification,
    /// KEEPALIVE (4).
    Keepalive,
    /// ROUTE-REFRESH (5, RFC 2918).
    RouteRefresh,
}

impl MessageType {
    /// The type of a type code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// The type code.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// The allowed total lengths (header included) of this type.
    fn length_range(self) -> (usize, usize) {
        match self {
            MessageType::Open => (29, MAX_MESSAGE_LEN),
            MessageType::Update => (23, MAX_MESSAGE_LEN),
            MessageType::Notification => (21, MAX_MESSAGE_LEN),
            MessageType::Keepalive => (HEADER_LEN, HEADER_LEN),
            MessageType::RouteRefresh => (23, 23),
        }
    }
}

/// A NOTIFICATION: why a session is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data (meaning depends on the codes).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with codes and data.
    pub fn new(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    /// Message Header Error / Bad Message Length, carrying the length.
    pub fn bad_message_length(length: u16) -> Self {
        Self::new(
            code::MESSAGE_HEADER,
            code::BAD_MESSAGE_LENGTH,
            length.to_be_bytes().to_vec(),
        )
    }

    /// UPDATE Message Error with a subcode and data.
    pub fn update(subcode: u8, data: Vec<u8>) -> Self {
        Self::new(code::UPDATE_MESSAGE, subcode, data)
    }

    /// OPEN Message Error with a subcode and no data.
    pub fn open(subcode: u8) -> Self {
        Self::new(code::OPEN_MESSAGE, subcode, Vec::new())
    }

    /// Hold Timer Expired.
    pub fn hold_timer_expired() -> Self {
        Self::new(code::HOLD_TIMER_EXPIRED, 0, Vec::new())
    }

    /// Cease with a subcode.
    pub fn cease(subcode: u8) -> Self {
        Self::new(code::CEASE, subcode, Vec::new())
    }

    /// The whole message, header included.
    pub fn encode(&self) -> Vec<u8> {
        // Data longer than a message can carry is cut: it is diagnostic only.
        let room = MAX_MESSAGE_LEN - HEADER_LEN - 2;
        let data = &self.data[..self.data.len().min(room)];
        let mut body = Vec::with_capacity(2 + data.len());
        body.push(self.code);
        body.push(self.subcode);
        body.extend_from_slice(data);
        frame(MessageType::Notification, &body)
    }

    /// Reads a NOTIFICATION body (at least two bytes, checked by the framer).
    fn decode(body: &[u8]) -> Self {
        Self::new(
            body.first().copied().unwrap_or(0),
            body.get(1).copied().unwrap_or(0),
            body.get(2..).unwrap_or_default().to_vec(),
        )
    }

    /// A readable name of the code and subcode.
    pub fn describe(&self) -> &'static str {
        match (self.code, self.subcode) {
            (1, 1) => "Message Header Error: Connection Not Synchronized",
            (1, 2) => "Message Header Error: Bad Message Length",
            (1, 3) => "Message Header Error: Bad Message Type",
            (1, _) => "Message Header Error",
            (2, 1) => "OPEN Message Error: Unsupported Version Number",
            (2, 2) => "OPEN Message Error: Bad Peer AS",
            (2, 3) => "OPEN Message Error: Bad BGP Identifier",
            (2, 4) => "OPEN Message Error: Unsupported Optional Parameter",
            (2, 6) => "OPEN Message Error: Unacceptable Hold Time",
            (2, 7) => "OPEN Message Error: Unsupported Capability",
            (2, _) => "OPEN Message Error",
            (3, 1) => "UPDATE Message Error: Malformed Attribute List",
            (3, 2) => "UPDATE Message Error: Unrecognized Well-known Attribute",
            (3, 3) => "UPDATE Message Error: Missing Well-known Attribute",
            (3, 4) => "UPDATE Message Error: Attribute Flags Error",
            (3, 5) => "UPDATE Message Error: Attribute Length Error",
            (3, 6) => "UPDATE Message Error: Invalid ORIGIN Attribute",
            (3, 8) => "UPDATE Message Error: Invalid NEXT_HOP Attribute",
            (3, 9) => "UPDATE Message Error: Optional Attribute Error",
            (3, 10) => "UPDATE Message Error: Invalid Network Field",
            (3, 11) => "UPDATE Message Error: Malformed AS_PATH",
            (3, _) => "UPDATE Message Error",
            (4, _) => "Hold Timer Expired",
            (5, _) => "Finite State Machine Error",
            (6, 1) => "Cease: Maximum Number of Prefixes Reached",
            (6, 2) => "Cease: Administrative Shutdown",
            (6, 3) => "Cease: Peer De-configured",
            (6, 4) => "Cease: Administrative Reset",
            (6, 5) => "Cease: Connection Rejected",
            (6, 6) => "Cease: Other Configuration Change",
            (6, 7) => "Cease: Connection Collision Resolution",
            (6, 8) => "Cease: Out of Resources",
            (6, 10) => "Cease: BFD Down",
            (6, _) => "Cease",
            (7, _) => "ROUTE-REFRESH Message Error",
            _ => "unknown error code",
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.describe(), self.code, self.subcode)
    }
}

/// What a peer says it can do in its OPEN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Multiprotocol IPv4 unicast (implied when no multiprotocol capability is sent).
    pub ipv4_unicast: bool,
    /// Multiprotocol IPv6 unicast.
    pub ipv6_unicast: bool,
    /// The 4-octet AS capability, with the AS it carries.
    pub four_octet_as: Option<u32>,
    /// Route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Graceful restart (RFC 4724): the peer's restart time in seconds.
    pub graceful_restart: Option<u16>,
}

/// A received OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMessage {
    /// The 2-octet "My Autonomous System" field.
    pub as2: u16,
    /// The proposed hold time in seconds.
    pub hold_time: u16,
    /// The BGP identifier.
    pub router_id: Ipv4Addr,
    /// The capabilities.
    pub capabilities: Capabilities,
}

impl OpenMessage {
    /// The peer's AS: from the 4-octet AS capability when present.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .four_octet_as
            .unwrap_or(u32::from(self.as2))
    }
}

/// A received message, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(OpenMessage),
    /// UPDATE (its content is not used: the speaker learns no routes).
    Update(UpdateSummary),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH for an address family.
    RouteRefresh {
        /// AFI (1 IPv4, 2 IPv6).
        afi: u16,
        /// SAFI (1 unicast).
        safi: u8,
    },
}

/// One whole message cut from the byte stream, its header checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The type.
    pub kind: MessageType,
    /// The body, after the 19-byte header.
    pub body: Vec<u8>,
}

/// Cuts the TCP byte stream into messages, checking each header as soon as
/// its 19 bytes are there (RFC 4271 section 6.1).
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` when more bytes are needed, or the
    /// NOTIFICATION a bad header deserves.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Notification> {
        let Some(header) = self.buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let (kind, length) = check_header(header)?;
        if self.buf.len() < length {
            return Ok(None);
        }
        let body = self.buf[HEADER_LEN..length].to_vec();
        self.buf.drain(..length);
        Ok(Some(Frame { kind, body }))
    }

    /// Drops any partial message (after a reconnect).
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Checks a 19-byte header: marker, length, type, and the length against the type.
pub fn check_header(header: &[u8]) -> Result<(MessageType, usize), Notification> {
    let marker_ok = header
        .get(..16)
        .is_some_and(|m| m.iter().all(|&b| b == 0xff));
    if !marker_ok {
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            code::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let length = u16::from_be_bytes([
        header.get(16).copied().unwrap_or(0),
        header.get(17).copied().unwrap_or(0),
    ]);
    let type_code = header.get(18).copied().unwrap_or(0);
    let Some(kind) = MessageType::from_code(type_code) else {
        // RFC 4271 checks the length first when both are wrong.
        if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&usize::from(length)) {
            return Err(Notification::bad_message_length(length));
        }
        return Err(Notification::new(
            code::MESSAGE_HEADER,
            code::BAD_MESSAGE_TYPE,
            vec![type_code],
        ));
    };
    let (min, max) = kind.length_range();
    if !(min..=max).contains(&usize::from(length)) {
        return Err(Notification::bad_message_length(length));
    }
    Ok((kind, usize::from(length)))
}

/// Parses a framed message. `four_octet_as` says whether AS numbers in
/// UPDATEs are 4 octets wide (both sides sent the capability).
pub fn decode(frame: &Frame, four_octet_as: bool) -> Result<Message, Notification> {
    match frame.kind {
        MessageType::Open => decode_open(&frame.body).map(Message::Open),
        MessageType::Update => update::check(&frame.body, four_octet_as).map(Message::Update),
        MessageType::Notification => Ok(Message::Notification(Notification::decode(&frame.body))),
        MessageType::Keepalive => Ok(Message::Keepalive),
        MessageType::RouteRefresh => {
            let b = &frame.body;
            match (b.first(), b.get(1), b.get(3)) {
                (Some(&hi), Some(&lo), Some(&safi)) => Ok(Message::RouteRefresh {
                    afi: u16::from_be_bytes([hi, lo]),
                    safi,
                }),
                _ => Err(Notification::bad_message_length(
                    (HEADER_LEN + b.len()) as u16,
                )),
            }
        }
    }
}

/// A malformed optional parameter or capability.
fn open_unspecific() -> Notification {
    Notification::open(code::OPEN_UNSPECIFIC)
}

/// Parses an OPEN body (at least 10 bytes, checked by the framer).
fn decode_open(body: &[u8]) -> Result<OpenMessage, Notification> {
    let byte = |i: usize| body.get(i).copied().ok_or_else(open_unspecific);
    let version = byte(0)?;
    if version != BGP_VERSION {
        return Err(Notification::new(
            code::OPEN_MESSAGE,
            code::UNSUPPORTED_VERSION,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        ));
    }
    let as2 = u16::from_be_bytes([byte(1)?, byte(2)?]);
    let hold_time = u16::from_be_bytes([byte(3)?, byte(4)?]);
    let router_id = Ipv4Addr::new(byte(5)?, byte(6)?, byte(7)?, byte(8)?);
    let params_len = usize::from(byte(9)?);
    let params = body.get(10..).unwrap_or_default();
    if params.len() != params_len {
        return Err(open_unspecific());
    }
    let mut capabilities = Capabilities::default();
    let mut multiprotocol_sent = false;
    let mut pos = 0;
    while pos < params.len() {
        let (kind, value) = tlv(params, &mut pos).ok_or_else(open_unspecific)?;
        if kind != 2 {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                code::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![kind],
            ));
        }
        let mut cpos = 0;
        while cpos < value.len() {
            let (cap, data) = tlv(value, &mut cpos).ok_or_else(open_unspecific)?;
            match (cap, data) {
                (1, [afi_hi, afi_lo, _, safi]) => {
                    multiprotocol_sent = true;
                    match (u16::from_be_bytes([*afi_hi, *afi_lo]), *safi) {
                        (1, 1) => capabilities.ipv4_unicast = true,
                        (2, 1) => capabilities.ipv6_unicast = true,
                        _ => {}
                    }
                }
                (2, []) => capabilities.route_refresh = true,
                (64, [hi, lo, ..]) => {
                    // Restart flags (4 bits) and restart time (12 bits); the
                    // per-family tuples that may follow do not concern us.
                    capabilities.graceful_restart = Some(u16::from_be_bytes([*hi, *lo]) & 0x0fff);
                }
                (65, [a, b, c, d]) => {
                    capabilities.four_octet_as = Some(u32::from_be_bytes([*a, *b, *c, *d]));
                }
                (1 | 2 | 65, _) => return Err(open_unspecific()),
                // Capabilities we do not use are ignored, as RFC 5492 asks.
                _ => {}
            }
        }
    }
    if !multiprotocol_sent {
        // RFC 4760: a speaker without multiprotocol capabilities does IPv4 unicast.
        capabilities.ipv4_unicast = true;
    }
    Ok(OpenMessage {
        as2,
        hold_time,
        router_id,
        capabilities,
    })
}

/// Reads one type-length-value at `pos` (1-byte type, 1-byte length).
fn tlv<'a>(buf: &'a [u8], pos: &mut usize) -> Option<(u8, &'a [u8])> {
    let kind = *buf.get(*pos)?;
    let len = usize::from(*buf.get(*pos + 1)?);
    let value = buf.get(*pos + 2..*pos + 2 + len)?;
    *pos += 2 + len;
    Some((kind, value))
}

/// Prepends the header to a body.
pub fn frame(kind: MessageType, body: &[u8]) -> Vec<u8> {
    let length = (HEADER_LEN + body.len()) as u16;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&length.to_be_bytes());
    out.push(kind.code());
    out.extend_from_slice(body);
    out
}

/// A KEEPALIVE.
pub fn encode_keepalive() -> Vec<u8> {
    frame(MessageType::Keepalive, &[])
}

/// The End-of-RIB marker of a family (RFC 4724 section 2): an UPDATE
/// without routes for IPv4 unicast; for another family an UPDATE whose only
/// attribute is an MP_UNREACH_NLRI of that AFI/SAFI without NLRI.
pub fn encode_end_of_rib(afi: u16, safi: u8) -> Vec<u8> {
    if (afi, safi) == (1, 1) {
        return frame(MessageType::Update, &[0, 0, 0, 0]);
    }
    let [afi_hi, afi_lo] = afi.to_be_bytes();
    // Withdrawn length 0, attributes length 6: optional, MP_UNREACH_NLRI (15), length 3.
    frame(
        MessageType::Update,
        &[0, 0, 0, 6, 0x80, 15, 3, afi_hi, afi_lo, safi],
    )
}

/// What we say in our OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOpen {
    /// Our AS (AS_TRANS goes in the 2-octet field when it does not fit).
    pub asn: u32,
    /// Our proposed hold time in seconds.
    pub hold_time: u16,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Graceful restart with this restart time (seconds, at most 4095).
    pub graceful_restart: Option<u16>,
}

/// zettabgp failed to encode a message (a bug on our side, not the peer's).
#[derive(Debug, thiserror::Error)]
#[error("encoding a BGP message: {0}")]
pub struct EncodeError(pub String);

/// Our OPEN: version 4, AS, hold time, identifier, and the capabilities
/// multiprotocol IPv4 and IPv6 unicast, route refresh and 4-octet AS, and
/// graceful restart when configured.
pub fn encode_open(open: &LocalOpen) -> Result<Vec<u8>, EncodeError> {
    let mut caps = vec![
        BgpCapability::SafiIPv4u,
        BgpCapability::SafiIPv6u,
        BgpCapability::CapRR,
        BgpCapability::CapASN32(open.asn),
    ];
    if let Some(restart_time) = open.graceful_restart {
        // Forwarding state preserved for both families: the node's dataplane
        // (kube-proxy) keeps forwarding while the speaker restarts. The
        // Restart State bit stays clear: we cannot tell a restart from a
        // first start, and the router does not need it to keep our routes.
        let family = |afi| BgpCapGR {
            afi,
            safi: 1,
            forwarding_state: true,
        };
        caps.push(BgpCapability::CapGR {
            restart_time: restart_time.min(0x0fff),
            restart_state: false,
            afis: vec![family(1), family(2)],
        });
    }
    let mut params = BgpSessionParams::new(
        open.asn,
        open.hold_time,
        BgpTransportMode::IPv4,
        open.router_id,
        caps,
    );
    params.fuzzy_pathid = false;
    let message = params.open_message();
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let body_len = message
        .encode_to(&params, &mut buf[HEADER_LEN..])
        .map_err(|e| EncodeError(e.to_string()))?;
    let total = params
        .prepare_message_buf(&mut buf, BgpMessageType::Open, body_len)
        .map_err(|e| EncodeError(e.to_string()))?;
    buf.truncate(total);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(length: u16, kind: u8) -> Vec<u8> {
        let mut h = vec![0xff; 16];
        h.extend_from_slice(&length.to_be_bytes());
        h.push(kind);
        h
    }

    #[test]
    fn header_errors_map_to_their_notification() {
        let mut bad_marker = header(19, 4);
        bad_marker[3] = 0;
        let cases: Vec<(&str, Vec<u8>, Notification)> = vec![
            (
                "marker_not_all_ones_is_connection_not_synchronized",
                bad_marker,
                Notification::new(1, 1, vec![]),
            ),
            (
                "length_below_19_is_bad_message_length",
                header(18, 4),
                Notification::new(1, 2, vec![0, 18]),
            ),
            (
                "length_above_4096_is_bad_message_length",
                header(4097, 2),
                Notification::new(1, 2, vec![0x10, 0x01]),
            ),
            (
                "unknown_type_is_bad_message_type",
                header(19, 9),
                Notification::new(1, 3, vec![9]),
            ),
            (
                "keepalive_longer_than_19_is_bad_message_length",
                header(20, 4),
                Notification::new(1, 2, vec![0, 20]),
            ),
            (
                "open_shorter_than_29_is_bad_message_length",
                header(28, 1),
                Notification::new(1, 2, vec![0, 28]),
            ),
            (
                "update_shorter_than_23_is_bad_message_length",
                header(22, 2),
                Notification::new(1, 2, vec![0, 22]),
            ),
            (
                "notification_shorter_than_21_is_bad_message_length",
                header(20, 3),
                Notification::new(1, 2, vec![0, 20]),
            ),
            (
                "route_refresh_not_23_is_bad_message_length",
                header(24, 5),
                Notification::new(1, 2, vec![0, 24]),
            ),
        ];
        for (rule, bytes, want) in cases {
            let mut framer = Framer::default();
            framer.push(&bytes);
            assert_eq!(framer.next_frame(), Err(want), "{rule}");
        }
    }

    #[test]
    fn framer_waits_for_whole_messages_and_splits_back_to_back_ones() {
        let mut stream = encode_keepalive();
        stream.extend(Notification::cease(2).encode());
        let mut framer = Framer::default();
        framer.push(&stream[..10]);
        assert_eq!(framer.next_frame(), Ok(None), "partial header");
        framer.push(&stream[10..25]);
        let first = framer.next_frame().unwrap().unwrap();
        assert_eq!(first.kind, MessageType::Keepalive);
        assert_eq!(framer.next_frame(), Ok(None), "partial second message");
        framer.push(&stream[25..]);
        let second = framer.next_frame().unwrap().unwrap();
        assert_eq!(
            decode(&second, true),
            Ok(Message::Notification(Notification::cease(2)))
        );
        assert_eq!(framer.next_frame(), Ok(None));
    }

    /// An OPEN body: version, AS, hold, id, then raw optional parameters.
    fn open_body(version: u8, as2: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
        let mut b = vec![version];
        b.extend_from_slice(&as2.to_be_bytes());
        b.extend_from_slice(&hold.to_be_bytes());
        b.extend_from_slice(&id);
        b.push(params.len() as u8);
        b.extend_from_slice(params);
        b
    }

    fn open_frame(body: Vec<u8>) -> Frame {
        Frame {
            kind: MessageType::Open,
            body,
        }
    }

    #[test]
    fn our_open_carries_as_trans_and_every_capability() {
        let bytes = encode_open(&LocalOpen {
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            graceful_restart: None,
        })
        .unwrap();
        let mut framer = Framer::default();
        framer.push(&bytes);
        let frame = framer.next_frame().unwrap().unwrap();
        let Message::Open(open) = decode(&frame, true).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(open.as2, AS_TRANS, "a 4-octet AS writes AS_TRANS");
        assert_eq!(open.asn(), 4_200_000_001);
        assert_eq!(open.hold_time, 90);
        assert_eq!(open.router_id, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(
            open.capabilities,
            Capabilities {
                ipv4_unicast: true,
                ipv6_unicast: true,
                four_octet_as: Some(4_200_000_001),
                route_refresh: true,
                graceful_restart: None,
            }
        );
        // And zettabgp's own decoder reads the same OPEN.
        let theirs = zettabgp_open(&frame.body);
        assert_eq!(theirs.as_num, u32::from(AS_TRANS));
        assert!(
            theirs
                .caps
                .contains(&BgpCapability::CapASN32(4_200_000_001))
        );
    }

    /// What zettabgp's own decoder makes of an OPEN body.
    fn zettabgp_open(body: &[u8]) -> zettabgp::prelude::BgpOpenMessage {
        let params = BgpSessionParams::new(
            1,
            90,
            BgpTransportMode::IPv4,
            Ipv4Addr::new(1, 1, 1, 1),
            vec![],
        );
        let mut theirs = zettabgp::prelude::BgpOpenMessage::new();
        theirs.decode_from(&params, body).unwrap();
        theirs
    }

    #[test]
    fn graceful_restart_capability_has_restart_time_and_forwarding_state_for_both_families() {
        let bytes = encode_open(&LocalOpen {
            asn: 64512,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            graceful_restart: Some(120),
        })
        .unwrap();
        let mut framer = Framer::default();
        framer.push(&bytes);
        let frame = framer.next_frame().unwrap().unwrap();
        let Message::Open(open) = decode(&frame, true).unwrap() else {
            panic!("not an OPEN");
        };
        assert_eq!(open.capabilities.graceful_restart, Some(120));
        let theirs = zettabgp_open(&frame.body);
        let gr = theirs
            .caps
            .iter()
            .find_map(|c| match c {
                BgpCapability::CapGR {
                    restart_time,
                    restart_state,
                    afis,
                } => Some((*restart_time, *restart_state, afis.clone())),
                _ => None,
            })
            .expect("a graceful restart capability");
        assert_eq!(gr.0, 120, "restart time");
        assert!(!gr.1, "restart state bit clear");
        let families: Vec<(u16, u8, bool)> =
            gr.2.iter()
                .map(|f| (f.afi, f.safi, f.forwarding_state))
                .collect();
        assert_eq!(families, vec![(1, 1, true), (2, 1, true)]);
    }

    #[test]
    fn end_of_rib_markers_follow_rfc4724() {
        let cases: [(&str, u16, Vec<u8>); 2] = [
            ("ipv4_unicast_is_an_empty_update", 1, vec![0, 0, 0, 0]),
            (
                "ipv6_unicast_is_an_mp_unreach_nlri_without_nlri",
                2,
                vec![0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1],
            ),
        ];
        for (rule, afi, body) in cases {
            let bytes = encode_end_of_rib(afi, 1);
            let mut framer = Framer::default();
            framer.push(&bytes);
            let frame = framer.next_frame().unwrap().unwrap();
            assert_eq!(frame.kind, MessageType::Update, "{rule}");
            assert_eq!(frame.body, body, "{rule}");
            // Our own UPDATE checks accept it, as a router's would.
            assert!(decode(&frame, true).is_ok(), "{rule}");
        }
    }

    #[test]
    fn open_parsing_rules() {
        let mp_v6 = [2, 6, 1, 4, 0, 2, 0, 1];
        let hostname = [
            2, 12, 73, 10, 3, b'f', b'r', b'r', 5, b'l', b'o', b'c', b'a', b'l',
        ];
        let cases: Vec<(&str, Vec<u8>, Result<Capabilities, Notification>)> = vec![
            (
                "no_multiprotocol_capability_implies_ipv4_unicast",
                open_body(4, 65000, 90, [1, 1, 1, 1], &[]),
                Ok(Capabilities {
                    ipv4_unicast: true,
                    ..Capabilities::default()
                }),
            ),
            (
                "multiprotocol_capabilities_are_taken_literally",
                open_body(4, 65000, 90, [1, 1, 1, 1], &mp_v6),
                Ok(Capabilities {
                    ipv6_unicast: true,
                    ..Capabilities::default()
                }),
            ),
            (
                "unknown_capabilities_such_as_hostname_are_ignored",
                open_body(4, 65000, 90, [1, 1, 1, 1], &hostname),
                Ok(Capabilities {
                    ipv4_unicast: true,
                    ..Capabilities::default()
                }),
            ),
            (
                "version_3_is_unsupported_version_naming_4",
                open_body(3, 65000, 90, [1, 1, 1, 1], &[]),
                Err(Notification::new(2, 1, vec![0, 4])),
            ),
            (
                "an_optional_parameter_other_than_capabilities_is_unsupported",
                open_body(4, 65000, 90, [1, 1, 1, 1], &[1, 0]),
                Err(Notification::new(2, 4, vec![1])),
            ),
            (
                "a_parameter_overrunning_the_message_is_unspecific",
                open_body(4, 65000, 90, [1, 1, 1, 1], &[2, 9, 1, 4]),
                Err(Notification::new(2, 0, vec![])),
            ),
            (
                "a_capability_overrunning_its_parameter_is_unspecific",
                open_body(4, 65000, 90, [1, 1, 1, 1], &[2, 3, 65, 4, 0]),
                Err(Notification::new(2, 0, vec![])),
            ),
            (
                "a_four_octet_as_capability_of_wrong_length_is_unspecific",
                open_body(4, 65000, 90, [1, 1, 1, 1], &[2, 4, 65, 2, 0, 1]),
                Err(Notification::new(2, 0, vec![])),
            ),
            (
                "parameters_length_disagreeing_with_the_message_is_unspecific",
                {
                    let mut b = open_body(4, 65000, 90, [1, 1, 1, 1], &[]);
                    b[9] = 4;
                    b
                },
                Err(Notification::new(2, 0, vec![])),
            ),
        ];
        for (rule, body, want) in cases {
            let got = decode(&open_frame(body), true).map(|m| match m {
                Message::Open(o) => o.capabilities,
                other => panic!("{rule}: {other:?}"),
            });
            assert_eq!(got, want, "{rule}");
        }
    }

    #[test]
    fn route_refresh_and_notification_are_read() {
        let rr = Frame {
            kind: MessageType::RouteRefresh,
            body: vec![0, 2, 0, 1],
        };
        assert_eq!(
            decode(&rr, true),
            Ok(Message::RouteRefresh { afi: 2, safi: 1 })
        );
        let n = Notification::new(6, 2, b"bye".to_vec());
        let mut framer = Framer::default();
        framer.push(&n.encode());
        let frame = framer.next_frame().unwrap().unwrap();
        assert_eq!(decode(&frame, true), Ok(Message::Notification(n.clone())));
        assert_eq!(n.to_string(), "Cease: Administrative Shutdown (6/2)");
    }
}
