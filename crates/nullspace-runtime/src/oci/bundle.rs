//! Turns a [`SandboxSpec`] into the OCI runtime spec (`config.json`) of its bundle: namespaces (joining
//! the node's prepared network namespace when the spec names one), Docker's default capabilities minus
//! `CAP_MKNOD`, `CAP_SETFCAP` and `CAP_NET_RAW` ([`CAPABILITIES`]), Docker's
//! masked paths, the standard `/proc`, `/dev`, `/sys` mounts plus the sandbox's bind mounts, cgroup
//! limits under `/nullspace/<id>`, and the seccomp profile of [`super::seccomp`].

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use oci_spec::OciSpecError;

use crate::spec::SandboxSpec;

/// Parent of every sandbox cgroup, relative to each controller's mount point.
pub const CGROUP_PARENT: &str = "nullspace";

/// `oom_score_adj` of init (the guest daemon): the memory cgroup's OOM killer never picks it, so a
/// sandbox that runs out of memory loses a process of its own, not the daemon that serves it. Only
/// the runtime can set it (lowering needs `CAP_SYS_RESOURCE`; a node without it, as in some CI
/// containers, leaves init at its own value and the daemon raises its children above it instead);
/// the daemon resets its children to 0.
pub const INIT_OOM_SCORE_ADJ: i32 = -1000;

/// The `oom_score_adj` to give init on this host: [`INIT_OOM_SCORE_ADJ`] when the node may lower it.
fn init_oom_score_adj() -> Option<i32> {
    has_cap_sys_resource().then_some(INIT_OOM_SCORE_ADJ)
}

/// The `PATH` given to init when the spec's env has none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Wanted `RLIMIT_NOFILE` (soft and hard) of the init process. The container cannot raise a hard limit
/// above its parent's, so the runtime process is started with it, and where the node itself lacks
/// `CAP_SYS_RESOURCE` (some CI containers) it is lowered to the node's own hard limit; see
/// [`nofile_limit`].
pub const NOFILE: u64 = 1_048_576;

/// The `RLIMIT_NOFILE` to give init on this host: [`NOFILE`] when this process may raise its hard limit
/// that far, else its current hard limit.
pub fn nofile_limit() -> u64 {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass; no other precondition.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) } != 0 {
        return NOFILE;
    }
    let hard: u64 = current.rlim_max;
    if hard >= NOFILE || has_cap_sys_resource() {
        NOFILE
    } else {
        hard
    }
}

pub(crate) fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Docker's default capability set without `CAP_MKNOD`, `CAP_SETFCAP` and `CAP_NET_RAW`; the same set is
/// bounding, effective and permitted. Device nodes, file capabilities and raw or packet sockets are what
/// a sandbox could use against the host (a device inode or a capability-bearing binary in its upper dir,
/// which is a host inode; ARP and source-address spoofing on the bridge); `ping` works without raw
/// sockets through ICMP datagram sockets (`net.ipv4.ping_group_range` of the sandbox's namespace).
pub const CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Docker's default masked paths (bind-mounted over with /dev/null or an empty read-only tmpfs).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default read-only paths.
const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The cgroup path of a sandbox, as given to the runtime.
pub fn cgroups_path(id: &str) -> PathBuf {
    PathBuf::from(format!("/{CGROUP_PARENT}/{id}"))
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
}

fn mounts(spec: &SandboxSpec) -> Result<Vec<Mount>, OciSpecError> {
    // /dev/shm is charged to the sandbox's memory cgroup anyway; half the memory limit lets browsers
    // and multiprocessing work without a second knob.
    let shm_mb = if spec.limits.memory_mb == 0 { 1024 } else { (spec.limits.memory_mb / 2).max(64) };
    let shm_size = format!("size={shm_mb}m");
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"])?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        )?,
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", &shm_size])?,
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"])?,
    ];
    for m in &spec.mounts {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if m.read_only {
            options.push("ro");
        }
        out.push(
            MountBuilder::default()
                .destination(&m.destination)
                .typ("bind")
                .source(&m.source)
                .options(options.into_iter().map(String::from).collect::<Vec<_>>())
                .build()?,
        );
    }
    Ok(out)
}

/// The full OCI runtime spec of one sandbox; `nofile` is init's `RLIMIT_NOFILE` (see [`nofile_limit`]).
pub fn oci_spec(spec: &SandboxSpec, nofile: u64) -> Result<Spec, OciSpecError> {
    let caps: HashSet<Capability> = CAPABILITIES.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let mut process = ProcessBuilder::default();
    if let Some(adj) = init_oom_score_adj() {
        process = process.oom_score_adj(adj);
    }
    let process = process
        .terminal(false)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .cwd("/")
        .args(spec.args.clone())
        .env(env)
        .no_new_privileges(spec.no_new_privileges)
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(nofile)
            .hard(nofile)
            .build()?])
        .build()?;

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| {
        let builder = LinuxNamespaceBuilder::default().typ(typ);
        // Joining a prepared namespace: the runtime then leaves its interfaces alone (no loopback setup).
        match (&spec.netns, typ) {
            (Some(path), LinuxNamespaceType::Network) => builder.path(path).build(),
            _ => builder.build(),
        }
    })
    .collect::<Result<Vec<_>, _>>()?;
    let mut namespaces = namespaces;
    let mut id_mappings = Vec::new();
    if let Some(userns) = &spec.userns {
        // Joined, not created: the node made it (and the network namespace, which it owns, so that the
        // runtime may mount sysfs). The mappings repeat what its uid_map/gid_map say; the runtime uses
        // them to find the host ids of the container's root (ownership of /dev, the console, …).
        namespaces.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::User).path(&userns.path).build()?);
        id_mappings.push(
            LinuxIdMappingBuilder::default().container_id(0u32).host_id(userns.host_id).size(userns.size).build()?,
        );
    }

    let limits = spec.limits;
    let mut resources = LinuxResourcesBuilder::default()
        // Deny every device; the runtime adds its standard set (null, zero, full, tty, random, urandom,
        // ptmx, pts) after this rule.
        .devices(vec![LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?]);
    if limits.memory_mb > 0 {
        let bytes = i64::from(limits.memory_mb) * 1024 * 1024;
        resources = resources.memory(LinuxMemoryBuilder::default().limit(bytes).swap(bytes).build()?);
    }
    if limits.vcpus > 0 {
        let quota = i64::from(limits.vcpus) * 100_000;
        resources = resources.cpu(LinuxCpuBuilder::default().quota(quota).period(100_000u64).build()?);
    }
    if limits.pids > 0 {
        resources = resources.pids(LinuxPidsBuilder::default().limit(i64::from(limits.pids)).build()?);
    }

    let mut linux = LinuxBuilder::default();
    if !id_mappings.is_empty() {
        linux = linux.uid_mappings(id_mappings.clone()).gid_mappings(id_mappings);
    }
    let linux = linux
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(cgroups_path(&spec.id))
        .seccomp(super::seccomp::default_profile()?)
        .masked_paths(MASKED_PATHS.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(READONLY_PATHS.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?;

    SpecBuilder::default()
        .version("1.0.2")
        .root(RootBuilder::default().path(&spec.rootfs).readonly(false).build()?)
        .hostname(spec.hostname.clone())
        .process(process)
        .mounts(mounts(spec)?)
        .linux(linux)
        .build()
}

#[cfg(test)]
mod netns_tests {
    use super::*;
    use crate::spec::Limits;

    fn spec(netns: Option<&str>) -> SandboxSpec {
        SandboxSpec {
            id: "sb_net".into(),
            bundle_dir: "/b".into(),
            rootfs: "/r".into(),
            hostname: "sb-net".into(),
            args: vec!["/init".into()],
            env: vec![],
            mounts: vec![],
            limits: Limits { vcpus: 1, memory_mb: 64, pids: 16 },
            no_new_privileges: true,
            netns: netns.map(PathBuf::from),
            userns: None,
        }
    }

    fn network_namespace(spec: &SandboxSpec) -> serde_json::Value {
        let config = serde_json::to_value(oci_spec(spec, NOFILE).unwrap()).unwrap();
        let namespaces = config["linux"]["namespaces"].as_array().unwrap().clone();
        namespaces.into_iter().find(|ns| ns["type"] == "network").unwrap()
    }

    #[test]
    fn a_prepared_network_namespace_is_joined_by_path() {
        let ns = network_namespace(&spec(Some("/run/netns/nsbr0-sb_net")));
        assert_eq!(ns["path"], "/run/netns/nsbr0-sb_net");
    }

    #[test]
    fn a_user_namespace_is_joined_with_its_range_as_uid_and_gid_mappings() {
        let mut with = spec(Some("/run/netns/nsbr0-sb_net"));
        with.userns =
            Some(crate::spec::UserNamespace { path: "/proc/42/fd/7".into(), host_id: 0x1000_0000, size: 65536 });
        let config = serde_json::to_value(oci_spec(&with, NOFILE).unwrap()).unwrap();
        let namespaces = config["linux"]["namespaces"].as_array().unwrap();
        let user = namespaces.iter().find(|ns| ns["type"] == "user").expect("a user namespace");
        assert_eq!(user["path"], "/proc/42/fd/7");
        let expected = serde_json::json!([{"containerID": 0, "hostID": 0x1000_0000u32, "size": 65536}]);
        assert_eq!(config["linux"]["uidMappings"], expected);
        assert_eq!(config["linux"]["gidMappings"], expected);
        // Root inside is still uid 0 of its own namespace.
        assert_eq!(config["process"]["user"]["uid"], 0);
    }

    #[test]
    fn without_a_user_namespace_there_is_no_mapping() {
        let config = serde_json::to_value(oci_spec(&spec(None), NOFILE).unwrap()).unwrap();
        let namespaces = config["linux"]["namespaces"].as_array().unwrap();
        assert!(namespaces.iter().all(|ns| ns["type"] != "user"), "{namespaces:?}");
        assert!(config["linux"]["uidMappings"].as_array().is_none_or(|m| m.is_empty()));
    }

    #[test]
    fn without_a_prepared_namespace_a_fresh_one_is_created() {
        let ns = network_namespace(&spec(None));
        assert!(ns["path"].is_null(), "{ns}");
    }
}
