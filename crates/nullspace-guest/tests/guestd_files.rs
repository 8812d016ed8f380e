//! guestd as a real process: the JSON files API, ownership, raw upload/download and batch write.

mod common;

use common::*;

#[tokio::test]
async fn json_file_operations() {
    let guest = Guest::start().await;
    let cwd = guest.cwd();
    let info = guest
        .ok(
            "POST",
            "/files/write",
            json!({"path": "notes/a.txt", "content": "hello\nTODO one\n", "encoding": "utf8", "user": null}),
        )
        .await;
    let path = format!("{cwd}/notes/a.txt");
    assert_eq!(info["path"], path);
    assert_eq!(
        (info["name"].clone(), info["size"].clone(), info["type"].clone(), info["is_dir"].clone()),
        (json!("a.txt"), json!(15), json!("file"), json!(false))
    );
    let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
    for key in &keys {
        assert!(
            [
                "name",
                "path",
                "is_dir",
                "size",
                "type",
                "mode",
                "permissions",
                "owner",
                "group",
                "modified_time",
                "symlink_target"
            ]
            .contains(&key.as_str()),
            "unexpected FileInfo key {key}"
        );
    }
    let read = guest.ok("POST", "/files/read", json!({"path": path, "encoding": "utf8", "user": null})).await;
    assert_eq!(read, json!({"content": "hello\nTODO one\n"}));
    let read = guest.ok("POST", "/files/read", json!({"path": path, "encoding": "base64", "user": null})).await;
    assert_eq!(read["content"], "aGVsbG8KVE9ETyBvbmUK");

    guest.ok("POST", "/files/write", json!({"path": "/tmp/../".to_owned() + &cwd + "/bin.dat", "content": "AAEC", "encoding": "base64", "user": null})).await;
    let (status, bytes) =
        guest.raw("GET", &format!("/file?path={cwd}/bin.dat"), Vec::new(), "application/octet-stream").await;
    assert_eq!((status, bytes.as_ref()), (StatusCode::OK, &[0u8, 1, 2][..]));

    let perms =
        guest.ok("POST", "/files/permissions", json!({"path": path, "permissions": "0640", "user": null})).await;
    assert_eq!((perms["mode"].clone(), perms["permissions"].clone()), (json!("0640"), json!("rw-r-----")));
    let info = guest
        .ok("POST", "/files/write", json!({"path": path, "content": "hello\nTODO one\nTODO two\n", "user": null}))
        .await;
    assert_eq!(info["mode"], "0640", "overwrite keeps the mode");

    assert_eq!(guest.ok("POST", "/files/exists", json!({"path": path, "user": null})).await, json!({"exists": true}));
    assert_eq!(
        guest.ok("POST", "/files/exists", json!({"path": "nope.txt", "user": null})).await,
        json!({"exists": false})
    );

    guest.ok("POST", "/files/mkdir", json!({"path": "notes/deep/er", "user": null})).await;
    guest.ok("POST", "/files/mkdir", json!({"path": "notes/deep/er", "user": null})).await;
    guest.ok("POST", "/files/write", json!({"path": "notes/deep/b.py", "content": "x = 'TODO'\n", "user": null})).await;
    let list = guest.call("GET", &format!("/files?path={cwd}/notes"), None).await.1;
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.txt", "deep"]);
    let list = guest.call("GET", &format!("/files?path={cwd}/notes&depth=2"), None).await.1;
    let paths: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&format!("{cwd}/notes/deep/b.py").as_str()), "{paths:?}");
    assert_eq!(list.as_array().unwrap().iter().find(|e| e["name"] == "deep").unwrap()["type"], "dir");

    let matches = guest.ok("POST", "/files/find", json!({"path": "notes", "pattern": "TODO", "user": null})).await;
    assert_eq!(
        matches,
        json!([
            {"file": path, "line": 2, "content": "TODO one"},
            {"file": path, "line": 3, "content": "TODO two"},
            {"file": format!("{cwd}/notes/deep/b.py"), "line": 1, "content": "x = 'TODO'"},
        ])
    );
    let found = guest.ok("POST", "/files/search", json!({"path": cwd, "pattern": "*.py", "user": null})).await;
    assert_eq!(found, json!([format!("{cwd}/notes/deep/b.py")]));

    let replaced = guest
        .ok("POST", "/files/replace", json!({"files": [path], "pattern": "TODO", "replacement": "DONE", "user": null}))
        .await;
    assert_eq!(replaced["replacements"], 2);
    let read = guest.ok("POST", "/files/read", json!({"path": path, "user": null})).await;
    assert_eq!(read["content"], "hello\nDONE one\nDONE two\n");

    let renamed =
        guest.ok("POST", "/files/rename", json!({"old_path": path, "new_path": "moved/b.txt", "user": null})).await;
    assert_eq!(renamed["path"], format!("{cwd}/moved/b.txt"));
    let (status, body) = guest.call("POST", "/files/info", Some(json!({"path": path, "user": null}))).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!("file_not_found")));
    guest.ok("POST", "/files/remove", json!({"path": "notes", "user": null})).await;
    assert_eq!(guest.ok("POST", "/files/exists", json!({"path": "notes", "user": null})).await["exists"], false);
    let (status, body) = guest.call("POST", "/files/read", Some(json!({"path": "/no/such/file", "user": null}))).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!("file_not_found")));
    assert!(body["error"].as_str().unwrap().contains("/no/such/file"));
}

#[tokio::test]
async fn file_ownership_follows_the_named_user() {
    if !is_root() {
        eprintln!("skipped: switching credentials needs root");
        return;
    }
    let guest = Guest::start().await;
    // The named user acts with its own permissions: it cannot create files in root's directory...
    let (status, body) = guest
        .call("POST", "/files/write", Some(json!({"path": "owned/x.txt", "content": "x", "user": "nobody"})))
        .await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("permission_denied")), "{body}");
    // ...but can in a directory open to it, and what it creates is its own.
    let cwd = std::path::PathBuf::from(guest.cwd());
    for dir in [cwd.parent().unwrap(), cwd.as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let info = guest.ok("POST", "/files/write", json!({"path": "owned/x.txt", "content": "x", "user": "nobody"})).await;
    assert_eq!(info["owner"], "nobody");
    let parent = guest.ok("POST", "/files/info", json!({"path": "owned", "user": null})).await;
    assert_eq!(parent["owner"], "nobody", "created parents belong to the user");
    guest.ok("POST", "/files/permissions", json!({"path": "owned/x.txt", "permissions": "0600", "user": null})).await;
    let info = guest.ok("POST", "/files/write", json!({"path": "owned/x.txt", "content": "y", "user": null})).await;
    assert_eq!((info["owner"].clone(), info["mode"].clone()), (json!("nobody"), json!("0600")));
    let (status, _) = guest
        .raw(
            "PUT",
            &format!("/file?path={}/owned/x.txt", guest.cwd()),
            b"streamed".to_vec(),
            "application/octet-stream",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let info = guest.ok("POST", "/files/info", json!({"path": "owned/x.txt", "user": null})).await;
    assert_eq!(
        (info["owner"].clone(), info["mode"].clone(), info["size"].clone()),
        (json!("nobody"), json!("0600"), json!(8))
    );
}

#[tokio::test]
async fn a_named_user_cannot_reach_roots_files_through_a_symlink() {
    if !is_root() {
        eprintln!("skipped: switching credentials needs root");
        return;
    }
    let guest = Guest::start().await;
    let cwd = std::path::PathBuf::from(guest.cwd());
    for dir in [cwd.parent().unwrap(), cwd.as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    let secret = cwd.join("secret");
    std::fs::write(&secret, "root only").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, cwd.join("link")).unwrap();
    let denied = |(status, body): (StatusCode, Value)| {
        assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("permission_denied")), "{body}")
    };
    let as_nobody = |extra: Value| {
        let mut body = json!({"path": "link", "user": "nobody"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    denied(guest.call("POST", "/files/write", Some(as_nobody(json!({"content": "owned"})))).await);
    denied(guest.call("POST", "/files/read", Some(as_nobody(json!({})))).await);
    denied(guest.call("POST", "/files/read", Some(json!({"path": "secret", "user": "nobody"}))).await);
    denied(guest.call("POST", "/files/permissions", Some(as_nobody(json!({"permissions": "0666"})))).await);
    let (status, _) = guest
        .raw("PUT", &format!("/file?path={}/link&user=nobody", guest.cwd()), b"x".to_vec(), "application/octet-stream")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = guest.raw("GET", &format!("/file?path={}/link&user=nobody", guest.cwd()), Vec::new(), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only");
    let metadata = std::fs::metadata(&secret).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&metadata), 0, "not chowned");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777, 0o600);
    // Root (no user named) keeps root's permissions.
    let content = guest.ok("POST", "/files/read", json!({"path": "link", "user": null})).await;
    assert_eq!(content["content"], "root only");
}

#[tokio::test]
async fn raw_upload_download_and_batch_write() {
    let guest = Guest::start().await;
    let cwd = guest.cwd();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, info) =
        guest.raw("PUT", &format!("/file?path={cwd}/up/big.bin"), payload.clone(), "application/octet-stream").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&info).unwrap()["size"], 300_000);
    let (status, bytes) = guest.raw("GET", &format!("/file?path={cwd}/up/big.bin"), Vec::new(), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.as_ref(), payload.as_slice());
    let (status, body) = guest.raw("GET", "/file?path=/no/such", Vec::new(), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], "file_not_found");

    let boundary = "XBOUNDARYX";
    let manifest = json!({"files": [
        {"path": "batch/a.txt", "field": "file0"},
        {"path": "/proc/nullspace-batch.txt", "field": "file1"},
        {"path": format!("{cwd}/batch/b.bin"), "field": "file2"},
    ], "user": null});
    let mut body = Vec::new();
    let mut part = |name: &str, filename: &str, content_type: &str, data: &[u8]| {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    };
    part("manifest", "manifest.json", "application/json", manifest.to_string().as_bytes());
    part("file0", "file0.bin", "application/octet-stream", b"alpha");
    part("file1", "file1.bin", "application/octet-stream", b"fail");
    part("file2", "file2.bin", "application/octet-stream", b"bravo");
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let (status, answer) =
        guest.raw("POST", "/files/batch-write", body, &format!("multipart/form-data; boundary={boundary}")).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (results[0]["status"].clone(), results[0]["info"]["path"].clone()),
        (json!("success"), json!(format!("{cwd}/batch/a.txt")))
    );
    assert_eq!(results[1]["status"], "error");
    assert_eq!(results[1]["path"], "/proc/nullspace-batch.txt");
    assert!(results[1]["error"].is_string());
    assert_eq!(results[2]["status"], "success");
    assert_eq!(std::fs::read(format!("{cwd}/batch/b.bin")).unwrap(), b"bravo");
}
