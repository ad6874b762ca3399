//! What a BFD session means for the BGP session it protects (RFC 5882,
//! pure): BGP is torn down only when BFD fails after having been Up, not
//! when it never came up nor when the peer takes its end down
//! administratively; after a failure BGP comes back only once BFD is Up
//! again.

use crate::bfd::packet::State;

/// The BFD view a BGP session acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// BFD has not been Up yet: BGP runs as if BFD were not configured
    /// (RFC 5882 section 3.1: no failure can be inferred).
    #[default]
    NotYetUp,
    /// BFD is Up.
    Up,
    /// BFD went Down after being Up: the path failed. BGP goes down now and
    /// stays down until BFD is Up again.
    Failed,
    /// The peer signalled AdminDown: not a failure (RFC 5882 section 3.2),
    /// BGP is left alone.
    PeerAdminDown,
}

impl Status {
    /// The status after a session moved to `to` while the peer's last
    /// reported state was `remote`.
    pub fn after(self, to: State, remote: State) -> Status {
        match to {
            State::Up => Status::Up,
            State::Init => self,
            State::Down | State::AdminDown => {
                if remote == State::AdminDown {
                    Status::PeerAdminDown
                } else if to == State::AdminDown {
                    // Our own administrative shutdown is not a path failure.
                    self
                } else if self == Status::Up {
                    Status::Failed
                } else {
                    self
                }
            }
        }
    }

    /// Whether the BGP session may run (connect, stay established).
    pub fn allows_bgp(self) -> bool {
        self != Status::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5882_status_table() {
        use State::{AdminDown, Down, Init};
        use Status::{Failed, NotYetUp, PeerAdminDown};
        const UP: State = State::Up;
        // (rule, before, state entered, remote state, after)
        let cases = [
            ("up_is_up", NotYetUp, UP, UP, Status::Up),
            (
                "never_up_then_down_is_not_a_failure",
                NotYetUp,
                Down,
                Down,
                NotYetUp,
            ),
            ("init_changes_nothing", NotYetUp, Init, Down, NotYetUp),
            ("down_from_up_is_a_failure", Status::Up, Down, UP, Failed),
            (
                "down_from_up_when_peer_is_silent_is_a_failure",
                Status::Up,
                Down,
                Down,
                Failed,
            ),
            (
                "peer_admin_down_is_not_a_failure",
                Status::Up,
                Down,
                AdminDown,
                PeerAdminDown,
            ),
            (
                "our_admin_down_is_not_a_failure",
                Status::Up,
                AdminDown,
                UP,
                Status::Up,
            ),
            ("a_failure_lasts_through_init", Failed, Init, Down, Failed),
            ("a_failure_ends_when_up_again", Failed, UP, UP, Status::Up),
            ("peer_admin_down_then_up", PeerAdminDown, UP, UP, Status::Up),
        ];
        for (rule, before, to, remote, want) in cases {
            assert_eq!(before.after(to, remote), want, "{rule}");
        }
    }

    #[test]
    fn only_a_failure_stops_bgp() {
        for (status, allows) in [
            (Status::NotYetUp, true),
            (Status::Up, true),
            (Status::Failed, false),
            (Status::PeerAdminDown, true),
        ] {
            assert_eq!(status.allows_bgp(), allows, "{status:?}");
        }
    }
}
