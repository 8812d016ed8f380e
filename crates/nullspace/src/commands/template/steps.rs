//! The build-step flags of `template build`/`validate`/`plan`/`render`, kept in command-line order:
//! [`StepFlags`] reads clap's argument indices so `--run a --apt-install b --run c` become three steps
//! in that order. A few steps take options from modifier flags that must follow their step
//! (`--git-clone URL --git-branch main`), as the official CLI spells them. Each step becomes the
//! wire step (`to_step`) and a Dockerfile line (`dockerfile_line`) here.

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};
use nullspace_client::types::template_api::Step;

/// Where `--git-clone` puts the repository unless `--git-path` says otherwise (the official default).
pub const GIT_CLONE_PATH: &str = "/workspace";

/// One build step from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFlag {
    /// `--apt-install a,b`.
    AptInstall(Vec<String>),
    /// `--pip-install a,b`.
    PipInstall(Vec<String>),
    /// `--npm-install a,b`.
    NpmInstall(Vec<String>),
    /// `--bun-install a,b [--bun-global]`.
    BunInstall { packages: Vec<String>, global: bool },
    /// `--run CMD`.
    Run(String),
    /// `--copy SRC:DST`.
    Copy {
        /// Local file or directory.
        src: String,
        /// Destination in the image.
        dst: String,
    },
    /// `--git-clone URL [--git-path PATH] [--git-branch B] [--git-depth N]`.
    GitClone { url: String, path: Option<String>, branch: Option<String>, depth: Option<u32> },
    /// `--make-dir PATH [--make-dir-mode MODE]`.
    MakeDir { path: String, mode: Option<String> },
    /// `--symlink TARGET:LINK`.
    Symlink { target: String, link: String },
    /// `--remove PATH [--remove-recursive] [--remove-force]`.
    Remove { path: String, recursive: bool, force: bool },
    /// `--rename SRC:DST [--rename-force]`.
    Rename { src: String, dst: String, force: bool },
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

const HEADING: &str = "Build steps (run in the order given)";

/// `(clap id, long flag, value name, help)` of each step flag.
const STEP_ARGS: [(&str, &str, &str, &str); 13] = [
    ("apt_install", "apt-install", "PKGS", "Step: apt-get install these comma-separated packages (repeatable)"),
    ("pip_install", "pip-install", "PKGS", "Step: pip install these comma-separated packages (repeatable)"),
    ("npm_install", "npm-install", "PKGS", "Step: npm install these comma-separated packages (repeatable)"),
    ("bun_install", "bun-install", "PKGS", "Step: bun add these comma-separated packages (repeatable; --bun-global after it installs globally)"),
    ("run", "run", "CMD", "Step: run a shell command (repeatable)"),
    ("copy", "copy", "SRC:DST", "Step: copy a local file or directory into the image (repeatable)"),
    ("git_clone", "git-clone", "URL", "Step: git clone URL into /workspace (repeatable; --git-path, --git-branch, --git-depth after it change that clone)"),
    ("make_dir", "make-dir", "PATH", "Step: create a directory and its parents (repeatable; --make-dir-mode after it sets its mode)"),
    ("symlink", "symlink", "TARGET:LINK", "Step: create the symbolic link LINK pointing to TARGET (repeatable)"),
    ("remove", "remove", "PATH", "Step: remove a file (repeatable; --remove-recursive and --remove-force after it act like rm -r / rm -f)"),
    ("rename", "rename", "SRC:DST", "Step: move SRC to DST (repeatable; --rename-force after it overwrites DST)"),
    ("workdir", "workdir", "PATH", "Step: working directory of later steps and of the sandboxes"),
    ("user", "user", "USER", "Step: user of later steps and of the sandboxes"),
];

/// `(clap id, long flag, value name or "" for a switch, help)` of each modifier: it changes the step
/// flag right before it.
const MODIFIER_ARGS: [(&str, &str, &str, &str); 8] = [
    ("bun_global", "bun-global", "", "Modifier: the --bun-install before it installs globally (bun add --global)"),
    ("git_path", "git-path", "PATH", "Modifier: directory the --git-clone before it clones into [default: /workspace]"),
    ("git_branch", "git-branch", "BRANCH", "Modifier: branch or tag the --git-clone before it checks out"),
    ("git_depth", "git-depth", "N", "Modifier: shallow-clone depth of the --git-clone before it"),
    ("make_dir_mode", "make-dir-mode", "MODE", "Modifier: octal mode (e.g. 0750) of the --make-dir before it"),
    (
        "remove_recursive",
        "remove-recursive",
        "",
        "Modifier: the --remove before it removes directories and their contents",
    ),
    ("remove_force", "remove-force", "", "Modifier: the --remove before it ignores a missing path"),
    ("rename_force", "rename-force", "", "Modifier: the --rename before it overwrites an existing destination"),
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
                    .help_heading(HEADING),
            );
        }
        for (id, long, value_name, help) in MODIFIER_ARGS {
            let mut arg = Arg::new(id).long(long).help(help).action(ArgAction::Append).help_heading(HEADING);
            arg = if value_name.is_empty() {
                // A switch that still records each occurrence's position.
                arg.num_args(0).default_missing_value("true")
            } else {
                arg.value_name(value_name)
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for StepFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, &str, &str, String)> = Vec::new();
        let all = STEP_ARGS
            .iter()
            .map(|(id, long, ..)| (*id, *long))
            .chain(MODIFIER_ARGS.iter().map(|(id, long, ..)| (*id, *long)));
        for (id, long) in all {
            let (Some(indices), Some(values)) = (matches.indices_of(id), matches.get_many::<String>(id)) else {
                continue;
            };
            for (index, value) in indices.zip(values) {
                indexed.push((index, id, long, value.clone()));
            }
        }
        indexed.sort_by_key(|(index, ..)| *index);
        let mut steps: Vec<StepFlag> = Vec::new();
        for (_, id, long, value) in indexed {
            let invalid = |message: String| {
                clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("--{long}: {message}\n"))
            };
            if MODIFIER_ARGS.iter().any(|(modifier, ..)| *modifier == id) {
                modify(steps.last_mut(), id, &value).map_err(invalid)?;
            } else {
                steps.push(step(id, &value).map_err(invalid)?);
            }
        }
        Ok(Self { steps })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// `SRC:DST`-like pairs: split at the first `:`, both sides non-empty.
fn pair(value: &str, example: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((left, right)) if !left.trim().is_empty() && !right.trim().is_empty() => {
            Ok((left.trim().to_owned(), right.trim().to_owned()))
        }
        _ => Err(format!("expected {example}, got {value:?}")),
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
        "bun_install" => StepFlag::BunInstall { packages: packages()?, global: false },
        "run" => StepFlag::Run(nonempty()?),
        "workdir" => StepFlag::Workdir(nonempty()?),
        "user" => StepFlag::User(nonempty()?),
        "copy" => {
            let (src, dst) = pair(value, "SRC:DST such as ./app:/app")?;
            StepFlag::Copy { src, dst }
        }
        "git_clone" => StepFlag::GitClone { url: nonempty()?.trim().to_owned(), path: None, branch: None, depth: None },
        "make_dir" => StepFlag::MakeDir { path: nonempty()?, mode: None },
        "symlink" => {
            let (target, link) = pair(value, "TARGET:LINK such as /opt/app/bin/app:/usr/local/bin/app")?;
            StepFlag::Symlink { target, link }
        }
        "remove" => StepFlag::Remove { path: nonempty()?, recursive: false, force: false },
        "rename" => {
            let (src, dst) = pair(value, "SRC:DST such as /tmp/app:/opt/app")?;
            StepFlag::Rename { src, dst, force: false }
        }
        other => return Err(format!("unknown step flag {other}")),
    })
}

/// Applies modifier `id` to the step right before it.
fn modify(last: Option<&mut StepFlag>, id: &str, value: &str) -> Result<(), String> {
    let misplaced = |step: &str| Err(format!("must come right after a --{step} (it changes that step)"));
    let once = |set: bool| if set { Err("is given twice for the same step".to_owned()) } else { Ok(()) };
    match (id, last) {
        ("bun_global", Some(StepFlag::BunInstall { global, .. })) => {
            once(*global)?;
            *global = true;
        }
        ("bun_global", _) => return misplaced("bun-install"),
        ("git_path", Some(StepFlag::GitClone { path, .. })) => {
            once(path.is_some())?;
            if !value.starts_with('/') {
                return Err(format!("expected an absolute path, got {value:?}"));
            }
            *path = Some(value.to_owned());
        }
        ("git_branch", Some(StepFlag::GitClone { branch, .. })) => {
            once(branch.is_some())?;
            if value.trim().is_empty() {
                return Err("must not be empty".to_owned());
            }
            *branch = Some(value.trim().to_owned());
        }
        ("git_depth", Some(StepFlag::GitClone { depth, .. })) => {
            once(depth.is_some())?;
            let parsed: u32 = value
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("expected a positive number of commits, got {value:?}"))?;
            *depth = Some(parsed);
        }
        ("git_path" | "git_branch" | "git_depth", _) => return misplaced("git-clone"),
        ("make_dir_mode", Some(StepFlag::MakeDir { mode, .. })) => {
            once(mode.is_some())?;
            let valid =
                !value.is_empty() && value.len() <= 4 && u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777);
            if !valid {
                return Err(format!("expected an octal mode such as 0750, got {value:?}"));
            }
            *mode = Some(value.to_owned());
        }
        ("make_dir_mode", _) => return misplaced("make-dir"),
        ("remove_recursive", Some(StepFlag::Remove { recursive, .. })) => {
            once(*recursive)?;
            *recursive = true;
        }
        ("remove_force", Some(StepFlag::Remove { force, .. })) => {
            once(*force)?;
            *force = true;
        }
        ("remove_recursive" | "remove_force", _) => return misplaced("remove"),
        ("rename_force", Some(StepFlag::Rename { force, .. })) => {
            once(*force)?;
            *force = true;
        }
        ("rename_force", _) => return misplaced("rename"),
        (other, _) => return Err(format!("unknown modifier {other}")),
    }
    Ok(())
}

impl StepFlag {
    /// The wire step of every flag but `--copy` (whose sources become build-context entries first).
    pub fn to_step(&self) -> Option<Step> {
        Some(match self {
            StepFlag::AptInstall(packages) => Step::AptInstall { packages: packages.clone() },
            StepFlag::PipInstall(packages) => Step::PipInstall { packages: packages.clone(), g: None },
            StepFlag::NpmInstall(packages) => Step::NpmInstall { packages: packages.clone(), g: None },
            StepFlag::BunInstall { packages, global } => {
                Step::BunInstall { packages: packages.clone(), g: global.then_some(true) }
            }
            StepFlag::Run(command) => Step::Run { command: command.clone(), user: None },
            StepFlag::Workdir(path) => Step::Workdir { path: path.clone() },
            StepFlag::User(user) => Step::User { user: user.clone() },
            StepFlag::GitClone { url, path, branch, depth } => Step::GitClone {
                url: url.clone(),
                path: Some(path.clone().unwrap_or_else(|| GIT_CLONE_PATH.to_owned())),
                branch: branch.clone(),
                depth: *depth,
            },
            StepFlag::MakeDir { path, mode } => Step::MakeDir { path: path.clone(), mode: mode.clone() },
            StepFlag::Symlink { target, link } => Step::MakeSymlink { target: target.clone(), path: link.clone() },
            StepFlag::Remove { path, recursive, force } => {
                Step::Remove { path: path.clone(), recursive: *recursive, force: *force }
            }
            StepFlag::Rename { src, dst, force } => Step::Rename { src: src.clone(), dst: dst.clone(), force: *force },
            StepFlag::Copy { .. } => return None,
        })
    }

    /// The step as a Dockerfile line, as the official client's `to_dockerfile` writes it.
    pub fn dockerfile_line(&self) -> String {
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        match self {
            StepFlag::AptInstall(p) => {
                format!("RUN apt-get update && apt-get install -y {} && rm -rf /var/lib/apt/lists/*", p.join(" "))
            }
            StepFlag::PipInstall(p) => format!("RUN pip install --no-cache-dir {}", p.join(" ")),
            StepFlag::NpmInstall(p) => format!("RUN npm install {}", p.join(" ")),
            StepFlag::BunInstall { packages, global } => {
                format!("RUN bun add{} {}", if *global { " --global" } else { "" }, packages.join(" "))
            }
            StepFlag::Run(command) => format!("RUN {command}"),
            StepFlag::Workdir(path) => format!("WORKDIR {path}"),
            StepFlag::User(user) => format!("USER {user}"),
            StepFlag::Copy { src, dst } if (src.chars().chain(dst.chars())).any(char::is_whitespace) => {
                format!("COPY [{}, {}]", quote(src), quote(dst))
            }
            StepFlag::Copy { src, dst } => format!("COPY {src} {dst}"),
            StepFlag::GitClone { url, path, branch, depth } => {
                let mut parts = vec!["RUN git clone".to_owned()];
                if let Some(branch) = branch {
                    parts.push(format!("--branch {branch}"));
                }
                if let Some(depth) = depth {
                    parts.push(format!("--depth {depth}"));
                }
                parts.push(url.clone());
                parts.push(path.clone().unwrap_or_else(|| GIT_CLONE_PATH.to_owned()));
                parts.join(" ")
            }
            StepFlag::MakeDir { path, mode: Some(mode) } => {
                format!("RUN mkdir -p {} && chmod {mode} {}", quote(path), quote(path))
            }
            StepFlag::MakeDir { path, mode: None } => format!("RUN mkdir -p {}", quote(path)),
            StepFlag::Symlink { target, link } => format!("RUN ln -s {} {}", quote(target), quote(link)),
            StepFlag::Remove { path, recursive, force } => {
                let flags = format!("{}{}", if *recursive { "r" } else { "" }, if *force { "f" } else { "" });
                let flags = if flags.is_empty() { String::new() } else { format!("-{flags} ") };
                format!("RUN rm {flags}{}", quote(path))
            }
            StepFlag::Rename { src, dst, force } => {
                format!("RUN mv{} {} {}", if *force { " -f" } else { "" }, quote(src), quote(dst))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        steps: StepFlags,
        #[arg(long)]
        name: Option<String>,
    }

    fn parse(args: &[&str]) -> Result<Vec<StepFlag>, clap::Error> {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).map(|p| p.steps.steps)
    }

    #[test]
    fn steps_keep_command_line_order() {
        let steps = parse(&[
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
            steps,
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
    fn new_steps_and_their_modifiers_map_to_wire_steps_in_order() {
        let steps = parse(&[
            "--make-dir",
            "/opt/a",
            "--make-dir-mode",
            "0750",
            "--git-clone",
            "https://example.com/r.git",
            "--name",
            "between",
            "--git-branch",
            "main",
            "--git-depth",
            "1",
            "--git-path",
            "/src",
            "--bun-install",
            "zod",
            "--bun-global",
            "--git-clone",
            "git@example.com:org/r.git",
            "--symlink",
            "/opt/a:/usr/local/a",
            "--remove",
            "/tmp/x",
            "--remove-recursive",
            "--remove-force",
            "--rename",
            "/a:/b",
            "--rename-force",
            "--remove",
            "/f",
        ])
        .unwrap();
        let wire: Vec<serde_json::Value> =
            steps.iter().map(|s| serde_json::to_value(s.to_step().unwrap()).unwrap()).collect();
        assert_eq!(
            wire,
            vec![
                json!({"action": "make_dir", "path": "/opt/a", "mode": "0750"}),
                json!({"action": "git_clone", "url": "https://example.com/r.git", "path": "/src", "branch": "main", "depth": 1}),
                json!({"action": "bun_install", "packages": ["zod"], "g": true}),
                json!({"action": "git_clone", "url": "git@example.com:org/r.git", "path": "/workspace", "branch": null, "depth": null}),
                json!({"action": "make_symlink", "target": "/opt/a", "path": "/usr/local/a"}),
                json!({"action": "remove", "path": "/tmp/x", "recursive": true, "force": true}),
                json!({"action": "rename", "src": "/a", "dst": "/b", "force": true}),
                json!({"action": "remove", "path": "/f", "recursive": false, "force": false}),
            ]
        );
        let lines: Vec<String> = steps.iter().map(StepFlag::dockerfile_line).collect();
        assert_eq!(
            lines,
            [
                "RUN mkdir -p \"/opt/a\" && chmod 0750 \"/opt/a\"",
                "RUN git clone --branch main --depth 1 https://example.com/r.git /src",
                "RUN bun add --global zod",
                "RUN git clone git@example.com:org/r.git /workspace",
                "RUN ln -s \"/opt/a\" \"/usr/local/a\"",
                "RUN rm -rf \"/tmp/x\"",
                "RUN mv -f \"/a\" \"/b\"",
                "RUN rm \"/f\"",
            ]
        );
    }

    #[test]
    fn modifiers_must_follow_their_step() {
        let message = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(message(&["--git-branch", "main"]).contains("right after a --git-clone"));
        assert!(message(&["--git-clone", "u", "--run", "x", "--git-depth", "1"]).contains("right after a --git-clone"));
        assert!(message(&["--remove-force"]).contains("right after a --remove"));
        assert!(message(&["--rename", "/a:/b", "--remove-force"]).contains("right after a --remove"));
        assert!(message(&["--make-dir", "/a", "--make-dir-mode", "rwx"]).contains("octal mode"));
        assert!(message(&["--make-dir", "/a", "--make-dir-mode", "0755", "--make-dir-mode", "0700"]).contains("twice"));
        assert!(message(&["--git-clone", "u", "--git-depth", "0"]).contains("positive"));
        assert!(message(&["--git-clone", "u", "--git-path", "rel"]).contains("absolute"));
        assert!(message(&["--bun-global"]).contains("--bun-install"));
    }

    #[test]
    fn bad_step_values_are_refused() {
        assert!(parse(&["--copy", "nodest"]).is_err());
        assert!(parse(&["--symlink", "/only-target"]).is_err());
        assert!(parse(&["--rename", ":/b"]).is_err());
        assert!(parse(&["--apt-install", " , "]).is_err());
        assert!(parse(&["--run", ""]).is_err());
        assert!(parse(&["--git-clone", " "]).is_err());
        assert!(parse(&["--remove", ""]).is_err());
    }
}
