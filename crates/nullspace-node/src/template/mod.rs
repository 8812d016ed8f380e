//! Template layers: the read-only root filesystems sandboxes start from, built from recipes under
//! `images/` and cached under `<data-dir>/templates`.

mod build;
mod error;
pub(crate) mod fsutil;
mod mirrors;
mod recipe;
mod store;

pub use error::TemplateError;
pub use mirrors::{AptSource, MirrorPlan};
pub use recipe::{Recipe, RecipeFile, BASE_TEMPLATE};
pub use store::{TemplateLayer, TemplateStore};
