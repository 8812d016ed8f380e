//! The Dockerfile front end: turns a Dockerfile and its build args into a validated,
//! variable-substituted plan of stages that the build engine executes step by step. Pure logic: no
//! file, network or sandbox is touched here.
//!
//! The syntax comes from the `parse-dockerfile` crate (wrapped in `syntax`; no other module sees its
//! types); Docker's word and substitution rules are in `words`, value checks in `values`, and the
//! ARG/ENV scoping, substitution per instruction and the refusals of what the engine cannot do in
//! `eval`.
//!
//! Substitution follows Docker: FROM, ENV, ADD, COPY (and its `--from`, `--chown`, `--chmod`),
//! WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL and ARG defaults are substituted; RUN, CMD,
//! ENTRYPOINT, SHELL and HEALTHCHECK are not (the shell expands them at run time). Variables come
//! from the stage's ENV (which wins), its ARGs, and the base image's environment: [`parse`] assumes
//! an empty base environment and `/` as the working directory; the engine, once it knows the base
//! image's config, gets the exact plan of a stage from [`Dockerfile::resolve_stage`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use nullspace_image::dockerfile::{self, BaseConfig, StageBase};
//!
//! let text = "FROM debian AS build\nWORKDIR /src\nRUN make\nFROM scratch\nCOPY --from=build /src/out /\n";
//! let plan = dockerfile::parse(text, &BTreeMap::new()).unwrap();
//! let mut results: Vec<Option<BaseConfig>> = vec![None; plan.stages.len()];
//! for i in plan.needed_stages() {
//!     let base = match &plan.stages[i].base {
//!         // The pulled image's Env and WorkingDir.
//!         StageBase::Image(_reference) => BaseConfig::default(),
//!         StageBase::Stage(j) => results[*j].clone().unwrap(),
//!         StageBase::Scratch => BaseConfig::default(),
//!     };
//!     let stage = plan.resolve_stage(i, &base).unwrap();
//!     // ... execute stage.instructions in a build sandbox ...
//!     results[i] = Some(base.after(&stage.instructions));
//! }
//! assert_eq!(results[0].as_ref().unwrap().workdir, "/src");
//! ```

mod eval;
mod eval_ops;
mod syntax;
mod values;
mod words;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_refusals;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A parsed and validated Dockerfile.
#[derive(Debug, Clone, Serialize)]
pub struct Dockerfile {
    /// The stages in file order; the last one is the build's target.
    pub stages: Vec<Stage>,
    /// Things accepted with a remark (MAINTAINER, build args no ARG declares, ignored directives).
    pub warnings: Vec<String>,
    #[serde(skip)]
    raw: syntax::RawFile,
    #[serde(skip)]
    build_args: BTreeMap<String, String>,
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Stage {
    /// Position in [`Dockerfile::stages`].
    pub index: usize,
    /// The `AS name`, lower-cased as Docker does.
    pub name: Option<String>,
    /// What the stage starts from.
    pub base: StageBase,
    /// Line of the FROM.
    pub line: usize,
    /// The stage's instructions after FROM, substituted (ARG instructions resolved away).
    pub instructions: Vec<Instruction>,
}

/// The start of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageBase {
    /// An image reference after substitution, as written (`debian:stable-slim`, `nullspace/base`).
    Image(String),
    /// The result of an earlier stage (FROM by its name or index).
    Stage(usize),
    /// `FROM scratch`: an empty filesystem.
    Scratch,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Instruction {
    /// 1-based line of the instruction's keyword.
    pub line: usize,
    /// What to do.
    pub kind: InstructionKind,
}

/// A RUN/CMD/ENTRYPOINT command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Shell form: run with the stage's current SHELL (default `["/bin/sh", "-c"]`); continuations
    /// joined, not substituted.
    Shell(String),
    /// Exec form (a JSON array): run as is, no shell.
    Exec(Vec<String>),
}

impl Command {
    /// The argv to execute: the exec form as is, the shell form appended to `shell`.
    pub fn argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(script) => shell.iter().cloned().chain([script.clone()]).collect(),
        }
    }
}

/// Where a COPY reads its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyFrom {
    /// The build context (the request's `build_context` files).
    Context,
    /// The filesystem of an earlier stage.
    Stage(usize),
}

/// What an instruction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionKind {
    /// RUN: execute `command` with the image's environment plus `build_args` (the stage's ARG
    /// values in scope, and predefined proxy args given as build args), where a variable of the
    /// image's environment (ENV, base image) wins over a build arg of the same name.
    Run {
        /// The command.
        command: Command,
        /// Build-time variables for this RUN only (not kept in the image).
        build_args: Vec<(String, String)>,
    },
    /// COPY or ADD.
    Copy {
        /// Where the sources are read.
        from: CopyFrom,
        /// Context sources: relative to the context root, cleaned, never `..` (`.` is the whole
        /// context); stage sources: absolute paths in that stage. May hold glob patterns.
        sources: Vec<String>,
        /// Absolute destination (relative ones resolved against the WORKDIR); ends with `/` when
        /// written so (the destination is then a directory).
        dst: String,
        /// `--chown=user[:group]`, substituted.
        chown: Option<String>,
        /// `--chmod`, an octal mode.
        chmod: Option<String>,
        /// The instruction was ADD.
        add: bool,
        /// ADD: local tar archives (also compressed) are unpacked into `dst`.
        extract_archives: bool,
    },
    /// ENV: set these variables in the image, in order.
    Env(Vec<(String, String)>),
    /// WORKDIR: the new absolute working directory (created if missing).
    Workdir(String),
    /// USER: `user[:group]` for the following RUN and the image.
    User(String),
    /// LABEL (and MAINTAINER as `maintainer`): image labels, in order.
    Label(Vec<(String, String)>),
    /// EXPOSE: `port/proto` (`8080/tcp`), ranges spelled out.
    Expose(Vec<String>),
    /// CMD of the image.
    Cmd(Command),
    /// ENTRYPOINT of the image.
    Entrypoint(Command),
    /// HEALTHCHECK; `None` is HEALTHCHECK NONE (disables an inherited one).
    Healthcheck(Option<Healthcheck>),
    /// SHELL: the shell for later shell-form commands.
    Shell(Vec<String>),
    /// VOLUME: paths declared as volumes.
    Volume(Vec<String>),
    /// STOPSIGNAL: a signal name or number.
    StopSignal(String),
}

/// A HEALTHCHECK, in the image config's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct Healthcheck {
    /// `["CMD-SHELL", script]` or `["CMD", argv...]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval_ns: Option<u64>,
    /// `--timeout`.
    pub timeout_ns: Option<u64>,
    /// `--start-period`.
    pub start_period_ns: Option<u64>,
    /// `--start-interval`.
    pub start_interval_ns: Option<u64>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// What a stage starts with, for [`Dockerfile::resolve_stage`]: the base image's (or earlier
/// stage's) environment and working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct BaseConfig {
    /// `NAME=value` pairs split, in order.
    pub env: Vec<(String, String)>,
    /// Absolute working directory (`/` when the image sets none).
    pub workdir: String,
}

impl Default for BaseConfig {
    fn default() -> Self {
        Self { env: Vec::new(), workdir: "/".to_string() }
    }
}

impl BaseConfig {
    /// The config after `instructions` ran on top of this one (ENV and WORKDIR applied): what a
    /// later `FROM <this stage>` starts with.
    pub fn after(&self, instructions: &[Instruction]) -> BaseConfig {
        let mut config = self.clone();
        for instruction in instructions {
            match &instruction.kind {
                InstructionKind::Env(pairs) => {
                    for (name, value) in pairs {
                        config.env.retain(|(n, _)| n != name);
                        config.env.push((name.clone(), value.clone()));
                    }
                }
                InstructionKind::Workdir(dir) => config.workdir = dir.clone(),
                _ => {}
            }
        }
        config
    }
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct DockerfileError {
    /// 1-based line; 0 for the whole file.
    pub line: usize,
    /// The instruction keyword in upper case (`COPY`), empty for the whole file.
    pub instruction: String,
    /// What is wrong and, where there is one, what to do instead.
    pub message: String,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.instruction.as_str()) {
            (0, "") => write!(f, "Dockerfile: {}", self.message),
            (line, "") => write!(f, "Dockerfile line {line}: {}", self.message),
            (line, instruction) => write!(f, "Dockerfile line {line}: {instruction}: {}", self.message),
        }
    }
}

/// Every problem found (never empty), in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileErrors(pub Vec<DockerfileError>);

impl fmt::Display for DockerfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DockerfileErrors {}

/// Parses and validates `text` with the build args (`build_envs` of the request): every problem
/// found is returned, not only the first (a syntax error stops the parser, so it comes alone).
pub fn parse(text: &str, build_args: &BTreeMap<String, String>) -> Result<Dockerfile, DockerfileErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let whole = |message: &str| {
        DockerfileErrors(vec![DockerfileError { line: 0, instruction: String::new(), message: message.to_string() }])
    };
    let meaningful = text.lines().any(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    });
    if !meaningful {
        return Err(whole("the Dockerfile is empty"));
    }
    let raw = syntax::parse(text).map_err(|e| DockerfileErrors(vec![e]))?;
    if raw.stages.is_empty() {
        return Err(whole("the Dockerfile has no FROM instruction"));
    }
    let evaluated = eval::evaluate(&raw, build_args, None)?;
    let mut warnings = raw.warnings.clone();
    warnings.extend(evaluated.warnings);
    Ok(Dockerfile { stages: evaluated.stages, warnings, raw, build_args: build_args.clone() })
}

impl Dockerfile {
    /// The build's target: the last stage.
    pub fn target(&self) -> &Stage {
        &self.stages[self.stages.len() - 1]
    }

    /// The stages the target (the last stage) needs, itself included, ascending: a stage is needed
    /// when a needed stage starts FROM it or COPYs `--from` it. The engine may skip the others.
    pub fn needed_stages(&self) -> Vec<usize> {
        let mut needed = vec![false; self.stages.len()];
        let mut todo = vec![self.stages.len() - 1];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut needed[i], true) {
                continue;
            }
            let stage = &self.stages[i];
            if let StageBase::Stage(j) = stage.base {
                todo.push(j);
            }
            for instruction in &stage.instructions {
                if let InstructionKind::Copy { from: CopyFrom::Stage(j), .. } = instruction.kind {
                    todo.push(j);
                }
            }
        }
        (0..needed.len()).filter(|&i| needed[i]).collect()
    }

    /// Stage `index` substituted against the config it really starts from (the pulled base image's
    /// env and working directory, or [`BaseConfig::after`] of the earlier stage it is FROM).
    /// Fails for an index out of range or when a `${VAR:?}` now stops the build.
    pub fn resolve_stage(&self, index: usize, base: &BaseConfig) -> Result<Stage, DockerfileErrors> {
        if index >= self.stages.len() {
            return Err(DockerfileErrors(vec![DockerfileError {
                line: 0,
                instruction: String::new(),
                message: format!("no stage {index}: the Dockerfile has {}", self.stages.len()),
            }]));
        }
        let mut evaluated = eval::evaluate(&self.raw, &self.build_args, Some((index, base)))?;
        Ok(evaluated.stages.swap_remove(index))
    }
}

/// The SHA-256 of the Dockerfile text, lower-case hex (the build record's `dockerfile_digest`).
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
