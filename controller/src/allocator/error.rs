//! Why a Service gets no IP, and why a config is refused; the messages are
//! the text of `AllocationFailed` events and of the stale-config log.

use std::fmt;
use std::net::IpAddr;

use ferrolb_config::model::IpFamily;

use super::sharing::SharingConflict;
use crate::service::{FamilyRequest, ServiceKey, family_name};

/// Why an allocation (or keeping an IP) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The `address-pool` annotation names no pool.
    #[error("unknown pool {0:?}")]
    UnknownPool(String),
    /// A requested (or previously held) IP lies outside every pool.
    #[error("{0} is not in any pool")]
    NotInAnyPool(IpAddr),
    /// A requested IP is outside the pool named by the `address-pool` annotation.
    #[error("{ip} is not in pool {pool:?} asked for by the address-pool annotation")]
    NotInRequestedPool {
        /// The IP.
        ip: IpAddr,
        /// The pool asked for.
        pool: String,
    },
    /// The requested IPs lie in different pools.
    #[error(
        "{first} (pool {first_pool:?}) and {second} (pool {second_pool:?}) are in different pools"
    )]
    SplitPools {
        /// One IP.
        first: IpAddr,
        /// Its pool.
        first_pool: String,
        /// The other IP.
        second: IpAddr,
        /// Its pool.
        second_pool: String,
    },
    /// A requested IP ends in .0 or .255 in a pool that avoids those.
    #[error("{ip} ends in .0 or .255 and pool {pool:?} has avoid-buggy-ips")]
    BuggyIp {
        /// The IP.
        ip: IpAddr,
        /// Its pool.
        pool: String,
    },
    /// The IP is held by Services it may not be shared with.
    #[error(
        "{ip} is in use by {} and cannot be shared: {reason}",
        holders_text(holders)
    )]
    InUse {
        /// The IP.
        ip: IpAddr,
        /// The Services holding it.
        holders: Vec<ServiceKey>,
        /// The first rule that forbids sharing.
        reason: SharingConflict,
    },
    /// A held IP does not match what the Service now asks for.
    #[error("{ip} does not match the Service's request: {why}")]
    Mismatch {
        /// The IP.
        ip: IpAddr,
        /// What no longer matches.
        why: String,
    },
    /// The pool's `serviceAllocation` excludes the Service.
    #[error(
        "pool {pool:?} does not admit Service {service} (serviceAllocation namespaces/selectors)"
    )]
    PoolDoesNotAdmit {
        /// The pool.
        pool: String,
        /// The Service.
        service: ServiceKey,
    },
    /// The pool lacks an address family the Service needs.
    #[error("pool {pool:?} cannot serve {families}: it has no {} addresses", family_name(*missing))]
    PoolLacksFamily {
        /// The pool.
        pool: String,
        /// What the Service wants.
        families: FamilyRequest,
        /// The family the pool lacks.
        missing: IpFamily,
    },
    /// Every address of the pool is taken and none can be shared.
    #[error("pool {0:?} is exhausted: no free or shareable address")]
    PoolExhausted(String),
    /// Every pool that could serve the Service is exhausted.
    #[error("no free or shareable address in any pool that may serve this Service (exhausted: {})", .0.join(", "))]
    AllPoolsExhausted(Vec<String>),
    /// No pool may serve the Service at all.
    #[error("no pool may serve {families} for this Service: {}", reasons_text(.reasons))]
    NoPool {
        /// What the Service wants.
        families: FamilyRequest,
        /// Per pool, why it was skipped.
        reasons: Vec<(String, PoolSkip)>,
    },
}

/// Why a pool was not used for an automatic allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSkip {
    /// `auto-assign: false` and not asked for.
    NoAutoAssign,
    /// `serviceAllocation` excludes the Service.
    NotAdmitted,
    /// The pool lacks a needed family.
    Family,
}

impl fmt::Display for PoolSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolSkip::NoAutoAssign => "auto-assign is off",
            PoolSkip::NotAdmitted => "serviceAllocation does not admit it",
            PoolSkip::Family => "lacks the IP family",
        })
    }
}

fn holders_text(holders: &[ServiceKey]) -> String {
    holders
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn reasons_text(reasons: &[(String, PoolSkip)]) -> String {
    if reasons.is_empty() {
        return "there are no pools".to_string();
    }
    reasons
        .iter()
        .map(|(pool, why)| format!("{pool:?} {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An assigned IP a new config would leave outside every pool.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrphanedIp {
    /// The Service holding it.
    pub service: ServiceKey,
    /// The IP.
    pub ip: IpAddr,
}

/// A config refused because it would orphan assigned IPs (SPEC A5 rule 8);
/// the previous config stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "config refused (stale): it would leave {} assigned IP(s) outside every pool: {}",
    .orphaned.len(),
    orphans_text(.orphaned)
)]
pub struct ConfigRefused {
    /// The IPs that would be orphaned, sorted by Service then IP.
    pub orphaned: Vec<OrphanedIp>,
}

fn orphans_text(orphaned: &[OrphanedIp]) -> String {
    orphaned
        .iter()
        .map(|o| format!("{} ({})", o.ip, o.service))
        .collect::<Vec<_>>()
        .join(", ")
}
