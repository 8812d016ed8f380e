//! Turns an exec request into a ready-to-spawn `Command`: argv or `sh -c`, the sandbox user (groups,
//! gid, uid, HOME), a clean environment (defaults ∪ sandbox envs ∪ request envs), the working directory,
//! and its own session so the whole process group can be killed.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{GuestError, GuestResult};
use crate::files::paths::normalize;
use crate::state::Sandbox;

/// PATH of commands that bring none (Debian's default for root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// Program, or with `shell` a shell command line.
    pub command: String,
    /// Arguments (ignored with `shell`).
    pub args: Vec<String>,
    /// Run through `/bin/sh -c`.
    pub shell: bool,
    /// Working directory (sandbox cwd when absent; relative ones resolve against it).
    pub cwd: Option<String>,
    /// Extra environment.
    pub envs: BTreeMap<String, String>,
    /// User to run as (sandbox default user when absent).
    pub user: Option<String>,
    /// Whether stdin is a pipe (kept for `POST /processes/{pid}/stdin`) or /dev/null.
    pub stdin: bool,
}

impl ExecSpec {
    /// The argv this spec runs.
    pub fn argv(&self) -> Vec<String> {
        if self.shell {
            vec!["/bin/sh".into(), "-c".into(), self.command.clone()]
        } else {
            std::iter::once(self.command.clone()).chain(self.args.iter().cloned()).collect()
        }
    }
}

/// A command ready to spawn and its command line for process listings.
pub fn build(spec: &ExecSpec, sandbox: &Sandbox) -> GuestResult<(Command, String)> {
    if spec.command.trim().is_empty() {
        return Err(GuestError::invalid("command is empty; send the program to run in \"command\""));
    }
    let argv = spec.argv();
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err(GuestError::invalid("command and args must not contain NUL bytes"));
    }
    let user_name = spec.user.as_deref().map(str::trim).filter(|user| !user.is_empty());
    let user = sandbox.user(user_name.or(Some(sandbox.default_user())))?;
    let (sandbox_envs, sandbox_cwd) = sandbox.env_and_cwd();
    let cwd = working_dir(spec.cwd.as_deref(), &sandbox_cwd)?;

    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).current_dir(&cwd).env_clear();
    for (key, value) in environment(&sandbox_envs, &spec.envs, &user.home, &user.name, &user.shell)? {
        command.env(key, value);
    }
    command.stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());

    start_as(&mut command, &user, false);
    Ok((command, argv.join(" ")))
}

/// Makes `command` start in a session of its own (with its stdin, a pty slave, as controlling terminal
/// when `controlling_tty`), back in the sandbox's OOM line of fire (guestd itself is kept out of it,
/// see [`child_oom_score_adj`]) and as `user` when that is not the guest's own identity.
pub fn start_as(command: &mut Command, user: &crate::users::User, controlling_tty: bool) {
    let switch = user.uid != nix::unistd::geteuid().as_raw() || user.gid != nix::unistd::getegid().as_raw();
    let (uid, gid) = (user.uid, user.gid);
    let groups: Vec<libc::gid_t> = user.groups.clone();
    let oom_score = OomScore::for_children();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe syscalls on data
    // prepared before the fork (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            oom_score.apply();
            if libc::setsid() < 0 || (controlling_tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0) {
                return Err(std::io::Error::last_os_error());
            }
            if switch
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The `oom_score_adj` guestd's children get, given guestd's own: guestd runs at -1000 where the
/// runtime could set it (the memory cgroup's OOM killer then never picks the sandbox's init), and its
/// children, which inherit that, go back to 0. Where the runtime could not lower it, guestd keeps its
/// value and children go 500 above it, so they are still picked first. Raising needs no privilege.
pub fn child_oom_score_adj(own: i32) -> i32 {
    if own < 0 {
        0
    } else {
        own.saturating_add(500).min(1000)
    }
}

/// The `oom_score_adj` a child writes for itself between fork and exec, as ASCII prepared before.
#[derive(Debug, Clone, Copy)]
struct OomScore {
    text: [u8; 8],
    len: usize,
}

impl OomScore {
    /// The value for guestd's children (see [`child_oom_score_adj`]); guestd's own is read once.
    fn for_children() -> Self {
        static OWN: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
        let own = *OWN.get_or_init(|| {
            std::fs::read_to_string("/proc/self/oom_score_adj")
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or(0)
        });
        let value = child_oom_score_adj(own).to_string();
        let mut text = [0u8; 8];
        let len = value.len().min(text.len());
        text[..len].copy_from_slice(&value.as_bytes()[..len]);
        Self { text, len }
    }

    /// Writes it to `/proc/self/oom_score_adj`. Best effort: a sandbox without /proc cannot do
    /// better. Async-signal-safe (open/write/close on data prepared before the fork).
    fn apply(&self) {
        const PATH: &std::ffi::CStr = c"/proc/self/oom_score_adj";
        // SAFETY: open/write/close with a static NUL-terminated path and a buffer owned by `self`.
        unsafe {
            let fd = libc::open(PATH.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, self.text.as_ptr().cast(), self.len);
                libc::close(fd);
            }
        }
    }
}

/// The working directory of a request: absolute as given, relative against `default`; must exist.
pub fn working_dir(requested: Option<&str>, default: &str) -> GuestResult<String> {
    let cwd = match requested.map(str::trim).filter(|cwd| !cwd.is_empty()) {
        Some(cwd) if cwd.starts_with('/') => normalize(cwd),
        Some(cwd) => normalize(&format!("{default}/{cwd}")),
        None => default.to_owned(),
    };
    if !Path::new(&cwd).is_dir() {
        return Err(GuestError::invalid(format!(
            "working directory {cwd} does not exist; create it first or pass another cwd"
        )));
    }
    Ok(cwd)
}

/// The environment of a command: defaults, then sandbox envs, then request envs (later wins).
pub fn environment(
    sandbox_envs: &BTreeMap<String, String>,
    request_envs: &BTreeMap<String, String>,
    home: &str,
    user: &str,
    shell: &str,
) -> GuestResult<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
    env.insert("HOME".to_owned(), home.to_owned());
    env.insert("USER".to_owned(), user.to_owned());
    env.insert("LOGNAME".to_owned(), user.to_owned());
    if !shell.is_empty() {
        env.insert("SHELL".to_owned(), shell.to_owned());
    }
    for (key, value) in sandbox_envs.iter().chain(request_envs) {
        if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
            return Err(GuestError::invalid(format!(
                "invalid environment variable {key:?}; names must be non-empty without '=' and values without NUL"
            )));
        }
        env.insert(key.clone(), value.clone());
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_mode_wraps_in_sh_and_argv_mode_does_not() {
        let spec = ExecSpec { command: "echo $A".into(), shell: true, ..Default::default() };
        assert_eq!(spec.argv(), ["/bin/sh", "-c", "echo $A"]);
        let spec = ExecSpec { command: "echo".into(), args: vec!["a b".into()], ..Default::default() };
        assert_eq!(spec.argv(), ["echo", "a b"]);
    }

    #[test]
    fn request_envs_win_over_sandbox_envs_and_defaults() {
        let sandbox = BTreeMap::from([("A".to_owned(), "1".to_owned()), ("B".to_owned(), "1".to_owned())]);
        let request = BTreeMap::from([("B".to_owned(), "2".to_owned()), ("PATH".to_owned(), "/x".to_owned())]);
        let env = environment(&sandbox, &request, "/root", "root", "/bin/bash").unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "2");
        assert_eq!(env["PATH"], "/x");
        assert_eq!(env["HOME"], "/root");
        let bad = BTreeMap::from([("A=B".to_owned(), "1".to_owned())]);
        assert!(environment(&bad, &BTreeMap::new(), "/", "root", "").is_err());
    }

    #[test]
    fn children_are_always_picked_before_guestd() {
        assert_eq!(child_oom_score_adj(-1000), 0, "guestd out of the line of fire, children back to normal");
        assert_eq!(child_oom_score_adj(-500), 0);
        assert_eq!(child_oom_score_adj(0), 500, "guestd could not be lowered: children raised above it");
        assert_eq!(child_oom_score_adj(800), 1000);
        let text = OomScore::for_children();
        assert!(std::str::from_utf8(&text.text[..text.len]).unwrap().parse::<i32>().is_ok());
    }

    #[test]
    fn working_dir_resolves_relative_and_rejects_missing() {
        assert_eq!(working_dir(None, "/tmp").unwrap(), "/tmp");
        assert_eq!(working_dir(Some("/"), "/tmp").unwrap(), "/");
        assert_eq!(working_dir(Some(".."), "/tmp").unwrap(), "/");
        assert!(working_dir(Some("/definitely/missing/dir"), "/tmp").is_err());
    }
}
