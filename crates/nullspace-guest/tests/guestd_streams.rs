//! guestd as a real process: WebSocket exec and file watch, and the TCP tunnel.

mod common;

use common::*;

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
    assert_eq!((stdout.as_str(), stderr.as_str(), exit["exit_code"].clone()), ("hi\n", "err\n", json!(3)));
    let logs = guest.logs_until_exit(pid).await;
    assert_eq!((logs["stdout"].clone(), logs["exit_code"].clone()), (json!("hi\n"), json!(3)));

    ws.send(Message::text("{not json")).await.unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert!(error["message"].as_str().unwrap().contains("invalid message"));

    let background = guest
        .ok(
            "POST",
            "/exec",
            json!({"command": "sh", "args": ["-c", "sleep 0.5; echo late; exit 5"], "background": true}),
        )
        .await;
    let pid = background["pid"].as_u64().unwrap();
    ws.send(Message::text(json!({"type": "exec_connect", "id": "exec_ab12cd34", "pid": pid}).to_string()))
        .await
        .unwrap();
    let started = next_json(&mut ws).await;
    assert_eq!((started["type"].clone(), started["pid"].clone()), (json!("exec_started"), json!(pid)));
    let output = next_json(&mut ws).await;
    assert_eq!((output["type"].clone(), output["data"].clone()), (json!("exec_stdout"), json!("late\n")));
    let exit = next_json(&mut ws).await;
    assert_eq!((exit["type"].clone(), exit["exit_code"].clone()), (json!("exec_exit"), json!(5)));

    ws.send(Message::text(json!({"type": "exec_connect", "id": "again", "pid": pid}).to_string())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "exec_started");
    let exit = next_json(&mut ws).await;
    assert_eq!((exit["type"].clone(), exit["exit_code"].clone()), (json!("exec_exit"), json!(5)));

    ws.send(Message::text(
        json!({"type": "exec_start", "id": "missing", "command": "no-such-binary-xyz", "args": []}).to_string(),
    ))
    .await
    .unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!((error["type"].clone(), error["id"].clone()), (json!("error"), json!("missing")));
}

#[tokio::test]
async fn websocket_file_watch_reports_nested_events() {
    let guest = Guest::start().await;
    let cwd = guest.cwd();
    guest.ok("POST", "/files/mkdir", json!({"path": "watched/subdir", "user": null})).await;
    let mut ws = guest.websocket().await;
    ws.send(Message::text(json!({"type": "file_watch", "id": "watch_1", "path": "watched", "user": null, "recursive": true, "timeout_secs": 2}).to_string()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"type": "file_watch_started", "id": "watch_1"}));
    guest
        .ok("POST", "/files/write", json!({"path": "watched/subdir/inner.txt", "content": "nested", "user": null}))
        .await;
    guest
        .ok(
            "POST",
            "/files/permissions",
            json!({"path": "watched/subdir/inner.txt", "permissions": "0600", "user": null}),
        )
        .await;
    let mut seen = Vec::new();
    while !seen.iter().any(|(kind, _): &(String, String)| kind == "chmod") {
        let event = next_json(&mut ws).await;
        assert_eq!(event["type"], "file_event");
        assert_eq!(event["path"], format!("{cwd}/watched/{}", event["name"].as_str().unwrap()));
        seen.push((event["event"].as_str().unwrap().to_owned(), event["name"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen[0], ("create".to_owned(), "subdir/inner.txt".to_owned()));
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
        socket.write_all(&[b"echo:".as_slice(), &buffer].concat()).await.unwrap();
    });
    let mut stream = UnixStream::connect(&guest.socket).await.unwrap();
    stream
        .write_all(
            format!("GET /tcp/{port} HTTP/1.1\r\nHost: guest\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
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
