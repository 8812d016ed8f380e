//! Running file work with the credentials of the user a request names, so that the kernel checks every
//! access (through symlinks too) exactly as for that user: on a fresh thread whose groups, gid and uid
//! (real, effective, saved, hence also the filesystem ids) are switched with the per-thread syscalls
//! (libc's `setuid` family switches every thread of the process), which ends with the work and is
//! never reused, so no pooled thread can be left with switched credentials. Work without a user, or as
//! root, runs with guestd's own credentials on the blocking pool. Files the user creates belong to it
//! because the kernel says so; nothing is chowned afterwards.

use std::io;
use std::sync::Arc;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{GuestError, GuestResult};
use crate::users::User;

/// Threads running file work as a user at once; more requests wait for one to end.
const MAX_USER_THREADS: usize = 64;

/// Credentials of the thread a piece of work runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id (real, effective, saved and filesystem).
    pub uid: u32,
    /// Group id (real, effective, saved and filesystem).
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// Whether these are guestd's own (root's): then no switch is needed.
    pub fn are_root(&self) -> bool {
        self.uid == 0
    }
}

impl From<&User> for Credentials {
    fn from(user: &User) -> Self {
        Self { uid: user.uid, gid: user.gid, groups: user.groups.clone() }
    }
}

/// The credentials to switch to for `user`: `None` for guestd's own (no user, or root).
pub fn switch_for(user: Option<&User>) -> Option<Credentials> {
    user.map(Credentials::from).filter(|credentials| !credentials.are_root())
}

fn slots() -> Arc<Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(MAX_USER_THREADS))).clone()
}

/// Runs `work` with `user`'s credentials (see the module documentation) and returns its result.
pub async fn run_as<T: Send + 'static>(
    user: Option<&User>,
    work: impl FnOnce() -> GuestResult<T> + Send + 'static,
) -> GuestResult<T> {
    let (sender, receiver) = oneshot::channel();
    spawn_as(user, move |switched| {
        let result = switched.and_then(|()| work());
        let _ = sender.send(result);
    })
    .await?;
    // A panicking task drops the sender.
    receiver.await.map_err(|_| GuestError::Internal { context: "file task failed".into() })?
}

/// Starts `work` with `user`'s credentials and returns at once. `work` gets `Ok(())` once they are in
/// place, or the error that kept them from being switched (then it must touch nothing).
pub async fn spawn_as(user: Option<&User>, work: impl FnOnce(GuestResult<()>) + Send + 'static) -> GuestResult<()> {
    let Some(credentials) = switch_for(user) else {
        tokio::task::spawn_blocking(move || work(Ok(())));
        return Ok(());
    };
    let permit: OwnedSemaphorePermit = slots()
        .acquire_owned()
        .await
        .map_err(|_| GuestError::Internal { context: "file worker slots closed".into() })?;
    std::thread::Builder::new()
        .name(format!("files-uid-{}", credentials.uid))
        .spawn(move || {
            let _permit = permit;
            let switched = become_user(&credentials).map_err(|error| GuestError::Internal {
                context: format!("cannot take the credentials of uid {}: {error}", credentials.uid),
            });
            work(switched);
            // The thread ends here with the user's credentials; it is never reused.
        })
        .map_err(|error| GuestError::Internal { context: format!("cannot start a file worker: {error}") })?;
    Ok(())
}

/// Switches the calling thread (only it) to `credentials`, for good: with real, effective and saved
/// ids all changed the thread also loses every capability, so it cannot switch back.
fn become_user(credentials: &Credentials) -> io::Result<()> {
    let (uid, gid) = (credentials.uid as libc::uid_t, credentials.gid as libc::gid_t);
    let groups: Vec<libc::gid_t> = credentials.groups.iter().map(|group| *group as libc::gid_t).collect();
    // SAFETY: raw syscalls with integer arguments and a pointer/length pair into `groups`, which lives
    // across the call; each changes the credentials of the calling thread only.
    unsafe {
        check(libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()))?;
        check(libc::syscall(libc::SYS_setresgid, gid, gid, gid))?;
        check(libc::syscall(libc::SYS_setresuid, uid, uid, uid))?;
    }
    // Belt and braces: never run the work with anything but the asked-for identity.
    // SAFETY: getters without arguments, per thread.
    let (now_uid, now_gid) = unsafe { (libc::syscall(libc::SYS_geteuid), libc::syscall(libc::SYS_getegid)) };
    if now_uid != i64::from(uid) || now_gid != i64::from(gid) {
        return Err(io::Error::other(format!("still uid {now_uid} gid {now_gid} after the switch")));
    }
    Ok(())
}

fn check(result: libc::c_long) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> User {
        User {
            name: format!("u{uid}"),
            uid,
            gid: uid,
            home: "/".into(),
            shell: "/bin/sh".into(),
            groups: vec![uid, 27],
        }
    }

    #[test]
    fn root_and_no_user_keep_guestd_credentials() {
        assert_eq!(switch_for(None), None);
        assert_eq!(switch_for(Some(&user(0))), None);
        assert_eq!(switch_for(Some(&user(1000))), Some(Credentials { uid: 1000, gid: 1000, groups: vec![1000, 27] }));
    }

    #[tokio::test]
    async fn work_without_a_user_runs_and_panics_are_errors() {
        assert_eq!(run_as(None, || Ok(7)).await.unwrap(), 7);
        let failed = run_as::<()>(None, || panic!("boom")).await;
        assert!(matches!(failed, Err(GuestError::Internal { .. })));
    }

    /// Only as root (a CI container or the e2e host): a switched thread is confined to the user and
    /// the rest of the process keeps root.
    #[tokio::test]
    async fn a_user_thread_gets_the_kernel_checks_of_that_user() {
        if nix::unistd::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "x").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let path = secret.clone();
        let read = run_as(Some(&user(4242)), move || {
            std::fs::read(&path).map_err(|error| GuestError::file_op("read", "secret", error))
        })
        .await;
        assert!(matches!(read, Err(GuestError::FileOp { .. })), "{read:?}");
        let created = dir.path().join("mine");
        let path = created.clone();
        let ids = run_as(Some(&user(4242)), move || {
            std::fs::write(&path, "y").map_err(|error| GuestError::file_op("write", "mine", error))?;
            // SAFETY: per-thread getter.
            Ok(unsafe { libc::syscall(libc::SYS_geteuid) })
        })
        .await
        .unwrap();
        assert_eq!(ids, 4242);
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&created).unwrap()), 4242);
        assert_eq!(nix::unistd::geteuid().as_raw(), 0, "the rest of the process keeps root");
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "x");
    }
}
