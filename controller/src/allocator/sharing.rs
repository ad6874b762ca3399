//! SPEC A5 rule 6: when two Services may hold the same IP.

use std::collections::BTreeMap;
use std::fmt;

use crate::service::{PortKey, Protocol, ServiceRequest, TrafficPolicy};

/// The parts of a Service that decide whether it may share an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingProfile {
    /// Non-empty `allow-shared-ip` key.
    pub key: Option<String>,
    /// `(protocol, port)` pairs.
    pub ports: Vec<PortKey>,
    /// `externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
}

impl SharingProfile {
    /// The sharing profile of a request, holding only what [`Self::check`]
    /// reads: without a key nothing else matters, and the selector only
    /// matters under the `Local` policy.
    pub fn of(request: &ServiceRequest) -> Self {
        let Some(key) = &request.sharing_key else {
            return Self {
                key: None,
                ports: Vec::new(),
                traffic_policy: request.traffic_policy,
                selector: BTreeMap::new(),
            };
        };
        Self {
            key: Some(key.clone()),
            ports: request.ports.clone(),
            traffic_policy: request.traffic_policy,
            selector: match request.traffic_policy {
                TrafficPolicy::Local => request.selector.clone(),
                TrafficPolicy::Cluster => BTreeMap::new(),
            },
        }
    }

    /// Whether a Service with this profile may hold an IP that `other` holds.
    pub fn check(&self, other: &SharingProfile) -> Result<(), SharingConflict> {
        let (Some(ours), Some(theirs)) = (&self.key, &other.key) else {
            return Err(SharingConflict::NoSharingKey);
        };
        if ours != theirs {
            return Err(SharingConflict::DifferentKeys {
                ours: ours.clone(),
                theirs: theirs.clone(),
            });
        }
        if let Some(&(protocol, port)) = self.ports.iter().find(|p| other.ports.contains(p)) {
            return Err(SharingConflict::PortClash { protocol, port });
        }
        match (self.traffic_policy, other.traffic_policy) {
            (TrafficPolicy::Cluster, TrafficPolicy::Cluster) => Ok(()),
            (TrafficPolicy::Local, TrafficPolicy::Local) if self.selector == other.selector => {
                Ok(())
            }
            (TrafficPolicy::Local, TrafficPolicy::Local) => Err(SharingConflict::Selectors),
            _ => Err(SharingConflict::TrafficPolicies),
        }
    }
}

/// Why two Services may not share an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharingConflict {
    /// One of them has no `allow-shared-ip` key.
    NoSharingKey,
    /// Their keys differ.
    DifferentKeys {
        /// The key of the Service asking.
        ours: String,
        /// The key of the holder.
        theirs: String,
    },
    /// Both use this `(protocol, port)`.
    PortClash {
        /// Protocol.
        protocol: Protocol,
        /// Port.
        port: i32,
    },
    /// One uses `externalTrafficPolicy: Cluster`, the other `Local`.
    TrafficPolicies,
    /// Both use `Local` but their selectors differ.
    Selectors,
}

impl fmt::Display for SharingConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharingConflict::NoSharingKey => {
                f.write_str("sharing needs the same allow-shared-ip key on both Services")
            }
            SharingConflict::DifferentKeys { ours, theirs } => {
                write!(f, "allow-shared-ip keys differ ({ours:?} vs {theirs:?})")
            }
            SharingConflict::PortClash { protocol, port } => {
                write!(f, "both use port {protocol}/{port}")
            }
            SharingConflict::TrafficPolicies => {
                f.write_str("externalTrafficPolicy differs (Cluster vs Local)")
            }
            SharingConflict::Selectors => {
                f.write_str("both use externalTrafficPolicy Local with different selectors")
            }
        }
    }
}
