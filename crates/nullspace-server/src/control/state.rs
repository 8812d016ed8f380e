//! The one sandbox state machine. Every state change goes through [`SandboxState::can_become`], and the
//! store applies it as a compare-and-set before the side effect starts.

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
    /// The node is releasing its resources.
    Destroying,
    /// Gone; kept as history, never listed.
    Destroyed,
}

impl SandboxState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Error => "error",
            Self::Hibernating => "hibernating",
            Self::Paused => "paused",
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
                | (Error | Paused, Destroying)
                | (Destroying, Destroyed)
        )
    }

    /// States from which `next` can be reached.
    pub fn sources_of(next: Self) -> Vec<Self> {
        [Self::Creating, Self::Running, Self::Error, Self::Hibernating, Self::Paused, Self::Destroying, Self::Destroyed]
            .into_iter()
            .filter(|state| state.can_become(next))
            .collect()
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
            Self::Paused => SandboxStatus::Paused,
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
    }

    #[test]
    fn sources_follow_the_transition_table() {
        assert_eq!(SandboxState::sources_of(Destroying), vec![Creating, Running, Error, Hibernating, Paused]);
        assert_eq!(SandboxState::sources_of(Paused), vec![Hibernating]);
        assert_eq!(SandboxState::sources_of(Destroyed), vec![Destroying]);
    }

    #[test]
    fn names_round_trip() {
        for state in [Creating, Running, Error, Hibernating, Paused, Destroying, Destroyed] {
            assert_eq!(SandboxState::parse(state.as_str()), Some(state));
        }
    }
}
