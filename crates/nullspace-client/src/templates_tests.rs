//! The template client against a small in-process HTTP server: a streamed build (SSE with pings and
//! events split across writes), and a context upload (preflight, then a PUT of only the missing blob).

use std::sync::{Arc, Mutex};

use nullspace_types::template_api::{BuildRequest, ContextFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{Client, ClientConfig, LocalContextEntry};

/// One request the fake server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Vec<u8>,
}

type Reply = (u16, &'static str, Vec<Vec<u8>>);

/// Serves each connection's one request with `reply(request)`; the reply's chunks are written apart.
async fn serve(reply: fn(&Seen) -> Reply) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buffer = [0u8; 4096];
                let header_end = loop {
                    let read = socket.read(&mut buffer).await.unwrap();
                    data.extend_from_slice(&buffer[..read]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                };
                let head = String::from_utf8_lossy(&data[..header_end]).to_string();
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .map_or(0, |v| v.parse::<usize>().unwrap());
                while data.len() < header_end + length {
                    let read = socket.read(&mut buffer).await.unwrap();
                    data.extend_from_slice(&buffer[..read]);
                }
                let mut words = head.split_whitespace();
                let request = Seen {
                    method: words.next().unwrap().to_owned(),
                    path: words.next().unwrap().to_owned(),
                    body: data[header_end..header_end + length].to_vec(),
                };
                log.lock().unwrap().push(request.clone());
                let (status, content_type, chunks) = reply(&request);
                let head = format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n");
                socket.write_all(head.as_bytes()).await.unwrap();
                for chunk in chunks {
                    socket.write_all(&chunk).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            });
        }
    });
    (Client::new(ClientConfig::new(url, Some("key".into()))).unwrap(), seen)
}

fn entry(offset: u64, kind: &str) -> String {
    format!(
        r#"{{"build_id":"tb_1","template_id":"tmpl_1","offset":{offset},"timestamp":"t","kind":"{kind}","level":"info","message":"m{offset}"{}}}"#,
        if kind == "end" { r#","result":{"id":"tmpl_1","name":"demo"}"# } else { "" }
    )
}

#[tokio::test]
async fn a_streamed_build_yields_its_entries_in_order() {
    let (client, seen) = serve(|_| {
        let events = format!("data: {}\n\ndata: {}\n\n", entry(1, "message"), entry(2, "end"));
        let (a, b) = events.split_at(40);
        (
            200,
            "text/event-stream",
            vec![b": ping\n\n".to_vec(), format!("data: {}\n\n", entry(0, "start")).into_bytes(), a.into(), b.into()],
        )
    })
    .await;
    let request = BuildRequest { base_image: Some("nullspace/base".into()), ..Default::default() };
    let mut stream = client.build_template(&request).await.unwrap();
    let mut kinds = Vec::new();
    while let Some(entry) = stream.next().await {
        let entry = entry.unwrap();
        kinds.push((entry.offset, entry.kind.clone()));
        if entry.kind == "end" {
            assert_eq!(entry.result.unwrap()["id"], "tmpl_1");
        }
    }
    assert_eq!(kinds, [(0, "start".to_owned()), (1, "message".to_owned()), (2, "end".to_owned())]);
    let seen = seen.lock().unwrap();
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/v1/templates/build"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body, serde_json::json!({"base_image": "nullspace/base"}));
}

#[tokio::test]
async fn build_errors_before_the_stream_are_api_errors() {
    let (client, _) = serve(|_| {
        (400, "application/json", vec![br#"{"error":{"code":"invalid_request","message":"no base"}}"#.to_vec()])
    })
    .await;
    let error = client.build_template(&BuildRequest::default()).await.unwrap_err();
    assert_eq!((error.status(), error.code()), (Some(400), "invalid_request"));
}

#[tokio::test]
async fn only_missing_blobs_are_uploaded() {
    let (client, seen) = serve(|request| match request.path.as_str() {
        "/v1/templates/blobs/preflight" => (
            200,
            "application/json",
            vec![br#"{"files":[{"path":"ctx","entry_type":"dir","missing":false},
                {"path":"ctx/a","entry_type":"file","blob_id":"blob_a","missing":false},
                {"path":"ctx/b","entry_type":"file","blob_id":"blob_b","missing":true}]}"#
                .to_vec()],
        ),
        _ => (204, "text/plain", vec![]),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), "aaa").unwrap();
    std::fs::write(dir.path().join("b"), "bbbb").unwrap();
    let file = |name: &str| LocalContextEntry {
        entry: ContextFile {
            path: format!("ctx/{name}"),
            entry_type: Some("file".into()),
            mode: Some("0644".into()),
            ..Default::default()
        },
        local: Some(dir.path().join(name)),
        sha256: Some(format!("sha-{name}")),
        size_bytes: Some(3),
        force_upload: false,
    };
    let root = LocalContextEntry {
        entry: ContextFile {
            path: "ctx".into(),
            entry_type: Some("dir".into()),
            mode: Some("0755".into()),
            ..Default::default()
        },
        local: None,
        sha256: None,
        size_bytes: None,
        force_upload: false,
    };
    let context = client.upload_build_context(&[root, file("a"), file("b")], None).await.unwrap();
    let blobs: Vec<Option<&str>> = context.files.iter().map(|f| f.blob_id.as_deref()).collect();
    assert_eq!(blobs, [None, Some("blob_a"), Some("blob_b")]);
    let seen = seen.lock().unwrap();
    let puts: Vec<(&str, &[u8])> =
        seen.iter().filter(|r| r.method == "PUT").map(|r| (r.path.as_str(), r.body.as_slice())).collect();
    assert_eq!(puts, [("/v1/templates/blobs/blob_b", b"bbbb".as_slice())]);
}
