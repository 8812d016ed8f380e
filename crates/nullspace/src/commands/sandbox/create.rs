//! `nullspace sandbox create`: build the create request from flags, show progress on a terminal, print
//! the new sandbox.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use nullspace_client::types::sandbox::{
    CreateSandboxRequest, DesktopSettings, LifecycleRequest, OnTimeout, Resolution, SandboxInfo,
    WarmPoolCheckoutRequest,
};
use nullspace_client::Client;

use crate::cli::{CreateArgs, OnTimeoutArg};
use crate::commands::progress::{self, Spinner};
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// `sandbox create`'s warm-pool flags (the `warm_pool` object of the create body).
#[derive(Debug, Clone, Default, Args)]
pub struct WarmPoolArgs {
    /// Take a ready sandbox from this template warm pool (`twp_…`).
    #[arg(long = "warm-pool", value_name = "ID")]
    pub id: Option<String>,
    /// On a miss: prefer (cold create, the default), require (fail with warm_pool_unavailable), or
    /// bypass (always a cold create).
    #[arg(long = "warm-pool-mode", value_enum, value_name = "MODE")]
    pub mode: Option<WarmPoolModeArg>,
    /// Milliseconds to wait for a ready sandbox.
    #[arg(long = "warm-pool-wait", value_name = "MS")]
    pub wait_ms: Option<u64>,
}

/// What a create does when the warm pool has no ready sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WarmPoolModeArg {
    Prefer,
    Require,
    Bypass,
}

impl WarmPoolArgs {
    /// The `warm_pool` object, if any flag was given; prefer and require need an id (as the official
    /// client insists).
    fn request(self) -> anyhow::Result<Option<WarmPoolCheckoutRequest>> {
        if self.id.is_none() && self.mode.is_none() && self.wait_ms.is_none() {
            return Ok(None);
        }
        let mode = self.mode.map(|mode| match mode {
            WarmPoolModeArg::Prefer => "prefer",
            WarmPoolModeArg::Require => "require",
            WarmPoolModeArg::Bypass => "bypass",
        });
        if self.id.is_none() && mode != Some("bypass") {
            return Err(UserError::new(
                "--warm-pool-mode prefer/require and --warm-pool-wait need --warm-pool ID",
                Some("list the pools with `nullspace template warm-pool list`"),
            )
            .into());
        }
        Ok(Some(WarmPoolCheckoutRequest { id: self.id, mode: mode.map(str::to_owned), wait_ms: self.wait_ms }))
    }
}

/// `sandbox create`'s desktop flags (the `desktop` object of the create body; template `desktop` only).
#[derive(Debug, Clone, Default, Args)]
pub struct DesktopArgs {
    /// Desktop screen size as WIDTHxHEIGHT [server default: 1920x1080].
    #[arg(long, value_name = "WxH", value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// Desktop dots per inch [server default: 96].
    #[arg(long, value_name = "DPI")]
    pub dpi: Option<u32>,
    /// Desktop X display such as :1 [server default: :1].
    #[arg(long, value_name = ":N")]
    pub display: Option<String>,
}

impl DesktopArgs {
    /// The `desktop` object, if any flag was given (the server checks the values).
    fn request(self) -> Option<DesktopSettings> {
        let DesktopArgs { resolution, dpi, display } = self;
        (resolution.is_some() || dpi.is_some() || display.is_some()).then_some(DesktopSettings {
            resolution,
            dpi,
            display,
        })
    }
}

fn parse_resolution(text: &str) -> Result<Resolution, String> {
    text.parse()
}

/// Creates the sandbox and prints it.
pub async fn run(client: &Client, args: CreateArgs, json: bool) -> anyhow::Result<ExitStatus> {
    let key = args.idempotency_key.clone();
    let request = request(args)?;
    let template = request.template.clone().unwrap_or_default();
    let spinner = progress::wanted(json).then(|| Spinner::start(format!("creating sandbox from `{template}`")));
    let result = client.create_sandbox(&request, key.as_deref()).await;
    let elapsed = spinner.map(Spinner::stop);
    let info = result.with_context(|| format!("could not create a sandbox from template `{template}`"))?;
    print(&info, json, elapsed)?;
    Ok(ExitStatus::Success)
}

/// The request body from the flags; JSON flags are merged under the repeated KEY=VALUE ones.
fn request(args: CreateArgs) -> anyhow::Result<CreateSandboxRequest> {
    let mut envs: BTreeMap<String, String> = match &args.env_json {
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            UserError::new(
                format!("--env-json is not a JSON object of strings: {e}"),
                Some("example: --env-json '{\"DEBUG\":\"1\"}'"),
            )
        })?,
        None => BTreeMap::new(),
    };
    envs.extend(args.envs);
    let mut metadata: serde_json::Map<String, serde_json::Value> = match &args.metadata_json {
        Some(raw) => serde_json::from_str(raw).map_err(|e| {
            UserError::new(
                format!("--metadata-json is not a JSON object: {e}"),
                Some("example: --metadata-json '{\"team\":\"eval\"}'"),
            )
        })?,
        None => serde_json::Map::new(),
    };
    metadata.extend(args.metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))));
    let internet_access = match (args.internet_access, args.no_internet_access) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        _ => None,
    };
    let auto_resume = match (args.auto_resume, args.no_auto_resume) {
        (_, true) => Some(false),
        (true, false) => Some(true),
        _ => None,
    };
    let on_timeout = args.on_timeout.map(|arg| match arg {
        OnTimeoutArg::Destroy => OnTimeout::Destroy,
        OnTimeoutArg::Pause => OnTimeout::Pause,
    });
    let network =
        match &args.network_json {
            None => None,
            Some(text) => Some(serde_json::from_str(text).context(
                "--network-json must be an object like {\"allow_out\":[\"203.0.113.0/24\"],\"deny_out\":[]}",
            )?),
        };
    Ok(CreateSandboxRequest {
        template: Some(args.template),
        vcpus: args.vcpus,
        memory_mb: args.memory_mb,
        disk_mb: args.disk_mb,
        timeout_ms: args.timeout.map(|secs| secs.saturating_mul(1000)),
        timeout_action: args.timeout_action.map(Into::into),
        envs: Some(envs),
        metadata: Some(metadata),
        cwd: args.cwd,
        internet_access,
        network,
        snapshot_id: None,
        volumes: (!args.volumes.is_empty()).then_some(args.volumes),
        warm_pool: args.warm_pool.request()?,
        desktop: (*args.desktop).request(),
        auto_resume,
        lifecycle: on_timeout.map(|on_timeout| LifecycleRequest { on_timeout: Some(on_timeout) }),
    })
}

fn print(info: &SandboxInfo, json: bool, elapsed: Option<Duration>) -> anyhow::Result<()> {
    if json {
        return print_json(info);
    }
    print_table(&super::HEADERS, &[super::row(info)])?;
    if let Some(elapsed) = elapsed {
        eprintln!("created {} in {:.1}s", info.id, elapsed.as_secs_f64());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command, SandboxCommand};

    fn args(extra: &[&str]) -> CreateArgs {
        let argv = ["nullspace", "sandbox", "create"].iter().chain(extra).copied();
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sandbox(SandboxCommand::Create(args)) => args,
            _ => panic!("wrong command"),
        }
    }

    #[test]
    fn builds_the_body_from_flags() {
        let body = request(args(&[
            "--env-json",
            r#"{"A":"json","B":"json"}"#,
            "--env",
            "B=flag",
            "--metadata-json",
            r#"{"n":1}"#,
            "--metadata",
            "team=eval",
            "--timeout",
            "60",
            "--no-internet-access",
            "--cwd",
            "/workspace",
        ]))
        .unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["envs"], serde_json::json!({"A": "json", "B": "flag"}));
        assert_eq!(json["metadata"], serde_json::json!({"n": 1, "team": "eval"}));
        assert_eq!(json["timeout_ms"], 60_000);
        assert_eq!(json["internet_access"], false);
        assert_eq!(json["template"], "base");
        assert!(json["volumes"].is_null());
    }

    #[test]
    fn volumes_go_on_the_wire_as_the_api_names_them() {
        let body = request(args(&["--volume", "ref=team-data,mount=/data,subpath=/sets,ro=true"])).unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap()["volumes"],
            serde_json::json!([{"ref": "team-data", "mount_path": "/data", "read_only": true, "subpath": "/sets"}])
        );
    }

    #[test]
    fn warm_pool_flags_become_the_warm_pool_object() {
        let body =
            request(args(&["--warm-pool", "twp_1", "--warm-pool-mode", "require", "--warm-pool-wait", "250"])).unwrap();
        assert_eq!(
            serde_json::to_value(&body).unwrap()["warm_pool"],
            serde_json::json!({"id": "twp_1", "mode": "require", "wait_ms": 250})
        );
        let plain = serde_json::to_value(request(args(&[])).unwrap()).unwrap();
        assert!(plain.get("warm_pool").is_none(), "{plain}");
        let bypass = request(args(&["--warm-pool-mode", "bypass"])).unwrap();
        assert_eq!(bypass.warm_pool.unwrap().mode.as_deref(), Some("bypass"));
        assert!(request(args(&["--warm-pool-mode", "prefer"])).is_err());
        assert!(request(args(&["--warm-pool-wait", "10"])).is_err());
    }

    #[test]
    fn desktop_flags_become_the_desktop_object() {
        let body =
            request(args(&["--template", "desktop", "--resolution", "1366x768", "--dpi", "144", "--display", ":3"]));
        assert_eq!(
            serde_json::to_value(body.unwrap()).unwrap()["desktop"],
            serde_json::json!({"resolution": {"width": 1366, "height": 768}, "dpi": 144, "display": ":3"})
        );
        let plain = serde_json::to_value(request(args(&[])).unwrap()).unwrap();
        assert!(plain.get("desktop").is_none(), "{plain}");
        let argv = ["nullspace", "sandbox", "create", "--resolution", "wide"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn lifecycle_flags_become_lifecycle_and_auto_resume() {
        let body = serde_json::to_value(request(args(&["--on-timeout", "pause", "--auto-resume"])).unwrap()).unwrap();
        assert_eq!(body["lifecycle"], serde_json::json!({"on_timeout": "pause"}));
        assert_eq!(body["auto_resume"], true);
        let off = serde_json::to_value(request(args(&["--auto-resume", "--no-auto-resume"])).unwrap()).unwrap();
        assert_eq!(off["auto_resume"], false);
        let plain = serde_json::to_value(request(args(&[])).unwrap()).unwrap();
        assert!(plain.get("lifecycle").is_none() && plain.get("auto_resume").is_none(), "{plain}");
        assert!(Cli::try_parse_from(["nullspace", "sandbox", "create", "--on-timeout", "hibernate"]).is_err());
    }

    #[test]
    fn bad_json_flags_are_user_errors() {
        let error = request(args(&["--env-json", "[1]"])).unwrap_err();
        assert!(error.downcast_ref::<UserError>().is_some());
    }
}
