//! MetalLB's legacy ConfigMap format (key `config` of ConfigMap `config`),
//! read strictly: an unknown key anywhere is an error.
//!
//! These types are the file as written; [`crate::validate`] checks them and
//! [`crate::merge`] turns them into the model.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{ConfigError, ConfigErrors};

/// The whole `config` text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// BGP routers to peer with.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub peers: Vec<Peer>,
    /// Community aliases: name -> `AA:NN` (or `large:A:B:C`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub bgp_communities: BTreeMap<String, String>,
    /// Address pools.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub address_pools: Vec<AddressPool>,
    /// BFD profiles.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub bfd_profiles: Vec<BfdProfile>,
}

/// One entry of `peers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Peer {
    /// Our AS number (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub my_asn: Option<i64>,
    /// The router's AS number (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<i64>,
    /// The router's address (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// The router's port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<i64>,
    /// Local address to connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// Proposed hold time (default `90s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval (default hold time / 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// BGP identifier (an IPv4 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Nodes that peer (OR of selectors; absent = all nodes).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub node_selectors: Vec<NodeSelector>,
    /// TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Name of a BFD profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// Allow an eBGP peer more than one hop away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebgp_multihop: Option<bool>,
    /// Graceful restart (RFC 4724; ferrolb's own key, `BGPPeer.spec.enableGracefulRestart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<bool>,
}

/// A node selector of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeSelector {
    /// Exact label matches.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<MatchExpression>,
}

/// One `match-expressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchExpression {
    /// Label key.
    #[serde(default)]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[serde(default)]
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

/// One entry of `address-pools`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AddressPool {
    /// Unique name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `layer2` or `bgp` (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// CIDRs and ranges.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub addresses: Vec<String>,
    /// Whether Services may get addresses without asking for the pool (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Skip IPv4 addresses ending in `.0` and `.255` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avoid_buggy_ips: Option<bool>,
    /// How a `bgp` pool is announced (absent = one default advertisement).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// ferrolb: its advertisements also announce the `spec.externalIPs`
    /// (inside the pool) of Services that ask for it (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_external_ips: Option<bool>,
}

/// One entry of a pool's `bgp-advertisements`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BgpAdvertisement {
    /// IPv4 aggregation prefix length (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<i64>,
    /// IPv6 aggregation prefix length (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length_v6: Option<i64>,
    /// LOCAL_PREF (MetalLB spells this key without a hyphen).
    #[serde(default, rename = "localpref", skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<i64>,
    /// Community aliases or literals.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub communities: Vec<String>,
}

/// One entry of `bfd-profiles`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BfdProfile {
    /// Unique name (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Minimum receive interval, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_interval: Option<i64>,
    /// Minimum transmit interval, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmit_interval: Option<i64>,
    /// Detect multiplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_multiplier: Option<i64>,
    /// Echo interval, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_interval: Option<i64>,
    /// Echo mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Passive mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Minimum TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ttl: Option<i64>,
}

/// A parsed ConfigMap: the config and, when a whole manifest was given, its
/// namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapSource {
    /// The `config` content.
    pub config: ConfigFile,
    /// `metadata.namespace` of the manifest, if one was given.
    pub namespace: Option<String>,
    /// `metadata.name` of the manifest, if one was given.
    pub name: Option<String>,
}

/// Treat an explicit YAML `null` like an absent key, as MetalLB did.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The YAML reader's options: strict about duplicate keys, one-line errors.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options
}

/// A YAML error as one line.
pub(crate) fn yaml_error(e: &serde_saphyr::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parse the text of key `config`.
pub fn parse_config(text: &str) -> Result<ConfigFile, ConfigErrors> {
    if is_blank(text) {
        return Ok(ConfigFile::default());
    }
    serde_saphyr::from_str_with_options::<ConfigFile>(text, yaml_options())
        .map_err(|e| ConfigError::new("config", yaml_error(&e)).into())
}

/// Parse either the text of key `config` or a whole ConfigMap manifest
/// (`kind: ConfigMap` with `data.config`).
pub fn parse(text: &str) -> Result<ConfigMapSource, ConfigErrors> {
    if is_blank(text) {
        return Ok(ConfigMapSource::default());
    }
    let value: serde_json::Value = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| ConfigErrors::from(ConfigError::new("", yaml_error(&e))))?;
    if value.get("kind").is_some() || value.get("apiVersion").is_some() {
        from_manifest(value)
    } else {
        Ok(ConfigMapSource {
            config: parse_config(text)?,
            ..ConfigMapSource::default()
        })
    }
}

/// The config of a ConfigMap manifest already read as a JSON value.
pub(crate) fn from_manifest(value: serde_json::Value) -> Result<ConfigMapSource, ConfigErrors> {
    from_manifest_at(value, None)
}

/// Where the text of `data.config` starts in the file: the file line of the
/// block's first line (1-based) and the block's indentation, so that
/// positions inside the block can be given in the file's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockStart {
    /// File line of the block's line 1.
    pub line: u64,
    /// Columns the block's indentation shifts its text by.
    pub indent: u64,
}

/// As [`from_manifest`]; YAML positions inside `data.config` are moved to
/// the file's lines and columns when `block` says where the block starts.
pub(crate) fn from_manifest_at(
    value: serde_json::Value,
    block: Option<BlockStart>,
) -> Result<ConfigMapSource, ConfigErrors> {
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    if kind != "ConfigMap" {
        return Err(
            ConfigError::new("", format!("expected a ConfigMap, found kind {kind:?}")).into(),
        );
    }
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(value).map_err(|e| ConfigError::new("ConfigMap", e.to_string()))?;
    let name = cm.metadata.name.clone().unwrap_or_default();
    let namespace = cm.metadata.namespace.clone();
    let path = match &namespace {
        Some(ns) => format!("ConfigMap {ns}/{name}"),
        None => format!("ConfigMap {name}"),
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get("config")) else {
        return Err(ConfigError::new(path, "no key `config` in data").into());
    };
    let config = parse_config(text).map_err(|e| {
        let e = match block {
            Some(b) => shift_positions(e, b),
            None => e,
        };
        e.within(&path)
    })?;
    Ok(ConfigMapSource {
        config,
        namespace,
        name: cm.metadata.name,
    })
}

/// Rewrite every `line L, column C` of the messages to file positions.
fn shift_positions(errors: ConfigErrors, block: BlockStart) -> ConfigErrors {
    ConfigErrors(
        errors
            .into_iter()
            .map(|e| ConfigError {
                message: shift_message(&e.message, block),
                ..e
            })
            .collect(),
    )
}

/// `... at line 2, column 3` -> `... at line 12, column 7`.
fn shift_message(message: &str, block: BlockStart) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let after = &after["line ".len()..];
        let line_len = after.bytes().take_while(u8::is_ascii_digit).count();
        let tail = &after[line_len..];
        let parsed = after[..line_len].parse::<u64>().ok().and_then(|line| {
            let tail = tail.strip_prefix(", column ")?;
            let col_len = tail.bytes().take_while(u8::is_ascii_digit).count();
            let column = tail[..col_len].parse::<u64>().ok()?;
            Some((line, column, &tail[col_len..]))
        });
        match parsed {
            Some((line, column, tail)) => {
                out.push_str(&format!(
                    "line {}, column {}",
                    line + block.line - 1,
                    column + block.indent
                ));
                rest = tail;
            }
            None => {
                out.push_str("line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether the text holds no YAML content (only blanks and comments).
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    })
}
