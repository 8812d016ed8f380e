//! Validation of create parameters: what the API accepts before anything is recorded.

use std::collections::BTreeMap;

use super::ControlError;

/// Longest lifetime a sandbox may ask for (24 h).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Lifetime when the request names none (5 min, as the client's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Path prefix reserved for the runtime.
const RESERVED_PREFIX: &str = "/workspace/.nullspace";

/// A 400 with `message`.
pub fn invalid(message: impl Into<String>) -> ControlError {
    ControlError::InvalidRequest { message: message.into() }
}

/// The template name a reference points at (`base`, `base:default`, `nullspace/base` → `base`).
pub fn template_name(reference: &str) -> &str {
    let without_namespace = reference.strip_prefix("nullspace/").unwrap_or(reference);
    without_namespace.strip_suffix(":default").unwrap_or(without_namespace)
}

/// A working directory must be absolute, without `..`, and outside the reserved prefix.
pub fn cwd(cwd: &str) -> Result<(), ControlError> {
    if !cwd.starts_with('/') {
        return Err(invalid(format!("cwd {cwd:?} must be an absolute path")));
    }
    if cwd.split('/').any(|part| part == "..") || cwd.contains('\0') {
        return Err(invalid(format!("cwd {cwd:?} must not contain `..` or NUL")));
    }
    if cwd == RESERVED_PREFIX || cwd.starts_with(&format!("{RESERVED_PREFIX}/")) {
        return Err(invalid(format!("cwd is reserved: {cwd:?} is under {RESERVED_PREFIX}")));
    }
    Ok(())
}

/// Environment names must be non-empty and free of `=` and NUL.
pub fn envs(envs: &BTreeMap<String, String>) -> Result<(), ControlError> {
    for (key, value) in envs {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(invalid(format!(
                "environment variable {key:?} is invalid: names must be non-empty without `=` or NUL"
            )));
        }
    }
    Ok(())
}

/// A lifetime must be positive and at most [`MAX_TIMEOUT_MS`].
pub fn timeout(timeout_ms: u64) -> Result<(), ControlError> {
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(invalid(format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, got {timeout_ms}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_references_resolve_to_names() {
        assert_eq!(template_name("base"), "base");
        assert_eq!(template_name("nullspace/base"), "base");
        assert_eq!(template_name("base:default"), "base");
        assert_eq!(template_name("other:v1"), "other:v1");
    }

    #[test]
    fn cwd_must_be_absolute_and_not_reserved() {
        assert!(cwd("/workspace").is_ok());
        assert!(cwd("/tmp/x").is_ok());
        assert!(cwd("relative").is_err());
        assert!(cwd("/a/../b").is_err());
        let reserved = cwd("/workspace/.nullspace/x").unwrap_err();
        assert!(reserved.to_string().contains("cwd is reserved"));
    }

    #[test]
    fn env_names_are_checked() {
        let mut map = BTreeMap::new();
        map.insert("GOOD".to_owned(), "x=y".to_owned());
        assert!(envs(&map).is_ok());
        map.insert("BAD=NAME".to_owned(), String::new());
        assert!(envs(&map).is_err());
    }

    #[test]
    fn timeouts_are_bounded() {
        assert!(timeout(1).is_ok());
        assert!(timeout(0).is_err());
        assert!(timeout(MAX_TIMEOUT_MS + 1).is_err());
    }
}
