//! guestd as a real process: resumable upload sessions (files and directory tars) and directory
//! archives.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
}

async fn create(guest: &Guest, body: Value, key: &str) -> Value {
    let (status, created) = guest
        .with_headers(
            "POST",
            "/uploads",
            &[("content-type", "application/json"), ("idempotency-key", key)],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created.as_object().unwrap().len(), 1, "wrapped: {created}");
    created["session"].clone()
}

async fn put_part(guest: &Guest, id: &str, n: u64, bytes: &[u8], sum: Option<&str>) -> (StatusCode, Value) {
    let digest = sum.map(str::to_owned).unwrap_or_else(|| sha(bytes));
    guest
        .with_headers(
            "PUT",
            &format!("/uploads/{id}/parts/{n}"),
            &[("content-type", "application/octet-stream"), ("x-nullspace-part-sha256", &digest)],
            bytes.to_vec(),
        )
        .await
}

async fn complete(guest: &Guest, id: &str, sum: Option<&str>) -> (StatusCode, Value) {
    let body = sum.map(|sum| json!({"whole_checksum_sha256": sum}).to_string()).unwrap_or_default();
    guest
        .with_headers(
            "POST",
            &format!("/uploads/{id}/complete"),
            &[("content-type", "application/json")],
            body.into_bytes(),
        )
        .await
}

fn assert_failure(status: StatusCode, body: &Value, expected: StatusCode, reason: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], "file_upload_error", "{body}");
    assert_eq!(body["error_detail"]["reason"], reason, "{body}");
    assert!(body["error_detail"]["message"].is_string() && body["error_detail"]["retryable"].is_boolean());
}

const SESSION_KEYS: [&str; 20] = [
    "upload_id",
    "kind",
    "source_kind",
    "target_path",
    "content_length",
    "accepted_bytes",
    "reserved_staging_bytes",
    "part_size",
    "part_count",
    "max_concurrency",
    "status",
    "conflict",
    "checksum_algorithm",
    "limits",
    "created_at",
    "updated_at",
    "expires_at",
    "next_part",
    "archive_format",
    "whole_checksum_sha256",
];

#[tokio::test]
async fn file_upload_out_of_order_resume_checksums_and_idempotent_complete() {
    let guest = Guest::start().await;
    let target = format!("{}/big/data.bin", guest.cwd());
    let data = pattern(20 * MIB);
    let body = json!({"kind": "file", "source_kind": "restartable_file", "target_path": "big/data.bin",
        "content_length": data.len(), "conflict": "merge", "archive_format": null, "checksum_algorithm": "sha256",
        "whole_checksum_sha256": null, "metadata": {}});
    let session = create(&guest, body.clone(), "key-1").await;
    let mut keys: Vec<&str> = session.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    let mut expected_keys = SESSION_KEYS.to_vec();
    expected_keys.sort();
    assert_eq!(keys, expected_keys, "strict keys, no user when unset");
    assert_eq!(session["limits"].as_object().unwrap().len(), 4);
    assert!(session["limits"]["sandbox_staging_quota_bytes"].as_u64().unwrap() > 0);
    let id = session["upload_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("up_"));
    assert_eq!(session["target_path"], target);
    assert_eq!((session["status"].clone(), session["next_part"].clone()), (json!("created"), json!(0)));
    let part_size = session["part_size"].as_u64().unwrap() as usize;
    assert_eq!(part_size, 8 * MIB);
    assert_eq!(session["part_count"], 3);
    let again = create(&guest, body, "key-1").await;
    assert_eq!(again["upload_id"], json!(id), "same idempotency key, same session");
    let parts: Vec<&[u8]> = data.chunks(part_size).collect();

    // Out of order; GET shows the first gap.
    let (status, after) = put_part(&guest, &id, 2, parts[2], None).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!((after["status"].clone(), after["next_part"].clone()), (json!("uploading"), json!(0)));
    assert_eq!(put_part(&guest, &id, 0, parts[0], None).await.0, StatusCode::OK);
    let (_, current) = guest.call("GET", &format!("/uploads/{id}"), None).await;
    assert_eq!(current["next_part"], 1);
    assert_eq!(current["accepted_bytes"], json!(parts[0].len() + parts[2].len()));

    // Bad parts are refused with the client's reasons.
    let (status, bad) = put_part(&guest, &id, 1, parts[1], Some(&"0".repeat(64))).await;
    assert_failure(status, &bad, StatusCode::BAD_REQUEST, "invalid_part_checksum");
    assert_eq!(bad["error_detail"]["part_number"], 1);
    let (status, bad) = put_part(&guest, &id, 1, &parts[1][..100], None).await;
    assert_failure(status, &bad, StatusCode::BAD_REQUEST, "part_size_mismatch");
    let (status, bad) = put_part(&guest, &id, 3, parts[2], None).await;
    assert_failure(status, &bad, StatusCode::BAD_REQUEST, "part_out_of_range");
    let (status, bad) = complete(&guest, &id, None).await;
    assert_failure(status, &bad, StatusCode::CONFLICT, "missing_parts");
    assert!(!std::path::Path::new(&target).exists());

    // Resume: the rest, a retried part, then complete (twice).
    assert_eq!(put_part(&guest, &id, 1, parts[1], None).await.0, StatusCode::OK);
    let (status, staged) = put_part(&guest, &id, 0, parts[0], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((staged["status"].clone(), staged["next_part"].clone()), (json!("staged"), Value::Null));
    let (status, done) = complete(&guest, &id, Some(&sha(&data))).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done.as_object().unwrap().len(), 3);
    assert_eq!((done["published_bytes"].clone(), done["published_file_count"].clone()), (json!(data.len()), json!(1)));
    assert_eq!(done["session"]["status"], "completed");
    assert!(std::fs::read(&target).unwrap() == data);
    let (status, twice) = complete(&guest, &id, Some(&sha(&data))).await;
    // The same answer, except for the live limits (the staging quota follows the disk's free space).
    let without_limits = |mut answer: Value| {
        answer["session"].as_object_mut().unwrap().remove("limits").expect("limits are reported");
        answer
    };
    assert_eq!((status, without_limits(twice)), (StatusCode::OK, without_limits(done.clone())));
    let (status, late) = put_part(&guest, &id, 0, parts[0], None).await;
    assert_failure(status, &late, StatusCode::CONFLICT, "upload_already_completed");
    assert_eq!(std::fs::read_dir(guest.staging().join(&id)).unwrap().count(), 1, "only session.json stays");

    // Overwrite without user keeps the mode; a wrong whole checksum publishes nothing.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let small = b"small new content".to_vec();
    let session = create(
        &guest,
        json!({"kind": "file", "source_kind": "spooled_stream", "target_path": target, "content_length": small.len()}),
        "key-2",
    )
    .await;
    let id = session["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(put_part(&guest, &id, 0, &small, None).await.0, StatusCode::OK);
    let (status, bad) = complete(&guest, &id, Some(&sha(b"other"))).await;
    assert_failure(status, &bad, StatusCode::BAD_REQUEST, "whole_checksum_mismatch");
    assert!(std::fs::read(&target).unwrap() == data, "target untouched");
    let (_, failed) = guest.call("GET", &format!("/uploads/{id}"), None).await;
    assert_eq!(failed["status"], "failed");
    let session = create(&guest, json!({"kind": "file", "source_kind": "spooled_stream", "target_path": target, "content_length": small.len(), "whole_checksum_sha256": sha(&small)}), "key-3").await;
    let id = session["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(put_part(&guest, &id, 0, &small, None).await.0, StatusCode::OK);
    assert_eq!(complete(&guest, &id, None).await.0, StatusCode::OK);
    assert_eq!(std::fs::read(&target).unwrap(), small);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, 0o640);
    let leftovers: Vec<_> = std::fs::read_dir(format!("{}/big", guest.cwd())).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files beside the target");

    // conflict=error, abort, unknown ids.
    let session = create(&guest, json!({"kind": "file", "source_kind": "spooled_stream", "target_path": target, "content_length": 1, "conflict": "error"}), "key-4").await;
    let id = session["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(put_part(&guest, &id, 0, b"x", None).await.0, StatusCode::OK);
    let (status, bad) = complete(&guest, &id, None).await;
    assert_failure(status, &bad, StatusCode::CONFLICT, "target_conflict");
    let (status, _) = guest.call("DELETE", &format!("/uploads/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, aborted) = guest.call("GET", &format!("/uploads/{id}"), None).await;
    assert_eq!(aborted["status"], "aborted");
    let (status, bad) = put_part(&guest, &id, 0, b"x", None).await;
    assert_failure(status, &bad, StatusCode::GONE, "upload_aborted");
    let (status, missing) = guest.call("GET", "/uploads/up_nope", None).await;
    assert_eq!((status, missing["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    let (status, too_big) = guest
        .with_headers("POST", "/uploads", &[("content-type", "application/json")],
            json!({"kind": "file", "source_kind": "spooled_stream", "target_path": "x", "content_length": u64::MAX / 2}).to_string().into_bytes())
        .await;
    assert_failure(status, &too_big, StatusCode::PAYLOAD_TOO_LARGE, "size_limit_exceeded");
}

enum Entry<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Link(&'a str, &'a str),
    Fifo(&'a str),
}

/// A PAX tar as the client builds it; names are written raw so hostile ones are possible.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        let (name, data): (&str, &[u8]) = match entry {
            Entry::Dir(name, mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                (name, b"")
            }
            Entry::File(name, data, mode) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                (name, data)
            }
            Entry::Link(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_link_name(target).unwrap();
                (name, b"")
            }
            Entry::Fifo(name) => {
                header.set_entry_type(tar::EntryType::Fifo);
                header.set_mode(0o644);
                (name, b"")
            }
        };
        header.set_size(data.len() as u64);
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

async fn upload_tar(guest: &Guest, target: &str, archive: &[u8], conflict: &str) -> (StatusCode, Value) {
    let key = format!("{target}-{conflict}-{}", sha(archive));
    let session = create(
        guest,
        json!({"kind": "directory_tar", "source_kind": "directory_archive", "target_path": target,
        "content_length": archive.len(), "conflict": conflict, "archive_format": "tar", "checksum_algorithm": "sha256",
        "whole_checksum_sha256": sha(archive), "metadata": {}, "user": "root"}),
        &key,
    )
    .await;
    assert_eq!(session["user"], "root");
    assert_eq!(session["archive_format"], "tar");
    let id = session["upload_id"].as_str().unwrap().to_owned();
    let part_size = session["part_size"].as_u64().unwrap() as usize;
    for (n, part) in archive.chunks(part_size).enumerate() {
        assert_eq!(put_part(guest, &id, n as u64, part, None).await.0, StatusCode::OK);
    }
    complete(guest, &id, Some(&sha(archive))).await
}

#[tokio::test]
async fn directory_tar_uploads_extract_safely() {
    let guest = Guest::start().await;
    let root = format!("{}/tree", guest.cwd());
    let big = pattern(9 * MIB);
    let archive = tar_of(&[
        Entry::Dir("./", 0o755),
        Entry::Dir("nested", 0o750),
        Entry::Dir("empty", 0o700),
        Entry::File("alpha.txt", b"alpha\n", 0o640),
        Entry::File("nested/beta.bin", &big, 0o644),
        Entry::Link("linked.txt", "alpha.txt"),
        Entry::Link("nested/up.txt", "../alpha.txt"),
    ]);
    let (status, done) = upload_tar(&guest, "tree", &archive, "merge").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["published_file_count"], 4);
    assert_eq!(done["published_bytes"], json!(archive.len()));
    assert_eq!(std::fs::read_to_string(format!("{root}/linked.txt")).unwrap(), "alpha\n");
    assert_eq!(std::fs::read_link(format!("{root}/nested/up.txt")).unwrap().to_str(), Some("../alpha.txt"));
    assert!(std::fs::read(format!("{root}/nested/beta.bin")).unwrap() == big);
    let mode = |path: &str| std::fs::symlink_metadata(format!("{root}/{path}")).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode("alpha.txt"), mode("nested"), mode("empty")), (0o640, 0o750, 0o700));
    assert_eq!(std::fs::read_dir(format!("{root}/empty")).unwrap().count(), 0);

    // merge keeps what is there; replace swaps the whole tree; error refuses an existing target.
    std::fs::write(format!("{root}/keep.txt"), "keep").unwrap();
    let update = tar_of(&[Entry::File("alpha.txt", b"new alpha\n", 0o644)]);
    assert_eq!(upload_tar(&guest, "tree", &update, "merge").await.0, StatusCode::OK);
    assert_eq!(std::fs::read_to_string(format!("{root}/alpha.txt")).unwrap(), "new alpha\n");
    assert!(std::path::Path::new(&format!("{root}/keep.txt")).exists());
    let (status, bad) = upload_tar(&guest, "tree", &update, "error").await;
    assert_failure(status, &bad, StatusCode::CONFLICT, "target_conflict");
    assert_eq!(upload_tar(&guest, "tree", &update, "replace").await.0, StatusCode::OK);
    let names: Vec<String> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["alpha.txt"]);
    let siblings = std::fs::read_dir(guest.cwd()).unwrap().count();
    assert_eq!(siblings, 1, "no staging left beside the target");

    // Hostile archives publish nothing.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            tar_of(&[Entry::File("ok.txt", b"x", 0o644), Entry::File("../evil.txt", b"x", 0o644)]),
            "directory_extract_invalid_path",
        ),
        (tar_of(&[Entry::File("/abs.txt", b"x", 0o644)]), "directory_extract_invalid_path"),
        (tar_of(&[Entry::Link("escape", "../../etc/passwd")]), "directory_extract_invalid_symlink"),
        (tar_of(&[Entry::Link("absolute", "/etc/passwd")]), "directory_extract_invalid_symlink"),
        (tar_of(&[Entry::Fifo("pipe")]), "directory_extract_unsupported_entry"),
    ];
    for (n, (archive, reason)) in cases.into_iter().enumerate() {
        let target = format!("hostile{n}");
        let (status, bad) = upload_tar(&guest, &target, &archive, "merge").await;
        assert_failure(status, &bad, StatusCode::BAD_REQUEST, reason);
        assert!(!std::path::Path::new(&format!("{}/{target}", guest.cwd())).exists(), "{reason}");
    }
    assert!(!std::path::Path::new(&format!("{}/../evil.txt", guest.cwd())).exists());
}

#[tokio::test]
async fn archive_download_round_trips_a_directory() {
    let guest = Guest::start().await;
    let root = format!("{}/src", guest.cwd());
    std::fs::create_dir_all(format!("{root}/a/deep/empty")).unwrap();
    std::fs::write(format!("{root}/a/one.txt"), "one").unwrap();
    let long_name = format!("{}/{}.txt", "d".repeat(120), "n".repeat(120));
    std::fs::create_dir_all(format!("{root}/{}", "d".repeat(120))).unwrap();
    std::fs::write(format!("{root}/{long_name}"), "long").unwrap();
    let big = pattern(3 * MIB);
    std::fs::write(format!("{root}/big.bin"), &big).unwrap();
    std::fs::set_permissions(format!("{root}/a/one.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("a/one.txt", format!("{root}/link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", format!("{root}/outside")).unwrap();

    let request = Request::builder()
        .method("GET")
        .uri("/archive?path=src")
        .header("host", "guest")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, bytes) = guest.send(request).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let out = tempfile::tempdir().unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    archive.set_preserve_permissions(true);
    archive.unpack(out.path()).unwrap();
    let got = |path: &str| std::fs::read(out.path().join(path)).unwrap();
    assert_eq!(got("a/one.txt"), b"one");
    assert_eq!(got(&long_name), b"long");
    assert!(got("big.bin") == big);
    assert_eq!(std::fs::read_link(out.path().join("link")).unwrap().to_str(), Some("a/one.txt"));
    assert!(out.path().join("a/deep/empty").is_dir());
    assert!(!out.path().join("outside").exists(), "symlinks leaving the directory are skipped");
    assert_eq!(std::fs::metadata(out.path().join("a/one.txt")).unwrap().permissions().mode() & 0o777, 0o600);

    // And back in through a directory upload.
    let (status, done) = upload_tar(&guest, "copy", &bytes, "merge").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(std::fs::read_to_string(format!("{}/copy/{long_name}", guest.cwd())).unwrap(), "long");

    let (status, error) = guest.call("GET", "/archive?path=src/big.bin", None).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")));
    let (status, error) = guest.call("GET", "/archive?path=nope", None).await;
    assert_eq!((status, error["code"].clone()), (StatusCode::NOT_FOUND, json!("file_not_found")));
}
