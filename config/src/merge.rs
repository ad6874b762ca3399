//! Merging the checked ConfigMap and CRD sources into one [`Config`], with
//! the rules that span items: unique names across both sources, no overlap
//! between any two address blocks, advertisement-to-pool selection,
//! aggregation lengths against the selected pools, community aliases, BFD
//! profile references and duplicate peers.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::ConfigErrors;
use crate::model::{
    AddressBlock, BfdProfile, BgpAdvertisement, Community, Config, IpFamily, L2Advertisement,
    LabelSelector, Origin, Peer, Pool,
};
use crate::overlap;
use crate::validate;

/// A pool as checked, with where each part was written.
#[derive(Debug, Clone)]
pub(crate) struct DraftPool {
    /// The pool (blocks filled in).
    pub pool: Pool,
    /// Item path, e.g. `address-pools[1] "prod"`.
    pub path: String,
    /// Field path of each block, e.g. `addresses[0] "10.0.0.0/24"`.
    pub block_paths: Vec<String>,
    /// Labels of the IPAddressPool object (`None` for ConfigMap pools).
    pub labels: Option<BTreeMap<String, String>>,
}

/// How an advertisement chooses its pools.
#[derive(Debug, Clone)]
pub(crate) enum Selection {
    /// Exactly the ConfigMap pool `address-pools[i]` (its own
    /// advertisements): by index, so that a second pool of the same name
    /// is never taken for it.
    Pool(usize),
    /// By names (any pool) and by labels (IPAddressPool objects); both
    /// empty = every IPAddressPool object.
    Crd {
        names: Vec<String>,
        selectors: Vec<LabelSelector>,
    },
}

/// An L2 advertisement before its pools are resolved.
#[derive(Debug, Clone)]
pub(crate) struct DraftL2 {
    pub adv: L2Advertisement,
    pub path: String,
    pub selection: Selection,
}

/// A BGP advertisement before its pools and communities are resolved.
#[derive(Debug, Clone)]
pub(crate) struct DraftBgp {
    pub adv: BgpAdvertisement,
    pub path: String,
    pub selection: Selection,
    /// Communities as written, each with its field path.
    pub communities: Vec<(String, String)>,
    /// Field names of the two aggregation lengths, for messages.
    pub aggregation_fields: (&'static str, &'static str),
}

/// Any other item with the path it was written at.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub value: T,
    pub path: String,
}

/// A peer and the field path of its BFD profile reference.
#[derive(Debug, Clone)]
pub(crate) struct DraftPeer {
    pub peer: Peer,
    pub path: String,
    pub bfd_field: &'static str,
}

/// One source (the ConfigMap or the CRDs), checked item by item.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    pub pools: Vec<DraftPool>,
    pub l2: Vec<DraftL2>,
    pub bgp: Vec<DraftBgp>,
    pub peers: Vec<DraftPeer>,
    pub bfd_profiles: Vec<Located<BfdProfile>>,
    /// Community aliases: (alias, value).
    pub communities: Vec<Located<(String, Community)>>,
}

impl Draft {
    /// Append every item of `other`.
    pub fn extend(&mut self, other: Draft) {
        self.pools.extend(other.pools);
        self.l2.extend(other.l2);
        self.bgp.extend(other.bgp);
        self.peers.extend(other.peers);
        self.bfd_profiles.extend(other.bfd_profiles);
        self.communities.extend(other.communities);
    }
}

/// Report a second use of a name; `kind` words the message.
fn unique_names<'a>(
    items: impl Iterator<Item = (&'a str, &'a str)>,
    kind: &str,
    errors: &mut ConfigErrors,
) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (name, path) in items {
        if let Some(first) = seen.get(name) {
            errors.push(
                path,
                format!("{kind} name {name:?} is already used by {first}"),
            );
        } else {
            seen.insert(name, path);
        }
    }
}

/// Merge the sources (ConfigMap first) into one model, or every error found.
pub(crate) fn merge(draft: Draft, mut errors: ConfigErrors) -> Result<Config, ConfigErrors> {
    let Draft {
        mut pools,
        l2,
        bgp,
        peers,
        bfd_profiles,
        communities,
    } = draft;

    unique_names(
        pools
            .iter()
            .map(|p| (p.pool.name.as_str(), p.path.as_str())),
        "pool",
        &mut errors,
    );
    check_overlaps(&pools, &mut errors);

    // Allocation order: explicit priority, then ConfigMap file order, then CRD name.
    pools.sort_by(|a, b| order_key(&a.pool).cmp(&order_key(&b.pool)));

    let mut aliases = BTreeMap::new();
    let mut alias_paths: HashMap<String, String> = HashMap::new();
    for c in &communities {
        let (alias, value) = &c.value;
        if let Some(first) = alias_paths.get(alias) {
            errors.push(
                &c.path,
                format!("community alias {alias:?} is already defined by {first}"),
            );
        } else {
            alias_paths.insert(alias.clone(), c.path.clone());
            aliases.insert(alias.clone(), *value);
        }
    }

    unique_names(
        bfd_profiles
            .iter()
            .map(|b| (b.value.name.as_str(), b.path.as_str())),
        "BFD profile",
        &mut errors,
    );
    let bfd_names: HashSet<&str> = bfd_profiles.iter().map(|b| b.value.name.as_str()).collect();

    unique_names(
        peers
            .iter()
            .map(|p| (p.peer.name.as_str(), p.path.as_str())),
        "peer",
        &mut errors,
    );
    check_peers(&peers, &bfd_names, &mut errors);

    // Position (in allocation order) of each ConfigMap pool by its index.
    let pool_index: HashMap<usize, usize> = pools
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p.pool.origin {
            Origin::ConfigMap { index } => Some((index, i)),
            Origin::Crd { .. } => None,
        })
        .collect();

    unique_names(
        l2.iter().map(|a| (a.adv.name.as_str(), a.path.as_str())),
        "L2 advertisement",
        &mut errors,
    );
    let l2_advertisements: Vec<L2Advertisement> = l2
        .into_iter()
        .map(|d| {
            let mut adv = d.adv;
            adv.pools = select(&d.selection, &pools, &pool_index)
                .into_iter()
                .map(|i| pools[i].pool.name.clone())
                .collect();
            adv
        })
        .collect();

    unique_names(
        bgp.iter().map(|a| (a.adv.name.as_str(), a.path.as_str())),
        "BGP advertisement",
        &mut errors,
    );
    let mut bgp_advertisements = Vec::with_capacity(bgp.len());
    for d in bgp {
        let selected = select(&d.selection, &pools, &pool_index);
        for &i in &selected {
            check_aggregation(&d, &pools[i], &mut errors);
        }
        let mut adv = d.adv;
        adv.pools = selected
            .iter()
            .map(|&i| pools[i].pool.name.clone())
            .collect();
        for (raw, path) in &d.communities {
            match resolve_community(raw, &aliases) {
                Ok(c) => adv.communities.push(c),
                Err(message) => errors.push(format!("{}: {path}", d.path), message),
            }
        }
        bgp_advertisements.push(adv);
    }

    let config = Config {
        pools: pools.into_iter().map(|p| p.pool).collect(),
        l2_advertisements,
        bgp_advertisements,
        peers: peers.into_iter().map(|p| p.peer).collect(),
        bfd_profiles: bfd_profiles.into_iter().map(|b| b.value).collect(),
        communities: aliases,
    };
    errors.into_result(config)
}

/// Sort key of the allocation order.
fn order_key(pool: &Pool) -> (u32, usize, usize, &str) {
    match pool.origin {
        Origin::ConfigMap { index } => (pool.priority(), 0, index, ""),
        Origin::Crd { .. } => (pool.priority(), 1, 0, pool.name.as_str()),
    }
}

/// Every pair of overlapping blocks, within a pool or across pools.
fn check_overlaps(pools: &[DraftPool], errors: &mut ConfigErrors) {
    let mut owners = Vec::new();
    let mut blocks: Vec<AddressBlock> = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for (b, block) in pool.pool.blocks.iter().enumerate() {
            owners.push((p, b));
            blocks.push(*block);
        }
    }
    let mut found = overlap::overlaps(&blocks);
    // Report in the order the offending blocks were written.
    found.sort_unstable();
    for (later, earlier) in found {
        let (lp, lb) = owners[later];
        let (ep, eb) = owners[earlier];
        errors.push(
            format!("{}: {}", pools[lp].path, pools[lp].block_paths[lb]),
            format!("overlaps {} {}", pools[ep].path, pools[ep].block_paths[eb]),
        );
    }
}

/// Indices (in allocation order) of the pools an advertisement selects.
fn select(selection: &Selection, pools: &[DraftPool], index: &HashMap<usize, usize>) -> Vec<usize> {
    match selection {
        Selection::Pool(i) => index.get(i).copied().into_iter().collect(),
        Selection::Crd { names, selectors } => {
            let all = names.is_empty() && selectors.is_empty();
            (0..pools.len())
                .filter(|&i| {
                    let p = &pools[i];
                    match &p.labels {
                        // Unknown names are ignored, as MetalLB does: objects
                        // arrive in any order.
                        None => names.contains(&p.pool.name),
                        Some(labels) => {
                            all || names.contains(&p.pool.name)
                                || selectors.iter().any(|s| s.matches(labels))
                        }
                    }
                })
                .collect()
        }
    }
}

/// An aggregation length may not be shorter than the prefix of a block it
/// aggregates (for a range, the shortest prefix of its CIDR cover, as MetalLB).
fn check_aggregation(adv: &DraftBgp, pool: &DraftPool, errors: &mut ConfigErrors) {
    for (block, block_path) in pool.pool.blocks.iter().zip(&pool.block_paths) {
        let (length, field) = match block.family() {
            IpFamily::V4 => (adv.adv.aggregation_length, adv.aggregation_fields.0),
            IpFamily::V6 => (adv.adv.aggregation_length_v6, adv.aggregation_fields.1),
        };
        let shortest = block.shortest_prefix_len();
        if length < shortest {
            errors.push(
                format!("{}: {field} {length}", adv.path),
                format!(
                    "shorter than the prefix length {shortest} of {} {block_path}",
                    pool.path
                ),
            );
        }
    }
}

/// A community alias or literal.
fn resolve_community(
    raw: &str,
    aliases: &BTreeMap<String, Community>,
) -> Result<Community, String> {
    if let Some(c) = aliases.get(raw) {
        return Ok(*c);
    }
    validate::parse_community(raw).map_err(|e| format!("{e}, and no alias of that name is defined"))
}

/// BFD profile references and duplicate peers.
fn check_peers(peers: &[DraftPeer], bfd_names: &HashSet<&str>, errors: &mut ConfigErrors) {
    let mut seen: HashMap<Peer, &str> = HashMap::new();
    for d in peers {
        if let Some(profile) = &d.peer.bfd_profile
            && !bfd_names.contains(profile.as_str())
        {
            errors.push(
                format!("{}: {} {profile:?}", d.path, d.bfd_field),
                "no BFD profile of that name",
            );
        }
        // Identical apart from the name: the same session twice.
        let key = Peer {
            name: String::new(),
            ..d.peer.clone()
        };
        if let Some(first) = seen.get(&key) {
            errors.push(&d.path, format!("duplicate of peer {first}"));
        } else {
            seen.insert(key, d.path.as_str());
        }
    }
}
