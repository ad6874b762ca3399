//! The speaker's Kubernetes edge: watchers feeding the main loop, the pure
//! translation of objects into election inputs, and the Events it records.

pub mod events;
pub mod partial;
pub mod projection;
pub mod snapshot;
pub mod status;
pub mod watch;
