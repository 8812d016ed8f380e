//! The one sandbox state machine. Every state change goes through [`SandboxState::can_become`]: the
//! store's compare-and-set (`Store::transition`) refuses any other move before writing anything, and
//! applies it before the side effect starts.

use nullspace_types::sandbox::SandboxStatus;

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SandboxState {
    /// Recorded; the node is launching it.
    Creating,
    /// Launched; serves exec and files.
    Running,
    /// Launch failed, or the guest daemon of a running sandbox died; resources released, kept for
    /// inspection until destroyed.
    Error,
    /// Its filesystem is being saved into a snapshot; the runtime is then released.
    Hibernating,
    /// Saved into a snapshot, nothing running; visible under its id until resumed or killed.
    Paused,
    /// A paused sandbox being started again under its own id (auto-resume); back to `paused` if that
    /// fails.
    Resuming,
    /// The node is releasing its resources.
    Destroying,
    /// Gone; kept as history, never listed.
    Destroyed,
}

impl SandboxState {
    /// Every state, in the order of a sandbox's life.
    pub const ALL: [Self; 8] = [
        Self::Creating,
        Self::Running,
        Self::Error,
        Self::Hibernating,
        Self::Paused,
        Self::Resuming,
        Self::Destroying,
        Self::Destroyed,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Error => "error",
            Self::Hibernating => "hibernating",
            Self::Paused => "paused",
            Self::Resuming => "resuming",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "creating" => Self::Creating,
            "running" => Self::Running,
            "error" => Self::Error,
            "hibernating" => Self::Hibernating,
            "paused" => Self::Paused,
            "resuming" => Self::Resuming,
            "destroying" => Self::Destroying,
            "destroyed" => Self::Destroyed,
            _ => return None,
        })
    }

    /// Whether the transition `self → next` is allowed.
    pub fn can_become(self, next: Self) -> bool {
        use SandboxState::*;
        matches!(
            (self, next),
            (Creating, Running | Error | Destroying)
                | (Running, Hibernating | Error | Destroying)
                | (Hibernating, Paused | Running | Destroying)
                | (Paused, Resuming | Destroying)
                | (Resuming, Running | Paused | Destroying)
                | (Error, Destroying)
                | (Destroying, Destroyed)
        )
    }

    /// States from which `next` can be reached.
    pub fn sources_of(next: Self) -> Vec<Self> {
        Self::ALL.into_iter().filter(|state| state.can_become(next)).collect()
    }

    /// Whether exec, files and other guest requests are allowed.
    pub fn serves_requests(self) -> bool {
        self == Self::Running
    }

    /// Whether clients can see the sandbox (GET, list).
    pub fn is_visible(self) -> bool {
        !matches!(self, Self::Destroying | Self::Destroyed)
    }

    /// Status reported on the wire.
    pub fn status(self) -> SandboxStatus {
        match self {
            Self::Creating => SandboxStatus::Creating,
            Self::Running | Self::Hibernating => SandboxStatus::Running,
            // Not running until the resume finished: callers that need it running wait for it.
            Self::Paused | Self::Resuming => SandboxStatus::Paused,
            Self::Error => SandboxStatus::Error,
            Self::Destroying | Self::Destroyed => SandboxStatus::Destroyed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SandboxState::*;
    use super::*;

    #[test]
    fn only_documented_transitions_are_allowed() {
        assert!(Creating.can_become(Running));
        assert!(Running.can_become(Destroying));
        assert!(Destroying.can_become(Destroyed));
        assert!(!Destroyed.can_become(Running));
        assert!(!Running.can_become(Creating));
        assert!(!Running.can_become(Destroyed), "destroy always passes through destroying");
        assert!(Running.can_become(Error), "a sandbox whose guest daemon died");
        assert!(!Paused.can_become(Running), "a paused sandbox runs again only through resuming");
        assert!(Paused.can_become(Resuming) && Resuming.can_become(Running));
        assert!(Resuming.can_become(Paused), "a failed resume leaves it paused");
        assert!(Resuming.can_become(Destroying), "killed while resuming");
        assert!(!Resuming.can_become(Hibernating) && !Creating.can_become(Resuming));
        assert!(!Error.can_become(Running) && !Destroyed.can_become(Destroying));
    }

    #[test]
    fn every_state_but_destroyed_can_be_destroyed_and_nothing_leaves_destroyed() {
        for state in SandboxState::ALL {
            assert_eq!(state.can_become(Destroying), !matches!(state, Destroying | Destroyed), "{state:?}");
            assert!(!Destroyed.can_become(state), "destroyed → {state:?}");
            assert!(!state.can_become(state), "{state:?} → itself");
        }
    }

    #[test]
    fn sources_follow_the_transition_table() {
        assert_eq!(SandboxState::sources_of(Destroying), vec![Creating, Running, Error, Hibernating, Paused, Resuming]);
        assert_eq!(SandboxState::sources_of(Paused), vec![Hibernating, Resuming]);
        assert_eq!(SandboxState::sources_of(Resuming), vec![Paused]);
        assert_eq!(SandboxState::sources_of(Destroyed), vec![Destroying]);
    }

    #[test]
    fn names_round_trip() {
        for state in SandboxState::ALL {
            assert_eq!(SandboxState::parse(state.as_str()), Some(state));
        }
    }
}
