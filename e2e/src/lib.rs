//! ferrolb's end-to-end lab: Linux network namespaces on one machine that stand in for a
//! cluster's LAN (nodes, a client, BGP routers, a control plane), drivers for three real BGP
//! routers, and probes that look at the LAN from the client's point of view.
//!
//! Everything happens inside network namespaces the lab creates; the root namespace is only
//! used to create and delete them. See docs/testing.md for the topology and how to run.

pub mod cluster;
pub mod lab;
pub mod measure;
pub mod probes;
pub mod routers;

pub use lab::{Lab, LabConfig, LabError};
