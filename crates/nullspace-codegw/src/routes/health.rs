//! `GET /health`: 200 once the default python context runs code, 503 before (or when it failed).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::error::{GatewayError, GatewayResult};
use crate::state::{Readiness, Shared};

/// The readiness probe.
pub async fn health(State(gateway): State<Shared>) -> GatewayResult<Json<Value>> {
    match gateway.readiness() {
        Readiness::Ready => Ok(Json(json!({"status": "ok", "languages": gateway.specs.available_languages()}))),
        Readiness::Starting => {
            Err(GatewayError::NotReady { message: "the default python kernel is starting; retry shortly".into() })
        }
        Readiness::Failed(why) => {
            Err(GatewayError::NotReady { message: format!("the default python kernel did not start: {why}") })
        }
    }
}
