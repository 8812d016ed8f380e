//! Managed desktop viewer keys: `stream/start` mints a key for a sandbox's viewer, a new start rotates it
//! (the old key reads as replaced), `stream/stop` ends it, and `stream/auth-key` shows the current one.
//!
//! A key is `base64url(HMAC-SHA256(server signing key, "desktop-viewer", sandbox id, nonce))`, with a
//! nonce of over 160 random bits from [`crate::ids`]. The store keeps only the key's SHA-256 (to check a
//! presented key) and the nonce (so `auth-key` can derive the key again): the database alone never
//! reveals a working key, and the state survives a server restart. Bridges open on a key watch the
//! sandbox's active key hash and close when it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::service::ControlResult;
use super::Control;
use crate::clock;
use crate::signing::Signer;
use crate::store::desktop_streams::{DesktopStreamRecord, KeyState};
use crate::store::Tenant;

/// The HMAC label of viewer keys.
const KEY_LABEL: &str = "desktop-viewer";

/// A key just minted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    /// The auth key (shown to the caller, never stored).
    pub auth_key: String,
    /// Input is dropped.
    pub view_only: bool,
}

/// What a presented key opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The sandbox's current key.
    Active(DesktopStreamRecord),
    /// A newer start rotated it out.
    Replaced,
    /// The stream was stopped.
    Ended,
    /// Not a key of this sandbox (never issued, forgotten, or its sandbox is gone).
    Unknown,
}

/// The sandboxes' active key hashes, watched by open bridges.
type Watches = HashMap<String, watch::Sender<Option<String>>>;

/// The active key hash of each sandbox that has open bridges.
#[derive(Clone, Default)]
struct KeyWatches(Arc<Mutex<Watches>>);

impl KeyWatches {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watches> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn watch(&self, id: &str) -> watch::Receiver<Option<String>> {
        let mut watches = self.lock();
        watches.retain(|_, sender| sender.receiver_count() > 0);
        watches.entry(id.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    fn publish(&self, id: &str, active: Option<String>) {
        if let Some(sender) = self.lock().get(id) {
            sender.send_replace(active);
        }
    }
}

/// Mints, rotates, ends and checks viewer keys.
#[derive(Clone)]
pub struct DesktopStreams {
    control: Control,
    signer: Signer,
    watches: KeyWatches,
}

/// SHA-256 (hex) of a key.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl DesktopStreams {
    /// Keys derived under `signer`'s key.
    pub fn new(control: Control, signer: Signer) -> Self {
        Self { control, signer, watches: KeyWatches::default() }
    }

    fn derive(&self, sandbox_id: &str, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.signer.derive(KEY_LABEL, &[sandbox_id.as_bytes(), nonce.as_bytes()]))
    }

    /// Mints a new key for `tenant`'s sandbox `id`, replacing its current one (whose bridges close).
    pub async fn start(&self, tenant: &Tenant, id: &str, view_only: bool) -> ControlResult<IssuedKey> {
        let record = self.control.get(tenant, id).await?;
        let nonce = crate::ids::desktop_key_nonce();
        let auth_key = self.derive(&record.id, &nonce);
        let row = DesktopStreamRecord {
            key_hash: key_hash(&auth_key),
            sandbox_id: record.id.clone(),
            tenant_id: record.tenant_id.clone(),
            key_nonce: nonce,
            view_only,
            state: KeyState::Active,
            created_at: clock::now_rfc3339(),
            ended_at: None,
        };
        self.control.store().start_desktop_stream(&row).await?;
        self.publish(&record.id, Some(row.key_hash));
        Ok(IssuedKey { auth_key, view_only })
    }

    /// Ends the stream of `tenant`'s sandbox `id` (its bridges close); `false` when none was running.
    pub async fn stop(&self, tenant: &Tenant, id: &str) -> ControlResult<bool> {
        let record = self.control.get(tenant, id).await?;
        let stopped = self.control.store().stop_desktop_stream(&record.id).await?;
        self.publish(&record.id, None);
        Ok(stopped)
    }

    /// The current key of `tenant`'s sandbox `id`, `None` when no stream runs (never started, stopped, or
    /// the server's signing key changed since the start, so the key can no longer be shown).
    pub async fn current(&self, tenant: &Tenant, id: &str) -> ControlResult<Option<IssuedKey>> {
        let record = self.control.get(tenant, id).await?;
        let Some(row) = self.control.store().active_desktop_stream(&record.id).await? else { return Ok(None) };
        let auth_key = self.derive(&row.sandbox_id, &row.key_nonce);
        if key_hash(&auth_key) != row.key_hash {
            tracing::warn!(sandbox = %record.id, "the viewer key cannot be derived again (signing key changed)");
            return Ok(None);
        }
        Ok(Some(IssuedKey { auth_key, view_only: row.view_only }))
    }

    /// What `key` opens on sandbox `id` (no API key: the key is the credential).
    pub async fn check(&self, id: &str, key: &str) -> ControlResult<Access> {
        let row = self.control.store().desktop_stream_by_hash(&key_hash(key)).await?;
        Ok(access(row.filter(|row| row.sandbox_id == id)))
    }

    /// A receiver of sandbox `id`'s active key hash; it changes when the stream rotates or stops.
    pub fn watch(&self, id: &str) -> watch::Receiver<Option<String>> {
        self.watches.watch(id)
    }

    fn publish(&self, id: &str, active: Option<String>) {
        self.watches.publish(id, active);
    }
}

/// The access a stored key row gives.
fn access(row: Option<DesktopStreamRecord>) -> Access {
    match row {
        None => Access::Unknown,
        Some(row) => match row.state {
            KeyState::Active => Access::Active(row),
            KeyState::Replaced => Access::Replaced,
            KeyState::Ended => Access::Ended,
        },
    }
}

/// Whether a bridge opened on the key with hash `mine` must close, given the sandbox's active key hash.
/// `None` (no news yet since the watch was made) keeps it open: the key was checked when the bridge opened.
pub fn revoked(mine: &str, active: &Option<String>, changed: bool) -> bool {
    changed && active.as_deref() != Some(mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_depend_on_the_server_key_sandbox_and_nonce() {
        let signer = Signer::from_key([7; 32]);
        let derive = |signer: &Signer, id: &str, nonce: &str| {
            URL_SAFE_NO_PAD.encode(signer.derive(KEY_LABEL, &[id.as_bytes(), nonce.as_bytes()]))
        };
        let key = derive(&signer, "sb_a", "n1");
        assert_eq!(key.len(), 43, "256 bits, base64url without padding");
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "query-safe: {key}");
        assert_eq!(key, derive(&signer, "sb_a", "n1"), "derivable again");
        assert_ne!(key, derive(&signer, "sb_b", "n1"));
        assert_ne!(key, derive(&signer, "sb_a", "n2"));
        assert_ne!(key, derive(&Signer::from_key([8; 32]), "sb_a", "n1"));
        // Length-prefixed parts: moving a byte between parts changes the key.
        assert_ne!(derive(&signer, "sb_a", "bc"), derive(&signer, "sb_ab", "c"));
    }

    #[test]
    fn key_states_map_to_access() {
        let row = DesktopStreamRecord {
            key_hash: key_hash("k"),
            sandbox_id: "sb_a".into(),
            tenant_id: "t".into(),
            key_nonce: "n".into(),
            view_only: false,
            state: KeyState::Active,
            created_at: String::new(),
            ended_at: None,
        };
        assert_eq!(access(Some(row.clone())), Access::Active(row.clone()));
        assert_eq!(access(Some(DesktopStreamRecord { state: KeyState::Replaced, ..row.clone() })), Access::Replaced);
        assert_eq!(access(Some(DesktopStreamRecord { state: KeyState::Ended, ..row })), Access::Ended);
        assert_eq!(access(None), Access::Unknown);
        assert_eq!(key_hash("k").len(), 64);
    }

    #[test]
    fn a_bridge_closes_once_its_key_is_no_longer_active() {
        assert!(!revoked("h1", &None, false), "no news: stays open");
        assert!(!revoked("h1", &Some("h1".into()), true), "re-published the same key");
        assert!(revoked("h1", &Some("h2".into()), true), "rotated");
        assert!(revoked("h1", &None, true), "stopped");
    }

    #[tokio::test]
    async fn watchers_see_rotation_and_stop() {
        let streams = KeyWatches::default();
        streams.publish("sb_a", Some("h0".into())); // nobody watches yet: nothing to tell
        let mut rx = streams.watch("sb_a");
        let other = streams.watch("sb_b");
        streams.publish("sb_a", Some("h2".into()));
        rx.changed().await.unwrap();
        assert!(revoked("h1", &rx.borrow_and_update(), true));
        streams.publish("sb_a", None);
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), None);
        assert!(!other.has_changed().unwrap(), "other sandboxes' bridges are untouched");
        drop((rx, other));
        let _again = streams.watch("sb_c");
        assert_eq!(streams.lock().len(), 1, "watches without receivers are dropped");
    }
}
