//! `GET /v1/desktop/viewer-assets/{*path}`: the noVNC files of the desktop viewer (no auth: they are the
//! public noVNC library). They are vendored at build time by `scripts/fetch-novnc.sh` into `novnc/` beside
//! the server binary (or `$NULLSPACE_NOVNC_DIR`), never fetched from a CDN. Paths never leave that
//! directory: only plain relative components are accepted, and the resolved file must lie inside it.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use nullspace_types::ErrorCode;

use super::extract::Path;
use super::{ApiError, AppState};

/// Environment variable overriding where the noVNC files are.
pub const NOVNC_DIR_ENV: &str = "NULLSPACE_NOVNC_DIR";

/// Where the noVNC files are: `$NULLSPACE_NOVNC_DIR`, else `novnc/` beside the running binary (a build
/// tree), else `../share/nullspace/novnc` from it (`scripts/install.sh`).
pub fn novnc_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(NOVNC_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let Some(bin) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(FsPath::to_path_buf)) else {
        return PathBuf::from("novnc");
    };
    let beside = bin.join("novnc");
    let shared = bin.join("../share/nullspace/novnc");
    if !beside.is_dir() && shared.is_dir() {
        return shared;
    }
    beside
}

/// The content type of an asset, by extension; `None` for files the viewer never loads.
fn content_type(path: &FsPath) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let extension = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    Some(match extension.as_deref() {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("md" | "txt") => "text/plain; charset=utf-8",
        None if name.starts_with("LICENSE") || name == "AUTHORS" => "text/plain; charset=utf-8",
        Some(_) if name.starts_with("LICENSE") => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// `path` as a relative path of plain components (no `..`, no root, no hidden names), or `None`.
pub(super) fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return None;
    }
    let mut clean = PathBuf::new();
    for component in FsPath::new(path).components() {
        match component {
            Component::Normal(part) if !part.to_str()?.starts_with('.') => clean.push(part),
            _ => return None,
        }
    }
    Some(clean)
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no desktop viewer asset {path}"))
}

/// `GET /v1/desktop/viewer-assets/{*path}`.
pub async fn get(State(state): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let Some(root) = state.desktop.assets.as_deref() else {
        return Err(ApiError::new(
            ErrorCode::FeatureUnavailable,
            format!("this server has no noVNC files (run scripts/fetch-novnc.sh, or set {NOVNC_DIR_ENV})"),
        ));
    };
    let relative = safe_relative(&path).ok_or_else(|| not_found(&path))?;
    let content_type = content_type(&relative).ok_or_else(|| not_found(&path))?;
    let file = resolve(root, &relative).await.ok_or_else(|| not_found(&path))?;
    let bytes = tokio::fs::read(&file).await.map_err(|_| not_found(&path))?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

/// The regular file `relative` below `root`, following no link out of `root`.
async fn resolve(root: &FsPath, relative: &FsPath) -> Option<PathBuf> {
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let file = tokio::fs::canonicalize(root.join(relative)).await.ok()?;
    let is_file = tokio::fs::metadata(&file).await.ok()?.is_file();
    (is_file && file.starts_with(&root)).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert_eq!(safe_relative("core/rfb.js"), Some(PathBuf::from("core/rfb.js")));
        assert_eq!(
            safe_relative("vendor/pako/lib/zlib/inflate.js"),
            Some(PathBuf::from("vendor/pako/lib/zlib/inflate.js"))
        );
        for bad in ["", "../etc/passwd", "core/../../x.js", "/etc/passwd", ".git/config", "core/.hidden.js", "a\\b.js"]
        {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn assets_get_their_content_types() {
        assert_eq!(content_type(FsPath::new("core/rfb.js")), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type(FsPath::new("LICENSE.txt")), Some("text/plain; charset=utf-8"));
        assert_eq!(content_type(FsPath::new("docs/LICENSE.MPL-2.0")), Some("text/plain; charset=utf-8"));
        assert_eq!(content_type(FsPath::new("package.json")), Some("application/json"));
        assert_eq!(content_type(FsPath::new("core/rfb.exe")), None);
        assert_eq!(content_type(FsPath::new("Makefile")), None);
    }

    #[tokio::test]
    async fn links_out_of_the_root_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("novnc");
        std::fs::create_dir_all(root.join("core")).unwrap();
        std::fs::write(root.join("core/rfb.js"), "export default 1;").unwrap();
        std::fs::write(dir.path().join("secret.js"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.js"), root.join("core/leak.js")).unwrap();
        assert!(resolve(&root, FsPath::new("core/rfb.js")).await.is_some());
        assert_eq!(resolve(&root, FsPath::new("core/leak.js")).await, None);
        assert_eq!(resolve(&root, FsPath::new("core")).await, None, "directories are not files");
        assert_eq!(resolve(&root, FsPath::new("core/none.js")).await, None);
    }
}
