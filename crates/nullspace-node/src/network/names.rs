//! Names of a sandbox's host resources, all derived from the bridge and the sandbox id so teardown and
//! reconcile find them without any other record: netns `<bridge>-<id>`, host veth `nsv<hash>`
//! (≤ 15 characters), nft chain `sb_<hash>`.

use sha2::{Digest, Sha256};

use super::error::NetworkError;

/// Prefix of every host-side veth this module creates.
pub(crate) const VETH_PREFIX: &str = "nsv";
/// Prefix of every per-sandbox nft chain.
pub(crate) const CHAIN_PREFIX: &str = "sb_";
/// Interface name of the sandbox end of the veth pair.
pub(crate) const SANDBOX_IFACE: &str = "eth0";

/// The host resource names of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxNames {
    /// Named network namespace (a file under `/run/netns`).
    pub netns: String,
    /// Host end of the veth pair.
    pub host_veth: String,
    /// Per-sandbox nft chain.
    pub chain: String,
}

impl SandboxNames {
    pub(crate) fn new(netns_prefix: &str, bridge: &str, sandbox_id: &str) -> Self {
        let digest = hex::encode(Sha256::digest(format!("{bridge}\0{sandbox_id}")));
        Self {
            netns: format!("{netns_prefix}{sandbox_id}"),
            host_veth: format!("{VETH_PREFIX}{}", &digest[..12]),
            chain: format!("{CHAIN_PREFIX}{}", &digest[..16]),
        }
    }
}

/// Sandbox ids usable in file and namespace names: 1..=64 bytes of `[A-Za-z0-9_.-]`, not `.`/`..`.
pub(crate) fn validate_sandbox_id(id: &str) -> Result<(), NetworkError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidName { what: "sandbox id", value: id.to_owned() })
    }
}

/// Hostnames written to the sandbox's `/etc/hosts`: 1..=64 bytes of `[A-Za-z0-9_.-]`.
pub(crate) fn validate_hostname(name: &str) -> Result<(), NetworkError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidName { what: "hostname", value: name.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_stable_and_bridge_specific() {
        let a = SandboxNames::new("nsbr0-", "nsbr0", "sb_abcdefghij0123456789");
        assert_eq!(a, SandboxNames::new("nsbr0-", "nsbr0", "sb_abcdefghij0123456789"));
        assert_eq!(a.netns, "nsbr0-sb_abcdefghij0123456789");
        assert!(a.host_veth.len() <= 15 && a.host_veth.starts_with(VETH_PREFIX));
        assert!(a.chain.starts_with(CHAIN_PREFIX));
        let other_bridge = SandboxNames::new("x-", "x", "sb_abcdefghij0123456789");
        assert_ne!(a.host_veth, other_bridge.host_veth);
        assert_ne!(a.host_veth, SandboxNames::new("nsbr0-", "nsbr0", "sb_other").host_veth);
    }

    #[test]
    fn ids_and_hostnames_are_checked() {
        validate_sandbox_id("sb_abc123").unwrap();
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_sandbox_id(bad).is_err(), "{bad}");
        }
        validate_hostname("sb-abc123").unwrap();
        for bad in ["", "a b", "a\nb", "a#b"] {
            assert!(validate_hostname(bad).is_err(), "{bad}");
        }
    }
}
