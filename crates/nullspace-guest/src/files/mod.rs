//! The sandbox filesystem as the files API sees it: path resolution, the acting user's credentials,
//! metadata, single-path operations, bounded walks (listing, searches), replace, streaming uploads and
//! downloads, and directory archives.

pub mod archive;
pub mod as_user;
pub mod bulk;
pub mod info;
pub mod list;
pub mod ops;
pub mod paths;
pub mod replace;
pub mod search;
pub mod target;
pub mod upload;
pub mod walk;
