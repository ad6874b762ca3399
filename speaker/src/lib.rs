//! ferrolb speaker: decides which node announces each Service IP and
//! announces it.
//!
//! The pure core ([`election`], [`announce`], the packet codecs in
//! [`layer2::arp`] and [`layer2::ndp`], [`k8s::snapshot`]) takes no I/O;
//! [`membership`], [`layer2::responder`], [`layer2::interfaces`] and
//! [`k8s`] sit at the edges and talk to the network and the API server;
//! [`daemon`] is the one loop tying them together.

pub mod announce;
pub mod bfd;
pub mod bgp;
pub mod daemon;
pub mod election;
pub mod k8s;
pub mod layer2;
pub mod membership;
pub mod metrics;
pub mod status;
