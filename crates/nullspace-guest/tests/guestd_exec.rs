//! guestd as a real process: health, foreground and background exec, processes, logs, stdin, kill.

mod common;

use common::*;

#[tokio::test]
async fn health_and_unknown_routes() {
    let guest = Guest::start().await;
    let (status, health) = guest.call("GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({"protocol_version": 1, "sandbox_id": "sb_test"}));
    let (status, body) = guest.call("GET", "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn foreground_exec_output_exit_codes_env_and_cwd() {
    let guest = Guest::start().await;
    let result =
        guest.ok("POST", "/exec", json!({"command": "echo", "args": ["hello world"], "timeout_secs": 30})).await;
    assert_eq!(result["stdout"], "hello world\n");
    assert_eq!(result["stderr"], "");
    assert_eq!(result["exit_code"], 0);
    assert!(result["pid"].as_u64().unwrap() > 0);

    let result = guest.ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "echo oops >&2; exit 42"]})).await;
    assert_eq!((result["exit_code"].clone(), result["stderr"].clone()), (json!(42), json!("oops\n")));

    let result = guest
        .ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "printf '%s %s' \"$SANDBOX_VAR\" \"$MY_VAR\""], "envs": {"MY_VAR": "test123"}}))
        .await;
    assert_eq!(result["stdout"], "from-config test123");

    let result = guest.ok("POST", "/exec", json!({"command": "pwd", "cwd": null, "args": null, "envs": null})).await;
    assert_eq!(result["stdout"], format!("{}\n", guest.cwd()));
    let result = guest.ok("POST", "/exec", json!({"command": "pwd", "cwd": "/tmp"})).await;
    assert_eq!(result["stdout"], "/tmp\n");

    let result = guest.ok("POST", "/exec", json!({"command": "echo $((40 + 2)) | tr 4 x", "shell": true})).await;
    assert_eq!(result["stdout"], "x2\n");

    let result = guest.ok("POST", "/exec", json!({"command": "definitely-not-a-command-xyz"})).await;
    assert_eq!(result["exit_code"], 127);
    assert!(result["stderr"].as_str().unwrap().contains("not found"));

    let started = Instant::now();
    let result = guest
        .ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "sleep 20 & sleep 20"], "timeout_secs": 1}))
        .await;
    assert_eq!(result["exit_code"], 124);
    assert!(started.elapsed() < Duration::from_secs(5), "timeout enforced promptly: {:?}", started.elapsed());

    let (status, body) = guest.call("POST", "/exec", Some(json!({"command": "pwd", "cwd": "/no/such/dir"}))).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")));
    let (status, body) = guest.raw("POST", "/exec", b"{not json".to_vec(), "application/json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["code"], "invalid_request");
}

#[tokio::test]
async fn exec_as_another_user() {
    if !is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let guest = Guest::start().await;
    let result = guest
        .ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "id -u; echo $HOME"], "user": "nobody"}))
        .await;
    assert_eq!(result["stdout"], "65534\n/nonexistent\n");
    let (status, body) = guest.call("POST", "/exec", Some(json!({"command": "id", "user": "ghost-user"}))).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")));
}

#[tokio::test]
async fn background_processes_logs_stdin_and_kill() {
    let guest = Guest::start().await;
    let started = guest
        .ok("POST", "/exec", json!({"command": "sh", "args": ["-c", "echo started; sleep 30"], "background": true}))
        .await;
    let pid = started["pid"].as_u64().unwrap();
    assert_eq!(started.as_object().unwrap().len(), 1, "background answers only {{pid}}");

    let list = guest.call("GET", "/processes", None).await.1;
    let entry = list.as_array().unwrap().iter().find(|p| p["pid"] == pid).cloned().expect("listed");
    assert_eq!(entry["running"], true);
    assert_eq!(entry["command"], "sh -c echo started; sleep 30");
    assert_eq!(entry.as_object().unwrap().len(), 3, "strict keys");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = guest.call("GET", &format!("/processes/{pid}/logs"), None).await.1;
        if logs["stdout"] == "started\n" {
            assert!(logs["exit_code"].is_null());
            break;
        }
        assert!(Instant::now() < deadline, "no output: {logs}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    guest.ok("POST", &format!("/processes/{pid}/kill"), json!(null)).await;
    let logs = guest.logs_until_exit(pid).await;
    assert_eq!(logs["exit_code"], 137);
    assert_eq!(logs["output"], "started\n");
    let list = guest.call("GET", "/processes", None).await.1;
    let entry = list.as_array().unwrap().iter().find(|p| p["pid"] == pid).cloned().expect("still listed after exit");
    assert_eq!(entry["running"], false);

    let reader = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "sh", "args": ["-c", "read line; echo got:$line; sleep 0.2; echo bye >&2"], "background": true}),
        )
        .await;
    let pid = reader["pid"].as_u64().unwrap();
    guest.ok("POST", &format!("/processes/{pid}/stdin"), json!({"data": "hi there\n"})).await;
    let logs = guest.logs_until_exit(pid).await;
    assert_eq!(
        (logs["stdout"].clone(), logs["stderr"].clone(), logs["exit_code"].clone()),
        (json!("got:hi there\n"), json!("bye\n"), json!(0))
    );
    assert_eq!(logs["output"], "got:hi there\nbye\n");
    let (status, body) = guest.call("POST", &format!("/processes/{pid}/stdin"), Some(json!({"data": "x"}))).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::CONFLICT, json!("conflict")));

    let (status, body) = guest.call("GET", "/processes/999999999/logs", None).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    let (status, _) = guest.call("POST", "/processes/abc/kill", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
