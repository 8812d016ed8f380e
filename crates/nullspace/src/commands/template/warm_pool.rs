//! `template warm-pool …`: ready capacity of a template (create, list, get, wait, scale, enable,
//! disable, drain, reconcile, delete). Human output is one line per pool:
//! `ID  STATE  ready R/T  TEMPLATE`, plus `degraded: REASON` when the pool cannot fill.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use nullspace_client::{
    Client, ClientError, ListWarmPools, WarmPoolAction, WarmPoolInfo, WarmPoolResources, WarmPoolSpec,
};
use serde_json::{json, Map, Value};

use crate::cli::parse_key_value;
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

#[derive(Debug, Subcommand)]
pub enum WarmPoolCommand {
    /// Create a warm pool that keeps sandboxes of a template ready.
    Create(CreateArgs),
    /// List warm pools.
    #[command(visible_alias = "ls")]
    List {
        /// Only pools of this template ref.
        #[arg(long, value_name = "REF")]
        template: Option<String>,
        /// Only pools in this state (enabled, disabled, draining).
        #[arg(long)]
        state: Option<String>,
        /// Only pools with this public status (e.g. ready).
        #[arg(long)]
        status: Option<String>,
        /// Only pools with this label (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one warm pool.
    Get {
        /// Warm-pool id.
        id: String,
    },
    /// Wait until the pool has ready sandboxes (exit 1 on timeout).
    Wait {
        /// Warm-pool id.
        id: String,
        /// Ready count to wait for [default: the pool's min-ready].
        #[arg(long)]
        min_ready: Option<u64>,
        /// Give up after this many seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300.0)]
        timeout: f64,
        /// Seconds between polls.
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        interval: f64,
    },
    /// Change the pool's ready targets.
    Scale {
        /// Warm-pool id.
        id: String,
        /// New minimum of ready sandboxes.
        #[arg(long)]
        min_ready: Option<u32>,
        /// New maximum of ready or warming sandboxes.
        #[arg(long)]
        max_ready: Option<u32>,
    },
    /// Let the pool fill.
    Enable {
        /// Warm-pool id.
        id: String,
    },
    /// Stop filling the pool.
    Disable {
        /// Warm-pool id.
        id: String,
    },
    /// Release the pool's ready sandboxes.
    Drain {
        /// Warm-pool id.
        id: String,
    },
    /// Fill or trim the pool now.
    Reconcile {
        /// Warm-pool id.
        id: String,
    },
    /// Delete the pool.
    #[command(visible_alias = "rm")]
    Delete {
        /// Warm-pool id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Template ref the pool keeps ready.
    #[arg(value_name = "TEMPLATE_REF")]
    pub template_ref: String,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Ready sandboxes to keep.
    #[arg(long)]
    pub min_ready: u32,
    /// Most ready or warming sandboxes.
    #[arg(long)]
    pub max_ready: u32,
    /// vCPUs of each sandbox.
    #[arg(long, default_value_t = 2)]
    pub vcpus: u32,
    /// Memory of each sandbox in MiB.
    #[arg(long = "memory", visible_alias = "memory-mb", value_name = "MIB", default_value_t = 512)]
    pub memory_mb: u32,
    /// Disk of each sandbox in MiB.
    #[arg(long = "disk", value_name = "MIB")]
    pub disk_mb: Option<u64>,
    /// Default checkout behaviour.
    #[arg(long, value_parser = ["prefer", "require", "bypass"])]
    pub checkout_policy: Option<String>,
    /// Seconds an idle ready sandbox lives.
    #[arg(long = "idle-timeout", value_name = "SECS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds after which a ready sandbox is stale.
    #[arg(long = "stale-after", value_name = "SECS")]
    pub stale_after_seconds: Option<u64>,
    /// Template version policy.
    #[arg(long, value_parser = ["pinned_build", "track_tag"])]
    pub version_policy: Option<String>,
    /// Tag to follow with `--version-policy track_tag`.
    #[arg(long)]
    pub track_tag: Option<String>,
    /// Label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// Metadata pair (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// Metadata as a JSON object.
    #[arg(long, value_name = "JSON")]
    pub metadata_json: Option<String>,
}

/// Runs a `template warm-pool` subcommand.
pub async fn run(client: &Client, command: WarmPoolCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        WarmPoolCommand::Create(args) => {
            let spec = create_spec(args)?;
            let pool = client.create_warm_pool(&spec).await.context("could not create the warm pool")?;
            show(&pool, json)
        }
        WarmPoolCommand::List { template, state, status, labels, limit } => {
            let query = ListWarmPools { template, state, labels, status, limit };
            let pools = client.list_warm_pools(&query).await.context("could not list warm pools")?;
            if json {
                print_json(&json!({ "items": pools }))?;
            } else {
                let rows: Vec<Vec<String>> = pools.iter().map(row).collect();
                print_table(&["ID", "STATE", "READY", "TEMPLATE", "NAME"], &rows)?;
            }
            Ok(ExitStatus::Success)
        }
        WarmPoolCommand::Get { id } => show(&client.get_warm_pool(&id).await.map_err(missing(&id))?, json),
        WarmPoolCommand::Wait { id, min_ready, timeout, interval } => {
            let (timeout, interval) = (secs(timeout, "--timeout")?, secs(interval, "--interval")?);
            match client.wait_warm_pool(&id, min_ready, timeout, interval).await.map_err(missing(&id))? {
                Ok(pool) => show(&pool, json),
                Err(pool) => {
                    show(&pool, json)?;
                    let target = min_ready.unwrap_or(pool.min_ready);
                    Err(UserError::new(
                        format!("warm pool {id} did not reach {target} ready sandboxes in {}s", timeout.as_secs_f64()),
                        Some("see why with `nullspace template warm-pool get ID` (degraded reason)"),
                    )
                    .into())
                }
            }
        }
        WarmPoolCommand::Scale { id, min_ready, max_ready } => {
            let spec = scale_spec(min_ready, max_ready)?;
            show(&client.update_warm_pool(&id, &spec).await.map_err(missing(&id))?, json)
        }
        WarmPoolCommand::Enable { id } => action(client, &id, WarmPoolAction::Enable, json).await,
        WarmPoolCommand::Disable { id } => action(client, &id, WarmPoolAction::Disable, json).await,
        WarmPoolCommand::Drain { id } => action(client, &id, WarmPoolAction::Drain, json).await,
        WarmPoolCommand::Reconcile { id } => action(client, &id, WarmPoolAction::Reconcile, json).await,
        WarmPoolCommand::Delete { id } => {
            client.delete_warm_pool(&id).await.map_err(missing(&id))?;
            if json {
                print_json(&json!({"id": id, "warm_pool": {"id": id}, "deleted": true}))?;
            } else {
                println!("{id}  deleted");
            }
            Ok(ExitStatus::Success)
        }
    }
}

async fn action(client: &Client, id: &str, action: WarmPoolAction, json: bool) -> anyhow::Result<ExitStatus> {
    show(&client.warm_pool_action(id, action).await.map_err(missing(id))?, json)
}

fn missing(id: &str) -> impl FnOnce(ClientError) -> anyhow::Error + '_ {
    move |error| {
        if error.status() == Some(404) {
            let user = UserError::new(
                format!("no warm pool `{id}`"),
                Some("list them with `nullspace template warm-pool list`"),
            );
            anyhow::Error::new(error).context(user)
        } else {
            anyhow::Error::new(error).context(format!("request about warm pool `{id}` failed"))
        }
    }
}

fn secs(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| UserError::new(format!("{flag} must be a number of seconds ≥ 0"), None).into())
}

/// The update body of `scale` (one of the targets at least).
fn scale_spec(min_ready: Option<u32>, max_ready: Option<u32>) -> anyhow::Result<WarmPoolSpec> {
    if min_ready.is_none() && max_ready.is_none() {
        return Err(UserError::new("scale needs --min-ready or --max-ready", None).into());
    }
    Ok(WarmPoolSpec { min_ready, max_ready, ..Default::default() })
}

/// The create body from the flags.
fn create_spec(args: CreateArgs) -> anyhow::Result<WarmPoolSpec> {
    let mut metadata: Map<String, Value> = match &args.metadata_json {
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            UserError::new(
                format!("--metadata-json is not a JSON object: {e}"),
                Some("example: --metadata-json '{\"team\":\"eval\"}'"),
            )
        })?,
        None => Map::new(),
    };
    metadata.extend(args.metadata.into_iter().map(|(k, v)| (k, Value::String(v))));
    let labels: Map<String, Value> = args.labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    if args.min_ready > args.max_ready {
        return Err(UserError::new(
            format!("--min-ready {} is above --max-ready {}", args.min_ready, args.max_ready),
            None,
        )
        .into());
    }
    Ok(WarmPoolSpec {
        template_ref: Some(args.template_ref),
        name: Some(args.name),
        min_ready: Some(args.min_ready),
        max_ready: Some(args.max_ready),
        resources: Some(WarmPoolResources {
            vcpus: Some(args.vcpus),
            memory_mb: Some(args.memory_mb),
            disk_mb: args.disk_mb,
        }),
        idle_timeout_seconds: args.idle_timeout_seconds,
        stale_after_seconds: args.stale_after_seconds,
        checkout_policy: args.checkout_policy,
        version_policy: args.version_policy,
        track_tag: args.track_tag,
        labels: (!labels.is_empty()).then_some(labels),
        metadata: (!metadata.is_empty()).then_some(metadata),
    })
}

fn row(pool: &WarmPoolInfo) -> Vec<String> {
    vec![
        pool.id.clone(),
        pool.state.clone(),
        format!("{}/{}", pool.status.ready, pool.status.target),
        pool.template_ref.clone(),
        pool.name.clone(),
    ]
}

fn show(pool: &WarmPoolInfo, json: bool) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(pool)?;
    } else {
        println!(
            "{}  {}  ready {}/{}  {}",
            pool.id, pool.state, pool.status.ready, pool.status.target, pool.template_ref
        );
        if let Some(reason) = &pool.degraded_reason {
            println!("degraded: {reason}");
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(subcommand)]
        command: WarmPoolCommand,
    }

    #[test]
    fn create_flags_become_the_official_body() {
        let probe = Probe::try_parse_from([
            "p",
            "create",
            "team/api:stable",
            "--name",
            "small",
            "--min-ready",
            "1",
            "--max-ready",
            "3",
            "--label",
            "tier=a",
            "--metadata",
            "owner=me",
            "--checkout-policy",
            "require",
        ])
        .unwrap();
        let WarmPoolCommand::Create(args) = probe.command else { panic!("wrong command") };
        let body = serde_json::to_value(create_spec(args).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"template_ref": "team/api:stable", "name": "small", "min_ready": 1, "max_ready": 3,
                "resources": {"vcpus": 2, "memory_mb": 512}, "checkout_policy": "require",
                "labels": {"tier": "a"}, "metadata": {"owner": "me"}})
        );
    }

    #[test]
    fn scale_needs_a_target_and_create_checks_the_range() {
        assert!(scale_spec(None, None).is_err());
        assert_eq!(serde_json::to_value(scale_spec(None, Some(4)).unwrap()).unwrap(), json!({"max_ready": 4}));
        let probe =
            Probe::try_parse_from(["p", "create", "t", "--name", "n", "--min-ready", "5", "--max-ready", "2"]).unwrap();
        let WarmPoolCommand::Create(args) = probe.command else { panic!("wrong command") };
        assert!(create_spec(args).is_err());
    }
}
