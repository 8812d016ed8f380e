//! What a template build will do, before it does anything: the build request (declarative steps or a
//! Dockerfile) turned into stages of operations the engine runs in order. Pure: no I/O, so validation,
//! `plan` and the engine all read the same thing.

use std::collections::BTreeMap;

use nullspace_types::template_api::{BuildRequest, CopyItem, Step};
use serde::Serialize;

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "ref", rename_all = "snake_case")]
pub enum Base {
    /// A registry image or a template of this server (decided when the build resolves it).
    Image(String),
    /// An earlier stage of the same build.
    Stage(usize),
    /// Nothing (`FROM scratch`).
    Scratch,
}

/// How a command runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `/bin/sh -c <script>`.
    Shell(String),
    /// The argument vector itself.
    Exec(Vec<String>),
}

/// Where copied files come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyFrom {
    /// The build context the client uploaded.
    Context,
    /// The final filesystem of an earlier stage.
    Stage(usize),
}

/// One copy: sources to a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Context paths (or absolute paths in the stage), possibly globs in Dockerfiles.
    pub sources: Vec<String>,
    /// Destination; a directory when it ends with `/` or there are several sources.
    pub dst: String,
    /// Owner (`user`, `user:group`, uids).
    pub owner: Option<String>,
    /// Octal mode.
    pub mode: Option<String>,
    /// `ADD`: tar archives among the sources are unpacked into the destination.
    pub extract_archives: bool,
}

/// One operation of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Runs a command; its writes become a layer.
    Run {
        /// The command.
        command: Command,
        /// User for this command only (the stage's user otherwise).
        user: Option<String>,
        /// What the log shows.
        display: String,
        /// Variables for this command only (a Dockerfile's build args in scope).
        envs: Vec<(String, String)>,
    },
    /// Copies files; they become a layer.
    Copy {
        /// Source of the files.
        from: CopyFrom,
        /// The copies.
        items: Vec<Copy>,
        /// Bypass the blob and layer caches.
        force_upload: bool,
        /// What the log shows.
        display: String,
    },
    /// Sets environment variables of later operations and of the template.
    Env(Vec<(String, String)>),
    /// Sets the working directory of later operations (created) and of the template.
    Workdir(String),
    /// Sets the user of later operations and of the template.
    User(String),
    /// Every later operation bypasses the layer cache.
    SkipCache,
    /// Image metadata (no layer): start command, healthcheck, labels, ports, volumes.
    Meta(Meta),
}

/// Metadata a Dockerfile declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Meta {
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `HEALTHCHECK` (`None`: `HEALTHCHECK NONE`).
    Healthcheck(Option<Healthcheck>),
    /// `LABEL`.
    Labels(Vec<(String, String)>),
    /// `EXPOSE`.
    Expose(Vec<String>),
    /// `VOLUME`.
    Volumes(Vec<String>),
}

/// A healthcheck as Docker declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `["CMD-SHELL", "…"]` or `["CMD", …]`.
    pub test: Vec<String>,
    /// Between checks.
    pub interval_ns: Option<u64>,
    /// Per check.
    pub timeout_ns: Option<u64>,
    /// Before the first check counts.
    pub start_period_ns: Option<u64>,
    /// Failures before unhealthy.
    pub retries: Option<u32>,
}

/// One stage: a base and operations on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// `AS name` in Dockerfiles.
    pub name: Option<String>,
    /// Where it starts.
    pub base: Base,
    /// What it does, in order.
    pub ops: Vec<Op>,
}

/// A whole build: its stages (the last one is the template) and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    /// Stages in order.
    pub stages: Vec<Stage>,
    /// `declarative`, `dockerfile`, `oci_import` or `template_base`.
    pub source_type: &'static str,
    /// Things the user should know (unused build args, deprecated instructions).
    pub warnings: Vec<String>,
    /// Per stage: whether the target needs it (stages nothing uses are not built).
    pub needed: Vec<bool>,
    /// The parsed Dockerfile, whose stages the engine plans again against their real base.
    #[serde(skip)]
    pub dockerfile: Option<nullspace_node::images::dockerfile::Dockerfile>,
}

impl BuildPlan {
    /// The stage the template is made of.
    #[cfg(test)]
    pub fn target(&self) -> &Stage {
        self.stages.last().expect("a plan has at least one stage")
    }

    /// Number of operations that write a layer, over all stages (the `total_steps` of the log).
    pub fn layer_ops(&self) -> usize {
        let needed = self.stages.iter().zip(&self.needed).filter(|(_, needed)| **needed);
        needed.flat_map(|(stage, _)| &stage.ops).filter(|op| op.writes_layer()).count()
    }
}

impl Op {
    /// Whether the operation runs in a build sandbox and produces a layer.
    pub fn writes_layer(&self) -> bool {
        matches!(self, Op::Run { .. } | Op::Copy { .. } | Op::Workdir(_))
    }
}

/// A request that cannot be planned: one message per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<PlanError>);

/// One problem of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanError {
    /// Stable code (`invalid_request`, `dockerfile_invalid`).
    pub code: &'static str,
    /// What is wrong and where.
    pub message: String,
}

impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let messages: Vec<&str> = self.0.iter().map(|error| error.message.as_str()).collect();
        f.write_str(&messages.join("; "))
    }
}

fn invalid(message: impl Into<String>) -> PlanError {
    PlanError { code: "invalid_request", message: message.into() }
}

/// Plans `request`: a Dockerfile through the Dockerfile front end, otherwise the base and its steps.
pub fn plan(request: &BuildRequest) -> Result<BuildPlan, PlanErrors> {
    match (&request.base_image, &request.dockerfile) {
        (Some(_), Some(_)) => Err(PlanErrors(vec![invalid("give either base_image or dockerfile, not both")])),
        (_, Some(dockerfile)) => {
            let mut plan = super::build_dockerfile::plan(dockerfile, &request.build_envs)?;
            // Declarative steps sent beside a Dockerfile run after it, on its last stage.
            let extra = declarative_ops(&request.steps).map_err(PlanErrors)?;
            plan.stages.last_mut().expect("a plan has at least one stage").ops.extend(extra);
            Ok(plan)
        }
        (base, None) => {
            let base = base.clone().filter(|b| !b.trim().is_empty()).unwrap_or_else(|| "nullspace/base".to_owned());
            let ops = declarative_ops(&request.steps).map_err(PlanErrors)?;
            let source_type = if !ops.is_empty() {
                "declarative"
            } else if is_template_ref(&base) {
                "template_base"
            } else {
                "oci_import"
            };
            Ok(BuildPlan {
                stages: vec![Stage { name: None, base: Base::Image(base), ops }],
                source_type,
                warnings: vec![],
                needed: vec![true],
                dockerfile: None,
            })
        }
    }
}

/// Whether `reference` names a template of this server rather than a registry image: `nullspace/…`,
/// `tmpl_…` and `name:tb_…`. Other refs (`user/app:1`) are tried as templates first when they resolve.
pub fn is_template_ref(reference: &str) -> bool {
    reference.starts_with("nullspace/")
        || reference.starts_with("tmpl_")
        || reference.rsplit_once(':').is_some_and(|(_, tag)| tag.starts_with("tb_"))
}

/// The operations of declarative steps, or every problem found in them.
fn declarative_ops(steps: &[Step]) -> Result<Vec<Op>, Vec<PlanError>> {
    let mut ops = Vec::new();
    let mut errors = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        match step_op(step) {
            Ok(op) => ops.push(op),
            Err(message) => errors.push(invalid(format!("step {index}: {message}"))),
        }
    }
    if errors.is_empty() {
        Ok(ops)
    } else {
        Err(errors)
    }
}

fn step_op(step: &Step) -> Result<Op, String> {
    let run =
        |script: String| Op::Run { display: script.clone(), command: Command::Shell(script), user: None, envs: vec![] };
    Ok(match step {
        Step::AptInstall { packages } => {
            let packages = package_list(packages)?;
            run(format!(
                "export DEBIAN_FRONTEND=noninteractive && apt-get update && \
                 apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
            ))
        }
        Step::PipInstall { packages, g } => {
            let packages = package_list(packages)?;
            let scope = if g.unwrap_or(true) { "" } else { "--user " };
            // Debian marks its Python externally managed (PEP 668); a template build is the system's owner.
            run(format!("PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir {scope}{packages}"))
        }
        Step::NpmInstall { packages, g } => {
            let packages = package_list(packages)?;
            let global = if g.unwrap_or(false) { "-g " } else { "" };
            run(format!("npm install {global}{packages}"))
        }
        Step::BunInstall { packages, g } => {
            let packages = package_list(packages)?;
            let global = if g.unwrap_or(false) { "-g " } else { "" };
            run(format!("bun add {global}{packages}"))
        }
        Step::Run { command, user } => {
            if command.trim().is_empty() {
                return Err("run needs a command".into());
            }
            Op::Run {
                command: Command::Shell(command.clone()),
                user: user.clone(),
                display: command.clone(),
                envs: vec![],
            }
        }
        Step::SkipCache {} => Op::SkipCache,
        Step::Copy(item) => copy_op(std::slice::from_ref(item))?,
        Step::CopyItems { items } => copy_op(items)?,
        Step::GitClone { url, path, branch, depth } => {
            if url.trim().is_empty() {
                return Err("git_clone needs a url".into());
            }
            let mut script = String::from("git clone");
            if let Some(branch) = branch {
                script.push_str(&format!(" --branch {}", quote(branch)));
            }
            if let Some(depth) = depth {
                script.push_str(&format!(" --depth {depth}"));
            }
            let path = path.clone().unwrap_or_else(|| "/workspace".to_owned());
            script.push_str(&format!(" -- {} {}", quote(url), quote(&path)));
            run(script)
        }
        Step::Workdir { path } => Op::Workdir(absolute(path, "workdir")?),
        Step::User { user } => {
            if user.trim().is_empty() {
                return Err("user needs a user name".into());
            }
            Op::User(user.clone())
        }
        Step::Remove { path, recursive, force } => {
            let flags = format!("{}{}", if *recursive { "r" } else { "" }, if *force { "f" } else { "" });
            let flags = if flags.is_empty() { String::new() } else { format!("-{flags} ") };
            run(format!("rm {flags}-- {}", quote(&absolute(path, "remove")?)))
        }
        Step::Rename { src, dst, force } => {
            let (src, dst) = (quote(&absolute(src, "rename")?), quote(&absolute(dst, "rename")?));
            if *force {
                run(format!("mv -f -- {src} {dst}"))
            } else {
                run(format!("if [ -e {dst} ]; then echo \"rename: {dst} exists (use force)\" >&2; exit 1; fi; mv -- {src} {dst}"))
            }
        }
        Step::MakeDir { path, mode } => {
            let mode = match mode {
                Some(mode) => format!("-m {} ", octal(mode)?),
                None => String::new(),
            };
            run(format!("mkdir -p {mode}-- {}", quote(&absolute(path, "make_dir")?)))
        }
        Step::MakeSymlink { target, path } => {
            if target.is_empty() {
                return Err("make_symlink needs a target".into());
            }
            run(format!("ln -sfn -- {} {}", quote(target), quote(&absolute(path, "make_symlink")?)))
        }
    })
}

fn copy_op(items: &[CopyItem]) -> Result<Op, String> {
    if items.is_empty() {
        return Err("copy_items needs at least one item".into());
    }
    let mut copies = Vec::new();
    let mut force_upload = false;
    for item in items {
        let sources = item.all_sources();
        if sources.is_empty() {
            return Err("copy needs at least one source".into());
        }
        if item.dst.trim().is_empty() {
            return Err("copy needs a destination".into());
        }
        for source in &sources {
            super::build_context::clean_context_path(source).map_err(|e| format!("copy source {source:?}: {e}"))?;
        }
        let mode = item.mode.as_deref().map(octal).transpose()?;
        force_upload |= item.force_upload.unwrap_or(false);
        copies.push(Copy { sources, dst: item.dst.clone(), owner: item.user.clone(), mode, extract_archives: false });
    }
    let display = copies
        .iter()
        .map(|copy| format!("COPY {} {}", copy.sources.join(" "), copy.dst))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Op::Copy { from: CopyFrom::Context, items: copies, force_upload, display })
}

fn package_list(packages: &[String]) -> Result<String, String> {
    if packages.is_empty() {
        return Err("no packages given".into());
    }
    if let Some(bad) = packages.iter().find(|p| p.trim().is_empty() || p.starts_with('-')) {
        return Err(format!("package {bad:?} is not a package name"));
    }
    Ok(packages.iter().map(|p| quote(p)).collect::<Vec<_>>().join(" "))
}

fn absolute(path: &str, step: &str) -> Result<String, String> {
    if path.starts_with('/') {
        Ok(path.to_owned())
    } else {
        Err(format!("{step} needs an absolute path, got {path:?}"))
    }
}

/// Validates an octal mode (`0644`, `755`) and returns it as given.
pub fn octal(mode: &str) -> Result<String, String> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        Ok(digits.to_owned())
    } else {
        Err(format!("mode {mode:?} is not an octal mode like 0644"))
    }
}

/// Quotes `value` for `/bin/sh`.
pub fn quote(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,%".contains(&b)) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The environment a Dockerfile's or image's `KEY=VALUE` list gives, later entries winning.
pub fn env_map(entries: &[String]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> BuildRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn declarative_steps_become_operations_in_order() {
        let plan = plan(&request(serde_json::json!({
            "base_image": "debian:stable-slim",
            "steps": [
                {"action": "apt_install", "packages": ["curl", "git"]},
                {"action": "workdir", "path": "/app"},
                {"action": "user", "user": "nobody"},
                {"action": "run", "command": "echo hi > x", "user": "root"},
                {"action": "skip_cache"},
                {"action": "copy", "sources": ["builder-context/step-5/src-0/a.txt"], "dst": "/app/", "mode": "0640"},
                {"action": "remove", "path": "/tmp/x", "recursive": true, "force": true},
                {"action": "make_symlink", "target": "/app", "path": "/srv/app"}
            ]
        })))
        .unwrap();
        assert_eq!(plan.source_type, "declarative");
        let ops = &plan.target().ops;
        assert_eq!(ops.len(), 8);
        assert!(
            matches!(&ops[0], Op::Run { command: Command::Shell(s), .. } if s.contains("apt-get install -y --no-install-recommends curl git"))
        );
        assert_eq!(ops[1], Op::Workdir("/app".into()));
        assert_eq!(ops[2], Op::User("nobody".into()));
        assert!(matches!(&ops[3], Op::Run { user: Some(u), .. } if u == "root"));
        assert_eq!(ops[4], Op::SkipCache);
        assert!(matches!(&ops[5], Op::Copy { items, .. } if items[0].mode.as_deref() == Some("0640")));
        assert!(matches!(&ops[6], Op::Run { command: Command::Shell(s), .. } if s == "rm -rf -- /tmp/x"));
        assert_eq!(plan.layer_ops(), 6);
    }

    #[test]
    fn a_base_alone_is_an_import_or_a_template_base() {
        let import = plan(&request(serde_json::json!({"base_image": "debian:stable-slim"}))).unwrap();
        assert_eq!(import.source_type, "oci_import");
        let template = plan(&request(serde_json::json!({"base_image": "nullspace/base"}))).unwrap();
        assert_eq!(template.source_type, "template_base");
        let default = plan(&request(serde_json::json!({}))).unwrap();
        assert_eq!(default.target().base, Base::Image("nullspace/base".into()));
    }

    #[test]
    fn every_bad_step_is_reported_with_its_index() {
        let errors = plan(&request(serde_json::json!({
            "base_image": "x",
            "steps": [
                {"action": "apt_install", "packages": []},
                {"action": "run", "command": "true"},
                {"action": "make_dir", "path": "relative"},
                {"action": "copy", "sources": ["../etc/passwd"], "dst": "/x"},
                {"action": "make_dir", "path": "/d", "mode": "999"}
            ]
        })))
        .unwrap_err();
        let messages: Vec<&str> = errors.0.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].starts_with("step 0:"));
        assert!(messages[1].starts_with("step 2:"));
        assert!(messages[2].starts_with("step 3:"));
        assert!(messages[3].contains("octal"));
    }

    #[test]
    fn both_bases_are_refused() {
        let errors = plan(&request(serde_json::json!({"base_image": "x", "dockerfile": "FROM x"}))).unwrap_err();
        assert!(errors.to_string().contains("not both"));
    }

    #[test]
    fn shell_quoting_survives_sh() {
        for value in ["plain", "with space", "it's", "$(touch /tmp/pwned)", "a\"b", ""] {
            let out = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", quote(value))).output();
            assert_eq!(String::from_utf8(out.unwrap().stdout).unwrap(), value);
        }
    }

    #[test]
    fn template_refs_are_recognised() {
        assert!(is_template_ref("nullspace/base"));
        assert!(is_template_ref("tmpl_abc"));
        assert!(is_template_ref("app:tb_123"));
        assert!(!is_template_ref("debian:stable-slim"));
        assert!(!is_template_ref("127.0.0.1:5000/app:1"));
    }
}
