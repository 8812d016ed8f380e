//! Resource usage of one sandbox, read from its cgroup (v1 or v2) and its overlay upper dir (walked by
//! [`crate::tree_usage`]).

use std::path::{Path, PathBuf};

/// A point-in-time reading of a sandbox's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SandboxUsage {
    /// Total CPU time consumed, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, in bytes.
    pub mem_used_bytes: u64,
    /// Memory limit, in bytes.
    pub mem_total_bytes: u64,
    /// Bytes written by the sandbox (its overlay upper dir).
    pub disk_used_bytes: u64,
    /// Size of the filesystem holding the sandbox.
    pub disk_total_bytes: u64,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn read_u64(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    if text == "max" {
        return Some(u64::MAX);
    }
    text.parse().ok()
}

fn v1(controller: &str, cgroup: &str, file: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join(controller).join(cgroup).join(file)
}

/// Reads the usage of the cgroup `cgroup` (relative path such as `nullspace/sb_x`), with `upper` the
/// overlay upper dir and `data_dir` the filesystem the sandbox lives on. Blocking (it walks the upper dir,
/// see [`crate::tree_usage`]).
pub fn read_usage(cgroup: &str, upper: &Path, data_dir: &Path, memory_limit_bytes: u64) -> SandboxUsage {
    let v2 = Path::new(CGROUP_ROOT).join(cgroup);
    let (cpu_usage_ns, mem_used_bytes, mem_limit) = if v2.join("memory.current").exists() {
        let cpu_ns = std::fs::read_to_string(v2.join("cpu.stat"))
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|line| line.strip_prefix("usage_usec ").and_then(|v| v.trim().parse::<u64>().ok()))
            })
            .map_or(0, |usec| usec * 1000);
        (cpu_ns, read_u64(&v2.join("memory.current")).unwrap_or(0), read_u64(&v2.join("memory.max")))
    } else {
        let cpu = read_u64(&v1("cpu,cpuacct", cgroup, "cpuacct.usage"))
            .or_else(|| read_u64(&v1("cpuacct", cgroup, "cpuacct.usage")))
            .unwrap_or(0);
        (
            cpu,
            read_u64(&v1("memory", cgroup, "memory.usage_in_bytes")).unwrap_or(0),
            read_u64(&v1("memory", cgroup, "memory.limit_in_bytes")),
        )
    };
    let mem_total_bytes = mem_limit.filter(|limit| *limit < u64::MAX / 2).unwrap_or(memory_limit_bytes).max(1);
    let disk_total_bytes =
        nix::sys::statvfs::statvfs(data_dir).map(|stat| stat.blocks() * stat.fragment_size()).unwrap_or(0);
    SandboxUsage {
        cpu_usage_ns,
        mem_used_bytes: mem_used_bytes.min(mem_total_bytes),
        mem_total_bytes,
        disk_used_bytes: crate::tree_usage::tree_usage(upper).bytes,
        disk_total_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_cgroup_reports_the_configured_limit() {
        let dir = tempfile::tempdir().unwrap();
        let usage = read_usage("nullspace/sb_missing", dir.path(), dir.path(), 512 << 20);
        assert_eq!(usage.mem_total_bytes, 512 << 20);
        assert_eq!(usage.mem_used_bytes, 0);
    }
}
