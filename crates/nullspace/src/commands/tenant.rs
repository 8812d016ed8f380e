//! `nullspace tenant set-limits` and `nullspace tenant get`: a tenant's quotas in a local server's
//! store, and what it holds now. A running server applies changed limits to its next request.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use nullspace_server::{LimitsUpdate, TenantReport};

use crate::cli::GlobalArgs;
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Set (or clear with `none`) a tenant's limits; limits not named stay as they are.
    ///
    /// A create, fork, resume or warm-pool claim that would take the tenant past a limit gets
    /// `quota_exceeded` naming the limit. Hibernated sandboxes count as sandboxes and disk, not vCPUs or
    /// memory.
    #[command(name = "set-limits")]
    SetLimits(SetLimitsArgs),
    /// Show a tenant's limits and what it holds now.
    Get {
        /// Tenant name.
        name: String,
        /// Data directory of the server [default: ~/.local/share/nullspace]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct SetLimitsArgs {
    /// Tenant name (as given to `nullspace api-key create --tenant`).
    pub name: String,
    /// Most sandboxes at once (creating, running or hibernated), or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    pub max_sandboxes: Option<Limit>,
    /// Most vCPUs its sandboxes reserve together, or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    pub max_vcpus: Option<Limit>,
    /// Most memory its sandboxes reserve together (e.g. 8GiB; a bare number is MiB), or `none`.
    #[arg(long, value_name = "SIZE|none", value_parser = parse_mib)]
    pub max_memory: Option<Limit>,
    /// Most disk its sandboxes reserve together (e.g. 100GiB; a bare number is MiB), or `none`.
    #[arg(long, value_name = "SIZE|none", value_parser = parse_mib)]
    pub max_disk: Option<Limit>,
    /// Most volumes, or `none`.
    #[arg(long, value_name = "N|none", value_parser = parse_count)]
    pub max_volumes: Option<Limit>,
    /// Data directory of the server [default: ~/.local/share/nullspace]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// A limit as given on the command line: a value, or `None` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

/// Words that remove a limit.
const NO_LIMIT: &[&str] = &["none", "unlimited", "off"];

/// `N` or `none`.
fn parse_count(text: &str) -> Result<Limit, String> {
    let text = text.trim();
    if NO_LIMIT.contains(&text.to_ascii_lowercase().as_str()) {
        return Ok(Limit(None));
    }
    text.parse::<u64>().map(|n| Limit(Some(n))).map_err(|_| format!("expected a whole number or `none`, got {text:?}"))
}

/// A size (`512MiB`, `8GiB`, a bare number of MiB) in MiB, rounded up, or `none`.
fn parse_mib(text: &str) -> Result<Limit, String> {
    let text = text.trim();
    if NO_LIMIT.contains(&text.to_ascii_lowercase().as_str()) {
        return Ok(Limit(None));
    }
    if let Ok(mib) = text.parse::<u64>() {
        return Ok(Limit(Some(mib)));
    }
    let bytes = crate::cli::parse_byte_size(text)?;
    Ok(Limit(Some(bytes.div_ceil(1 << 20))))
}

/// Runs a `tenant` subcommand.
pub async fn run(command: TenantCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let (name, data_dir, update) = match command {
        TenantCommand::Get { name, data_dir } => (name, data_dir, None),
        TenantCommand::SetLimits(args) => {
            let update = LimitsUpdate {
                max_sandboxes: args.max_sandboxes.map(|l| l.0),
                max_vcpus: args.max_vcpus.map(|l| l.0),
                max_memory_mb: args.max_memory.map(|l| l.0),
                max_disk_mb: args.max_disk.map(|l| l.0),
                max_volumes: args.max_volumes.map(|l| l.0),
            };
            if update == LimitsUpdate::default() {
                return Err(UserError::new(
                    "no limit given",
                    Some("pass one or more of --max-sandboxes, --max-vcpus, --max-memory, --max-disk, --max-volumes (a value or `none`)"),
                )
                .into());
            }
            (args.name, args.data_dir, Some(update))
        }
    };
    let data_dir = super::data_dir(data_dir)?;
    let Some(report) = nullspace_server::tenant_limits(&data_dir, &name, update.as_ref()).await? else {
        return Err(UserError::new(
            format!("no tenant named {name:?} in {}", data_dir.display()),
            Some("tenants are created with their first key: `nullspace api-key create --tenant NAME` (pass --data-dir if the server uses another)"),
        )
        .into());
    };
    if global.json {
        print_json(&report_json(&report))?;
    } else {
        print_report(&report)?;
    }
    Ok(ExitStatus::Success)
}

/// `tenant get --json`: `{tenant, id, limits: {max_…: n|null}, usage: {…}}`.
fn report_json(report: &TenantReport) -> serde_json::Value {
    let (limits, usage) = (&report.limits, &report.usage);
    serde_json::json!({
        "tenant": report.name,
        "id": report.id,
        "limits": {
            "max_sandboxes": limits.max_sandboxes,
            "max_vcpus": limits.max_vcpus,
            "max_memory_mb": limits.max_memory_mb,
            "max_disk_mb": limits.max_disk_mb,
            "max_volumes": limits.max_volumes,
        },
        "usage": {
            "sandboxes": usage.sandboxes,
            "vcpus": usage.vcpus,
            "memory_mb": usage.memory_mb,
            "disk_mb": usage.disk_mb,
            "volumes": usage.volumes,
        },
    })
}

fn print_report(report: &TenantReport) -> anyhow::Result<()> {
    let (limits, usage) = (&report.limits, &report.usage);
    let max = |value: Option<u64>| value.map_or_else(|| "none".to_owned(), |n| n.to_string());
    println!("tenant {} ({})", report.name, report.id);
    let rows = [
        ("sandboxes", usage.sandboxes, limits.max_sandboxes),
        ("vcpus", usage.vcpus, limits.max_vcpus),
        ("memory_mb", usage.memory_mb, limits.max_memory_mb),
        ("disk_mb", usage.disk_mb, limits.max_disk_mb),
        ("volumes", usage.volumes, limits.max_volumes),
    ]
    .map(|(what, used, limit)| vec![what.to_owned(), used.to_string(), max(limit)]);
    print_table(&["RESOURCE", "USED", "LIMIT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_none() {
        assert_eq!(parse_count("3"), Ok(Limit(Some(3))));
        assert_eq!(parse_count("0"), Ok(Limit(Some(0))));
        assert_eq!(parse_count("None"), Ok(Limit(None)));
        assert!(parse_count("-1").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn sizes_are_mib_rounded_up() {
        assert_eq!(parse_mib("2048"), Ok(Limit(Some(2048))));
        assert_eq!(parse_mib("4GiB"), Ok(Limit(Some(4096))));
        assert_eq!(parse_mib("512 MiB"), Ok(Limit(Some(512))));
        assert_eq!(parse_mib("1GB"), Ok(Limit(Some(954))));
        assert_eq!(parse_mib("1KiB"), Ok(Limit(Some(1))));
        assert_eq!(parse_mib("unlimited"), Ok(Limit(None)));
        assert!(parse_mib("big").is_err());
    }
}
