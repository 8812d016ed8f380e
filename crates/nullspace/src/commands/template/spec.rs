//! The flags that define a template (shared by `template build`, `validate`, `plan` and `render`):
//! one base selector, build steps kept in command-line order (`steps`), runtime defaults, readiness,
//! secrets, base-image registry credentials and build options.

use std::path::PathBuf;

use clap::{ArgGroup, Args, ValueEnum};

use super::steps::StepFlags;
use crate::cli::parse_key_value;

/// One base of the template (exactly one is checked when the request is made, so tools that list
/// the flags, such as the MCP catalog, see no required group).
#[derive(Debug, Clone, Default, Args)]
#[command(group(ArgGroup::new("base").multiple(false)), next_help_heading = "Base (exactly one)")]
pub struct BaseArgs {
    /// Any registry image (`debian:stable-slim`, `host:5000/app:1`).
    #[arg(long, value_name = "IMAGE", group = "base")]
    pub from_image: Option<String>,
    /// `ubuntu:VERSION` [default version: 22.04].
    #[arg(long, value_name = "VERSION", group = "base", num_args = 0..=1, default_missing_value = "22.04")]
    pub from_ubuntu_image: Option<String>,
    /// `debian:TAG` [default tag: stable-slim].
    #[arg(long, value_name = "TAG", group = "base", num_args = 0..=1, default_missing_value = "stable-slim")]
    pub from_debian_image: Option<String>,
    /// `python:VERSION`.
    #[arg(long, value_name = "VERSION", group = "base")]
    pub from_python_image: Option<String>,
    /// `node:VERSION`.
    #[arg(long, value_name = "VERSION", group = "base")]
    pub from_node_image: Option<String>,
    /// Another template (`nullspace/base`, `my-app:stable`, `team/app`, `tmpl_…`).
    #[arg(long, value_name = "REF", group = "base")]
    pub from_template: Option<String>,
    /// A Dockerfile; its directory is the build context (`.dockerignore` honoured).
    #[arg(long, value_name = "PATH", group = "base")]
    pub from_dockerfile: Option<PathBuf>,
    /// A build request as JSON (what `template render json` and `template init` write).
    #[arg(long, value_name = "PATH", group = "base")]
    pub file: Option<PathBuf>,
}

/// Build backend (both run on the same engine here; `native` is refused for Dockerfiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Native,
    Buildkit,
}

/// Everything that defines a template build.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Template")]
pub struct SpecArgs {
    #[command(flatten)]
    pub base: BaseArgs,
    #[command(flatten)]
    pub steps: StepFlags,
    /// Environment variable of the template's sandboxes (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub envs: Vec<(String, String)>,
    /// Environment variable of the build steps only (repeatable; never reaches a sandbox).
    #[arg(long = "build-env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub build_envs: Vec<(String, String)>,
    /// Command run once when a sandbox starts.
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub start_cmd: Option<String>,
    /// Readiness: this TCP port accepts connections.
    #[arg(long, value_name = "PORT", group = "ready")]
    pub ready_tcp: Option<u16>,
    /// Readiness: `GET PATH` on this port answers 2xx/3xx (e.g. 8080:/health).
    #[arg(long, value_name = "PORT:PATH", group = "ready", value_parser = parse_port_path)]
    pub ready_http: Option<(u16, String)>,
    /// Readiness: this shell command exits 0.
    #[arg(long, value_name = "CMD", group = "ready", allow_hyphen_values = true)]
    pub ready_cmd: Option<String>,
    /// Readiness: give up (and fail the sandbox create) after this many seconds [default: 30].
    #[arg(long, visible_alias = "ready-timeout", value_name = "SECS", requires = "ready")]
    pub ready_timeout_secs: Option<u64>,
    /// Build secret from the environment: ID=ENVVAR, or ID to read $ID (repeatable; never printed).
    #[arg(long, value_name = "ID[=ENVVAR]")]
    pub build_secret_env: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Template name (`name` or `name:tag`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Tag of the build (repeatable) [server default: default].
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// vCPUs of the build sandboxes [default: 2].
    #[arg(long, value_name = "N")]
    pub cpu_count: Option<u32>,
    /// Memory of the build sandboxes in MiB [default: 512].
    #[arg(long, value_name = "MIB")]
    pub memory_mb: Option<u32>,
    /// Disk of the build sandboxes in MB [default: the server's].
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub disk_mb: Option<u64>,
    /// Build steps get no internet access.
    #[arg(long)]
    pub no_internet_access: bool,
    /// Bypass the layer cache for every step.
    #[arg(long)]
    pub skip_cache: bool,
    /// Build backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
}

/// Credentials of a private base image's registry (basic auth). The password is read from an
/// environment variable, never from the command line, and never printed.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Base image registry")]
pub struct RegistryArgs {
    /// User name for the base image's registry [default: $NULLSPACE_REGISTRY_USERNAME].
    #[arg(long, value_name = "USER")]
    pub registry_username: Option<String>,
    /// Environment variable holding the registry password [default: NULLSPACE_REGISTRY_PASSWORD].
    #[arg(long, value_name = "ENVVAR")]
    pub registry_password_env: Option<String>,
}

/// `PORT:PATH` (the path gets a leading `/`).
fn parse_port_path(raw: &str) -> Result<(u16, String), String> {
    let (port, path) = raw.split_once(':').unwrap_or((raw, "/"));
    let port: u16 = port.trim().parse().map_err(|_| format!("expected PORT:PATH such as 8080:/health, got {raw:?}"))?;
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Ok((port, path))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        spec: SpecArgs,
    }

    fn parse(args: &[&str]) -> Result<SpecArgs, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).map(|p| p.spec)
    }

    #[test]
    fn one_base_and_one_readiness() {
        assert!(parse(&["--from-image", "a", "--from-template", "b"]).is_err());
        let ubuntu = parse(&["--from-ubuntu-image", "--apt-install", "git"]).unwrap();
        assert_eq!(ubuntu.base.from_ubuntu_image.as_deref(), Some("22.04"));
        assert!(parse(&["--from-image", "a", "--ready-tcp", "1", "--ready-cmd", "true"]).is_err());
        let http = parse(&["--from-image", "a", "--ready-http", "8080:health"]).unwrap();
        assert_eq!(http.ready_http, Some((8080, "/health".into())));
        assert!(parse(&["--from-image", "a", "--ready-timeout", "5"]).is_err(), "a timeout needs a readiness");
        let timed = parse(&["--from-image", "a", "--ready-tcp", "1", "--ready-timeout", "5"]).unwrap();
        assert_eq!(timed.ready_timeout_secs, Some(5));
        assert!(parse(&["--from-image", "a", "--disk-mb", "0"]).is_err());
    }
}
