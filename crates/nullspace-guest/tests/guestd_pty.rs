//! guestd as a real process: PTY sessions over the WebSocket and the PTY REST routes.

mod common;

use common::*;

type Ws = WebSocketStream<UnixStream>;

async fn pty_socket(guest: &Guest) -> Ws {
    let stream = UnixStream::connect(&guest.socket).await.unwrap();
    tokio_tungstenite::client_async("ws://guest/ws?channel=pty", stream).await.unwrap().0
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string())).await.unwrap();
}

/// Reads messages until the decoded output contains `needle` (returns the output) or `pty_exited`.
async fn read_until(ws: &mut Ws, needle: &str) -> (String, Option<Value>) {
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "no {needle:?} in {:?}", String::from_utf8_lossy(&output));
        let message = next_json(ws).await;
        match message["type"].as_str().unwrap() {
            "pty_output" => {
                use base64::Engine;
                let bytes =
                    base64::engine::general_purpose::STANDARD.decode(message["data_base64"].as_str().unwrap()).unwrap();
                assert!(message["data"].is_string());
                output.extend_from_slice(&bytes);
                if String::from_utf8_lossy(&output).contains(needle) {
                    return (String::from_utf8_lossy(&output).into_owned(), None);
                }
            }
            "pty_exited" => return (String::from_utf8_lossy(&output).into_owned(), Some(message)),
            other => panic!("unexpected {other}: {message}"),
        }
    }
}

async fn sessions(guest: &Guest) -> Vec<Value> {
    let (status, list) = guest.call("GET", "/pty", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test]
async fn pty_start_input_resize_reconnect_and_exit_code() {
    let guest = Guest::start().await;
    let mut ws = pty_socket(&guest).await;
    send(
        &mut ws,
        json!({"type": "pty_start", "id": "pty-live", "cols": 80, "rows": 24, "envs": {"PTY_VAR": "from-request"}}),
    )
    .await;
    let started = next_json(&mut ws).await;
    assert_eq!(started["type"], "pty_started", "{started}");
    assert_eq!(started["id"], "pty-live");
    assert_eq!((started["cols"].clone(), started["rows"].clone()), (json!(80), json!(24)));
    let session_id = started["session_id"].as_str().unwrap().to_owned();
    assert!(session_id.starts_with("ses_"), "{session_id}");
    let pid = started["pid"].as_u64().unwrap();

    let listed = sessions(&guest).await;
    assert_eq!(listed, vec![json!({"session_id": session_id, "pid": pid, "cols": 80, "rows": 24})]);

    // A real terminal with the sandbox and request environment.
    send(
        &mut ws,
        json!({"type": "pty_input", "id": "pty-live", "session_id": session_id,
        "data": "test -t 0 && echo \"tty-$TERM-$SANDBOX_VAR-$PTY_VAR\"\n"}),
    )
    .await;
    read_until(&mut ws, "tty-xterm-256color-from-config-from-request").await;

    send(&mut ws, json!({"type": "pty_resize", "id": "pty-live", "session_id": session_id, "cols": 100, "rows": 40}))
        .await;
    send(
        &mut ws,
        json!({"type": "pty_input", "id": "pty-live", "session_id": session_id, "data_base64": "c3R0eSBzaXplCg=="}),
    )
    .await; // "stty size\n"
    read_until(&mut ws, "40 100").await;

    let (status, resized) =
        guest.call("POST", &format!("/pty/{session_id}/resize"), Some(json!({"cols": 132, "rows": 50}))).await;
    assert_eq!(status, StatusCode::OK, "{resized}");
    let (_, info) = guest.call("GET", &format!("/pty/{session_id}"), None).await;
    assert_eq!((info["cols"].clone(), info["rows"].clone()), (json!(132), json!(50)));
    let (status, bad) =
        guest.call("POST", &format!("/pty/{session_id}/resize"), Some(json!({"cols": 0, "rows": 5}))).await;
    assert_eq!((status, bad["code"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_request")));

    // The session outlives the socket; reattach by id and by pid.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sessions(&guest).await.len(), 1);
    let mut by_pid = pty_socket(&guest).await;
    send(&mut by_pid, json!({"type": "pty_connect", "id": "again", "pid": pid})).await;
    let started = next_json(&mut by_pid).await;
    assert_eq!((started["type"].clone(), started["session_id"].clone()), (json!("pty_started"), json!(session_id)));
    drop(by_pid);

    let mut ws = pty_socket(&guest).await;
    send(&mut ws, json!({"type": "pty_connect", "id": "pty-back", "session_id": session_id})).await;
    let started = next_json(&mut ws).await;
    assert_eq!(started["type"], "pty_started", "{started}");
    assert_eq!((started["pid"].clone(), started["cols"].clone()), (json!(pid), json!(132)));
    send(&mut ws, json!({"type": "pty_input", "id": "pty-back", "session_id": session_id, "data": "printf 'marker_%s\\n' 1a2b\nexit 7\n"})).await;
    let (output, _) = read_until(&mut ws, "marker_1a2b").await;
    assert!(output.contains("marker_1a2b"));
    let (_, exited) = read_until(&mut ws, "\u{0}never").await;
    let exited = exited.expect("pty_exited");
    assert_eq!((exited["id"].clone(), exited["exit_code"].clone()), (json!("pty-back"), json!(7)));

    // Exited sessions are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sessions(&guest).await.is_empty() {
        assert!(Instant::now() < deadline, "exited session still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, missing) = guest.call("GET", &format!("/pty/{session_id}"), None).await;
    assert_eq!((status, missing["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    send(&mut ws, json!({"type": "pty_connect", "id": "late", "session_id": session_id})).await;
    let error = next_json(&mut ws).await;
    assert_eq!((error["type"].clone(), error["id"].clone()), (json!("error"), json!("late")));
}

#[tokio::test]
async fn pty_kill_over_rest_and_websocket() {
    let guest = Guest::start().await;
    let mut ws = pty_socket(&guest).await;
    send(&mut ws, json!({"type": "pty_start", "id": "a", "cols": 80, "rows": 24})).await;
    let first = next_json(&mut ws).await["session_id"].as_str().unwrap().to_owned();
    let mut other = pty_socket(&guest).await;
    send(&mut other, json!({"type": "pty_start", "id": "b"})).await;
    let started = next_json(&mut other).await;
    assert_eq!((started["cols"].clone(), started["rows"].clone()), (json!(120), json!(30)));
    let second = started["session_id"].as_str().unwrap().to_owned();
    assert_eq!(sessions(&guest).await.len(), 2);

    let (status, _) = guest.call("DELETE", &format!("/pty/{first}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, exited) = read_until(&mut ws, "\u{0}never").await;
    assert!(exited.expect("pty_exited")["exit_code"].as_i64().unwrap() > 128);

    send(&mut other, json!({"type": "pty_kill", "id": "b", "session_id": second})).await;
    let (_, exited) = read_until(&mut other, "\u{0}never").await;
    assert!(exited.is_some());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sessions(&guest).await.is_empty() {
        assert!(Instant::now() < deadline, "killed sessions still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send(&mut other, json!({"type": "pty_input", "id": "b", "session_id": second, "data": "x"})).await;
    let error = next_json(&mut other).await;
    assert_eq!((error["type"].clone(), error["code"].clone()), (json!("error"), json!("not_found")));
}
