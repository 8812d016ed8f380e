//! One registry endpoint as seen by a pull: the `oci-client` client for it (scheme, certificate checks,
//! timeouts, choice of an index's manifest by [`super::platform`]), the image reference rewritten for a
//! mirror, and the mapping of the client's errors to [`ImageError`]s that say what to do.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ImageReference, PullEvent, RegistryAuth, RegistryConfig};
use crate::error::{ImageError, ImageResult};

/// Tries of a layer download whose connection fails.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Progress is reported every this many downloaded bytes of a layer.
const PROGRESS_STEP: u64 = 16 << 20;

/// How to reach a registry (or its mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host[:port]`.
    pub(crate) host: String,
    pub(crate) plain_http: bool,
    pub(crate) accept_invalid_certs: bool,
}

impl Endpoint {
    /// The endpoints to try, in order, for `reference`: its mirror if one is configured, else its registry;
    /// an insecure host is tried over HTTPS without certificate checks, then over plain HTTP.
    pub(crate) fn candidates(config: &RegistryConfig, reference: &ImageReference) -> Vec<Endpoint> {
        let (host, plain_http) = match config.mirrors.get(reference.registry()) {
            Some(mirror) => (mirror.host.clone(), mirror.plain_http),
            None => (reference.oci().resolve_registry().to_owned(), false),
        };
        // Like Docker, a registry on this host's loopback is insecure without being listed: a local
        // registry on any port serves plain HTTP.
        let insecure =
            config.insecure.contains(&host) || config.insecure.contains(reference.registry()) || is_loopback(&host);
        let https = Endpoint { host: host.clone(), plain_http: false, accept_invalid_certs: insecure };
        let http = Endpoint { host, plain_http: true, accept_invalid_certs: false };
        match (plain_http, insecure) {
            (true, _) => vec![http],
            (false, true) => vec![https, http],
            (false, false) => vec![https],
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}://{}", if self.plain_http { "http" } else { "https" }, self.host)
    }
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is this machine's loopback.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client for one endpoint and one image.
pub(crate) struct Remote {
    client: oci_client::Client,
    reference: oci_client::Reference,
    auth: oci_client::secrets::RegistryAuth,
    pub(crate) endpoint: Endpoint,
    image: String,
}

/// A resolved image manifest and its (digest-verified) config blob.
pub(crate) struct Resolved {
    pub(crate) manifest: OciImageManifest,
    pub(crate) manifest_digest: String,
    pub(crate) index_digest: Option<String>,
    pub(crate) config: Vec<u8>,
}

impl Remote {
    pub(crate) fn new(endpoint: Endpoint, reference: &ImageReference, auth: &RegistryAuth) -> Remote {
        let config = ClientConfig {
            protocol: if endpoint.plain_http { ClientProtocol::Http } else { ClientProtocol::Https },
            accept_invalid_certificates: endpoint.accept_invalid_certs,
            platform_resolver: Some(Box::new(|manifests: &[oci_client::manifest::ImageIndexEntry]| {
                super::platform::choose_manifest(manifests, super::platform::host_amd64_level())
            })),
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let original = reference.oci();
        // A mirror serves the same repository paths at its own host.
        let reference = if endpoint.host == original.resolve_registry() {
            original.clone()
        } else {
            let (host, repository) = (endpoint.host.clone(), original.repository().to_owned());
            match (original.tag(), original.digest()) {
                (Some(tag), Some(digest)) => {
                    oci_client::Reference::with_tag_and_digest(host, repository, tag.to_owned(), digest.to_owned())
                }
                (_, Some(digest)) => oci_client::Reference::with_digest(host, repository, digest.to_owned()),
                (tag, None) => oci_client::Reference::with_tag(host, repository, tag.unwrap_or("latest").to_owned()),
            }
        };
        Remote {
            client: oci_client::Client::new(config),
            reference,
            auth: auth.oci(),
            endpoint,
            image: original.whole(),
        }
    }

    /// The module's one error helper: what the registry's failure means for this pull.
    fn err(&self, what: &str) -> impl FnOnce(OciDistributionError) -> ImageError {
        let (registry, image, what) = (self.endpoint.url(), self.image.clone(), what.to_owned());
        move |error| {
            let detail = format!("{what}: {}", chain(&error));
            let not_found = |detail| ImageError::NotFound { reference: image.clone(), detail };
            let unauthorized =
                |detail| ImageError::Unauthorized { registry: registry.clone(), reference: image.clone(), detail };
            match error {
                OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
                    unauthorized(detail)
                }
                OciDistributionError::RegistryError { ref envelope, .. } => {
                    match envelope.errors.first().map(|e| &e.code) {
                        Some(
                            OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound,
                        ) => not_found(detail),
                        Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => unauthorized(detail),
                        _ => ImageError::Registry { registry, detail },
                    }
                }
                OciDistributionError::ServerError { code: 404, .. } => not_found(detail),
                OciDistributionError::ServerError { code: 401 | 403, .. } => unauthorized(detail),
                OciDistributionError::ImageManifestNotFoundError(ref message) if message.contains("platform") => {
                    ImageError::UnsupportedPlatform { reference: image }
                }
                OciDistributionError::ImageManifestNotFoundError(_) => not_found(detail),
                OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
                    ImageError::DigestMismatch { what, expected, actual }
                }
                OciDistributionError::UnsupportedMediaTypeError(media_type)
                | OciDistributionError::IncompatibleLayerMediaTypeError(media_type) => {
                    ImageError::UnsupportedMediaType { what, media_type }
                }
                OciDistributionError::UnsupportedSchemaVersionError(version) => ImageError::UnsupportedMediaType {
                    what,
                    media_type: format!(
                        "manifest schema version {version} (only schema 2 / OCI manifests are supported)"
                    ),
                },
                OciDistributionError::ManifestParsingError(_)
                | OciDistributionError::VersionedParsingError(_)
                | OciDistributionError::ManifestEncodingError(_)
                | OciDistributionError::JsonError(_)
                | OciDistributionError::SpecViolationError(_) => ImageError::InvalidImage { reference: image, detail },
                OciDistributionError::RequestError(_) => ImageError::Unreachable { registry, detail },
                _ => ImageError::Registry { registry, detail },
            }
        }
    }

    /// Fetches the manifest (an index is resolved to its linux/amd64 image) and the config blob.
    pub(crate) async fn resolve(&self) -> ImageResult<Resolved> {
        let (manifest, manifest_digest, config, index_digest) = self
            .client
            .pull_manifest_and_config_and_list_digest(&self.reference, &self.auth)
            .await
            .map_err(self.err("fetching the manifest and config"))?;
        Ok(Resolved { manifest, manifest_digest, index_digest, config: config.into_bytes() })
    }

    /// Streams the blob of layer `index` (of `count`) to the new file `path`, checking its size and
    /// sha256 against the descriptor as it arrives. A connection that fails midway is retried from the
    /// start a few times; the download stops early once `abort` is set (another layer failed).
    pub(crate) async fn download(
        &self,
        layer: &OciDescriptor,
        path: &Path,
        position: (usize, usize),
        progress: &(dyn Fn(PullEvent) + Send + Sync),
        abort: &AtomicBool,
    ) -> ImageResult<()> {
        let mut attempt = 1;
        loop {
            match self.download_once(layer, path, position, progress, abort).await {
                Err(error @ ImageError::Unreachable { .. }) if attempt < DOWNLOAD_ATTEMPTS => {
                    tracing::warn!(%error, attempt, "layer download failed; retrying");
                    attempt += 1;
                    tokio::fs::remove_file(path).await.map_err(|source| ImageError::Store {
                        context: "removing a partial download".to_owned(),
                        path: path.to_owned(),
                        source,
                    })?;
                }
                result => return result,
            }
        }
    }

    async fn download_once(
        &self,
        layer: &OciDescriptor,
        path: &Path,
        (index, count): (usize, usize),
        progress: &(dyn Fn(PullEvent) + Send + Sync),
        abort: &AtomicBool,
    ) -> ImageResult<()> {
        let what = format!("layer {} ({})", index + 1, layer.digest);
        let size = u64::try_from(layer.size).unwrap_or(0);
        let store_err = |source: std::io::Error| ImageError::Store {
            context: "writing a downloaded layer".to_owned(),
            path: path.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::create_new(path).await.map_err(store_err)?;
        let mut stream = self.client.pull_blob_stream(&self.reference, layer).await.map_err(self.err(&what))?;
        progress(PullEvent::LayerDownloading { index, count, digest: layer.digest.clone(), size });
        let mut hasher = Sha256::new();
        let (mut downloaded, mut reported) = (0u64, 0u64);
        while let Some(chunk) = stream.next().await {
            if abort.load(Ordering::Relaxed) {
                return Err(ImageError::Registry {
                    registry: self.endpoint.url(),
                    detail: format!("downloading {what}: stopped because another layer failed"),
                });
            }
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    // The client's own verifying stream reports a digest mismatch as an io::Error.
                    if let Some(DigestError::VerificationError { expected, actual }) =
                        error.get_ref().and_then(|inner| inner.downcast_ref::<DigestError>())
                    {
                        let (expected, actual) = (expected.clone(), actual.clone());
                        return Err(ImageError::DigestMismatch {
                            what: format!("{what} (compressed)"),
                            expected,
                            actual,
                        });
                    }
                    return Err(ImageError::Unreachable {
                        registry: self.endpoint.url(),
                        detail: format!("downloading {what}: {}", chain(&error)),
                    });
                }
            };
            downloaded += chunk.len() as u64;
            if size > 0 && downloaded > size {
                return Err(ImageError::DigestMismatch {
                    what: format!("{what} (the registry sent more than the manifest's {size} bytes)"),
                    expected: layer.digest.clone(),
                    actual: "(longer content)".to_owned(),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(store_err)?;
            if downloaded - reported >= PROGRESS_STEP {
                reported = downloaded;
                progress(PullEvent::LayerProgress { index, count, downloaded, size });
            }
        }
        file.flush().await.map_err(store_err)?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != layer.digest {
            return Err(ImageError::DigestMismatch {
                what: format!("{what} (compressed)"),
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// An error with its sources, `a: b: c`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_insecure_on_any_port() {
        assert!(is_loopback("127.0.0.1:45123"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn endpoints_follow_mirrors_and_insecure_hosts() {
        let reference = ImageReference::parse("debian:12").unwrap();
        let plain = RegistryConfig::default();
        let only = Endpoint::candidates(&plain, &reference);
        assert_eq!(only, [Endpoint { host: "index.docker.io".into(), plain_http: false, accept_invalid_certs: false }]);
        let mirrored = RegistryConfig::from_flags(&["docker.io=http://127.0.0.1:5000".into()], &[]).unwrap();
        assert_eq!(
            Endpoint::candidates(&mirrored, &reference),
            [Endpoint { host: "127.0.0.1:5000".into(), plain_http: true, accept_invalid_certs: false }]
        );
        let local = ImageReference::parse("127.0.0.1:5000/app:1").unwrap();
        let insecure = RegistryConfig::from_flags(&[], &["127.0.0.1:5000".into()]).unwrap();
        let tried: Vec<_> = Endpoint::candidates(&insecure, &local).iter().map(Endpoint::url).collect();
        assert_eq!(tried, ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]);
        assert!(Endpoint::candidates(&insecure, &local)[0].accept_invalid_certs);
        assert_eq!(Endpoint::candidates(&plain, &local)[0].url(), "https://127.0.0.1:5000");
    }
}
