//! The sandbox as guestd sees it, shared by every handler: boot configuration, users, the registry
//! of processes it started, its PTY sessions and its upload sessions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use nullspace_types::guest::GuestConfig;

use crate::error::GuestResult;
use crate::exec::registry::Registry;
use crate::files::paths::normalize;
use crate::pty::table::PtyTable;
use crate::uploads::store::Uploads;
use crate::users::{User, UserDb};

/// Working directory of a sandbox whose configuration names none.
pub const DEFAULT_CWD: &str = "/workspace";

/// `cwd` normalized, or [`DEFAULT_CWD`] when blank.
fn effective_cwd(cwd: &str) -> String {
    if cwd.trim().is_empty() {
        DEFAULT_CWD.to_owned()
    } else {
        normalize(cwd.trim())
    }
}

/// Shared state of guestd (cheap to clone).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuestConfig,
    /// Environment and default working directory, replaced whole by `PUT /config`.
    live: RwLock<Live>,
    users: UserDb,
    registry: Arc<Registry>,
    ptys: Arc<PtyTable>,
    uploads: Arc<Uploads>,
}

/// The part of the configuration the host may change while the sandbox runs.
struct Live {
    envs: Arc<BTreeMap<String, String>>,
    cwd: Arc<str>,
}

impl Sandbox {
    /// State for `config`, reading users from the sandbox's /etc.
    pub fn new(config: GuestConfig, registry: Arc<Registry>, uploads: Arc<Uploads>) -> Self {
        let live =
            RwLock::new(Live { envs: Arc::new(config.envs.clone()), cwd: Arc::from(effective_cwd(&config.cwd)) });
        Self {
            inner: Arc::new(Inner { config, live, users: UserDb::default(), registry, ptys: Arc::default(), uploads }),
        }
    }

    /// Replaces the environment and default working directory at once: every command started after
    /// this sees both new values, none sees one without the other. Returns the effective cwd.
    pub fn reconfigure(&self, envs: BTreeMap<String, String>, cwd: &str) -> String {
        let cwd = effective_cwd(cwd);
        let mut live = self.inner.live.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *live = Live { envs: Arc::new(envs), cwd: Arc::from(cwd.as_str()) };
        cwd
    }

    fn live(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.inner.live.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sandbox id.
    pub fn id(&self) -> &str {
        &self.inner.config.sandbox_id
    }

    /// Environment and default working directory read together (one configuration, never half of two).
    pub fn env_and_cwd(&self) -> (Arc<BTreeMap<String, String>>, Arc<str>) {
        let live = self.live();
        (live.envs.clone(), live.cwd.clone())
    }

    /// Default working directory (absolute, normalized).
    pub fn cwd(&self) -> Arc<str> {
        self.live().cwd.clone()
    }

    /// Whether the cwd is the template default rather than one chosen at create. The boot configuration
    /// does not say, so a cwd equal to [`DEFAULT_CWD`] counts as the default.
    pub fn cwd_is_default(&self) -> bool {
        &*self.live().cwd == DEFAULT_CWD
    }

    /// Environment every command sees.
    pub fn envs(&self) -> Arc<BTreeMap<String, String>> {
        self.live().envs.clone()
    }

    /// Default user of commands.
    pub fn default_user(&self) -> &str {
        let user = self.inner.config.default_user.trim();
        if user.is_empty() {
            "root"
        } else {
            user
        }
    }

    /// Account database.
    pub fn users(&self) -> &UserDb {
        &self.inner.users
    }

    /// The user `name` (root when `None`); root exists even without /etc/passwd.
    pub fn user(&self, name: Option<&str>) -> GuestResult<User> {
        let name = name.unwrap_or("root");
        match self.inner.users.lookup(name) {
            Err(_) if name == "root" => Ok(User {
                name: "root".into(),
                uid: 0,
                gid: 0,
                home: "/root".into(),
                shell: "/bin/sh".into(),
                groups: vec![0],
            }),
            result => result,
        }
    }

    /// Live PTY sessions.
    pub fn ptys(&self) -> &Arc<PtyTable> {
        &self.inner.ptys
    }

    /// Upload sessions.
    pub fn uploads(&self) -> &Arc<Uploads> {
        &self.inner.uploads
    }

    /// Processes guestd started.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(cwd: &str, staging: &std::path::Path) -> Sandbox {
        let config = GuestConfig {
            sandbox_id: "sb_test".into(),
            envs: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
            cwd: cwd.into(),
            default_user: String::new(),
        };
        Sandbox::new(config, Arc::default(), Arc::new(Uploads::open(staging.to_path_buf())))
    }

    #[test]
    fn reconfigure_replaces_envs_and_cwd_together() {
        let staging = tempfile::tempdir().unwrap();
        let sandbox = sandbox("", staging.path());
        assert_eq!(&*sandbox.cwd(), DEFAULT_CWD);
        assert!(sandbox.cwd_is_default());
        let cwd = sandbox.reconfigure(BTreeMap::from([("B".to_owned(), "2".to_owned())]), "/tmp/x/../claimed/");
        assert_eq!(cwd, "/tmp/claimed");
        let (envs, cwd) = sandbox.env_and_cwd();
        assert_eq!(envs.get("B").map(String::as_str), Some("2"));
        assert!(!envs.contains_key("A"), "the old environment is replaced, not merged");
        assert_eq!(&*cwd, "/tmp/claimed");
        assert!(!sandbox.cwd_is_default());
        assert_eq!(sandbox.reconfigure(BTreeMap::new(), " "), DEFAULT_CWD, "a blank cwd is the default");
    }
}
