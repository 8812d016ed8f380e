//! The sandbox as guestd sees it, shared by every handler: boot configuration, users, the registry
//! of processes it started, its PTY sessions and its upload sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use nullspace_types::guest::GuestConfig;

use crate::error::GuestResult;
use crate::exec::registry::Registry;
use crate::files::paths::normalize;
use crate::pty::table::PtyTable;
use crate::uploads::store::Uploads;
use crate::users::{User, UserDb};

/// Working directory of a sandbox whose configuration names none.
pub const DEFAULT_CWD: &str = "/workspace";

/// Shared state of guestd (cheap to clone).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuestConfig,
    cwd: String,
    users: UserDb,
    registry: Arc<Registry>,
    ptys: Arc<PtyTable>,
    uploads: Arc<Uploads>,
}

impl Sandbox {
    /// State for `config`, reading users from the sandbox's /etc.
    pub fn new(config: GuestConfig, registry: Arc<Registry>, uploads: Arc<Uploads>) -> Self {
        let cwd = if config.cwd.trim().is_empty() { DEFAULT_CWD.to_owned() } else { normalize(config.cwd.trim()) };
        Self {
            inner: Arc::new(Inner { config, cwd, users: UserDb::default(), registry, ptys: Arc::default(), uploads }),
        }
    }

    /// Sandbox id.
    pub fn id(&self) -> &str {
        &self.inner.config.sandbox_id
    }

    /// Default working directory (absolute, normalized).
    pub fn cwd(&self) -> &str {
        &self.inner.cwd
    }

    /// Whether the cwd is the template default rather than one chosen at create. The boot configuration
    /// does not say, so a cwd equal to [`DEFAULT_CWD`] counts as the default.
    pub fn cwd_is_default(&self) -> bool {
        self.inner.cwd == DEFAULT_CWD
    }

    /// Environment every command sees.
    pub fn envs(&self) -> &BTreeMap<String, String> {
        &self.inner.config.envs
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
