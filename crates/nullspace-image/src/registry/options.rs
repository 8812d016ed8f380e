//! How this server reaches registries (`--registry-mirror`, `--insecure-registry`) and the credentials a
//! build request brings (`base_image_auth`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::error::{ImageError, ImageResult};

/// Where pulls go: mirrors that replace a registry, and hosts reached over plain HTTP or unverified TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registry host (`docker.io`, `ghcr.io`, `host:port`) → the mirror that serves its pulls.
    pub mirrors: BTreeMap<String, RegistryMirror>,
    /// `HOST` or `HOST:PORT` of registries (or mirrors) tried over HTTPS without certificate
    /// verification, then over plain HTTP.
    pub insecure: BTreeSet<String>,
    /// Pull from registry hosts on loopback, private and link-local addresses that are not configured
    /// above (`--registry-allow-private`); refused by default.
    pub allow_private: bool,
}

/// A mirror endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    /// `host` or `host:port`.
    pub host: String,
    /// `http://` endpoints are plain HTTP; `https://` ones use TLS.
    pub plain_http: bool,
}

/// Docker Hub's aliases all mean `docker.io`.
fn normalize_registry(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_owned(),
        _ => host,
    }
}

/// A `host` or `host:port` (no scheme, path or user info).
fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    name_ok && port_ok
}

impl RegistryConfig {
    /// Parses a `--registry-mirror` value: `REGISTRY=URL`, e.g. `docker.io=http://127.0.0.1:5000`
    /// (`http://` is plain HTTP, `https://` TLS; the URL has no path).
    pub fn parse_mirror(value: &str) -> ImageResult<(String, RegistryMirror)> {
        let invalid = |reason: &str| ImageError::InvalidRegistryOption {
            value: value.to_owned(),
            reason: format!("{reason} (expected REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000)"),
        };
        let (registry, endpoint) = value.split_once('=').ok_or_else(|| invalid("no `=`"))?;
        if !valid_host(registry) {
            return Err(invalid("the registry must be a host or host:port such as docker.io"));
        }
        let url = url::Url::parse(endpoint).map_err(|_| invalid("the mirror is not a URL"))?;
        let plain_http = match url.scheme() {
            "http" => true,
            "https" => false,
            _ => return Err(invalid("the mirror URL must start with http:// or https://")),
        };
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("the mirror URL must not carry credentials, a query or a fragment"));
        }
        if url.path() != "/" {
            return Err(invalid("the mirror URL must not have a path (mirrors serve /v2/ at their root)"));
        }
        let host = url.host_str().ok_or_else(|| invalid("the mirror URL has no host"))?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok((normalize_registry(registry), RegistryMirror { host, plain_http }))
    }

    /// Parses an `--insecure-registry` value: `HOST` or `HOST:PORT`.
    pub fn parse_insecure(value: &str) -> ImageResult<String> {
        if !valid_host(value) {
            return Err(ImageError::InvalidRegistryOption {
                value: value.to_owned(),
                reason: "expected HOST or HOST:PORT, e.g. 127.0.0.1:5000 (no scheme or path)".to_owned(),
            });
        }
        Ok(normalize_registry(value))
    }

    /// The configuration from repeated `--registry-mirror` and `--insecure-registry` values.
    pub fn from_flags(mirrors: &[String], insecure: &[String]) -> ImageResult<RegistryConfig> {
        Ok(RegistryConfig {
            mirrors: mirrors.iter().map(|m| Self::parse_mirror(m)).collect::<ImageResult<_>>()?,
            insecure: insecure.iter().map(|i| Self::parse_insecure(i)).collect::<ImageResult<_>>()?,
            allow_private: false,
        })
    }
}

/// Credentials for the registry of a build's base image.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    /// No credentials (anonymous token or none).
    #[default]
    Anonymous,
    /// HTTP basic credentials (also used to obtain a bearer token); the password may be an access token.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Anonymous => write!(f, "Anonymous"),
            RegistryAuth::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <redacted> }}")
            }
        }
    }
}

impl RegistryAuth {
    /// The credentials of a build request's `base_image_auth` (`null` or absent: anonymous;
    /// `{"kind": "basic", "username", "password"}`). `gcp_artifact_registry` and `aws_ecr` are
    /// `unsupported_auth` errors.
    pub fn from_request(value: &serde_json::Value) -> ImageResult<RegistryAuth> {
        let object = match value {
            serde_json::Value::Null => return Ok(RegistryAuth::Anonymous),
            serde_json::Value::Object(object) => object,
            _ => return Err(ImageError::InvalidAuth("base_image_auth must be an object".to_owned())),
        };
        let kind = object.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        match kind {
            "basic" => {
                let field = |name: &str| match object.get(name) {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    _ => Err(ImageError::InvalidAuth(format!("basic auth needs a string `{name}`"))),
                };
                let (username, password) = (field("username")?, field("password")?);
                if username.is_empty() {
                    return Err(ImageError::InvalidAuth("basic auth needs a non-empty `username`".to_owned()));
                }
                Ok(RegistryAuth::Basic { username, password })
            }
            "gcp_artifact_registry" | "aws_ecr" => Err(ImageError::UnsupportedAuth { kind: kind.to_owned() }),
            "" => Err(ImageError::InvalidAuth("base_image_auth needs a `kind` (\"basic\")".to_owned())),
            other => {
                Err(ImageError::InvalidAuth(format!("unknown base_image_auth kind {other:?}; expected \"basic\"")))
            }
        }
    }

    pub(crate) fn oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            RegistryAuth::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mirrors_parse_and_bad_ones_say_what_is_expected() {
        let (registry, mirror) = RegistryConfig::parse_mirror("docker.io=http://127.0.0.1:5000").unwrap();
        assert_eq!(registry, "docker.io");
        assert_eq!(mirror, RegistryMirror { host: "127.0.0.1:5000".into(), plain_http: true });
        let (registry, mirror) = RegistryConfig::parse_mirror("index.docker.io=https://mirror.example/").unwrap();
        assert_eq!(registry, "docker.io");
        assert_eq!(mirror, RegistryMirror { host: "mirror.example".into(), plain_http: false });
        let (registry, _) = RegistryConfig::parse_mirror("ghcr.io:443=https://m:8443").unwrap();
        assert_eq!(registry, "ghcr.io:443");
        for bad in [
            "docker.io",
            "docker.io=",
            "docker.io=127.0.0.1:5000",
            "docker.io=ftp://m",
            "docker.io=http://m/prefix",
            "docker.io=http://user:pw@m",
            "http://docker.io=http://m",
            "=http://m",
            "docker.io:99999=http://m",
        ] {
            let error = RegistryConfig::parse_mirror(bad).unwrap_err();
            assert_eq!(error.code(), "invalid_registry_option", "{bad}");
            assert!(error.to_string().contains("REGISTRY=URL"), "{error}");
        }
    }

    #[test]
    fn insecure_registries_are_host_or_host_port() {
        assert_eq!(RegistryConfig::parse_insecure("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(RegistryConfig::parse_insecure("Registry.Local").unwrap(), "registry.local");
        for bad in ["", "http://h:5000", "h:port", "h/x", "h:0", ":5000"] {
            assert_eq!(RegistryConfig::parse_insecure(bad).unwrap_err().code(), "invalid_registry_option", "{bad}");
        }
        let config = RegistryConfig::from_flags(&["docker.io=http://m:5000".into()], &["m:5000".into()]).unwrap();
        assert!(config.insecure.contains("m:5000") && config.mirrors.contains_key("docker.io"));
    }

    #[test]
    fn request_auth_kinds() {
        assert_eq!(RegistryAuth::from_request(&serde_json::Value::Null).unwrap(), RegistryAuth::Anonymous);
        let basic = RegistryAuth::from_request(&json!({"kind": "basic", "username": "u", "password": "p"})).unwrap();
        assert_eq!(basic, RegistryAuth::Basic { username: "u".into(), password: "p".into() });
        assert!(!format!("{basic:?}").contains("\"p\""), "the password is not in Debug output");
        for kind in ["gcp_artifact_registry", "aws_ecr"] {
            let error = RegistryAuth::from_request(&json!({"kind": kind, "region": "x"})).unwrap_err();
            assert_eq!(error.code(), "unsupported_auth");
            assert!(error.to_string().contains("basic"), "{error}");
        }
        for bad in [
            json!({"kind": "basic", "username": "u"}),
            json!({"kind": "basic", "username": "", "password": "p"}),
            json!({"kind": "basic", "username": 1, "password": "p"}),
            json!({"kind": "token"}),
            json!({"username": "u", "password": "p"}),
            json!("basic"),
        ] {
            assert_eq!(RegistryAuth::from_request(&bad).unwrap_err().code(), "invalid_registry_auth", "{bad}");
        }
    }
}
