//! ferrolb's Kubernetes shell: the I/O edge both daemons share, so that the
//! controller and the speaker watch, record Events, serve their endpoints,
//! start and log in one way.
//!
//! It holds mechanism only; what each daemon watches, which Events it
//! records and which metrics it registers stay in the daemon. It depends on
//! no ferrolb crate, so the speaker uses it without linking the controller.

pub mod events;
pub mod logging;
pub mod serve;
pub mod startup;
pub mod watch;
