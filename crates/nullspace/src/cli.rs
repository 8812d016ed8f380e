//! The command-line surface as clap types: global flags and one enum per noun. Parsing only; the
//! commands live in `commands/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Self-hostable sandboxes: the API server, its CLI, and a host doctor.
#[derive(Debug, Parser)]
#[command(name = "nullspace", version, propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Print the raw API object as JSON on stdout instead of human output.
    #[arg(long, global = true)]
    pub json: bool,
    /// API URL [default: $NULLSPACE_API_URL, then ~/.config/nullspace/config.json, then http://localhost:3000]
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// API key [default: $NULLSPACE_API_KEY, then ~/.config/nullspace/config.json]
    #[arg(long, global = true, value_name = "KEY")]
    pub api_key: Option<String>,
    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server and the local node (the single-host appliance).
    Server(ServerArgs),
    /// Manage API keys of a local server's store.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Show what this host supports (runtimes, KVM, cgroups, overlayfs, netns) and whether the API answers.
    Doctor,
    /// Create, inspect and use sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// List templates.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Measure a running server (create→first-exec, exec, files) next to bare `runc run` on this host.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Sandboxes to create for the create→first-exec figure (and bare runc runs).
    #[arg(long, default_value_t = 20)]
    pub sandboxes: usize,
    /// Exec round trips to time in one sandbox.
    #[arg(long, default_value_t = 50)]
    pub execs: usize,
    /// Size of the file written and read back, in MiB.
    #[arg(long, default_value_t = 64)]
    pub file_mb: usize,
    /// The server's data directory (to find the base template rootfs for the runc baseline).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Isolation runtime of `nullspace server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// The strongest runtime that works on this host.
    Auto,
    Runc,
    Crun,
    Runsc,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Data directory (store, templates, sandboxes) [default: ~/.local/share/nullspace]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Isolation runtime.
    #[arg(long, value_enum, default_value_t = RuntimeArg::Auto)]
    pub runtime: RuntimeArg,
    /// Domain of preview URLs `http://{port}-{sandbox_id}.{domain}` (served on the listen address).
    #[arg(long, value_name = "DOMAIN", default_value = "localhost")]
    pub preview_domain: String,
    /// Host bridge of the sandboxes [default: nsbr0]; servers sharing a host need distinct bridges.
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// Private IPv4 range sandbox addresses come from [default: 10.213.0.0/16].
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for a tenant (created if missing) and print it.
    Create {
        /// Tenant name.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Data directory of the server [default: ~/.local/share/nullspace]
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox and wait until it runs.
    Create(CreateArgs),
    /// List sandboxes.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one sandbox.
    Get {
        /// Sandbox id.
        id: String,
    },
    /// Destroy a sandbox.
    #[command(visible_alias = "rm")]
    Kill {
        /// Sandbox id.
        id: String,
    },
    /// Run a command in a sandbox, streaming its output; exits with the command's exit code.
    Exec(ExecArgs),
    /// Change a sandbox's deadline.
    #[command(subcommand)]
    Timeout(TimeoutCommand),
    /// Read and change files in a sandbox.
    #[command(subcommand, visible_alias = "files")]
    File(FileCommand),
    /// List, inspect and kill processes in a sandbox.
    #[command(subcommand)]
    Process(ProcessCommand),
    /// List the processes of a sandbox (same as `process list`).
    Ps {
        /// Sandbox id.
        id: String,
    },
    /// Hibernate a sandbox: save its filesystem as a snapshot and release it (it stays listed as paused).
    #[command(visible_alias = "hibernate")]
    Pause {
        /// Sandbox id.
        id: String,
    },
    /// Start a new sandbox from a snapshot (or a paused sandbox's id).
    Resume {
        /// Snapshot id (`snap_…`) or paused sandbox id.
        id: String,
    },
    /// Open an interactive terminal (login shell) in a sandbox; exits with the shell's exit code.
    Pty {
        /// Sandbox id.
        id: String,
    },
    /// Fork a running sandbox into an independent copy.
    Fork {
        /// Sandbox id.
        id: String,
    },
    /// Take a snapshot of a running sandbox (it keeps running).
    Snapshot {
        /// Sandbox id.
        id: String,
    },
    /// Upload a local file into a sandbox (streamed).
    Upload {
        /// Sandbox id.
        id: String,
        /// Local file.
        local: PathBuf,
        /// Destination path in the sandbox.
        path: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Template reference.
    #[arg(long, default_value = "base")]
    pub template: String,
    /// Default working directory (created if missing).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable visible to every command (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub envs: Vec<(String, String)>,
    /// Environment variables as a JSON object of strings.
    #[arg(long, value_name = "JSON")]
    pub env_json: Option<String>,
    /// Metadata pair (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// Metadata as a JSON object (values keep their JSON types).
    #[arg(long, value_name = "JSON")]
    pub metadata_json: Option<String>,
    /// Lifetime in seconds [server default: 300]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// What happens at the deadline.
    #[arg(long, value_enum)]
    pub timeout_action: Option<TimeoutActionArg>,
    /// Virtual CPUs.
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Memory limit in MiB.
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// Egress lists as JSON, e.g. '{"allow_out":["203.0.113.0/24"],"deny_out":["10.0.0.0/8"]}'.
    #[arg(long, value_name = "JSON")]
    pub network_json: Option<String>,
    /// Allow internet access (the default).
    #[arg(long, overrides_with = "no_internet_access")]
    pub internet_access: bool,
    /// Deny internet access.
    #[arg(long)]
    pub no_internet_access: bool,
    /// Key that makes retries of this create return the same sandbox.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// What a sandbox does at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeoutActionArg {
    Destroy,
    Hibernate,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only sandboxes in these states (repeatable or comma-separated: running,paused).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only sandboxes of this template.
    #[arg(long)]
    pub template: Option<String>,
    /// Only sandboxes whose metadata has KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
    /// At most this many sandboxes (one page); all pages when absent.
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Sandbox id.
    pub id: String,
    /// Run this shell command line (`sh -c`) instead of an argv.
    #[arg(long, value_name = "CMD", conflicts_with = "argv")]
    pub shell: Option<String>,
    /// Working directory [default: the sandbox's cwd]
    #[arg(long)]
    pub cwd: Option<String>,
    /// Environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub envs: Vec<(String, String)>,
    /// Kill the command after this many seconds [server default: 30]
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Start in the background and print the pid.
    #[arg(long)]
    pub background: bool,
    /// Program and arguments, after `--`.
    #[arg(last = true, value_name = "ARGV", required_unless_present = "shell")]
    pub argv: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TimeoutCommand {
    /// Set the sandbox's lifetime from now.
    Set {
        /// Sandbox id.
        id: String,
        /// Seconds from now.
        #[arg(long)]
        seconds: u64,
        /// What happens at the deadline.
        #[arg(long, value_enum)]
        action: Option<TimeoutActionArg>,
    },
}

/// Encoding of `file read` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    /// Raw bytes (text in `--json`).
    Utf8,
    /// Base64 of the bytes.
    Base64,
}

#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Print a file's content.
    #[command(visible_alias = "cat")]
    Read {
        /// Sandbox id.
        id: String,
        /// Path in the sandbox.
        path: String,
        /// Output encoding.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
    },
    /// Write a file from CONTENT, --from FILE, or stdin.
    Write {
        /// Sandbox id.
        id: String,
        /// Path in the sandbox (parents are created).
        path: String,
        /// Content; stdin when absent and no --from.
        #[arg(conflicts_with = "from")]
        content: Option<String>,
        /// Stream this local file.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
    /// List a directory.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
        /// Directory [default: the sandbox's cwd]
        #[arg(default_value = ".")]
        path: String,
        /// Levels to descend.
        #[arg(long)]
        depth: Option<u32>,
    },
    /// Say whether a path exists (exit 1 when it does not).
    Exists {
        /// Sandbox id.
        id: String,
        /// Path in the sandbox.
        path: String,
    },
    /// Show a path's metadata.
    #[command(visible_alias = "stat")]
    Info {
        /// Sandbox id.
        id: String,
        /// Path in the sandbox.
        path: String,
    },
    /// Create a directory and its parents.
    Mkdir {
        /// Sandbox id.
        id: String,
        /// Directory to create.
        path: String,
    },
    /// Move or rename a path.
    #[command(visible_alias = "rename")]
    Mv {
        /// Sandbox id.
        id: String,
        /// Current path.
        from: String,
        /// New path.
        to: String,
    },
    /// Change a path's permissions.
    Chmod {
        /// Sandbox id.
        id: String,
        /// Path in the sandbox.
        path: String,
        /// Octal mode, e.g. 0644.
        #[arg(value_parser = parse_mode)]
        mode: String,
    },
    /// Remove a file or directory (recursively).
    Rm {
        /// Sandbox id.
        id: String,
        /// Path in the sandbox.
        path: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProcessCommand {
    /// List processes.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
    },
    /// Print a process's output so far and its exit code.
    Logs {
        /// Sandbox id.
        id: String,
        /// Process id.
        pid: u32,
    },
    /// Kill a process.
    Kill {
        /// Sandbox id.
        id: String,
        /// Process id.
        pid: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List the templates sandboxes can start from.
    #[command(visible_alias = "ls")]
    List,
}

/// Parses `KEY=VALUE` (the value may contain `=`).
pub fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

/// Accepts 3 or 4 octal digits.
fn parse_mode(raw: &str) -> Result<String, String> {
    let valid = (3..=4).contains(&raw.len()) && raw.chars().all(|c| ('0'..='7').contains(&c));
    if valid {
        Ok(if raw.len() == 3 { format!("0{raw}") } else { raw.to_owned() })
    } else {
        Err(format!("expected an octal mode such as 0644, got {raw:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("nullspace").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sandbox_create_collects_repeated_pairs() {
        let cli = parse(&["sandbox", "create", "--env", "A=1", "--env", "B=x=y", "--metadata", "team=eval", "--json"])
            .unwrap();
        assert!(cli.global.json);
        let Command::Sandbox(SandboxCommand::Create(args)) = cli.command else { panic!("wrong command") };
        assert_eq!(args.template, "base");
        assert_eq!(args.envs, vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]);
        assert_eq!(args.metadata, vec![("team".into(), "eval".into())]);
    }

    #[test]
    fn exec_takes_an_argv_after_double_dash_or_a_shell_line() {
        let cli = parse(&["sandbox", "exec", "sb_1", "--cwd", "/tmp", "--", "ls", "-la"]).unwrap();
        let Command::Sandbox(SandboxCommand::Exec(args)) = cli.command else { panic!("wrong command") };
        assert_eq!(args.argv, vec!["ls", "-la"]);
        assert!(parse(&["sandbox", "exec", "sb_1", "--shell", "echo hi"]).is_ok());
        assert!(parse(&["sandbox", "exec", "sb_1"]).is_err());
        assert!(parse(&["sandbox", "exec", "sb_1", "--shell", "x", "--", "ls"]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["sandbox", "create", "--env", "novalue"]).is_err());
        assert!(parse(&["sandbox", "file", "chmod", "sb", "/x", "999"]).is_err());
        assert!(parse(&["server", "--runtime", "docker"]).is_err());
        assert!(parse(&["server", "--listen", "nowhere"]).is_err());
    }

    #[test]
    fn file_aliases_follow_both_spellings() {
        assert!(matches!(
            parse(&["sandbox", "files", "cat", "sb", "/etc/hostname"]).unwrap().command,
            Command::Sandbox(SandboxCommand::File(FileCommand::Read { .. }))
        ));
        assert!(matches!(
            parse(&["sandbox", "file", "ls", "sb"]).unwrap().command,
            Command::Sandbox(SandboxCommand::File(FileCommand::List { .. }))
        ));
        let cli = parse(&["sandbox", "file", "chmod", "sb", "/x", "644"]).unwrap();
        let Command::Sandbox(SandboxCommand::File(FileCommand::Chmod { mode, .. })) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(mode, "0644");
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["template", "list", "--api-url", "http://x:1", "--json", "-vv"]).unwrap();
        assert_eq!(cli.global.api_url.as_deref(), Some("http://x:1"));
        assert_eq!(cli.global.verbose, 2);
    }
}
