//! The sandbox's environment as guestd keeps it now (`/run/nullspace/envs.json`, rewritten when a
//! warm-pool claim gives the sandbox the envs of the create that took it). The template's start
//! command, and so this gateway, ran without a create's envs; kernels start with the file's, and a
//! kernel already running when it changes gets the changed entries set silently before its next code,
//! so a create's `envs` reach notebook code as they reach commands.

use std::collections::BTreeMap;
use std::path::Path;

/// Where guestd writes the sandbox's environment.
pub const ENVS_FILE: &str = nullspace_types::guest::GUEST_ENVS_PATH;

/// The environment in `path`; empty when there is none (an older guestd, a gateway run outside a
/// sandbox) or it cannot be read (logged).
pub fn read(path: &Path) -> BTreeMap<String, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), %error, "the sandbox environment file is not a JSON object of strings");
            BTreeMap::new()
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the sandbox environment file");
            BTreeMap::new()
        }
    }
}

/// The entries of `now` that `seen` lacks or holds with another value.
pub fn changed(now: &BTreeMap<String, String>, seen: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    now.iter().filter(|(name, value)| seen.get(*name) != Some(*value)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_new_and_changed_entries_are_set_again() {
        let seen = map(&[("SSL_CERT_FILE", "/run/ca"), ("MODE", "old")]);
        let now = map(&[("SSL_CERT_FILE", "/run/ca"), ("MODE", "new"), ("API_KEY", "k")]);
        assert_eq!(changed(&now, &seen), map(&[("MODE", "new"), ("API_KEY", "k")]));
        assert!(changed(&seen, &seen).is_empty());
    }

    #[test]
    fn a_missing_or_bad_file_is_an_empty_environment() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("absent.json")).is_empty());
        std::fs::write(dir.path().join("bad.json"), b"[1, 2]").unwrap();
        assert!(read(&dir.path().join("bad.json")).is_empty());
        std::fs::write(dir.path().join("good.json"), br#"{"A": "1"}"#).unwrap();
        assert_eq!(read(&dir.path().join("good.json")), map(&[("A", "1")]));
    }
}
