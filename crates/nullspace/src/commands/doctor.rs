//! `nullspace doctor`: what this host supports and why — isolation runtimes (each probed by starting a
//! real throw-away container), cgroup mode, overlayfs, `/dev/kvm`, network namespaces, mmdebstrap,
//! mkfs.ext4 and loop devices (size-limited volumes), user namespaces with idmapped mounts of the data
//! dir's filesystem below overlayfs (what runc/crun sandboxes need unless `--allow-host-root`) — and whether
//! the API server at the configured URL answers.

use std::path::Path;

use serde::Serialize;

use crate::cli::{DoctorArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::output::print_json;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Pass,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    message: String,
}

impl Check {
    fn new(name: &'static str, status: Status, message: impl Into<String>) -> Self {
        Self { name, status, message: message.into() }
    }
}

/// Runs every check and prints the report; exits 1 when a required capability is missing.
pub async fn run(args: DoctorArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let probes = nullspace_runtime::probe_all().await;
    let choice = nullspace_runtime::choose_auto(probes.clone());
    let selected = choice.as_ref().ok().map(|choice| choice.kind.to_string());
    let mut checks = Vec::new();
    checks.push(match &choice {
        Ok(choice) => Check::new(
            "runtime",
            if choice.kind.serves_everything() { Status::Pass } else { Status::Warn },
            format!("`--runtime auto` selects {}: {}", choice.kind, choice.explanation),
        ),
        Err(_) => Check::new("runtime", Status::Fail, "no isolation runtime works on this host (install runc)"),
    });
    checks.push(cgroup_check(Path::new("/sys/fs/cgroup")));
    checks.push(overlay_check(&std::fs::read_to_string("/proc/filesystems").unwrap_or_default()));
    checks.push(userns_check(&super::data_dir(args.data_dir)?).await);
    checks.push(kvm_check());
    checks.push(netns_check().await);
    checks.push(mmdebstrap_check());
    checks.push(volume_size_check());
    checks.push(sandbox_disk_check());
    checks.push(api_check(global).await);

    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if global.json {
        print_json(
            &serde_json::json!({"ok": !failed, "selected_runtime": selected, "runtimes": probes, "checks": checks}),
        )?;
    } else {
        println!("runtimes:");
        for probe in &probes {
            let mark = if probe.works { "ok  " } else { "fail" };
            let time = probe.start_ms.map(|ms| format!(" [{ms} ms]")).unwrap_or_default();
            println!("  {mark} {:<6} {}{time}", probe.kind.to_string(), probe.reason);
        }
        println!("checks:");
        for check in &checks {
            let mark = match check.status {
                Status::Pass => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "fail",
            };
            println!("  {mark} {:<10} {}", check.name, check.message);
        }
    }
    Ok(if failed { ExitStatus::Failure } else { ExitStatus::Success })
}

/// v2 (unified), hybrid (v1 with a unified mount), or v1, from the layout of `root`.
fn cgroup_check(root: &Path) -> Check {
    if root.join("cgroup.controllers").exists() {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        Check::new("cgroups", Status::Pass, format!("v2 (unified); controllers: {}", controllers.trim()))
    } else if root.join("unified").join("cgroup.controllers").exists() {
        Check::new("cgroups", Status::Warn, "hybrid (v1 controllers plus a v2 mount); crun refuses it, runc works")
    } else if root.join("memory").exists() || root.join("cpu").exists() {
        Check::new("cgroups", Status::Warn, "v1; limits work with runc, v2 is preferred")
    } else {
        Check::new("cgroups", Status::Fail, format!("no cgroup hierarchy at {}", root.display()))
    }
}

fn overlay_check(filesystems: &str) -> Check {
    let present = filesystems.lines().any(|line| line.split_whitespace().last() == Some("overlay"));
    if present {
        Check::new("overlayfs", Status::Pass, "overlay is in /proc/filesystems")
    } else {
        Check::new("overlayfs", Status::Fail, "overlay is not in /proc/filesystems (try `modprobe overlay`)")
    }
}

/// Whether runc/crun sandboxes can get their own user namespace: the probe makes one, idmaps two
/// directories on the data dir's filesystem (the nearest existing ancestor when it does not exist yet),
/// mounts an overlay over them and checks ownership both ways.
async fn userns_check(data_dir: &Path) -> Check {
    let Some(dir) = data_dir.ancestors().find(|dir| dir.is_dir()).map(Path::to_path_buf) else {
        return Check::new("userns", Status::Fail, format!("no directory of {} exists", data_dir.display()));
    };
    let probed = tokio::task::spawn_blocking(move || nullspace_node::idmap::probe(&dir)).await;
    match probed {
        Ok(Ok(())) => Check::new(
            "userns",
            Status::Pass,
            format!("user namespaces and idmapped overlay layers work on {}", data_dir.display()),
        ),
        Ok(Err(reason)) => Check::new(
            "userns",
            Status::Fail,
            format!(
                "{reason}: `nullspace server` refuses to start (runc/crun sandboxes would run as the host's \
                 root) unless given --allow-host-root"
            ),
        ),
        Err(error) => Check::new("userns", Status::Fail, format!("the probe failed: {error}")),
    }
}

fn kvm_check() -> Check {
    let kvm = Path::new("/dev/kvm");
    if !kvm.exists() {
        return Check::new("kvm", Status::Warn, "/dev/kvm is missing: microVM runtimes would need software emulation");
    }
    match std::fs::OpenOptions::new().read(true).write(true).open(kvm) {
        Ok(_) => Check::new("kvm", Status::Pass, "/dev/kvm is usable"),
        Err(error) => Check::new("kvm", Status::Warn, format!("/dev/kvm exists but cannot be opened: {error}")),
    }
}

async fn netns_check() -> Check {
    let output = tokio::process::Command::new("ip").args(["netns", "list"]).output().await;
    match output {
        Ok(out) if out.status.success() => Check::new("netns", Status::Pass, "`ip netns` works"),
        Ok(out) => Check::new(
            "netns",
            Status::Warn,
            format!("`ip netns list` failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        ),
        Err(error) => Check::new("netns", Status::Warn, format!("`ip` is not usable ({error}); install iproute2")),
    }
}

fn mmdebstrap_check() -> Check {
    match find_in_path("mmdebstrap") {
        Some(path) => Check::new("mmdebstrap", Status::Pass, format!("found at {}", path.display())),
        None => Check::new(
            "mmdebstrap",
            Status::Warn,
            "not found: needed to build the base template (apt-get install mmdebstrap)",
        ),
    }
}

/// Size-limited volumes are ext4 images made by `mkfs.ext4` and loop-mounted.
fn volume_size_check() -> Check {
    match (find_mkfs_ext4(), Path::new("/dev/loop-control").exists()) {
        (Some(_), true) => {
            Check::new("volume-size", Status::Pass, "mkfs.ext4 and loop devices: volumes can have size limits")
        }
        (None, _) => Check::new(
            "volume-size",
            Status::Warn,
            "mkfs.ext4 not found: volumes with a size limit cannot be created (apt-get install e2fsprogs)",
        ),
        (Some(_), false) => Check::new(
            "volume-size",
            Status::Warn,
            "no /dev/loop-control: volumes with a size limit cannot be mounted (modprobe loop)",
        ),
    }
}

/// Sandbox disk limits are ext4 images made by `mkfs.ext4` and loop-mounted, like size-limited volumes;
/// without them the server starts only with `--sandbox-disk unlimited`.
fn sandbox_disk_check() -> Check {
    let unlimited =
        "the server refuses to start unless given --sandbox-disk unlimited (sandboxes can then fill the host's disk)";
    match (find_mkfs_ext4(), Path::new("/dev/loop-control").exists()) {
        (Some(_), true) => Check::new(
            "sandbox-disk",
            Status::Pass,
            "mkfs.ext4 and loop devices: each sandbox's writes are limited to its disk_mb (--sandbox-disk)",
        ),
        (None, _) => Check::new(
            "sandbox-disk",
            Status::Warn,
            format!("mkfs.ext4 not found (apt-get install e2fsprogs): sandbox disks cannot be limited; {unlimited}"),
        ),
        (Some(_), false) => Check::new(
            "sandbox-disk",
            Status::Warn,
            format!("no /dev/loop-control (modprobe loop): sandbox disks cannot be limited; {unlimited}"),
        ),
    }
}

fn find_mkfs_ext4() -> Option<std::path::PathBuf> {
    find_in_path("mkfs.ext4").or_else(|| {
        ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].map(std::path::PathBuf::from).into_iter().find(|p| p.is_file())
    })
}

async fn api_check(global: &GlobalArgs) -> Check {
    let client = match super::client(global) {
        Ok(client) => client,
        Err(error) => return Check::new("api", Status::Warn, format!("{error:#}")),
    };
    let url = client.base_url().to_owned();
    match client.health().await {
        Ok(health) if health.status < 500 => {
            let key = if client.has_api_key() { "API key configured" } else { "no API key configured" };
            Check::new("api", Status::Pass, format!("{url} answers /healthz (HTTP {}); {key}", health.status))
        }
        Ok(health) => Check::new(
            "api",
            Status::Warn,
            format!(
                "{url} answers /healthz with HTTP {} ({})",
                health.status,
                health.body.as_ref().and_then(|b| b["status"].as_str()).unwrap_or("not ready")
            ),
        ),
        Err(_) => Check::new("api", Status::Warn, format!("{url} does not answer; start it with `nullspace server`")),
    }
}

fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_cgroup_modes_from_the_layout() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_check(root.path()).status, Status::Fail);
        std::fs::create_dir(root.path().join("memory")).unwrap();
        assert!(cgroup_check(root.path()).message.starts_with("v1"));
        std::fs::create_dir(root.path().join("unified")).unwrap();
        std::fs::write(root.path().join("unified/cgroup.controllers"), "").unwrap();
        assert!(cgroup_check(root.path()).message.starts_with("hybrid"));
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        assert_eq!(cgroup_check(root.path()).message, "v2 (unified); controllers: cpu memory");
    }

    #[test]
    fn finds_overlay_in_proc_filesystems() {
        assert_eq!(overlay_check("nodev\tsysfs\nnodev\toverlay\n").status, Status::Pass);
        assert_eq!(overlay_check("nodev\tsysfs\n").status, Status::Fail);
    }
}
