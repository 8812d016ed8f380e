//! `POST /execute`: runs code in a context and streams its events as SSE (`data: {json}` lines, `: ping`
//! comments every `--keepalive-secs` while nothing else is sent); the stream ends when the execution
//! does. Bad input (unknown context or language, invalid envs) is a JSON error before any streaming.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use nullspace_types::code_api::ExecuteRequest;
use tokio::sync::mpsc;

use super::extract::JsonBody;
use crate::error::GatewayResult;
use crate::exec::envs::env_snippets;
use crate::exec::execution::Job;
use crate::state::Shared;

/// `POST /execute`.
pub async fn execute(
    State(gateway): State<Shared>,
    JsonBody(request): JsonBody<ExecuteRequest>,
) -> GatewayResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let keepalive = gateway.options.keepalive;
    let context = gateway.resolve(request.language.as_deref(), request.context_id.as_deref()).await?;
    let envs = env_snippets(&context.info.language, &request.envs).map_err(crate::error::GatewayError::invalid)?;
    let job = Job { code: request.code, envs, timeout: request.timeout.filter(|t| *t > 0).map(Duration::from_secs) };
    let (events, received) = mpsc::channel(256);
    tokio::spawn(async move {
        context.execute(&job, &events, &gateway.artifacts, gateway.options.max_output_bytes, || true).await;
    });
    let stream = futures::stream::unfold(received, |mut received| async move {
        let event = received.recv().await?;
        let json = serde_json::to_string(&event).unwrap_or_default();
        Some((Ok(Event::default().data(json)), received))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(keepalive).text("ping")))
}
