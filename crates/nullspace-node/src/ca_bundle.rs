//! The operator's certificate authorities for sandboxes (`--sandbox-ca-bundle`): on a network whose
//! HTTPS goes through a TLS-inspecting proxy, sandboxes must trust that proxy's CA as the host does. The
//! bundle (a complete PEM bundle, e.g. the host's `/etc/ssl/certs/ca-certificates.crt`) is mounted
//! read-only at [`SANDBOX_CA_BUNDLE`] in every sandbox and build sandbox, outside any layer, and the
//! environment variables the common TLS clients read point at it; a template's or a create's own value of
//! any of them wins. No image file is changed, so nothing of it ends up in a template.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nullspace_runtime::BindMount;

/// Where the bundle appears inside a sandbox (`/run/nullspace` is the sandbox's tmpfs, never a layer).
pub const SANDBOX_CA_BUNDLE: &str = "/run/nullspace/ca-certificates.crt";

/// Variables that make TLS clients use the bundle: OpenSSL (and Python's `ssl`, Rust's native-tls),
/// curl, Python requests, pip, git, and Node (whose variable adds to its built-in roots).
const CA_ENV_VARS: &[&str] =
    &["SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS"];

/// The bind mount of `bundle` into a sandbox.
pub fn mount(bundle: &Path) -> BindMount {
    BindMount { source: bundle.to_path_buf(), destination: SANDBOX_CA_BUNDLE.to_owned(), read_only: true }
}

/// Adds the bundle's variables to `envs` where they are not set.
pub fn add_envs(bundle: Option<&PathBuf>, envs: &mut BTreeMap<String, String>) {
    if bundle.is_none() {
        return;
    }
    for name in CA_ENV_VARS {
        envs.entry((*name).to_owned()).or_insert_with(|| SANDBOX_CA_BUNDLE.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_point_at_the_bundle_only_when_one_is_configured_and_never_override() {
        let mut envs = BTreeMap::from([("PIP_CERT".to_owned(), "/own.pem".to_owned())]);
        add_envs(None, &mut envs);
        assert_eq!(envs.len(), 1);
        add_envs(Some(&PathBuf::from("/etc/ssl/certs/ca-certificates.crt")), &mut envs);
        assert_eq!(envs["PIP_CERT"], "/own.pem");
        assert_eq!(envs["SSL_CERT_FILE"], SANDBOX_CA_BUNDLE);
        assert_eq!(envs["NODE_EXTRA_CA_CERTS"], SANDBOX_CA_BUNDLE);
        assert_eq!(envs.len(), CA_ENV_VARS.len());
    }
}
