//! The HTTP side of the gateway: the route table and one module per group of routes.

mod artifacts;
mod contexts;
mod execute;
mod extract;
mod health;
mod router;
mod runs;

pub use router::router;
