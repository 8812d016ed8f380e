//! Preview grants: the credentials of the preview proxy (`http://{port}-{sandbox_id}.{domain}`).
//!
//! A grant belongs to one tenant, sandbox and port. Its token is `{grant_id}.{secret}` with 256 random bits
//! of secret; the store keeps only SHA-256 of the secret, so a token is shown once (in the response that
//! created the grant) and can be checked, expired and revoked per grant. `direct` grants are presented as
//! the `edge_token` query parameter (then as a host-only cookie), `proxy` grants in the
//! `x-nullspace-preview-proxy-token` header by a customer-run reverse proxy. Grants die with their sandbox.
//! Usage counters are accumulated in memory and written in batches (every second, and before a listing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::service::ControlResult;
use super::{Control, SandboxState};
use crate::clock;
use crate::store::preview_grants::{PreviewGrantRecord, PreviewUsage};
use crate::store::{StoreError, Tenant};

/// Default lifetime of a grant.
pub const DEFAULT_GRANT_TTL_SECS: u64 = 3600;
/// Longest lifetime a grant may ask for (7 days).
pub const MAX_GRANT_TTL_SECS: u64 = 7 * 24 * 3600;
/// Header a customer-run proxy sends proxy-grant tokens in.
pub const PROXY_TOKEN_HEADER: &str = "x-nullspace-preview-proxy-token";
/// Query parameter of direct-grant tokens.
pub const EDGE_TOKEN_PARAM: &str = "edge_token";
/// Cookie that carries a direct-grant token after its first use on a preview host.
pub const EDGE_TOKEN_COOKIE: &str = "nullspace_edge_token";

/// How a grant's token is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `edge_token` query parameter, then the host-only cookie.
    Direct,
    /// `x-nullspace-preview-proxy-token` header.
    Proxy,
}

impl AuthMode {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Proxy => "proxy",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "direct" => Some(Self::Direct),
            "proxy" => Some(Self::Proxy),
            _ => None,
        }
    }
}

/// Where the preview proxy is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewConfig {
    /// Domain below which preview hosts live (`localhost` by default).
    pub domain: String,
    /// Port of the API listener, which also serves the proxy.
    pub api_port: u16,
}

impl PreviewConfig {
    /// `{port}-{sandbox_id}.{domain}`, with `:{api_port}` unless the API listens on port 80.
    pub fn host(&self, sandbox_id: &str, port: u16) -> String {
        let name = format!("{port}-{sandbox_id}.{}", self.domain);
        if self.api_port == 80 {
            name
        } else {
            format!("{name}:{}", self.api_port)
        }
    }
}

/// Why a preview request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreviewAuthError {
    /// No token was presented.
    #[error("no preview token was presented")]
    Missing(AuthMode),
    /// The token is not one this server issued (or was altered).
    #[error("the preview token is invalid")]
    Invalid(AuthMode),
    /// The grant expired.
    #[error("the preview token expired")]
    Expired(AuthMode),
    /// The grant was revoked.
    #[error("the preview grant was revoked")]
    Revoked(AuthMode),
    /// The grant is for another sandbox, port or transport.
    #[error("the preview token is for another sandbox, port or transport")]
    ScopeMismatch(AuthMode),
}

impl PreviewAuthError {
    /// The protocol's error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing(AuthMode::Direct) => "edge_token_missing",
            Self::Missing(AuthMode::Proxy) => "preview_proxy_token_missing",
            Self::Invalid(AuthMode::Direct) => "edge_token_invalid",
            Self::Invalid(AuthMode::Proxy) => "preview_proxy_token_invalid",
            Self::Expired(AuthMode::Direct) => "edge_token_expired",
            Self::Expired(AuthMode::Proxy) => "preview_proxy_token_expired",
            Self::Revoked(AuthMode::Direct) => "preview_grant_revoked",
            Self::Revoked(AuthMode::Proxy) => "preview_proxy_token_revoked",
            Self::ScopeMismatch(AuthMode::Direct) => "edge_token_scope_mismatch",
            Self::ScopeMismatch(AuthMode::Proxy) => "preview_proxy_token_scope_mismatch",
        }
    }

    /// A message that says what to do.
    pub fn message(self) -> String {
        let next = match self {
            Self::Missing(AuthMode::Direct) => {
                "open the url returned by get_preview_url / signed-preview-url (it carries ?edge_token=...)"
            }
            Self::Missing(AuthMode::Proxy) => "send the grant's token in the x-nullspace-preview-proxy-token header",
            _ => "request a new preview url or proxy target",
        };
        format!("{self}; {next}")
    }
}

/// A failed authorization: refused, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The request is not authorized.
    #[error(transparent)]
    Refused(#[from] PreviewAuthError),
    /// Looking the grant up failed.
    #[error("looking up the preview grant failed")]
    Store(#[from] StoreError),
}

/// A token as presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `edge_token` query parameter.
    Query(&'a str),
    /// The host-only cookie.
    Cookie(&'a str),
    /// The proxy header.
    Header(&'a str),
}

impl Credential<'_> {
    /// The auth mode this transport belongs to.
    pub fn mode(self) -> AuthMode {
        match self {
            Self::Query(_) | Self::Cookie(_) => AuthMode::Direct,
            Self::Header(_) => AuthMode::Proxy,
        }
    }
}

/// A grant just issued, with its token (never stored).
#[derive(Debug, Clone)]
pub struct IssuedGrant {
    /// The stored grant.
    pub record: PreviewGrantRecord,
    /// Its token.
    pub token: String,
}

/// Issues, checks and counts preview grants.
#[derive(Clone)]
pub struct PreviewGrants {
    control: Control,
    config: Arc<PreviewConfig>,
    usage: Arc<Mutex<HashMap<String, PreviewUsage>>>,
}

/// A new grant id (`pvg_` and 20 random lowercase alphanumerics).
pub fn new_grant_id() -> String {
    use rand::Rng;
    let random: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(20)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("pvg_{random}")
}

/// A new token for `grant_id` and the hash to store.
pub fn new_token(grant_id: &str) -> (String, String) {
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = hash_secret(&secret);
    (format!("{grant_id}.{secret}"), hash)
}

/// SHA-256 (hex) of a token's secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The grant id and secret of a well-formed token.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let well_formed = id.starts_with("pvg_")
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !secret.is_empty()
        && secret.len() <= 128;
    well_formed.then_some((id, secret))
}

/// Whether `token` matches `stored_hash`, in time independent of where they differ.
pub fn token_matches(secret: &str, stored_hash: &str) -> bool {
    let computed = hash_secret(secret);
    computed.len() == stored_hash.len()
        && computed.bytes().zip(stored_hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Checks `grant` against the request's sandbox, port, transport and time `now_ms`.
pub fn check_grant(
    grant: &PreviewGrantRecord,
    secret: &str,
    mode: AuthMode,
    sandbox_id: &str,
    port: u16,
    now_ms: i64,
) -> Result<(), PreviewAuthError> {
    if !token_matches(secret, &grant.token_hash) {
        return Err(PreviewAuthError::Invalid(mode));
    }
    if grant.revoked_at.is_some() {
        return Err(PreviewAuthError::Revoked(mode));
    }
    if grant.expires_at_ms <= now_ms {
        return Err(PreviewAuthError::Expired(mode));
    }
    if grant.sandbox_id != sandbox_id || grant.port != port || AuthMode::parse(&grant.auth_mode) != Some(mode) {
        return Err(PreviewAuthError::ScopeMismatch(mode));
    }
    Ok(())
}

/// Wire status of a grant at `now_ms`.
pub fn grant_status(grant: &PreviewGrantRecord, now_ms: i64) -> &'static str {
    if grant.revoked_at.is_some() {
        "revoked"
    } else if grant.expires_at_ms <= now_ms {
        "expired"
    } else {
        "active"
    }
}

impl PreviewGrants {
    /// Grants served through `control`'s store, reachable as `config` says.
    pub fn new(control: Control, config: PreviewConfig) -> Self {
        Self { control, config: Arc::new(config), usage: Arc::default() }
    }

    /// Where the proxy is reached.
    pub fn config(&self) -> &PreviewConfig {
        &self.config
    }

    /// The control plane.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Writes accumulated usage every second, in the background.
    pub fn spawn_usage_writer(&self) {
        let grants = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                grants.flush_usage().await;
            }
        });
    }

    /// Issues a grant for `port` of `tenant`'s visible sandbox `sandbox_id`, valid for `ttl_secs`.
    pub async fn issue(
        &self,
        tenant: &Tenant,
        sandbox_id: &str,
        port: u16,
        mode: AuthMode,
        ttl_secs: u64,
    ) -> ControlResult<IssuedGrant> {
        self.control.get(tenant, sandbox_id).await?;
        let id = new_grant_id();
        let (token, token_hash) = new_token(&id);
        let now = clock::now_ms();
        let now_text = clock::ms_to_rfc3339(now);
        let record = PreviewGrantRecord {
            id,
            tenant_id: tenant.id.clone(),
            sandbox_id: sandbox_id.to_owned(),
            port,
            auth_mode: mode.as_str().to_owned(),
            token_hash,
            principal_kind: "api_key".to_owned(),
            principal_id: Some(tenant.id.clone()),
            issued_at: now_text.clone(),
            expires_at_ms: now.saturating_add(i64::try_from(ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)),
            revoked_at: None,
            first_used_at: None,
            last_used_at: None,
            use_count: 0,
            http_request_count: 0,
            websocket_connection_count: 0,
            bytes_in_count: 0,
            bytes_out_count: 0,
            last_error_code: None,
            last_error_at: None,
            updated_at: now_text,
        };
        self.control.store().insert_preview_grant(&record).await?;
        Ok(IssuedGrant { record, token })
    }

    /// Grants of `tenant`'s sandbox `sandbox_id` (optionally one port), with current counters.
    pub async fn list(
        &self,
        tenant: &Tenant,
        sandbox_id: &str,
        port: Option<u16>,
    ) -> ControlResult<Vec<PreviewGrantRecord>> {
        self.control.get(tenant, sandbox_id).await?;
        self.flush_usage().await;
        Ok(self.control.store().list_preview_grants(&tenant.id, sandbox_id, port).await?)
    }

    /// Revokes grant `grant_id`; `None` when the sandbox has no such grant.
    pub async fn revoke(
        &self,
        tenant: &Tenant,
        sandbox_id: &str,
        grant_id: &str,
    ) -> ControlResult<Option<PreviewGrantRecord>> {
        self.control.get(tenant, sandbox_id).await?;
        self.flush_usage().await;
        Ok(self.control.store().revoke_preview_grant(&tenant.id, sandbox_id, grant_id).await?)
    }

    /// The grant that authorizes a request to `port` of `sandbox_id` with `credential`.
    pub async fn authorize(
        &self,
        sandbox_id: &str,
        port: u16,
        credential: Credential<'_>,
    ) -> Result<PreviewGrantRecord, AuthorizeError> {
        let mode = credential.mode();
        let token = match credential {
            Credential::Query(token) | Credential::Cookie(token) | Credential::Header(token) => token,
        };
        if token.is_empty() {
            return Err(PreviewAuthError::Missing(mode).into());
        }
        let (grant_id, secret) = split_token(token).ok_or(PreviewAuthError::Invalid(mode))?;
        let grant = self.control.store().get_preview_grant(grant_id).await?.ok_or(PreviewAuthError::Invalid(mode))?;
        check_grant(&grant, secret, mode, sandbox_id, port, clock::now_ms())?;
        Ok(grant)
    }

    /// Whether sandbox `sandbox_id` exists (is not destroyed), and its owner and state.
    pub async fn sandbox(&self, sandbox_id: &str) -> Result<Option<(String, SandboxState)>, StoreError> {
        let found = self.control.store().sandbox_owner_and_state(sandbox_id).await?;
        Ok(found
            .and_then(|(tenant, state)| SandboxState::parse(&state).map(|state| (tenant, state)))
            .filter(|(_, state)| state.is_visible()))
    }

    /// Adds `usage` to grant `grant_id`'s pending counters.
    pub fn record_usage(&self, grant_id: &str, usage: PreviewUsage) {
        let mut pending = self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.entry(grant_id.to_owned()).or_default().merge(usage);
    }

    /// Writes pending usage to the store.
    pub async fn flush_usage(&self) {
        let pending = std::mem::take(&mut *self.usage.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for (grant_id, usage) in pending {
            if let Err(error) = self.control.store().add_preview_usage(&grant_id, &usage).await {
                tracing::warn!(grant = %grant_id, error = %crate::error_chain(&error), "recording preview usage failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hash: String) -> PreviewGrantRecord {
        PreviewGrantRecord {
            id: "pvg_abc".into(),
            tenant_id: "tn_a".into(),
            sandbox_id: "sb_a".into(),
            port: 8080,
            auth_mode: "direct".into(),
            token_hash: hash,
            principal_kind: "api_key".into(),
            principal_id: None,
            issued_at: String::new(),
            expires_at_ms: 1_000,
            revoked_at: None,
            first_used_at: None,
            last_used_at: None,
            use_count: 0,
            http_request_count: 0,
            websocket_connection_count: 0,
            bytes_in_count: 0,
            bytes_out_count: 0,
            last_error_code: None,
            last_error_at: None,
            updated_at: String::new(),
        }
    }

    #[test]
    fn tokens_carry_the_grant_id_and_only_their_hash_matches() {
        let (token, hash) = new_token("pvg_abc");
        let (id, secret) = split_token(&token).expect("well formed");
        assert_eq!(id, "pvg_abc");
        assert!(secret.len() >= 43, "256 bits of secret");
        assert!(!hash.contains(secret));
        assert!(token_matches(secret, &hash));
        assert!(!token_matches(&format!("{secret}x"), &hash));
        assert!(!token_matches(secret, &hash[1..]));
        let (other, _) = new_token("pvg_abc");
        assert_ne!(token, other);
        for bad in ["", "pvg_abc", "pvg_abc.", "sb_abc.secret", "pvg_a b.secret", ".secret"] {
            assert_eq!(split_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checks_cover_secret_revocation_expiry_and_scope() {
        let (token, hash) = new_token("pvg_abc");
        let (_, secret) = split_token(&token).unwrap();
        let ok = grant(hash);
        let direct = AuthMode::Direct;
        assert_eq!(check_grant(&ok, secret, direct, "sb_a", 8080, 999), Ok(()));
        assert_eq!(check_grant(&ok, "nope", direct, "sb_a", 8080, 999), Err(PreviewAuthError::Invalid(direct)));
        assert_eq!(check_grant(&ok, secret, direct, "sb_a", 8080, 1_000), Err(PreviewAuthError::Expired(direct)));
        assert_eq!(check_grant(&ok, secret, direct, "sb_b", 8080, 999), Err(PreviewAuthError::ScopeMismatch(direct)));
        assert_eq!(check_grant(&ok, secret, direct, "sb_a", 8081, 999), Err(PreviewAuthError::ScopeMismatch(direct)));
        let proxy = AuthMode::Proxy;
        assert_eq!(check_grant(&ok, secret, proxy, "sb_a", 8080, 999), Err(PreviewAuthError::ScopeMismatch(proxy)));
        let revoked = PreviewGrantRecord { revoked_at: Some("t".into()), ..ok.clone() };
        assert_eq!(check_grant(&revoked, secret, direct, "sb_a", 8080, 999), Err(PreviewAuthError::Revoked(direct)));
        assert_eq!(grant_status(&ok, 999), "active");
        assert_eq!(grant_status(&ok, 1_000), "expired");
        assert_eq!(grant_status(&revoked, 0), "revoked");
    }

    #[test]
    fn error_codes_follow_the_protocol() {
        assert_eq!(PreviewAuthError::Missing(AuthMode::Direct).code(), "edge_token_missing");
        assert_eq!(PreviewAuthError::Missing(AuthMode::Proxy).code(), "preview_proxy_token_missing");
        assert_eq!(PreviewAuthError::Invalid(AuthMode::Direct).code(), "edge_token_invalid");
        assert_eq!(PreviewAuthError::Expired(AuthMode::Direct).code(), "edge_token_expired");
        assert_eq!(PreviewAuthError::Revoked(AuthMode::Direct).code(), "preview_grant_revoked");
        assert_eq!(PreviewAuthError::Revoked(AuthMode::Proxy).code(), "preview_proxy_token_revoked");
    }

    #[test]
    fn hosts_carry_the_api_port_unless_it_is_80() {
        let config = PreviewConfig { domain: "localhost".into(), api_port: 3000 };
        assert_eq!(config.host("sb_a", 8080), "8080-sb_a.localhost:3000");
        let config = PreviewConfig { domain: "preview.example.com".into(), api_port: 80 };
        assert_eq!(config.host("sb_a", 8080), "8080-sb_a.preview.example.com");
    }
}
