//! Pulling images from OCI registries into the layer store: resolve a reference (an index to its
//! linux/amd64 image) through the configured mirror or insecure endpoint, fetch and verify the config,
//! then download each layer the store does not hold yet (streamed to a file in its staging directory,
//! checked against the manifest's digest), unpack it (checked against the config's diff_id) and publish
//! it under its diff_id. The registry protocol itself (token auth, manifests, blobs) is `oci-client`'s.

mod image_config;
mod options;
mod platform;
mod policy;
mod reference;
mod remote;

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use oci_client::manifest::OciDescriptor;

pub use image_config::{Healthcheck, ImageConfig};
pub use options::{RegistryAuth, RegistryConfig, RegistryMirror};
pub use reference::ImageReference;

use crate::error::{ImageError, ImageResult};
use crate::layers::{Compression, LayerId, LayerSource, LayerStore};
use remote::{Endpoint, Remote};

/// Layers downloaded and unpacked at the same time.
const LAYER_CONCURRENCY: usize = 3;

/// Config blob media types of container images.
const CONFIG_MEDIA_TYPES: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// What a pull is doing, for build logs. Layer indexes count from 0, bottom layer first, of `count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// Fetching the manifest of `reference` from `endpoint` (a URL).
    Resolving {
        /// The normalized reference.
        reference: String,
        /// The registry or mirror URL tried.
        endpoint: String,
    },
    /// The image manifest was found.
    Resolved {
        /// The image manifest's digest.
        manifest_digest: String,
        /// How many layers it has.
        layers: usize,
    },
    /// The store already holds this layer: nothing to download.
    LayerCached {
        /// The layer's index.
        index: usize,
        /// The image's layer count.
        count: usize,
        /// The layer's id.
        id: LayerId,
    },
    /// Downloading a layer blob started.
    LayerDownloading {
        /// The layer's index.
        index: usize,
        /// The image's layer count.
        count: usize,
        /// The blob's (compressed) digest.
        digest: String,
        /// The blob's size per the manifest.
        size: u64,
    },
    /// Download progress (every few MiB).
    LayerProgress {
        /// The layer's index.
        index: usize,
        /// The image's layer count.
        count: usize,
        /// Bytes received so far.
        downloaded: u64,
        /// The blob's size per the manifest.
        size: u64,
    },
    /// The blob was downloaded and verified; unpacking it.
    LayerUnpacking {
        /// The layer's index.
        index: usize,
        /// The image's layer count.
        count: usize,
    },
    /// The layer is in the store.
    LayerPublished {
        /// The layer's index.
        index: usize,
        /// The image's layer count.
        count: usize,
        /// The layer's id (its diff_id).
        id: LayerId,
        /// Its unpacked size.
        size_bytes: u64,
    },
}

/// `512 B`, `12.3 KiB`, `4.0 MiB`, `1.2 GiB`.
fn human(bytes: u64) -> String {
    let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    match units.iter().find(|(size, _)| bytes >= *size) {
        Some((size, unit)) => format!("{:.1} {unit}", bytes as f64 / *size as f64),
        None => format!("{bytes} B"),
    }
}

impl fmt::Display for PullEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullEvent::Resolving { reference, endpoint } => write!(f, "resolving {reference} at {endpoint}"),
            PullEvent::Resolved { manifest_digest, layers } => write!(f, "image {manifest_digest}: {layers} layers"),
            PullEvent::LayerCached { index, count, id } => {
                write!(f, "layer {}/{count} {id}: already present", index + 1)
            }
            PullEvent::LayerDownloading { index, count, digest, size } => {
                write!(f, "layer {}/{count} downloading {digest} ({})", index + 1, human(*size))
            }
            PullEvent::LayerProgress { index, count, downloaded, size } => {
                write!(f, "layer {}/{count} {} of {}", index + 1, human(*downloaded), human(*size))
            }
            PullEvent::LayerUnpacking { index, count } => write!(f, "layer {}/{count} unpacking", index + 1),
            PullEvent::LayerPublished { index, count, id, size_bytes } => {
                write!(f, "layer {}/{count} {id}: ready ({} unpacked)", index + 1, human(*size_bytes))
            }
        }
    }
}

/// A pulled image: all its layers are in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The (platform-specific) image manifest's digest.
    pub manifest_digest: String,
    /// The digest of the index the reference named, when it named one.
    pub index_digest: Option<String>,
    /// The layers, bottom first (overlay's lowerdir lists them top first).
    pub layers: Vec<LayerId>,
    /// The image's run settings.
    pub config: ImageConfig,
}

/// Pulls `reference` into `store`; see the module documentation. `progress` is called from the pulling
/// task (and concurrently for up to a few layers).
pub async fn pull(
    store: &LayerStore,
    config: &RegistryConfig,
    reference: &ImageReference,
    auth: &RegistryAuth,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
) -> ImageResult<PulledImage> {
    let candidates = Endpoint::candidates(config, reference);
    if let Some(first) = candidates.first() {
        policy::check_host(config, &first.host).await?;
    }
    let mut candidates = candidates.into_iter().peekable();
    while let Some(endpoint) = candidates.next() {
        let remote = Remote::new(endpoint, reference, auth);
        progress(PullEvent::Resolving { reference: reference.to_string(), endpoint: remote.endpoint.url() });
        match remote.resolve().await {
            Ok(resolved) => return fetch(store, &remote, reference, resolved, progress).await,
            Err(error @ ImageError::Unreachable { .. }) if candidates.peek().is_some() => {
                tracing::info!(%error, "registry endpoint unreachable; trying the next one");
            }
            Err(error) => return Err(error),
        }
    }
    Err(ImageError::Unreachable { registry: reference.registry().to_owned(), detail: "no endpoint to try".to_owned() })
}

/// A layer to fetch: its descriptor, id and compression.
struct Wanted {
    descriptor: OciDescriptor,
    id: LayerId,
    compression: Compression,
}

/// Checks the manifest and config, then fetches the layers.
async fn fetch(
    store: &LayerStore,
    remote: &Remote,
    reference: &ImageReference,
    resolved: remote::Resolved,
    progress: &(dyn Fn(PullEvent) + Send + Sync),
) -> ImageResult<PulledImage> {
    let invalid = |detail: String| ImageError::InvalidImage { reference: reference.to_string(), detail };
    let manifest = &resolved.manifest;
    if !CONFIG_MEDIA_TYPES.contains(&manifest.config.media_type.as_str()) {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("the config of {reference} (is it a container image?)"),
            media_type: manifest.config.media_type.clone(),
        });
    }
    let parsed = image_config::parse(&resolved.config).map_err(invalid)?;
    let platform_ok = parsed.os.as_deref().is_none_or(|os| os == "linux")
        && parsed.architecture.as_deref().is_none_or(|arch| arch == "amd64");
    if !platform_ok {
        return Err(ImageError::UnsupportedPlatform { reference: reference.to_string() });
    }
    if parsed.diff_ids.len() != manifest.layers.len() {
        return Err(invalid(format!(
            "the manifest has {} layers but the config lists {} diff_ids",
            manifest.layers.len(),
            parsed.diff_ids.len()
        )));
    }
    let mut wanted = Vec::with_capacity(manifest.layers.len());
    for (descriptor, diff_id) in manifest.layers.iter().zip(&parsed.diff_ids) {
        let id = LayerId::parse(diff_id).map_err(|_| invalid(format!("diff_id {diff_id:?} is not a sha256 digest")))?;
        if !descriptor.digest.starts_with("sha256:") {
            return Err(invalid(format!("layer digest {:?} is not a sha256 digest", descriptor.digest)));
        }
        let compression =
            Compression::of_media_type(&descriptor.media_type).ok_or_else(|| ImageError::UnsupportedMediaType {
                what: format!("layer {} of {reference}", descriptor.digest),
                media_type: descriptor.media_type.clone(),
            })?;
        wanted.push(Wanted { descriptor: descriptor.clone(), id, compression });
    }
    let count = wanted.len();
    progress(PullEvent::Resolved { manifest_digest: resolved.manifest_digest.clone(), layers: count });
    // The futures are built first: a stream that maps borrowed items through a closure would make the
    // pull's future not provably `Send` (rustc's higher-ranked lifetime limitation), so not spawnable.
    let failed = AtomicBool::new(false);
    // A content listed twice (identical layers) is fetched once.
    let mut seen = std::collections::HashSet::new();
    let layer_futures: Vec<_> = wanted
        .iter()
        .enumerate()
        .filter(|(_, layer)| seen.insert(&layer.id))
        .map(|(index, layer)| fetch_layer(store, remote, layer, (index, count), progress, &failed))
        .collect();
    // Every started layer is awaited, even after a failure (an unpack on a blocking thread cannot be
    // cancelled, and a pull that returned must not still be writing); the first failure is the result.
    let results: Vec<ImageResult<()>> =
        futures::stream::iter(layer_futures).buffer_unordered(LAYER_CONCURRENCY).collect().await;
    results.into_iter().collect::<ImageResult<Vec<()>>>()?;
    Ok(PulledImage {
        manifest_digest: resolved.manifest_digest,
        index_digest: resolved.index_digest,
        layers: wanted.into_iter().map(|layer| layer.id).collect(),
        config: parsed.config,
    })
}

/// Downloads, unpacks and publishes one layer unless the store holds it; once another layer `failed`,
/// a layer not yet downloaded is skipped.
async fn fetch_layer(
    store: &LayerStore,
    remote: &Remote,
    layer: &Wanted,
    position: (usize, usize),
    progress: &(dyn Fn(PullEvent) + Send + Sync),
    failed: &AtomicBool,
) -> ImageResult<()> {
    if failed.load(Ordering::Relaxed) {
        return Ok(());
    }
    let result = fetch_one_layer(store, remote, layer, position, progress, failed).await;
    if result.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    result
}

async fn fetch_one_layer(
    store: &LayerStore,
    remote: &Remote,
    layer: &Wanted,
    (index, count): (usize, usize),
    progress: &(dyn Fn(PullEvent) + Send + Sync),
    failed: &AtomicBool,
) -> ImageResult<()> {
    if store.contains(&layer.id) {
        progress(PullEvent::LayerCached { index, count, id: layer.id.clone() });
        return Ok(());
    }
    let staging = store.stage()?;
    let blob = staging.blob_path();
    remote.download(&layer.descriptor, &blob, (index, count), progress, failed).await?;
    progress(PullEvent::LayerUnpacking { index, count });
    let (id, compression) = (layer.id.clone(), layer.compression);
    let source =
        LayerSource::Oci { digest: layer.descriptor.digest.clone(), media_type: layer.descriptor.media_type.clone() };
    let task = tokio::task::spawn_blocking(move || {
        let file = File::open(&blob).map_err(|source| ImageError::Store {
            context: "reading a downloaded layer".to_owned(),
            path: blob.clone(),
            source,
        })?;
        staging.unpack(BufReader::new(file), compression, &id)?;
        staging.publish(&id, source)
    });
    let info = task.await.map_err(|error| ImageError::LayerUnpack {
        layer: layer.id.to_string(),
        detail: format!("the unpacking task failed: {error}"),
    })??;
    progress(PullEvent::LayerPublished { index, count, id: info.id, size_bytes: info.size_bytes });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only if a pull's future can be handed to `tokio::spawn` (it is `Send + 'static` once its
    /// inputs are owned).
    fn spawn_pull(
        store: LayerStore,
        config: RegistryConfig,
        reference: ImageReference,
        auth: RegistryAuth,
    ) -> tokio::task::JoinHandle<ImageResult<PulledImage>> {
        tokio::spawn(async move {
            let progress = |event: PullEvent| tracing::info!(%event);
            pull(&store, &config, &reference, &auth, &progress).await
        })
    }

    #[test]
    fn a_pull_can_be_spawned() {
        let _ = spawn_pull;
    }

    #[test]
    fn events_read_as_log_lines() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
        let id = LayerId::for_cache_key("x");
        let cached = PullEvent::LayerCached { index: 0, count: 2, id: id.clone() };
        assert_eq!(cached.to_string(), format!("layer 1/2 {id}: already present"));
        let progress = PullEvent::LayerProgress { index: 1, count: 2, downloaded: 16 << 20, size: 32 << 20 };
        assert_eq!(progress.to_string(), "layer 2/2 16.0 MiB of 32.0 MiB");
    }
}
