//! Per-sandbox SSH host keys. Templates ship without host keys (a key baked into a template would be
//! the same in every sandbox made from it, so one sandbox could impersonate another); at boot guestd
//! generates the missing ones with the sandbox's own `ssh-keygen`: the ed25519 key (the base template
//! promises `/etc/ssh/ssh_host_ed25519_key`) before it answers, which takes milliseconds, and, when
//! sshd is installed, every other default type (`ssh-keygen -A`; RSA is slow) in the background.
//! Keys that exist are kept: a sandbox forked or resumed from a snapshot keeps its source's keys, as
//! a copy of that machine.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::exec::spawn::{start_as, DEFAULT_PATH};
use crate::state::Sandbox;

/// Where host keys live.
const SSH_DIR: &str = "/etc/ssh";
/// The key generator (openssh-client).
const KEYGEN: &str = "/usr/bin/ssh-keygen";
/// The SSH server (openssh-server), which wants every default key type.
const SSHD: &str = "/usr/sbin/sshd";
/// The key generated before guestd answers.
const ED25519_KEY: &str = "/etc/ssh/ssh_host_ed25519_key";
/// Longest wait for the ed25519 key before serving anyway.
const ED25519_WAIT: Duration = Duration::from_secs(5);

/// Which keys to generate: (the ed25519 key now, every missing default type in the background).
pub fn plan(has_keygen: bool, has_ssh_dir: bool, has_ed25519: bool, has_sshd: bool) -> (bool, bool) {
    if !has_keygen || !has_ssh_dir {
        return (false, false);
    }
    (!has_ed25519, has_sshd)
}

/// Generates the sandbox's missing host keys (see the module documentation).
pub async fn ensure(sandbox: &Sandbox) {
    let exists = |path: &str| Path::new(path).exists();
    let (ed25519, all) = plan(exists(KEYGEN), Path::new(SSH_DIR).is_dir(), exists(ED25519_KEY), exists(SSHD));
    if ed25519 {
        if let Some(done) = keygen(sandbox, &["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", ED25519_KEY]) {
            match tokio::time::timeout(ED25519_WAIT, done).await {
                Ok(status) => tracing::debug!(?status, "generated the ssh host key"),
                Err(_) => tracing::warn!("ssh-keygen is slow; serving before the ssh host key exists"),
            }
        }
    }
    if all {
        if let Some(done) = keygen(sandbox, &["-A"]) {
            tokio::spawn(async move {
                let status = done.await;
                tracing::debug!(?status, "generated the missing ssh host keys");
            });
        }
    }
}

/// Starts `ssh-keygen args` as root with no stdio (guestd's stderr is the host's log); returns the
/// channel its exit status arrives on.
fn keygen(sandbox: &Sandbox, args: &[&str]) -> Option<tokio::sync::oneshot::Receiver<nix::sys::wait::WaitStatus>> {
    let root = sandbox.user(Some("root")).ok()?;
    let mut command = Command::new(KEYGEN);
    command.args(args).env_clear().env("PATH", DEFAULT_PATH).current_dir("/");
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    start_as(&mut command, &root, false);
    match sandbox.registry().spawn_watched(&mut command) {
        Ok((_pid, done)) => Some(done),
        Err(error) => {
            tracing::warn!(error = %error.message(), "cannot generate ssh host keys");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_only_where_ssh_lives_and_only_when_missing() {
        assert_eq!(plan(false, true, false, true), (false, false), "no ssh-keygen");
        assert_eq!(plan(true, false, false, true), (false, false), "no /etc/ssh");
        assert_eq!(plan(true, true, false, false), (true, false), "client only: the ed25519 key");
        assert_eq!(plan(true, true, true, false), (false, false), "kept when present (forks, snapshots)");
        assert_eq!(plan(true, true, false, true), (true, true), "sshd wants every type");
        assert_eq!(plan(true, true, true, true), (false, true), "ssh-keygen -A fills in only what is missing");
    }
}
