//! The file commands shared by `sandbox file …` and `volume …`: each takes a client [`Files`] handle
//! (a sandbox's or a volume's) and a label naming it in errors, calls it, and prints the result as JSON
//! or as short lines and tables.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use nullspace_client::types::files_api::{FileInfo, FileType};
use nullspace_client::{Files, FilesOwner, UploadMode, UploadOptions, UploadOutcome};

use crate::cli::EncodingArg;
use crate::commands::progress::{self, Transfer};
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// Prints a file: exact bytes (`utf8`, sandbox), the server's UTF-8 text (`utf8`, volume: one request
/// instead of a signed URL round trip), or base64 of the bytes.
pub async fn read(
    files: &Files<'_>,
    label: &str,
    path: &str,
    encoding: EncodingArg,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let context = || format!("could not read {path} in {label}");
    let bytes = match (encoding, files.owner()) {
        (EncodingArg::Utf8, FilesOwner::Volume) => files.read_text(path).await.with_context(context)?.into_bytes(),
        _ => files.read_bytes(path).await.with_context(context)?,
    };
    let base64 = || base64::engine::general_purpose::STANDARD.encode(&bytes);
    match (encoding, json) {
        (EncodingArg::Utf8, false) => std::io::stdout().lock().write_all(&bytes)?,
        (EncodingArg::Base64, false) => println!("{}", base64()),
        (EncodingArg::Utf8, true) => print_json(
            &serde_json::json!({"path": path, "encoding": "utf8", "content": String::from_utf8_lossy(&bytes)}),
        )?,
        (EncodingArg::Base64, true) => {
            print_json(&serde_json::json!({"path": path, "encoding": "base64", "content": base64()}))?
        }
    }
    Ok(ExitStatus::Success)
}

/// Prints a UTF-8 text file exactly; binary content is an error that points to `download`.
pub async fn cat(files: &Files<'_>, label: &str, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let bytes = files.read_bytes(path).await.with_context(|| format!("could not read {path} in {label}"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        UserError::new(
            format!("{path} is not valid UTF-8 text"),
            Some("use `nullspace volume download` or `read --encoding base64` for binary files"),
        )
    })?;
    if json {
        print_json(&serde_json::json!({"path": path, "content": text}))?;
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    }
    Ok(ExitStatus::Success)
}

/// Writes stdin to `path`: as text when it is UTF-8 (`utf8`), else as bytes; `base64` decodes it first.
pub async fn write_stdin(
    files: &Files<'_>,
    label: &str,
    path: &str,
    encoding: EncodingArg,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).context("could not read stdin")?;
    if encoding == EncodingArg::Base64 {
        let text = String::from_utf8_lossy(&bytes);
        bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|error| {
            UserError::new(format!("stdin is not valid base64: {error}"), Some("drop --encoding base64 for raw input"))
        })?;
    }
    let written = match String::from_utf8(bytes) {
        Ok(text) => files.write_text(path, &text).await,
        Err(binary) => files.write_bytes(path, binary.as_bytes()).await,
    };
    let info = written.with_context(|| format!("could not write {path} in {label}"))?;
    print_info(&info, json, "wrote")
}

/// Writes each `(path, content)` in order; every failure is reported, and any makes the command fail.
pub async fn write_many(
    files: &Files<'_>,
    label: &str,
    entries: &[(String, String)],
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let mut written = Vec::new();
    let mut failures = Vec::new();
    for (path, content) in entries {
        match files.write_text(path, content).await {
            Ok(info) => written.push(info),
            Err(error) => failures.push(format!("{path}: {error}")),
        }
    }
    if !failures.is_empty() {
        let message = format!(
            "{} of {} files could not be written in {label} ({} written):\n  {}",
            failures.len(),
            entries.len(),
            written.len(),
            failures.join("\n  ")
        );
        return Err(UserError::new(message, Some("fix those paths and run the command again")).into());
    }
    if json {
        print_json(&written)?;
    } else {
        for info in &written {
            println!("wrote {} ({} bytes)", info.path, info.size);
        }
    }
    Ok(ExitStatus::Success)
}

/// Lists a directory.
pub async fn list(
    files: &Files<'_>,
    label: &str,
    path: &str,
    depth: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let entries = files.list(path, depth).await.with_context(|| format!("could not list {path} in {label}"))?;
    if json {
        print_json(&entries)?;
    } else if entries.is_empty() {
        eprintln!("{path} is empty");
    } else {
        print_table(&FILE_HEADERS, &entries.iter().map(row).collect::<Vec<_>>())?;
    }
    Ok(ExitStatus::Success)
}

/// Says whether `path` exists; exit 1 when it does not.
pub async fn exists(files: &Files<'_>, label: &str, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let exists = files.exists(path).await.with_context(|| format!("could not check {path} in {label}"))?;
    if json {
        print_json(&serde_json::json!({"path": path, "exists": exists}))?;
    } else {
        println!("{exists}");
    }
    Ok(if exists { ExitStatus::Success } else { ExitStatus::Failure })
}

/// Shows a path's metadata.
pub async fn info(files: &Files<'_>, label: &str, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = files.info(path).await.with_context(|| format!("could not stat {path} in {label}"))?;
    print_info(&info, json, "")
}

/// Creates a directory and its parents.
pub async fn mkdir(files: &Files<'_>, label: &str, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    files.make_dir(path).await.with_context(|| format!("could not create {path} in {label}"))?;
    done(json, serde_json::json!({"path": path}), &format!("created {path}"))
}

/// Moves a path.
pub async fn mv(files: &Files<'_>, label: &str, from: &str, to: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = files.rename(from, to).await.with_context(|| format!("could not move {from} in {label}"))?;
    print_info(&info, json, "moved to")
}

/// Changes permissions.
pub async fn chmod(files: &Files<'_>, label: &str, path: &str, mode: &str, json: bool) -> anyhow::Result<ExitStatus> {
    files.chmod(path, mode).await.with_context(|| format!("could not chmod {path} in {label}"))?;
    done(json, serde_json::json!({"path": path, "mode": mode}), &format!("{path}: {mode}"))
}

/// Removes a path (recursively).
pub async fn rm(files: &Files<'_>, label: &str, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    files.remove(path).await.with_context(|| format!("could not remove {path} in {label}"))?;
    done(json, serde_json::json!({"path": path, "removed": true}), &format!("removed {path}"))
}

/// Prints the lines containing `pattern` as `file:line:content` (grep style).
pub async fn find(files: &Files<'_>, label: &str, path: &str, pattern: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let matches = files.find(path, pattern).await.with_context(|| format!("could not search {path} in {label}"))?;
    if json {
        print_json(&matches)?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for found in &matches {
            writeln!(stdout, "{}:{}:{}", found.file, found.line, found.content)?;
        }
    }
    Ok(ExitStatus::Success)
}

/// Prints the paths whose name matches the glob `pattern`, one per line.
pub async fn search(
    files: &Files<'_>,
    label: &str,
    path: &str,
    pattern: &str,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let paths = files.search(path, pattern).await.with_context(|| format!("could not search {path} in {label}"))?;
    if json {
        print_json(&paths)?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for path in &paths {
            writeln!(stdout, "{path}")?;
        }
    }
    Ok(ExitStatus::Success)
}

/// Replaces `old` with `new` in `paths` (or counts, with `dry_run`).
pub async fn replace(
    files: &Files<'_>,
    label: &str,
    old: &str,
    new: &str,
    paths: &[String],
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let result =
        files.replace(paths, old, new, dry_run).await.with_context(|| format!("could not replace text in {label}"))?;
    if json {
        print_json(&result)?;
    } else {
        let verb = if result.dry_run { "would replace" } else { "replaced" };
        println!(
            "{verb} {} occurrence(s) in {} file(s); {} without a match, {} binary skipped",
            result.replacements, result.files_modified, result.files_skipped, result.binary_files_skipped
        );
    }
    Ok(ExitStatus::Success)
}

/// Uploads a local file or directory (`-`: stdin, spooled to a temporary file first) with progress on a
/// terminal; prints what the official CLI prints (`source_kind`, `target_path`, `transport`, `result`).
pub async fn upload(
    files: &Files<'_>,
    label: &str,
    local: &Path,
    remote: Option<&str>,
    mode: UploadMode,
    concurrency: Option<u32>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let stdin = local.as_os_str() == "-";
    let spooled = if stdin { Some(spool_stdin()?) } else { None };
    let source = spooled.as_ref().map_or(local, |file| file.path());
    let metadata = std::fs::metadata(source).map_err(|error| {
        UserError::new(format!("cannot upload {}: {error}", local.display()), Some("check the local path"))
    })?;
    let name = local.file_name().map(|name| name.to_string_lossy().into_owned());
    let remote = upload_destination(remote, if stdin { None } else { name.as_deref() })?;
    let source_kind = if stdin {
        "stdin"
    } else if metadata.is_dir() {
        "directory"
    } else {
        "file"
    };
    let transfer = progress::wanted(json).then(|| Transfer::new(format!("uploading {}", local.display())));
    let options = UploadOptions { mode, concurrency, progress: transfer.as_ref().map(Transfer::callback) };
    let result = if metadata.is_dir() {
        files.upload_dir(source, &remote, &options).await
    } else {
        files.upload_file(source, &remote, &options).await
    };
    if let Some(transfer) = transfer {
        transfer.finish();
    }
    let outcome = result.with_context(|| format!("could not upload {} to {remote} in {label}", local.display()))?;
    print_upload(&outcome, source_kind, json)?;
    Ok(ExitStatus::Success)
}

/// The remote path of an upload: given, given with the local name appended (trailing `/`), or the local
/// name.
fn upload_destination(remote: Option<&str>, local_name: Option<&str>) -> anyhow::Result<String> {
    let needs_name =
        || UserError::new("this upload needs a destination file path", Some("pass REMOTE, e.g. /data/file.bin"));
    match (remote, local_name) {
        (Some(remote), Some(name)) if remote.ends_with('/') => Ok(format!("{remote}{name}")),
        (Some(remote), None) if remote.ends_with('/') => Err(needs_name().into()),
        (Some(remote), _) => Ok(remote.to_owned()),
        (None, Some(name)) => Ok(name.to_owned()),
        (None, None) => Err(needs_name().into()),
    }
}

fn spool_stdin() -> anyhow::Result<tempfile::NamedTempFile> {
    let mut spooled = tempfile::NamedTempFile::new().context("could not create a temporary file for stdin")?;
    std::io::copy(&mut std::io::stdin().lock(), spooled.as_file_mut()).context("could not read stdin")?;
    Ok(spooled)
}

fn print_upload(outcome: &UploadOutcome, source_kind: &str, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::json!({
            "source_kind": source_kind,
            "target_path": outcome.target_path,
            "transport": outcome.transport,
            "resumed": outcome.resumed,
            "result": outcome,
        }));
    }
    let transport = outcome.transport.as_str();
    let mut summary = if outcome.kind == "directory_tar" {
        format!("uploaded directory with {} entries to {} using {transport}", outcome.file_count, outcome.target_path)
    } else {
        format!("uploaded {} bytes to {} using {transport}", outcome.bytes_uploaded, outcome.target_path)
    };
    if let Some(id) = &outcome.upload_id {
        summary.push_str(&format!(" ({id})"));
    }
    println!("{summary}");
    Ok(())
}

/// Columns of file tables.
const FILE_HEADERS: [&str; 4] = ["MODE", "SIZE", "MODIFIED", "PATH"];

/// One file as JSON, a table with its owner (no verb), or `verb PATH (N bytes)`.
pub fn print_info(info: &FileInfo, json: bool, verb: &str) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(info)?;
    } else if verb.is_empty() {
        print_table(&FILE_HEADERS, &[row(info)])?;
        if let Some(owner) = &info.owner {
            println!("owner: {owner}:{}", info.group.as_deref().unwrap_or("?"));
        }
    } else {
        println!("{verb} {} ({} bytes)", info.path, info.size);
    }
    Ok(ExitStatus::Success)
}

/// `value` as JSON, or `line`.
pub fn done(json: bool, value: serde_json::Value, line: &str) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(&value)?;
    } else {
        println!("{line}");
    }
    Ok(ExitStatus::Success)
}

fn row(info: &FileInfo) -> Vec<String> {
    let kind = match info.file_type {
        Some(FileType::Dir) => 'd',
        Some(FileType::Symlink) => 'l',
        Some(FileType::File) => '-',
        None if info.is_dir => 'd',
        None => '-',
    };
    let mode = format!("{kind}{}", info.permissions.as_deref().unwrap_or("?????????"));
    let mut path = info.path.clone();
    if let Some(target) = &info.symlink_target {
        path.push_str(&format!(" -> {target}"));
    }
    vec![mode, info.size.to_string(), info.modified_time.clone().unwrap_or_default(), path]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_destinations_follow_the_official_client() {
        assert_eq!(upload_destination(Some("/m/model.bin"), Some("a.bin")).unwrap(), "/m/model.bin");
        assert_eq!(upload_destination(Some("/m/"), Some("a.bin")).unwrap(), "/m/a.bin");
        assert_eq!(upload_destination(None, Some("a.bin")).unwrap(), "a.bin");
        assert!(upload_destination(None, None).is_err());
        assert!(upload_destination(Some("/m/"), None).is_err());
        assert_eq!(upload_destination(Some("/m/x"), None).unwrap(), "/m/x");
    }
}
