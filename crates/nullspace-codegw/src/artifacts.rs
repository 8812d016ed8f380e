//! The artifact store: every image an execution displays, kept on disk under `<state>/artifacts` as
//! `<id>.<ext>` plus `<id>.json` (its record and list position), reloaded when the gateway restarts;
//! listed with filters and cursors, read and deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nullspace_types::code_api::{Artifact, ListArtifactsQuery, Page};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cursor;
use crate::error::{GatewayError, GatewayResult};
use crate::exec::outputs::extension_of;

/// The record of one artifact on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    seq: u64,
    artifact: Artifact,
}

/// The artifacts of this gateway.
#[derive(Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
    index: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    by_seq: BTreeMap<u64, Artifact>,
    next_seq: u64,
}

impl ArtifactStore {
    /// Opens (creating) `dir` and loads the records found there; unreadable records are skipped.
    pub fn open(dir: &Path) -> GatewayResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| GatewayError::storage(format!("create {}", dir.display()), e))?;
        let mut index = Index { next_seq: 1, ..Default::default() };
        let entries =
            std::fs::read_dir(dir).map_err(|e| GatewayError::storage(format!("read {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            match std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok()) {
                Some(stored) => {
                    index.next_seq = index.next_seq.max(stored.seq + 1);
                    index.by_seq.insert(stored.seq, stored.artifact);
                }
                None => tracing::warn!(path = %path.display(), "skipping an unreadable artifact record"),
            }
        }
        Ok(Self { dir: dir.to_owned(), index: Mutex::new(index) })
    }

    /// Stores `bytes` displayed by `context_id` at `execution_count` as the `n`-th image of that execution.
    pub fn save(
        &self,
        context_id: &str,
        execution_count: Option<i64>,
        n: usize,
        mime: &str,
        bytes: &[u8],
    ) -> GatewayResult<Artifact> {
        let id = crate::ids::new_id("art_");
        let extension = extension_of(mime);
        let stem = if mime == "image/svg+xml" { "image" } else { "figure" };
        let name = match execution_count {
            Some(count) => format!("{stem}-{count}-{n}.{extension}"),
            None => format!("{stem}-{n}.{extension}"),
        };
        let artifact = Artifact {
            id: id.clone(),
            context_id: context_id.to_owned(),
            kind: "image".into(),
            mime_type: mime.to_owned(),
            name,
            size_bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            created_at: crate::ids::now_rfc3339(),
            execution_count,
        };
        let data_path = self.dir.join(format!("{id}.{extension}"));
        std::fs::write(&data_path, bytes)
            .map_err(|e| GatewayError::storage(format!("write {}", data_path.display()), e))?;
        let mut index = self.lock();
        let seq = index.next_seq;
        index.next_seq += 1;
        let record = serde_json::to_vec(&Stored { seq, artifact: artifact.clone() }).unwrap_or_default();
        let record_path = self.dir.join(format!("{id}.json"));
        if let Err(error) = std::fs::write(&record_path, record) {
            let _ = std::fs::remove_file(&data_path);
            return Err(GatewayError::storage(format!("write {}", record_path.display()), error));
        }
        index.by_seq.insert(seq, artifact.clone());
        Ok(artifact)
    }

    /// One page of artifacts matching `query`, newest first.
    pub fn list(&self, query: &ListArtifactsQuery) -> GatewayResult<Page<Artifact>> {
        let limit = cursor::limit(query.limit)?;
        let index = self.lock();
        let matching = index.by_seq.iter().rev().filter(|(_, artifact)| {
            query.context_id.as_ref().is_none_or(|id| &artifact.context_id == id)
                && query.execution_count.is_none_or(|count| artifact.execution_count == Some(count))
                && query.kind.as_ref().is_none_or(|kind| &artifact.kind == kind)
        });
        let (items, next_cursor) =
            cursor::page(matching.map(|(seq, artifact)| (*seq, artifact.clone())), query.cursor.as_deref(), limit)?;
        Ok(Page { items, next_cursor })
    }

    /// The artifact `id`.
    pub fn get(&self, id: &str) -> GatewayResult<Artifact> {
        self.lock()
            .by_seq
            .values()
            .find(|artifact| artifact.id == id)
            .cloned()
            .ok_or_else(|| GatewayError::ArtifactNotFound { id: id.to_owned() })
    }

    /// The artifact `id` and its bytes.
    pub fn read(&self, id: &str) -> GatewayResult<(Artifact, Vec<u8>)> {
        let artifact = self.get(id)?;
        let path = self.data_path(&artifact);
        let bytes = std::fs::read(&path).map_err(|e| GatewayError::storage(format!("read {}", path.display()), e))?;
        Ok((artifact, bytes))
    }

    /// Deletes the artifact `id` and its files.
    pub fn delete(&self, id: &str) -> GatewayResult<()> {
        let artifact = {
            let mut index = self.lock();
            let seq = index.by_seq.iter().find(|(_, artifact)| artifact.id == id).map(|(seq, _)| *seq);
            let seq = seq.ok_or_else(|| GatewayError::ArtifactNotFound { id: id.to_owned() })?;
            index.by_seq.remove(&seq).ok_or_else(|| GatewayError::ArtifactNotFound { id: id.to_owned() })?
        };
        for path in [self.dir.join(format!("{}.json", artifact.id)), self.data_path(&artifact)] {
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), "cannot remove an artifact file: {error}");
                }
            }
        }
        Ok(())
    }

    fn data_path(&self, artifact: &Artifact) -> PathBuf {
        self.dir.join(format!("{}.{}", artifact.id, extension_of(&artifact.mime_type)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_stored_listed_filtered_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let png = store.save("ctx_a", Some(3), 1, "image/png", b"png-bytes").unwrap();
        let svg = store.save("ctx_b", Some(4), 1, "image/svg+xml", b"<svg/>").unwrap();
        assert_eq!((png.name.as_str(), png.size_bytes, png.kind.as_str()), ("figure-3-1.png", 9, "image"));
        assert_eq!(png.sha256, hex::encode(Sha256::digest(b"png-bytes")));
        assert_eq!(svg.name, "image-4-1.svg");

        let all = store.list(&ListArtifactsQuery::default()).unwrap();
        assert_eq!(all.items.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [svg.id.as_str(), png.id.as_str()]);
        let by_context =
            store.list(&ListArtifactsQuery { context_id: Some("ctx_a".into()), ..Default::default() }).unwrap();
        assert_eq!(by_context.items, std::slice::from_ref(&png));
        let by_count = store.list(&ListArtifactsQuery { execution_count: Some(4), ..Default::default() }).unwrap();
        assert_eq!(by_count.items, std::slice::from_ref(&svg));
        let paged = store.list(&ListArtifactsQuery { limit: Some(1), ..Default::default() }).unwrap();
        let rest = store
            .list(&ListArtifactsQuery { limit: Some(1), cursor: paged.next_cursor, ..Default::default() })
            .unwrap();
        assert_eq!((rest.items, rest.next_cursor), (vec![png.clone()], None));

        assert_eq!(store.read(&png.id).unwrap().1, b"png-bytes");
        store.delete(&png.id).unwrap();
        assert!(matches!(store.get(&png.id), Err(GatewayError::ArtifactNotFound { .. })));
        assert!(matches!(store.delete(&png.id), Err(GatewayError::ArtifactNotFound { .. })));

        let reopened = ArtifactStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list(&ListArtifactsQuery::default()).unwrap().items, [svg]);
        let newer = reopened.save("ctx_a", None, 2, "image/jpeg", b"j").unwrap();
        assert_eq!(reopened.list(&ListArtifactsQuery::default()).unwrap().items[0].id, newer.id, "numbering continues");
    }
}
