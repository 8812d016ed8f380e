//! Errors of the server's entry points, and the error-chain formatter used in logs.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::control::ControlError;
use crate::store::StoreError;

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("creating the data directory {path} failed")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error("store failed")]
    Store(#[from] StoreError),
    /// The node could not start.
    #[error("starting the node failed")]
    Node(#[from] nullspace_node::NodeError),
    /// The reconcile at start failed.
    #[error("reconciling sandboxes at start failed")]
    Reconcile(#[from] ControlError),
    /// The URL signing key could not be read or created.
    #[error("preparing the URL signing key failed")]
    SigningKey(#[from] crate::signing::SigningKeyError),
    /// `--subnet` is not an IPv4 CIDR.
    #[error("--subnet {subnet} is not an IPv4 network such as 10.213.0.0/16")]
    Subnet {
        /// What was given.
        subnet: String,
    },
    /// `--volume-size` cannot be used on this host.
    #[error("--volume-size: {reason}")]
    VolumeSize {
        /// Why.
        reason: String,
    },
    /// A resource or listener setting is invalid.
    #[error("{reason}")]
    Setting {
        /// Which flag and why.
        reason: String,
    },
    /// Listening failed.
    #[error("listening on {address} failed")]
    Listen {
        /// Address.
        address: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// `error: cause: cause…` on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
