//! The sandbox filesystem as the files API sees it: path resolution, metadata, single-path operations,
//! listing, searches, replace, streaming uploads and directory archives.

pub mod archive;
pub mod info;
pub mod list;
pub mod ops;
pub mod paths;
pub mod replace;
pub mod search;
pub mod target;
pub mod upload;
