//! The seccomp profile of every OCI sandbox.
//!
//! Choice: **default allow plus a denylist**, not Docker's default-deny allowlist. The allowlist is
//! ~350 names long, must follow every new syscall the toolchains in a sandbox start to use, and breaks
//! things in ways that are hard to diagnose; the capability set (Docker's default, without
//! `CAP_SYS_ADMIN`) already makes most privileged syscalls fail. The denylist removes the kernel
//! attack surface that capabilities do not cover or that a sandbox never needs:
//!
//! - module loading, kexec, reboot, swap, accounting, quotas, clock and time setting, `syslog`, `iopl`;
//! - mounts and the new mount API, `pivot_root`, file handles (`open_by_handle_at` is the classic
//!   container escape), `setns`/`unshare`, and `clone` with any namespace flag (including
//!   `CLONE_NEWUSER`, which needs no capability);
//! - `bpf`, `perf_event_open`, `userfaultfd`, the keyring (`keyctl`, `add_key`, `request_key`) and
//!   `io_uring_*`, the usual sources of local kernel exploits;
//! - `personality` with `READ_IMPLIES_EXEC` or `MMAP_PAGE_ZERO` (the query value `0xffffffff` stays
//!   allowed).
//!
//! `clone3` returns `ENOSYS` (its flags sit behind a pointer seccomp cannot read), so libc falls back to
//! `clone`, whose flags it can. Everything else denied returns `EPERM`. `ptrace` stays allowed so that
//! gdb and strace work inside a sandbox (safe since Linux 4.8, where seccomp is re-checked after a
//! tracer changes a syscall). Names unknown on an architecture are skipped by runc/crun.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use oci_spec::OciSpecError;

/// Syscalls that fail with `EPERM` inside every sandbox.
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "adjtimex",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
];

/// `CLONE_NEW*` flags refused in `clone(2)`'s first argument.
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// `personality(2)` flags refused: READ_IMPLIES_EXEC, MMAP_PAGE_ZERO.
const PERSONALITY_FLAGS: &[u64] = &[0x0040_0000, 0x0010_0000];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Architectures the filter covers on this build's host architecture (native plus its compat ABIs).
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    }
}

fn rule(names: &[&str], errno: u32, args: Option<Vec<LinuxSeccompArg>>) -> Result<LinuxSyscall, OciSpecError> {
    let b = LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno);
    match args {
        Some(a) => b.args(a).build(),
        None => b.build(),
    }
}

/// `(arg0 & mask) == value`.
fn arg0_masked(mask: u64, value: u64) -> Result<LinuxSeccompArg, OciSpecError> {
    LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(mask)
        .value_two(value)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .build()
}

/// The profile described in the module doc.
pub fn default_profile() -> Result<LinuxSeccomp, OciSpecError> {
    let mut syscalls = vec![rule(DENIED, EPERM, None)?, rule(&["clone3"], ENOSYS, None)?];
    for &flag in CLONE_NAMESPACE_FLAGS {
        syscalls.push(rule(&["clone"], EPERM, Some(vec![arg0_masked(flag, flag)?]))?);
    }
    // Bit 31 is part of the mask and must be clear, so the query `personality(0xffffffff)` passes.
    for &flag in PERSONALITY_FLAGS {
        syscalls.push(rule(&["personality"], EPERM, Some(vec![arg0_masked(flag | 0x8000_0000, flag)?]))?);
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
}
