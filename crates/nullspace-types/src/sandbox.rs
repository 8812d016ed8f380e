//! Sandbox objects on the wire: create requests, `SandboxInfo`, list pages and timeouts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle status of a sandbox as reported to clients.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxStatus {
    /// Being created; exec and files are not usable yet.
    Creating,
    /// Running; exec and files are usable.
    Running,
    /// Saved and released; resumable.
    Paused,
    /// Gone for good.
    Destroyed,
    /// Failed; the message is in the lifecycle events.
    Error,
}

impl SandboxStatus {
    /// The status string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Destroyed => "destroyed",
            Self::Error => "error",
        }
    }

    /// Parses the wire string.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "creating" => Self::Creating,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "destroyed" => Self::Destroyed,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// Resources of a sandbox.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Virtual CPUs (CPU quota in whole cores).
    pub vcpus: u32,
    /// Memory limit in MiB.
    pub memory_mb: u32,
}

/// What a sandbox does when its deadline passes.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutAction {
    /// Destroy the sandbox (the default).
    #[default]
    Destroy,
    /// Hibernate it (save state, release resources).
    Hibernate,
}

impl TimeoutAction {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Hibernate => "hibernate",
        }
    }

    /// Parses the wire string.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "destroy" => Some(Self::Destroy),
            "hibernate" => Some(Self::Hibernate),
            _ => None,
        }
    }

    /// The same choice in the `lifecycle.on_timeout` vocabulary.
    pub fn on_timeout(self) -> OnTimeout {
        match self {
            Self::Destroy => OnTimeout::Destroy,
            Self::Hibernate => OnTimeout::Pause,
        }
    }
}

/// `lifecycle.on_timeout`: the client's preferred spelling of [`TimeoutAction`] (`pause` = `hibernate`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// Destroy the sandbox (the default).
    #[default]
    Destroy,
    /// Pause (hibernate) it: its files are kept and it can be resumed.
    Pause,
}

impl OnTimeout {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destroy => "destroy",
            Self::Pause => "pause",
        }
    }

    /// The same choice as a [`TimeoutAction`].
    pub fn timeout_action(self) -> TimeoutAction {
        match self {
            Self::Destroy => TimeoutAction::Destroy,
            Self::Pause => TimeoutAction::Hibernate,
        }
    }
}

/// The `lifecycle` object of a create request (and of the timeout route).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleRequest {
    /// What happens at the deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<OnTimeout>,
}

/// The `lifecycle` object of `SandboxInfo`: what happens at the deadline and whether the sandbox wakes
/// when it is used while paused.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleInfo {
    /// What happens at the deadline (the same as `timeout_action`, in the `lifecycle` vocabulary).
    pub on_timeout: OnTimeout,
    /// Whether an SDK call or preview traffic resumes the sandbox when it is paused.
    pub auto_resume: bool,
}

/// Body of `POST /v1/sandboxes`. Unknown fields are ignored and `null` means absent, as the client sends
/// explicit nulls for unset optionals.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateSandboxRequest {
    /// Template reference (`base` when absent).
    pub template: Option<String>,
    /// Virtual CPUs.
    pub vcpus: Option<u32>,
    /// Memory in MiB.
    pub memory_mb: Option<u32>,
    /// Size limit of the sandbox's writable disk in MiB (the server's `--sandbox-disk` when absent; left
    /// out of the body when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u32>,
    /// Lifetime in milliseconds from now.
    pub timeout_ms: Option<u64>,
    /// What happens at the deadline.
    pub timeout_action: Option<TimeoutAction>,
    /// Environment variables visible to every command.
    pub envs: Option<BTreeMap<String, String>>,
    /// Free-form metadata; values keep their JSON types.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Default working directory (created if missing).
    pub cwd: Option<String>,
    /// Whether the sandbox may reach the internet.
    pub internet_access: Option<bool>,
    /// Egress allow and deny lists.
    pub network: Option<NetworkRequest>,
    /// Snapshot to start from instead of a template.
    pub snapshot_id: Option<String>,
    /// Volumes to mount.
    #[serde(default)]
    pub volumes: Option<Vec<crate::volume::VolumeMountRequest>>,
    /// Take a ready instance of a template warm pool (left out of the body when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolCheckoutRequest>,
    /// Settings of the X server (template `desktop` only; left out of the body when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<DesktopSettings>,
    /// Resume the sandbox when it is used while paused (left out of the body when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resume: Option<bool>,
    /// `{"on_timeout": "destroy" | "pause"}`, the client's spelling of `timeout_action` (left out of the
    /// body when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleRequest>,
}

/// The `desktop` object of a create request: how the desktop template's X server runs. Absent settings
/// take the server's defaults (display `:1`, 1920×1080, 96 dpi).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesktopSettings {
    /// Screen size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Dots per inch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpi: Option<u32>,
    /// X display name such as `:1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A screen size: `{"width": 1280, "height": 800}` on the wire (the text `"1280x800"` is read too).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ResolutionWire")]
pub struct Resolution {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

/// The accepted spellings of a [`Resolution`].
#[derive(Deserialize)]
#[serde(untagged)]
enum ResolutionWire {
    Object { width: u32, height: u32 },
    Text(String),
}

impl TryFrom<ResolutionWire> for Resolution {
    type Error = String;

    fn try_from(wire: ResolutionWire) -> Result<Self, Self::Error> {
        match wire {
            ResolutionWire::Object { width, height } => Ok(Resolution { width, height }),
            ResolutionWire::Text(text) => text.parse(),
        }
    }
}

impl std::str::FromStr for Resolution {
    type Err = String;

    /// `WIDTHxHEIGHT`, e.g. `1280x800`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("resolution {text:?} must look like 1280x800");
        let (width, height) = text.trim().split_once(['x', 'X']).ok_or_else(invalid)?;
        let number = |part: &str| part.parse::<u32>().ok().filter(|_| part.bytes().all(|b| b.is_ascii_digit()));
        Ok(Resolution { width: number(width).ok_or_else(invalid)?, height: number(height).ok_or_else(invalid)? })
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// The `warm_pool` object of a create request: which pool, and what to do on a miss.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WarmPoolCheckoutRequest {
    /// Pool id (`twp_…`); required unless `mode` is `bypass`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `prefer` (cold create on a miss, the default), `require` (`warm_pool_unavailable` on a miss) or
    /// `bypass` (always a cold create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// How long to wait for a ready instance, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The `network` object of a create request: CIDRs or addresses the sandbox may or may not reach.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkRequest {
    /// Destinations allowed (an allowlist when non-empty).
    pub allow_out: Option<Vec<String>>,
    /// Destinations denied.
    pub deny_out: Option<Vec<String>>,
}

/// `SandboxInfo`, the object every sandbox route answers with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// `sb_…` id.
    pub id: String,
    /// Current status.
    pub status: SandboxStatus,
    /// Resources.
    pub config: SandboxConfig,
    /// Template reference exactly as requested.
    pub template: String,
    /// Metadata given at create.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Default working directory.
    pub cwd: String,
    /// When the sandbox was created (RFC 3339).
    pub created_at: String,
    /// When it started running (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Lifetime in milliseconds, as last set.
    pub timeout_ms: u64,
    /// Deadline (RFC 3339).
    pub timeout_at: String,
    /// Same as `timeout_at` (the client checks they are equal).
    pub expires_at: String,
    /// What happens at the deadline.
    pub timeout_action: TimeoutAction,
    /// The same deadline behaviour in the client's `lifecycle` vocabulary, and `auto_resume`.
    #[serde(default)]
    pub lifecycle: LifecycleInfo,
    /// Whether an SDK call or preview traffic resumes the sandbox when it is paused.
    #[serde(default)]
    pub auto_resume: bool,
    /// Set while paused: the snapshot that holds its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
}

/// A page of `GET /v1/sandboxes`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxPage {
    /// Sandboxes on this page.
    pub items: Vec<SandboxInfo>,
    /// Token for the next page, if any.
    pub next_token: Option<String>,
    /// Whether another page exists.
    pub has_next: bool,
}

/// Body of `POST /v1/sandboxes/{id}/timeout`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SetTimeoutRequest {
    /// New lifetime in milliseconds from now.
    pub timeout_ms: Option<u64>,
    /// New timeout action, if changed.
    pub timeout_action: Option<TimeoutAction>,
    /// `{"on_timeout": …}`, the same change in the client's `lifecycle` vocabulary (left out when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleRequest>,
}

/// One template (moved to `template_wire`; kept here for existing users).
pub use crate::template_wire::TemplateInfo;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_accepts_explicit_nulls_and_unknown_fields() {
        let body = r#"{"template":"base","vcpus":2,"memory_mb":512,"timeout_ms":300000,"envs":{},"metadata":{"n":1},
            "network":null,"cwd":null,"internet_access":true,"auto_resume":false,"timeout_action":null}"#;
        let request: CreateSandboxRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.template.as_deref(), Some("base"));
        assert_eq!(request.cwd, None);
        assert_eq!(request.metadata.unwrap()["n"], serde_json::json!(1));
        assert_eq!(request.auto_resume, Some(false));
    }

    #[test]
    fn lifecycle_reads_the_client_spelling() {
        let body = r#"{"template":"base","auto_resume":true,"lifecycle":{"on_timeout":"pause"}}"#;
        let request: CreateSandboxRequest = serde_json::from_str(body).unwrap();
        let on_timeout = request.lifecycle.unwrap().on_timeout.unwrap();
        assert_eq!(on_timeout.timeout_action(), TimeoutAction::Hibernate);
        assert_eq!(TimeoutAction::Hibernate.on_timeout(), OnTimeout::Pause);
        assert!(serde_json::from_str::<LifecycleRequest>(r#"{"on_timeout":"hibernate"}"#).is_err());
        let plain = serde_json::to_string(&CreateSandboxRequest::default()).unwrap();
        assert!(!plain.contains("lifecycle") && !plain.contains("auto_resume"), "{plain}");
    }

    #[test]
    fn desktop_settings_read_both_resolution_spellings() {
        let body =
            r#"{"template":"desktop","desktop":{"resolution":{"width":1280,"height":800},"dpi":120,"display":":2"}}"#;
        let request: CreateSandboxRequest = serde_json::from_str(body).unwrap();
        let desktop = request.desktop.unwrap();
        assert_eq!(desktop.resolution, Some(Resolution { width: 1280, height: 800 }));
        assert_eq!((desktop.dpi, desktop.display.as_deref()), (Some(120), Some(":2")));
        let text: DesktopSettings = serde_json::from_str(r#"{"resolution":"1024x768","dpi":null}"#).unwrap();
        assert_eq!(text.resolution, Some(Resolution { width: 1024, height: 768 }));
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            serde_json::json!({"resolution": {"width": 1024, "height": 768}})
        );
        for bad in [r#""1024""#, r#""x768""#, r#""1024x-1""#, r#""1024x+7""#, r#"{"width":10}"#, "5"] {
            assert!(serde_json::from_str::<Resolution>(bad).is_err(), "{bad} accepted");
        }
        let plain: CreateSandboxRequest = serde_json::from_str(r#"{"template":"base"}"#).unwrap();
        assert!(plain.desktop.is_none() && !serde_json::to_string(&plain).unwrap().contains("desktop"));
    }

    #[test]
    fn status_round_trips() {
        for status in [SandboxStatus::Creating, SandboxStatus::Running, SandboxStatus::Paused, SandboxStatus::Error] {
            assert_eq!(SandboxStatus::parse(status.as_str()), Some(status));
        }
    }
}
