//! The only room that talks to the Kubernetes API: watchers that feed the
//! pure core, and writers that apply its decisions (status, Events, Secret).

pub mod events;
pub mod secret;
pub mod status;
pub mod watch;
pub mod webhook_config;
