//! The MCP tool catalog, derived from the clap command tree at run time: one tool per leaf command
//! (its name, summary and a JSON schema of its arguments), and the argv a tool call's arguments turn
//! into. Pure: no I/O, so every rule here is unit-tested.
//!
//! A tool is named `nullspace.` + the command path joined by `.` with `-` turned into `_`
//! (`nullspace.sandbox.create`, `nullspace.volume.ls_files`), as the official Python CLI names them.
//! An option is the property named after its long flag (`--memory-mb` → `memory_mb`), a positional
//! after its clap id (`id`, `path`, `reference`). The global flags (`--json`, `--api-url`,
//! `--api-key`, `-v`) are not inputs: the server supplies them.
//!
//! Commands that are no tools (see [`EXCLUDED`]):
//! - `server` runs the API server and `mcp …` is this server itself;
//! - `bench` creates dozens of sandboxes and runs for minutes;
//! - `sandbox pty` is an interactive terminal;
//! - `volume write` reads the file's content only from stdin, which a tool call does not have
//!   (`nullspace.volume.write_files` takes the content as an argument).
//!
//! `volume watch` is a tool, but its `timeout` is required (see [`REQUIRED_IN_TOOLS`]): a watch
//! without a deadline would only end when the tool call's timeout kills it. So is the `output` file of
//! the desktop's screenshots and recording downloads: their default, stdout, would put image bytes in
//! the tool's text answer.

use std::any::TypeId;

use clap::builder::ValueRange;
use clap::{Arg, ArgAction, Command};
use serde_json::{json, Map, Value};

/// Command ids (path joined by `.`) that are not tools, with everything below them.
pub const EXCLUDED: &[&str] = &["server", "mcp", "bench", "sandbox.pty", "volume.write"];

/// `(command id, property)` pairs that tools require although the CLI does not.
pub const REQUIRED_IN_TOOLS: &[(&str, &str)] = &[
    ("volume.watch", "timeout"),
    ("sandbox.desktop.screenshot", "output"),
    ("sandbox.desktop.screenshot-region", "output"),
    ("sandbox.desktop.screenshot-compressed", "output"),
    ("sandbox.desktop.recording.download", "output"),
];

/// Every tool, sorted by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    tools: Vec<ToolSpec>,
}

/// One leaf command as a tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// `nullspace.sandbox.file.read`.
    pub name: String,
    /// The subcommand path, e.g. `["sandbox", "file", "read"]`.
    pub path: Vec<String>,
    /// The command's one-line summary.
    pub description: String,
    /// Its arguments: the positionals in order, then the options.
    pub params: Vec<Param>,
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The JSON property.
    pub name: String,
    /// How it goes on the command line.
    pub kind: ParamKind,
    /// The JSON type of one value.
    pub value: ValueType,
    /// The values clap accepts, when it names them.
    pub choices: Vec<String>,
    /// Whether it takes a list.
    pub multiple: bool,
    /// Whether a call must give it.
    pub required: bool,
    /// Its help text.
    pub description: String,
    /// clap's default, as clap would parse it.
    pub default: Option<String>,
}

/// Where an argument goes on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamKind {
    /// A positional; `last` ones (`sandbox exec … -- ARGV`) come after `--`.
    Positional { last: bool },
    /// `--long=VALUE`, once per value.
    Option { long: String },
    /// `--long` when the property is true.
    Flag { long: String },
    /// `--long` repeated as often as the integer says (`-vv`).
    Count { long: String },
}

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Integer,
    Number,
    Boolean,
}

impl ValueType {
    fn json_name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
        }
    }
}

/// Arguments of a call that do not fit the tool's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tool}: {message}")]
pub struct ArgumentError {
    /// The tool called.
    pub tool: String,
    /// What is wrong and what the tool takes.
    pub message: String,
}

impl Catalog {
    /// The tools of the CLI `root` (e.g. `Cli::command()`), without [`EXCLUDED`] commands.
    pub fn from_command(mut root: Command) -> Self {
        // Fills in what derive leaves to parse time (num_args, global flags on every subcommand).
        root.build();
        let mut tools = Vec::new();
        collect(&root, &mut Vec::new(), &mut tools);
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Self { tools }
    }

    /// All tools, sorted by name.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.iter().find(|tool| tool.name == name)
    }
}

/// The tool name of a command path: `["volume", "ls-files"]` → `nullspace.volume.ls_files`.
pub fn tool_name(path: &[String]) -> String {
    format!("nullspace.{}", path.join(".").replace('-', "_"))
}

fn collect(command: &Command, path: &mut Vec<String>, out: &mut Vec<ToolSpec>) {
    for sub in command.get_subcommands() {
        // clap adds a `help` subcommand to every group; it is no command of ours.
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        path.push(sub.get_name().to_owned());
        let id = path.join(".");
        let excluded = EXCLUDED.iter().any(|e| id == *e || id.starts_with(&format!("{e}.")));
        if !excluded {
            if sub.has_subcommands() {
                collect(sub, path, out);
            } else {
                out.push(tool_spec(sub, path));
            }
        }
        path.pop();
    }
}

fn tool_spec(command: &Command, path: &[String]) -> ToolSpec {
    let id = path.join(".");
    let mut options = Vec::new();
    let mut positionals = Vec::new();
    for arg in command.get_arguments() {
        if arg.is_global_set() || arg.is_hide_set() || matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
        {
            continue;
        }
        let mut param = param(command, arg);
        if REQUIRED_IN_TOOLS.contains(&(id.as_str(), param.name.as_str())) {
            param.required = true;
        }
        if arg.is_positional() {
            positionals.push((arg.get_index().unwrap_or(usize::MAX), param));
        } else {
            options.push(param);
        }
    }
    positionals.sort_by_key(|(index, _)| *index);
    let mut params: Vec<Param> = positionals.into_iter().map(|(_, param)| param).collect();
    params.extend(options);
    let description =
        command.get_about().map(|about| about.to_string()).unwrap_or_else(|| format!("nullspace {}", path.join(" ")));
    ToolSpec { name: tool_name(path), path: path.to_vec(), description, params }
}

fn param(command: &Command, arg: &Arg) -> Param {
    let long = arg.get_long().unwrap_or(arg.get_id().as_str()).to_owned();
    let (kind, name) = if arg.is_positional() {
        (ParamKind::Positional { last: arg.is_last_set() }, arg.get_id().as_str().to_owned())
    } else {
        let name = long.replace('-', "_");
        let kind = match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => ParamKind::Flag { long },
            ArgAction::Count => ParamKind::Count { long },
            _ => ParamKind::Option { long },
        };
        (kind, name)
    };
    let value = match kind {
        ParamKind::Flag { .. } => ValueType::Boolean,
        ParamKind::Count { .. } => ValueType::Integer,
        _ => value_type(arg),
    };
    let takes_many = arg.get_num_args().is_some_and(|range: ValueRange| range.max_values() > 1);
    let multiple = matches!(arg.get_action(), ArgAction::Append) || takes_many;
    let choices =
        arg.get_possible_values().iter().filter(|v| !v.is_hide_set()).map(|v| v.get_name().to_owned()).collect();
    let default = match kind {
        ParamKind::Flag { .. } | ParamKind::Count { .. } => None,
        _ if multiple => None,
        _ => arg.get_default_values().first().map(|v| v.to_string_lossy().into_owned()),
    };
    let required = arg.is_required_set() && default.is_none();
    Param { name, kind, value, choices, multiple, required, description: description(command, arg), default }
}

/// The help text, plus the value's shape when clap names one (`KEY=VALUE`, `JSON`) and the
/// arguments it cannot be combined with.
fn description(command: &Command, arg: &Arg) -> String {
    let mut text = arg.get_help().map(|help| help.to_string()).unwrap_or_default();
    let default_name = arg.get_id().as_str().to_uppercase();
    if let Some([name]) = arg.get_value_names() {
        if name.as_str() != default_name && !arg.is_positional() {
            add_sentence(&mut text, &format!("Value: {name}"));
        }
    }
    let conflicts: Vec<String> = command
        .get_arg_conflicts_with(arg)
        .iter()
        .map(|other| match other.get_long() {
            Some(long) if !other.is_positional() => long.replace('-', "_"),
            _ => other.get_id().as_str().to_owned(),
        })
        .collect();
    if !conflicts.is_empty() {
        add_sentence(&mut text, &format!("Not together with: {}", conflicts.join(", ")));
    }
    text
}

/// Appends `sentence.` to `text` (clap drops the summary's closing period, so it may need one first).
fn add_sentence(text: &mut String, sentence: &str) {
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    if !text.is_empty() {
        text.push(' ');
    }
    text.push_str(sentence);
    text.push('.');
}

/// The JSON type of what the argument's value parser produces.
fn value_type(arg: &Arg) -> ValueType {
    let produced = arg.get_value_parser().type_id();
    let is = |ids: &[TypeId]| ids.iter().any(|id| produced == *id);
    if is(&[
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ]) {
        ValueType::Integer
    } else if is(&[TypeId::of::<f32>(), TypeId::of::<f64>()]) {
        ValueType::Number
    } else if is(&[TypeId::of::<bool>()]) {
        ValueType::Boolean
    } else {
        ValueType::String
    }
}

impl ToolSpec {
    /// The tool's `inputSchema`: an object of its params, `additionalProperties: false`.
    pub fn input_schema(&self) -> Map<String, Value> {
        let properties: Map<String, Value> = self.params.iter().map(|p| (p.name.clone(), p.schema())).collect();
        let required: Vec<&str> = self.params.iter().filter(|p| p.required).map(|p| p.name.as_str()).collect();
        let mut schema = Map::new();
        schema.insert("type".into(), json!("object"));
        schema.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            schema.insert("required".into(), json!(required));
        }
        schema.insert("additionalProperties".into(), json!(false));
        schema
    }

    /// The command line after the binary for a call with `arguments`: the command path, options as
    /// `--long=VALUE` (so a value may start with `-`), `--json`, then the positionals after `--`
    /// (a `last` positional such as `sandbox exec`'s argv after its own `--`).
    pub fn argv(&self, arguments: &Map<String, Value>) -> Result<Vec<String>, ArgumentError> {
        let error = |message: String| ArgumentError { tool: self.name.clone(), message };
        if let Some(unknown) = arguments.keys().find(|key| !self.params.iter().any(|p| &p.name == *key)) {
            let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            let takes = if known.is_empty() { "no arguments".to_owned() } else { known.join(", ") };
            return Err(error(format!("`{unknown}` is no argument of this tool; it takes: {takes}")));
        }
        let mut argv = self.path.clone();
        let mut positionals = Vec::new();
        let mut last = Vec::new();
        for param in &self.params {
            let values = match arguments.get(&param.name) {
                None | Some(Value::Null) if param.required => {
                    return Err(error(format!("`{}` is required ({})", param.name, param.description)));
                }
                None | Some(Value::Null) => continue,
                Some(value) => param.values(value).map_err(error)?,
            };
            match &param.kind {
                ParamKind::Option { long } => argv.extend(values.iter().map(|v| format!("--{long}={v}"))),
                ParamKind::Flag { long } => {
                    if values.first().map(String::as_str) == Some("true") {
                        argv.push(format!("--{long}"));
                    }
                }
                ParamKind::Count { long } => {
                    // clap counts in a u8; a larger number must not become a huge argv.
                    let times: u8 = values
                        .first()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| error(format!("`{}` must be an integer from 0 to {}", param.name, u8::MAX)))?;
                    argv.extend(std::iter::repeat_n(format!("--{long}"), usize::from(times)));
                }
                ParamKind::Positional { last: true } => last.extend(values),
                ParamKind::Positional { last: false } => positionals.extend(values),
            }
        }
        argv.push("--json".into());
        let has_last = self.params.iter().any(|p| p.kind == ParamKind::Positional { last: true });
        if !has_last {
            // After `--` no value is taken for a flag, whatever it starts with.
            if !positionals.is_empty() {
                argv.push("--".into());
            }
            argv.extend(positionals);
        } else {
            // clap gives everything after `--` to the `last` positional, so the others go before it
            // as they are.
            if let Some(dashed) = positionals.iter().find(|v| v.starts_with('-')) {
                return Err(error(format!(
                    "{dashed:?} cannot be passed here: a value before `--` must not start with `-`"
                )));
            }
            argv.extend(positionals);
            if !last.is_empty() {
                argv.push("--".into());
                argv.extend(last);
            }
        }
        Ok(argv)
    }
}

impl Param {
    fn schema(&self) -> Value {
        let mut item = Map::new();
        item.insert("type".into(), json!(self.value.json_name()));
        if !self.choices.is_empty() {
            item.insert("enum".into(), json!(self.choices));
        }
        let mut schema = if self.multiple {
            let mut list = Map::new();
            list.insert("type".into(), json!("array"));
            list.insert("items".into(), Value::Object(item));
            list
        } else {
            item
        };
        if !self.description.is_empty() {
            schema.insert("description".into(), json!(self.description));
        }
        if let Some(default) = &self.default {
            let value = match self.value {
                ValueType::Integer => default.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(default)),
                ValueType::Number => default.parse::<f64>().map(Value::from).unwrap_or_else(|_| json!(default)),
                _ => json!(default),
            };
            schema.insert("default".into(), value);
        }
        Value::Object(schema)
    }

    /// The command-line values of `value`: one per list item (a single value counts as a list of one).
    fn values(&self, value: &Value) -> Result<Vec<String>, String> {
        match value {
            Value::Array(items) if self.multiple => items.iter().map(|item| self.scalar(item)).collect(),
            Value::Array(_) => Err(format!("`{}` takes one {}, not a list", self.name, self.value.json_name())),
            other => Ok(vec![self.scalar(other)?]),
        }
    }

    fn scalar(&self, value: &Value) -> Result<String, String> {
        let text = match (self.value, value) {
            (ValueType::String, Value::String(text)) => text.clone(),
            (ValueType::Boolean, Value::Bool(flag)) => flag.to_string(),
            (ValueType::Number, Value::Number(number)) => number.to_string(),
            (ValueType::Integer, Value::Number(number)) if number.is_i64() || number.is_u64() => number.to_string(),
            (expected, got) => {
                let got = match got {
                    Value::Null => "null".to_owned(),
                    Value::Array(_) => "a list".to_owned(),
                    Value::Object(_) => "an object".to_owned(),
                    scalar => scalar.to_string(),
                };
                return Err(format!("`{}` must be {}, got {got}", self.name, a(expected)));
            }
        };
        if !self.choices.is_empty() && !self.choices.contains(&text) {
            return Err(format!("`{}` must be one of {}, got {text:?}", self.name, self.choices.join(", ")));
        }
        Ok(text)
    }
}

fn a(value: ValueType) -> &'static str {
    match value {
        ValueType::String => "a string",
        ValueType::Integer => "an integer",
        ValueType::Number => "a number",
        ValueType::Boolean => "a boolean",
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command as Cmd, FileCommand, SandboxCommand};

    fn catalog() -> Catalog {
        Catalog::from_command(Cli::command())
    }

    fn tool(name: &str) -> ToolSpec {
        catalog().get(name).unwrap_or_else(|| panic!("no tool {name}")).clone()
    }

    fn args(value: Value) -> Map<String, Value> {
        value.as_object().expect("an object").clone()
    }

    fn parse(argv: &[String]) -> Cli {
        Cli::try_parse_from(std::iter::once("nullspace".to_owned()).chain(argv.iter().cloned()))
            .unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"))
    }

    #[test]
    fn every_leaf_command_is_a_tool_except_the_excluded() {
        let catalog = catalog();
        let names: Vec<&str> = catalog.tools().iter().map(|t| t.name.as_str()).collect();
        for expected in [
            "nullspace.sandbox.create",
            "nullspace.sandbox.exec",
            "nullspace.sandbox.kill",
            "nullspace.sandbox.file.read",
            "nullspace.sandbox.file.write",
            "nullspace.sandbox.volume.attach",
            "nullspace.sandbox.timeout.set",
            "nullspace.volume.ls_files",
            "nullspace.volume.write_files",
            "nullspace.volume.watch",
            "nullspace.api_key.create",
            "nullspace.template.list",
            "nullspace.doctor",
        ] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        for name in &names {
            for excluded in ["server", "mcp", "bench", "sandbox.pty", "volume.write"] {
                let excluded = format!("nullspace.{excluded}");
                assert!(**name != excluded && !name.starts_with(&format!("{excluded}.")), "{name} is a tool");
            }
            assert!(!name.ends_with(".help"), "{name} is clap's help");
            let valid = name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            assert!(valid, "{name} is no valid MCP tool name");
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, names, "names are sorted and unique");
        assert!(catalog.tools().iter().all(|t| !t.description.is_empty()));
        assert_eq!(tool("nullspace.sandbox.create").description, "Create a sandbox and wait until it runs");
    }

    #[test]
    fn global_flags_are_no_inputs_and_properties_are_unique() {
        for spec in catalog().tools() {
            let mut names: Vec<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
            for global in ["json", "api_url", "api_key", "verbose", "help", "version"] {
                assert!(!names.contains(&global), "{} takes {global}", spec.name);
            }
            let count = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), count, "{} has two properties of one name", spec.name);
        }
    }

    #[test]
    fn sandbox_create_schema() {
        let schema = Value::Object(tool("nullspace.sandbox.create").input_schema());
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema.get("required").is_none());
        let props = &schema["properties"];
        assert_eq!(
            props["template"],
            json!({"type": "string", "description": "Template reference", "default": "base"})
        );
        assert_eq!(props["env"]["type"], "array");
        assert_eq!(props["env"]["items"], json!({"type": "string"}));
        assert_eq!(
            props["env"]["description"],
            "Environment variable visible to every command (repeatable). Value: KEY=VALUE."
        );
        assert_eq!(props["timeout"]["type"], "integer");
        assert_eq!(props["memory_mb"]["type"], "integer");
        assert_eq!(
            props["timeout_action"],
            json!({"type": "string", "enum": ["destroy", "hibernate"], "description": "What happens at the deadline"})
        );
        assert_eq!(props["no_internet_access"]["type"], "boolean");
        assert_eq!(props["volume"]["type"], "array");
    }

    #[test]
    fn positional_and_required_arguments() {
        let exec = Value::Object(tool("nullspace.sandbox.exec").input_schema());
        assert_eq!(exec["required"], json!(["id"]));
        assert_eq!(exec["properties"]["argv"]["type"], "array");
        assert_eq!(exec["properties"]["background"]["type"], "boolean");
        assert!(exec["properties"]["shell"]["description"]
            .as_str()
            .unwrap()
            .ends_with("instead of an argv. Value: CMD. Not together with: argv."));

        let read = Value::Object(tool("nullspace.sandbox.file.read").input_schema());
        assert_eq!(read["required"], json!(["id", "path"]));
        assert_eq!(read["properties"]["encoding"]["enum"], json!(["utf8", "base64"]));
        assert_eq!(read["properties"]["encoding"]["default"], "utf8");

        let ls = Value::Object(tool("nullspace.volume.ls_files").input_schema());
        assert_eq!(ls["required"], json!(["reference"]));
        assert_eq!(ls["properties"]["path"]["default"], "/");

        let watch = Value::Object(tool("nullspace.volume.watch").input_schema());
        assert_eq!(watch["required"], json!(["reference", "path", "timeout"]));
        assert_eq!(watch["properties"]["timeout"]["type"], "number");

        let processes = Value::Object(tool("nullspace.sandbox.process.logs").input_schema());
        assert_eq!(processes["properties"]["pid"]["type"], "integer");
    }

    #[test]
    fn argv_puts_options_then_json_then_positionals() {
        let create = tool("nullspace.sandbox.create");
        let argv = create
            .argv(&args(json!({
                "template": "base",
                "env": ["A=1", "B=x=y"],
                "metadata": "team=eval",
                "timeout": 60,
                "internet_access": false,
                "no_internet_access": true,
                "cwd": null,
            })))
            .unwrap();
        assert_eq!(
            argv,
            [
                "sandbox",
                "create",
                "--template=base",
                "--env=A=1",
                "--env=B=x=y",
                "--metadata=team=eval",
                "--timeout=60",
                "--no-internet-access",
                "--json"
            ]
        );
        let Cmd::Sandbox(SandboxCommand::Create(parsed)) = parse(&argv).command else { panic!("wrong command") };
        assert_eq!(parsed.envs, [("A".into(), "1".into()), ("B".into(), "x=y".into())]);
        assert!(parsed.no_internet_access && !parsed.internet_access);
        assert_eq!(parsed.timeout, Some(60));
    }

    #[test]
    fn argv_of_exec_keeps_the_command_after_its_double_dash() {
        let exec = tool("nullspace.sandbox.exec");
        let argv = exec.argv(&args(json!({"id": "sb_1", "argv": ["ls", "-la"], "cwd": "/tmp"}))).unwrap();
        assert_eq!(argv, ["sandbox", "exec", "--cwd=/tmp", "--json", "sb_1", "--", "ls", "-la"]);
        let cli = parse(&argv);
        assert!(cli.global.json);
        let Cmd::Sandbox(SandboxCommand::Exec(parsed)) = cli.command else { panic!("wrong command") };
        assert_eq!((parsed.id.as_str(), parsed.argv.as_slice()), ("sb_1", &["ls".to_owned(), "-la".to_owned()][..]));

        let argv = exec.argv(&args(json!({"id": "sb_1", "shell": "-x; echo hi", "background": true}))).unwrap();
        assert_eq!(argv, ["sandbox", "exec", "--shell=-x; echo hi", "--background", "--json", "sb_1"]);
        let Cmd::Sandbox(SandboxCommand::Exec(parsed)) = parse(&argv).command else { panic!("wrong command") };
        assert_eq!(parsed.shell.as_deref(), Some("-x; echo hi"));
        assert!(exec.argv(&args(json!({"id": "-sb", "argv": ["ls"]}))).is_err());
    }

    #[test]
    fn positionals_that_look_like_flags_stay_values() {
        let write = tool("nullspace.sandbox.file.write");
        let argv = write.argv(&args(json!({"id": "sb_1", "path": "/x", "content": "-n hello"}))).unwrap();
        assert_eq!(argv, ["sandbox", "file", "write", "--json", "--", "sb_1", "/x", "-n hello"]);
        let Cmd::Sandbox(SandboxCommand::File(FileCommand::Write { content, .. })) = parse(&argv).command else {
            panic!("wrong command")
        };
        assert_eq!(content.as_deref(), Some("-n hello"));
        let replace = tool("nullspace.volume.replace");
        let argv = replace
            .argv(&args(json!({"reference": "v", "old": "a", "new": "b", "paths": ["/1", "/2"], "dry_run": true})));
        assert_eq!(argv.unwrap(), ["volume", "replace", "--dry-run", "--json", "--", "v", "a", "b", "/1", "/2"]);
        assert_eq!(tool("nullspace.template.list").argv(&Map::new()).unwrap(), ["template", "list", "--json"]);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let get = tool("nullspace.sandbox.get");
        let message = |spec: &ToolSpec, value: Value| spec.argv(&args(value)).unwrap_err().to_string();
        assert_eq!(message(&get, json!({})), "nullspace.sandbox.get: `id` is required (Sandbox id)");
        assert_eq!(
            message(&get, json!({"id": "sb", "sandbox": "x"})),
            "nullspace.sandbox.get: `sandbox` is no argument of this tool; it takes: id"
        );
        assert_eq!(message(&get, json!({"id": 7})), "nullspace.sandbox.get: `id` must be a string, got 7");
        assert_eq!(message(&get, json!({"id": ["a"]})), "nullspace.sandbox.get: `id` takes one string, not a list");
        let create = tool("nullspace.sandbox.create");
        assert!(message(&create, json!({"timeout": "ten"})).ends_with("`timeout` must be an integer, got \"ten\""));
        assert!(message(&create, json!({"timeout": 1.5})).ends_with("`timeout` must be an integer, got 1.5"));
        assert!(message(&create, json!({"vcpus": {"n": 1}})).ends_with("`vcpus` must be an integer, got an object"));
        assert!(message(&create, json!({"internet_access": "yes"})).ends_with("must be a boolean, got \"yes\""));
        assert!(message(&create, json!({"timeout_action": "pause"}))
            .ends_with("`timeout_action` must be one of destroy, hibernate, got \"pause\""));
        assert!(message(&create, json!({"env": ["A=1", 2]})).ends_with("`env` must be a string, got 2"));
        let watch = tool("nullspace.volume.watch");
        assert!(message(&watch, json!({"reference": "v", "path": "/"})).contains("`timeout` is required"));
    }

    #[test]
    fn counts_numbers_and_hidden_commands_of_any_clap_tree() {
        let root = Command::new("t")
            .subcommand(
                Command::new("leaf")
                    .about("A leaf")
                    .arg(Arg::new("level").long("level").action(ArgAction::Count))
                    .arg(Arg::new("ratio").long("ratio").value_parser(clap::value_parser!(f64))),
            )
            .subcommand(Command::new("secret").hide(true));
        let catalog = Catalog::from_command(root);
        assert_eq!(catalog.tools().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["nullspace.leaf"]);
        let leaf = &catalog.tools()[0];
        let schema = Value::Object(leaf.input_schema());
        assert_eq!(schema["properties"]["level"]["type"], "integer");
        assert_eq!(schema["properties"]["ratio"]["type"], "number");
        let argv = leaf.argv(&args(json!({"level": 2, "ratio": 0.5}))).unwrap();
        assert_eq!(argv, ["leaf", "--level", "--level", "--ratio=0.5", "--json"]);
        assert!(leaf.argv(&args(json!({"level": 1_000_000_000_000u64}))).unwrap_err().message.contains("0 to 255"));
        assert!(leaf.argv(&args(json!({"level": -1}))).is_err());
    }

    #[test]
    fn desktop_downloads_need_a_file_in_tools() {
        let catalog = catalog();
        for name in [
            "nullspace.sandbox.desktop.screenshot",
            "nullspace.sandbox.desktop.screenshot_region",
            "nullspace.sandbox.desktop.screenshot_compressed",
            "nullspace.sandbox.desktop.recording.download",
        ] {
            let spec = catalog.tools().iter().find(|t| t.name == name).expect(name);
            assert!(spec.params.iter().any(|p| p.name == "output" && p.required), "{name}: {:?}", spec.params);
        }
    }

    /// Every tool, called with only its required arguments, yields a command line clap accepts (up to
    /// a dummy value its parser refuses): no unknown flag, no missing argument, no conflict.
    #[test]
    fn every_tool_builds_a_command_line_clap_accepts() {
        for spec in catalog().tools() {
            let mut minimal: Map<String, Value> = spec
                .params
                .iter()
                .filter(|p| p.required)
                .map(|p| {
                    let one = match (p.value, p.choices.first()) {
                        (_, Some(choice)) => json!(choice),
                        (ValueType::String, None) => json!("x"),
                        (ValueType::Integer, None) => json!(1),
                        (ValueType::Number, None) => json!(1.5),
                        (ValueType::Boolean, None) => json!(true),
                    };
                    (p.name.clone(), if p.multiple { json!([one]) } else { one })
                })
                .collect();
            if spec.name == "nullspace.sandbox.exec" {
                // `argv` is required unless `shell` is given, which clap does not expose (its help says it).
                minimal.insert("shell".into(), json!("true"));
            }
            if spec.name == "nullspace.sandbox.desktop.scroll" {
                // The direction is required as the positional or `--direction`, which clap does not expose.
                minimal.insert("direction".into(), json!("down"));
            }
            let argv = spec.argv(&minimal).unwrap();
            let parsed = Cli::try_parse_from(std::iter::once("nullspace".to_owned()).chain(argv.iter().cloned()));
            if let Err(error) = parsed {
                assert!(
                    matches!(error.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue),
                    "{}: {argv:?} fails: {error}",
                    spec.name
                );
            }
        }
    }
}
