//! A file request's target: the resolved absolute path and, when the request names a user, that user
//! (whose credentials the operation runs with: see [`crate::files::as_user`]).

use crate::error::GuestResult;
use crate::files::paths::{base_dir, resolve_against};
use crate::state::Sandbox;
use crate::users::User;

/// Where a file operation acts and on whose behalf.
#[derive(Debug, Clone)]
pub struct Target {
    /// Absolute, normalized path.
    pub path: String,
    /// The named user, if any: the operation has exactly its permissions.
    pub user: Option<User>,
}

/// Resolves `path` for a request naming `user` (blank = none).
pub fn resolve(sandbox: &Sandbox, path: &str, user: Option<&str>) -> GuestResult<Target> {
    let user = match user.map(str::trim).filter(|user| !user.is_empty()) {
        Some(name) => Some(sandbox.user(Some(name))?),
        None => None,
    };
    let home = match &user {
        Some(user) => user.home.clone(),
        None => sandbox.user(Some(sandbox.default_user())).map(|user| user.home).unwrap_or_else(|_| "/root".into()),
    };
    let sandbox_cwd = sandbox.cwd();
    let base = base_dir(&sandbox_cwd, sandbox.cwd_is_default(), user.as_ref().map(|user| user.home.as_str()));
    let path = resolve_against(path, base, &home)?;
    Ok(Target { path, user })
}
