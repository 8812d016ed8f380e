//! Evaluation of the raw instructions: ARG scoping (global ARGs for FROM, stage ARGs after their
//! declaration, build args over defaults), ENV visible to later instructions, substitution of the
//! instructions Docker substitutes, stage references, WORKDIR resolution, and the refusal of what
//! the build engine cannot do (COPY/ADD and HEALTHCHECK operands are in `eval_ops`). Every problem
//! is collected with its line and instruction.

use std::collections::{BTreeMap, BTreeSet};

use super::syntax::{RawFile, RawFlag, RawInstruction, RawKind};
use super::values::{check_signal, clean_under, exposed_ports};
use super::words::{expand, split_words, ExpandError};
use super::{BaseConfig, Command, DockerfileError, DockerfileErrors, Instruction, InstructionKind, Stage, StageBase};

/// ARGs every build knows without a declaration (BuildKit's automatic platform args).
const PLATFORM_ARGS: [(&str, &str); 8] = [
    ("TARGETPLATFORM", "linux/amd64"),
    ("TARGETOS", "linux"),
    ("TARGETARCH", "amd64"),
    ("TARGETVARIANT", ""),
    ("BUILDPLATFORM", "linux/amd64"),
    ("BUILDOS", "linux"),
    ("BUILDARCH", "amd64"),
    ("BUILDVARIANT", ""),
];

/// Build args RUN receives without an ARG declaration (Docker's predefined proxy args).
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub(super) struct Evaluated {
    pub stages: Vec<Stage>,
    pub warnings: Vec<String>,
}

/// Evaluates every stage (`only == None`, bases assumed empty or the earlier stage's result), or
/// the FROMs of all and the body of one stage against the given base config.
pub(super) fn evaluate(
    raw: &RawFile,
    build_args: &BTreeMap<String, String>,
    only: Option<(usize, &BaseConfig)>,
) -> Result<Evaluated, DockerfileErrors> {
    let mut ctx = Ctx {
        escape: raw.escape,
        build_args,
        errors: Vec::new(),
        warnings: Vec::new(),
        declared: BTreeSet::new(),
        base_unknown: false,
        uncertain: false,
    };
    let mut global: BTreeMap<String, Option<String>> =
        PLATFORM_ARGS.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect();
    for instruction in &raw.global_args {
        match &instruction.kind {
            RawKind::Arg(text) => {
                let scope = Scope { env: Vec::new(), args: global.clone(), workdir: "/".into() };
                for (name, value) in ctx.args(instruction, text, &scope, &global) {
                    global.insert(name, value);
                }
            }
            _ => ctx.err(instruction, "only ARG may come before the first FROM"),
        }
    }

    let mut stages: Vec<Stage> = Vec::new();
    let mut finals: Vec<BaseConfig> = Vec::new();
    for (index, (from, body)) in raw.stages.iter().enumerate() {
        let (name, base) = ctx.from(index, from, &global, &stages);
        let start = match (only, &base) {
            (Some((i, config)), _) if i == index => config.clone(),
            (_, StageBase::Stage(j)) => finals[*j].clone(),
            _ => BaseConfig::default(),
        };
        let mut scope = Scope { env: start.env.clone(), args: BTreeMap::new(), workdir: start.workdir.clone() };
        let mut instructions = Vec::new();
        ctx.base_unknown = only.is_none() && base != StageBase::Scratch;
        if only.is_none_or(|(i, _)| i == index) {
            for raw_instruction in body {
                if let Some(kind) = ctx.instruction(index, raw_instruction, &mut scope, &global, &stages) {
                    instructions.push(Instruction { line: raw_instruction.line, kind });
                }
            }
        }
        finals.push(start.after(&instructions));
        ctx.base_unknown = false;
        stages.push(Stage { index, name, base, line: from.line, instructions });
    }

    if !ctx.errors.is_empty() {
        ctx.errors.sort_by_key(|e| e.line);
        return Err(DockerfileErrors(ctx.errors));
    }
    let mut warnings = ctx.warnings;
    warnings.extend(
        build_args
            .keys()
            .filter(|k| !ctx.declared.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .map(|k| format!("build arg {k} is not declared by any ARG instruction: it is not used")),
    );
    Ok(Evaluated { stages, warnings })
}

/// Variables visible to substitution inside a stage.
pub(super) struct Scope {
    /// The image environment: the base's, then ENV instructions (the last value of a name wins).
    env: Vec<(String, String)>,
    /// ARGs declared so far (`None`: declared without a value).
    args: BTreeMap<String, Option<String>>,
    pub(super) workdir: String,
}

impl Scope {
    fn lookup(&self, name: &str) -> Option<String> {
        match self.env.iter().rev().find(|(n, _)| n == name) {
            Some((_, value)) => Some(value.clone()),
            None => self.args.get(name).cloned().flatten(),
        }
    }

    fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.to_string()));
    }
}

pub(super) struct Ctx<'a> {
    escape: char,
    build_args: &'a BTreeMap<String, String>,
    errors: Vec<DockerfileError>,
    warnings: Vec<String>,
    declared: BTreeSet<String>,
    /// Evaluating without the base image's config (`parse`).
    base_unknown: bool,
    /// The current instruction used a variable that the base image may set.
    uncertain: bool,
}

impl Ctx<'_> {
    /// A problem with a substituted value: only a warning when the value used a variable the
    /// unknown base image may set (`resolve_stage` checks again).
    pub(super) fn value_err(&mut self, at: &RawInstruction, message: impl Into<String>) {
        if self.uncertain {
            let message = message.into();
            self.warnings.push(format!(
                "line {}: {}: {message} (unless the base image's environment sets the variables used)",
                at.line, at.keyword
            ));
        } else {
            self.err(at, message);
        }
    }

    pub(super) fn err(&mut self, at: &RawInstruction, message: impl Into<String>) {
        self.errors.push(DockerfileError { line: at.line, instruction: at.keyword.clone(), message: message.into() });
    }

    /// Substitutes one word; an error is recorded and `None` returned. Without the base image's
    /// environment (`parse`), a `${VAR:?}` on an unset variable is only a warning: the base image
    /// may set it, and `resolve_stage` checks it again.
    pub(super) fn word(&mut self, at: &RawInstruction, word: &str, scope: &Scope) -> Option<String> {
        let missed = std::cell::Cell::new(false);
        let lookup = |name: &str| {
            let value = scope.lookup(name);
            missed.set(missed.get() || value.is_none());
            value
        };
        let result = expand(word, self.escape, &lookup);
        self.uncertain |= missed.get() && self.base_unknown;
        match result {
            Ok(value) => Some(value),
            Err(ExpandError::Unset(message)) if self.base_unknown => {
                self.value_err(at, message);
                Some(String::new())
            }
            Err(e) => {
                self.err(at, e.to_string());
                None
            }
        }
    }

    /// ARG declarations: `(name, value)` with the build arg over the default over the global ARG.
    fn args(
        &mut self,
        at: &RawInstruction,
        text: &str,
        scope: &Scope,
        global: &BTreeMap<String, Option<String>>,
    ) -> Vec<(String, Option<String>)> {
        let words = split_words(text, self.escape);
        if words.is_empty() {
            self.err(at, "ARG needs a name (ARG NAME or ARG NAME=default)");
        }
        let mut out = Vec::new();
        for word in words {
            let (name, default) = match word.split_once('=') {
                Some((name, default)) => (name.to_string(), Some(default.to_string())),
                None => (word.clone(), None),
            };
            if name.is_empty() {
                self.err(at, format!("ARG {word:?} has no name"));
                continue;
            }
            self.declared.insert(name.clone());
            let value = match (self.build_args.get(&name), default) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(default)) => self.word(at, &default, scope),
                (None, None) => global.get(&name).cloned().flatten(),
            };
            out.push((name, value));
        }
        out
    }

    fn from(
        &mut self,
        index: usize,
        at: &RawInstruction,
        global: &BTreeMap<String, Option<String>>,
        earlier: &[Stage],
    ) -> (Option<String>, StageBase) {
        let RawKind::From { flags, image, alias } = &at.kind else { unreachable!("stages start with FROM") };
        let scope = Scope { env: Vec::new(), args: global.clone(), workdir: "/".into() };
        for flag in flags {
            match (flag.name.as_str(), &flag.value) {
                ("platform", Some(value)) => {
                    let platform = self.word(at, value, &scope).unwrap_or_default();
                    if !matches!(platform.as_str(), "linux/amd64" | "linux/x86_64" | "linux/amd64/v1") {
                        self.err(
                            at,
                            format!("--platform={platform} is not supported: only linux/amd64 images can be built"),
                        );
                    }
                }
                _ => self.unknown_flag(at, flag),
            }
        }
        let name = alias.as_ref().map(|a| a.to_ascii_lowercase());
        if let Some(name) = &name {
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                self.err(
                    at,
                    format!("invalid stage name {name:?}: use letters, digits, -, _ and ., starting with a letter"),
                );
            } else if earlier.iter().any(|s| s.name.as_ref() == Some(name)) {
                self.err(at, format!("duplicate stage name {name:?}"));
            }
        }
        let Some(image) = self.word(at, image, &scope) else {
            return (name, StageBase::Scratch);
        };
        let base = if image.is_empty() {
            self.err(at, "the base image name is empty after substitution (declare its ARG before the first FROM)");
            StageBase::Scratch
        } else if image.eq_ignore_ascii_case("scratch") {
            StageBase::Scratch
        } else if let Some(stage) = stage_ref(&image, index, earlier) {
            StageBase::Stage(stage)
        } else if image.chars().any(char::is_whitespace) {
            self.err(at, format!("invalid image reference {image:?}"));
            StageBase::Scratch
        } else {
            StageBase::Image(image)
        };
        (name, base)
    }

    pub(super) fn unknown_flag(&mut self, at: &RawInstruction, flag: &RawFlag) {
        self.err(at, format!("unknown flag --{} for {}", flag.name, at.keyword));
    }

    fn instruction(
        &mut self,
        index: usize,
        at: &RawInstruction,
        scope: &mut Scope,
        global: &BTreeMap<String, Option<String>>,
        earlier: &[Stage],
    ) -> Option<InstructionKind> {
        use InstructionKind as K;
        self.uncertain = false;
        Some(match &at.kind {
            RawKind::From { .. } => unreachable!("FROM starts a stage"),
            RawKind::Arg(text) => {
                for (name, value) in self.args(at, text, scope, global) {
                    scope.args.insert(name, value);
                }
                return None;
            }
            RawKind::Env(text) => {
                let pairs = self.name_values(at, text, scope, false)?;
                for (name, value) in &pairs {
                    scope.set_env(name, value);
                }
                K::Env(pairs)
            }
            RawKind::Label(text) => K::Label(self.name_values(at, text, scope, true)?),
            RawKind::Maintainer(name) => {
                self.warn_maintainer(at);
                K::Label(vec![("maintainer".to_string(), name.clone())])
            }
            RawKind::Run { flags, command } => {
                for flag in flags {
                    self.run_flag(at, flag);
                }
                K::Run { command: self.command(at, command)?, build_args: run_args(scope, self.build_args) }
            }
            RawKind::Cmd(command) => K::Cmd(command.clone()),
            RawKind::Entrypoint(command) => K::Entrypoint(command.clone()),
            RawKind::Copy { add, flags, sources, dest } => {
                return self.copy(index, at, *add, flags, sources, dest, scope, earlier)
            }
            RawKind::Workdir(path) => {
                let path = self.non_empty(at, path, scope)?;
                scope.workdir = clean_under(&scope.workdir, &path);
                K::Workdir(scope.workdir.clone())
            }
            RawKind::User(user) => K::User(self.non_empty(at, user, scope)?),
            RawKind::Expose(items) => {
                let mut ports = Vec::new();
                for item in items {
                    for word in self.word(at, item, scope)?.split_whitespace() {
                        match exposed_ports(word) {
                            Ok(p) => ports.extend(p),
                            Err(message) => self.value_err(at, message),
                        }
                    }
                }
                K::Expose(ports)
            }
            RawKind::Volume(items) => {
                let mut paths = Vec::new();
                for item in items {
                    paths.push(self.non_empty(at, item, scope)?);
                }
                K::Volume(paths)
            }
            RawKind::StopSignal(signal) => {
                let signal = self.non_empty(at, signal, scope)?;
                if let Err(message) = check_signal(&signal) {
                    self.value_err(at, message);
                }
                K::StopSignal(signal)
            }
            RawKind::Shell(argv) => {
                if argv.is_empty() {
                    self.err(at, "SHELL needs at least one argument, e.g. [\"/bin/bash\", \"-c\"]");
                }
                K::Shell(argv.clone())
            }
            RawKind::Healthcheck { flags, test } => K::Healthcheck(self.healthcheck(at, flags, test.as_ref())?),
            RawKind::Refused(message) => {
                self.err(at, message.clone());
                return None;
            }
        })
    }

    fn warn_maintainer(&mut self, at: &RawInstruction) {
        self.warnings.push(format!(
            "line {}: MAINTAINER is deprecated: it is kept as the label `maintainer` (use LABEL)",
            at.line
        ));
    }

    pub(super) fn non_empty(&mut self, at: &RawInstruction, word: &str, scope: &Scope) -> Option<String> {
        let value = self.word(at, word, scope)?;
        if value.is_empty() {
            self.value_err(at, format!("{} needs a non-empty value", at.keyword));
            return self.uncertain.then_some(value);
        }
        Some(value)
    }

    /// ENV and LABEL operands: `NAME=value ...` or the legacy `NAME value with spaces`. Values are
    /// substituted against the scope before this instruction; LABEL keys are substituted too.
    fn name_values(
        &mut self,
        at: &RawInstruction,
        text: &str,
        scope: &Scope,
        expand_keys: bool,
    ) -> Option<Vec<(String, String)>> {
        let words = split_words(text, self.escape);
        let raw_pairs: Vec<(String, String)> = match words.first() {
            None => {
                self.err(at, format!("{} needs NAME=value", at.keyword));
                return None;
            }
            Some(first) if !first.contains('=') => {
                let Some((name, value)) = text.trim().split_once(char::is_whitespace) else {
                    self.err(at, format!("{} {first} has no value: use {first}=value", at.keyword));
                    return None;
                };
                vec![(name.to_string(), value.trim_start().to_string())]
            }
            Some(_) => {
                let mut pairs = Vec::new();
                for word in &words {
                    match word.split_once('=') {
                        Some((k, v)) => pairs.push((k.to_string(), v.to_string())),
                        None => self.err(at, format!("{word:?} is not of the form NAME=value")),
                    }
                }
                pairs
            }
        };
        let mut pairs = Vec::new();
        for (key, value) in raw_pairs {
            let key = if expand_keys { self.word(at, &key, scope)? } else { key };
            if key.is_empty() {
                self.err(at, format!("{} names can not be blank", at.keyword));
                continue;
            }
            pairs.push((key, self.word(at, &value, scope)?));
        }
        Some(pairs)
    }

    fn run_flag(&mut self, at: &RawInstruction, flag: &RawFlag) {
        match flag.name.as_str() {
            "network" if flag.value.as_deref() == Some("default") => {}
            "mount" if flag.value.as_deref().is_some_and(|v| v.split(',').any(|p| p == "type=secret")) => {
                self.err(at, "RUN --mount=type=secret is not supported yet: build secrets cannot be mounted into build steps")
            }
            "mount" => self.err(at, "RUN --mount is not supported: COPY the files into the image first"),
            "network" => self.err(at, "RUN --network is not supported: build steps use the build's network setting (build_config.internet_access)"),
            "security" => self.err(at, "RUN --security is not supported"),
            _ => self.unknown_flag(at, flag),
        }
    }

    pub(super) fn command(&mut self, at: &RawInstruction, command: &Command) -> Option<Command> {
        let empty = match command {
            Command::Shell(script) => script.trim().is_empty(),
            Command::Exec(argv) => argv.is_empty(),
        };
        if empty {
            self.err(at, format!("{} needs a command", at.keyword));
            return None;
        }
        Some(command.clone())
    }
}

/// An earlier stage by (case-insensitive) name or by index.
pub(super) fn stage_ref(reference: &str, index: usize, earlier: &[Stage]) -> Option<usize> {
    let lower = reference.to_ascii_lowercase();
    if let Some(stage) = earlier.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
        return Some(stage.index);
    }
    reference.parse::<usize>().ok().filter(|&i| i < index)
}

/// The build args a RUN sees: the stage's ARGs with a value, then proxy args given as build args.
fn run_args(scope: &Scope, build_args: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        scope.args.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone()))).collect();
    for (k, v) in build_args {
        if PROXY_ARGS.contains(&k.as_str()) && !scope.args.contains_key(k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}
