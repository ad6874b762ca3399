//! An in-memory, plain-HTTP stand-in for the Kubernetes API server, for ferrolb's lab and tests.
//!
//! It serves the resources ferrolb's controller and speaker use, with the semantics real
//! clients rely on: one global resourceVersion, optimistic concurrency, the status subresource,
//! merge/JSON/strategic/apply patches, watches with bookmarks and 410 Expired, Service defaulting
//! (cluster IPs, families, node ports) and `metav1.Status` errors. Service-account tokens from
//! TokenRequest authenticate as the account and are authorized with RBAC; a request without
//! credentials has full access (it stands in for the lab's admin certificate). Run it in-process with
//! [`spawn`] or [`serve`], or as the `ferrolb-test-apiserver` binary. With a state file
//! ([`ServerConfig::state_file`]) its objects survive a restart, as a real server's do in etcd.

mod admission;
mod allocator;
mod apply;
mod auth;
pub mod cli;
mod core_rules;
mod crd;
mod discovery;
mod events;
mod http;
mod kinds;
mod meta;
mod patch;
mod selector;
mod server;
mod service;
mod snapshot;
mod status;
mod store;
mod verbs;
mod watch;

pub use server::{RunningServer, Server, ServerConfig, ServerError, router, serve, spawn};
pub use snapshot::SnapshotError;
