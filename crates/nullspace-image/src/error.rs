//! The one error type of image pulls and the layer store, with a stable machine-readable `code()` for the
//! API's error envelope and messages that say what to do about the failure.

use std::path::PathBuf;

/// Why pulling an image or storing a layer failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image reference does not follow Docker's naming rules.
    #[error("invalid image reference {reference:?}: {reason} (expected e.g. `debian:12`, `user/app:1`, `registry.example.com:5000/team/app@sha256:<64 hex>`)")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--registry-mirror` / `--insecure-registry` value (or the equivalent setting) is malformed.
    #[error("invalid registry option {value:?}: {reason}")]
    InvalidRegistryOption {
        /// The value as given.
        value: String,
        /// What is wrong with it and the expected form.
        reason: String,
    },
    /// The request's registry credentials are malformed.
    #[error("invalid registry credentials: {0}")]
    InvalidAuth(String),
    /// The request's registry credentials are of a kind this server cannot use.
    #[error("registry auth kind {kind:?} is not supported by this server; use {{\"kind\": \"basic\", \"username\": ..., \"password\": ...}} with an access token as the password instead")]
    UnsupportedAuth {
        /// The requested kind.
        kind: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("image {reference} not found: {detail} (check the repository name and tag)")]
    NotFound {
        /// The image reference.
        reference: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry refused the credentials (or the image needs credentials and none were given).
    #[error("registry {registry} refused access to {reference}: {detail} (check the username and password or token; a private image needs credentials)")]
    Unauthorized {
        /// The registry host that answered.
        registry: String,
        /// The image reference.
        reference: String,
        /// What the registry said.
        detail: String,
    },
    /// The registry could not be reached or spoke no usable HTTP(S).
    #[error("cannot reach registry {registry}: {detail} (is the registry reachable from this server? pass --registry-mirror REGISTRY=URL to pull through a mirror, or --insecure-registry HOST:PORT for a registry that speaks plain HTTP or has an untrusted certificate)")]
    Unreachable {
        /// The registry host (or mirror endpoint) tried.
        registry: String,
        /// The underlying failure.
        detail: String,
    },
    /// The registry host resolves to a loopback, private or link-local address and is neither a configured
    /// mirror nor an insecure registry: a build must not make the server reach into its own networks.
    #[error("registry {registry} resolves to {address}, a private or loopback address this server does not pull from (an operator can configure it with --registry-mirror or --insecure-registry, or allow all with --registry-allow-private)")]
    ForbiddenRegistry {
        /// The registry host.
        registry: String,
        /// The address it resolved to.
        address: std::net::IpAddr,
    },
    /// The registry answered with an error that is none of the above (rate limits, server errors, ...).
    #[error("registry {registry} failed: {detail}")]
    Registry {
        /// The registry host that answered.
        registry: String,
        /// What it said.
        detail: String,
    },
    /// An image index without a linux/amd64 image.
    #[error("image {reference} has no linux/amd64 variant; this server runs linux/amd64 images only")]
    UnsupportedPlatform {
        /// The image reference.
        reference: String,
    },
    /// Content does not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual} (the registry or a proxy altered the content; nothing was stored)")]
    DigestMismatch {
        /// Which content (e.g. "layer 2 (compressed)").
        what: String,
        /// The digest the manifest or image config names.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A manifest, config or layer media type this server cannot unpack.
    #[error("unsupported media type {media_type} for {what} (supported layers: OCI/Docker tar, tar+gzip, tar+zstd)")]
    UnsupportedMediaType {
        /// What carried it.
        what: String,
        /// The media type.
        media_type: String,
    },
    /// The image's manifest or config is malformed or inconsistent.
    #[error("invalid image {reference}: {detail}")]
    InvalidImage {
        /// The image reference.
        reference: String,
        /// What is wrong.
        detail: String,
    },
    /// A layer's tar stream could not be unpacked (corrupt, or an entry that would escape the layer).
    #[error("cannot unpack layer {layer}: {detail}")]
    LayerUnpack {
        /// The layer's digest.
        layer: String,
        /// What went wrong.
        detail: String,
    },
    /// A layer holds a device node or fifo, which image layers may not carry.
    #[error("cannot use layer {layer}: {path} is a {} (an image may not carry device nodes or fifos: a sandbox's /dev comes from its runtime; remove it from the image)", entry_type.as_str().replace('_', " "))]
    UnsupportedSpecialFile {
        /// The layer's digest.
        layer: String,
        /// The entry's path inside the layer, e.g. `run/fifo`.
        path: String,
        /// What it is.
        entry_type: crate::layers::SpecialFile,
    },
    /// A layer id that is not a sha256 digest.
    #[error("invalid layer id {0:?}: expected `sha256:<64 lowercase hex>` or `<64 lowercase hex>`")]
    InvalidLayerId(String),
    /// A file system operation on the layer store failed.
    #[error("layer store: {context} ({path}): {source}")]
    Store {
        /// What was being done.
        context: String,
        /// The path involved.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// The stable error code for the API's `{"error": {"code", ...}}` envelope.
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "invalid_image_reference",
            ImageError::InvalidRegistryOption { .. } => "invalid_registry_option",
            ImageError::InvalidAuth(_) => "invalid_registry_auth",
            ImageError::UnsupportedAuth { .. } => "unsupported_auth",
            ImageError::NotFound { .. } => "image_not_found",
            ImageError::Unauthorized { .. } => "registry_unauthorized",
            ImageError::Unreachable { .. } => "registry_unreachable",
            ImageError::ForbiddenRegistry { .. } => "registry_forbidden",
            ImageError::Registry { .. } => "registry_error",
            ImageError::UnsupportedPlatform { .. } => "unsupported_platform",
            ImageError::DigestMismatch { .. } => "digest_mismatch",
            ImageError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ImageError::InvalidImage { .. } => "invalid_image",
            ImageError::LayerUnpack { .. } => "layer_unpack_failed",
            ImageError::UnsupportedSpecialFile { .. } => "oci_unsupported_special_file",
            ImageError::InvalidLayerId(_) => "invalid_layer_id",
            ImageError::Store { .. } => "layer_store_failed",
        }
    }

    /// Structured facts about the failure, for the API's error details (`reason` is the code).
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            ImageError::UnsupportedSpecialFile { layer, path, entry_type } => Some(serde_json::json!({
                "reason": self.code(),
                "layer": layer,
                "path": path,
                "entry_type": entry_type.as_str(),
            })),
            _ => None,
        }
    }

    /// Whether the failure is the request's fault (bad reference, credentials, missing or malformed
    /// image) rather than the server's or the network's: the API answers 4xx for these.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, ImageError::Unreachable { .. } | ImageError::Registry { .. } | ImageError::Store { .. })
    }
}

/// Results of this crate's image and layer operations.
pub type ImageResult<T> = Result<T, ImageError>;
