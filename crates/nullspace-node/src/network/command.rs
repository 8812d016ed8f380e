//! Runs the host tools (`ip`, `nft`) with optional stdin, turning failures into [`NetworkError`]s that
//! carry the command line and its stderr.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use tokio::io::AsyncWriteExt;

use super::error::NetworkError;

/// A host tool this module drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// iproute2's `ip`.
    Ip,
    /// nftables' `nft`.
    Nft,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ip => "ip",
            Tool::Nft => "nft",
        }
    }

    /// Absolute path of the tool: `$PATH` first, then the sbin directories a non-login shell may lack.
    pub(crate) fn path(self) -> Result<&'static Path, NetworkError> {
        static IP: OnceLock<Option<PathBuf>> = OnceLock::new();
        static NFT: OnceLock<Option<PathBuf>> = OnceLock::new();
        let cell = match self {
            Tool::Ip => &IP,
            Tool::Nft => &NFT,
        };
        cell.get_or_init(|| find(self.name())).as_deref().ok_or(NetworkError::ToolMissing { tool: self.name() })
    }
}

fn find(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let from_env = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let fallback = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"];
    from_env
        .into_iter()
        .chain(fallback.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn describe(tool: Tool, args: &[&str]) -> String {
    std::iter::once(tool.name()).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

fn check(tool: Tool, args: &[&str], output: Output) -> Result<String, NetworkError> {
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(NetworkError::Command {
        command: describe(tool, args),
        status: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

fn command(tool: Tool, args: &[&str], stdin: bool) -> Result<std::process::Command, NetworkError> {
    let mut cmd = std::process::Command::new(tool.path()?);
    cmd.args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd)
}

/// Runs `tool args`, feeding `stdin` when given; returns stdout.
pub(crate) async fn run(tool: Tool, args: &[&str], stdin: Option<&str>) -> Result<String, NetworkError> {
    let spawn_error = |source| NetworkError::Spawn { command: describe(tool, args), source };
    let mut cmd = tokio::process::Command::from(command(tool, args, stdin.is_some())?);
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(spawn_error)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await.map_err(spawn_error)?;
    }
    let output = child.wait_with_output().await.map_err(spawn_error)?;
    check(tool, args, output)
}

/// Blocking variant of [`run`], for [`super::Network::new`] and test cleanup.
pub(crate) fn run_blocking(tool: Tool, args: &[&str], stdin: Option<&str>) -> Result<String, NetworkError> {
    use std::io::Write;
    let spawn_error = |source| NetworkError::Spawn { command: describe(tool, args), source };
    let mut child = command(tool, args, stdin.is_some())?.spawn().map_err(spawn_error)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    check(tool, args, output)
}
