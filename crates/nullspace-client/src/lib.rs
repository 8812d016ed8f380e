//! Rust client of the Nullspace HTTP and WebSocket API, used by the `nullspace` CLI and the end-to-end
//! tests. Configuration follows the official Python client (see [`config`]).
#![warn(missing_docs)]

mod client;
mod code;
pub mod config;
mod desktop;
mod error;
mod exec;
mod files;
mod pty;
mod sandboxes;
mod snapshots;
mod sse;
mod template_types;
mod templates;
mod transfer;
mod volumes;
mod warm_pools;
mod watch;
mod ws;

pub use client::Client;
pub use code::CodeEventStream;
pub use config::{ClientConfig, ConfigSources, DEFAULT_BASE_URL};
pub use desktop::{ButtonAction, Screenshot};
pub use error::ClientError;
pub use files::{Files, FilesOwner, UploadUrl};
pub use pty::{PtyEvent, PtyReader, PtySession, PtyWriter};
pub use sandboxes::{new_idempotency_key, Health, ListSandboxes};
pub use sse::SseStream;
pub use template_types::{
    AliasInfo, BuildInfo, BuildLogEntry, BuildPage, BuildStatus, FailureDetail, NameClaim, NamespaceInfo,
    PreflightAnswer, PreflightFile, TagInfo, ValidateIssue, ValidateResult, WarmPoolCounts, WarmPoolInfo,
};
pub use templates::{build_request_json, BuildLogStream, LocalContextEntry};
pub use transfer::{
    DownloadOutcome, ProgressFn, UploadMode, UploadOptions, UploadOutcome, UploadTransport, DIRECT_UPLOAD_MAX_BYTES,
};
pub use warm_pools::{ListWarmPools, WarmPoolAction, WarmPoolResources, WarmPoolSpec};
pub use watch::{FileEvent, FileWatch};
pub use ws::{ExecEvent, ExecStream};

/// The wire types the client speaks, re-exported for convenience.
pub use nullspace_types as types;
