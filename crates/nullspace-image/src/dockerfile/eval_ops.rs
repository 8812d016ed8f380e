//! The operands of COPY/ADD (flags, sources, destination, stage references) and of HEALTHCHECK
//! (durations, retries, test), evaluated for `eval`'s stage scope.

use super::eval::{stage_ref, Ctx, Scope};
use super::syntax::{RawFlag, RawInstruction};
use super::values::{check_mode, clean_under, context_source, duration_ns};
use super::{Command, CopyFrom, Healthcheck, InstructionKind, Stage};

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy(
        &mut self,
        index: usize,
        at: &RawInstruction,
        add: bool,
        flags: &[RawFlag],
        sources: &[String],
        dest: &str,
        scope: &Scope,
        earlier: &[Stage],
    ) -> Option<InstructionKind> {
        let (mut from_flag, mut chown, mut chmod) = (None, None, None);
        for flag in flags {
            let name = flag.name.as_str();
            let slot = match name {
                "from" if !add => &mut from_flag,
                "chown" => &mut chown,
                "chmod" => &mut chmod,
                "link" | "parents" | "exclude" => {
                    self.err(at, format!("{} --{name} is not supported", at.keyword));
                    continue;
                }
                "checksum" | "keep-git-dir" | "unpack" if add => {
                    self.err(at, format!("ADD --{name} is not supported (it only applies to URLs and git sources, which are not supported)"));
                    continue;
                }
                _ => {
                    self.unknown_flag(at, flag);
                    continue;
                }
            };
            match &flag.value {
                Some(value) => *slot = self.word(at, value, scope),
                None => self.err(at, format!("--{name} needs a value (--{name}=...)")),
            }
        }
        if let Some(mode) = &chmod {
            if let Err(message) = check_mode(mode) {
                self.value_err(at, message);
            }
        }
        let from = match from_flag {
            None => CopyFrom::Context,
            Some(reference) => match stage_ref(&reference, index, earlier) {
                Some(stage) => CopyFrom::Stage(stage),
                None => {
                    self.err(at, copy_from_error(&reference, index));
                    return None;
                }
            },
        };
        let mut cleaned = Vec::new();
        for source in sources {
            let source = self.non_empty(at, source, scope)?;
            if let Some(remote) = remote_kind(&source) {
                let how = match remote {
                    Remote::Git => format!("clone it in a RUN step (RUN git clone {source} <dir>)"),
                    Remote::Url => format!("download it in a RUN step (RUN curl -fsSLo <dst> {source}, or wget)"),
                };
                self.err(at, format!("{} from {source} is not supported: {how}", at.keyword));
                continue;
            }
            match &from {
                CopyFrom::Stage(_) => cleaned.push(clean_under("/", &source)),
                CopyFrom::Context => match context_source(&source) {
                    Some(path) => cleaned.push(path),
                    None => self.err(at, format!("source {source:?} is outside the build context")),
                },
            }
        }
        let raw_dst = self.non_empty(at, dest, scope)?;
        let mut dst = clean_under(&scope.workdir, &raw_dst);
        let is_dir = raw_dst.ends_with('/')
            || raw_dst == "."
            || raw_dst.ends_with("/.")
            || raw_dst == ".."
            || raw_dst.ends_with("/..");
        if is_dir && dst != "/" {
            dst.push('/');
        }
        if sources.len() > 1 && !dst.ends_with('/') {
            self.err(
                at,
                format!("with more than one source the destination must be a directory ending in / (got {raw_dst:?})"),
            );
        }
        Some(InstructionKind::Copy { from, sources: cleaned, dst, chown, chmod, add, extract_archives: add })
    }

    pub(super) fn healthcheck(
        &mut self,
        at: &RawInstruction,
        flags: &[RawFlag],
        test: Option<&Command>,
    ) -> Option<Option<Healthcheck>> {
        let mut check = Healthcheck {
            test: Vec::new(),
            interval_ns: None,
            timeout_ns: None,
            start_period_ns: None,
            start_interval_ns: None,
            retries: None,
        };
        for flag in flags {
            let Some(value) = &flag.value else {
                self.err(at, format!("--{} needs a value", flag.name));
                continue;
            };
            let slot = match flag.name.as_str() {
                "interval" => &mut check.interval_ns,
                "timeout" => &mut check.timeout_ns,
                "start-period" => &mut check.start_period_ns,
                "start-interval" => &mut check.start_interval_ns,
                "retries" => {
                    match value.parse::<u32>() {
                        Ok(n) => check.retries = Some(n),
                        Err(_) => self.err(at, format!("--retries={value} is not a non-negative integer")),
                    }
                    continue;
                }
                _ => {
                    self.unknown_flag(at, flag);
                    continue;
                }
            };
            match duration_ns(value) {
                Ok(ns) if ns != 0 && ns < 1_000_000 => {
                    self.err(at, format!("--{} {value} is too short: use at least 1ms", flag.name))
                }
                Ok(ns) => *slot = Some(ns),
                Err(message) => self.err(at, format!("--{}: {message}", flag.name)),
            }
        }
        let Some(test) = test else { return Some(None) };
        check.test = match self.command(at, test)? {
            Command::Shell(script) => vec!["CMD-SHELL".to_string(), script],
            Command::Exec(argv) => ["CMD".to_string()].into_iter().chain(argv).collect(),
        };
        Some(Some(check))
    }
}

fn copy_from_error(reference: &str, index: usize) -> String {
    match reference.parse::<usize>() {
        Ok(i) => format!("--from={i} is not an earlier stage (this is stage {index})"),
        Err(_) if reference.is_empty() => "--from needs a stage name".to_string(),
        Err(_) => format!(
            "--from={reference} names no earlier stage, and copying from an image is not supported yet: add `FROM {reference} AS <name>` before this stage and COPY --from=<name>"
        ),
    }
}

enum Remote {
    Url,
    Git,
}

/// A source that is not a path: a URL or a git repository.
fn remote_kind(source: &str) -> Option<Remote> {
    let lower = source.to_ascii_lowercase();
    if ["git@", "git://"].iter().any(|p| lower.starts_with(p)) || (lower.ends_with(".git") && lower.contains("://")) {
        Some(Remote::Git)
    } else if lower.contains("://") {
        Some(Remote::Url)
    } else {
        None
    }
}
