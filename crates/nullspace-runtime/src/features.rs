//! What each runtime can serve of what the server offers, and how strongly it isolates: the facts behind
//! `--runtime auto`, which takes the strongest runtime that serves every [`Feature`].

use std::fmt;

use crate::spec::RuntimeKind;

/// A capability of the server that depends on the isolation runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Each sandbox has its own address on the host bridge: internet access, egress policy, preview URLs
    /// of services, sandbox-to-host replies. runsc (the Debian 2022 build) only runs with its own
    /// loopback-only stack here (`--network=none`).
    Networking,
    /// Volumes attached to and detached from a running sandbox: needs the sandbox's mount namespace on the
    /// host, which gVisor's user-space kernel does not have.
    LiveVolumeAttach,
}

impl Feature {
    /// Every feature the server offers.
    pub const ALL: [Feature; 2] = [Feature::Networking, Feature::LiveVolumeAttach];
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::Networking => "sandbox networking",
            Feature::LiveVolumeAttach => "live volume attach",
        })
    }
}

impl RuntimeKind {
    /// Every kind, strongest isolation first: gVisor puts a user-space kernel between the sandbox and the
    /// host's; runc and crun isolate equally (namespaces including a user namespace, cgroups, seccomp,
    /// dropped capabilities), runc first because it runs on hybrid cgroup hosts.
    pub const BY_STRENGTH: [RuntimeKind; 3] = [RuntimeKind::Runsc, RuntimeKind::Runc, RuntimeKind::Crun];

    /// The features the server offers that sandboxes of this runtime lack.
    pub fn lacks(self) -> &'static [Feature] {
        match self {
            RuntimeKind::Runc | RuntimeKind::Crun => &[],
            RuntimeKind::Runsc => &[Feature::Networking, Feature::LiveVolumeAttach],
        }
    }

    /// Whether this runtime serves every feature the server offers.
    pub fn serves_everything(self) -> bool {
        self.lacks().is_empty()
    }
}

/// "a, b and c".
pub(crate) fn listed(features: &[Feature]) -> String {
    let names: Vec<String> = features.iter().map(Feature::to_string).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_ranked_once() {
        for kind in RuntimeKind::ALL {
            assert_eq!(RuntimeKind::BY_STRENGTH.iter().filter(|k| **k == kind).count(), 1, "{kind}");
        }
    }

    #[test]
    fn gvisor_is_strongest_but_lacks_networking_and_live_mounts() {
        assert_eq!(RuntimeKind::BY_STRENGTH[0], RuntimeKind::Runsc);
        assert!(!RuntimeKind::Runsc.serves_everything());
        assert!(RuntimeKind::Runc.serves_everything() && RuntimeKind::Crun.serves_everything());
        assert_eq!(listed(RuntimeKind::Runsc.lacks()), "sandbox networking and live volume attach");
    }
}
