//! Test harness: starts the real `nullspace-codegw` binary on an ephemeral port with a temporary state
//! directory and cwd against the host's python kernel (`python3-ipykernel`), waits until `/health`
//! answers 200, and drives it over HTTP (JSON and SSE).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long the gateway gets to run python code after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running gateway, killed when dropped.
pub struct Gateway {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The default cwd of contexts.
    pub workspace: tempfile::TempDir,
    /// The state directory.
    pub state: tempfile::TempDir,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a gateway with `extra` arguments and waits until it runs python code.
pub async fn start(extra: &[&str]) -> Gateway {
    start_in(tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), extra).await
}

/// Like [`start`], with the state directory and workspace of an earlier gateway.
pub async fn start_in(state: tempfile::TempDir, workspace: tempfile::TempDir, extra: &[&str]) -> Gateway {
    assert!(
        std::path::Path::new("/usr/share/jupyter/kernels/python3/kernel.json").exists(),
        "these tests need the host's python kernel: apt-get install python3-ipykernel python3-matplotlib"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_nullspace-codegw"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .arg("--default-cwd")
        .arg(workspace.path())
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start nullspace-codegw");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let address = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(line.starts_with("nullspace-codegw listening on"), "unexpected first line {line:?}");
    let gateway = Gateway {
        child,
        base: format!("http://{address}"),
        workspace,
        state,
        http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap(),
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let response = gateway.http.get(gateway.url("/health")).send().await.unwrap();
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503, "health before ready");
        assert!(Instant::now() < deadline, "the gateway did not become healthy: {}", response.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway
}

/// The events of one execution and what they add up to.
#[derive(Debug, Default)]
pub struct Execution {
    /// Every event, in order.
    pub events: Vec<Value>,
}

impl Execution {
    /// All stdout text.
    pub fn stdout(&self) -> String {
        self.texts("stdout")
    }

    /// All stderr text.
    pub fn stderr(&self) -> String {
        self.texts("stderr")
    }

    fn texts(&self, kind: &str) -> String {
        self.of_type(kind).iter().map(|event| event["text"].as_str().unwrap_or_default()).collect()
    }

    /// Events of `kind`.
    pub fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|event| event["type"] == kind).collect()
    }

    /// The last error event.
    pub fn error(&self) -> Option<&Value> {
        self.of_type("error").into_iter().last()
    }

    /// The artifacts of the artifact events.
    pub fn artifacts(&self) -> Vec<&Value> {
        self.of_type("artifact").into_iter().map(|event| &event["artifact"]).collect()
    }

    /// The execution count.
    pub fn count(&self) -> Option<i64> {
        self.of_type("number_of_executions").last().and_then(|event| event["execution_count"].as_i64())
    }
}

impl Gateway {
    /// Kills the gateway with SIGKILL (no chance to stop its kernels) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Kills the gateway with SIGKILL and hands back its state directory and workspace.
    pub fn kill_keeping_dirs(mut self) -> (tempfile::TempDir, tempfile::TempDir) {
        self.kill();
        let state = std::mem::replace(&mut self.state, tempfile::tempdir().unwrap());
        let workspace = std::mem::replace(&mut self.workspace, tempfile::tempdir().unwrap());
        (state, workspace)
    }

    /// The gateway's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /execute` with `body`; the whole stream, parsed (panics on a non-200 answer).
    pub async fn execute(&self, body: Value) -> Execution {
        let response = self.http.post(self.url("/execute")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200, "execute {body}: {}", response.text().await.unwrap());
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        parse_sse(&response.text().await.unwrap())
    }

    /// Runs `code` in `context` (the default python context when empty).
    pub async fn run(&self, context: &str, code: &str) -> Execution {
        let mut body = json!({"code": code});
        if !context.is_empty() {
            body["context_id"] = json!(context);
        }
        self.execute(body).await
    }

    /// A JSON request; (status, body).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// `POST /contexts` with `body`, expected to succeed; the context id.
    pub async fn context(&self, body: Value) -> String {
        let (status, context) = self.call(reqwest::Method::POST, "/contexts", Some(body)).await;
        assert_eq!(status, 200, "{context}");
        context["id"].as_str().unwrap().to_owned()
    }
}

/// The `data: ` events of an SSE body (other lines, like `: ping`, are ignored as the client does).
pub fn parse_sse(body: &str) -> Execution {
    let events = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("every data line is one JSON object"))
        .collect();
    Execution { events }
}

/// Asserts an error envelope: `status`, `code`, and a message containing `needle`.
pub fn assert_error(answer: &(u16, Value), status: u16, code: &str, needle: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    let message = answer.1["error"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{message:?} should contain {needle:?}");
}
