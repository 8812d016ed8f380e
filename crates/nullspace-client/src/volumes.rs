//! Volume endpoints (`/v1/volumes…`): create, list, get by id or name, resolve a reference, delete,
//! attachments; and a running sandbox's attachments (`/v1/sandboxes/{id}/volumes…`: list, attach,
//! detach, health, remount). Their files are a [`crate::Files`] handle (`client.volume_files(id)`).

use nullspace_types::volume::{CreateVolumeRequest, VolumeAttachment, VolumeInfo, VolumeMountRequest};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::{segment, Client};
use crate::error::ClientError;

impl Client {
    /// `POST /v1/volumes`, with a size limit in bytes (`None`: the server's default).
    pub async fn create_volume(&self, name: &str, max_size_bytes: Option<u64>) -> Result<VolumeInfo, ClientError> {
        let body = CreateVolumeRequest { name: name.to_owned(), max_size_bytes };
        self.send_json(self.request(Method::POST, "/v1/volumes")?.json(&body)).await
    }

    /// `GET /v1/volumes`.
    pub async fn list_volumes(&self) -> Result<Vec<VolumeInfo>, ClientError> {
        self.volume_get("/v1/volumes", &[]).await
    }

    /// `GET /v1/volumes?fields=…`: only the named fields of each volume.
    pub async fn list_volume_fields(&self, fields: &[String]) -> Result<Vec<Value>, ClientError> {
        self.volume_get("/v1/volumes", fields).await
    }

    /// `GET /v1/volumes/{vid}`.
    pub async fn get_volume(&self, id: &str) -> Result<VolumeInfo, ClientError> {
        self.volume_get(&format!("/v1/volumes/{}", segment(id)), &[]).await
    }

    /// `GET /v1/volumes/by-name/{name}`; a miss is a 404 `not_found`.
    pub async fn get_volume_by_name(&self, name: &str) -> Result<VolumeInfo, ClientError> {
        self.volume_get(&format!("/v1/volumes/by-name/{}", segment(name)), &[]).await
    }

    /// The volume `reference` names: a `vol_…` id is looked up as an id first, anything else as a name
    /// first, each falling back to the other on a 404 (as the official CLI does).
    pub async fn resolve_volume(&self, reference: &str) -> Result<VolumeInfo, ClientError> {
        let by_id = reference.starts_with("vol_");
        let first = if by_id { self.get_volume(reference).await } else { self.get_volume_by_name(reference).await };
        match first {
            Err(error) if error.status() == Some(404) => {
                let second =
                    if by_id { self.get_volume_by_name(reference).await } else { self.get_volume(reference).await };
                // A miss both ways reports the first lookup's error.
                second.map_err(|other| if other.status() == Some(404) { error } else { other })
            }
            other => other,
        }
    }

    /// `GET /v1/volumes/{vid}?fields=…`: only the named fields.
    pub async fn volume_fields(&self, id: &str, fields: &[String]) -> Result<Value, ClientError> {
        self.volume_get(&format!("/v1/volumes/{}", segment(id)), fields).await
    }

    /// `DELETE /v1/volumes/{vid}` (`volume_busy` while a live sandbox mounts it).
    pub async fn delete_volume(&self, id: &str) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::DELETE, &format!("/v1/volumes/{}", segment(id)))?).await
    }

    /// `GET /v1/volumes/{vid}/attachments`.
    pub async fn volume_attachments(&self, id: &str) -> Result<Vec<VolumeAttachment>, ClientError> {
        self.volume_get(&format!("/v1/volumes/{}/attachments", segment(id)), &[]).await
    }

    /// `GET /v1/sandboxes/{id}/volumes`.
    pub async fn sandbox_volumes(&self, sandbox_id: &str) -> Result<Vec<VolumeAttachment>, ClientError> {
        self.volume_get(&format!("/v1/sandboxes/{}/volumes", segment(sandbox_id)), &[]).await
    }

    /// `POST /v1/sandboxes/{id}/volumes`: mounts a volume into the running sandbox.
    pub async fn attach_volume(
        &self,
        sandbox_id: &str,
        mount: &VolumeMountRequest,
    ) -> Result<VolumeAttachment, ClientError> {
        let path = format!("/v1/sandboxes/{}/volumes", segment(sandbox_id));
        self.send_json(self.request(Method::POST, &path)?.json(mount)).await
    }

    /// `DELETE /v1/sandboxes/{id}/volumes/{att}`: the attachment, `released`.
    pub async fn detach_volume(&self, sandbox_id: &str, attachment_id: &str) -> Result<VolumeAttachment, ClientError> {
        let path = format!("/v1/sandboxes/{}/volumes/{}", segment(sandbox_id), segment(attachment_id));
        self.send_json(self.request(Method::DELETE, &path)?).await
    }

    /// `GET /v1/sandboxes/{id}/volumes/{att}/health`: the attachment with its mount probed now.
    pub async fn volume_health(&self, sandbox_id: &str, attachment_id: &str) -> Result<VolumeAttachment, ClientError> {
        let path = format!("/v1/sandboxes/{}/volumes/{}/health", segment(sandbox_id), segment(attachment_id));
        self.volume_get(&path, &[]).await
    }

    /// `POST /v1/sandboxes/{id}/volumes/{att}/remount`.
    pub async fn remount_volume(&self, sandbox_id: &str, attachment_id: &str) -> Result<VolumeAttachment, ClientError> {
        let path = format!("/v1/sandboxes/{}/volumes/{}/remount", segment(sandbox_id), segment(attachment_id));
        self.send_json(self.request(Method::POST, &path)?).await
    }

    async fn volume_get<T: DeserializeOwned>(&self, path: &str, fields: &[String]) -> Result<T, ClientError> {
        let mut builder = self.request(Method::GET, path)?;
        if !fields.is_empty() {
            builder = builder.query(&[("fields", fields.join(","))]);
        }
        self.send_json(builder).await
    }
}
