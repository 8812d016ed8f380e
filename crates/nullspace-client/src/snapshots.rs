//! Snapshots: hibernate, create a snapshot, resume, fork.

use nullspace_types::lifecycle::SnapshotInfo;
use nullspace_types::sandbox::SandboxInfo;
use reqwest::Method;

use crate::client::segment;
use crate::{Client, ClientError};

/// Hibernate, resume and fork can take a while on a busy host.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

impl Client {
    /// `POST /v1/sandboxes/{id}/hibernate`: saves the sandbox and releases it; it stays listed as paused.
    pub async fn hibernate(&self, id: &str) -> Result<SnapshotInfo, ClientError> {
        let path = format!("/v1/sandboxes/{}/hibernate", segment(id));
        self.send_json(self.request(Method::POST, &path)?.timeout(SNAPSHOT_TIMEOUT)).await
    }

    /// `POST /v1/sandboxes/{id}/snapshots`: a snapshot of a running sandbox, which keeps running.
    pub async fn create_snapshot(&self, id: &str) -> Result<SnapshotInfo, ClientError> {
        let path = format!("/v1/sandboxes/{}/snapshots", segment(id));
        let builder = self
            .request(Method::POST, &path)?
            .header("Idempotency-Key", crate::sandboxes::new_idempotency_key())
            .timeout(SNAPSHOT_TIMEOUT);
        self.send_json(builder).await
    }

    /// `POST /v1/sandboxes/{snapshot_id}/resume`: a new running sandbox from a snapshot.
    pub async fn resume(&self, snapshot_id: &str) -> Result<SandboxInfo, ClientError> {
        let path = format!("/v1/sandboxes/{}/resume", segment(snapshot_id));
        self.send_json(self.request(Method::POST, &path)?.timeout(SNAPSHOT_TIMEOUT)).await
    }

    /// `POST /v1/sandboxes/{id}/fork`: an independent copy of a running sandbox.
    pub async fn fork(&self, id: &str) -> Result<SandboxInfo, ClientError> {
        let path = format!("/v1/sandboxes/{}/fork", segment(id));
        let builder = self
            .request(Method::POST, &path)?
            .header("Idempotency-Key", crate::sandboxes::new_idempotency_key())
            .timeout(SNAPSHOT_TIMEOUT);
        self.send_json(builder).await
    }
}
