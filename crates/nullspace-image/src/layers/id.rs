//! Layer identity and metadata: the sha256 that names a layer, what a layer came from, and the
//! `layer.json` record the store keeps beside each layer.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ImageError;

/// A layer's identity: a sha256, written `sha256:<64 lowercase hex>`. For an image layer it is the
/// layer's diff_id (the digest of its uncompressed tar), for a build step's layer the sha256 of the
/// step's cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(String);

impl LayerId {
    /// Parses `sha256:<hex>` or `<hex>` (64 lowercase hex digits); anything else is refused.
    pub fn parse(s: &str) -> Result<LayerId, ImageError> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(LayerId(hex.to_owned()))
        } else {
            Err(ImageError::InvalidLayerId(s.to_owned()))
        }
    }

    /// The id of content whose sha256 is `digest`.
    pub fn from_sha256(digest: [u8; 32]) -> LayerId {
        LayerId(hex::encode(digest))
    }

    /// The id of a build step's layer: the sha256 of its cache key.
    pub fn for_cache_key(cache_key: &str) -> LayerId {
        LayerId::from_sha256(Sha256::digest(cache_key.as_bytes()).into())
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// `sha256:<hex>`.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.0)
    }

    /// The name of the layer's directory in the store: the first 32 hex digits (short, so that the
    /// overlay mount options of ~40 stacked layers fit in one page).
    pub fn short(&self) -> &str {
        &self.0[..32]
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl std::str::FromStr for LayerId {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LayerId::parse(s)
    }
}

impl Serialize for LayerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.digest())
    }
}

impl<'de> Deserialize<'de> for LayerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        LayerId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where a layer's content came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerSource {
    /// A layer of an OCI/Docker image, as pulled from a registry.
    Oci {
        /// The compressed blob's digest (the manifest descriptor's).
        digest: String,
        /// The blob's media type.
        media_type: String,
    },
    /// The file system changes of one build step.
    Step {
        /// The step's cache key (the layer's id is its sha256).
        cache_key: String,
    },
}

/// A published layer, as recorded in its `layer.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The layer's id.
    pub id: LayerId,
    /// Apparent size of its files (hard links counted once, symlinks as their own length).
    pub size_bytes: u64,
    /// When it was published.
    pub created_at: DateTime<Utc>,
    /// What it came from.
    pub source: LayerSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parse_accepts_prefixed_and_bare_hex_only() {
        let id = LayerId::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(id, LayerId::parse(HEX).unwrap());
        assert_eq!(id.to_string(), format!("sha256:{HEX}"));
        assert_eq!(id.short(), &HEX[..32]);
        for bad in [
            "",
            "sha256:",
            &HEX[..63],
            &format!("{HEX}0"),
            &HEX.to_uppercase(),
            &format!("sha512:{HEX}"),
            &format!("sha256:{}/..", &HEX[..61]),
            &format!(" {}", &HEX[..63]),
        ] {
            let error = LayerId::parse(bad).unwrap_err();
            assert_eq!(error.code(), "invalid_layer_id", "{bad:?}");
        }
    }

    #[test]
    fn info_round_trips_through_json_with_the_documented_shape() {
        let info = LayerInfo {
            id: LayerId::for_cache_key("step-1"),
            size_bytes: 42,
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            source: LayerSource::Oci { digest: format!("sha256:{HEX}"), media_type: "m".into() },
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["source"]["kind"], "oci");
        assert_eq!(json["id"], info.id.to_string());
        assert_eq!(serde_json::from_value::<LayerInfo>(json).unwrap(), info);
        let step = serde_json::to_value(LayerSource::Step { cache_key: "k".into() }).unwrap();
        assert_eq!(step, serde_json::json!({"kind": "step", "cache_key": "k"}));
    }
}
