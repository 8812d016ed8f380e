//! Unit tests of the bundle this backend writes and of the runtime output it reads.

use serde_json::Value;

use super::*;
use crate::spec::{BindMount, Limits};

fn sample() -> SandboxSpec {
    SandboxSpec {
        id: "sb_abc123".into(),
        bundle_dir: "/var/lib/nullspace/sandboxes/sb_abc123/bundle".into(),
        rootfs: "/var/lib/nullspace/sandboxes/sb_abc123/rootfs".into(),
        hostname: "sb-abc123".into(),
        args: vec!["/run/nullspace/nullspace-guestd".into(), "--vsock=false".into()],
        env: vec!["HOME=/root".into()],
        mounts: vec![
            BindMount {
                source: "/var/lib/nullspace/bin/nullspace-guestd".into(),
                destination: "/run/nullspace/nullspace-guestd".into(),
                read_only: true,
            },
            BindMount { source: "/data/vol1".into(), destination: "/mnt/vol1".into(), read_only: false },
        ],
        limits: Limits { vcpus: 2, memory_mb: 512, pids: 256 },
        no_new_privileges: true,
        netns: None,
        userns: None,
    }
}

fn config(spec: &SandboxSpec) -> Value {
    serde_json::to_value(oci_spec(spec, bundle::NOFILE).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

#[test]
fn process_root_and_hostname() {
    let c = config(&sample());
    assert_eq!(c["root"]["path"], "/var/lib/nullspace/sandboxes/sb_abc123/rootfs");
    assert_eq!(c["root"]["readonly"], false);
    assert_eq!(c["hostname"], "sb-abc123");
    let p = &c["process"];
    assert_eq!(p["user"]["uid"], 0);
    assert_eq!(p["user"]["gid"], 0);
    assert_eq!(p["cwd"], "/");
    assert_eq!(p["terminal"], false);
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(p["args"][0], "/run/nullspace/nullspace-guestd");
    assert_eq!(p["args"][1], "--vsock=false");
    let env = strings(&p["env"]);
    assert!(env.contains(&"HOME=/root".to_string()));
    assert!(env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin:")), "{env:?}");
    assert_eq!(p["rlimits"][0]["type"], "RLIMIT_NOFILE");
    assert_eq!(p["rlimits"][0]["soft"], 1_048_576);
    assert_eq!(p["rlimits"][0]["hard"], 1_048_576);
    if bundle::has_cap_sys_resource() {
        assert_eq!(p["oomScoreAdj"], -1000, "the guest daemon is out of the sandbox's OOM line of fire");
    } else {
        assert!(p.get("oomScoreAdj").is_none(), "a node that may not lower it leaves it alone");
    }
}

#[test]
fn nofile_is_the_given_limit() {
    let c = serde_json::to_value(oci_spec(&sample(), 4096).unwrap()).unwrap();
    assert_eq!(c["process"]["rlimits"][0]["hard"], 4096);
    assert!(bundle::nofile_limit() <= bundle::NOFILE);
}

#[test]
fn explicit_path_is_kept() {
    let mut s = sample();
    s.env = vec!["PATH=/opt/bin".into()];
    s.no_new_privileges = false;
    let c = config(&s);
    assert_eq!(strings(&c["process"]["env"]), vec!["PATH=/opt/bin".to_string()]);
    assert_eq!(c["process"]["noNewPrivileges"], false);
}

#[test]
fn capabilities_are_dockers_default_without_mknod_setfcap_and_net_raw() {
    let c = config(&sample());
    let caps = &c["process"]["capabilities"];
    let mut expected: Vec<String> = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ]
    .iter()
    .map(|c| format!("CAP_{c}"))
    .collect();
    expected.sort();
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(strings(&caps[set]), expected, "{set}");
    }
    for set in ["inheritable", "ambient"] {
        assert!(caps[set].as_array().map(Vec::len).unwrap_or(0) == 0, "{set}: {}", caps[set]);
    }
    for absent in ["CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_SETFCAP", "CAP_NET_RAW"] {
        assert!(!strings(&caps["bounding"]).contains(&absent.to_string()), "{absent}");
    }
}

#[test]
fn namespaces_are_new_and_complete() {
    let c = config(&sample());
    let ns = c["linux"]["namespaces"].as_array().unwrap();
    let mut types: Vec<&str> = ns.iter().map(|n| n["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["cgroup", "ipc", "mount", "network", "pid", "uts"]);
    assert!(ns.iter().all(|n| n.get("path").is_none()), "every namespace is new");
}

#[test]
fn limits_and_cgroup_path() {
    let c = config(&sample());
    let r = &c["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 512 * 1024 * 1024);
    assert_eq!(r["memory"]["swap"], 512 * 1024 * 1024);
    assert_eq!(r["cpu"]["quota"], 200_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["pids"]["limit"], 256);
    assert_eq!(r["devices"][0]["allow"], false);
    assert_eq!(r["devices"][0]["access"], "rwm");
    assert_eq!(c["linux"]["cgroupsPath"], "/nullspace/sb_abc123");
}

#[test]
fn zero_limits_mean_unlimited() {
    let mut s = sample();
    s.limits = Limits { vcpus: 0, memory_mb: 0, pids: 0 };
    let c = config(&s);
    let r = &c["linux"]["resources"];
    assert!(r.get("memory").is_none() && r.get("cpu").is_none() && r.get("pids").is_none(), "{r}");
}

#[test]
fn mounts_standard_then_binds() {
    let c = config(&sample());
    let mounts = c["mounts"].as_array().unwrap();
    let dests: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().unwrap()).collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/run/nullspace/nullspace-guestd",
            "/mnt/vol1"
        ]
    );
    let by_dest = |d: &str| mounts.iter().find(|m| m["destination"] == d).unwrap().clone();
    assert_eq!(by_dest("/proc")["type"], "proc");
    assert_eq!(by_dest("/dev")["type"], "tmpfs");
    assert_eq!(by_dest("/dev/pts")["type"], "devpts");
    assert!(strings(&by_dest("/dev/shm")["options"]).contains(&"size=256m".to_string()));
    assert!(strings(&by_dest("/sys")["options"]).contains(&"ro".to_string()));
    assert_eq!(by_dest("/sys/fs/cgroup")["type"], "cgroup");
    assert!(strings(&by_dest("/sys/fs/cgroup")["options"]).contains(&"ro".to_string()));
    let guestd = by_dest("/run/nullspace/nullspace-guestd");
    assert_eq!(guestd["type"], "bind");
    assert_eq!(guestd["source"], "/var/lib/nullspace/bin/nullspace-guestd");
    assert_eq!(strings(&guestd["options"]), ["nodev", "nosuid", "rbind", "ro"]);
    assert_eq!(strings(&by_dest("/mnt/vol1")["options"]), ["nodev", "nosuid", "rbind"]);
}

#[test]
fn masked_and_readonly_paths() {
    let c = config(&sample());
    let masked = strings(&c["linux"]["maskedPaths"]);
    for p in ["/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/sched_debug"] {
        assert!(masked.contains(&p.to_string()), "{p}");
    }
    let ro = strings(&c["linux"]["readonlyPaths"]);
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/irq", "/proc/fs"] {
        assert!(ro.contains(&p.to_string()), "{p}");
    }
}

#[test]
fn seccomp_is_a_denylist() {
    let c = config(&sample());
    let s = &c["linux"]["seccomp"];
    assert_eq!(s["defaultAction"], "SCMP_ACT_ALLOW");
    let arches = strings(&s["architectures"]);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(arches, ["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"]);
    }
    let rules = s["syscalls"].as_array().unwrap();
    let denied = |name: &str| {
        rules.iter().any(|r| {
            r["action"] == "SCMP_ACT_ERRNO"
                && r.get("args").is_none()
                && r["names"].as_array().unwrap().iter().any(|n| n == name)
        })
    };
    for name in ["kexec_load", "init_module", "mount", "bpf", "keyctl", "setns", "unshare", "open_by_handle_at"] {
        assert!(denied(name), "{name} must be denied");
    }
    for name in ["ptrace", "clone", "personality", "read", "execve"] {
        assert!(!denied(name), "{name} must not be denied outright");
    }
    let clone3 = rules.iter().find(|r| r["names"][0] == "clone3").unwrap();
    assert_eq!(clone3["errnoRet"], 38);
    let clone_rules: Vec<&Value> = rules.iter().filter(|r| r["names"][0] == "clone").collect();
    assert_eq!(clone_rules.len(), 7);
    let newuser = clone_rules.iter().find(|r| r["args"][0]["value"] == 0x1000_0000).unwrap();
    assert_eq!(newuser["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(newuser["args"][0]["valueTwo"], 0x1000_0000);
    assert_eq!(newuser["args"][0]["index"], 0);
    let personality = rules.iter().filter(|r| r["names"][0] == "personality");
    assert!(personality.clone().count() == 2);
    assert!(personality.into_iter().all(|r| r["args"][0]["value"].as_u64().unwrap() & 0x8000_0000 != 0));
}

#[test]
fn write_bundle_writes_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sample();
    s.bundle_dir = dir.path().to_path_buf();
    let rt = OciRuntime::new(RuntimeKind::Runc, dir.path().join("state"));
    let path = rt.write_bundle(&s).unwrap();
    assert_eq!(path, dir.path().join("config.json"));
    let back: oci_spec::runtime::Spec = oci_spec::runtime::Spec::load(&path).unwrap();
    assert_eq!(back.hostname().as_deref(), Some("sb-abc123"));
}

#[test]
fn write_bundle_rejects_invalid_spec() {
    let mut s = sample();
    s.id = "bad/id".into();
    let rt = OciRuntime::new(RuntimeKind::Runc, "/nonexistent".into());
    assert!(matches!(rt.write_bundle(&s), Err(RuntimeError::InvalidSpec { .. })));
}

#[test]
fn parses_runtime_list_output() {
    assert!(parse_list(b"null\n").unwrap().is_empty());
    assert!(parse_list(b"").unwrap().is_empty());
    assert!(parse_list(b"[]").unwrap().is_empty());
    let runc = br#"[{"ociVersion":"1.0.2-dev","id":"sb_a","pid":7491,"status":"running","bundle":"/b/sb_a","rootfs":"/r","created":"2026-11-21T23:40:00.053369857Z","owner":"root"},
{"ociVersion":"1.0.2-dev","id":"sb_b","pid":0,"status":"stopped","bundle":"/b/sb_b","rootfs":"/r","created":"2026-11-21T23:40:00Z","owner":"root"}]"#;
    let list = parse_list(runc).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, "sb_a");
    assert_eq!(list[0].pid, 7491);
    assert_eq!(list[0].status, "running");
    assert_eq!(list[1].status, "stopped");
    assert!(parse_list(b"ID PID STATUS").is_err());
}

#[test]
fn last_error_reads_json_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runtime.log");
    std::fs::write(
        &log,
        "{\"level\":\"warning\",\"msg\":\"w\",\"time\":\"t\"}\n{\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"/x\\\": no such file\",\"time\":\"t\"}\n",
    )
    .unwrap();
    assert_eq!(last_error(&log).unwrap(), "runc run failed: exec: \"/x\": no such file");
    assert_eq!(last_error(&dir.path().join("missing")), None);
}

#[test]
fn tail_reads_only_the_end_of_a_large_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("init.log");
    let mut text = "x".repeat(10 * ERROR_TAIL);
    text.push_str("\nthe last error\n");
    std::fs::write(&log, &text).unwrap();
    let end = tail(&log).unwrap();
    assert!(end.ends_with("the last error"), "{end}");
    assert!(end.len() <= ERROR_TAIL + 4, "{} bytes", end.len());
    std::fs::write(&log, "short\n").unwrap();
    assert_eq!(tail(&log).unwrap(), "short");
    assert_eq!(tail(&dir.path().join("missing")), None);
}
