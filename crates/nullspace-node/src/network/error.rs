//! Errors of sandbox networking: each variant names the failed operation and carries its context.

use std::path::PathBuf;

/// A networking operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The sandbox's network policy is malformed or unsupported (a client error).
    #[error("invalid network policy: {reason}")]
    InvalidPolicy {
        /// What is wrong, naming the offending entry.
        reason: String,
    },
    /// The network configuration of the node is unusable.
    #[error("invalid network configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A sandbox id or hostname cannot be used to name host resources.
    #[error("invalid {what} {value:?} for sandbox networking")]
    InvalidName {
        /// `sandbox id` or `hostname`.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A host tool (`ip`, `nft`) is not installed.
    #[error("host tool {tool} not found (install iproute2 and nftables)")]
    ToolMissing {
        /// Tool name.
        tool: &'static str,
    },
    /// A host tool could not be started.
    #[error("running {command} failed")]
    Spawn {
        /// The command line.
        command: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A host tool exited unsuccessfully.
    #[error("{command} exited with status {status}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status (-1 when killed by a signal).
        status: i32,
        /// Its trimmed standard error.
        stderr: String,
    },
    /// Every address of the subnet is leased.
    #[error("no free address left in {subnet}")]
    AddressesExhausted {
        /// The sandbox subnet.
        subnet: ipnet::Ipv4Net,
    },
    /// A state file, lease or sysctl could not be read or written.
    #[error("{operation} {path} failed")]
    Io {
        /// What was attempted (`writing`, `creating lease`, ...).
        operation: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Configuring an interface (up, address, route) failed.
    #[error("{operation} {device} failed")]
    Interface {
        /// What was done.
        operation: &'static str,
        /// Interface name.
        device: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Entering a network namespace failed.
    #[error("entering network namespace {path} failed")]
    EnterNamespace {
        /// Namespace path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: nix::Error,
    },
    /// The nftables ruleset could not be parsed.
    #[error("reading nftables table {table} failed")]
    ParseRuleset {
        /// Table name.
        table: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

impl NetworkError {
    /// Whether the caller sent something invalid (map to HTTP 400) rather than the host failing.
    pub fn is_client_error(&self) -> bool {
        matches!(self, NetworkError::InvalidPolicy { .. } | NetworkError::InvalidName { .. })
    }

    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| NetworkError::Io { operation, path, source }
    }
}
