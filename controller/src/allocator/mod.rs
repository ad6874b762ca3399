//! The allocator: which IPs each Service gets (SPEC A5), pure and without a
//! Kubernetes client, so the controller and `ferrolb plan` share one code path.
//!
//! State: per block a [`FreeSet`] of free addresses, per pool and family the
//! blocks that still have one, per pool, family and sharing key the addresses
//! held under that key, and per IP its holders. Every operation costs
//! O(log n) in the number of addresses in use, never a scan from the start of
//! a block.

mod error;
mod free_set;
mod sharing;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod rule_tests;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use ferrolb_config::model::{AddressCount, Config, IpFamily, ip_to_u128, u128_to_ip};

pub use error::{AllocError, ConfigRefused, OrphanedIp, PoolSkip};
use free_set::FreeSet;
pub use sharing::{SharingConflict, SharingProfile};

use crate::service::{FamilyRequest, ServiceKey, ServiceRequest, family_name, order_by_family};

/// The IPs a Service holds and the pool they come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The IPs, primary family first (the order written to the status).
    pub ips: Vec<IpAddr>,
    /// The pool of the IPs.
    pub pool: String,
}

/// Labels of a namespace, for pools' namespace selectors.
pub type NamespaceLabels = BTreeMap<String, String>;

/// Index of a family in per-family arrays.
fn fi(family: IpFamily) -> usize {
    match family {
        IpFamily::V4 => 0,
        IpFamily::V6 => 1,
    }
}

fn other(family: IpFamily) -> IpFamily {
    match family {
        IpFamily::V4 => IpFamily::V6,
        IpFamily::V6 => IpFamily::V4,
    }
}

/// Position of an address in a pool's allocation order: block (file order), address.
type Slot = (usize, u128);

#[derive(Debug, Clone)]
struct PoolState {
    /// Free addresses per block, in the pool's block order.
    blocks: Vec<FreeSet>,
    /// Per family, the blocks that still have a free address.
    open: [BTreeSet<usize>; 2],
    /// Per family and sharing key, the pool's addresses held under that key.
    shared: [HashMap<String, BTreeSet<Slot>>; 2],
    /// Whether the pool has blocks of each family.
    has: [bool; 2],
    /// Addresses that may be handed out.
    total: AddressCount,
    /// Distinct addresses held.
    in_use: u128,
}

#[derive(Debug, Clone)]
struct IpState {
    pool: usize,
    block: usize,
    /// The sharing key of its holders (all holders of a shared IP have the same).
    key: Option<String>,
    holders: Vec<ServiceKey>,
}

#[derive(Debug, Clone)]
struct Holding {
    ips: Vec<IpAddr>,
    profile: SharingProfile,
}

/// The allocation state for one config; see the module documentation.
#[derive(Debug, Clone)]
pub struct Allocator {
    config: Config,
    pools: Vec<PoolState>,
    by_name: HashMap<String, usize>,
    /// Per family: block start -> (block end, pool, block).
    index: [BTreeMap<u128, (u128, usize, usize)>; 2],
    ips: HashMap<IpAddr, IpState>,
    services: HashMap<ServiceKey, Holding>,
}

impl Allocator {
    /// An allocator with nothing assigned. Relies on the config's invariant
    /// that no two address blocks overlap.
    pub fn new(config: &Config) -> Self {
        let mut index: [BTreeMap<u128, (u128, usize, usize)>; 2] = Default::default();
        let mut pools = Vec::with_capacity(config.pools.len());
        let mut by_name = HashMap::new();
        for (p, pool) in config.pools.iter().enumerate() {
            by_name.insert(pool.name.clone(), p);
            let mut state = PoolState {
                blocks: Vec::with_capacity(pool.blocks.len()),
                open: Default::default(),
                shared: Default::default(),
                has: [false; 2],
                total: AddressCount::ZERO,
                in_use: 0,
            };
            for (b, block) in pool.blocks.iter().enumerate() {
                let family = block.family();
                let free = FreeSet::new(block, pool.avoid_buggy_ips);
                if !free.is_empty() {
                    state.open[fi(family)].insert(b);
                }
                state.has[fi(family)] = true;
                state.total = state
                    .total
                    .add(FreeSet::usable(block, pool.avoid_buggy_ips));
                state.blocks.push(free);
                index[fi(family)].insert(block.first_u128(), (block.last_u128(), p, b));
            }
            pools.push(state);
        }
        Self {
            config: config.clone(),
            pools,
            by_name,
            index,
            ips: HashMap::new(),
            services: HashMap::new(),
        }
    }

    /// Start-up (SPEC A5 rule 7): an allocator for `config` holding the IPs
    /// already in the Services' status, registered in the order given, before
    /// anything is allocated. Refused when a status IP lies outside every
    /// pool; otherwise also returns the Services whose status IPs could not
    /// be kept (they get fresh addresses at their next [`Allocator::assign`]).
    pub fn rebuild(
        config: &Config,
        services: &[ServiceRequest],
    ) -> Result<(Self, Vec<(ServiceKey, AllocError)>), ConfigRefused> {
        let mut allocator = Self::new(config);
        allocator.reserve(services.len());
        let mut orphaned: Vec<OrphanedIp> = services
            .iter()
            .flat_map(|s| s.current.iter().map(move |ip| (s, *ip)))
            .filter(|(_, ip)| allocator.locate(*ip).is_none())
            .map(|(s, ip)| OrphanedIp {
                service: s.key.clone(),
                ip,
            })
            .collect();
        if !orphaned.is_empty() {
            orphaned.sort();
            orphaned.dedup();
            return Err(ConfigRefused { orphaned });
        }
        let mut failed = Vec::new();
        for service in services {
            if let Err(e) = allocator.restore(service) {
                failed.push((service.key.clone(), e));
            }
        }
        Ok((allocator, failed))
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Gives the Service its IPs (SPEC A5): what it holds (or, if it holds
    /// nothing here, what its status shows) while still valid (rule 7), else
    /// the requested IPs (rule 1), else the next address of the pool asked
    /// for (rule 2), else of the first automatic pool that can serve it
    /// (rule 3). On failure the Service holds nothing.
    pub fn assign(
        &mut self,
        request: &ServiceRequest,
        namespace_labels: &NamespaceLabels,
    ) -> Result<Assignment, AllocError> {
        let profile = SharingProfile::of(request);
        let held = self.untake(&request.key).map(|h| h.ips).unwrap_or_default();
        let status = if request.current == held {
            &[][..]
        } else {
            &request.current[..]
        };
        for ips in [&held[..], status] {
            if ips.is_empty() {
                continue;
            }
            if let Ok(ips) = self.keepable(ips, request, &profile, true) {
                return Ok(self.take(&request.key, ips, profile));
            }
        }
        let ips = self.choose(request, namespace_labels, &profile)?;
        Ok(self.take(&request.key, ips, profile))
    }

    /// Registers the IPs in a Service's status if still valid (in one pool,
    /// matching its annotations and families, not conflicting); never
    /// allocates a new address. `Ok(None)` when the status has no IP. A
    /// Service that already holds IPs here keeps them.
    pub fn restore(&mut self, request: &ServiceRequest) -> Result<Option<Assignment>, AllocError> {
        if let Some(assignment) = self.assignment(&request.key) {
            return Ok(Some(assignment));
        }
        if request.current.is_empty() {
            return Ok(None);
        }
        let profile = SharingProfile::of(request);
        let ips = self.keepable(&request.current, request, &profile, false)?;
        Ok(Some(self.take(&request.key, ips, profile)))
    }

    /// Frees what the Service holds; returns it.
    pub fn release(&mut self, key: &ServiceKey) -> Option<Assignment> {
        let pool = self.assignment(key).map(|a| a.pool)?;
        let held = self.untake(key)?;
        Some(Assignment {
            ips: held.ips,
            pool,
        })
    }

    /// Switches to a new config, keeping every assignment (SPEC A5 rule 8).
    /// Refused, with the old config still in force, when an assigned IP
    /// would lie outside every pool. Assignments that no longer match their
    /// Service's request under the new config are fixed by the next
    /// [`Allocator::assign`] of that Service.
    pub fn set_config(&mut self, config: Config) -> Result<(), ConfigRefused> {
        let mut next = Self::new(&config);
        next.reserve(self.services.len());
        let mut keys: Vec<&ServiceKey> = self.services.keys().collect();
        keys.sort();
        let mut orphaned = Vec::new();
        for key in &keys {
            if let Some(h) = self.services.get(*key) {
                for ip in &h.ips {
                    if next.locate(*ip).is_none() {
                        orphaned.push(OrphanedIp {
                            service: (*key).clone(),
                            ip: *ip,
                        });
                    }
                }
            }
        }
        orphaned.sort();
        if !orphaned.is_empty() {
            return Err(ConfigRefused { orphaned });
        }
        for key in keys {
            if let Some(h) = self.services.get(key) {
                next.take(key, h.ips.clone(), h.profile.clone());
            }
        }
        *self = next;
        Ok(())
    }

    /// What the Service holds.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Assignment> {
        let held = self.services.get(key)?;
        let pool = held
            .ips
            .first()
            .and_then(|ip| self.ips.get(ip))
            .and_then(|s| self.config.pools.get(s.pool))
            .map(|p| p.name.clone())?;
        Some(Assignment {
            ips: held.ips.clone(),
            pool,
        })
    }

    /// Every Service holding IPs, with its assignment, sorted by Service.
    pub fn assignments(&self) -> Vec<(ServiceKey, Assignment)> {
        let mut all: Vec<_> = self
            .services
            .keys()
            .filter_map(|k| Some((k.clone(), self.assignment(k)?)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The Services holding an IP, in the order they got it.
    pub fn holders(&self, ip: IpAddr) -> &[ServiceKey] {
        self.ips.get(&ip).map_or(&[], |s| s.holders.as_slice())
    }

    /// The pool whose blocks contain `ip`.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        let (p, _, _) = self.locate(ip)?;
        self.config.pools.get(p).map(|p| p.name.as_str())
    }

    /// Addresses of the pool that may be handed out (`.0`/`.255` excluded
    /// under avoid-buggy-ips), exact for any size.
    pub fn addresses_total(&self, pool: &str) -> Option<AddressCount> {
        Some(self.pools.get(*self.by_name.get(pool)?)?.total)
    }

    /// Distinct addresses of the pool held by Services.
    pub fn addresses_in_use(&self, pool: &str) -> Option<AddressCount> {
        let state = self.pools.get(*self.by_name.get(pool)?)?;
        Some(AddressCount::from_u128(state.in_use))
    }

    /// Room for twice `services` Services (and their IPs) before the maps
    /// grow: growing rehashes a whole map, a pause best taken up front.
    fn reserve(&mut self, services: usize) {
        let room = services.saturating_mul(2);
        self.services.reserve(room);
        self.ips.reserve(room);
    }

    /// Pool, block and integer value of an address.
    fn locate(&self, ip: IpAddr) -> Option<(usize, usize, u128)> {
        let n = ip_to_u128(ip);
        let (_, &(last, p, b)) = self.index[fi(IpFamily::of(ip))].range(..=n).next_back()?;
        (n <= last).then_some((p, b, n))
    }

    /// Whether a Service with `profile` may hold `ip` next to its holders.
    fn check_sharing(&self, ip: IpAddr, profile: &SharingProfile) -> Result<(), AllocError> {
        let Some(state) = self.ips.get(&ip) else {
            return Ok(());
        };
        for holder in &state.holders {
            if let Some(h) = self.services.get(holder) {
                profile
                    .check(&h.profile)
                    .map_err(|reason| AllocError::InUse {
                        ip,
                        holders: state.holders.clone(),
                        reason,
                    })?;
            }
        }
        Ok(())
    }

    fn admits(
        &self,
        p: usize,
        request: &ServiceRequest,
        namespace_labels: &NamespaceLabels,
    ) -> bool {
        self.config.pools.get(p).is_some_and(|pool| {
            pool.allocation
                .as_ref()
                .is_none_or(|a| a.admits(&request.key.namespace, namespace_labels, &request.labels))
        })
    }

    fn pool_name(&self, p: usize) -> String {
        self.config
            .pools
            .get(p)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    /// Whether pool `p` is the one the `address-pool` annotation asks for (if any).
    fn pool_matches(&self, p: usize, request: &ServiceRequest) -> bool {
        request.pool.as_ref().is_none_or(|name| {
            self.config
                .pools
                .get(p)
                .is_some_and(|pool| pool.name == *name)
        })
    }

    /// The families to allocate from pool `p` (primary first), or the family it lacks (rule 5).
    fn families_for(
        &self,
        p: usize,
        families: FamilyRequest,
    ) -> Result<&'static [IpFamily], IpFamily> {
        let has = |f: IpFamily| self.pools.get(p).is_some_and(|s| s.has[fi(f)]);
        let one = |f: IpFamily| match f {
            IpFamily::V4 => &[IpFamily::V4][..],
            IpFamily::V6 => &[IpFamily::V6][..],
        };
        let both = |primary: IpFamily| match primary {
            IpFamily::V4 => &[IpFamily::V4, IpFamily::V6][..],
            IpFamily::V6 => &[IpFamily::V6, IpFamily::V4][..],
        };
        match families {
            FamilyRequest::Single(f) if has(f) => Ok(one(f)),
            FamilyRequest::Single(f) => Err(f),
            FamilyRequest::RequireDual { primary } => match (has(primary), has(other(primary))) {
                (true, true) => Ok(both(primary)),
                (false, _) => Err(primary),
                (true, false) => Err(other(primary)),
            },
            FamilyRequest::PreferDual { primary } => match (has(primary), has(other(primary))) {
                (true, true) => Ok(both(primary)),
                (true, false) => Ok(one(primary)),
                (false, true) => Ok(one(other(primary))),
                (false, false) => Err(primary),
            },
        }
    }

    /// The lowest address of pool `p` and `family` that is free or shareable
    /// with `profile` (rules 4 and 6).
    fn lowest_candidate(
        &self,
        p: usize,
        family: IpFamily,
        profile: &SharingProfile,
    ) -> Option<IpAddr> {
        let pool = self.pools.get(p)?;
        let free: Option<Slot> = pool.open[fi(family)]
            .first()
            .and_then(|&b| Some((b, pool.blocks.get(b)?.lowest()?)));
        let shared = profile
            .key
            .as_ref()
            .and_then(|key| pool.shared[fi(family)].get(key))
            .into_iter()
            .flatten()
            .take_while(|slot| free.is_none_or(|f| **slot < f))
            // A grandfathered .0/.255 is kept by its holders but never handed out again.
            .filter(|&&(b, n)| pool.blocks.get(b).is_some_and(|f| f.is_usable(n)))
            .filter_map(|&(_, n)| u128_to_ip(family, n))
            .find(|ip| self.check_sharing(*ip, profile).is_ok());
        shared.or_else(|| free.and_then(|(_, n)| u128_to_ip(family, n)))
    }

    /// One address per family from pool `p`, all or nothing.
    fn allocate_in(
        &self,
        p: usize,
        families: &[IpFamily],
        profile: &SharingProfile,
    ) -> Option<Vec<IpAddr>> {
        families
            .iter()
            .map(|f| self.lowest_candidate(p, *f, profile))
            .collect()
    }

    /// Whether `ips` (held or in the status) may stay with the Service; with
    /// `grow`, adds the families it now also wants from the same pool.
    fn keepable(
        &self,
        ips: &[IpAddr],
        request: &ServiceRequest,
        profile: &SharingProfile,
        grow: bool,
    ) -> Result<Vec<IpAddr>, AllocError> {
        // Duplicates (an IP listed twice) and extra IPs of one family are dropped.
        let mut kept: Vec<IpAddr> = Vec::with_capacity(2);
        for ip in ips {
            if !kept.iter().any(|o| IpFamily::of(*o) == IpFamily::of(*ip)) {
                kept.push(*ip);
            }
        }
        let Some(&first) = kept.first() else {
            return Err(AllocError::Mismatch {
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                why: "no IP to keep".into(),
            });
        };
        let annotation_mismatch = |ip: IpAddr, p: usize| AllocError::Mismatch {
            ip,
            why: format!(
                "the address-pool annotation asks for pool {:?}, the IP is in pool {:?}",
                request.pool.as_deref().unwrap_or_default(),
                self.pool_name(p)
            ),
        };
        let mut wanted: &[IpFamily] = &[];
        let p;
        if request.requested.is_empty() {
            // The pool of the first IP that lies in a pool matching the
            // annotation; IPs elsewhere are dropped (and their family re-added
            // from that pool below), so one moved block moves one IP only.
            p = kept
                .iter()
                .find_map(|ip| {
                    let (p, _, _) = self.locate(*ip)?;
                    self.pool_matches(p, request).then_some(p)
                })
                .ok_or_else(|| match self.locate(first) {
                    Some((p, _, _)) => annotation_mismatch(first, p),
                    None => AllocError::NotInAnyPool(first),
                })?;
            kept.retain(|ip| self.locate(*ip).is_some_and(|(q, _, _)| q == p));
            wanted = self.families_for(p, request.families).map_err(|missing| {
                AllocError::PoolLacksFamily {
                    pool: self.pool_name(p),
                    families: request.families,
                    missing,
                }
            })?;
            // A family the Service no longer wants is dropped, the rest stays.
            let unwanted = kept
                .iter()
                .find(|ip| !wanted.contains(&IpFamily::of(**ip)))
                .copied();
            kept.retain(|ip| wanted.contains(&IpFamily::of(*ip)));
            if let (Some(ip), true) = (unwanted, kept.is_empty()) {
                return Err(AllocError::Mismatch {
                    ip,
                    why: format!(
                        "the Service ({}) wants no {} address",
                        request.families,
                        family_name(IpFamily::of(ip))
                    ),
                });
            }
        } else {
            // Exactly the requested IPs, in one pool, that of the annotation if any.
            if let Some(ip) = kept.iter().find(|ip| !request.requested.contains(ip)) {
                return Err(AllocError::Mismatch {
                    ip: *ip,
                    why: "not among the requested IPs".into(),
                });
            }
            if let Some(ip) = request.requested.iter().find(|ip| !kept.contains(ip)) {
                return Err(AllocError::Mismatch {
                    ip: *ip,
                    why: "requested but not held".into(),
                });
            }
            let (first_pool, _, _) = self.locate(first).ok_or(AllocError::NotInAnyPool(first))?;
            p = first_pool;
            for ip in &kept {
                let (q, _, _) = self.locate(*ip).ok_or(AllocError::NotInAnyPool(*ip))?;
                if q != p {
                    return Err(AllocError::SplitPools {
                        first,
                        first_pool: self.pool_name(p),
                        second: *ip,
                        second_pool: self.pool_name(q),
                    });
                }
            }
            if !self.pool_matches(p, request) {
                return Err(annotation_mismatch(first, p));
            }
        }
        for ip in &kept {
            self.check_sharing(*ip, profile)?;
        }
        if grow {
            for &family in wanted {
                if kept.iter().any(|ip| IpFamily::of(*ip) == family) {
                    continue;
                }
                match self.lowest_candidate(p, family, profile) {
                    Some(ip) => kept.push(ip),
                    // PreferDualStack keeps what it has; the others must move.
                    None if matches!(request.families, FamilyRequest::PreferDual { .. }) => {}
                    None => return Err(AllocError::PoolExhausted(self.pool_name(p))),
                }
            }
        }
        Ok(order_by_family(kept, request.families.primary()))
    }

    /// A fresh choice of IPs (rules 1 to 6).
    fn choose(
        &self,
        request: &ServiceRequest,
        namespace_labels: &NamespaceLabels,
        profile: &SharingProfile,
    ) -> Result<Vec<IpAddr>, AllocError> {
        let named = match &request.pool {
            Some(name) => Some(
                *self
                    .by_name
                    .get(name)
                    .ok_or_else(|| AllocError::UnknownPool(name.clone()))?,
            ),
            None => None,
        };
        let denied = |p: usize| AllocError::PoolDoesNotAdmit {
            pool: self.pool_name(p),
            service: request.key.clone(),
        };

        // Rule 1: exactly the requested IPs, in any pool.
        if !request.requested.is_empty() {
            let mut pool: Option<(usize, IpAddr)> = None;
            for &ip in &request.requested {
                let (p, b, n) = self.locate(ip).ok_or(AllocError::NotInAnyPool(ip))?;
                if let Some(q) = named
                    && q != p
                {
                    return Err(AllocError::NotInRequestedPool {
                        ip,
                        pool: self.pool_name(q),
                    });
                }
                match pool {
                    Some((q, first)) if q != p => {
                        return Err(AllocError::SplitPools {
                            first,
                            first_pool: self.pool_name(q),
                            second: ip,
                            second_pool: self.pool_name(p),
                        });
                    }
                    Some(_) => {}
                    None => pool = Some((p, ip)),
                }
                if !self.admits(p, request, namespace_labels) {
                    return Err(denied(p));
                }
                let usable = self
                    .pools
                    .get(p)
                    .and_then(|s| s.blocks.get(b))
                    .is_some_and(|f| f.is_usable(n));
                if !usable {
                    return Err(AllocError::BuggyIp {
                        ip,
                        pool: self.pool_name(p),
                    });
                }
                self.check_sharing(ip, profile)?;
            }
            return Ok(order_by_family(
                request.requested.clone(),
                request.families.primary(),
            ));
        }

        // Rule 2: the pool asked for, auto-assign or not.
        if let Some(p) = named {
            if !self.admits(p, request, namespace_labels) {
                return Err(denied(p));
            }
            let families = self.families_for(p, request.families).map_err(|missing| {
                AllocError::PoolLacksFamily {
                    pool: self.pool_name(p),
                    families: request.families,
                    missing,
                }
            })?;
            return self
                .allocate_in(p, families, profile)
                .ok_or_else(|| AllocError::PoolExhausted(self.pool_name(p)));
        }

        // Rule 3: the first automatic pool, in config order, that can serve it.
        for p in 0..self.config.pools.len() {
            if self.auto_skip(p, request, namespace_labels).is_some() {
                continue;
            }
            if let Ok(families) = self.families_for(p, request.families)
                && let Some(ips) = self.allocate_in(p, families, profile)
            {
                return Ok(ips);
            }
        }
        // Failed: say why for every pool (only now, to keep the success path lean).
        let mut skipped = Vec::new();
        let mut exhausted = Vec::new();
        for (p, pool) in self.config.pools.iter().enumerate() {
            match self.auto_skip(p, request, namespace_labels) {
                Some(why) => skipped.push((pool.name.clone(), why)),
                None => exhausted.push(pool.name.clone()),
            }
        }
        match exhausted.len() {
            0 => Err(AllocError::NoPool {
                families: request.families,
                reasons: skipped,
            }),
            1 => Err(AllocError::PoolExhausted(exhausted.remove(0))),
            _ => Err(AllocError::AllPoolsExhausted(exhausted)),
        }
    }

    /// Why pool `p` cannot serve the Service automatically, if it cannot.
    fn auto_skip(
        &self,
        p: usize,
        request: &ServiceRequest,
        namespace_labels: &NamespaceLabels,
    ) -> Option<PoolSkip> {
        if !self.config.pools.get(p)?.auto_assign {
            Some(PoolSkip::NoAutoAssign)
        } else if !self.admits(p, request, namespace_labels) {
            Some(PoolSkip::NotAdmitted)
        } else if self.families_for(p, request.families).is_err() {
            Some(PoolSkip::Family)
        } else {
            None
        }
    }

    /// Records that the Service holds `ips` (which must not be held by it yet).
    fn take(&mut self, key: &ServiceKey, ips: Vec<IpAddr>, profile: SharingProfile) -> Assignment {
        let mut pool_index = None;
        let mut located = Vec::with_capacity(ips.len());
        for ip in ips {
            let Some((p, b, n)) = self.locate(ip) else {
                continue;
            };
            pool_index.get_or_insert(p);
            located.push(ip);
            if let Some(state) = self.ips.get_mut(&ip) {
                state.holders.push(key.clone());
                continue;
            }
            if let Some(pool) = self.pools.get_mut(p) {
                let family = IpFamily::of(ip);
                if let Some(free) = pool.blocks.get_mut(b) {
                    free.take(n);
                    if free.is_empty() {
                        pool.open[fi(family)].remove(&b);
                    }
                }
                pool.in_use += 1;
                if let Some(k) = &profile.key {
                    pool.shared[fi(family)]
                        .entry(k.clone())
                        .or_default()
                        .insert((b, n));
                }
            }
            self.ips.insert(
                ip,
                IpState {
                    pool: p,
                    block: b,
                    key: profile.key.clone(),
                    holders: vec![key.clone()],
                },
            );
        }
        let assignment = Assignment {
            ips: located,
            pool: pool_index.map(|p| self.pool_name(p)).unwrap_or_default(),
        };
        self.services.insert(
            key.clone(),
            Holding {
                ips: assignment.ips.clone(),
                profile,
            },
        );
        assignment
    }

    /// Forgets what the Service holds, freeing addresses nobody else holds.
    fn untake(&mut self, key: &ServiceKey) -> Option<Holding> {
        let held = self.services.remove(key)?;
        for ip in &held.ips {
            let Some(state) = self.ips.get_mut(ip) else {
                continue;
            };
            state.holders.retain(|h| h != key);
            if !state.holders.is_empty() {
                continue;
            }
            let Some(state) = self.ips.remove(ip) else {
                continue;
            };
            let Some(pool) = self.pools.get_mut(state.pool) else {
                continue;
            };
            let family = IpFamily::of(*ip);
            let n = ip_to_u128(*ip);
            if let Some(free) = pool.blocks.get_mut(state.block) {
                free.give_back(n);
                if !free.is_empty() {
                    pool.open[fi(family)].insert(state.block);
                }
            }
            pool.in_use = pool.in_use.saturating_sub(1);
            if let Some(k) = &state.key
                && let Some(slots) = pool.shared[fi(family)].get_mut(k)
            {
                slots.remove(&(state.block, n));
                if slots.is_empty() {
                    pool.shared[fi(family)].remove(k);
                }
            }
        }
        Some(held)
    }
}
