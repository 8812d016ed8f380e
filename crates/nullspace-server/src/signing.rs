//! Signed, expiring file URLs: a claim (which sandbox, which path, upload or download, until when) is
//! serialized and authenticated with HMAC-SHA256 under a per-server key kept in the data dir. A URL works
//! without the API key until it expires; changing a single byte of it makes it invalid.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOperation {
    /// `GET` the file (or a tar of the directory when `archive`).
    Download,
    /// `PUT` raw bytes or `POST` a multipart `file` field to the path.
    Upload,
}

/// The signed claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileClaim {
    /// Sandbox the URL is for.
    pub sandbox_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Allowed operation.
    pub operation: FileOperation,
    /// Path in the sandbox, as the request gave it.
    pub path: String,
    /// User the file operation runs as.
    pub user: Option<String>,
    /// Download a tar archive of a directory.
    #[serde(default)]
    pub archive: bool,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Set when the URL is for a volume's files (`sandbox_id` is then empty); absent in sandbox tokens,
    /// so tokens minted before volumes existed keep their shape and stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// Not a token this server could have issued, or tampered with.
    #[error("the signed URL is invalid or was modified; request a new one")]
    Invalid,
    /// Past its expiry.
    #[error("the signed URL expired; request a new one")]
    Expired,
}

/// Reading or creating the signing key failed.
#[derive(Debug, thiserror::Error)]
#[error("reading or creating the URL signing key at {path} failed")]
pub struct SigningKeyError {
    path: std::path::PathBuf,
    #[source]
    source: std::io::Error,
}

/// The server's URL signing key.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer with `key` (tests and fuzzing).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn from_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Loads the key at `path`, creating a random one (mode 0600) on first use, so URLs survive restarts.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        let error = |source| SigningKeyError { path: path.to_path_buf(), source };
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(Self { key });
            }
            Ok(_) => {} // wrong size: replace it (old URLs stop working, which is safe)
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => return Err(error(source)),
            Err(_) => {}
        }
        let key: [u8; 32] = rand::random();
        let temp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode_0600()
            .open(&temp)
            .map_err(error)?;
        file.write_all(&key).and_then(|()| file.sync_all()).map_err(error)?;
        std::fs::rename(&temp, path).map_err(error)?;
        Ok(Self { key })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.key).expect("hmac takes any key length")
    }

    /// HMAC-SHA256 under the server's key of `label` and `parts` (each length-prefixed): a secret that
    /// only this server can derive again, e.g. a desktop viewer key from its stored nonce.
    pub fn derive(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The token for `claim`.
    pub fn sign(&self, claim: &FileClaim) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claim).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claim of `token` if it is authentic and not expired at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<FileClaim, SignError> {
        let (payload, signature) = token.split_once('.').ok_or(SignError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| SignError::Invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| SignError::Invalid)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| SignError::Invalid)?;
        let claim: FileClaim = serde_json::from_slice(&bytes).map_err(|_| SignError::Invalid)?;
        if claim.expires_at <= now {
            return Err(SignError::Expired);
        }
        Ok(claim)
    }
}

/// `OpenOptions` with mode 0600 on Unix.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(expires_at: i64) -> FileClaim {
        FileClaim {
            sandbox_id: "sb_a".into(),
            tenant_id: "tn_a".into(),
            operation: FileOperation::Download,
            path: "/workspace/x".into(),
            user: None,
            archive: false,
            expires_at,
            volume_id: None,
        }
    }

    #[test]
    fn a_signed_claim_verifies_until_it_expires() {
        let signer = Signer::from_key([7; 32]);
        let token = signer.sign(&claim(1000));
        assert_eq!(signer.verify(&token, 999), Ok(claim(1000)));
        assert_eq!(signer.verify(&token, 1000), Err(SignError::Expired));
    }

    #[test]
    fn tampering_or_another_key_is_rejected() {
        let signer = Signer::from_key([7; 32]);
        let token = signer.sign(&claim(1000));
        let forged = signer.sign(&FileClaim { path: "/etc/shadow".into(), ..claim(1000) });
        let (_, forged_signature) = forged.split_once('.').unwrap();
        let (payload, _) = token.split_once('.').unwrap();
        assert_eq!(signer.verify(&format!("{payload}.{forged_signature}"), 0), Err(SignError::Invalid));
        assert_eq!(Signer::from_key([8; 32]).verify(&token, 0), Err(SignError::Invalid));
        assert_eq!(signer.verify("garbage", 0), Err(SignError::Invalid));
        let mut bytes = token.into_bytes();
        bytes[3] ^= 1;
        assert_eq!(signer.verify(&String::from_utf8(bytes).unwrap(), 0), Err(SignError::Invalid));
    }

    #[test]
    fn the_key_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let token = Signer::load_or_create(&path).unwrap().sign(&claim(1000));
        assert!(Signer::load_or_create(&path).unwrap().verify(&token, 0).is_ok());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
