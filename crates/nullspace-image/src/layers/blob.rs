//! Layer blobs: which media types are unpackable and how they are compressed, and unpacking a blob into
//! a directory while checking that the uncompressed stream hashes to the layer's diff_id.

use std::io::{self, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{unpack, LayerId};
use crate::error::{ImageError, ImageResult};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (possibly several concatenated members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression of a layer of media type `media_type`, or `None` for a media type that is not an
    /// unpackable layer (OCI and Docker v2 tar, tar+gzip, tar+zstd; "nondistributable"/"foreign" too).
    pub fn of_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The sha256 of everything read so far and the byte count.
    pub(crate) fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Unpacks the layer blob `blob` (compressed as `compression`) into `dest`, then checks that the
/// uncompressed stream (all of it, including anything after the tar's end marker) hashes to `diff_id`.
/// On any error the caller must discard `dest`.
pub(crate) fn unpack_verified(
    blob: impl Read,
    compression: Compression,
    diff_id: &LayerId,
    dest: &Path,
) -> ImageResult<()> {
    let failed = |detail: String| ImageError::LayerUnpack { layer: diff_id.to_string(), detail };
    let decoder: Box<dyn Read> = match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(blob))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(blob).map_err(|e| failed(format!("cannot start zstd decoding: {e}")))?,
        ),
    };
    let mut archive = tar::Archive::new(HashingReader::new(decoder));
    unpack::unpack(&mut archive, dest).map_err(|error| match error {
        unpack::UnpackError::Malformed(detail) => failed(detail),
        unpack::UnpackError::SpecialFile { path, kind } => {
            ImageError::UnsupportedSpecialFile { layer: diff_id.to_string(), path, entry_type: kind }
        }
    })?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| failed(format!("cannot read the end of the stream: {e}")))?;
    let (actual, _) = rest.finish();
    let actual = LayerId::from_sha256(actual);
    if &actual != diff_id {
        return Err(ImageError::DigestMismatch {
            what: "the uncompressed layer (image config rootfs.diff_ids)".to_owned(),
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_their_compression() {
        use Compression::*;
        for (media_type, expected) in [
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Some(Gzip)),
            ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Some(Gzip)),
            ("application/vnd.oci.image.config.v1+json", Option::None),
            ("application/octet-stream", Option::None),
        ] {
            assert_eq!(Compression::of_media_type(media_type), expected, "{media_type}");
        }
    }
}
