//! A template's builds after the fact: `template builds REF` (a page of its builds, newest first),
//! `template retry BUILD_ID` (a new build of the stored request, with credentials brought again since
//! the server never stores them; `--wait` follows it) and `template promote BUILD_ID TAG`.

use std::time::Duration;

use clap::{Args, ValueEnum};
use nullspace_client::{BuildInfo, Client, ClientError};
use serde_json::{Map, Value};

use super::build::{self, LogFormat};
use super::credentials;
use super::spec::RegistryArgs;
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// Status of a build (a filter of `template builds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildStatusArg {
    Waiting,
    Building,
    Ready,
    Error,
    Cancelled,
}

impl BuildStatusArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Building => "building",
            Self::Ready => "ready",
            Self::Error => "error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// `template retry` flags.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Build id (`tb_…`) to run again.
    pub build_id: String,
    /// Tag of the new build (repeatable) [default: the old build's tags].
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Build secret from the environment: ID=ENVVAR, or ID to read $ID (repeatable; secrets are not
    /// stored, so a build that used them needs them again).
    #[arg(long, value_name = "ID[=ENVVAR]")]
    pub build_secret_env: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Follow the new build until it ends, as `template wait` does (exit 1 unless it is ready).
    #[arg(long)]
    pub wait: bool,
    /// Milliseconds between polls with --wait.
    #[arg(long, default_value_t = 250, requires = "wait")]
    pub poll_interval_ms: u64,
    /// How log entries are shown on stderr with --wait.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, requires = "wait")]
    pub log_format: LogFormat,
}

/// Adds "no such build" context with the hint to list builds.
fn missing_build(build_id: &str, action: &str) -> impl FnOnce(ClientError) -> anyhow::Error {
    let (build_id, action) = (build_id.to_owned(), action.to_owned());
    move |error| {
        if error.status() == Some(404) {
            let user = UserError::new(
                format!("no build `{build_id}`"),
                Some("list a template's builds with `nullspace template builds REF`"),
            );
            anyhow::Error::new(error).context(user)
        } else {
            anyhow::Error::new(error).context(format!("could not {action} build {build_id}"))
        }
    }
}

/// `template builds REF [--status S] [--limit N] [--cursor C]`.
pub async fn list(
    client: &Client,
    template_ref: &str,
    status: Option<BuildStatusArg>,
    limit: Option<u32>,
    cursor: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let page = client
        .list_template_builds(template_ref, status.map(BuildStatusArg::as_str), limit, cursor)
        .await
        .map_err(|error| {
            if error.status() == Some(404) {
                let user = UserError::new(
                    format!("no template `{template_ref}`"),
                    Some("list the templates with `nullspace template list`"),
                );
                anyhow::Error::new(error).context(user)
            } else {
                anyhow::Error::new(error).context(format!("could not list the builds of `{template_ref}`"))
            }
        })?;
    if json {
        print_json(&page)?;
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = page.builds.iter().map(row).collect();
    print_table(&["BUILD", "STATUS", "CREATED", "TAGS", "TEMPLATE", "ERROR"], &rows)?;
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more builds: add --cursor {cursor}");
    }
    Ok(ExitStatus::Success)
}

fn row(build: &BuildInfo) -> Vec<String> {
    let created = build.extra.get("created_at").and_then(Value::as_str).unwrap_or_default().to_owned();
    vec![
        build.build_id.clone(),
        build.status.clone(),
        created,
        build.tags.join(","),
        build.template_id.clone(),
        build.error.clone().unwrap_or_default(),
    ]
}

/// The body of a retry and the secret values in it (for redaction).
pub fn retry_body(args: &RetryArgs, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<(Value, Vec<String>)> {
    let mut body = Map::new();
    if !args.tags.is_empty() {
        body.insert("tags".into(), serde_json::to_value(&args.tags)?);
    }
    let secrets = credentials::secrets_from_env(&args.build_secret_env, &[], &env)?;
    let mut values: Vec<String> = secrets.iter().map(|s| s.value.clone()).filter(|v| !v.is_empty()).collect();
    if !secrets.is_empty() {
        body.insert("build_secrets".into(), serde_json::to_value(&secrets)?);
    }
    if let Some(auth) = credentials::registry_auth(&args.registry, &env)? {
        values.extend(credentials::auth_secrets(Some(&auth)));
        body.insert("base_image_auth".into(), auth);
    }
    Ok((Value::Object(body), values))
}

/// `template retry BUILD_ID [--tag T]… [--wait]`.
pub async fn retry(client: &Client, args: &RetryArgs, json: bool) -> anyhow::Result<ExitStatus> {
    let (body, secrets) = retry_body(args, |name| std::env::var(name).ok())?;
    let build =
        client.retry_template_build(&args.build_id, &body).await.map_err(missing_build(&args.build_id, "retry"))?;
    if args.wait {
        if !json {
            eprintln!("retrying {} as {}", args.build_id, build.build_id);
        }
        let interval = Duration::from_millis(args.poll_interval_ms);
        return build::wait(client, &build.build_id, 0, interval, args.log_format, secrets, json).await;
    }
    if json {
        print_json(&build)?;
    } else {
        println!("{}  {}  {}", build.build_id, build.status, build.canonical_ref.as_deref().unwrap_or(&build.name));
        eprintln!("follow it with `nullspace template wait {}`", build.build_id);
    }
    Ok(ExitStatus::Success)
}

/// `template promote BUILD_ID TAG`.
pub async fn promote(client: &Client, build_id: &str, tag: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let template = client.promote_template_build(build_id, tag).await.map_err(missing_build(build_id, "promote"))?;
    if json {
        print_json(&template)?;
    } else {
        let name = template.canonical_ref.clone().unwrap_or_else(|| template.name.clone());
        println!("{name}:{tag}  {}  tags {}", template.id, template.tags.join(","));
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        retry: RetryArgs,
    }

    fn args(argv: &[&str]) -> Result<RetryArgs, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(argv.iter().copied())).map(|p| p.retry)
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "NPM_TOKEN" => Some("tok-123".into()),
            "REG_PW" => Some("pw-456".into()),
            _ => None,
        }
    }

    #[test]
    fn a_retry_brings_tags_secrets_and_the_registry_login() {
        let (body, secrets) = retry_body(
            &args(&[
                "tb_1",
                "--tag",
                "stable",
                "--build-secret-env",
                "npm=NPM_TOKEN",
                "--registry-username",
                "bob",
                "--registry-password-env",
                "REG_PW",
            ])
            .unwrap(),
            env,
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "tags": ["stable"],
                "build_secrets": [{"id": "npm", "value": "tok-123", "source": "env"}],
                "base_image_auth": {"kind": "basic", "username": "bob", "password": "pw-456"},
            })
        );
        assert_eq!(secrets, ["tok-123", "pw-456"]);
        let (empty, none) = retry_body(&args(&["tb_1"]).unwrap(), env).unwrap();
        assert_eq!((empty, none.len()), (json!({}), 0));
    }

    #[test]
    fn retry_flags_are_checked() {
        assert!(args(&["tb_1", "--poll-interval-ms", "5"]).is_err(), "polling needs --wait");
        assert!(retry_body(&args(&["tb_1", "--build-secret-env", "x=UNSET"]).unwrap(), env).is_err());
        assert!(retry_body(&args(&["tb_1", "--registry-username", "bob"]).unwrap(), |_: &str| None).is_err());
    }
}
