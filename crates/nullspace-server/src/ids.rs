//! Object ids: a type prefix and random lowercase alphanumerics (`sb_…`), plus API key generation.

use rand::distributions::Alphanumeric;
use rand::Rng;

fn random_lowercase(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(|c| char::from(c).to_ascii_lowercase()).collect()
}

/// A new sandbox id.
pub fn sandbox_id() -> String {
    format!("sb_{}", random_lowercase(20))
}

/// A new template warm pool id.
pub fn warm_pool_id() -> String {
    format!("twp_{}", random_lowercase(20))
}

/// A new snapshot id.
pub fn snapshot_id() -> String {
    format!("snap_{}", random_lowercase(20))
}

/// A new volume id.
pub fn volume_id() -> String {
    format!("vol_{}", random_lowercase(20))
}

/// A new volume attachment id.
pub fn attachment_id() -> String {
    format!("att_{}", random_lowercase(20))
}

/// A new template id.
pub fn template_id() -> String {
    format!("tmpl_{}", random_lowercase(20))
}

/// A new template build id.
pub fn build_id() -> String {
    format!("tb_{}", random_lowercase(20))
}

/// A new template name claim token.
pub fn claim_token() -> String {
    format!("tclaim_{}", random_lowercase(32))
}

/// A new desktop viewer key nonce: 32 random lowercase alphanumerics (over 160 bits), from which the
/// server derives the viewer's auth key.
pub fn desktop_key_nonce() -> String {
    random_lowercase(32)
}

/// A new API key (shown once, stored hashed).
pub fn api_key() -> String {
    let key: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    format!("ns_{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_ids_have_the_prefix_and_only_lowercase_alphanumerics() {
        let id = sandbox_id();
        assert!(id.starts_with("sb_"));
        assert!(id[3..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        assert_ne!(id, sandbox_id());
    }
}
