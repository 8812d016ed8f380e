//! The Dockerfile's syntax: runs the `parse-dockerfile` crate (parser directives, the escape
//! character, line continuations, comments, heredocs, exec vs shell form, `--flags`) and turns its
//! borrowed tree into owned, line-numbered raw instructions. Nothing outside this file sees the
//! crate's types; no variable is substituted here.

use parse_dockerfile as pd;

use super::{Command, DockerfileError};

/// A `--name[=value]` flag as written.
#[derive(Debug, Clone)]
pub(super) struct RawFlag {
    pub name: String,
    pub value: Option<String>,
}

/// One instruction, arguments still raw (quotes and `$VAR`s as written).
#[derive(Debug, Clone)]
pub(super) struct RawInstruction {
    /// 1-based line of the keyword.
    pub line: usize,
    /// The keyword in upper case (`COPY`).
    pub keyword: String,
    pub kind: RawKind,
}

#[derive(Debug, Clone)]
pub(super) enum RawKind {
    From {
        flags: Vec<RawFlag>,
        image: String,
        alias: Option<String>,
    },
    /// The text after the keyword, continuations joined (ARG, ENV, LABEL take words from it).
    Arg(String),
    Env(String),
    Label(String),
    Maintainer(String),
    Run {
        flags: Vec<RawFlag>,
        command: Command,
    },
    Cmd(Command),
    Entrypoint(Command),
    /// COPY (`add == false`) or ADD; operands from either form (JSON array or words).
    Copy {
        add: bool,
        flags: Vec<RawFlag>,
        sources: Vec<String>,
        dest: String,
    },
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Shell(Vec<String>),
    /// `test == None` for `HEALTHCHECK NONE`.
    Healthcheck {
        flags: Vec<RawFlag>,
        test: Option<Command>,
    },
    /// Something the engine cannot do, found at the syntax level (heredocs, ONBUILD).
    Refused(String),
}

/// The file as raw instructions: the global ARGs before the first FROM, then each stage's FROM with
/// its instructions.
#[derive(Debug, Clone)]
pub(super) struct RawFile {
    pub escape: char,
    pub global_args: Vec<RawInstruction>,
    pub stages: Vec<(RawInstruction, Vec<RawInstruction>)>,
    pub warnings: Vec<String>,
}

/// Parses `text` (a UTF-8 BOM already removed). A syntax error stops the crate's parser, so it is
/// returned alone.
pub(super) fn parse(text: &str) -> Result<RawFile, DockerfileError> {
    let lines = LineIndex::new(text);
    let parsed = pd::parse(text).map_err(|e| syntax_error(text, &e))?;
    let escape = parsed.parser_directives.escape.as_ref().map_or('\\', |d| d.value.value);
    let mut warnings = Vec::new();
    if let Some(syntax) = &parsed.parser_directives.syntax {
        warnings.push(format!(
            "line {}: the `# syntax={}` directive is ignored: the built-in Dockerfile front end is used",
            lines.line(syntax.value.span.start),
            syntax.value.value
        ));
    }
    let mut file = RawFile { escape, global_args: Vec::new(), stages: Vec::new(), warnings };
    for instruction in &parsed.instructions {
        let raw = convert(text, &lines, escape, instruction);
        match (&raw.kind, file.stages.last_mut()) {
            (RawKind::From { .. }, _) => file.stages.push((raw, Vec::new())),
            (_, Some((_, body))) => body.push(raw),
            (_, None) => file.global_args.push(raw),
        }
    }
    Ok(file)
}

const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Turns the crate's error into ours: its line, the instruction on that line, its message without
/// the trailing position (ours carries the line).
fn syntax_error(text: &str, e: &pd::Error) -> DockerfileError {
    let line = e.line();
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = message.strip_suffix(&suffix).unwrap_or(&message).to_string();
    // The body of a heredoc the parser did not see shows up as unknown instructions.
    if message.starts_with("unknown instruction") {
        let earlier: Vec<&str> = text.lines().take(line.saturating_sub(1)).collect();
        if let Some((index, found)) = earlier.iter().enumerate().rev().find(|(_, l)| misplaced_heredoc(l)) {
            return DockerfileError {
                line: index + 1,
                instruction: found.split_whitespace().next().unwrap_or_default().to_ascii_uppercase(),
                message: "a heredoc is only supported right after RUN (`RUN <<EOF` or `RUN <<EOF command`): move the command into the heredoc, or COPY a script and RUN it".to_string(),
            };
        }
    }
    let instruction = (line > 0)
        .then(|| text.lines().nth(line - 1))
        .flatten()
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_ascii_uppercase)
        // A line inside a continued instruction does not start with a keyword.
        .filter(|w| message.starts_with("unknown instruction") || KEYWORDS.contains(&w.as_str()))
        .unwrap_or_default();
    DockerfileError { line, instruction, message: format!("syntax error: {message}") }
}

fn convert(text: &str, lines: &LineIndex, escape: char, instruction: &pd::Instruction<'_>) -> RawInstruction {
    use pd::Instruction as I;
    let (span, keyword, kind) = match instruction {
        I::From(i) => (
            &i.from.span,
            "FROM",
            RawKind::From {
                flags: flags(&i.options),
                image: i.image.value.to_string(),
                alias: i.as_.as_ref().map(|(_, name)| name.value.to_string()),
            },
        ),
        I::Arg(i) => (&i.arg.span, "ARG", RawKind::Arg(i.arguments.value.to_string())),
        I::Env(i) => (&i.env.span, "ENV", RawKind::Env(i.arguments.value.to_string())),
        I::Label(i) => (&i.label.span, "LABEL", RawKind::Label(i.arguments.value.to_string())),
        I::Maintainer(i) => (&i.maintainer.span, "MAINTAINER", RawKind::Maintainer(i.name.value.to_string())),
        I::Run(i) => (&i.run.span, "RUN", run(text, escape, i)),
        I::Cmd(i) => (&i.cmd.span, "CMD", RawKind::Cmd(command(&i.arguments, escape))),
        I::Entrypoint(i) => (&i.entrypoint.span, "ENTRYPOINT", RawKind::Entrypoint(command(&i.arguments, escape))),
        I::Copy(i) => (&i.copy.span, "COPY", copy(false, &i.options, &i.src, &i.dest)),
        I::Add(i) => (&i.add.span, "ADD", copy(true, &i.options, &i.src, &i.dest)),
        I::Workdir(i) => (&i.workdir.span, "WORKDIR", RawKind::Workdir(i.arguments.value.to_string())),
        I::User(i) => (&i.user.span, "USER", RawKind::User(i.arguments.value.to_string())),
        I::Expose(i) => (&i.expose.span, "EXPOSE", RawKind::Expose(strings(&i.arguments))),
        I::Volume(i) => {
            let items = match &i.arguments {
                pd::JsonOrStringArray::Json(a) => strings(&a.value),
                pd::JsonOrStringArray::String(a) => strings(a),
            };
            (&i.volume.span, "VOLUME", RawKind::Volume(items))
        }
        I::Stopsignal(i) => (&i.stopsignal.span, "STOPSIGNAL", RawKind::StopSignal(i.arguments.value.to_string())),
        I::Shell(i) => (&i.shell.span, "SHELL", RawKind::Shell(strings(&i.arguments))),
        I::Healthcheck(i) => {
            let test = match &i.arguments {
                pd::HealthcheckArguments::Cmd { arguments, .. } => Some(command(arguments, escape)),
                _ => None,
            };
            (&i.healthcheck.span, "HEALTHCHECK", RawKind::Healthcheck { flags: flags(&i.options), test })
        }
        I::Onbuild(i) => (
            &i.onbuild.span,
            "ONBUILD",
            RawKind::Refused(
                "ONBUILD is not supported (its trigger only runs in images built FROM this one)".to_string(),
            ),
        ),
        other => {
            // The crate may learn instructions we do not know yet: refuse them by their keyword.
            let keyword = format!("{other:?}").split('(').next().unwrap_or("").to_ascii_uppercase();
            return RawInstruction {
                line: 0,
                keyword: keyword.clone(),
                kind: RawKind::Refused(format!("unknown instruction {keyword}")),
            };
        }
    };
    RawInstruction { line: lines.line(span.start), keyword: keyword.to_string(), kind }
}

const HEREDOC: &str =
    "COPY/ADD <<EOF is not supported: write the file with RUN <<EOF cat > <path>, or put it in the build context";

/// RUN, with the heredoc forms Docker runs: `RUN <<EOF` alone runs the document with the shell;
/// `RUN <<EOF command...` hands the shell the text as written (the shell handles the delimiter,
/// its quoting and `<<-`).
fn run(text: &str, escape: char, i: &pd::RunInstruction<'_>) -> RawKind {
    let flags = flags(&i.options);
    let doc = match i.here_docs.as_slice() {
        [] => return RawKind::Run { flags, command: command(&i.arguments, escape) },
        [doc] => doc,
        _ => return RawKind::Refused("RUN with more than one heredoc is not supported".to_string()),
    };
    let rest = match &i.arguments {
        pd::Command::Shell(shell) => shell.value.trim(),
        _ => "",
    };
    if rest.is_empty() {
        if doc.value.starts_with("#!") {
            return RawKind::Refused(
                "a RUN heredoc starting with #! is not supported: write `RUN <<EOF interpreter` (e.g. `RUN <<EOF python3`) or COPY the script and RUN it"
                    .to_string(),
            );
        }
        return RawKind::Run { flags, command: Command::Shell(doc.value.to_string()) };
    }
    let start = i.options.last().map_or(i.run.span.end, |f| f.span().end);
    let written = text.get(start..doc.span.end).unwrap_or_default().trim_start();
    match heredoc_delimiter(written) {
        Some(delimiter) => RawKind::Run { flags, command: Command::Shell(format!("{written}{delimiter}")) },
        None => RawKind::Refused("cannot read the heredoc's delimiter".to_string()),
    }
}

/// The delimiter word of the first `<<[-]["']WORD["']` in `text`.
fn heredoc_delimiter(text: &str) -> Option<&str> {
    let after = &text[text.find("<<")? + 2..];
    let after = after.strip_prefix('-').unwrap_or(after);
    let after = after.trim_start_matches(['"', '\'']);
    let end = after.find(|c: char| c == '"' || c == '\'' || c.is_whitespace()).unwrap_or(after.len());
    Some(&after[..end]).filter(|d| !d.is_empty())
}

/// Whether `line` (an instruction line) has a heredoc somewhere else than as its first argument,
/// which Docker allows and the parser does not.
fn misplaced_heredoc(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
    if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        return false;
    }
    let first = words.find(|w| !w.starts_with("--")).unwrap_or_default();
    !first.starts_with("<<") && heredoc_delimiter(line).is_some()
}

fn flags(options: &[pd::Flag<'_>]) -> Vec<RawFlag> {
    options
        .iter()
        .map(|f| RawFlag { name: f.name.value.to_string(), value: f.value.as_ref().map(|v| v.value.to_string()) })
        .collect()
}

fn strings(items: &[pd::UnescapedString<'_>]) -> Vec<String> {
    items.iter().map(|s| s.value.to_string()).collect()
}

fn command(command: &pd::Command<'_>, escape: char) -> Command {
    match command {
        pd::Command::Exec(args) => Command::Exec(strings(&args.value)),
        pd::Command::Shell(s) => Command::Shell(join_continuations(s.value, escape)),
        // A form a later version of the crate may add: an empty command, refused as such.
        _ => Command::Exec(Vec::new()),
    }
}

fn copy(add: bool, options: &[pd::Flag<'_>], src: &[pd::Source<'_>], dest: &pd::UnescapedString<'_>) -> RawKind {
    let mut sources = Vec::new();
    for s in src {
        match s {
            pd::Source::Path(p) => sources.push(p.value.to_string()),
            _ => return RawKind::Refused(HEREDOC.to_string()),
        }
    }
    RawKind::Copy { add, flags: flags(options), sources, dest: dest.value.to_string() }
}

/// A shell-form command as Docker hands it to the shell: each escape-newline continuation removed,
/// comment lines and empty lines inside the continuation dropped, other text kept as written.
pub(super) fn join_continuations(raw: &str, escape: char) -> String {
    let mut out = String::new();
    for (i, line) in raw.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if i > 0 && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let body = line.trim_end_matches([' ', '\t']);
        match body.strip_suffix(escape) {
            Some(rest) => out.push_str(rest),
            None => out.push_str(line),
        }
    }
    out
}

/// Byte offset to 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}
