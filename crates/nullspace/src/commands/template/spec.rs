//! The flags that define a template (shared by `template build` and `template render`): one base
//! selector, build steps kept in command-line order, runtime defaults, readiness, secrets and build
//! options. Step flags are collected through [`StepFlags`], which reads clap's argument indices so
//! `--run a --apt-install b --run c` become three steps in that order.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgGroup, ArgMatches, Args, FromArgMatches, ValueEnum};

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

/// One build step from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFlag {
    /// `--apt-install a,b`.
    AptInstall(Vec<String>),
    /// `--pip-install a,b`.
    PipInstall(Vec<String>),
    /// `--npm-install a,b`.
    NpmInstall(Vec<String>),
    /// `--run CMD`.
    Run(String),
    /// `--copy SRC:DST`.
    Copy {
        /// Local file or directory.
        src: String,
        /// Destination in the image.
        dst: String,
    },
    /// `--workdir PATH` (also the sandboxes' working directory).
    Workdir(String),
    /// `--user USER` (also the sandboxes' user).
    User(String),
}

/// The step flags in command-line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepFlags {
    /// Steps, first to last.
    pub steps: Vec<StepFlag>,
}

/// `(clap id, long flag, value name, help)` of each step flag.
const STEP_ARGS: [(&str, &str, &str, &str); 7] = [
    ("apt_install", "apt-install", "PKGS", "Step: apt-get install these comma-separated packages (repeatable)"),
    ("pip_install", "pip-install", "PKGS", "Step: pip install these comma-separated packages (repeatable)"),
    ("npm_install", "npm-install", "PKGS", "Step: npm install these comma-separated packages (repeatable)"),
    ("run", "run", "CMD", "Step: run a shell command (repeatable)"),
    ("copy", "copy", "SRC:DST", "Step: copy a local file or directory into the image (repeatable)"),
    ("workdir", "workdir", "PATH", "Step: working directory of later steps and of the sandboxes"),
    ("user", "user", "USER", "Step: user of later steps and of the sandboxes"),
];

impl Args for StepFlags {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for (id, long, value_name, help) in STEP_ARGS {
            cmd = cmd.arg(
                Arg::new(id)
                    .long(long)
                    .value_name(value_name)
                    .help(help)
                    .action(ArgAction::Append)
                    .allow_hyphen_values(id == "run")
                    .help_heading("Build steps (run in the order given)"),
            );
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for StepFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, StepFlag)> = Vec::new();
        for (id, long, _, _) in STEP_ARGS {
            let (Some(indices), Some(values)) = (matches.indices_of(id), matches.get_many::<String>(id)) else {
                continue;
            };
            for (index, value) in indices.zip(values) {
                let step = step(id, value).map_err(|message| {
                    clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--{long}: {message}\n"))
                })?;
                indexed.push((index, step));
            }
        }
        indexed.sort_by_key(|(index, _)| *index);
        Ok(Self { steps: indexed.into_iter().map(|(_, step)| step).collect() })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// One step from its flag's value.
fn step(id: &str, value: &str) -> Result<StepFlag, String> {
    let packages = || {
        let list: Vec<String> = value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
        if list.is_empty() {
            Err("name at least one package".to_owned())
        } else {
            Ok(list)
        }
    };
    let nonempty = || {
        if value.trim().is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(value.to_owned())
        }
    };
    Ok(match id {
        "apt_install" => StepFlag::AptInstall(packages()?),
        "pip_install" => StepFlag::PipInstall(packages()?),
        "npm_install" => StepFlag::NpmInstall(packages()?),
        "run" => StepFlag::Run(nonempty()?),
        "workdir" => StepFlag::Workdir(nonempty()?),
        "user" => StepFlag::User(nonempty()?),
        "copy" => match value.split_once(':') {
            Some((src, dst)) if !src.trim().is_empty() && !dst.trim().is_empty() => {
                StepFlag::Copy { src: src.trim().to_owned(), dst: dst.trim().to_owned() }
            }
            _ => return Err(format!("expected SRC:DST such as ./app:/app, got {value:?}")),
        },
        other => return Err(format!("unknown step flag {other}")),
    })
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
    /// Build secret from the environment: ID=ENVVAR, or ID to read $ID (repeatable; never printed).
    #[arg(long, value_name = "ID[=ENVVAR]")]
    pub build_secret_env: Vec<String>,
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
    fn steps_keep_command_line_order() {
        let spec = parse(&[
            "--from-template",
            "nullspace/base",
            "--run",
            "echo a",
            "--apt-install",
            "git, curl",
            "--copy",
            "./app:/srv/app",
            "--run",
            "echo b",
            "--workdir",
            "/srv",
        ])
        .unwrap();
        assert_eq!(
            spec.steps.steps,
            vec![
                StepFlag::Run("echo a".into()),
                StepFlag::AptInstall(vec!["git".into(), "curl".into()]),
                StepFlag::Copy { src: "./app".into(), dst: "/srv/app".into() },
                StepFlag::Run("echo b".into()),
                StepFlag::Workdir("/srv".into()),
            ]
        );
    }

    #[test]
    fn one_base_and_one_readiness() {
        assert!(parse(&["--from-image", "a", "--from-template", "b"]).is_err());
        let ubuntu = parse(&["--from-ubuntu-image", "--apt-install", "git"]).unwrap();
        assert_eq!(ubuntu.base.from_ubuntu_image.as_deref(), Some("22.04"));
        assert!(parse(&["--from-image", "a", "--ready-tcp", "1", "--ready-cmd", "true"]).is_err());
        let http = parse(&["--from-image", "a", "--ready-http", "8080:health"]).unwrap();
        assert_eq!(http.ready_http, Some((8080, "/health".into())));
    }

    #[test]
    fn bad_step_values_are_refused() {
        assert!(parse(&["--from-image", "a", "--copy", "nodest"]).is_err());
        assert!(parse(&["--from-image", "a", "--apt-install", " , "]).is_err());
        assert!(parse(&["--from-image", "a", "--run", ""]).is_err());
    }
}
