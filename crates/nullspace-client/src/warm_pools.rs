//! Template warm pools (`/v1/template-warm-pools`) and creates that claim from them. Pools are plain JSON
//! objects here (the server's wire object); the bench and scripts read the fields they need.

use std::time::Duration;

use nullspace_types::sandbox::{CreateSandboxRequest, SandboxInfo};
use reqwest::Method;
use serde_json::Value;

use crate::client::{segment, Client};
use crate::error::ClientError;

const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

impl Client {
    /// `POST /v1/template-warm-pools` with `body` (`template_ref`, `name`, `min_ready`, `max_ready`, …).
    pub async fn create_warm_pool(&self, body: &Value) -> Result<Value, ClientError> {
        let builder = self.request(Method::POST, "/v1/template-warm-pools")?.json(body);
        self.send_json(builder).await
    }

    /// `GET /v1/template-warm-pools/{id}`.
    pub async fn get_warm_pool(&self, id: &str) -> Result<Value, ClientError> {
        let builder = self.request(Method::GET, &format!("/v1/template-warm-pools/{}", segment(id)))?;
        self.send_json(builder).await
    }

    /// `DELETE /v1/template-warm-pools/{id}`: its idle sandboxes go, claimed ones stay.
    pub async fn delete_warm_pool(&self, id: &str) -> Result<(), ClientError> {
        let builder = self.request(Method::DELETE, &format!("/v1/template-warm-pools/{}", segment(id)))?;
        self.send_empty(builder).await
    }

    /// `POST /v1/sandboxes` with `warm_pool: {id, mode}`: claims a ready sandbox of the pool (`prefer`
    /// falls back to a cold create, `require` fails with `warm_pool_unavailable`).
    pub async fn create_sandbox_from_pool(
        &self,
        request: &CreateSandboxRequest,
        pool_id: &str,
        mode: &str,
    ) -> Result<(SandboxInfo, Option<Value>), ClientError> {
        let mut body = serde_json::to_value(request).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut body {
            map.insert("warm_pool".into(), serde_json::json!({"id": pool_id, "mode": mode}));
        }
        let builder = self
            .request(Method::POST, "/v1/sandboxes")?
            .header("Idempotency-Key", crate::sandboxes::new_idempotency_key())
            .timeout(CREATE_TIMEOUT)
            .json(&body);
        let answer: Value = self.send_json(builder).await?;
        let checkout = answer.get("warm_pool_checkout").cloned();
        let info = serde_json::from_value(answer)
            .map_err(|source| ClientError::Decode { url: self.url("/v1/sandboxes"), source })?;
        Ok((info, checkout))
    }
}
