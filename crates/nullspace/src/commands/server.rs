//! `nullspace server`: run the API server and the local node until SIGINT/SIGTERM.

use nullspace_server::ServerOptions;

use crate::cli::{RuntimeArg, ServerArgs};
use crate::exit::ExitStatus;

/// Runs the server in the foreground.
pub async fn run(args: ServerArgs) -> anyhow::Result<ExitStatus> {
    let runtime = match args.runtime {
        RuntimeArg::Auto => "auto",
        RuntimeArg::Runc => "runc",
        RuntimeArg::Crun => "crun",
        RuntimeArg::Runsc => "runsc",
    };
    let options = ServerOptions {
        listen: args.listen,
        data_dir: super::data_dir(args.data_dir)?,
        runtime: runtime.into(),
        preview_domain: args.preview_domain,
        bridge: args.bridge,
        subnet: args.subnet,
        volume_size: args.volume_size,
    };
    nullspace_server::run(options).await?;
    Ok(ExitStatus::Success)
}
