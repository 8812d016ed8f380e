//! What the node asks a runtime for: one [`SandboxSpec`] per sandbox (ids, paths, argv, mounts, limits)
//! and which OCI runtime ([`RuntimeKind`]) runs it. Plain data plus validation; no host access except
//! finding the runtime binary.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// The OCI runtimes this crate can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// runc: namespaces, cgroups, seccomp.
    Runc,
    /// crun: same isolation as runc, written in C (needs a pure cgroup v1 or v2 host).
    Crun,
    /// runsc (gVisor): a user-space kernel between the sandbox and the host kernel.
    Runsc,
}

impl RuntimeKind {
    /// Every kind.
    pub const ALL: [RuntimeKind; 3] = [RuntimeKind::Runc, RuntimeKind::Crun, RuntimeKind::Runsc];

    /// The lowercase name used in flags, config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
            RuntimeKind::Runsc => "runsc",
        }
    }

    /// Parses a lowercase name (`runc`, `crun`, `runsc`); `None` for anything else.
    pub fn parse(name: &str) -> Option<RuntimeKind> {
        RuntimeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The executable's file name.
    pub fn binary_name(self) -> &'static str {
        self.as_str()
    }

    /// Absolute path of the executable: the first hit in `$PATH`, then the sbin directories that a
    /// non-login root shell may lack in `$PATH` (Debian installs runc in /usr/sbin).
    pub fn find_binary(self) -> Option<PathBuf> {
        let name = self.binary_name();
        let from_env =
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
        let fallback = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
        from_env
            .into_iter()
            .chain(fallback.iter().map(PathBuf::from))
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resource limits of one sandbox. A zero means "no limit" for that resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU quota in whole CPUs (quota = vcpus × 100 ms per 100 ms period).
    pub vcpus: u32,
    /// Memory limit in MiB; memory+swap gets the same value, so the sandbox never swaps.
    pub memory_mb: u32,
    /// Maximum number of processes and threads.
    pub pids: u32,
}

/// A host path bind-mounted into the sandbox (recursively, `nosuid`, `nodev`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Absolute host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox; created by the runtime when missing.
    pub destination: String,
    /// Mount it read-only.
    pub read_only: bool,
}

/// The user namespace a sandbox joins: made by the node (see `nullspace-node::idmap`), mapping
/// container uids and gids `0..size` to host ids `host_id..host_id + size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNamespace {
    /// An absolute path opening the namespace (a `/proc/<pid>/fd/<n>` of the node, valid while it starts
    /// the runtime).
    pub path: PathBuf,
    /// The host id container id 0 maps to (uids and gids alike).
    pub host_id: u32,
    /// How many ids are mapped.
    pub size: u32,
}

/// Everything a runtime needs to start one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Sandbox id, e.g. `sb_abc123`; also the container id. Letters, digits, `_`, `-`, `.` only.
    pub id: String,
    /// Node-owned, absolute, existing directory; the runtime writes `config.json`, `init.log` (the init
    /// process's stdout and stderr) and `runtime.log` there.
    pub bundle_dir: PathBuf,
    /// Absolute path of the already-mounted root filesystem (an overlay).
    pub rootfs: PathBuf,
    /// Hostname inside the sandbox.
    pub hostname: String,
    /// argv of the init process, e.g. `["/run/nullspace/nullspace-guestd"]`.
    pub args: Vec<String>,
    /// Environment of the init process (`KEY=value`). A default `PATH` is added when missing.
    pub env: Vec<String>,
    /// Extra bind mounts, in mount order.
    pub mounts: Vec<BindMount>,
    /// Resource limits.
    pub limits: Limits,
    /// Set `no_new_privs` on the init process (setuid binaries then cannot gain privileges).
    pub no_new_privileges: bool,
    /// An existing network namespace (e.g. `/run/netns/<name>`) for the sandbox to join, already set up
    /// by the node (loopback, interfaces, routes); `None` gives the sandbox a fresh namespace with only
    /// loopback (brought up by the runtime).
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The user namespace to join (runc/crun under the node's idmapped mounts); `None` runs the
    /// sandbox's root as the host's root (runsc, or a server started with `--allow-host-root`).
    #[serde(default)]
    pub userns: Option<UserNamespace>,
}

impl SandboxSpec {
    /// Checks what the runtime would otherwise reject late or, worse, interpret unexpectedly.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidSpec { id: self.id.clone(), reason };
        validate_id(&self.id).map_err(|r| invalid(r.to_string()))?;
        if !self.bundle_dir.is_absolute() {
            return Err(invalid(format!("bundle dir {} is not absolute", self.bundle_dir.display())));
        }
        if !self.rootfs.is_absolute() {
            return Err(invalid(format!("rootfs {} is not absolute", self.rootfs.display())));
        }
        if self.args.is_empty() {
            return Err(invalid("init argv is empty".into()));
        }
        if let Some(netns) = &self.netns {
            if !netns.is_absolute() {
                return Err(invalid(format!("network namespace {} is not absolute", netns.display())));
            }
        }
        if let Some(userns) = &self.userns {
            if !userns.path.is_absolute() {
                return Err(invalid(format!("user namespace {} is not absolute", userns.path.display())));
            }
            if userns.host_id == 0 || userns.size == 0 || userns.host_id.checked_add(userns.size - 1).is_none() {
                return Err(invalid(format!("user namespace range {}+{} is not valid", userns.host_id, userns.size)));
            }
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 {
            return Err(invalid("hostname must have 1 to 64 bytes".into()));
        }
        for m in &self.mounts {
            if !m.source.is_absolute() {
                return Err(invalid(format!("mount source {} is not absolute", m.source.display())));
            }
            let dest = Path::new(&m.destination);
            let escapes = dest.components().any(|c| matches!(c, Component::ParentDir));
            if !dest.is_absolute() || escapes || dest == Path::new("/") {
                return Err(invalid(format!("mount destination {:?} is not a clean absolute path", m.destination)));
            }
        }
        Ok(())
    }
}

/// Container ids: 1..=128 bytes of `[A-Za-z0-9_.-]`, not `.` or `..`.
pub(crate) fn validate_id(id: &str) -> Result<(), &'static str> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if id.is_empty() || id.len() > 128 {
        return Err("id must have 1 to 128 bytes");
    }
    if !id.chars().all(ok_char) || id == "." || id == ".." {
        return Err("id may only contain letters, digits, '_', '-' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SandboxSpec {
        SandboxSpec {
            id: "sb_abc123".into(),
            bundle_dir: "/var/lib/nullspace/sandboxes/sb_abc123/bundle".into(),
            rootfs: "/var/lib/nullspace/sandboxes/sb_abc123/rootfs".into(),
            hostname: "sb-abc123".into(),
            args: vec!["/run/nullspace/nullspace-guestd".into()],
            env: vec!["HOME=/root".into()],
            mounts: vec![BindMount {
                source: "/var/lib/nullspace/bin/nullspace-guestd".into(),
                destination: "/run/nullspace/nullspace-guestd".into(),
                read_only: true,
            }],
            limits: Limits { vcpus: 2, memory_mb: 512, pids: 256 },
            no_new_privileges: true,
            netns: None,
            userns: None,
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in RuntimeKind::ALL {
            assert_eq!(RuntimeKind::parse(k.as_str()), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(RuntimeKind::parse("auto"), None);
        assert_eq!(serde_json::to_string(&RuntimeKind::Runsc).unwrap(), "\"runsc\"");
    }

    #[test]
    fn sample_is_valid() {
        sample().validate().unwrap();
    }

    #[test]
    fn rejects_bad_specs() {
        let bad: Vec<fn(&mut SandboxSpec)> = vec![
            |s| s.id = "../x".into(),
            |s| s.id = String::new(),
            |s| s.id = "a b".into(),
            |s| s.rootfs = "rel/rootfs".into(),
            |s| s.bundle_dir = "bundle".into(),
            |s| s.args.clear(),
            |s| s.mounts[0].destination = "/run/../etc".into(),
            |s| s.mounts[0].destination = "run/x".into(),
            |s| s.mounts[0].source = "x".into(),
            |s| s.netns = Some("run/netns/x".into()),
            |s| s.userns = Some(UserNamespace { path: "proc/1/ns/user".into(), host_id: 1 << 28, size: 65536 }),
            |s| s.userns = Some(UserNamespace { path: "/proc/1/ns/user".into(), host_id: 0, size: 65536 }),
            |s| s.userns = Some(UserNamespace { path: "/proc/1/ns/user".into(), host_id: u32::MAX, size: 2 }),
        ];
        for f in bad {
            let mut s = sample();
            f(&mut s);
            assert!(matches!(s.validate(), Err(RuntimeError::InvalidSpec { .. })), "{s:?}");
        }
    }
}
