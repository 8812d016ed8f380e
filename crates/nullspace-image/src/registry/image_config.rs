//! The parts of an image's config blob (OCI `application/vnd.oci.image.config.v1+json` or Docker's
//! `application/vnd.docker.container.image.v1+json`) that a build needs: the run settings and
//! `rootfs.diff_ids`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The run settings of an image (`config` in its config blob); everything absent is empty or `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// The default command (`None` when unset, which differs from an empty one).
    pub cmd: Option<Vec<String>>,
    /// The entrypoint (`None` when unset).
    pub entrypoint: Option<Vec<String>>,
    /// Exposed ports such as `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Volume mount points, sorted.
    pub volumes: Vec<String>,
    /// Docker's health check, if the image has one.
    pub healthcheck: Option<Healthcheck>,
}

/// Docker's `HEALTHCHECK` (durations in nanoseconds; 0 means "the default").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval_ns: u64,
    /// Time a check may take.
    pub timeout_ns: u64,
    /// Grace period after start.
    pub start_period_ns: u64,
    /// Consecutive failures before unhealthy.
    pub retries: u64,
}

#[derive(Deserialize, Default)]
struct RawBlob {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<RawConfig>,
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    labels: Option<BTreeMap<String, String>>,
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    healthcheck: Option<RawHealthcheck>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawHealthcheck {
    test: Option<Vec<String>>,
    interval: Option<u64>,
    timeout: Option<u64>,
    start_period: Option<u64>,
    retries: Option<u64>,
}

/// A parsed config blob.
#[derive(Debug)]
pub(crate) struct ParsedConfig {
    pub(crate) config: ImageConfig,
    pub(crate) diff_ids: Vec<String>,
    pub(crate) os: Option<String>,
    pub(crate) architecture: Option<String>,
}

/// Parses a config blob; the error says what is malformed.
pub(crate) fn parse(blob: &[u8]) -> Result<ParsedConfig, String> {
    let raw: RawBlob = serde_json::from_slice(blob).map_err(|e| format!("the image config is not valid JSON: {e}"))?;
    let rootfs = raw.rootfs.ok_or("the image config has no rootfs")?;
    if rootfs.kind.as_deref().is_some_and(|kind| kind != "layers") {
        return Err(format!("the image config's rootfs type is {:?}, not \"layers\"", rootfs.kind.unwrap_or_default()));
    }
    let c = raw.config.unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let config = ImageConfig {
        env: c.env.unwrap_or_default(),
        user: non_empty(c.user),
        working_dir: non_empty(c.working_dir),
        cmd: c.cmd,
        entrypoint: c.entrypoint,
        exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
        labels: c.labels.unwrap_or_default(),
        volumes: c.volumes.unwrap_or_default().into_keys().collect(),
        healthcheck: c.healthcheck.map(|h| Healthcheck {
            test: h.test.unwrap_or_default(),
            interval_ns: h.interval.unwrap_or(0),
            timeout_ns: h.timeout.unwrap_or(0),
            start_period_ns: h.start_period.unwrap_or(0),
            retries: h.retries.unwrap_or(0),
        }),
    };
    Ok(ParsedConfig {
        config,
        diff_ids: rootfs.diff_ids.unwrap_or_default(),
        os: raw.os,
        architecture: raw.architecture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_config_fields_are_read() {
        let blob = json!({
            "architecture": "amd64", "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin", "A=b"], "User": "app:app", "WorkingDir": "/srv",
                "Cmd": ["serve"], "Entrypoint": null,
                "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Labels": {"k": "v"}, "Volumes": {"/data": {}},
                "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000u64, "Retries": 3}
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:aa", "sha256:bb"]}
        });
        let parsed = parse(blob.to_string().as_bytes()).unwrap();
        let c = parsed.config;
        assert_eq!(c.env, ["PATH=/usr/bin", "A=b"]);
        assert_eq!((c.user.as_deref(), c.working_dir.as_deref()), (Some("app:app"), Some("/srv")));
        assert_eq!((c.cmd, c.entrypoint), (Some(vec!["serve".to_owned()]), None));
        assert_eq!(c.exposed_ports, ["53/udp", "8080/tcp"]);
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.volumes, ["/data"]);
        let h = c.healthcheck.unwrap();
        assert_eq!((h.test.len(), h.interval_ns, h.timeout_ns, h.retries), (2, 30_000_000_000, 0, 3));
        assert_eq!(parsed.diff_ids, ["sha256:aa", "sha256:bb"]);
        assert_eq!((parsed.os.as_deref(), parsed.architecture.as_deref()), (Some("linux"), Some("amd64")));
    }

    #[test]
    fn absent_and_null_fields_are_empty_and_malformed_blobs_are_refused() {
        let parsed =
            parse(br#"{"config": {"Env": null, "User": ""}, "rootfs": {"type": "layers", "diff_ids": []}}"#).unwrap();
        assert_eq!(parsed.config, ImageConfig::default());
        let parsed = parse(br#"{"rootfs": {"type": "layers", "diff_ids": []}}"#).unwrap();
        assert_eq!(parsed.config, ImageConfig::default());
        assert!(parse(b"not json").unwrap_err().contains("JSON"));
        assert!(parse(br#"{"config": {}}"#).unwrap_err().contains("rootfs"));
        assert!(parse(br#"{"rootfs": {"type": "zfs"}}"#).unwrap_err().contains("layers"));
    }
}
