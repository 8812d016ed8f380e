//! The command-line surface as clap types: global flags and one enum per noun. Parsing only; the
//! commands live in `commands/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use nullspace_client::types::volume::VolumeMountRequest;

pub use crate::commands::sandbox::code::CodeCommand;
pub use crate::commands::sandbox::desktop::DesktopCommand;
pub use crate::commands::template::TemplateCommand;

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
    /// Show and set tenants' quotas in a local server's store.
    #[command(subcommand)]
    Tenant(crate::commands::tenant::TenantCommand),
    /// Show what this host supports (runtimes, KVM, cgroups, overlayfs, netns, user namespaces with
    /// idmapped mounts) and whether the API answers.
    Doctor(DoctorArgs),
    /// Create, inspect and use sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Build, inspect and manage templates and their warm pools.
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Create, inspect and delete volumes, and use their files without a sandbox.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Measure a running server (create→first-exec, exec, files) next to bare `runc run` on this host.
    Bench(BenchArgs),
    /// Serve this CLI's commands as tools of the Model Context Protocol, for agents.
    #[command(subcommand)]
    Mcp(McpCommand),
}

#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Serve every CLI command as an MCP tool over stdin/stdout.
    ///
    /// Each tool call runs `nullspace <command> … --json` with this process's API URL and key, and
    /// returns its JSON. `--json` is accepted and ignored here: stdout carries the protocol.
    Serve(McpServeArgs),
}

#[derive(Debug, Args)]
pub struct McpServeArgs {
    /// MCP transport (stdio is the only one).
    #[arg(long, value_name = "TRANSPORT", default_value = "stdio", value_parser = parse_transport)]
    pub transport: McpTransport,
    /// Seconds one tool call may run before its command is killed.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub tool_timeout: u64,
}

/// How `nullspace mcp serve` talks to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpTransport {
    /// JSON-RPC messages, one per line, on stdin and stdout.
    Stdio,
}

/// One group of `nullspace bench` figures, each measured beside its baseline in the same run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchMode {
    /// File upload and download through the API (sandbox and volume) vs `cp` on the same disk.
    Files,
    /// Exec round trip (`true`) vs a raw request to the guest's socket and vs `GET /healthz`.
    Exec,
    /// Create→first exec, cold and from a warm pool, vs bare `runc run` of the same rootfs.
    Create,
    /// N creates→first exec sent at once (all answered) vs the same N one after another.
    Concurrent,
    /// Fork of a running sandbox vs a copy of its change set.
    Fork,
    /// Hibernate and resume vs a cold create.
    Resume,
    /// MiB per idle sandbox at 10, 100 and 1,000 from the host's free memory (run on the server's host).
    Density,
    /// Template pull + unpack and disk use (needs `--registry-image`).
    Templates,
    /// Code-interpreter figures (when the server has the `code-interpreter` template).
    Code,
    /// Desktop figures (when the server has the `desktop` template).
    Desktop,
}

impl BenchMode {
    /// The mode's name on the command line.
    pub fn name(self) -> String {
        self.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Figures to measure (repeat or comma-separate); when omitted, all but `concurrent` and `density`
    /// (they hold many sandboxes at once and need the server's overcommit flags).
    #[arg(long = "mode", value_name = "MODE", value_delimiter = ',')]
    pub modes: Vec<BenchMode>,
    /// A short run with small samples and sizes (what CI runs): the figures are noisier, the rows the same.
    #[arg(long)]
    pub quick: bool,
    /// Sandboxes to create for the create→first-exec figure (and bare runc runs) [default: 20, quick: 3].
    #[arg(long)]
    pub sandboxes: Option<usize>,
    /// Exec round trips to time in one sandbox [default: 200, quick: 20].
    #[arg(long)]
    pub execs: Option<usize>,
    /// Creates sent at once by the `concurrent` mode (and made one after another for its baseline)
    /// [default: 100, quick: 10]. 100 sandboxes of 1 vCPU need `server --cpu-overcommit 64` on 2 cores.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Size of the file written and read back, in MiB [default: 1024, quick: 16].
    #[arg(long)]
    pub file_mb: Option<usize>,
    /// Idle sandboxes held at each step of the density figure (comma-separated) [default: 10,100,1000;
    /// quick: 10,50]. 1,000 default sandboxes need the server's `--cpu-overcommit 1000
    /// --memory-overcommit 22` on a 2-core, 24 GiB host.
    #[arg(long, value_name = "N,N,…", value_delimiter = ',')]
    pub density_steps: Option<Vec<usize>>,
    /// The server's data directory (to find the base template rootfs for the runc baseline, and the
    /// layer store for the template disk figure, which is skipped without this flag).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// An image in an OCI registry for the template figures (`HOST:PORT/REPO:TAG`, e.g.
    /// 127.0.0.1:5057/library/debian:stable-slim, spoken to over HTTPS without verification or plain
    /// HTTP); the template figures are skipped without it.
    #[arg(long, value_name = "REF")]
    pub registry_image: Option<String>,
    /// Pulls (and skopeo + umoci runs) to time for the pull + unpack figure.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub pulls: u64,
    /// Templates built on the one image for the disk figure.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub templates: u64,
    /// `code-interpreter` sandboxes to create for the create→first `run_code("1+1")` result figure.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub code_sandboxes: u64,
    /// `run_code("1+1")` round trips timed in one `code-interpreter` sandbox (and as many raw
    /// `jupyter_client` round trips on the same kernel).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub code_runs: u64,
    /// Also time create→first result of `code-interpreter` sandboxes claimed from a warm pool.
    #[arg(long)]
    pub code_warm_pool: bool,
    /// Skip the code-interpreter figures (measured when the server lists the `code-interpreter` template).
    #[arg(long)]
    pub no_code_interpreter: bool,
    /// Creates and round trips of each kind timed for the desktop figures.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub desktop_samples: u64,
    /// Skip the desktop figures (measured when the server lists the `desktop` template).
    #[arg(long)]
    pub no_desktop: bool,
}

/// Isolation runtime of `nullspace server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeArg {
    /// The strongest runtime that works on this host and serves every feature (networking, live volume
    /// attach): runc where gVisor lacks them; `nullspace doctor` explains the choice.
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
    /// Size limit of volumes created without one (e.g. 10GiB): each gets a filesystem of that size
    /// [default: unlimited, a plain directory on the host].
    #[arg(long, value_name = "SIZE", value_parser = parse_byte_size)]
    pub volume_size: Option<u64>,
    /// Disk of sandboxes whose create names none (`disk_mb`), e.g. 10GiB: each sandbox's writes go to
    /// a filesystem of that size. `unlimited` runs without disk limits (writes go to plain host
    /// directories and `disk_mb` is refused): the only way to start on a host that cannot enforce them.
    #[arg(long, value_name = "SIZE|unlimited", default_value = "10GiB", value_parser = parse_sandbox_disk)]
    pub sandbox_disk: SandboxDiskArg,
    /// Most vCPUs one sandbox may ask for [default: the host's CPUs, at least 2].
    #[arg(long, value_name = "N")]
    pub max_vcpus: Option<u32>,
    /// Most memory one sandbox may ask for, in MiB [default: the host's memory].
    #[arg(long, value_name = "MIB")]
    pub max_memory_mb: Option<u32>,
    /// vCPUs of live sandboxes may add up to the host's CPUs times this [default: 16].
    #[arg(long, value_name = "RATIO")]
    pub cpu_overcommit: Option<f64>,
    /// Memory of live sandboxes may add up to the host's memory times this [default: 1.5].
    #[arg(long, value_name = "RATIO")]
    pub memory_overcommit: Option<f64>,
    /// Most sandboxes alive at once (creates, forks and resumes past it answer `capacity_exceeded`)
    /// [default: what this host can hold, derived at start from its tasks (pid_max), memory, mounts,
    /// namespaces, the subnet's addresses and the user-namespace id ranges; the server logs each bound].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sandboxes: Option<u64>,
    /// Let webhooks deliver to loopback, private, link-local and this host's own addresses
    /// (refused by default).
    #[arg(long)]
    pub webhook_allow_private: bool,
    /// Let webhooks deliver to this network even if it is private (repeatable), e.g. 10.20.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub webhook_allow_cidr: Vec<ipnet::IpNet>,
    /// Pull images of REGISTRY from URL instead (repeatable), e.g. `docker.io=http://127.0.0.1:5000`:
    /// how an air-gapped host builds templates from its own registry.
    #[arg(long, value_name = "REGISTRY=URL")]
    pub registry_mirror: Vec<String>,
    /// Talk plain HTTP (or TLS without verification) to this registry (repeatable), e.g. `127.0.0.1:5000`.
    #[arg(long, value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
    /// Let builds pull from registries on loopback, private and link-local addresses that are not
    /// configured with the two options above (refused by default).
    #[arg(long)]
    pub registry_allow_private: bool,
    /// A complete PEM bundle of the certificate authorities sandboxes and template builds trust instead
    /// of their image's, e.g. `/etc/ssl/certs/ca-certificates.crt` on a host whose HTTPS goes through a
    /// TLS-inspecting proxy. Mounted read-only at /run/nullspace/ca-certificates.crt, with SSL_CERT_FILE,
    /// CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, PIP_CERT, GIT_SSL_CAINFO and NODE_EXTRA_CA_CERTS pointing at it.
    #[arg(long, value_name = "PEM")]
    pub sandbox_ca_bundle: Option<std::path::PathBuf>,
    /// Run runc/crun sandboxes without a user namespace of their own, their root being the host's root (as
    /// before user namespaces), on a host that cannot do them (`nullspace doctor` says whether it can).
    /// Without it such a host refuses to start. Logs a warning.
    #[arg(long)]
    pub allow_host_root: bool,
    /// Do not build built-in template NAME (repeatable): `code-interpreter` (its first build takes minutes
    /// and about 1.5 GiB, which a server where no one runs notebook code can skip) or `desktop` (about
    /// 1 GiB and a minute or two).
    #[arg(long, value_name = "NAME", value_parser = ["code-interpreter", "desktop"])]
    pub without_template: Vec<String>,
    /// Keep N idle sandboxes of built-in template NAME started, shared by every tenant (repeatable;
    /// N = 0 keeps none). A create of that template with default size and network and no envs, cwd or
    /// volumes takes one and answers at once, its kernels already running; other creates start cold.
    /// Each idle sandbox holds its processes' memory (~100 MiB for code-interpreter).
    #[arg(long, value_name = "NAME=N", default_value = "code-interpreter=1", value_parser = crate::commands::server::parse_builtin_pool)]
    pub builtin_warm_pool: Vec<(String, u32)>,
    /// Answer `GET /v1/sandboxes/{id}/desktop/stream` with a raw VNC address (operator-only: the desktop's
    /// VNC server has no password, and the address is reachable by anyone who reaches this host). Off by
    /// default: clients use the managed viewer (`stream/start`), which needs its auth key.
    #[arg(long)]
    pub desktop_raw_vnc: bool,
    /// Seconds a client has to send request headers; also how long an idle keep-alive connection stays open.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Seconds a request body may send nothing while the server waits for it.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// Connections the API listener holds at once (WebSockets included); preview ports together hold as
    /// many more. Connections over the cap are closed at once.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Requests each API key may send: `N/s`, `N/m` or `N/h`; `off` (or 0) for no limit. Past it: 429
    /// `rate_limit_exceeded` with `Retry-After`.
    #[arg(long, value_name = "RATE", default_value = "1000/s", value_parser = parse_rate_limit)]
    pub rate_limit: RateLimitArg,
    /// Requests a key may send at once after a quiet time [default: N of --rate-limit].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: Option<u32>,
    /// Execs and PTYs one sandbox runs at once through the API (foreground execs, exec and PTY streams);
    /// past it: `capacity_exceeded` until one ends.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_execs_per_sandbox: u64,
}

/// `--rate-limit`: a rate, or `None` for no limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitArg(pub Option<nullspace_server::RateLimit>);

fn parse_rate_limit(text: &str) -> Result<RateLimitArg, String> {
    nullspace_server::parse_rate_limit(text).map(RateLimitArg)
}

/// A size in bytes: a number with an optional unit (`KiB`, `MiB`, `GiB`, `TiB`, or decimal `KB`, `MB`…).
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    parse_size::parse_size(text.trim())
        .map_err(|error| format!("{error}; write a size such as 512MiB, 10GiB or 2000000000"))
}

/// `--sandbox-disk`: a size, or no limit at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxDiskArg {
    /// Bytes.
    Size(u64),
    /// `unlimited`.
    Unlimited,
}

/// Parses `--sandbox-disk`: `unlimited`, or a size as [`parse_byte_size`] reads it.
pub fn parse_sandbox_disk(text: &str) -> Result<SandboxDiskArg, String> {
    if text.trim().eq_ignore_ascii_case("unlimited") {
        return Ok(SandboxDiskArg::Unlimited);
    }
    parse_byte_size(text).map(SandboxDiskArg::Size).map_err(|error| format!("{error}, or `unlimited`"))
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
    /// Attach, detach and inspect volumes of a running sandbox.
    #[command(subcommand)]
    Volume(SandboxVolumeCommand),
    /// Run code and manage contexts, artifacts and queued runs in a code-interpreter sandbox.
    #[command(subcommand)]
    Code(CodeCommand),
    /// Screenshots, mouse and keyboard, windows, clipboard, apps, the viewer and recordings of a desktop sandbox.
    #[command(subcommand)]
    Desktop(DesktopCommand),
    /// Upload a local file into a sandbox (streamed; progress on a terminal).
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
    /// At the deadline: pause (hibernate; files kept, resumable) or destroy [server default: destroy].
    #[arg(long, value_enum, value_name = "ACTION")]
    pub on_timeout: Option<OnTimeoutArg>,
    /// Resume the sandbox on its own when a command, file call, PTY or preview traffic reaches it while
    /// it is paused.
    #[arg(long, overrides_with = "no_auto_resume")]
    pub auto_resume: bool,
    /// Leave a paused sandbox paused until it is resumed explicitly (the default).
    #[arg(long)]
    pub no_auto_resume: bool,
    /// Virtual CPUs.
    #[arg(long)]
    pub vcpus: Option<u32>,
    /// Memory limit in MiB.
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// Size limit of the sandbox's disk in MiB [default: the server's --sandbox-disk].
    #[arg(long, value_name = "MIB")]
    pub disk_mb: Option<u32>,
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
    /// Mount a volume (repeatable): ref=<name-or-id>,mount=<absolute-path>[,subpath=<subpath>][,ro=true]
    #[arg(long = "volume", value_name = "SPEC", value_parser = parse_volume_spec)]
    pub volumes: Vec<VolumeMountRequest>,
    #[command(flatten)]
    pub warm_pool: crate::commands::sandbox::WarmPoolArgs,
    #[command(flatten)]
    pub desktop: Box<crate::commands::sandbox::DesktopArgs>,
}

/// What a sandbox does at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeoutActionArg {
    Destroy,
    Hibernate,
}

/// What a sandbox does at its deadline, in `lifecycle.on_timeout` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnTimeoutArg {
    Destroy,
    Pause,
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
    /// Program and arguments, after `--` (required unless --shell is given).
    #[arg(last = true, value_name = "ARGV", required_unless_present = "shell")]
    pub argv: Vec<String>,
}

/// Volumes of a running sandbox (`ATTACHMENT` is an `att_…` id from `list` or `attach`).
#[derive(Debug, Subcommand)]
pub enum SandboxVolumeCommand {
    /// List the sandbox's volume attachments.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
    },
    /// Mount a volume into the running sandbox.
    Attach {
        /// Sandbox id.
        id: String,
        /// ref=<name-or-id>,mount=<absolute-path>[,subpath=<subpath>][,ro=true]
        #[arg(value_name = "SPEC", value_parser = parse_volume_spec)]
        volume: VolumeMountRequest,
    },
    /// Unmount an attachment (the volume's data stays).
    Detach {
        /// Sandbox id.
        id: String,
        /// Attachment id.
        attachment: String,
    },
    /// Probe whether an attachment is mounted.
    Health {
        /// Sandbox id.
        id: String,
        /// Attachment id.
        attachment: String,
    },
    /// Mount an attachment again in place.
    Remount {
        /// Sandbox id.
        id: String,
        /// Attachment id.
        attachment: String,
    },
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

/// When `volume upload` uses a resumable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResumableArg {
    /// Above 8 MiB.
    Auto,
    /// Always (parts in parallel, each checksummed).
    Always,
    /// Never (one streamed request).
    Never,
}

/// Archive format of a directory download URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchiveFormatArg {
    Tar,
}

/// `REF`: a volume id (`vol_…`) or name.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create {
        /// Name, unique among your volumes.
        name: String,
        /// Size limit of the volume's filesystem (e.g. 512MiB, 10GiB, 2GB or bytes) [default: the
        /// server's, unlimited unless it sets `--volume-size`].
        #[arg(long, value_name = "SIZE", value_parser = parse_byte_size)]
        max_size: Option<u64>,
    },
    /// List volumes.
    #[command(visible_alias = "ls")]
    List {
        /// Only these fields, comma-separated (e.g. id,name,mount_count,used_bytes).
        #[arg(long, value_delimiter = ',', value_parser = parse_field)]
        fields: Vec<String>,
    },
    /// Show one volume.
    Get {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Only these fields, comma-separated (e.g. id,status).
        #[arg(long, value_delimiter = ',', value_parser = parse_field)]
        fields: Vec<String>,
    },
    /// Delete a volume (refused while a live sandbox mounts it).
    Delete {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// List the sandboxes mounting a volume (running and paused).
    Attachments {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// List a directory of a volume.
    LsFiles {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Directory.
        #[arg(default_value = "/")]
        path: String,
        /// Levels to descend.
        #[arg(long)]
        depth: Option<u32>,
    },
    /// Print a file's content (`--encoding base64` for binary files).
    Read {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
        /// Output encoding.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
    },
    /// Print a UTF-8 text file exactly (fails on binary content; use `volume download`).
    Cat {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
    },
    /// Write a file from stdin (parents are created).
    Write {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
        /// Encoding of stdin.
        #[arg(long, value_enum, default_value_t = EncodingArg::Utf8)]
        encoding: EncodingArg,
    },
    /// Write several files from JSON: [["/a.txt","a\n"],...], [{"path":..,"content":..}], or {"/a.txt":"a\n"}.
    WriteFiles {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// The JSON, `@FILE` to read it from a file, or `-` for stdin.
        #[arg(value_name = "JSON")]
        files: String,
    },
    /// Show a path's metadata.
    #[command(visible_alias = "stat")]
    Info {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
    },
    /// Say whether a path exists (exit 1 when it does not).
    Exists {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
    },
    /// Create a directory and its parents.
    Mkdir {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Directory to create.
        path: String,
    },
    /// Change a path's permissions.
    Chmod {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
        /// Octal mode, e.g. 0644.
        #[arg(value_parser = parse_mode)]
        mode: String,
    },
    /// Remove a file or directory (recursively).
    Rm {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
    },
    /// Move or rename a path.
    Mv {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Current path.
        old: String,
        /// New path.
        new: String,
    },
    /// Find lines containing PATTERN in the files below PATH.
    Find {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Directory (or file) to search.
        path: String,
        /// Literal text.
        pattern: String,
    },
    /// Find files below PATH whose name matches the glob PATTERN (e.g. "*.bin").
    Search {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Directory to search.
        path: String,
        /// Name glob.
        pattern: String,
    },
    /// Replace every occurrence of OLD with NEW in the given files.
    Replace {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Literal text to replace.
        old: String,
        /// Replacement.
        new: String,
        /// Files to edit.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
        /// Count what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a URL that accepts the file's bytes (PUT, or POST a multipart `file`) without the API key.
    UploadUrl {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
    },
    /// Print a URL that serves the file (or a directory's tar) without the API key.
    DownloadUrl {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        path: String,
        /// Serve a directory as this archive format.
        #[arg(long, value_enum)]
        archive_format: Option<ArchiveFormatArg>,
    },
    /// Print changes below a directory as they happen, until Ctrl-C or --timeout.
    Watch {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Directory to watch.
        path: String,
        /// Watch subdirectories too.
        #[arg(long)]
        recursive: bool,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
    },
    /// Upload a local file or directory (or `-` for stdin) into a volume; progress on a terminal.
    Upload {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Local file or directory, or `-` for stdin.
        local: PathBuf,
        /// Destination path [default: the local name; a trailing `/` appends it]
        remote: Option<String>,
        /// When to use a resumable session (directories always do).
        #[arg(long, value_enum, default_value_t = ResumableArg::Auto)]
        resumable: ResumableArg,
        /// Parts in flight at once (capped by the server).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: Option<u32>,
    },
    /// Download a file, or a directory (extracted, or its tar with --archive); progress on a terminal.
    Download {
        /// Volume id or name.
        #[arg(value_name = "REF")]
        reference: String,
        /// Path in the volume.
        remote: String,
        /// Local destination [default: the remote name (NAME.tar with --archive)]
        local: Option<PathBuf>,
        /// Replace an existing local destination.
        #[arg(long)]
        force: bool,
        /// For a directory, keep the downloaded tar instead of extracting it.
        #[arg(long)]
        archive: bool,
    },
}

/// Parses `KEY=VALUE` (the value may contain `=`).
pub fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

/// One field name of `--fields`.
pub(crate) fn parse_field(raw: &str) -> Result<String, String> {
    let field = raw.trim();
    if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("expected field names such as id,name,status, got {raw:?}"));
    }
    Ok(field.to_owned())
}

/// Parses `ref=<name-or-id>,mount=<absolute-path>[,subpath=<subpath>][,ro=true]`.
pub fn parse_volume_spec(raw: &str) -> Result<VolumeMountRequest, String> {
    const SHAPE: &str = "ref=<name-or-id>,mount=<absolute-path>[,subpath=<subpath>][,ro=true]";
    let mut mount = VolumeMountRequest::default();
    let mut seen: Vec<String> = Vec::new();
    for token in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let Some((key, value)) = token.split_once('=') else {
            return Err(format!("--volume entries look like {SHAPE}; {token:?} has no `=`"));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if seen.contains(&key) {
            return Err(format!("--volume names `{key}` twice"));
        }
        match key.as_str() {
            "ref" => mount.reference = value.to_owned(),
            "mount" => mount.mount_path = value.to_owned(),
            "subpath" if value.is_empty() => return Err("--volume subpath must not be empty".into()),
            "subpath" => mount.subpath = Some(value.to_owned()),
            "ro" => {
                mount.read_only = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "y" => true,
                    "false" | "0" | "no" | "n" => false,
                    _ => return Err(format!("--volume ro must be true or false, got {value:?}")),
                }
            }
            other => return Err(format!("--volume has no field `{other}`; use {SHAPE}")),
        }
        seen.push(key);
    }
    if mount.reference.is_empty() {
        return Err(format!("--volume needs ref=<name-or-id>: {SHAPE}"));
    }
    if !mount.mount_path.starts_with('/') {
        return Err(format!("--volume needs mount=<absolute-path>: {SHAPE}"));
    }
    Ok(mount)
}

/// `stdio`, the only MCP transport `nullspace mcp serve` speaks.
fn parse_transport(raw: &str) -> Result<McpTransport, String> {
    match raw {
        "stdio" => Ok(McpTransport::Stdio),
        other => Err(format!(
            "`nullspace mcp serve` speaks MCP over stdio only, not {other:?}; let your MCP client start \
             `nullspace mcp serve` as a stdio server"
        )),
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
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_byte_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert!(parse_byte_size("lots").unwrap_err().contains("512MiB"));
        let cli = parse(&["volume", "create", "data", "--max-size", "1GiB"]).unwrap();
        let Command::Volume(VolumeCommand::Create { max_size, .. }) = cli.command else { panic!("wrong command") };
        assert_eq!(max_size, Some(1 << 30));
    }

    #[test]
    fn the_sandbox_disk_is_a_size_or_unlimited_and_10gib_by_default() {
        assert_eq!(parse_sandbox_disk("64MiB"), Ok(SandboxDiskArg::Size(64 << 20)));
        assert_eq!(parse_sandbox_disk(" Unlimited "), Ok(SandboxDiskArg::Unlimited));
        assert!(parse_sandbox_disk("big").unwrap_err().contains("or `unlimited`"));
        let Command::Server(args) = parse(&["server"]).unwrap().command else { panic!("wrong command") };
        assert_eq!(args.sandbox_disk, SandboxDiskArg::Size(10 << 30));
        let Command::Server(args) = parse(&["server", "--sandbox-disk", "2GiB"]).unwrap().command else {
            panic!("wrong command")
        };
        assert_eq!(args.sandbox_disk, SandboxDiskArg::Size(2 << 30));
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
    fn volume_specs_parse_like_the_official_cli() {
        let mount = parse_volume_spec("ref=team-data,mount=/data,subpath=/datasets,ro=true").unwrap();
        assert_eq!(
            mount,
            VolumeMountRequest {
                reference: "team-data".into(),
                mount_path: "/data".into(),
                read_only: true,
                subpath: Some("/datasets".into()),
            }
        );
        let plain = parse_volume_spec(" REF=vol_1 , Mount=/mnt ").unwrap();
        assert_eq!((plain.reference.as_str(), plain.mount_path.as_str()), ("vol_1", "/mnt"));
        assert!(!plain.read_only && plain.subpath.is_none());
        assert!(!parse_volume_spec("ref=v,mount=/m,ro=no").unwrap().read_only);
        for bad in [
            "mount=/data",
            "ref=v",
            "ref=v,mount=data",
            "ref=v,mount=/d,ro=maybe",
            "ref=v,mount=/d,host=h1",
            "ref=v,ref=w,mount=/d",
            "ref=v,mount=/d,subpath=",
            "ref=v,mount",
        ] {
            assert!(parse_volume_spec(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn sandbox_create_takes_repeated_volumes() {
        let cli =
            parse(&["sandbox", "create", "--volume", "ref=a,mount=/a", "--volume", "ref=b,mount=/b,ro=true"]).unwrap();
        let Command::Sandbox(SandboxCommand::Create(args)) = cli.command else { panic!("wrong command") };
        assert_eq!(args.volumes.len(), 2);
        assert!(args.volumes[1].read_only);
        assert!(parse(&["sandbox", "create", "--volume", "mount=/a"]).is_err());
    }

    #[test]
    fn volume_commands_follow_the_reference() {
        let cli = parse(&["volume", "list", "--fields", "id,name,mount_count,used_bytes"]).unwrap();
        let Command::Volume(VolumeCommand::List { fields }) = cli.command else { panic!("wrong command") };
        assert_eq!(fields, ["id", "name", "mount_count", "used_bytes"]);
        let cli = parse(&["volume", "replace", "team-data", "old", "new", "/a", "/b", "--dry-run"]).unwrap();
        let Command::Volume(VolumeCommand::Replace { old, new, paths, dry_run, .. }) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!((old.as_str(), new.as_str(), paths.len(), dry_run), ("old", "new", 2, true));
        assert!(parse(&["volume", "replace", "v", "old", "new"]).is_err());
        let cli = parse(&["volume", "upload", "v", "./m.bin", "/m.bin", "--resumable", "always", "--concurrency", "4"])
            .unwrap();
        let Command::Volume(VolumeCommand::Upload { resumable, concurrency, .. }) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!((resumable, concurrency), (ResumableArg::Always, Some(4)));
        assert!(parse(&["volume", "upload", "v", "a", "/a", "--concurrency", "0"]).is_err());
        assert!(matches!(
            parse(&["volume", "stat", "v", "/a"]).unwrap().command,
            Command::Volume(VolumeCommand::Info { .. })
        ));
        assert!(matches!(
            parse(&["volume", "download", "v", "/d", "./d.tar", "--archive", "--json"]).unwrap().command,
            Command::Volume(VolumeCommand::Download { archive: true, .. })
        ));
        assert!(parse(&["volume", "list", "--fields", ","]).is_err());
        assert!(parse(&["volume", "get", "v", "--fields", "id;rm"]).is_err());
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["template", "list", "--api-url", "http://x:1", "--json", "-vv"]).unwrap();
        assert_eq!(cli.global.api_url.as_deref(), Some("http://x:1"));
        assert_eq!(cli.global.verbose, 2);
    }
}

/// `nullspace doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The server's data dir, whose filesystem must support idmapped mounts (default: the server's default).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
}
