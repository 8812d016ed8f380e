//! Where the client finds its API key and base URL. Same precedence as the official Python client:
//! explicit value → environment (`NULLSPACE_API_KEY`; `NULLSPACE_API_URL`, then `NULLSPACE_BASE_URL`) →
//! `./.env` → `$XDG_CONFIG_HOME/nullspace/config.json` (default `~/.config/…`; keys `api_key`, `base_url`
//! then `api_url`) → legacy `~/.nullspace/config.json` → `http://localhost:3000`.
//!
//! Resolution reads from an explicit [`ConfigSources`] so tests never touch the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Base URL used when nothing else is configured.
pub const DEFAULT_BASE_URL: &str = "http://localhost:3000";

/// Default timeout of one HTTP request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolved settings of a [`crate::Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// API base URL without trailing `/`.
    pub base_url: String,
    /// API key, if any was found (requests that need one fail with `MissingApiKey`).
    pub api_key: Option<String>,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A config with `base_url` and `api_key` as given.
    pub fn new(base_url: impl Into<String>, api_key: Option<String>) -> Self {
        Self { base_url: normalize_url(&base_url.into()), api_key, timeout: DEFAULT_TIMEOUT }
    }

    /// Resolves from the real process environment, working directory and home.
    pub fn resolve(explicit_api_key: Option<String>, explicit_base_url: Option<String>) -> Self {
        ConfigSources::from_process().with_explicit(explicit_api_key, explicit_base_url).resolve()
    }
}

/// Everything resolution looks at, gathered up front.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// `api_key` given by the caller.
    pub explicit_api_key: Option<String>,
    /// `base_url` given by the caller.
    pub explicit_base_url: Option<String>,
    /// Environment variables.
    pub env: HashMap<String, String>,
    /// Directory whose `.env` is read (the working directory).
    pub project_dir: Option<PathBuf>,
    /// Home directory (for `~/.config` and the legacy `~/.nullspace`).
    pub home_dir: Option<PathBuf>,
}

impl ConfigSources {
    /// Sources of the running process: its environment, working directory and home directory.
    pub fn from_process() -> Self {
        Self {
            explicit_api_key: None,
            explicit_base_url: None,
            env: std::env::vars().collect(),
            project_dir: std::env::current_dir().ok(),
            home_dir: dirs::home_dir(),
        }
    }

    /// Sets the explicit values (each `None` leaves resolution to the other sources).
    pub fn with_explicit(mut self, api_key: Option<String>, base_url: Option<String>) -> Self {
        self.explicit_api_key = api_key;
        self.explicit_base_url = base_url;
        self
    }

    /// Applies the precedence rules.
    pub fn resolve(&self) -> ClientConfig {
        let project = self.project_env();
        let configs = self.config_files();
        let from_files = |key: &str| configs.iter().find_map(|file| json_string(file, key));

        let api_key = match &self.explicit_api_key {
            Some(key) => non_empty(key),
            None => self
                .env_value("NULLSPACE_API_KEY")
                .or_else(|| project.get("NULLSPACE_API_KEY").and_then(|v| non_empty(v)))
                .or_else(|| from_files("api_key")),
        };
        let base_url = match &self.explicit_base_url {
            Some(url) => non_empty(url),
            None => self
                .env_value("NULLSPACE_API_URL")
                .or_else(|| self.env_value("NULLSPACE_BASE_URL"))
                .or_else(|| project.get("NULLSPACE_API_URL").and_then(|v| non_empty(v)))
                .or_else(|| project.get("NULLSPACE_BASE_URL").and_then(|v| non_empty(v)))
                .or_else(|| {
                    configs
                        .iter()
                        .find_map(|file| json_string(file, "base_url").or_else(|| json_string(file, "api_url")))
                }),
        }
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());

        ClientConfig { base_url: normalize_url(&base_url), api_key, timeout: DEFAULT_TIMEOUT }
    }

    /// Paths of the config files, in precedence order.
    pub fn config_paths(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        let xdg = self.env_value("XDG_CONFIG_HOME").map(PathBuf::from);
        let config_home = xdg.or_else(|| self.home_dir.as_ref().map(|home| home.join(".config")));
        if let Some(dir) = config_home {
            paths.push(dir.join("nullspace").join("config.json"));
        }
        if let Some(home) = &self.home_dir {
            paths.push(home.join(".nullspace").join("config.json"));
        }
        paths
    }

    fn env_value(&self, name: &str) -> Option<String> {
        self.env.get(name).and_then(|value| non_empty(value))
    }

    fn project_env(&self) -> HashMap<String, String> {
        self.project_dir.as_deref().map(|dir| parse_dotenv(&dir.join(".env"))).unwrap_or_default()
    }

    fn config_files(&self) -> Vec<serde_json::Value> {
        self.config_paths().iter().filter_map(|path| read_json(path)).collect()
    }
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

fn json_string(file: &serde_json::Value, key: &str) -> Option<String> {
    file.get(key).and_then(|value| value.as_str()).and_then(non_empty)
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Parses `KEY=VALUE` lines of a `.env` file (quotes stripped, `#` comments skipped); missing file → empty.
fn parse_dotenv(path: &Path) -> HashMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().trim_matches(|c| c == '\'' || c == '"').to_owned()))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(home: &Path, env: &[(&str, &str)]) -> ConfigSources {
        ConfigSources {
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            project_dir: Some(home.join("project")),
            home_dir: Some(home.to_path_buf()),
            ..Default::default()
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn defaults_when_nothing_is_configured() {
        let home = tempfile::tempdir().unwrap();
        let config = sources(home.path(), &[]).resolve();
        assert_eq!(config.base_url, DEFAULT_BASE_URL);
        assert_eq!(config.api_key, None);
    }

    #[test]
    fn explicit_beats_env_beats_dotenv_beats_config_file() {
        let home = tempfile::tempdir().unwrap();
        write(
            &home.path().join(".config/nullspace/config.json"),
            r#"{"api_key":"file_key","base_url":"http://file:1/"}"#,
        );
        let config = sources(home.path(), &[]).resolve();
        assert_eq!((config.api_key.as_deref(), config.base_url.as_str()), (Some("file_key"), "http://file:1"));

        write(
            &home.path().join("project/.env"),
            "# comment\nNULLSPACE_API_KEY='dotenv_key'\nNULLSPACE_BASE_URL=http://dotenv:2\n",
        );
        let config = sources(home.path(), &[]).resolve();
        assert_eq!((config.api_key.as_deref(), config.base_url.as_str()), (Some("dotenv_key"), "http://dotenv:2"));

        let env =
            [("NULLSPACE_API_KEY", "env_key"), ("NULLSPACE_BASE_URL", "http://base:3"), ("NULLSPACE_API_URL", " ")];
        let config = sources(home.path(), &env).resolve();
        assert_eq!((config.api_key.as_deref(), config.base_url.as_str()), (Some("env_key"), "http://base:3"));

        let env = [("NULLSPACE_API_URL", "http://api:4"), ("NULLSPACE_BASE_URL", "http://base:3")];
        assert_eq!(sources(home.path(), &env).resolve().base_url, "http://api:4");

        let config =
            sources(home.path(), &env).with_explicit(Some("explicit".into()), Some("http://x:5/".into())).resolve();
        assert_eq!((config.api_key.as_deref(), config.base_url.as_str()), (Some("explicit"), "http://x:5"));
    }

    #[test]
    fn xdg_config_home_wins_over_legacy_file_and_api_url_is_a_fallback_key() {
        let home = tempfile::tempdir().unwrap();
        let xdg = home.path().join("xdg");
        write(&home.path().join(".nullspace/config.json"), r#"{"api_key":"legacy","base_url":"http://legacy:1"}"#);
        let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
        assert_eq!(sources(home.path(), &env).resolve().api_key.as_deref(), Some("legacy"));

        write(&xdg.join("nullspace/config.json"), r#"{"api_key":"xdg","api_url":"http://xdg:2"}"#);
        let config = sources(home.path(), &env).resolve();
        assert_eq!((config.api_key.as_deref(), config.base_url.as_str()), (Some("xdg"), "http://xdg:2"));
    }

    #[test]
    fn broken_or_mistyped_config_files_are_ignored() {
        let home = tempfile::tempdir().unwrap();
        write(&home.path().join(".config/nullspace/config.json"), "{not json");
        write(&home.path().join(".nullspace/config.json"), r#"{"api_key":42,"base_url":""}"#);
        let config = sources(home.path(), &[]).resolve();
        assert_eq!((config.api_key, config.base_url.as_str()), (None, DEFAULT_BASE_URL));
    }
}
