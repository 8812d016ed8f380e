//! How many sandboxes this host can hold: each host resource a sandbox takes a share of, its limit on
//! this host, and what one idle sandbox takes of it ([`SandboxLimit::derive`]); the smallest quotient
//! is the limit the server admits up to unless the operator sets `--max-sandboxes`.
//!
//! What an idle runc sandbox holds, measured on a 2-core, 24 GiB host (`nullspace bench --mode density`
//! and `/proc`): 3 tasks of its guest daemon (main thread and two runtime workers) plus 2 kernel threads
//! of its disk's ext4 (`jbd2`, the `ext4-rsv-conversion` rescuer); about 1–2.5 MiB of memory (guest
//! daemon ~0.6 MiB anonymous, its text shared by all sandboxes; kernel slab, stacks and page tables
//! ~0.8 MiB: namespaces, veth pair, cgroups of every controller, mounts); 4 mounts in the host's mount
//! namespace (disk, overlay, the runtime's root bind, the network namespace pin); one network, user,
//! mount, pid, ipc, uts and cgroup namespace each; one address of the subnet; one host id range; one
//! loop device when disks are limited; and about 0.03 descriptors of the server (none held while idle).
//!
//! Resources that sandboxes share with the host's own work (tasks, memory, mounts) are counted at half
//! their limit, so that busy sandboxes and the host keep room; those only sandboxes take (addresses,
//! id ranges) at their full count.

/// Tasks (threads) of one idle sandbox without a disk limit: the guest daemon's three threads.
pub const IDLE_TASKS: u64 = 3;
/// Kernel threads of one sandbox disk's ext4 (`jbd2` and the `ext4-rsv-conversion` rescuer).
pub const DISK_TASKS: u64 = 2;
/// Memory one idle sandbox is counted at, MiB: measured 1–2.5, rounded up for what it does once used.
pub const IDLE_MEMORY_MIB: u64 = 4;
/// Mounts one sandbox adds to the host's mount namespace (disk, overlay, runtime root, netns pin).
pub const MOUNTS: u64 = 4;

/// One host resource that bounds the number of sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// What it is (`tasks`, `memory`, `addresses`, …).
    pub resource: &'static str,
    /// Sandboxes it allows.
    pub sandboxes: u64,
    /// How that number came about, e.g. `pid_max 32768 / 2 - 210 running, 5 per sandbox`.
    pub detail: String,
}

/// The host-derived sandbox limit and every bound it was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimit {
    /// The smallest of the bounds.
    pub max: u64,
    /// Every bound, the smallest first.
    pub bounds: Vec<Bound>,
}

/// What the node knows of the host and its own configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `kernel.pid_max`, `kernel.threads-max`.
    pub pid_max: u64,
    /// `kernel.threads-max`.
    pub threads_max: u64,
    /// Tasks running on the host now.
    pub tasks_now: u64,
    /// `MemTotal`, MiB.
    pub memory_mib: u64,
    /// `fs.mount-max` (per mount namespace).
    pub mount_max: u64,
    /// Mounts of the server's mount namespace now.
    pub mounts_now: u64,
    /// The smallest of `user.max_{net,user,mnt,pid,ipc,uts,cgroup}_namespaces`.
    pub namespaces_max: u64,
    /// Addresses the sandbox subnet gives (`None`: no per-sandbox network, e.g. under runsc).
    pub addresses: Option<u64>,
    /// Host id ranges sandboxes may get (`None`: no user namespaces).
    pub id_ranges: Option<u64>,
    /// Whether sandboxes get a disk of their own (a loop-mounted ext4, two kernel threads).
    pub disks: bool,
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.split_whitespace().next()?.parse().ok()
}

fn meminfo_mib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

impl HostFacts {
    /// Reads this host's limits; the network and id range figures come from the node.
    pub fn read(addresses: Option<u64>, id_ranges: Option<u64>, disks: bool) -> Self {
        let tasks_now = std::fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
                    .filter_map(|e| std::fs::read_dir(e.path().join("task")).ok())
                    .map(|tasks| tasks.count() as u64)
                    .sum()
            })
            .unwrap_or(0);
        let namespaces_max = ["net", "user", "mnt", "pid", "ipc", "uts", "cgroup"]
            .iter()
            .filter_map(|kind| read_u64(&format!("/proc/sys/user/max_{kind}_namespaces")))
            .min()
            .unwrap_or(u64::MAX);
        let mounts_now =
            std::fs::read_to_string("/proc/self/mountinfo").map(|text| text.lines().count() as u64).unwrap_or(0);
        Self {
            pid_max: read_u64("/proc/sys/kernel/pid_max").unwrap_or(32_768),
            threads_max: read_u64("/proc/sys/kernel/threads-max").unwrap_or(u64::MAX),
            tasks_now,
            memory_mib: meminfo_mib("MemTotal").unwrap_or(0),
            mount_max: read_u64("/proc/sys/fs/mount-max").unwrap_or(100_000),
            mounts_now,
            namespaces_max,
            addresses,
            id_ranges,
            disks,
        }
    }
}

impl SandboxLimit {
    /// The limit of a host with `facts`.
    pub fn derive(facts: &HostFacts) -> Self {
        let tasks_each = IDLE_TASKS + if facts.disks { DISK_TASKS } else { 0 };
        let task_limit = facts.pid_max.min(facts.threads_max);
        let mut bounds = vec![
            Bound {
                resource: "tasks",
                sandboxes: (task_limit / 2).saturating_sub(facts.tasks_now) / tasks_each,
                detail: format!(
                    "min(pid_max {}, threads-max {}) / 2 - {} running, {tasks_each} per idle sandbox",
                    facts.pid_max, facts.threads_max, facts.tasks_now
                ),
            },
            Bound {
                resource: "memory",
                sandboxes: facts.memory_mib / 2 / IDLE_MEMORY_MIB,
                detail: format!("MemTotal {} MiB / 2, {IDLE_MEMORY_MIB} MiB per idle sandbox", facts.memory_mib),
            },
            Bound {
                resource: "mounts",
                sandboxes: (facts.mount_max / 2).saturating_sub(facts.mounts_now) / MOUNTS,
                detail: format!(
                    "fs.mount-max {} / 2 - {} mounted, {MOUNTS} per sandbox",
                    facts.mount_max, facts.mounts_now
                ),
            },
            Bound {
                resource: "namespaces",
                sandboxes: facts.namespaces_max,
                detail: format!("user.max_*_namespaces {}, one of each kind per sandbox", facts.namespaces_max),
            },
        ];
        if let Some(addresses) = facts.addresses {
            bounds.push(Bound {
                resource: "addresses",
                sandboxes: addresses,
                detail: format!("{addresses} sandbox addresses in the subnet's segments"),
            });
        }
        if let Some(ranges) = facts.id_ranges {
            bounds.push(Bound {
                resource: "id ranges",
                sandboxes: ranges,
                detail: format!("{ranges} host id ranges of 65536 for user namespaces"),
            });
        }
        bounds.sort_by_key(|b| b.sandboxes);
        Self { max: bounds.first().map_or(0, |b| b.sandboxes), bounds }
    }

    /// The bound that sets the limit.
    pub fn binding(&self) -> Option<&Bound> {
        self.bounds.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            pid_max: 32_768,
            threads_max: 192_735,
            tasks_now: 234,
            memory_mib: 24_105,
            mount_max: 100_000,
            mounts_now: 21,
            namespaces_max: 96_367,
            addresses: Some(65_344),
            id_ranges: Some(28_672),
            disks: true,
        }
    }

    #[test]
    fn the_smallest_bound_is_the_limit() {
        let limit = SandboxLimit::derive(&facts());
        // (32768 / 2 - 234) / 5 = 3230; memory 24105 / 2 / 4 = 3013; mounts (50000 - 21) / 4 = 12494.
        assert_eq!(limit.max, 3013);
        assert_eq!(limit.binding().unwrap().resource, "memory");
        let tasks = limit.bounds.iter().find(|b| b.resource == "tasks").unwrap();
        assert_eq!(tasks.sandboxes, 3230);
        assert!(limit.bounds.windows(2).all(|w| w[0].sandboxes <= w[1].sandboxes));
        assert_eq!(limit.bounds.len(), 6);
    }

    #[test]
    fn each_resource_can_bind() {
        let mut small = facts();
        small.addresses = Some(253);
        assert_eq!(SandboxLimit::derive(&small).max, 253);
        small.id_ranges = Some(10);
        assert_eq!(SandboxLimit::derive(&small).binding().unwrap().resource, "id ranges");
        let mut busy = facts();
        busy.pid_max = 4096;
        busy.disks = false;
        // (2048 - 234) / 3 = 604
        assert_eq!(SandboxLimit::derive(&busy).max, 604);
        busy.tasks_now = 5000;
        assert_eq!(SandboxLimit::derive(&busy).max, 0, "a host out of tasks admits none");
        let mut no_network = facts();
        no_network.addresses = None;
        no_network.id_ranges = None;
        assert_eq!(SandboxLimit::derive(&no_network).bounds.len(), 4);
    }

    #[test]
    fn this_host_has_facts() {
        let facts = HostFacts::read(Some(1021), None, true);
        assert!(facts.pid_max > 0 && facts.memory_mib > 0 && facts.tasks_now > 0, "{facts:?}");
    }
}
