//! The OCI backend: writes the bundle's `config.json` and drives `runc`, `crun` or `runsc` through
//! their command lines, with a state root of our own (`--root`) so that only our containers are seen.
//!
//! `start` runs `<runtime> run --detach` (measured faster than `create` + `start` with runc here:
//! ~38 ms against ~44 ms). The init process's stdin is `/dev/null` and its stdout and stderr go to
//! `<bundle>/init.log`, a file: a detached init must not hold pipes of ours. The runtime's own errors go
//! to that file too and to `<bundle>/runtime.log` (JSON lines), from which failures are reported.
//! `destroy` is `kill KILL`, a short wait for the init to stop, `delete --force`, then the removal of
//! any cgroup directory `<controller>/nullspace/<id>` left behind.

mod bundle;
mod live_mounts;
mod seccomp;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

pub use bundle::CGROUP_PARENT;
pub(crate) use bundle::{nofile_limit, oci_spec};

use crate::error::RuntimeError;
use crate::spec::{validate_id, RuntimeKind, SandboxSpec};
use crate::{IsolationRuntime, RuntimeResult};

/// Longest time any single runtime command may take before it is killed and reported.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the init process to stop after `kill KILL`, before `delete --force` takes over.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Most bytes of a log file quoted in an error.
const ERROR_TAIL: usize = 2048;
/// Global runsc flags of every command that creates or saves a sandbox (run, checkpoint, restore):
/// gVisor only joins a prepared network namespace (`--network=sandbox` refuses a new one), `none` gives
/// the sandbox its own loopback-only stack, as the new netns does under runc; the guest creates its unix
/// socket in the bind-mounted control dir, where the node connects.
const RUNSC_SANDBOX_FLAGS: [&str; 2] = ["--network=none", "--host-uds=create"];

impl RuntimeKind {
    /// Whether this runtime can save a running sandbox's memory and processes and restore them
    /// ([`OciRuntime::checkpoint`], [`OciRuntime::restore`]): gVisor only. runc would need CRIU.
    pub fn checkpoints_memory(self) -> bool {
        matches!(self, RuntimeKind::Runsc)
    }
}

/// One container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    /// Container (= sandbox) id.
    pub id: String,
    /// Host pid of the init process (0 once stopped).
    #[serde(default)]
    pub pid: i64,
    /// `created`, `running`, `paused` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Bundle directory.
    #[serde(default)]
    pub bundle: PathBuf,
}

/// An OCI runtime binary plus the state root it keeps our containers under.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    kind: RuntimeKind,
    state_root: PathBuf,
    binary: PathBuf,
}

impl OciRuntime {
    /// A runtime of `kind` keeping its state under `state_root` (e.g. `<data-dir>/runtime/runc`,
    /// created on first start). The binary is looked up in `$PATH` and the sbin directories.
    pub fn new(kind: RuntimeKind, state_root: PathBuf) -> Self {
        let binary = kind.find_binary().unwrap_or_else(|| PathBuf::from(kind.binary_name()));
        OciRuntime { kind, state_root, binary }
    }

    /// Uses this executable instead of the one found in `$PATH`.
    pub fn with_binary(mut self, binary: PathBuf) -> Self {
        self.binary = binary;
        self
    }

    /// The `--root` directory of the runtime.
    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    /// The runtime executable.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Writes `<bundle_dir>/config.json` for `spec`; returns its path.
    pub fn write_bundle(&self, spec: &SandboxSpec) -> RuntimeResult<PathBuf> {
        self.write_bundle_with(spec, nofile_limit())
    }

    fn write_bundle_with(&self, spec: &SandboxSpec, nofile: u64) -> RuntimeResult<PathBuf> {
        spec.validate()?;
        let config =
            oci_spec(spec, nofile).map_err(|source| RuntimeError::BuildSpec { id: spec.id.clone(), source })?;
        let path = spec.bundle_dir.join("config.json");
        let json = serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::WriteBundle {
            id: spec.id.clone(),
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&path, json).map_err(|source| RuntimeError::WriteBundle {
            id: spec.id.clone(),
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Every container under our state root with its status; empty when the root does not exist.
    pub async fn containers(&self) -> RuntimeResult<Vec<ContainerInfo>> {
        if !self.state_root.is_dir() {
            return Ok(Vec::new());
        }
        let out = self.output("", "list", &["list", "--format", "json"]).await?;
        if !out.status.success() {
            return Err(RuntimeError::List { root: self.state_root.clone(), stderr: trimmed(&out.stderr) });
        }
        parse_list(&out.stdout).map_err(|source| RuntimeError::ParseList { root: self.state_root.clone(), source })
    }

    /// Freezes every process of the sandbox (cgroup freezer), so its filesystem can be copied consistently.
    pub async fn freeze(&self, id: &str) -> RuntimeResult<()> {
        self.simple(id, "pause", &["pause", id]).await
    }

    /// Thaws a sandbox frozen by [`OciRuntime::freeze`].
    pub async fn thaw(&self, id: &str) -> RuntimeResult<()> {
        self.simple(id, "resume", &["resume", id]).await
    }

    async fn simple(&self, id: &str, operation: &'static str, args: &[&str]) -> RuntimeResult<()> {
        let out = self.output(id, operation, args).await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(RuntimeError::Control { id: id.to_owned(), operation, stderr: trimmed(&out.stderr) })
        }
    }

    /// The container's status (`created`, `running`, `paused`, `stopped`), `None` when it does not exist.
    pub async fn status(&self, id: &str) -> RuntimeResult<Option<String>> {
        let out = self.output(id, "state", &["state", id]).await?;
        if !out.status.success() {
            // "container does not exist" is the only expected failure; treat any failure as absence,
            // `delete` reports real problems.
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct State {
            status: String,
        }
        Ok(serde_json::from_slice::<State>(&out.stdout).ok().map(|s| s.status))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.state_root).args(args).kill_on_drop(true);
        cmd
    }

    /// Runs a short runtime command with piped output, bounded by [`COMMAND_TIMEOUT`].
    async fn output(&self, id: &str, operation: &'static str, args: &[&str]) -> RuntimeResult<Output> {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null());
        let fut = cmd.output();
        match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(source)) => Err(RuntimeError::Spawn { id: id.to_string(), binary: self.binary.clone(), source }),
            Err(_) => Err(RuntimeError::Timeout { id: id.to_string(), operation }),
        }
    }

    async fn run_detached(&self, spec: &SandboxSpec, nofile: u64, restore_from: Option<&Path>) -> RuntimeResult<()> {
        let id = spec.id.as_str();
        let operation = if restore_from.is_some() { "restore" } else { "start" };
        let write_err =
            |path: &Path, source| RuntimeError::WriteBundle { id: id.to_string(), path: path.to_path_buf(), source };
        let init_log = spec.bundle_dir.join("init.log");
        let runtime_log = spec.bundle_dir.join("runtime.log");
        let stdout =
            OpenOptions::new().create(true).append(true).open(&init_log).map_err(|e| write_err(&init_log, e))?;
        let stderr = stdout.try_clone().map_err(|e| write_err(&init_log, e))?;
        File::create(&runtime_log).map_err(|e| write_err(&runtime_log, e))?;

        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.state_root);
        if self.kind == RuntimeKind::Runsc {
            // Its --log is a debug log; its errors still reach init.log through stderr. Checkpoint and
            // restore repeat these flags: a restore must see the same network setup.
            cmd.args(RUNSC_SANDBOX_FLAGS);
        } else {
            let mut log = OsString::from("--log=");
            log.push(&runtime_log);
            cmd.arg(log).arg("--log-format=json");
        }
        match restore_from {
            None => cmd.arg("run"),
            Some(image) => cmd.arg("restore").arg("--image-path").arg(image),
        };
        cmd.arg("--detach").arg("--bundle").arg(&spec.bundle_dir).arg(id);
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr).kill_on_drop(true);
        // SAFETY: the closure only calls setrlimit(2), which is async-signal-safe, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
                // Failure (a host nr_open below it) surfaces as the runtime's own rlimit error.
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
        let status = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.status()).await {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => {
                return Err(RuntimeError::Spawn { id: id.to_string(), binary: self.binary.clone(), source })
            }
            Err(_) => return Err(RuntimeError::Timeout { id: id.to_string(), operation }),
        };
        if status.success() {
            return Ok(());
        }
        let stderr = last_error(&runtime_log)
            .or_else(|| tail(&init_log))
            .unwrap_or_else(|| format!("{} exited with {status}", self.kind));
        match restore_from {
            None => Err(RuntimeError::Start { id: id.to_string(), stderr }),
            Some(_) => Err(RuntimeError::Restore { id: id.to_string(), stderr }),
        }
    }

    /// Saves the memory and processes of running sandbox `id` into `image_dir` (created when missing),
    /// stops it and deletes its container state (its cgroup goes with [`IsolationRuntime::destroy`]). Only runtimes whose
    /// [`RuntimeKind::checkpoints_memory`] is true can; the guest must hold no socket bound on the host.
    #[tracing::instrument(skip(self, image_dir), fields(runtime = %self.kind))]
    pub async fn checkpoint(&self, id: &str, image_dir: &Path) -> RuntimeResult<()> {
        validate_id(id).map_err(|r| RuntimeError::InvalidSpec { id: id.to_string(), reason: r.to_string() })?;
        if !self.kind.checkpoints_memory() {
            let stderr = format!("{} cannot checkpoint memory", self.kind);
            return Err(RuntimeError::Checkpoint { id: id.to_string(), stderr });
        }
        std::fs::create_dir_all(image_dir).map_err(|source| RuntimeError::WriteBundle {
            id: id.to_string(),
            path: image_dir.to_path_buf(),
            source,
        })?;
        let image = image_dir.to_string_lossy();
        let mut args: Vec<&str> = RUNSC_SANDBOX_FLAGS.to_vec();
        args.extend(["checkpoint", "--image-path", &image, id]);
        let started = Instant::now();
        let out = self.output(id, "checkpoint", &args).await?;
        if !out.status.success() {
            // gVisor prints the reason first and a goroutine dump after it: keep the beginning.
            return Err(RuntimeError::Checkpoint { id: id.to_string(), stderr: head(&out.stderr) });
        }
        // The checkpointed sandbox is stopped for good: free its id at once (a restore may reuse it). Its
        // init is gone already, so the kill and wait of `destroy` would only wait out their timeout.
        let delete = self.output(id, "delete", &["delete", "--force", id]).await?;
        if !delete.status.success() {
            tracing::warn!(stderr = %trimmed(&delete.stderr), "deleting the checkpointed container failed");
        }
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "sandbox checkpointed");
        Ok(())
    }

    /// Starts sandbox `spec` from the memory image `image_dir` written by [`OciRuntime::checkpoint`]
    /// instead of booting its init: the bundle is written as for [`IsolationRuntime::start`] (the rootfs
    /// and mount sources may be other paths with the same content), and its processes continue.
    #[tracing::instrument(skip_all, fields(sandbox = %spec.id, runtime = %self.kind))]
    pub async fn restore(&self, spec: &SandboxSpec, image_dir: &Path) -> RuntimeResult<()> {
        spec.validate()?;
        if !self.kind.checkpoints_memory() {
            let stderr = format!("{} cannot restore memory", self.kind);
            return Err(RuntimeError::Restore { id: spec.id.clone(), stderr });
        }
        self.launch(spec, Some(image_dir)).await
    }

    /// Writes the bundle and runs the sandbox detached (booted, or restored from `restore_from`); on failure
    /// nothing half-created is left behind and the launch error is the one reported.
    async fn launch(&self, spec: &SandboxSpec, restore_from: Option<&Path>) -> RuntimeResult<()> {
        std::fs::create_dir_all(&self.state_root).map_err(|source| RuntimeError::WriteBundle {
            id: spec.id.clone(),
            path: self.state_root.clone(),
            source,
        })?;
        let nofile = nofile_limit();
        self.write_bundle_with(spec, nofile)?;
        let started = Instant::now();
        let verb = if restore_from.is_some() { "restored" } else { "started" };
        match self.run_detached(spec, nofile, restore_from).await {
            Ok(()) => {
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "sandbox {verb}");
                Ok(())
            }
            Err(e) => {
                if let Err(cleanup) = self.destroy(&spec.id).await {
                    tracing::warn!(error = %cleanup, "cleanup after a failed launch");
                }
                Err(e)
            }
        }
    }

    /// Sends `signal` (e.g. `USR1`) to the sandbox's init process.
    pub async fn signal(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        self.simple(id, "kill", &["kill", id, signal]).await
    }

    /// Host pid of the init process of running (or frozen) sandbox `id`.
    async fn init_pid(&self, id: &str) -> RuntimeResult<i32> {
        validate_id(id).map_err(|r| RuntimeError::InvalidSpec { id: id.to_string(), reason: r.to_string() })?;
        let out = self.output(id, "state", &["state", id]).await?;
        #[derive(Deserialize)]
        struct State {
            status: String,
            #[serde(default)]
            pid: i32,
        }
        match serde_json::from_slice::<State>(&out.stdout) {
            Ok(state)
                if out.status.success() && state.pid > 0 && matches!(state.status.as_str(), "running" | "paused") =>
            {
                Ok(state.pid)
            }
            _ => Err(RuntimeError::NotRunning { id: id.to_string() }),
        }
    }

    /// The mount namespace and root directory of running sandbox `id`, opened through its init's `/proc`
    /// entry (checked to still be that sandbox's init afterwards, so a recycled pid is never used).
    async fn open_namespace(&self, id: &str) -> RuntimeResult<(OwnedFd, OwnedFd)> {
        if self.kind == RuntimeKind::Runsc {
            // gVisor's sentry has its own VFS: a host mount namespace holds nothing of the sandbox.
            return Err(RuntimeError::LiveMountsUnsupported { id: id.to_string(), kind: self.kind });
        }
        let pid = self.init_pid(id).await?;
        let open = |what: &str| {
            std::fs::File::open(format!("/proc/{pid}/{what}"))
                .map(OwnedFd::from)
                .map_err(|_| RuntimeError::NotRunning { id: id.to_string() })
        };
        let (ns, root) = (open("ns/mnt")?, open("root")?);
        if self.init_pid(id).await? != pid {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        Ok((ns, root))
    }

    /// The user namespace of running sandbox `id`'s init when it is not the node's own, with the host uid
    /// its root maps to (`None` for a sandbox whose root is the host's root).
    async fn own_user_namespace(&self, id: &str) -> RuntimeResult<Option<(OwnedFd, u32)>> {
        use std::os::unix::fs::MetadataExt;
        let pid = self.init_pid(id).await?;
        let not_running = |_| RuntimeError::NotRunning { id: id.to_string() };
        let theirs = std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(not_running)?;
        let (their_meta, own_meta) =
            (theirs.metadata().map_err(not_running)?, std::fs::metadata("/proc/self/ns/user").map_err(not_running)?);
        if self.init_pid(id).await? != pid {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        if their_meta.dev() == own_meta.dev() && their_meta.ino() == own_meta.ino() {
            return Ok(None);
        }
        // `0 <host id> <count>`: the first line of the map names where its root lives.
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).map_err(not_running)?;
        let root = map.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.first() == Some(&"0")).then(|| fields.get(1)?.parse::<u32>().ok()).flatten()
        });
        let root = root.ok_or_else(|| RuntimeError::NotRunning { id: id.to_string() })?;
        if self.init_pid(id).await? != pid {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        Ok(Some((OwnedFd::from(theirs), root)))
    }

    /// Bind-mounts the directory open as `source` at `target` inside running sandbox `id` (directories on
    /// the way are created, no symlink is followed), `nosuid,nodev`, read-only when `read_only`. The mount
    /// exists only in the sandbox's mount namespace and goes with it.
    pub async fn mount_live(&self, id: &str, source: OwnedFd, target: &str, read_only: bool) -> RuntimeResult<()> {
        let (ns, _root) = self.open_namespace(id).await?;
        // A sandbox in a user namespace of its own sees the volume through an idmapped clone (0-based on
        // disk, its own ids inside), as at launch.
        let userns = self.own_user_namespace(id).await?;
        let target_owned = target.to_string();
        let result = tokio::task::spawn_blocking(move || {
            let (userns, fs_id) = userns.map_or((None, None), |(ns, base)| (Some(ns), Some(base)));
            let tree = live_mounts::clone_tree(&source, read_only, userns.as_ref())?;
            live_mounts::attach(&ns, &tree, &target_owned, fs_id)
        })
        .await;
        self.live_result(id, "mount", target, result)
    }

    /// Unmounts `target` inside running sandbox `id` (lazily: open files keep working until closed);
    /// `false` when nothing was mounted there or, with `source`, when the mount there is not of the
    /// directory open as `source`. The path is walked without following symlinks, so whatever the
    /// sandbox did to its tree, only a mount at exactly that path (and of that directory) goes.
    pub async fn unmount_live(&self, id: &str, target: &str, source: Option<OwnedFd>) -> RuntimeResult<bool> {
        let (ns, _root) = self.open_namespace(id).await?;
        let target_owned = target.to_string();
        let result =
            tokio::task::spawn_blocking(move || live_mounts::detach(&ns, &target_owned, source.as_ref())).await;
        self.live_result(id, "unmount", target, result)
    }

    /// The paths inside running sandbox `id` at which the directory open as `source` is mounted now
    /// (wherever renames of their parents took them), from the sandbox's mount table.
    pub async fn find_live_mounts(&self, id: &str, source: OwnedFd) -> RuntimeResult<Vec<String>> {
        let (_ns, root) = self.open_namespace(id).await?;
        let pid = self.init_pid(id).await?;
        let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .map_err(|_| RuntimeError::NotRunning { id: id.to_string() })?;
        let result = tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for path in live_mounts::mount_points(&table) {
                if path != "/" && live_mounts::is_mounted(&root, &path, &source)? && !found.contains(&path) {
                    found.push(path);
                }
            }
            Ok(found)
        })
        .await;
        self.live_result(id, "find", "/", result)
    }

    /// Whether `target` inside running sandbox `id` is the directory open as `source` (the mount is in
    /// place); the target is resolved inside the sandbox's root.
    pub async fn probe_live_mount(&self, id: &str, target: &str, source: OwnedFd) -> RuntimeResult<bool> {
        let (_ns, root) = self.open_namespace(id).await?;
        let target_owned = target.to_string();
        let result = tokio::task::spawn_blocking(move || live_mounts::is_mounted(&root, &target_owned, &source)).await;
        self.live_result(id, "probe", target, result)
    }

    fn live_result<T>(
        &self,
        id: &str,
        operation: &'static str,
        target: &str,
        result: Result<Result<T, live_mounts::StepError>, tokio::task::JoinError>,
    ) -> RuntimeResult<T> {
        let error = |step, source| RuntimeError::LiveMount {
            id: id.to_string(),
            operation,
            target: target.to_string(),
            step,
            source,
        };
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.at_mount_point() => Err(RuntimeError::MountPoint {
                id: id.to_string(),
                target: target.to_string(),
                step: e.step,
                source: std::io::Error::from_raw_os_error(e.errno),
            }),
            Ok(Err(e)) => Err(error(e.step, std::io::Error::from_raw_os_error(e.errno))),
            Err(join) => Err(error("running the helper", std::io::Error::other(join.to_string()))),
        }
    }

    /// Waits until the container is no longer running (or gone), at most [`STOP_WAIT`].
    async fn wait_stopped(&self, id: &str) -> RuntimeResult<()> {
        let deadline = Instant::now() + STOP_WAIT;
        let mut pause = Duration::from_millis(2);
        loop {
            match self.status(id).await?.as_deref() {
                None | Some("stopped") => return Ok(()),
                Some(_) if Instant::now() >= deadline => return Ok(()),
                Some(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

impl IsolationRuntime for OciRuntime {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    #[tracing::instrument(skip_all, fields(sandbox = %spec.id, runtime = %self.kind))]
    async fn start(&self, spec: &SandboxSpec) -> RuntimeResult<()> {
        spec.validate()?;
        self.launch(spec, None).await
    }

    #[tracing::instrument(skip(self), fields(runtime = %self.kind))]
    async fn destroy(&self, id: &str) -> RuntimeResult<()> {
        validate_id(id).map_err(|r| RuntimeError::InvalidSpec { id: id.to_string(), reason: r.to_string() })?;
        if self.state_root.is_dir() {
            let kill = self.output(id, "kill", &["kill", id, "KILL"]).await?;
            if !kill.status.success() {
                tracing::debug!(stderr = %trimmed(&kill.stderr), "kill refused (stopped or absent)");
            } else {
                self.wait_stopped(id).await?;
            }
            let delete = self.output(id, "delete", &["delete", "--force", id]).await?;
            let stderr = trimmed(&delete.stderr);
            if !delete.status.success() && !stderr.contains("does not exist") && !stderr.contains("not exist") {
                return Err(RuntimeError::Delete { id: id.to_string(), stderr });
            }
        }
        crate::cgroup::remove_sandbox_cgroups(id).await
    }

    async fn list(&self) -> RuntimeResult<Vec<String>> {
        Ok(self.containers().await?.into_iter().map(|c| c.id).collect())
    }
}

/// Parses `<runtime> list --format json` (`null` or an array of states).
pub(crate) fn parse_list(stdout: &[u8]) -> Result<Vec<ContainerInfo>, serde_json::Error> {
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_str::<Option<Vec<ContainerInfo>>>(&text)?.unwrap_or_default())
}

fn trimmed(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().rev().nth(ERROR_TAIL) {
        Some((i, _)) => format!("…{}", &text[i..]),
        None => text.to_string(),
    }
}

/// The last `"level":"error"` message of a runtime's JSON log.
fn last_error(path: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Line {
        level: String,
        msg: String,
    }
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .find(|l| l.level == "error")
        .map(|l| l.msg.trim().to_string())
}

/// The beginning of a command's output, trimmed.
fn head(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(ERROR_TAIL / 4) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The end of a text file (its last [`ERROR_TAIL`] bytes only: `init.log` can be large), trimmed;
/// `None` when empty or unreadable.
fn tail(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(ERROR_TAIL as u64))).ok()?;
    let mut bytes = Vec::with_capacity(ERROR_TAIL);
    file.take(ERROR_TAIL as u64).read_to_end(&mut bytes).ok()?;
    Some(trimmed(&bytes)).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
