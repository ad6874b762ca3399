//! The BFD control packet (RFC 5880 section 4.1), pure: [`Packet::encode`]
//! and [`Packet::decode`].
//!
//! Decoding applies, in the RFC's order, every reception check of section
//! 6.8.6 that depends on the packet alone (version, length, detect
//! multiplier, multipoint bit, discriminators) and then refuses any packet
//! carrying an authentication section, since ferrolb configures no BFD
//! authentication (section 6.7: a packet with the A bit set on a session
//! without authentication is discarded). It never panics, whatever the
//! bytes. The checks that need session state (selecting the session by
//! Your Discriminator, the TTL of RFC 5881) belong to the caller.

use thiserror::Error;

/// The protocol version this codec speaks (RFC 5880 section 4.1).
pub const VERSION: u8 = 1;

/// Length of the mandatory section, and of every packet we encode.
pub const MANDATORY_LEN: usize = 24;

/// Smallest valid Length when the A bit is set: the mandatory section plus
/// the Auth Type and Auth Len bytes (section 6.8.6).
pub const MIN_AUTHENTICATED_LEN: usize = 26;

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
const FLAG_AUTHENTICATION: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

/// A session state as carried in the Sta field (section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// 0: the session is held down by its administrator.
    AdminDown,
    /// 1: the session is down (or just created).
    Down,
    /// 2: the remote is heard, our state not yet confirmed by it.
    Init,
    /// 3: both ends see each other.
    Up,
}

impl State {
    /// The two-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state of a two-bit wire value (only the low two bits are read).
    pub fn from_code(code: u8) -> State {
        match code & 0x03 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

/// The Diag field: why the sender's session last changed state (section
/// 4.1). Codes 9 to 31 are reserved and kept as [`Diagnostic::Reserved`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0.
    NoDiagnostic,
    /// 1: no packet from the remote within the detection time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the remote said Down or AdminDown.
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9 to 31 (a larger value is encoded modulo 32).
    Reserved(u8),
}

impl Diagnostic {
    /// The five-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            Diagnostic::NoDiagnostic => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Reserved(code) => code & 0x1f,
        }
    }

    /// The diagnostic of a five-bit wire value (only the low five bits are
    /// read).
    pub fn from_code(code: u8) -> Diagnostic {
        match code & 0x1f {
            0 => Diagnostic::NoDiagnostic,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            other => Diagnostic::Reserved(other),
        }
    }
}

/// The Auth Type of an authentication section (section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// 1.
    SimplePassword,
    /// 2.
    KeyedMd5,
    /// 3.
    MeticulousKeyedMd5,
    /// 4.
    KeyedSha1,
    /// 5.
    MeticulousKeyedSha1,
    /// 0 (reserved) or 6 to 255.
    Other(u8),
}

impl AuthType {
    /// The type of a wire value.
    pub fn from_code(code: u8) -> AuthType {
        match code {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            other => AuthType::Other(other),
        }
    }
}

/// Why a received packet is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than the four needed to read the Length field.
    #[error("BFD packet truncated: {len} bytes")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// The version is not 1 (6.8.6).
    #[error("unsupported BFD version {version}")]
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// The Length field is below 24, or 26 with the A bit set (6.8.6).
    #[error("BFD Length {length} below the minimum {minimum}")]
    LengthTooSmall {
        /// The Length field.
        length: u8,
        /// 24, or 26 with the A bit.
        minimum: usize,
    },
    /// The Length field claims more than the datagram holds (6.8.6).
    #[error("BFD Length {length} exceeds the {payload}-byte payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// Bytes received.
        payload: usize,
    },
    /// Detect Mult is zero (6.8.6).
    #[error("BFD Detect Mult is zero")]
    DetectMultZero,
    /// The Multipoint bit is set (6.8.6).
    #[error("BFD Multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero (6.8.6).
    #[error("BFD My Discriminator is zero")]
    MyDiscriminatorZero,
    /// Your Discriminator is zero while the state is Init or Up (6.8.6).
    #[error("BFD Your Discriminator is zero in state {state:?}")]
    YourDiscriminatorZero {
        /// The state received.
        state: State,
    },
    /// The A bit is set but the authentication section is inconsistent
    /// (Auth Len under 2 or past the Length).
    #[error("malformed BFD authentication section (Auth Len {auth_len}, Length {length})")]
    MalformedAuthentication {
        /// The Auth Len field.
        auth_len: u8,
        /// The Length field.
        length: u8,
    },
    /// The packet is authenticated; no session of ours uses authentication
    /// (6.8.6, A bit set and bfd.AuthType zero).
    #[error("authenticated BFD packet ({auth_type:?}) refused: authentication is not configured")]
    AuthenticationNotSupported {
        /// The Auth Type received.
        auth_type: AuthType,
    },
}

/// A BFD control packet without authentication section (the only kind we
/// send or accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    /// Diag.
    pub diag: Diagnostic,
    /// Sta.
    pub state: State,
    /// P: the sender asks for a packet with F in reply.
    pub poll: bool,
    /// F: the sender answers a packet that had P.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// D: the sender wishes to run in demand mode.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discriminator: u32,
    /// Your Discriminator (zero while the sender does not know it).
    pub your_discriminator: u32,
    /// Desired Min TX Interval, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, microseconds (0: no echo wanted).
    pub required_min_echo_rx_us: u32,
}

impl Packet {
    /// The 24-byte wire form: version 1, A and M bits clear, Length 24.
    pub fn encode(&self) -> [u8; MANDATORY_LEN] {
        let mut out = [0u8; MANDATORY_LEN];
        out[0] = (VERSION << 5) | self.diag.code();
        let mut flags = self.state.code() << 6;
        for (set, bit) in [
            (self.poll, FLAG_POLL),
            (self.final_, FLAG_FINAL),
            (
                self.control_plane_independent,
                FLAG_CONTROL_PLANE_INDEPENDENT,
            ),
            (self.demand, FLAG_DEMAND),
        ] {
            if set {
                flags |= bit;
            }
        }
        out[1] = flags;
        out[2] = self.detect_mult;
        out[3] = MANDATORY_LEN as u8;
        out[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        out[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        out[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        out[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        out[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        out
    }

    /// Parse and check a UDP payload. Bytes past the Length field are
    /// ignored, as are bytes between 24 and Length when the A bit is clear.
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        let Some(&first) = bytes.first() else {
            return Err(DecodeError::Truncated { len: 0 });
        };
        let version = first >> 5;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let [_, flags, detect_mult, length, ..] = *bytes else {
            return Err(DecodeError::Truncated { len: bytes.len() });
        };
        let authenticated = flags & FLAG_AUTHENTICATION != 0;
        let minimum = if authenticated {
            MIN_AUTHENTICATED_LEN
        } else {
            MANDATORY_LEN
        };
        if usize::from(length) < minimum {
            return Err(DecodeError::LengthTooSmall { length, minimum });
        }
        if usize::from(length) > bytes.len() {
            return Err(DecodeError::LengthExceedsPayload {
                length,
                payload: bytes.len(),
            });
        }
        let word = |at: usize| -> u32 {
            let mut b = [0u8; 4];
            if let Some(src) = bytes.get(at..at + 4) {
                b.copy_from_slice(src);
            }
            u32::from_be_bytes(b)
        };
        let packet = Packet {
            diag: Diagnostic::from_code(first),
            state: State::from_code(flags >> 6),
            poll: flags & FLAG_POLL != 0,
            final_: flags & FLAG_FINAL != 0,
            control_plane_independent: flags & FLAG_CONTROL_PLANE_INDEPENDENT != 0,
            demand: flags & FLAG_DEMAND != 0,
            detect_mult,
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        };
        if detect_mult == 0 {
            return Err(DecodeError::DetectMultZero);
        }
        if flags & FLAG_MULTIPOINT != 0 {
            return Err(DecodeError::Multipoint);
        }
        packet.check_discriminators()?;
        if authenticated {
            let auth_type = bytes.get(MANDATORY_LEN).copied().unwrap_or(0);
            let auth_len = bytes.get(MANDATORY_LEN + 1).copied().unwrap_or(0);
            if auth_len < 2 || MANDATORY_LEN + usize::from(auth_len) > usize::from(length) {
                return Err(DecodeError::MalformedAuthentication { auth_len, length });
            }
            return Err(DecodeError::AuthenticationNotSupported {
                auth_type: AuthType::from_code(auth_type),
            });
        }
        Ok(packet)
    }

    /// The 6.8.6 checks on the fields of an already built packet (the
    /// session applies them too, so a packet that did not come through
    /// [`Packet::decode`] cannot bypass them).
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.detect_mult == 0 {
            return Err(DecodeError::DetectMultZero);
        }
        self.check_discriminators()
    }

    fn check_discriminators(&self) -> Result<(), DecodeError> {
        if self.my_discriminator == 0 {
            return Err(DecodeError::MyDiscriminatorZero);
        }
        if self.your_discriminator == 0 && !matches!(self.state, State::Down | State::AdminDown) {
            return Err(DecodeError::YourDiscriminatorZero { state: self.state });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Packet {
        Packet {
            diag: Diagnostic::NoDiagnostic,
            state: State::Up,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 0x0a0b_0c0d,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn encode_is_byte_exact() {
        let base = sample();
        let cases: Vec<(&str, Packet, [u8; 24])> = vec![
            (
                "up_no_flags_300ms",
                base,
                [
                    0x20, 0xc0, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93, 0xe0,
                    0x00, 0x04, 0x93, 0xe0, 0, 0, 0, 0,
                ],
            ),
            (
                "down_first_packet_1s_your_zero",
                Packet {
                    state: State::Down,
                    your_discriminator: 0,
                    desired_min_tx_us: 1_000_000,
                    ..base
                },
                [
                    0x20, 0x40, 3, 24, 1, 2, 3, 4, 0, 0, 0, 0, 0x00, 0x0f, 0x42, 0x40, 0x00, 0x04,
                    0x93, 0xe0, 0, 0, 0, 0,
                ],
            ),
            (
                "admin_down_diag_7",
                Packet {
                    state: State::AdminDown,
                    diag: Diagnostic::AdministrativelyDown,
                    ..base
                },
                [
                    0x27, 0x00, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93, 0xe0,
                    0x00, 0x04, 0x93, 0xe0, 0, 0, 0, 0,
                ],
            ),
            (
                "down_diag_1_detection_expired",
                Packet {
                    state: State::Down,
                    diag: Diagnostic::ControlDetectionTimeExpired,
                    ..base
                },
                [
                    0x21, 0x40, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93, 0xe0,
                    0x00, 0x04, 0x93, 0xe0, 0, 0, 0, 0,
                ],
            ),
            (
                "init_with_poll",
                Packet {
                    state: State::Init,
                    poll: true,
                    ..base
                },
                [
                    0x20, 0xa0, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93, 0xe0,
                    0x00, 0x04, 0x93, 0xe0, 0, 0, 0, 0,
                ],
            ),
            (
                "up_final_cpi_demand_echo_50ms",
                Packet {
                    final_: true,
                    control_plane_independent: true,
                    demand: true,
                    required_min_echo_rx_us: 50_000,
                    detect_mult: 255,
                    ..base
                },
                [
                    0x20, 0xda, 255, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93,
                    0xe0, 0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0xc3, 0x50,
                ],
            ),
            (
                "reserved_diag_31",
                Packet {
                    diag: Diagnostic::Reserved(31),
                    ..base
                },
                [
                    0x3f, 0xc0, 3, 24, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x04, 0x93, 0xe0,
                    0x00, 0x04, 0x93, 0xe0, 0, 0, 0, 0,
                ],
            ),
        ];
        for (name, packet, bytes) in cases {
            assert_eq!(packet.encode(), bytes, "{name}: encode");
            assert_eq!(Packet::decode(&bytes), Ok(packet), "{name}: decode");
        }
    }

    #[test]
    fn diagnostic_and_state_codes_round_trip() {
        for code in 0..32u8 {
            assert_eq!(Diagnostic::from_code(code).code(), code);
        }
        for (code, diag) in [
            (0, Diagnostic::NoDiagnostic),
            (1, Diagnostic::ControlDetectionTimeExpired),
            (2, Diagnostic::EchoFunctionFailed),
            (3, Diagnostic::NeighborSignaledSessionDown),
            (4, Diagnostic::ForwardingPlaneReset),
            (5, Diagnostic::PathDown),
            (6, Diagnostic::ConcatenatedPathDown),
            (7, Diagnostic::AdministrativelyDown),
            (8, Diagnostic::ReverseConcatenatedPathDown),
            (9, Diagnostic::Reserved(9)),
        ] {
            assert_eq!(Diagnostic::from_code(code), diag);
        }
        for code in 0..4u8 {
            assert_eq!(State::from_code(code).code(), code);
        }
    }

    /// Builds one named test per 6.8.6 reception rule: `$mutate` turns a
    /// valid encoded packet into the offending bytes.
    macro_rules! reception_check {
        ($($name:ident: $mutate:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let mut bytes = sample().encode().to_vec();
                let mutate: fn(&mut Vec<u8>) = $mutate;
                mutate(&mut bytes);
                assert_eq!(Packet::decode(&bytes), Err($expected));
            }
        )*};
    }

    reception_check! {
        rfc5880_6_8_6_empty_datagram_is_discarded:
            |b| b.clear() => DecodeError::Truncated { len: 0 };
        rfc5880_6_8_6_three_bytes_are_discarded:
            |b| b.truncate(3) => DecodeError::Truncated { len: 3 };
        rfc5880_6_8_6_version_0_is_discarded:
            |b| b[0] &= 0x1f => DecodeError::UnsupportedVersion { version: 0 };
        rfc5880_6_8_6_version_2_is_discarded:
            |b| b[0] = (2 << 5) | (b[0] & 0x1f) => DecodeError::UnsupportedVersion { version: 2 };
        rfc5880_6_8_6_length_below_24_is_discarded:
            |b| b[3] = 23 => DecodeError::LengthTooSmall { length: 23, minimum: 24 };
        rfc5880_6_8_6_length_below_26_with_auth_bit_is_discarded:
            |b| { b[1] |= FLAG_AUTHENTICATION; b[3] = 25; b.push(1); }
            => DecodeError::LengthTooSmall { length: 25, minimum: 26 };
        rfc5880_6_8_6_length_beyond_payload_is_discarded:
            |b| b[3] = 28 => DecodeError::LengthExceedsPayload { length: 28, payload: 24 };
        rfc5880_6_8_6_short_payload_is_discarded:
            |b| b.truncate(20) => DecodeError::LengthExceedsPayload { length: 24, payload: 20 };
        rfc5880_6_8_6_detect_mult_zero_is_discarded:
            |b| b[2] = 0 => DecodeError::DetectMultZero;
        rfc5880_6_8_6_multipoint_bit_is_discarded:
            |b| b[1] |= FLAG_MULTIPOINT => DecodeError::Multipoint;
        rfc5880_6_8_6_my_discriminator_zero_is_discarded:
            |b| b[4..8].fill(0) => DecodeError::MyDiscriminatorZero;
        rfc5880_6_8_6_your_discriminator_zero_in_up_is_discarded:
            |b| b[8..12].fill(0) => DecodeError::YourDiscriminatorZero { state: State::Up };
        rfc5880_6_8_6_your_discriminator_zero_in_init_is_discarded:
            |b| { b[8..12].fill(0); b[1] = (b[1] & 0x3f) | 0x80; }
            => DecodeError::YourDiscriminatorZero { state: State::Init };
        rfc5880_6_8_6_authenticated_packet_is_refused:
            |b| { b[1] |= FLAG_AUTHENTICATION; b[3] = 28; b.extend([2, 4, 1, 0]); }
            => DecodeError::AuthenticationNotSupported { auth_type: AuthType::KeyedMd5 };
        rfc5880_6_8_6_auth_len_past_length_is_malformed:
            |b| { b[1] |= FLAG_AUTHENTICATION; b[3] = 26; b.extend([1, 8]); }
            => DecodeError::MalformedAuthentication { auth_len: 8, length: 26 };
        rfc5880_6_8_6_auth_len_below_2_is_malformed:
            |b| { b[1] |= FLAG_AUTHENTICATION; b[3] = 26; b.extend([1, 1]); }
            => DecodeError::MalformedAuthentication { auth_len: 1, length: 26 };
    }

    #[test]
    fn reception_checks_run_in_rfc_order() {
        // Every rule broken at once: the first of the RFC's list wins, and
        // so on as each is repaired.
        let mut bytes = vec![0x40, 0xc5, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes.resize(24, 0);
        type Repair = fn(&mut Vec<u8>);
        let steps: Vec<(Repair, DecodeError)> = vec![
            (|_| {}, DecodeError::UnsupportedVersion { version: 2 }),
            (
                |b| b[0] = 0x20,
                DecodeError::LengthExceedsPayload {
                    length: 30,
                    payload: 24,
                },
            ),
            (|b| b.resize(30, 0), DecodeError::DetectMultZero),
            (|b| b[2] = 1, DecodeError::Multipoint),
            (
                |b| b[1] &= !FLAG_MULTIPOINT,
                DecodeError::MyDiscriminatorZero,
            ),
            (
                |b| b[7] = 1,
                DecodeError::YourDiscriminatorZero { state: State::Up },
            ),
            (
                |b| b[11] = 1,
                DecodeError::MalformedAuthentication {
                    auth_len: 0,
                    length: 30,
                },
            ),
            (
                |b| b[24..26].copy_from_slice(&[5, 6]),
                DecodeError::AuthenticationNotSupported {
                    auth_type: AuthType::MeticulousKeyedSha1,
                },
            ),
        ];
        for (i, (repair, expected)) in steps.into_iter().enumerate() {
            repair(&mut bytes);
            assert_eq!(Packet::decode(&bytes), Err(expected), "step {i}");
        }
    }

    #[test]
    fn accepted_variants_decode() {
        let base = sample();
        // Your Discriminator zero is fine in Down and AdminDown.
        for state in [State::Down, State::AdminDown] {
            let p = Packet {
                state,
                your_discriminator: 0,
                ..base
            };
            assert_eq!(Packet::decode(&p.encode()), Ok(p), "{state:?}");
        }
        // Trailing bytes beyond Length are ignored; so are bytes within a
        // longer Length when the A bit is clear.
        let mut longer = base.encode().to_vec();
        longer.extend([9, 9, 9]);
        assert_eq!(Packet::decode(&longer), Ok(base));
        longer[3] = 27;
        assert_eq!(Packet::decode(&longer), Ok(base));
    }

    #[test]
    fn validate_applies_the_field_rules() {
        assert_eq!(sample().validate(), Ok(()));
        let bad = [
            (
                Packet {
                    detect_mult: 0,
                    ..sample()
                },
                DecodeError::DetectMultZero,
            ),
            (
                Packet {
                    my_discriminator: 0,
                    ..sample()
                },
                DecodeError::MyDiscriminatorZero,
            ),
            (
                Packet {
                    your_discriminator: 0,
                    ..sample()
                },
                DecodeError::YourDiscriminatorZero { state: State::Up },
            ),
        ];
        for (packet, err) in bad {
            assert_eq!(packet.validate(), Err(err));
        }
    }

    fn any_packet() -> impl Strategy<Value = Packet> {
        (
            (0u8..32, 0u8..4, any::<[bool; 4]>(), any::<u8>()),
            any::<[u32; 5]>(),
        )
            .prop_map(|((diag, state, flags, detect_mult), words)| Packet {
                diag: Diagnostic::from_code(diag),
                state: State::from_code(state),
                poll: flags[0],
                final_: flags[1],
                control_plane_independent: flags[2],
                demand: flags[3],
                detect_mult,
                my_discriminator: words[0],
                your_discriminator: words[1],
                desired_min_tx_us: words[2],
                required_min_rx_us: words[3],
                required_min_echo_rx_us: words[4],
            })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::decode(&bytes) {
                prop_assert_eq!(p.validate(), Ok(()));
            }
        }

        #[test]
        fn corrupted_packets_never_panic_and_valid_ones_round_trip(
            packet in any_packet(),
            flips in proptest::collection::vec((0usize..32, any::<u8>()), 0..6),
            cut in 0usize..40,
        ) {
            let encoded = packet.encode();
            match Packet::decode(&encoded) {
                Ok(decoded) => prop_assert_eq!(decoded, packet),
                Err(_) => prop_assert!(packet.validate().is_err()),
            }
            let mut bytes = encoded.to_vec();
            bytes.resize(32, 0);
            for (at, value) in flips {
                bytes[at] ^= value;
            }
            bytes.truncate(cut);
            let _ = Packet::decode(&bytes);
        }
    }
}
