//! The rules of each field (SPEC A2/A3), applied to the ConfigMap and to the
//! CRDs alike. Every error is recorded with its path and checking goes on,
//! so one run reports everything that is wrong; rules that need both sources
//! at once (names, overlaps, selections) live in [`crate::merge`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as KubeSelector;

use crate::configmap::{self, ConfigFile};
use crate::crd::{self, Resources};
use crate::duration;
use crate::error::ConfigErrors;
use crate::merge::{Draft, DraftBgp, DraftL2, DraftPeer, DraftPool, Located, Selection};
use crate::model::{
    AddressBlock, BfdProfile, BgpAdvertisement, Community, IpFamily, L2Advertisement,
    LabelRequirement, LabelSelector, Origin, Peer, PeerPassword, Pool, SelectorOperator,
    ServiceAllocation,
};

/// Default BGP hold time.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
/// Default BGP port.
pub const DEFAULT_PEER_PORT: u16 = 179;

/// Parse one `addresses` entry: a CIDR (host bits are masked, as MetalLB
/// did) or an inclusive range `first-last` (spaces around `-` allowed).
pub fn parse_block(text: &str) -> Result<AddressBlock, String> {
    let s = text.trim();
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (a.trim(), b.trim());
        let first: IpAddr = a
            .parse()
            .map_err(|_| format!("invalid range: {a:?} is not an IP address"))?;
        let last: IpAddr = b
            .parse()
            .map_err(|_| format!("invalid range: {b:?} is not an IP address"))?;
        if IpFamily::of(first) != IpFamily::of(last) {
            return Err("invalid range: mixes IPv4 and IPv6".into());
        }
        return AddressBlock::new(first, last)
            .ok_or_else(|| format!("invalid range: start {first} is after end {last}"));
    }
    let Some((addr, len)) = s.split_once('/') else {
        return Err(match s.parse::<IpAddr>() {
            Ok(ip) => format!(
                "not a CIDR or range (a single address is written {ip}/{})",
                if ip.is_ipv4() { 32 } else { 128 }
            ),
            Err(_) => {
                "not a CIDR (like 192.168.10.0/24) or a range (like 192.168.5.5-192.168.5.9)".into()
            }
        });
    };
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("invalid CIDR: {:?} is not an IP address", addr.trim()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .trim()
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or("invalid prefix length")?;
    let net = ipnet::IpNet::new(ip, len).map_err(|_| "invalid prefix length".to_string())?;
    Ok(AddressBlock::from_net(net.trunc()))
}

/// Parse a community literal: `AA:NN` (16 bits each) or `large:A:B:C` (32 bits each).
pub fn parse_community(text: &str) -> Result<Community, String> {
    let s = text.trim();
    let invalid = || {
        format!(
            "invalid community {s:?} (expected AA:NN with 16-bit numbers or large:A:B:C with 32-bit numbers)"
        )
    };
    if let Some(rest) = s.strip_prefix("large:") {
        let parts: Vec<&str> = rest.split(':').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(invalid());
        };
        let n = |p: &str| p.parse::<u32>().map_err(|_| invalid());
        return Ok(Community::Large(n(a)?, n(b)?, n(c)?));
    }
    let (a, n) = s.split_once(':').ok_or_else(invalid)?;
    let a = a.parse::<u16>().map_err(|_| invalid())?;
    let n = n.parse::<u16>().map_err(|_| invalid())?;
    Ok(Community::Standard(a, n))
}

/// Field names and path style of one source.
struct Names {
    /// Separator between nested parts of a path.
    sep: &'static str,
    /// Prefix of every field of an object (`spec.` for CRDs).
    spec: &'static str,
    my_asn: &'static str,
    peer_asn: &'static str,
    peer_address: &'static str,
    peer_port: &'static str,
    source_address: &'static str,
    hold_time: &'static str,
    keepalive_time: &'static str,
    router_id: &'static str,
    node_selectors: &'static str,
    match_expressions: &'static str,
    bfd_profile: &'static str,
    ebgp_multihop: &'static str,
    addresses: &'static str,
    aggregation_length: &'static str,
    aggregation_length_v6: &'static str,
    local_pref: &'static str,
    receive_interval: &'static str,
    transmit_interval: &'static str,
    echo_interval: &'static str,
    detect_multiplier: &'static str,
    minimum_ttl: &'static str,
}

const CM: Names = Names {
    sep: ": ",
    spec: "",
    my_asn: "my-asn",
    peer_asn: "peer-asn",
    peer_address: "peer-address",
    peer_port: "peer-port",
    source_address: "source-address",
    hold_time: "hold-time",
    keepalive_time: "keepalive-time",
    router_id: "router-id",
    node_selectors: "node-selectors",
    match_expressions: "match-expressions",
    bfd_profile: "bfd-profile",
    ebgp_multihop: "ebgp-multihop",
    addresses: "addresses",
    aggregation_length: "aggregation-length",
    aggregation_length_v6: "aggregation-length-v6",
    local_pref: "localpref",
    receive_interval: "receive-interval",
    transmit_interval: "transmit-interval",
    echo_interval: "echo-interval",
    detect_multiplier: "detect-multiplier",
    minimum_ttl: "minimum-ttl",
};

const CRD: Names = Names {
    sep: ".",
    spec: "spec.",
    my_asn: "myASN",
    peer_asn: "peerASN",
    peer_address: "peerAddress",
    peer_port: "peerPort",
    source_address: "sourceAddress",
    hold_time: "holdTime",
    keepalive_time: "keepaliveTime",
    router_id: "routerID",
    node_selectors: "nodeSelectors",
    match_expressions: "matchExpressions",
    bfd_profile: "bfdProfile",
    ebgp_multihop: "ebgpMultiHop",
    addresses: "addresses",
    aggregation_length: "aggregationLength",
    aggregation_length_v6: "aggregationLengthV6",
    local_pref: "localPref",
    receive_interval: "receiveInterval",
    transmit_interval: "transmitInterval",
    echo_interval: "echoInterval",
    detect_multiplier: "detectMultiplier",
    minimum_ttl: "minimumTtl",
};

/// `item: field`.
fn at(item: &str, field: &str) -> String {
    format!("{item}: {field}")
}

/// An ASN in 1..=4294967295.
fn asn(value: Option<i64>, item: &str, field: &str, errors: &mut ConfigErrors) -> u32 {
    match value {
        None => {
            errors.push(item, format!("missing {field}"));
            0
        }
        Some(v) => match u32::try_from(v) {
            Ok(n) if n > 0 => n,
            _ => {
                errors.push(at(item, &format!("{field} {v}")), "must be 1..=4294967295");
                0
            }
        },
    }
}

/// A number within `min..=max`, when given.
fn ranged(
    value: Option<i64>,
    min: i64,
    max: i64,
    path: impl FnOnce() -> String,
    errors: &mut ConfigErrors,
) -> Option<u32> {
    let v = value?;
    if v < min || v > max {
        errors.push(path(), format!("must be {min}..={max}"));
        return None;
    }
    u32::try_from(v).ok()
}

/// Hold and keepalive times (SPEC A2): hold 0 or >= 3 s (whole seconds, at
/// most 65535 s), keepalive <= hold and > 0 unless hold is 0.
fn timers(
    hold: Option<&str>,
    keepalive: Option<&str>,
    hold_from_keepalive: bool,
    item: &str,
    names: &Names,
    errors: &mut ConfigErrors,
) -> (Duration, Duration) {
    let hold_field = format!("{}{}", names.spec, names.hold_time);
    let ka_field = format!("{}{}", names.spec, names.keepalive_time);
    let parse = |text: &str, field: &str, errors: &mut ConfigErrors| match duration::parse(text) {
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(at(item, &format!("{field} {text:?}")), e);
            None
        }
    };
    let written_hold = hold.map(|h| (h, parse(h, &hold_field, errors)));
    let ka = keepalive.and_then(|k| parse(k, &ka_field, errors));
    let hold = match written_hold {
        Some((text, Some(d))) => {
            if d != Duration::ZERO && d < Duration::from_secs(3) {
                errors.push(
                    at(item, &format!("{hold_field} {text:?}")),
                    "must be 0 or at least 3s",
                );
            }
            if d > Duration::from_secs(u64::from(u16::MAX)) {
                errors.push(
                    at(item, &format!("{hold_field} {text:?}")),
                    "must be at most 65535s (18h12m15s)",
                );
            }
            // BGP carries whole seconds; MetalLB rounded down the same way.
            Duration::from_secs(d.as_secs())
        }
        Some((_, None)) => DEFAULT_HOLD_TIME,
        None => match ka {
            // CRD peers: MetalLB derives the hold time from a lone keepalive.
            Some(k) if hold_from_keepalive => Duration::from_secs((k * 3).as_secs()),
            _ => DEFAULT_HOLD_TIME,
        },
    };
    let keepalive = match (ka, keepalive) {
        (Some(k), Some(text)) => {
            if k > hold {
                errors.push(
                    at(item, &format!("{ka_field} {text:?}")),
                    format!("longer than the hold time {}", duration::format(hold)),
                );
            } else if k == Duration::ZERO && hold != Duration::ZERO {
                errors.push(
                    at(item, &format!("{ka_field} {text:?}")),
                    "must be more than 0 unless the hold time is 0",
                );
            }
            k
        }
        _ => hold / 3,
    };
    (hold, keepalive)
}

/// One selector of either source, as plain parts.
struct RawSelector<'a> {
    match_labels: BTreeMap<String, String>,
    /// (key, operator, values)
    expressions: Vec<(&'a str, &'a str, &'a [String])>,
}

impl<'a> RawSelector<'a> {
    fn from_configmap(s: &'a configmap::NodeSelector) -> Self {
        Self {
            match_labels: s.match_labels.clone(),
            expressions: s
                .match_expressions
                .iter()
                .map(|e| (e.key.as_str(), e.operator.as_str(), e.values.as_slice()))
                .collect(),
        }
    }

    fn from_kube(s: &'a KubeSelector) -> Self {
        Self {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            expressions: s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    (
                        e.key.as_str(),
                        e.operator.as_str(),
                        e.values.as_deref().unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }
}

/// A label selector: known operators, values exactly where they belong.
fn selector(
    raw: RawSelector<'_>,
    path: &str,
    names: &Names,
    errors: &mut ConfigErrors,
) -> LabelSelector {
    let mut out = LabelSelector {
        match_labels: raw.match_labels,
        match_expressions: Vec::new(),
    };
    for (key, _) in out.match_labels.iter().filter(|(k, _)| k.is_empty()) {
        errors.push(path, format!("empty label key {key:?}"));
    }
    for (j, (key, op, values)) in raw.expressions.into_iter().enumerate() {
        let here = format!(
            "{path}{}{}[{j}] {key:?}",
            names.sep, names.match_expressions
        );
        if key.is_empty() {
            errors.push(&here, "missing key");
        }
        let operator = match op {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                errors.push(
                    &here,
                    format!("unknown operator {other:?} (In, NotIn, Exists or DoesNotExist)"),
                );
                continue;
            }
        };
        match operator {
            SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() => {
                errors.push(&here, format!("operator {op} needs at least one value"));
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
                errors.push(&here, format!("operator {op} takes no values"));
            }
            _ => {}
        }
        out.match_expressions.push(LabelRequirement {
            key: key.to_string(),
            operator,
            values: values.to_vec(),
        });
    }
    out
}

/// A list of selectors at `item: field`.
fn selectors<'a>(
    raws: impl Iterator<Item = RawSelector<'a>>,
    item: &str,
    field: &str,
    names: &Names,
    errors: &mut ConfigErrors,
) -> Vec<LabelSelector> {
    raws.enumerate()
        .map(|(j, raw)| selector(raw, &at(item, &format!("{field}[{j}]")), names, errors))
        .collect()
}

/// Every block of a pool; bad entries are reported and left out.
fn blocks(
    addresses: &[String],
    item: &str,
    field: &str,
    errors: &mut ConfigErrors,
) -> (Vec<AddressBlock>, Vec<String>) {
    let mut blocks = Vec::with_capacity(addresses.len());
    let mut paths = Vec::with_capacity(addresses.len());
    if addresses.is_empty() {
        errors.push(
            item,
            format!("no {field}: a pool needs at least one CIDR or range"),
        );
    }
    for (j, text) in addresses.iter().enumerate() {
        let path = format!("{field}[{j}] {text:?}");
        match parse_block(text) {
            Ok(b) => {
                blocks.push(b);
                paths.push(path);
            }
            Err(e) => errors.push(at(item, &path), e),
        }
    }
    (blocks, paths)
}

/// The parts of a peer common to both sources.
struct PeerInput<'a> {
    name: String,
    my_asn: Option<i64>,
    peer_asn: Option<i64>,
    address: Option<&'a str>,
    port: Option<i64>,
    source: Option<&'a str>,
    hold: Option<&'a str>,
    keepalive: Option<&'a str>,
    hold_from_keepalive: bool,
    router_id: Option<&'a str>,
    node_selectors: Vec<LabelSelector>,
    password: Option<PeerPassword>,
    bfd_profile: Option<&'a str>,
    ebgp_multihop: bool,
    graceful_restart: bool,
}

fn peer(
    input: PeerInput<'_>,
    item: &str,
    names: &Names,
    errors: &mut ConfigErrors,
) -> Option<Peer> {
    let before = errors.len();
    let f = |name: &str| format!("{}{name}", names.spec);
    let my_asn = asn(input.my_asn, item, &f(names.my_asn), errors);
    let peer_asn = asn(input.peer_asn, item, &f(names.peer_asn), errors);
    let address = match input.address {
        None | Some("") => {
            errors.push(item, format!("missing {}", f(names.peer_address)));
            None
        }
        Some(a) => a
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| {
                errors.push(
                    at(item, &format!("{} {a:?}", f(names.peer_address))),
                    "not an IP address",
                );
            })
            .ok(),
    };
    let port = match input.port {
        None | Some(0) => DEFAULT_PEER_PORT,
        Some(p) => u16::try_from(p).unwrap_or_else(|_| {
            errors.push(
                at(item, &format!("{} {p}", f(names.peer_port))),
                "must be 1..=65535",
            );
            DEFAULT_PEER_PORT
        }),
    };
    let source_address = match input.source {
        None | Some("") => None,
        Some(s) => match s.trim().parse::<IpAddr>() {
            Ok(ip) => {
                if address.is_some_and(|a| IpFamily::of(a) != IpFamily::of(ip)) {
                    errors.push(
                        at(item, &format!("{} {s:?}", f(names.source_address))),
                        format!("not of the family of {}", f(names.peer_address)),
                    );
                }
                Some(ip)
            }
            Err(_) => {
                errors.push(
                    at(item, &format!("{} {s:?}", f(names.source_address))),
                    "not an IP address",
                );
                None
            }
        },
    };
    let (hold_time, keepalive_time) = timers(
        input.hold.filter(|h| !h.is_empty()),
        input.keepalive.filter(|k| !k.is_empty()),
        input.hold_from_keepalive,
        item,
        names,
        errors,
    );
    let router_id = match input.router_id {
        None | Some("") => None,
        Some(r) => match r.trim().parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                errors.push(
                    at(item, &format!("{} {r:?}", f(names.router_id))),
                    "not an IPv4 address",
                );
                None
            }
        },
    };
    if input.ebgp_multihop && my_asn != 0 && my_asn == peer_asn {
        errors.push(
            at(item, &f(names.ebgp_multihop)),
            format!(
                "not allowed for an iBGP peer ({} equals {})",
                f(names.my_asn),
                f(names.peer_asn)
            ),
        );
    }
    let address = address?;
    (errors.len() == before).then(|| Peer {
        name: input.name,
        my_asn,
        peer_asn,
        address,
        port,
        source_address,
        hold_time,
        keepalive_time,
        router_id,
        node_selectors: input.node_selectors,
        password: input.password,
        ebgp_multihop: input.ebgp_multihop,
        graceful_restart: input.graceful_restart,
        bfd_profile: input
            .bfd_profile
            .filter(|b| !b.is_empty())
            .map(str::to_string),
    })
}

/// BFD profile ranges; `raw` holds the fields of either source.
fn bfd_profile(
    name: String,
    raw: &configmap::BfdProfile,
    item: &str,
    names: &Names,
    errors: &mut ConfigErrors,
) -> BfdProfile {
    let f = |field: &'static str, v: Option<i64>| {
        move || {
            at(
                item,
                &format!("{}{field} {}", names.spec, v.unwrap_or_default()),
            )
        }
    };
    let (receive, transmit, echo) = (
        raw.receive_interval,
        raw.transmit_interval,
        raw.echo_interval,
    );
    let (multiplier, ttl) = (raw.detect_multiplier, raw.minimum_ttl);
    let (echo_mode, passive_mode) = (
        raw.echo_mode.unwrap_or(false),
        raw.passive_mode.unwrap_or(false),
    );
    BfdProfile {
        name,
        receive_interval_ms: ranged(
            receive,
            10,
            60_000,
            f(names.receive_interval, receive),
            errors,
        ),
        transmit_interval_ms: ranged(
            transmit,
            10,
            60_000,
            f(names.transmit_interval, transmit),
            errors,
        ),
        echo_interval_ms: ranged(echo, 10, 60_000, f(names.echo_interval, echo), errors),
        detect_multiplier: ranged(
            multiplier,
            2,
            255,
            f(names.detect_multiplier, multiplier),
            errors,
        ),
        echo_mode,
        passive_mode,
        minimum_ttl: ranged(ttl, 1, 254, f(names.minimum_ttl, ttl), errors),
    }
}

/// Aggregation lengths and local preference of a BGP advertisement.
fn aggregation(
    v4: Option<i64>,
    v6: Option<i64>,
    item: &str,
    names: &Names,
    errors: &mut ConfigErrors,
) -> (u8, u8) {
    let one = |v: Option<i64>, max: u8, field: &str, errors: &mut ConfigErrors| match v {
        None => max,
        Some(n) => u8::try_from(n)
            .ok()
            .filter(|n| *n <= max)
            .unwrap_or_else(|| {
                errors.push(
                    at(item, &format!("{}{field} {n}", names.spec)),
                    format!("must be 0..={max}"),
                );
                max
            }),
    };
    (
        one(v4, 32, names.aggregation_length, errors),
        one(v6, 128, names.aggregation_length_v6, errors),
    )
}

/// `name`: a required, non-empty name.
fn required_name(name: Option<&str>, item: &str, errors: &mut ConfigErrors) -> Option<String> {
    match name.map(str::trim) {
        Some(n) if !n.is_empty() => Some(n.to_string()),
        _ => {
            errors.push(item, "missing name");
            None
        }
    }
}

/// `kind[i] "name"` or `kind[i]`.
fn item_path(list: &str, i: usize, name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("{list}[{i}] {n:?}"),
        _ => format!("{list}[{i}]"),
    }
}

/// Name of the `index`-th ConfigMap peer, also used for its BGPPeer by `convert`.
pub fn configmap_peer_name(index: usize) -> String {
    format!("peer{index}")
}

/// Name of a ConfigMap pool's `index`-th BGP advertisement (also for `convert`).
pub fn configmap_bgp_advertisement_name(pool: &str, index: usize) -> String {
    format!("{pool}-{index}")
}

/// Check the ConfigMap item by item.
pub(crate) fn configmap(file: &ConfigFile) -> (Draft, ConfigErrors) {
    let mut d = Draft::default();
    let mut errors = ConfigErrors::new();
    let names = &CM;

    for (i, b) in file.bfd_profiles.iter().enumerate() {
        let item = item_path("bfd-profiles", i, b.name.as_deref());
        let Some(name) = required_name(b.name.as_deref(), &item, &mut errors) else {
            continue;
        };
        let profile = bfd_profile(name, b, &item, names, &mut errors);
        d.bfd_profiles.push(Located {
            value: profile,
            path: item,
        });
    }

    for (alias, value) in &file.bgp_communities {
        let item = format!("bgp-communities {alias:?}");
        if alias.trim().is_empty() {
            errors.push(&item, "empty alias");
            continue;
        }
        match parse_community(value) {
            Ok(c) => d.communities.push(Located {
                value: (alias.clone(), c),
                path: item,
            }),
            Err(e) => errors.push(item, e),
        }
    }

    for (i, p) in file.peers.iter().enumerate() {
        let item = item_path("peers", i, p.peer_address.as_deref());
        let node_selectors = selectors(
            p.node_selectors.iter().map(RawSelector::from_configmap),
            &item,
            names.node_selectors,
            names,
            &mut errors,
        );
        let input = PeerInput {
            name: configmap_peer_name(i),
            my_asn: p.my_asn,
            peer_asn: p.peer_asn,
            address: p.peer_address.as_deref(),
            port: p.peer_port,
            source: p.source_address.as_deref(),
            hold: p.hold_time.as_deref(),
            keepalive: p.keepalive_time.as_deref(),
            hold_from_keepalive: false,
            router_id: p.router_id.as_deref(),
            node_selectors,
            password: p
                .password
                .clone()
                .filter(|s| !s.is_empty())
                .map(PeerPassword::Plain),
            bfd_profile: p.bfd_profile.as_deref(),
            ebgp_multihop: p.ebgp_multihop.unwrap_or(false),
            graceful_restart: p.graceful_restart.unwrap_or(false),
        };
        if let Some(peer) = peer(input, &item, names, &mut errors) {
            d.peers.push(DraftPeer {
                peer,
                path: item,
                bfd_field: names.bfd_profile,
            });
        }
    }

    for (i, p) in file.address_pools.iter().enumerate() {
        let item = item_path("address-pools", i, p.name.as_deref());
        let name = required_name(p.name.as_deref(), &item, &mut errors);
        let (blocks, block_paths) = blocks(&p.addresses, &item, names.addresses, &mut errors);
        let protocol = p.protocol.as_deref().map(str::trim);
        match protocol {
            None | Some("") => errors.push(&item, "missing protocol (layer2 or bgp)"),
            Some("layer2") => {
                if !p.bgp_advertisements.is_empty() {
                    errors.push(
                        at(&item, "bgp-advertisements"),
                        "not allowed on a layer2 pool",
                    );
                }
            }
            Some("bgp") => {}
            Some(other) => errors.push(
                at(&item, &format!("protocol {other:?}")),
                "unknown protocol (layer2 or bgp)",
            ),
        }
        let Some(name) = name else { continue };
        match protocol {
            Some("layer2") => d.l2.push(DraftL2 {
                adv: L2Advertisement {
                    name: name.clone(),
                    pools: Vec::new(),
                    node_selectors: Vec::new(),
                    interfaces: Vec::new(),
                    external_ips: p.announce_external_ips.unwrap_or(false),
                },
                path: item.clone(),
                selection: Selection::Pool(i),
            }),
            Some("bgp") => configmap_bgp_advertisements(p, i, &name, &item, &mut d, &mut errors),
            _ => {}
        }
        d.pools.push(DraftPool {
            pool: Pool {
                name,
                blocks,
                auto_assign: p.auto_assign.unwrap_or(true),
                avoid_buggy_ips: p.avoid_buggy_ips.unwrap_or(false),
                allocation: None,
                origin: Origin::ConfigMap { index: i },
            },
            path: item,
            block_paths,
            labels: None,
        });
    }
    (d, errors)
}

/// The BGP advertisements of a ConfigMap `bgp` pool (one default when none).
fn configmap_bgp_advertisements(
    p: &configmap::AddressPool,
    index: usize,
    pool: &str,
    item: &str,
    d: &mut Draft,
    errors: &mut ConfigErrors,
) {
    let names = &CM;
    if p.bgp_advertisements.is_empty() {
        d.bgp.push(DraftBgp {
            adv: BgpAdvertisement {
                name: configmap_bgp_advertisement_name(pool, 0),
                pools: Vec::new(),
                aggregation_length: 32,
                aggregation_length_v6: 128,
                local_pref: None,
                communities: Vec::new(),
                node_selectors: Vec::new(),
                peers: Vec::new(),
                external_ips: p.announce_external_ips.unwrap_or(false),
            },
            path: at(item, "default BGP advertisement"),
            selection: Selection::Pool(index),
            communities: Vec::new(),
            aggregation_fields: (names.aggregation_length, names.aggregation_length_v6),
        });
        return;
    }
    for (j, a) in p.bgp_advertisements.iter().enumerate() {
        let adv_item = at(item, &format!("bgp-advertisements[{j}]"));
        if let Some(k) = p.bgp_advertisements[..j].iter().position(|b| b == a) {
            errors.push(&adv_item, format!("duplicate of bgp-advertisements[{k}]"));
        }
        let (v4, v6) = aggregation(
            a.aggregation_length,
            a.aggregation_length_v6,
            &adv_item,
            names,
            errors,
        );
        let local_pref = a.local_pref.and_then(|lp| {
            u32::try_from(lp)
                .map_err(|_| {
                    errors.push(
                        at(&adv_item, &format!("{} {lp}", names.local_pref)),
                        "must be 0..=4294967295",
                    );
                })
                .ok()
        });
        let communities = communities_field(&a.communities, &adv_item, "communities", errors);
        d.bgp.push(DraftBgp {
            adv: BgpAdvertisement {
                name: configmap_bgp_advertisement_name(pool, j),
                pools: Vec::new(),
                aggregation_length: v4,
                aggregation_length_v6: v6,
                local_pref,
                communities: Vec::new(),
                node_selectors: Vec::new(),
                peers: Vec::new(),
                external_ips: p.announce_external_ips.unwrap_or(false),
            },
            path: adv_item,
            selection: Selection::Pool(index),
            communities,
            aggregation_fields: (names.aggregation_length, names.aggregation_length_v6),
        });
    }
}

/// Communities as written with their field paths; a repeated entry is an error.
fn communities_field(
    list: &[String],
    item: &str,
    field: &str,
    errors: &mut ConfigErrors,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(list.len());
    for (k, c) in list.iter().enumerate() {
        let path = format!("{field}[{k}] {c:?}");
        if list[..k].contains(c) {
            errors.push(at(item, &path), "duplicate community");
            continue;
        }
        out.push((c.trim().to_string(), path));
    }
    out
}

/// Name and namespace of an object, or an error when it has no name.
fn object(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    errors: &mut ConfigErrors,
) -> (String, Option<String>) {
    let path = crd::object_path(kind, meta);
    let name = meta.name.clone().filter(|n| !n.is_empty());
    if name.is_none() {
        errors.push(&path, "missing metadata.name");
    }
    (path, name)
}

/// Check the custom resources item by item.
pub(crate) fn resources(res: &Resources) -> (Draft, ConfigErrors) {
    let mut d = Draft::default();
    let mut errors = ConfigErrors::new();
    let names = &CRD;

    for b in &res.bfd_profiles {
        let (item, name) = object("BFDProfile", &b.metadata, &mut errors);
        let s = &b.spec;
        let wide = |v: Option<u32>| v.map(i64::from);
        let raw = configmap::BfdProfile {
            name: name.clone(),
            receive_interval: wide(s.receive_interval),
            transmit_interval: wide(s.transmit_interval),
            detect_multiplier: wide(s.detect_multiplier),
            echo_interval: wide(s.echo_interval),
            echo_mode: s.echo_mode,
            passive_mode: s.passive_mode,
            minimum_ttl: wide(s.minimum_ttl),
        };
        let profile = bfd_profile(
            name.clone().unwrap_or_default(),
            &raw,
            &item,
            names,
            &mut errors,
        );
        if name.is_some() {
            d.bfd_profiles.push(Located {
                value: profile,
                path: item,
            });
        }
    }

    for c in &res.communities {
        let (item, _) = object("Community", &c.metadata, &mut errors);
        for (k, alias) in c.spec.communities.iter().enumerate() {
            let here = at(&item, &format!("spec.communities[{k}] {:?}", alias.name));
            if alias.name.trim().is_empty() {
                errors.push(&here, "missing name");
                continue;
            }
            match parse_community(&alias.value) {
                Ok(v) => d.communities.push(Located {
                    value: (alias.name.trim().to_string(), v),
                    path: here,
                }),
                Err(e) => errors.push(at(&here, "value"), e),
            }
        }
    }

    for p in &res.bgp_peers {
        let (item, name) = object("BGPPeer", &p.metadata, &mut errors);
        let s = &p.spec;
        let node_selectors = selectors(
            s.node_selectors.iter().map(RawSelector::from_kube),
            &item,
            "spec.nodeSelectors",
            names,
            &mut errors,
        );
        let password = match (&s.password, &s.password_secret) {
            (Some(pw), Some(_)) if !pw.is_empty() => {
                errors.push(
                    at(&item, "spec.passwordSecret"),
                    "not allowed together with spec.password",
                );
                None
            }
            (Some(pw), _) if !pw.is_empty() => Some(PeerPassword::Plain(pw.clone())),
            (_, Some(secret)) => match secret.name.as_deref().filter(|n| !n.is_empty()) {
                Some(secret_name) => Some(PeerPassword::Secret {
                    namespace: secret
                        .namespace
                        .clone()
                        .or_else(|| p.metadata.namespace.clone())
                        .unwrap_or_else(|| crd::DEFAULT_NAMESPACE.to_string()),
                    name: secret_name.to_string(),
                }),
                None => {
                    errors.push(at(&item, "spec.passwordSecret"), "missing name");
                    None
                }
            },
            _ => None,
        };
        let input = PeerInput {
            name: name.clone().unwrap_or_default(),
            my_asn: Some(i64::from(s.my_asn)),
            peer_asn: Some(i64::from(s.peer_asn)),
            address: Some(s.peer_address.as_str()),
            port: s.peer_port.map(i64::from),
            source: s.source_address.as_deref(),
            hold: s.hold_time.as_deref(),
            keepalive: s.keepalive_time.as_deref(),
            hold_from_keepalive: true,
            router_id: s.router_id.as_deref(),
            node_selectors,
            password,
            bfd_profile: s.bfd_profile.as_deref(),
            ebgp_multihop: s.ebgp_multi_hop.unwrap_or(false),
            graceful_restart: s.enable_graceful_restart.unwrap_or(false),
        };
        if let (Some(peer), Some(_)) = (peer(input, &item, names, &mut errors), name) {
            d.peers.push(DraftPeer {
                peer,
                path: item,
                bfd_field: "spec.bfdProfile",
            });
        }
    }

    for p in &res.ip_address_pools {
        let (item, name) = object("IPAddressPool", &p.metadata, &mut errors);
        let s = &p.spec;
        let (blocks, block_paths) = blocks(&s.addresses, &item, "spec.addresses", &mut errors);
        let allocation = s.service_allocation.as_ref().map(|a| {
            let priority = match a.priority {
                None => 0,
                Some(v) => u32::try_from(v).unwrap_or_else(|_| {
                    errors.push(
                        at(&item, &format!("spec.serviceAllocation.priority {v}")),
                        "must be 0..=4294967295",
                    );
                    0
                }),
            };
            for (k, ns) in a.namespaces.iter().enumerate() {
                if a.namespaces[..k].contains(ns) {
                    errors.push(
                        at(
                            &item,
                            &format!("spec.serviceAllocation.namespaces[{k}] {ns:?}"),
                        ),
                        "duplicate namespace",
                    );
                }
            }
            ServiceAllocation {
                priority,
                namespaces: a.namespaces.clone(),
                namespace_selectors: selectors(
                    a.namespace_selectors.iter().map(RawSelector::from_kube),
                    &item,
                    "spec.serviceAllocation.namespaceSelectors",
                    names,
                    &mut errors,
                ),
                service_selectors: selectors(
                    a.service_selectors.iter().map(RawSelector::from_kube),
                    &item,
                    "spec.serviceAllocation.serviceSelectors",
                    names,
                    &mut errors,
                ),
            }
        });
        let Some(name) = name else { continue };
        d.pools.push(DraftPool {
            pool: Pool {
                name,
                blocks,
                auto_assign: s.auto_assign.unwrap_or(true),
                avoid_buggy_ips: s.avoid_buggy_ips.unwrap_or(false),
                allocation,
                origin: Origin::Crd {
                    namespace: p
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| crd::DEFAULT_NAMESPACE.to_string()),
                },
            },
            path: item,
            block_paths,
            labels: Some(p.metadata.labels.clone().unwrap_or_default()),
        });
    }

    for a in &res.l2_advertisements {
        let (item, name) = object("L2Advertisement", &a.metadata, &mut errors);
        let s = &a.spec;
        let pool_selectors = selectors(
            s.ip_address_pool_selectors
                .iter()
                .map(RawSelector::from_kube),
            &item,
            "spec.ipAddressPoolSelectors",
            names,
            &mut errors,
        );
        let node_selectors = selectors(
            s.node_selectors.iter().map(RawSelector::from_kube),
            &item,
            "spec.nodeSelectors",
            names,
            &mut errors,
        );
        for (k, i) in s.interfaces.iter().enumerate() {
            if i.trim().is_empty() {
                errors.push(
                    at(&item, &format!("spec.interfaces[{k}]")),
                    "empty interface name",
                );
            }
        }
        let Some(name) = name else { continue };
        d.l2.push(DraftL2 {
            adv: L2Advertisement {
                name,
                pools: Vec::new(),
                node_selectors,
                interfaces: s.interfaces.clone(),
                external_ips: s.announce_external_ips.unwrap_or(false),
            },
            path: item,
            selection: Selection::Crd {
                names: s.ip_address_pools.clone(),
                selectors: pool_selectors,
            },
        });
    }

    for a in &res.bgp_advertisements {
        let (item, name) = object("BGPAdvertisement", &a.metadata, &mut errors);
        let s = &a.spec;
        let (v4, v6) = aggregation(
            s.aggregation_length.map(i64::from),
            s.aggregation_length_v6.map(i64::from),
            &item,
            names,
            &mut errors,
        );
        let pool_selectors = selectors(
            s.ip_address_pool_selectors
                .iter()
                .map(RawSelector::from_kube),
            &item,
            "spec.ipAddressPoolSelectors",
            names,
            &mut errors,
        );
        let node_selectors = selectors(
            s.node_selectors.iter().map(RawSelector::from_kube),
            &item,
            "spec.nodeSelectors",
            names,
            &mut errors,
        );
        let communities = communities_field(&s.communities, &item, "spec.communities", &mut errors);
        let Some(name) = name else { continue };
        d.bgp.push(DraftBgp {
            adv: BgpAdvertisement {
                name,
                pools: Vec::new(),
                aggregation_length: v4,
                aggregation_length_v6: v6,
                local_pref: s.local_pref,
                communities: Vec::new(),
                node_selectors,
                peers: s.peers.clone(),
                external_ips: s.announce_external_ips.unwrap_or(false),
            },
            path: item,
            selection: Selection::Crd {
                names: s.ip_address_pools.clone(),
                selectors: pool_selectors,
            },
            communities,
            aggregation_fields: ("spec.aggregationLength", "spec.aggregationLengthV6"),
        });
    }
    (d, errors)
}
