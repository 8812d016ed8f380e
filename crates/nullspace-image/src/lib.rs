//! Container images for template builds: pulling images from OCI registries (`registry`), unpacking
//! their layers with OCI whiteout semantics into the host's content-addressed layer store (`layers`),
//! and the Dockerfile front end that turns a Dockerfile into build stages (`dockerfile`). Nothing here
//! runs a sandbox: the control plane executes the stages on the node.
#![warn(missing_docs)]

pub mod dockerfile;
pub mod error;
pub mod layers;
pub mod registry;

pub use error::{ImageError, ImageResult};
