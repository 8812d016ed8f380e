//! The contract between the node and `nullspace-guestd`: where the guest listens, the boot configuration
//! the node hands it, and the protocol version they agree on.
//!
//! Beyond this boot contract, guestd serves the sandbox-scoped part of the public protocol itself (the
//! routes under `/v1/sandboxes/{id}/…` with the prefix removed: `/exec`, `/processes`, `/files/…`,
//! `/file`, `/ws`), so the server relays requests without re-implementing process or file logic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the guest protocol; the node refuses a guest that reports another one.
pub const GUEST_PROTOCOL_VERSION: u32 = 1;

/// Directory inside the sandbox where the node bind-mounts the guest's control directory.
pub const GUEST_CONTROL_DIR: &str = "/run/nullspace";

/// File name of the guest's unix socket inside [`GUEST_CONTROL_DIR`].
pub const GUEST_SOCKET_NAME: &str = "guest.sock";

/// Marker file the guest writes into [`GUEST_CONTROL_DIR`] once it has closed its socket and every
/// connection on SIGUSR1 (before a memory checkpoint: gVisor cannot save a host-bound socket). SIGUSR2
/// makes it listen again (after the restore).
pub const GUEST_QUIESCED_NAME: &str = "quiesced";

/// File name of the boot configuration inside [`GUEST_CONTROL_DIR`].
pub const GUEST_CONFIG_NAME: &str = "config.json";

/// Path of the guest daemon binary inside the sandbox.
pub const GUEST_BINARY_PATH: &str = "/run/nullspace/nullspace-guestd";

/// The sandbox's environment as a JSON object, written by guestd at boot and whenever the host changes it
/// (`PUT /config`), for services inside the sandbox that started before it changed (the code
/// interpreter's kernels). Readable by root only.
pub const GUEST_ENVS_PATH: &str = "/run/nullspace/envs.json";

/// Boot configuration written by the node before the sandbox starts, read once by guestd.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuestConfig {
    /// Sandbox id (for logs).
    pub sandbox_id: String,
    /// Environment every command sees (template envs and create envs, in that order).
    pub envs: BTreeMap<String, String>,
    /// Default working directory of commands and of relative file paths; created at boot.
    pub cwd: String,
    /// Default user of commands (`root` unless the template says otherwise).
    pub default_user: String,
}

/// Body of `PUT /config` on the guest socket (host only, never relayed from clients): the sandbox's new
/// environment and default working directory, for every later command and login shell. A warm-pool
/// sandbox takes the settings of the create that claims it this way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestConfigUpdate {
    /// Environment every command sees from now on (template envs and create envs, in that order).
    pub envs: BTreeMap<String, String>,
    /// Default working directory from now on; created if missing.
    pub cwd: String,
}

/// Answer of `GET /health` on the guest socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestHealth {
    /// Must equal [`GUEST_PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Sandbox id from the boot configuration.
    pub sandbox_id: String,
}
