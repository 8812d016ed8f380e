//! Credentials a build request carries, read from the environment so they never sit on the command
//! line: build secrets (`--build-secret-env ID=ENVVAR`) and the base image's registry login
//! (`--registry-username USER` with the password in `$NULLSPACE_REGISTRY_PASSWORD` or the variable
//! `--registry-password-env` names) as `base_image_auth: {kind: "basic", username, password}`. Every
//! value read here is also returned for redaction.

use nullspace_client::types::template_api::BuildSecret;
use serde_json::{json, Value};

use super::spec::RegistryArgs;
use crate::exit::UserError;

/// Where the registry user name comes from when `--registry-username` is absent (the official CLI's).
pub const REGISTRY_USERNAME_ENV: &str = "NULLSPACE_REGISTRY_USERNAME";
/// Where the registry password comes from when `--registry-password-env` is absent (the official CLI's).
pub const REGISTRY_PASSWORD_ENV: &str = "NULLSPACE_REGISTRY_PASSWORD";

/// `ID=ENVVAR` or `ID` (reads `$ID`).
pub fn secret_from_env(raw: &str, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<BuildSecret> {
    let (id, var) = match raw.split_once('=') {
        Some((id, var)) => (id.trim(), var.trim()),
        None => (raw.trim(), raw.trim()),
    };
    let valid_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_id || var.is_empty() {
        return Err(UserError::new(
            format!("--build-secret-env takes ID=ENVVAR (ID of letters, digits, `.`, `_`, `-`), got {raw:?}"),
            Some("example: --build-secret-env npm_token=NPM_TOKEN"),
        )
        .into());
    }
    let value = env(var).ok_or_else(|| {
        UserError::new(
            format!("--build-secret-env {id}: environment variable {var} is not set"),
            Some("export it first"),
        )
    })?;
    Ok(BuildSecret { id: id.to_owned(), value, source: Some("env".into()) })
}

/// The build secrets of `raw` flags, refusing an id given twice (also against `existing`).
pub fn secrets_from_env(
    raw: &[String],
    existing: &[BuildSecret],
    env: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<BuildSecret>> {
    let mut secrets: Vec<BuildSecret> = Vec::new();
    for flag in raw {
        let secret = secret_from_env(flag, env)?;
        if existing.iter().chain(&secrets).any(|s| s.id == secret.id) {
            return Err(UserError::new(format!("build secret `{}` is given twice", secret.id), None).into());
        }
        secrets.push(secret);
    }
    Ok(secrets)
}

/// The registry login as `base_image_auth`, or `None` when no user name is given (flag or
/// `$NULLSPACE_REGISTRY_USERNAME`). A user name without a password is an error.
pub fn registry_auth(args: &RegistryArgs, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Value>> {
    let username = args.registry_username.clone().or_else(|| env(REGISTRY_USERNAME_ENV)).filter(|u| !u.is_empty());
    let Some(username) = username else {
        if let Some(var) = &args.registry_password_env {
            return Err(UserError::new(
                format!("--registry-password-env {var} needs a user name"),
                Some("add --registry-username USER (or set NULLSPACE_REGISTRY_USERNAME)"),
            )
            .into());
        }
        return Ok(None);
    };
    let var = args.registry_password_env.as_deref().unwrap_or(REGISTRY_PASSWORD_ENV).trim();
    if var.is_empty() || var.contains('=') {
        return Err(UserError::new(
            format!("--registry-password-env takes the name of an environment variable, got {var:?}"),
            Some("export REGISTRY_PASSWORD=… and pass --registry-password-env REGISTRY_PASSWORD"),
        )
        .into());
    }
    let password = env(var).filter(|p| !p.is_empty()).ok_or_else(|| {
        UserError::new(
            format!("the registry password for {username} is not set: environment variable {var} is empty or unset"),
            Some(&format!("export {var}=… (passwords are never taken from the command line)")),
        )
    })?;
    Ok(Some(json!({"kind": "basic", "username": username, "password": password})))
}

/// The password of a `base_image_auth`, for redaction.
pub fn auth_secrets(auth: Option<&Value>) -> Vec<String> {
    let Some(Value::Object(map)) = auth else { return Vec::new() };
    ["password", "secret_access_key", "session_token"]
        .iter()
        .filter_map(|key| map.get(*key).and_then(Value::as_str))
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NULLSPACE_REGISTRY_PASSWORD" => Some("default-pw".into()),
            "MY_PW" => Some("my-pw".into()),
            "EMPTY" => Some(String::new()),
            "NPM_TOKEN" => Some("tok".into()),
            _ => None,
        }
    }

    fn args(user: Option<&str>, var: Option<&str>) -> RegistryArgs {
        RegistryArgs { registry_username: user.map(str::to_owned), registry_password_env: var.map(str::to_owned) }
    }

    #[test]
    fn registry_logins_read_the_password_from_the_environment() {
        assert_eq!(registry_auth(&args(None, None), &env).unwrap(), None);
        assert_eq!(
            registry_auth(&args(Some("bob"), Some("MY_PW")), &env).unwrap(),
            Some(json!({"kind": "basic", "username": "bob", "password": "my-pw"}))
        );
        let default = registry_auth(&args(Some("bob"), None), &env).unwrap();
        assert_eq!(default.as_ref().unwrap()["password"], "default-pw");
        assert_eq!(auth_secrets(default.as_ref()), ["default-pw"]);
        let from_env = |name: &str| (name == REGISTRY_USERNAME_ENV).then(|| "eve".to_owned()).or_else(|| env(name));
        assert_eq!(registry_auth(&args(None, None), &from_env).unwrap().unwrap()["username"], "eve");
    }

    #[test]
    fn incomplete_registry_logins_are_user_errors_with_hints() {
        for (user, var) in [(Some("bob"), Some("UNSET")), (Some("bob"), Some("EMPTY")), (None, Some("MY_PW"))] {
            let error = registry_auth(&args(user, var), &env).unwrap_err();
            let user_error = error.downcast_ref::<UserError>().expect("a user error");
            assert!(user_error.hint.is_some(), "{user_error}");
            assert!(!user_error.message.contains("my-pw"));
        }
        assert!(registry_auth(&args(Some("bob"), Some("A=b")), &env).is_err());
        assert!(registry_auth(&args(Some("bob"), None), &|_: &str| None).is_err());
    }

    #[test]
    fn duplicate_secret_ids_are_refused() {
        let first = secrets_from_env(&["npm=NPM_TOKEN".into()], &[], &env).unwrap();
        assert_eq!(first[0].value, "tok");
        assert!(secrets_from_env(&["npm=NPM_TOKEN".into()], &first, &env).is_err());
        assert!(secrets_from_env(&["a=NPM_TOKEN".into(), "a=NPM_TOKEN".into()], &[], &env).is_err());
        assert!(secrets_from_env(&["bad id=NPM_TOKEN".into()], &[], &env).is_err());
    }
}
