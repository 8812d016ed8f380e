//! The binary as users run it: help, usage errors, and the error report (chain, hints, exit codes) when
//! the API is unreachable, rejects the key, or no key is configured. No server needed.

use std::io::{Read, Write};
use std::net::TcpListener;

use assert_cmd::Command;

/// `nullspace` with an empty home, config dir and working directory, so no real config leaks in.
fn nullspace(home: &tempfile::TempDir) -> Command {
    let mut cmd = Command::cargo_bin("nullspace").unwrap();
    cmd.current_dir(home.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("NULLSPACE_API_KEY")
        .env_remove("NULLSPACE_API_URL")
        .env_remove("NULLSPACE_BASE_URL")
        .env_remove("RUST_LOG");
    cmd
}

/// A URL on which nothing listens.
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Serves `response` to one connection, returns its URL.
fn one_shot_server(response: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    url
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let home = tempfile::tempdir().unwrap();
    let output = nullspace(&home).arg("--help").output().unwrap();
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    for command in ["server", "api-key", "doctor", "sandbox", "template", "--json"] {
        assert!(stdout.contains(command), "missing {command} in:\n{stdout}");
    }
    let output = nullspace(&home).args(["sandbox", "file", "--help"]).output().unwrap();
    assert!(output.status.success());
    for verb in ["read", "write", "list", "exists", "info", "mkdir", "mv", "chmod", "rm"] {
        assert!(text(&output.stdout).contains(verb), "missing {verb}");
    }
}

#[test]
fn volume_help_lists_every_verb_of_the_reference() {
    let home = tempfile::tempdir().unwrap();
    let output = nullspace(&home).args(["volume", "--help"]).output().unwrap();
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let verbs = [
        "create",
        "list",
        "get",
        "delete",
        "ls-files",
        "read",
        "write",
        "write-files",
        "cat",
        "stat",
        "info",
        "exists",
        "mkdir",
        "chmod",
        "rm",
        "mv",
        "find",
        "search",
        "replace",
        "upload-url",
        "download-url",
        "watch",
        "upload",
        "download",
    ];
    for verb in verbs {
        assert!(stdout.contains(verb), "missing {verb} in:\n{stdout}");
    }
}

#[test]
fn volume_commands_without_a_server_say_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let url = closed_port_url();
    let output = nullspace(&home).args(["volume", "get", "team-data", "--api-url", &url, "--api-key", "k"]).output();
    let output = output.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("could not look up volume `team-data`"), "{stderr}");
    assert!(stderr.contains("hint: is the server running?"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let home = tempfile::tempdir().unwrap();
    let output = nullspace(&home).args(["sandbox", "create", "--env", "novalue"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("expected KEY=VALUE"), "{}", text(&output.stderr));

    let output = nullspace(&home).args(["sandbox", "frobnicate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("error:"));
    assert!(output.stdout.is_empty());
}

#[test]
fn connection_refused_says_to_start_the_server() {
    let home = tempfile::tempdir().unwrap();
    let output = nullspace(&home)
        .args(["sandbox", "list"])
        .env("NULLSPACE_API_URL", closed_port_url())
        .env("NULLSPACE_API_KEY", "ns_test")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: could not list sandboxes"), "{stderr}");
    assert!(stderr.contains("hint: is the server running? start it with `nullspace server`"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn json_errors_go_to_stdout_as_an_envelope() {
    let home = tempfile::tempdir().unwrap();
    let output = nullspace(&home)
        .args(["template", "list", "--json", "--api-url", &closed_port_url(), "--api-key", "k"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["error"]["code"], "transport_error");
    assert!(body["error"]["hint"].as_str().unwrap().contains("nullspace server"));
}

#[test]
fn a_missing_key_is_reported_before_any_request() {
    let home = tempfile::tempdir().unwrap();
    let output =
        nullspace(&home).args(["sandbox", "get", "sb_x"]).env("NULLSPACE_API_URL", closed_port_url()).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no API key configured"), "{stderr}");
    assert!(stderr.contains("hint: set NULLSPACE_API_KEY"), "{stderr}");
}

#[test]
fn the_config_file_supplies_url_and_key_and_401_gets_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let url = one_shot_server(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 49\r\nconnection: close\r\n\r\n{\"error\":\"invalid api key\",\"code\":\"unauthorized\"}",
    );
    let config = home.path().join("config/nullspace");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), format!(r#"{{"api_key":"ns_bad","base_url":"{url}"}}"#)).unwrap();
    let output = nullspace(&home).args(["sandbox", "get", "sb_x"]).output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid api key (code unauthorized, HTTP 401)"), "{stderr}");
    assert!(stderr.contains("hint: check NULLSPACE_API_KEY or ~/.config/nullspace/config.json"), "{stderr}");
}

#[test]
fn server_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let url = one_shot_server(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops",
    );
    let output = nullspace(&home).args(["template", "list", "--api-url", &url, "--api-key", "k"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("oops (code unknown, HTTP 500)"));
}

/// A reader that goes away (`nullspace … --json | head -1`) ends the command quietly, never with a panic.
#[test]
fn a_closed_stdout_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let home = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("nullspace"));
    command
        .args(["sandbox", "list", "--json", "--api-url", &closed_port_url(), "--api-key", "ns_x"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    drop(child.stdout.take()); // the reader is gone before the command prints its error envelope
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.signal(), Some(nix::libc::SIGPIPE), "{:?} {stderr}", output.status);
}
