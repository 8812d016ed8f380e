//! `nullspace server`: run the API server and the local node until SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::Context as _;

use nullspace_server::{CapacitySettings, HttpLimits, RegistryConfig, RequestSettings, ServerOptions, TargetPolicy};

use crate::cli::{RuntimeArg, SandboxDiskArg, ServerArgs};
use crate::exit::ExitStatus;

/// Runs the server in the foreground.
pub async fn run(args: ServerArgs) -> anyhow::Result<ExitStatus> {
    let runtime = match args.runtime {
        RuntimeArg::Auto => "auto",
        RuntimeArg::Runc => "runc",
        RuntimeArg::Crun => "crun",
        RuntimeArg::Runsc => "runsc",
    };
    let mut registry = RegistryConfig::from_flags(&args.registry_mirror, &args.insecure_registry)?;
    registry.allow_private = args.registry_allow_private;
    let sandbox_ca_bundle = match args.sandbox_ca_bundle {
        Some(path) => Some(std::fs::canonicalize(&path).with_context(|| {
            format!(
                "--sandbox-ca-bundle {}: no such file (give a PEM bundle such as /etc/ssl/certs/ca-certificates.crt)",
                path.display()
            )
        })?),
        None => None,
    };
    let options = ServerOptions {
        listen: args.listen,
        data_dir: super::data_dir(args.data_dir)?,
        runtime: runtime.into(),
        preview_domain: args.preview_domain,
        bridge: args.bridge,
        subnet: args.subnet,
        volume_size: args.volume_size,
        sandbox_disk: match args.sandbox_disk {
            SandboxDiskArg::Size(bytes) => Some(bytes),
            SandboxDiskArg::Unlimited => None,
        },
        capacity: CapacitySettings {
            max_vcpus: args.max_vcpus,
            max_memory_mb: args.max_memory_mb,
            cpu_overcommit: args.cpu_overcommit,
            memory_overcommit: args.memory_overcommit,
        },
        registry,
        sandbox_ca_bundle,
        allow_host_root: args.allow_host_root,
        without_templates: args.without_template,
        builtin_pools: args.builtin_warm_pool.into_iter().collect(),
        desktop_raw_vnc: args.desktop_raw_vnc,
        webhook_targets: TargetPolicy { allow_private: args.webhook_allow_private, allow: args.webhook_allow_cidr },
        http: HttpLimits {
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            body_timeout: Duration::from_secs(args.body_timeout_secs),
            max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        },
        requests: RequestSettings {
            rate_limit: args.rate_limit.0.map(|mut rate| {
                rate.burst = args.rate_limit_burst.and_then(std::num::NonZeroU32::new).unwrap_or(rate.burst);
                rate
            }),
            max_execs_per_sandbox: usize::try_from(args.max_execs_per_sandbox).unwrap_or(usize::MAX),
        },
        max_sandboxes: args.max_sandboxes,
    };
    nullspace_server::run(options).await?;
    Ok(ExitStatus::Success)
}

/// `NAME=N` of `--builtin-warm-pool`.
pub fn parse_builtin_pool(text: &str) -> Result<(String, u32), String> {
    const BUILTINS: [&str; 1] = ["code-interpreter"];
    let (name, size) =
        text.split_once('=').ok_or_else(|| format!("expected NAME=N, e.g. code-interpreter=2, got {text:?}"))?;
    if !BUILTINS.contains(&name) {
        return Err(format!("{name:?} is not a built-in template with a pool; known: {}", BUILTINS.join(", ")));
    }
    let size: u32 = size.parse().map_err(|_| format!("N must be a number from 0 to 16, got {size:?}"))?;
    if size > 16 {
        return Err(format!("N must be a number from 0 to 16, got {size}"));
    }
    Ok((name.to_owned(), size))
}

#[cfg(test)]
mod tests {
    use super::parse_builtin_pool;

    #[test]
    fn builtin_pool_sizes_name_a_builtin_and_a_bounded_count() {
        assert_eq!(parse_builtin_pool("code-interpreter=2"), Ok(("code-interpreter".to_owned(), 2)));
        assert_eq!(parse_builtin_pool("code-interpreter=0"), Ok(("code-interpreter".to_owned(), 0)));
        assert!(parse_builtin_pool("code-interpreter").unwrap_err().contains("NAME=N"));
        assert!(parse_builtin_pool("base=1").unwrap_err().contains("not a built-in template with a pool"));
        assert!(parse_builtin_pool("code-interpreter=17").unwrap_err().contains("0 to 16"));
        assert!(parse_builtin_pool("code-interpreter=-1").is_err());
    }
}
