//! The HTTP side of the daemon: the route table and one module per group of routes.

mod capture;
mod clipboard;
mod extract;
mod health;
mod info;
mod input;
mod launch;
mod recording;
mod router;
mod windows;

pub use router::router;

/// The answer of operations that return nothing (the client parses any non-empty body as JSON).
fn done() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({}))
}
