//! ferrolb's controller: assigns EXTERNAL-IPs to Services of type LoadBalancer.
//!
//! The pure core (`service`, `allocator`, `reconcile`, `plan`) decides; `k8s`
//! (watchers and writers) and `metrics` are the I/O edges; `daemon` is the
//! one loop that joins them. The `ferrolb` CLI (`cli`) runs the same core.

pub mod admission;
pub mod allocator;
pub mod cli;
pub mod daemon;
pub mod k8s;
pub mod metrics;
pub mod peer_report;
pub mod plan;
pub mod reconcile;
pub mod service;
pub mod status_report;
pub mod webhook;
