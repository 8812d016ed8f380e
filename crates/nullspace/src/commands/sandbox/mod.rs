//! `nullspace sandbox …`: dispatch to one module per verb, and the sandbox line/row shared by several.

pub(crate) mod code;
mod create;
pub(crate) mod desktop;
mod exec;
mod file;
mod get;
mod list;
mod process;
mod pty;
mod state;
mod timeout;

use nullspace_client::types::sandbox::{SandboxInfo, TimeoutAction};

pub use create::{DesktopArgs, WarmPoolArgs};

use crate::cli::{GlobalArgs, SandboxCommand, TimeoutActionArg};
use crate::exit::ExitStatus;

/// Runs a `sandbox` subcommand.
pub async fn run(command: SandboxCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let client = super::client(global)?;
    match command {
        SandboxCommand::Create(args) => create::run(&client, args, global.json).await,
        SandboxCommand::List(args) => list::run(&client, args, global.json).await,
        SandboxCommand::Get { id } => get::get(&client, &id, global.json).await,
        SandboxCommand::Kill { id } => get::kill(&client, &id, global.json).await,
        SandboxCommand::Exec(args) => exec::run(&client, args, global.json).await,
        SandboxCommand::Timeout(command) => timeout::run(&client, command, global.json).await,
        SandboxCommand::File(command) => file::run(&client, command, global.json).await,
        SandboxCommand::Upload { id, local, path } => file::upload(&client, &id, &local, &path, global.json).await,
        SandboxCommand::Process(command) => process::run(&client, command, global.json).await,
        SandboxCommand::Ps { id } => process::list(&client, &id, global.json).await,
        SandboxCommand::Pause { id } => state::pause(&client, &id, global.json).await,
        SandboxCommand::Resume { id } => state::resume(&client, &id, global.json).await,
        SandboxCommand::Pty { id } => pty::run(&client, &id).await,
        SandboxCommand::Fork { id } => state::fork(&client, &id, global.json).await,
        SandboxCommand::Snapshot { id } => state::snapshot(&client, &id, global.json).await,
        SandboxCommand::Volume(command) => super::attachments::run(&client, command, global.json).await,
        SandboxCommand::Code(command) => code::run(&client, command, global.json).await,
        SandboxCommand::Desktop(command) => desktop::run(&client, command, global.json).await,
    }
}

/// Columns of a sandbox in tables.
pub(crate) const HEADERS: [&str; 5] = ["ID", "STATUS", "TEMPLATE", "CREATED", "EXPIRES"];

/// A sandbox as a table row.
pub(crate) fn row(info: &SandboxInfo) -> Vec<String> {
    vec![
        info.id.clone(),
        info.status.as_str().to_owned(),
        info.template.clone(),
        info.created_at.clone(),
        info.expires_at.clone(),
    ]
}

impl From<TimeoutActionArg> for TimeoutAction {
    fn from(arg: TimeoutActionArg) -> Self {
        match arg {
            TimeoutActionArg::Destroy => TimeoutAction::Destroy,
            TimeoutActionArg::Hibernate => TimeoutAction::Hibernate,
        }
    }
}
