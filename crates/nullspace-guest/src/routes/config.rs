//! `PUT /config`: the host replaces the sandbox's environment and default working directory (a warm-pool
//! sandbox taking the settings of the create that claimed it). Host only: the server's relay never
//! forwards a client request here.

use std::path::Path;

use axum::extract::State;
use axum::Json;
use nullspace_types::guest::{GuestConfigUpdate, GUEST_ENVS_PATH};

use super::extract::JsonBody;
use crate::boot::{prepare_cwd, write_envs_file, write_profile, PROFILE_SCRIPT};
use crate::error::{GuestError, GuestResult};
use crate::state::Sandbox;

/// `PUT /config`. Creates the new working directory, rewrites the login-shell profile and the
/// environment file (when guestd wrote them at boot), then switches every later command to the new configuration at once.
pub async fn put(
    State(sandbox): State<Sandbox>,
    JsonBody(update): JsonBody<GuestConfigUpdate>,
) -> GuestResult<Json<GuestConfigUpdate>> {
    if update.envs.keys().any(|key| key.is_empty() || key.contains('=') || key.contains('\0'))
        || update.envs.values().any(|value| value.contains('\0'))
    {
        return Err(GuestError::invalid("envs names must be non-empty without '=' or NUL; values without NUL"));
    }
    if !update.cwd.trim().is_empty() && !update.cwd.trim().starts_with('/') {
        return Err(GuestError::invalid(format!("cwd must be an absolute path, got {:?}", update.cwd)));
    }
    let cwd_text = update.cwd.clone();
    let envs = update.envs.clone();
    let profile = Path::new(PROFILE_SCRIPT);
    let envs_file = Path::new(GUEST_ENVS_PATH);
    let applied = tokio::task::spawn_blocking(move || -> GuestResult<()> {
        let cwd = Path::new(cwd_text.trim());
        if !cwd_text.trim().is_empty() {
            prepare_cwd(cwd, &crate::users::UserDb::default())
                .map_err(|source| GuestError::file_op("create working directory", &cwd_text, source))?;
        }
        if profile.exists() {
            write_profile(profile, &envs)
                .map_err(|source| GuestError::file_op("write login profile", PROFILE_SCRIPT, source))?;
        }
        if envs_file.exists() {
            write_envs_file(envs_file, &envs)
                .map_err(|source| GuestError::file_op("write the environment file", GUEST_ENVS_PATH, source))?;
        }
        Ok(())
    })
    .await
    .map_err(|error| GuestError::invalid(format!("applying the configuration failed: {error}")))?;
    applied?;
    let cwd = sandbox.reconfigure(update.envs.clone(), &update.cwd);
    Ok(Json(GuestConfigUpdate { envs: update.envs, cwd }))
}
