//! Validation of create parameters: what the API accepts before anything is recorded.

use std::collections::BTreeMap;

use super::ControlError;

/// Longest lifetime a sandbox may ask for (24 h).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;
/// Lifetime when the request names none (5 min, as the client's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// CPU cores of a sandbox whose create names none.
pub const DEFAULT_VCPUS: u32 = 2;
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

/// Trees a working directory may not be in: the kernel's pseudo-filesystems.
const FORBIDDEN_CWD_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];
/// Longest working directory (the kernel's `PATH_MAX`).
const MAX_CWD_LEN: usize = 4096;
/// Most metadata keys a sandbox may carry.
pub const MAX_METADATA_KEYS: usize = 64;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_LEN: usize = 128;
/// Longest metadata value, in bytes of its JSON text.
pub const MAX_METADATA_VALUE_LEN: usize = 4096;
/// Longest `warm_pool.wait_ms` (10 minutes).
pub const MAX_WARM_POOL_WAIT_MS: u64 = 600_000;

/// A working directory must be a clean absolute path (no `.`, `..` or empty components, no trailing `/`),
/// outside the reserved prefix and outside `/proc`, `/sys` and `/dev`.
pub fn cwd(cwd: &str) -> Result<(), ControlError> {
    if !cwd.starts_with('/') {
        return Err(invalid(format!("cwd {cwd:?} must be an absolute path")));
    }
    if cwd.len() > MAX_CWD_LEN || cwd.contains('\0') {
        return Err(invalid(format!("cwd must be at most {MAX_CWD_LEN} bytes without NUL")));
    }
    if cwd != "/" && cwd[1..].split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(invalid(format!(
            "cwd {cwd:?} must be a clean path: no `.`, `..`, empty components or trailing `/`"
        )));
    }
    if cwd == RESERVED_PREFIX || cwd.starts_with(&format!("{RESERVED_PREFIX}/")) {
        return Err(invalid(format!("cwd is reserved: {cwd:?} is under {RESERVED_PREFIX}")));
    }
    if let Some(tree) = FORBIDDEN_CWD_TREES.iter().find(|tree| cwd == **tree || cwd.starts_with(&format!("{tree}/"))) {
        return Err(invalid(format!(
            "cwd {cwd:?} is under {tree}, a kernel filesystem; choose a directory such as /workspace"
        )));
    }
    Ok(())
}

/// Metadata: at most [`MAX_METADATA_KEYS`] non-empty keys of at most [`MAX_METADATA_KEY_LEN`] bytes, each
/// value at most [`MAX_METADATA_VALUE_LEN`] bytes as JSON.
pub fn metadata(metadata: &serde_json::Map<String, serde_json::Value>) -> Result<(), ControlError> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(invalid(format!("metadata has {} keys; at most {MAX_METADATA_KEYS} are allowed", metadata.len())));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN {
            return Err(invalid(format!(
                "metadata key {:?} must be 1 to {MAX_METADATA_KEY_LEN} bytes long",
                key.chars().take(40).collect::<String>()
            )));
        }
        let length = value.to_string().len();
        if length > MAX_METADATA_VALUE_LEN {
            return Err(invalid(format!(
                "metadata value of {key:?} is {length} bytes as JSON; at most {MAX_METADATA_VALUE_LEN} are allowed"
            )));
        }
    }
    Ok(())
}

/// The create-request objects checked before the request is read: `desktop` settings (only for the
/// `desktop` template; see [`super::desktop::settings`]) and `warm_pool` (`mode` prefer|require|bypass,
/// `wait_ms` 0 to [`MAX_WARM_POOL_WAIT_MS`]).
pub fn create_extras(body: &serde_json::Map<String, serde_json::Value>) -> Result<(), ControlError> {
    use serde_json::Value;
    let template = body.get("template").and_then(Value::as_str).unwrap_or("base");
    match body.get("desktop") {
        None | Some(Value::Null) => {}
        Some(value @ Value::Object(_)) if template_name(template) == super::desktop::TEMPLATE => {
            super::desktop::settings(value)?;
        }
        Some(Value::Object(_)) => {
            return Err(invalid(format!(
                "desktop settings apply only to the desktop template; template {template:?} has no desktop"
            )))
        }
        Some(_) => {
            return Err(invalid(
                "desktop must be an object such as {\"resolution\": {\"width\": 1280, \"height\": 800}}",
            ))
        }
    }
    match body.get("warm_pool") {
        None | Some(Value::Null) => {}
        Some(Value::Object(pool)) => {
            match pool.get("mode") {
                None | Some(Value::Null) => {}
                Some(Value::String(mode)) if ["prefer", "require", "bypass"].contains(&mode.as_str()) => {}
                Some(other) => {
                    return Err(invalid(format!("warm_pool.mode must be prefer, require or bypass, got {other}")))
                }
            }
            match pool.get("wait_ms") {
                None | Some(Value::Null) => {}
                Some(wait) if wait.as_u64().is_some_and(|ms| ms <= MAX_WARM_POOL_WAIT_MS) => {}
                Some(other) => {
                    return Err(invalid(format!(
                        "warm_pool.wait_ms must be an integer from 0 to {MAX_WARM_POOL_WAIT_MS}, got {other}"
                    )))
                }
            }
        }
        Some(_) => return Err(invalid("warm_pool must be an object such as {\"id\": \"pool\", \"wait_ms\": 0}")),
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
        assert!(cwd("/").is_ok());
        assert!(cwd("/workspace/e2e cwd").is_ok());
        for bad in ["/proc/self", "/proc", "/sys/kernel", "/dev/shm", "/a//b", "/a/./b", "/a/", "/.", "a/b", ""] {
            assert!(cwd(bad).is_err(), "{bad:?} accepted");
        }
        assert!(cwd("/process").is_ok() && cwd("/devices").is_ok());
        let reserved = cwd("/workspace/.nullspace/x").unwrap_err();
        assert!(reserved.to_string().contains("cwd is reserved"));
    }

    #[test]
    fn metadata_is_bounded() {
        let many: serde_json::Map<_, _> = (0..10_000).map(|i| (format!("k{i}"), serde_json::json!(i))).collect();
        assert!(metadata(&many).unwrap_err().to_string().contains("at most 64"));
        let fine: serde_json::Map<_, _> = (0..64).map(|i| (format!("k{i}"), serde_json::json!("v"))).collect();
        assert!(metadata(&fine).is_ok());
        let long_key = serde_json::Map::from_iter([("k".repeat(129), serde_json::json!(1))]);
        assert!(metadata(&long_key).is_err());
        let long_value = serde_json::Map::from_iter([("k".to_owned(), serde_json::json!("v".repeat(5000)))]);
        assert!(metadata(&long_value).unwrap_err().to_string().contains("4096"));
    }

    #[test]
    fn desktop_and_warm_pool_are_checked() {
        let body = |value: serde_json::Value| value.as_object().cloned().unwrap();
        assert!(create_extras(&body(serde_json::json!({"template": "base", "desktop": null}))).is_ok());
        assert!(create_extras(&body(serde_json::json!({"template": "desktop", "desktop": {"dpi": 96}}))).is_ok());
        let desktop = create_extras(&body(serde_json::json!({"template": "base", "desktop": {"dpi": 96}})));
        assert!(desktop.unwrap_err().to_string().contains("only to the desktop template"));
        assert!(create_extras(&body(serde_json::json!({"desktop": {"dpi": 96}}))).is_err());
        let bad = create_extras(&body(serde_json::json!({"template": "desktop", "desktop": {"dpi": 0}})));
        assert!(bad.unwrap_err().to_string().contains("desktop.dpi must be from"));
        assert!(create_extras(&body(serde_json::json!({"warm_pool": {"id": "p", "wait_ms": 0}}))).is_ok());
        for bad in [
            serde_json::json!({"warm_pool": {"wait_ms": -1}}),
            serde_json::json!({"warm_pool": {"wait_ms": 1.5}}),
            serde_json::json!({"warm_pool": {"mode": "sometimes"}}),
            serde_json::json!({"warm_pool": 3}),
        ] {
            assert!(create_extras(&body(bad.clone())).is_err(), "{bad} accepted");
        }
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
