//! ConfigMap -> `metallb.io/v1beta1` objects, behaviour preserved.
//!
//! | ConfigMap | objects |
//! |---|---|
//! | `address-pools[i]` | IPAddressPool `<name>`; with more than one pool, `serviceAllocation.priority: i+1` keeps the file order as allocation order |
//! | `protocol: layer2` | L2Advertisement `<pool>` selecting the pool |
//! | `protocol: bgp` | BGPAdvertisement `<pool>-<j>` per `bgp-advertisements[j]` (or one `<pool>-0`) |
//! | `peers[i]` | BGPPeer `peer<i>` |
//! | `bgp-communities` | Community `communities` |
//! | `bfd-profiles[i]` | BFDProfile `<name>` |
//!
//! [`equivalent`] defines what "the same configuration" means for the result.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as KubeSelector, LabelSelectorRequirement, ObjectMeta,
};
use serde::Serialize;

use crate::configmap::{self, ConfigMapSource};
use crate::crd::{self, Resources};
use crate::error::ConfigErrors;
use crate::model::{Config, Origin};
use crate::validate;

/// Name of the Community object holding the ConfigMap's `bgp-communities`.
pub const COMMUNITY_OBJECT_NAME: &str = "communities";

/// The objects equivalent to a ConfigMap, in `namespace` (default
/// `metallb-system`), after validating it.
pub fn to_resources(source: &ConfigMapSource) -> Result<Resources, ConfigErrors> {
    let file = &source.config;
    let mut errors = validate_only(file).err().unwrap_or_default();
    let namespace = source
        .namespace
        .clone()
        .unwrap_or_else(|| crd::DEFAULT_NAMESPACE.to_string());
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.clone()),
        ..ObjectMeta::default()
    };
    // Names that become object names must be valid Kubernetes names.
    for (i, p) in file.address_pools.iter().enumerate() {
        if let Some(name) = &p.name
            && !is_object_name(name)
        {
            let mut suggestion = suggest_object_name(name);
            if file
                .address_pools
                .iter()
                .any(|q| q.name.as_deref() == Some(suggestion.as_str()))
            {
                suggestion = format!("{suggestion}-{i}");
            }
            errors.push(
                format!("address-pools[{i}] {name:?}"),
                format!(
                    "cannot become an IPAddressPool name (lowercase letters, digits, '-' and '.', at most 253 characters): rename it, e.g. `ferrolb convert --rename '{name}={suggestion}'`"
                ),
            );
        }
    }
    for (i, b) in file.bfd_profiles.iter().enumerate() {
        if let Some(name) = &b.name
            && !is_object_name(name)
        {
            errors.push(
                format!("bfd-profiles[{i}] {name:?}"),
                "cannot become a BFDProfile name (lowercase letters, digits, '-' and '.', at most 253 characters)",
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut out = Resources::default();
    let ordered = file.address_pools.len() > 1;
    for (i, p) in file.address_pools.iter().enumerate() {
        let name = p.name.clone().unwrap_or_default();
        let spec = crd::IpAddressPoolSpec {
            addresses: p.addresses.iter().map(|a| a.trim().to_string()).collect(),
            auto_assign: p.auto_assign,
            avoid_buggy_ips: p.avoid_buggy_ips,
            service_allocation: ordered.then(|| crd::ServiceAllocation {
                priority: i64::try_from(i + 1).ok(),
                ..crd::ServiceAllocation::default()
            }),
        };
        out.ip_address_pools.push(crd::IpAddressPool {
            metadata: meta(&name),
            spec,
        });
        match p.protocol.as_deref().map(str::trim) {
            Some("layer2") => out.l2_advertisements.push(crd::L2Advertisement {
                metadata: meta(&name),
                spec: crd::L2AdvertisementSpec {
                    ip_address_pools: vec![name.clone()],
                    announce_external_ips: p.announce_external_ips,
                    ..crd::L2AdvertisementSpec::default()
                },
            }),
            Some("bgp") => {
                let default = [configmap::BgpAdvertisement::default()];
                let advs = if p.bgp_advertisements.is_empty() {
                    &default[..]
                } else {
                    &p.bgp_advertisements[..]
                };
                for (j, a) in advs.iter().enumerate() {
                    out.bgp_advertisements.push(crd::BgpAdvertisement {
                        metadata: meta(&validate::configmap_bgp_advertisement_name(&name, j)),
                        spec: crd::BgpAdvertisementSpec {
                            aggregation_length: a
                                .aggregation_length
                                .and_then(|v| i32::try_from(v).ok()),
                            aggregation_length_v6: a
                                .aggregation_length_v6
                                .and_then(|v| i32::try_from(v).ok()),
                            local_pref: a.local_pref.and_then(|v| u32::try_from(v).ok()),
                            communities: a
                                .communities
                                .iter()
                                .map(|c| c.trim().to_string())
                                .collect(),
                            ip_address_pools: vec![name.clone()],
                            announce_external_ips: p.announce_external_ips,
                            ..crd::BgpAdvertisementSpec::default()
                        },
                    });
                }
            }
            _ => {}
        }
    }

    for (i, p) in file.peers.iter().enumerate() {
        let given = |s: &Option<String>| {
            s.as_ref()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let hold_time = given(&p.hold_time).or_else(|| {
            // A CRD derives a missing hold time from the keepalive; the
            // ConfigMap's default is 90s, so write it out.
            given(&p.keepalive_time).map(|_| crate::duration::format(validate::DEFAULT_HOLD_TIME))
        });
        out.bgp_peers.push(crd::BgpPeer {
            metadata: meta(&validate::configmap_peer_name(i)),
            spec: crd::BgpPeerSpec {
                my_asn: p
                    .my_asn
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or_default(),
                peer_asn: p
                    .peer_asn
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or_default(),
                peer_address: p
                    .peer_address
                    .clone()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                peer_port: p
                    .peer_port
                    .and_then(|v| u16::try_from(v).ok())
                    .filter(|v| *v != 0),
                source_address: given(&p.source_address),
                hold_time,
                keepalive_time: given(&p.keepalive_time),
                router_id: given(&p.router_id),
                node_selectors: p.node_selectors.iter().map(selector).collect(),
                password: p.password.clone().filter(|s| !s.is_empty()),
                password_secret: None,
                bfd_profile: given(&p.bfd_profile),
                ebgp_multi_hop: p.ebgp_multihop,
                enable_graceful_restart: p.graceful_restart,
            },
        });
    }

    if !file.bgp_communities.is_empty() {
        out.communities.push(crd::Community {
            metadata: meta(COMMUNITY_OBJECT_NAME),
            spec: crd::CommunitySpec {
                communities: file
                    .bgp_communities
                    .iter()
                    .map(|(name, value)| crd::CommunityAlias {
                        name: name.clone(),
                        value: value.trim().to_string(),
                    })
                    .collect(),
            },
        });
    }

    for b in &file.bfd_profiles {
        let narrow = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        out.bfd_profiles.push(crd::BfdProfile {
            metadata: meta(b.name.as_deref().unwrap_or_default().trim()),
            spec: crd::BfdProfileSpec {
                receive_interval: narrow(b.receive_interval),
                transmit_interval: narrow(b.transmit_interval),
                detect_multiplier: narrow(b.detect_multiplier),
                echo_interval: narrow(b.echo_interval),
                echo_mode: b.echo_mode,
                passive_mode: b.passive_mode,
                minimum_ttl: narrow(b.minimum_ttl),
            },
        });
    }
    Ok(out)
}

/// Validation of the ConfigMap alone.
fn validate_only(file: &configmap::ConfigFile) -> Result<(), ConfigErrors> {
    let (draft, errors) = validate::configmap(file);
    crate::merge::merge(draft, errors).map(|_| ())
}

/// A ConfigMap node selector as a Kubernetes LabelSelector.
fn selector(s: &configmap::NodeSelector) -> KubeSelector {
    KubeSelector {
        match_labels: (!s.match_labels.is_empty()).then(|| s.match_labels.clone()),
        match_expressions: (!s.match_expressions.is_empty()).then(|| {
            s.match_expressions
                .iter()
                .map(|e| LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: (!e.values.is_empty()).then(|| e.values.clone()),
                })
                .collect()
        }),
    }
}

/// Whether `name` is a valid object name (a DNS-1123 subdomain).
pub fn is_object_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.starts_with(ok_char)
        && name.ends_with(ok_char)
        && name.chars().all(|c| ok_char(c) || c == '-' || c == '.')
}

/// The objects as multi-document YAML, in the order pools, L2
/// advertisements, BGP advertisements, peers, communities, BFD profiles.
pub fn to_yaml(
    resources: &Resources,
    header: &str,
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::from(header);
    fn docs<T: Serialize>(
        out: &mut String,
        items: &[T],
    ) -> Result<(), serde_saphyr::SerializeError> {
        for item in items {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(item)?);
        }
        Ok(())
    }
    docs(&mut out, &resources.ip_address_pools)?;
    docs(&mut out, &resources.l2_advertisements)?;
    docs(&mut out, &resources.bgp_advertisements)?;
    docs(&mut out, &resources.bgp_peers)?;
    docs(&mut out, &resources.communities)?;
    docs(&mut out, &resources.bfd_profiles)?;
    Ok(out)
}

/// Convert YAML text holding exactly one ConfigMap (manifest or bare
/// `config` text) and nothing else to CRD YAML, validating it first.
pub fn convert(text: &str) -> Result<String, ConfigErrors> {
    convert_renaming(text, &[])
}

/// [`convert`], renaming ConfigMap pools first: each `(old, new)` gives
/// pool `old` (and the advertisements named after it) the name `new`, for
/// pool names that cannot be object names.
///
/// Errors: the input holds nothing; it holds only metallb.io objects
/// (nothing to convert); it holds both a ConfigMap and objects; a rename
/// names no pool or gives an invalid name; and every validation error.
pub fn convert_renaming(text: &str, renames: &[(String, String)]) -> Result<String, ConfigErrors> {
    let docs = crate::documents::read(text);
    if !docs.errors.is_empty() {
        return Err(docs.errors);
    }
    if docs.is_empty() {
        return Err(crate::ConfigError::new("", NOTHING_FOUND).into());
    }
    let Some(mut source) = docs.configmap else {
        return Err(crate::ConfigError::new(
            "",
            "no ConfigMap to convert: the input holds only metallb.io/v1beta1 objects, which are CRDs already (check them with `ferrolb validate`)",
        )
        .into());
    };
    if !docs.resources.is_empty() {
        return Err(crate::ConfigError::new(
            "",
            "convert reads a ConfigMap only, but the input also holds metallb.io objects",
        )
        .into());
    }
    rename_pools(&mut source.config, renames)?;
    let resources = to_resources(&source)?;
    let header = format!(
        "# metallb.io/v1beta1 objects equivalent to ConfigMap {}/{}, written by `ferrolb convert`.\n",
        source
            .namespace
            .as_deref()
            .unwrap_or(crd::DEFAULT_NAMESPACE),
        source.name.as_deref().unwrap_or("config"),
    );
    to_yaml(&resources, &header)
        .map_err(|e| crate::ConfigError::new("", format!("cannot write YAML: {e}")).into())
}

/// The message for an input without any document.
pub const NOTHING_FOUND: &str = "no configuration found";

/// Apply `--rename OLD=NEW` to the ConfigMap's pools.
fn rename_pools(
    file: &mut configmap::ConfigFile,
    renames: &[(String, String)],
) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::new();
    for (old, new) in renames {
        let here = format!("--rename {old}={new}");
        if !is_object_name(new) {
            errors.push(
                here,
                format!(
                    "{new:?} is not a valid object name (lowercase letters, digits, '-' and '.', at most 253 characters); for example {:?}",
                    suggest_object_name(new)
                ),
            );
            continue;
        }
        let mut found = false;
        for p in &mut file.address_pools {
            if p.name.as_deref().map(str::trim) == Some(old.as_str()) {
                p.name = Some(new.clone());
                found = true;
            }
        }
        if !found {
            errors.push(here, format!("no address pool is named {old:?}"));
        }
    }
    errors.into_result(())
}

/// A valid object name (DNS-1123 subdomain) close to `name`: lowercased,
/// every other character replaced by `-`, runs of `-` and `.` collapsed,
/// trimmed to start and end alphanumeric, at most 253 characters; `pool`
/// when nothing of `name` is left.
pub fn suggest_object_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' {
            c
        } else {
            '-'
        };
        let last = out.chars().last();
        if (c == '-' || c == '.') && matches!(last, None | Some('-') | Some('.')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(253);
    let trimmed = out.trim_end_matches(['-', '.']);
    if trimmed.is_empty() {
        "pool".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Whether two configurations behave the same: equal in everything but
/// where they were written (`Pool::origin`) and a `serviceAllocation` that
/// only carries a priority (the priority only orders the pools, and the
/// order of `Config::pools` is compared as is).
pub fn equivalent(a: &Config, b: &Config) -> bool {
    normalized(a) == normalized(b)
}

fn normalized(c: &Config) -> Config {
    let mut c = c.clone();
    for p in &mut c.pools {
        p.origin = Origin::Crd {
            namespace: String::new(),
        };
        if p.allocation.as_ref().is_some_and(|a| {
            a.namespaces.is_empty()
                && a.namespace_selectors.is_empty()
                && a.service_selectors.is_empty()
        }) {
            p.allocation = None;
        }
    }
    c
}
