//! Runs the real `nullspace-guestd` binary as an ordinary process on a temporary control directory and
//! drives it over its unix socket: exec, processes, files, WebSocket exec and watch, and the TCP tunnel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

struct Guest {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guest {
    async fn start() -> Guest {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("control");
        std::fs::create_dir_all(&control).unwrap();
        let cwd = dir.path().join("work");
        let config = json!({
            "sandbox_id": "sb_test",
            "envs": {"SANDBOX_VAR": "from-config"},
            "cwd": cwd.display().to_string(),
            "default_user": "root",
        });
        std::fs::write(control.join("config.json"), config.to_string()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_nullspace-guestd"))
            .arg("--control-dir")
            .arg(&control)
            .arg("--no-write-profile")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let guest = Guest {
            child,
            socket: control.join("guest.sock"),
            dir,
        };
        let started = Instant::now();
        loop {
            if guest.socket.exists() {
                if let Ok((status, _)) = guest.try_call("GET", "/health", None).await {
                    if status == StatusCode::OK {
                        break;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "guestd did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(cwd.is_dir(), "boot creates the default cwd");
        guest
    }

    fn cwd(&self) -> String {
        self.dir.path().join("work").display().to_string()
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), Box<dyn std::error::Error>> {
        let stream = UnixStream::connect(&self.socket).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "guest")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let (status, bytes) = self.send(request).await?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((status, value))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.try_call(method, path, body).await.unwrap()
    }

    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
        value
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "guest")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.send(request).await.unwrap()
    }

    async fn websocket(&self) -> WebSocketStream<UnixStream> {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        tokio_tungstenite::client_async("ws://guest/ws?channel=exec", stream)
            .await
            .unwrap()
            .0
    }

    async fn logs_until_exit(&self, pid: u64) -> Value {
        let started = Instant::now();
        loop {
            let (status, logs) = self
                .call("GET", &format!("/processes/{pid}/logs"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{logs}");
            if !logs["exit_code"].is_null() {
                return logs;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "process {pid} did not exit: {logs}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn is_root() -> bool {
    nix_like_geteuid() == 0
}

fn nix_like_geteuid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(str::to_owned)
        })
        .and_then(|line| {
            line.split_whitespace()
                .nth(2)
                .and_then(|uid| uid.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

async fn next_json(ws: &mut WebSocketStream<UnixStream>) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("websocket reply in time");
        match message.expect("socket open").expect("frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Binary(bytes) => return serde_json::from_slice(&bytes).unwrap(),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let guest = Guest::start().await;
    let (status, health) = guest.call("GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        health,
        json!({"protocol_version": 1, "sandbox_id": "sb_test"})
    );
    let (status, body) = guest.call("GET", "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn foreground_exec_output_exit_codes_env_and_cwd() {
    let guest = Guest::start().await;
    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "echo", "args": ["hello world"], "timeout_secs": 30}),
        )
        .await;
    assert_eq!(result["stdout"], "hello world\n");
    assert_eq!(result["stderr"], "");
    assert_eq!(result["exit_code"], 0);
    assert!(result["pid"].as_u64().unwrap() > 0);

    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "sh", "args": ["-c", "echo oops >&2; exit 42"]}),
        )
        .await;
    assert_eq!(
        (result["exit_code"].clone(), result["stderr"].clone()),
        (json!(42), json!("oops\n"))
    );

    let result = guest
        .ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "printf '%s %s' \"$SANDBOX_VAR\" \"$MY_VAR\""], "envs": {"MY_VAR": "test123"}}))
        .await;
    assert_eq!(result["stdout"], "from-config test123");

    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "pwd", "cwd": null, "args": null, "envs": null}),
        )
        .await;
    assert_eq!(result["stdout"], format!("{}\n", guest.cwd()));
    let result = guest
        .ok("POST", "/exec", json!({"command": "pwd", "cwd": "/tmp"}))
        .await;
    assert_eq!(result["stdout"], "/tmp\n");

    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "echo $((40 + 2)) | tr 4 x", "shell": true}),
        )
        .await;
    assert_eq!(result["stdout"], "x2\n");

    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "definitely-not-a-command-xyz"}),
        )
        .await;
    assert_eq!(result["exit_code"], 127);
    assert!(result["stderr"].as_str().unwrap().contains("not found"));

    let started = Instant::now();
    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "sh", "args": ["-c", "sleep 20 & sleep 20"], "timeout_secs": 1}),
        )
        .await;
    assert_eq!(result["exit_code"], 124);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeout enforced promptly: {:?}",
        started.elapsed()
    );

    let (status, body) = guest
        .call(
            "POST",
            "/exec",
            Some(json!({"command": "pwd", "cwd": "/no/such/dir"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
    let (status, body) = guest
        .raw("POST", "/exec", b"{not json".to_vec(), "application/json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "invalid_request"
    );
}

#[tokio::test]
async fn exec_as_another_user() {
    if !is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let guest = Guest::start().await;
    let result = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "sh", "args": ["-c", "id -u; echo $HOME"], "user": "nobody"}),
        )
        .await;
    assert_eq!(result["stdout"], "65534\n/nonexistent\n");
    let (status, body) = guest
        .call(
            "POST",
            "/exec",
            Some(json!({"command": "id", "user": "ghost-user"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_request"))
    );
}

#[tokio::test]
async fn background_processes_logs_stdin_and_kill() {
    let guest = Guest::start().await;
    let started = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "sh", "args": ["-c", "echo started; sleep 30"], "background": true}),
        )
        .await;
    let pid = started["pid"].as_u64().unwrap();
    assert_eq!(
        started.as_object().unwrap().len(),
        1,
        "background answers only {{pid}}"
    );

    let list = guest.call("GET", "/processes", None).await.1;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .cloned()
        .expect("listed");
    assert_eq!(entry["running"], true);
    assert_eq!(entry["command"], "sh -c echo started; sleep 30");
    assert_eq!(entry.as_object().unwrap().len(), 3, "strict keys");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = guest
            .call("GET", &format!("/processes/{pid}/logs"), None)
            .await
            .1;
        if logs["stdout"] == "started\n" {
            assert!(logs["exit_code"].is_null());
            break;
        }
        assert!(Instant::now() < deadline, "no output: {logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    guest
        .ok("POST", &format!("/processes/{pid}/kill"), json!(null))
        .await;
    let logs = guest.logs_until_exit(pid).await;
    assert_eq!(logs["exit_code"], 137);
    assert_eq!(logs["output"], "started\n");
    let list = guest.call("GET", "/processes", None).await.1;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .cloned()
        .expect("still listed after exit");
    assert_eq!(entry["running"], false);

    let reader = guest
        .ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "read line; echo got:$line; echo bye >&2"], "background": true}))
        .await;
    let pid = reader["pid"].as_u64().unwrap();
    guest
        .ok(
            "POST",
            &format!("/processes/{pid}/stdin"),
            json!({"data": "hi there\n"}),
        )
        .await;
    let logs = guest.logs_until_exit(pid).await;
    assert_eq!(
        (
            logs["stdout"].clone(),
            logs["stderr"].clone(),
            logs["exit_code"].clone()
        ),
        (json!("got:hi there\n"), json!("bye\n"), json!(0))
    );
    assert_eq!(logs["output"], "got:hi there\nbye\n");
    let (status, body) = guest
        .call(
            "POST",
            &format!("/processes/{pid}/stdin"),
            Some(json!({"data": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("conflict"))
    );

    let (status, body) = guest.call("GET", "/processes/999999999/logs", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _) = guest.call("POST", "/processes/abc/kill", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn json_file_operations() {
    let guest = Guest::start().await;
    let cwd = guest.cwd();
    let info = guest.ok("POST", "/files/write", json!({"path": "notes/a.txt", "content": "hello\nTODO one\n", "encoding": "utf8", "user": null})).await;
    let path = format!("{cwd}/notes/a.txt");
    assert_eq!(info["path"], path);
    assert_eq!(
        (
            info["name"].clone(),
            info["size"].clone(),
            info["type"].clone(),
            info["is_dir"].clone()
        ),
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
    let read = guest
        .ok(
            "POST",
            "/files/read",
            json!({"path": path, "encoding": "utf8", "user": null}),
        )
        .await;
    assert_eq!(read, json!({"content": "hello\nTODO one\n"}));
    let read = guest
        .ok(
            "POST",
            "/files/read",
            json!({"path": path, "encoding": "base64", "user": null}),
        )
        .await;
    assert_eq!(read["content"], "aGVsbG8KVE9ETyBvbmUK");

    guest.ok("POST", "/files/write", json!({"path": "/tmp/../".to_owned() + &cwd + "/bin.dat", "content": "AAEC", "encoding": "base64", "user": null})).await;
    let (status, bytes) = guest
        .raw(
            "GET",
            &format!("/file?path={cwd}/bin.dat"),
            Vec::new(),
            "application/octet-stream",
        )
        .await;
    assert_eq!((status, bytes.as_ref()), (StatusCode::OK, &[0u8, 1, 2][..]));

    let perms = guest
        .ok(
            "POST",
            "/files/permissions",
            json!({"path": path, "permissions": "0640", "user": null}),
        )
        .await;
    assert_eq!(
        (perms["mode"].clone(), perms["permissions"].clone()),
        (json!("0640"), json!("rw-r-----"))
    );
    let info = guest
        .ok(
            "POST",
            "/files/write",
            json!({"path": path, "content": "hello\nTODO one\nTODO two\n", "user": null}),
        )
        .await;
    assert_eq!(info["mode"], "0640", "overwrite keeps the mode");

    assert_eq!(
        guest
            .ok("POST", "/files/exists", json!({"path": path, "user": null}))
            .await,
        json!({"exists": true})
    );
    assert_eq!(
        guest
            .ok(
                "POST",
                "/files/exists",
                json!({"path": "nope.txt", "user": null})
            )
            .await,
        json!({"exists": false})
    );

    guest
        .ok(
            "POST",
            "/files/mkdir",
            json!({"path": "notes/deep/er", "user": null}),
        )
        .await;
    guest
        .ok(
            "POST",
            "/files/mkdir",
            json!({"path": "notes/deep/er", "user": null}),
        )
        .await;
    guest
        .ok(
            "POST",
            "/files/write",
            json!({"path": "notes/deep/b.py", "content": "x = 'TODO'\n", "user": null}),
        )
        .await;
    let list = guest
        .call("GET", &format!("/files?path={cwd}/notes"), None)
        .await
        .1;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "deep"]);
    let list = guest
        .call("GET", &format!("/files?path={cwd}/notes&depth=2"), None)
        .await
        .1;
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&format!("{cwd}/notes/deep/b.py").as_str()),
        "{paths:?}"
    );
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "deep")
            .unwrap()["type"],
        "dir"
    );

    let matches = guest
        .ok(
            "POST",
            "/files/find",
            json!({"path": "notes", "pattern": "TODO", "user": null}),
        )
        .await;
    assert_eq!(
        matches,
        json!([
            {"file": path, "line": 2, "content": "TODO one"},
            {"file": path, "line": 3, "content": "TODO two"},
            {"file": format!("{cwd}/notes/deep/b.py"), "line": 1, "content": "x = 'TODO'"},
        ])
    );
    let found = guest
        .ok(
            "POST",
            "/files/search",
            json!({"path": cwd, "pattern": "*.py", "user": null}),
        )
        .await;
    assert_eq!(found, json!([format!("{cwd}/notes/deep/b.py")]));

    let replaced = guest
        .ok(
            "POST",
            "/files/replace",
            json!({"files": [path], "pattern": "TODO", "replacement": "DONE", "user": null}),
        )
        .await;
    assert_eq!(replaced["replacements"], 2);
    let read = guest
        .ok("POST", "/files/read", json!({"path": path, "user": null}))
        .await;
    assert_eq!(read["content"], "hello\nDONE one\nDONE two\n");

    let renamed = guest
        .ok(
            "POST",
            "/files/rename",
            json!({"old_path": path, "new_path": "moved/b.txt", "user": null}),
        )
        .await;
    assert_eq!(renamed["path"], format!("{cwd}/moved/b.txt"));
    let (status, body) = guest
        .call(
            "POST",
            "/files/info",
            Some(json!({"path": path, "user": null})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("file_not_found"))
    );
    guest
        .ok(
            "POST",
            "/files/remove",
            json!({"path": "notes", "user": null}),
        )
        .await;
    assert_eq!(
        guest
            .ok(
                "POST",
                "/files/exists",
                json!({"path": "notes", "user": null})
            )
            .await["exists"],
        false
    );
    let (status, body) = guest
        .call(
            "POST",
            "/files/read",
            Some(json!({"path": "/no/such/file", "user": null})),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("file_not_found"))
    );
    assert!(body["error"].as_str().unwrap().contains("/no/such/file"));
}

#[tokio::test]
async fn file_ownership_follows_the_named_user() {
    if !is_root() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let guest = Guest::start().await;
    let info = guest
        .ok(
            "POST",
            "/files/write",
            json!({"path": "owned/x.txt", "content": "x", "user": "nobody"}),
        )
        .await;
    assert_eq!(info["owner"], "nobody");
    let parent = guest
        .ok(
            "POST",
            "/files/info",
            json!({"path": "owned", "user": null}),
        )
        .await;
    assert_eq!(parent["owner"], "nobody", "created parents go to the user");
    guest
        .ok(
            "POST",
            "/files/permissions",
            json!({"path": "owned/x.txt", "permissions": "0600", "user": null}),
        )
        .await;
    let info = guest
        .ok(
            "POST",
            "/files/write",
            json!({"path": "owned/x.txt", "content": "y", "user": null}),
        )
        .await;
    assert_eq!(
        (info["owner"].clone(), info["mode"].clone()),
        (json!("nobody"), json!("0600"))
    );
    let (status, _) = guest
        .raw(
            "PUT",
            &format!("/file?path={}/owned/x.txt", guest.cwd()),
            b"streamed".to_vec(),
            "application/octet-stream",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let info = guest
        .ok(
            "POST",
            "/files/info",
            json!({"path": "owned/x.txt", "user": null}),
        )
        .await;
    assert_eq!(
        (
            info["owner"].clone(),
            info["mode"].clone(),
            info["size"].clone()
        ),
        (json!("nobody"), json!("0600"), json!(8))
    );
}

#[tokio::test]
async fn raw_upload_download_and_batch_write() {
    let guest = Guest::start().await;
    let cwd = guest.cwd();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, info) = guest
        .raw(
            "PUT",
            &format!("/file?path={cwd}/up/big.bin"),
            payload.clone(),
            "application/octet-stream",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&info).unwrap()["size"],
        300_000
    );
    let (status, bytes) = guest
        .raw(
            "GET",
            &format!("/file?path={cwd}/up/big.bin"),
            Vec::new(),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.as_ref(), payload.as_slice());
    let (status, body) = guest
        .raw("GET", "/file?path=/no/such", Vec::new(), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "file_not_found"
    );

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
    part(
        "manifest",
        "manifest.json",
        "application/json",
        manifest.to_string().as_bytes(),
    );
    part("file0", "file0.bin", "application/octet-stream", b"alpha");
    part("file1", "file1.bin", "application/octet-stream", b"fail");
    part("file2", "file2.bin", "application/octet-stream", b"bravo");
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let (status, answer) = guest
        .raw(
            "POST",
            "/files/batch-write",
            body,
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (
            results[0]["status"].clone(),
            results[0]["info"]["path"].clone()
        ),
        (json!("success"), json!(format!("{cwd}/batch/a.txt")))
    );
    assert_eq!(results[1]["status"], "error");
    assert_eq!(results[1]["path"], "/proc/nullspace-batch.txt");
    assert!(results[1]["error"].is_string());
    assert_eq!(results[2]["status"], "success");
    assert_eq!(
        std::fs::read(format!("{cwd}/batch/b.bin")).unwrap(),
        b"bravo"
    );
}

#[tokio::test]
async fn websocket_exec_stream_connect_and_errors() {
    let guest = Guest::start().await;
    let mut ws = guest.websocket().await;
    ws.send(Message::text(
        json!({"type": "exec_start", "id": "test-1", "command": "sh", "args": ["-c", "echo hi; sleep 0.2; echo err 1>&2; exit 3"], "timeout_secs": 30}).to_string(),
    ))
    .await
    .unwrap();
    let started = next_json(&mut ws).await;
    assert_eq!(started["type"], "exec_started");
    assert_eq!(started["id"], "test-1");
    let pid = started["pid"].as_u64().unwrap();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let exit = loop {
        let message = next_json(&mut ws).await;
        assert_eq!(message["id"], "test-1");
        match message["type"].as_str().unwrap() {
            "exec_stdout" => stdout.push_str(message["data"].as_str().unwrap()),
            "exec_stderr" => stderr.push_str(message["data"].as_str().unwrap()),
            "exec_exit" => break message,
            other => panic!("unexpected {other}"),
        }
    };
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), exit["exit_code"].clone()),
        ("hi\n", "err\n", json!(3))
    );
    let logs = guest.logs_until_exit(pid).await;
    assert_eq!(
        (logs["stdout"].clone(), logs["exit_code"].clone()),
        (json!("hi\n"), json!(3))
    );

    ws.send(Message::text("{not json")).await.unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("invalid message"));

    let background = guest.ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "sleep 0.5; echo late; exit 5"], "background": true})).await;
    let pid = background["pid"].as_u64().unwrap();
    ws.send(Message::text(
        json!({"type": "exec_connect", "id": "exec_ab12cd34", "pid": pid}).to_string(),
    ))
    .await
    .unwrap();
    let started = next_json(&mut ws).await;
    assert_eq!(
        (started["type"].clone(), started["pid"].clone()),
        (json!("exec_started"), json!(pid))
    );
    let output = next_json(&mut ws).await;
    assert_eq!(
        (output["type"].clone(), output["data"].clone()),
        (json!("exec_stdout"), json!("late\n"))
    );
    let exit = next_json(&mut ws).await;
    assert_eq!(
        (exit["type"].clone(), exit["exit_code"].clone()),
        (json!("exec_exit"), json!(5))
    );

    ws.send(Message::text(
        json!({"type": "exec_connect", "id": "again", "pid": pid}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "exec_started");
    let exit = next_json(&mut ws).await;
    assert_eq!(
        (exit["type"].clone(), exit["exit_code"].clone()),
        (json!("exec_exit"), json!(5))
    );

    ws.send(Message::text(
        json!({"type": "exec_start", "id": "missing", "command": "no-such-binary-xyz", "args": []})
            .to_string(),
    ))
    .await
    .unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!(
        (error["type"].clone(), error["id"].clone()),
        (json!("error"), json!("missing"))
    );
}

#[tokio::test]
async fn websocket_file_watch_reports_nested_events() {
    let guest = Guest::start().await;
    let cwd = guest.cwd();
    guest
        .ok(
            "POST",
            "/files/mkdir",
            json!({"path": "watched/subdir", "user": null}),
        )
        .await;
    let mut ws = guest.websocket().await;
    ws.send(Message::text(json!({"type": "file_watch", "id": "watch_1", "path": "watched", "user": null, "recursive": true, "timeout_secs": 2}).to_string()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "file_watch_started", "id": "watch_1"})
    );
    guest
        .ok(
            "POST",
            "/files/write",
            json!({"path": "watched/subdir/inner.txt", "content": "nested", "user": null}),
        )
        .await;
    guest
        .ok(
            "POST",
            "/files/permissions",
            json!({"path": "watched/subdir/inner.txt", "permissions": "0600", "user": null}),
        )
        .await;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|(kind, _): &(String, String)| kind == "chmod")
    {
        let event = next_json(&mut ws).await;
        assert_eq!(event["type"], "file_event");
        assert_eq!(
            event["path"],
            format!("{cwd}/watched/{}", event["name"].as_str().unwrap())
        );
        seen.push((
            event["event"].as_str().unwrap().to_owned(),
            event["name"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        seen[0],
        ("create".to_owned(), "subdir/inner.txt".to_owned())
    );
}

#[tokio::test]
async fn tcp_tunnel_pipes_bytes_and_refuses_closed_ports() {
    let guest = Guest::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 5];
        socket.read_exact(&mut buffer).await.unwrap();
        socket
            .write_all(&[b"echo:".as_slice(), &buffer].concat())
            .await
            .unwrap();
    });
    let mut stream = UnixStream::connect(&guest.socket).await.unwrap();
    stream
        .write_all(format!("GET /tcp/{port} HTTP/1.1\r\nHost: guest\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream.write_all(b"hello").await.unwrap();
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"echo:hello");

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let request = Request::builder()
        .uri(format!("/tcp/{closed_port}"))
        .header("host", "guest")
        .header("connection", "Upgrade")
        .header("upgrade", "tcp")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body) = guest.send(request).await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .contains(&closed_port.to_string()));
}

#[allow(dead_code)]
fn exists(path: &Path) -> bool {
    path.exists()
}
