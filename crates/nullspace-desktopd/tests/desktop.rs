//! The daemon against a real desktop: Xtigervnc on a host display (:73–:78), openbox, real
//! applications (mousepad, xmessage), XTEST input and ffmpeg. Checks are made on pixels, files and
//! what the X server reports, never on timing. Skipped, with a message, only where Xtigervnc is not
//! installed; the other programs the tests use must be there (the CI installs them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

/// A running daemon with its desktop; stopped (SIGTERM, which stops the X server too) when dropped.
struct Desktop {
    child: Child,
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Starts the daemon on `display` at `resolution`; `None` (after saying why) without Xtigervnc.
fn start(display: u32, resolution: &str) -> Option<Desktop> {
    if !installed("Xtigervnc") {
        eprintln!("SKIPPED: Xtigervnc is not installed (apt-get install tigervnc-standalone-server openbox)");
        return None;
    }
    for program in ["openbox", "ffmpeg", "ffprobe", "mousepad", "xmessage"] {
        assert!(installed(program), "{program} must be installed for the desktop tests");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nullspace-desktopd"))
        .args(["--listen", "127.0.0.1:0", "--rfb-localhost", "--rfb-port", &(5900 + display).to_string()])
        .arg("--recordings-dir")
        .arg(dir.path().join("recordings"))
        .arg("--workdir")
        .arg(dir.path())
        .env("NULLSPACE_DESKTOP_DISPLAY", format!(":{display}"))
        .env("NULLSPACE_DESKTOP_RESOLUTION", resolution)
        .env("NULLSPACE_DESKTOP_DPI", "96")
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("share"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the daemon starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line.trim().strip_prefix("nullspace-desktopd listening on ").unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the daemon did not come up: {line:?}")
    });
    Some(Desktop { base: format!("http://{address}"), child, http: reqwest::Client::new(), dir })
}

impl Drop for Desktop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Desktop {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, bytes) = self.raw(method, path, body).await;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON answer") };
        (status, value)
    }

    async fn ok(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, value) = self.call(method, path, Some(body)).await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
    }

    async fn screenshot(&self, region: Option<(i64, i64, i64, i64)>) -> image::RgbImage {
        let (status, bytes) = match region {
            None => self.raw(Method::POST, "/screenshot", None).await,
            Some((x, y, width, height)) => {
                let body = json!({"x": x, "y": y, "width": width, "height": height});
                self.raw(Method::POST, "/screenshot/region", Some(body)).await
            }
        };
        assert_eq!(status, 200);
        assert_eq!(&bytes[..4], b"\x89PNG");
        image::load_from_memory(&bytes).unwrap().to_rgb8()
    }

    /// Waits (bounded) until the window list has a window matching `wanted`.
    async fn window(&self, wanted: impl Fn(&Value) -> bool) -> Value {
        let found = wait_for(|| async {
            let (_, windows) = self.call(Method::GET, "/windows", None).await;
            windows.as_array().and_then(|w| w.iter().find(|w| wanted(w)).cloned())
        })
        .await;
        found.expect("the window appears in GET /windows within 20 s")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Polls `probe` until it yields something, for at most 20 s (conditions the test waits on: a window
/// mapped, a file saved).
async fn wait_for<T, F, Fut>(probe: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn differing_pixels(a: &image::RgbImage, b: &image::RgbImage) -> usize {
    a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count()
}

#[tokio::test]
async fn screenshots_have_the_configured_size_and_formats() {
    let Some(desktop) = start(73, "1024x640") else { return };
    assert_eq!(desktop.ok(Method::GET, "/screen_size", json!(null)).await, json!({"width": 1024, "height": 640}));
    let display = desktop.ok(Method::GET, "/display", json!(null)).await;
    assert_eq!(display["virtual_screen"], json!({"width": 1024, "height": 640}));
    assert_eq!(
        (display["monitors"][0]["width"].as_u64(), display["monitors"][0]["height"].as_u64()),
        (Some(1024), Some(640))
    );

    assert_eq!(desktop.screenshot(None).await.dimensions(), (1024, 640));
    assert_eq!(desktop.screenshot(Some((10, 20, 320, 240))).await.dimensions(), (320, 240));

    let body = json!({"format": "jpeg", "quality": 60, "scale": 0.5});
    let (status, jpeg) = desktop.raw(Method::POST, "/screenshot/compressed", Some(body)).await;
    assert_eq!((status, &jpeg[..2]), (200, &b"\xff\xd8"[..]));
    assert_eq!(image::load_from_memory(&jpeg).unwrap().to_rgb8().dimensions(), (512, 320));
    let body = json!({"format": "png", "quality": 70, "show_cursor": true, "region": {"x": 0, "y": 0, "width": 320, "height": 240}});
    let (status, png) = desktop.raw(Method::POST, "/screenshot/compressed", Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&png).unwrap().to_rgb8().dimensions(), (320, 240));

    // The cursor overlay draws the pointer where it is.
    desktop.ok(Method::POST, "/move", json!({"x": 100, "y": 100})).await;
    let region = json!({"x": 90, "y": 90, "width": 40, "height": 40});
    let plain = json!({"format": "png", "region": region});
    let with_cursor = json!({"format": "png", "show_cursor": true, "region": region});
    let (_, plain) = desktop.raw(Method::POST, "/screenshot/compressed", Some(plain)).await;
    let (_, cursor) = desktop.raw(Method::POST, "/screenshot/compressed", Some(with_cursor)).await;
    let (plain, cursor) =
        (image::load_from_memory(&plain).unwrap().to_rgb8(), image::load_from_memory(&cursor).unwrap().to_rgb8());
    assert!(differing_pixels(&plain, &cursor) > 10, "the cursor shows in the overlay");

    let (status, error) = desktop
        .call(Method::POST, "/screenshot/region", Some(json!({"x": 900, "y": 0, "width": 200, "height": 10})))
        .await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid_request")));
    assert!(error["error"].as_str().unwrap().contains("does not fit the 1024x640 screen"), "{error}");
    let (status, error) = desktop.call(Method::POST, "/screenshot/compressed", Some(json!({"format": "webp"}))).await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn typing_into_a_real_editor_changes_its_pixels_and_its_file() {
    let Some(desktop) = start(74, "1280x800") else { return };
    let file = desktop.path("edit.txt");
    std::fs::write(&file, "seed line\n").unwrap();
    let launched =
        desktop.ok(Method::POST, "/launch", json!({"mode": "executable", "command": "mousepad", "args": [file]})).await;
    let pid = launched["pid"].as_u64().unwrap();
    let window = desktop
        .window(|w| w["pid"].as_u64() == Some(pid) && w["class_name"].as_str().unwrap().contains("ousepad"))
        .await;
    let (x, y, width, height) = (
        window["x"].as_i64().unwrap(),
        window["y"].as_i64().unwrap(),
        window["width"].as_i64().unwrap(),
        window["height"].as_i64().unwrap(),
    );
    assert!(width > 100 && height > 100, "{window}");
    // Wait until the editor has drawn itself (its menu and text are dark pixels).
    let before = wait_for(|| async {
        let shot = desktop.screenshot(Some((x, y, width, height))).await;
        (shot.pixels().filter(|p| p.0.iter().all(|&c| c < 100)).count() > 300).then_some(shot)
    })
    .await
    .expect("the editor draws its window");

    desktop.ok(Method::POST, "/click", json!({"x": x + width / 2, "y": y + height / 2, "button": "left"})).await;
    desktop.ok(Method::POST, "/press", json!({"key": "a", "modifiers": ["ctrl"]})).await;
    desktop.ok(Method::POST, "/type", json!({"text": "alpha LINE"})).await;
    desktop.ok(Method::POST, "/key", json!({"key": "Return"})).await;
    desktop.ok(Method::POST, "/type", json!({"text": "beta é→ line"})).await;
    desktop.ok(Method::POST, "/hotkey", json!({"keys": "ctrl+s"})).await;
    let saved = wait_for(|| async {
        std::fs::read_to_string(&file).ok().filter(|content| content == "alpha LINE\nbeta é→ line")
    })
    .await;
    let on_disk = std::fs::read_to_string(&file);
    assert_eq!(
        saved.as_deref(),
        Some("alpha LINE\nbeta é→ line"),
        "the file holds exactly what was typed: {on_disk:?}"
    );
    let after = desktop.screenshot(Some((x, y, width, height))).await;
    assert!(differing_pixels(&before, &after) > 200, "typed text shows on screen");

    let current = desktop.ok(Method::GET, "/window/current", json!(null)).await;
    assert_eq!(current["window_id"], window["id"], "the clicked editor is active");
    let title =
        desktop.ok(Method::GET, &format!("/window/{}/title", window["id"].as_str().unwrap()), json!(null)).await;
    assert!(title["title"].as_str().unwrap().contains("edit.txt"), "{title}");

    desktop.ok(Method::POST, "/move", json!({"x": 321, "y": 123})).await;
    assert_eq!(desktop.ok(Method::GET, "/cursor", json!(null)).await, json!({"x": 321, "y": 123}));
    let (status, error) = desktop.call(Method::POST, "/key", Some(json!({"key": "hyperdrive"}))).await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = desktop.call(Method::POST, "/click", Some(json!({"x": 5000, "y": 1}))).await;
    assert!(status == 400 && error["error"].as_str().unwrap().contains("outside the screen"), "{error}");
}

#[tokio::test]
async fn the_clipboard_round_trips_and_is_mirrored_to_primary() {
    let Some(desktop) = start(75, "800x600") else { return };
    assert_eq!(desktop.ok(Method::GET, "/clipboard", json!(null)).await, json!({"text": ""}), "nobody owns it yet");
    let text = "phase15 clipboard sync ✓\nsecond line";
    assert_eq!(desktop.ok(Method::PUT, "/clipboard", json!({"text": text})).await, json!({"text": text}));
    assert_eq!(desktop.ok(Method::GET, "/clipboard", json!(null)).await, json!({"text": text}));
    if installed("xclip") {
        let primary =
            Command::new("xclip").args(["-selection", "primary", "-o"]).env("DISPLAY", ":75").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&primary.stdout), text);
    }
    // Large text is answered in INCR chunks by other owners; ours answers in one property.
    let large = "x".repeat(300_000);
    desktop.ok(Method::PUT, "/clipboard", json!({"text": large})).await;
    assert_eq!(desktop.ok(Method::GET, "/clipboard", json!(null)).await["text"].as_str().map(str::len), Some(300_000));
}

#[tokio::test]
async fn launched_windows_are_listed_with_their_facts() {
    let Some(desktop) = start(76, "800x600") else { return };
    let launched = desktop
        .ok(
            Method::POST,
            "/launch",
            json!({"mode": "executable", "command": "xmessage", "args": ["-name", "nsmsg", "hello from the test"]}),
        )
        .await;
    let pid = launched["pid"].as_u64().unwrap();
    let window = desktop.window(|w| w["class_name"] == "nsmsg.Xmessage").await;
    assert!(window["id"].as_str().unwrap().bytes().all(|b| b.is_ascii_digit()), "{window}");
    assert!(!window["title"].as_str().unwrap().is_empty(), "{window}");
    assert_eq!(window["desktop"], 0);
    assert!(window["desktop_name"].is_string(), "{window}");
    assert!(window["width"].as_u64().unwrap() > 0 && window["height"].as_u64().unwrap() > 0);
    // xmessage does not set _NET_WM_PID: unknown pids are null, not guessed.
    assert!(window["pid"].is_null() || window["pid"].as_u64() == Some(pid), "{window}");
    // A desktop entry of the user's data directory, with the URI in place of its field code.
    let applications = desktop.path("share/applications");
    std::fs::create_dir_all(&applications).unwrap();
    let entry = "[Desktop Entry]\nType=Application\nName=Entry test\nExec=xmessage -name nsentry %u\n";
    std::fs::write(applications.join("org.nullspace.entrytest.desktop"), entry).unwrap();
    let launched = desktop
        .ok(Method::POST, "/launch", json!({"mode": "desktop_entry", "desktop_entry": "entrytest", "uri": "uri-text"}))
        .await;
    assert_eq!(launched["argv"], json!(["xmessage", "-name", "nsentry", "uri-text"]));
    desktop.window(|w| w["class_name"] == "nsentry.Xmessage").await;

    let (status, error) = desktop.call(Method::GET, "/window/99/title", None).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("window_not_found")));
    let (status, error) =
        desktop.call(Method::POST, "/launch", Some(json!({"mode": "executable", "command": "no-such-program"}))).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("launch_failed")));
    let (status, error) = desktop
        .call(Method::POST, "/launch", Some(json!({"mode": "desktop_entry", "desktop_entry": "no-such-app"})))
        .await;
    assert_eq!((status, error["code"].as_str()), (404, Some("desktop_entry_not_found")));
    let (status, error) = desktop.call(Method::POST, "/open", Some(json!({"target": "missing.txt"}))).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("file_not_found")));
    // The ended program is reaped: no zombie child stays behind.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let gone = wait_for(|| async { (!Path::new(&format!("/proc/{pid}")).exists()).then_some(()) }).await;
    assert!(gone.is_some(), "process {pid} was reaped");
}

#[tokio::test]
async fn recordings_are_mp4_files_that_ffprobe_reads() {
    let Some(desktop) = start(77, "640x480") else { return };
    let started = desktop.ok(Method::POST, "/recording/start", json!({"name": "demo"})).await;
    assert_eq!((started["status"].as_str(), started["name"].as_str()), (Some("recording"), Some("demo")));
    let id = started["id"].as_str().unwrap().to_owned();
    for x in [100, 200, 300, 400] {
        desktop.ok(Method::POST, "/move", json!({"x": x, "y": 200})).await;
    }
    let stopped = desktop.ok(Method::POST, "/recording/stop", json!({"recording_id": id})).await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    let keys: Vec<&String> = stopped.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "exactly the RecordingInfo keys: {keys:?}");
    let listed = desktop.ok(Method::GET, "/recording", json!(null)).await;
    assert!(listed.as_array().unwrap().iter().any(|r| r["id"] == id.as_str()));

    let (status, mp4) = desktop.raw(Method::GET, &format!("/recording/{id}/download"), None).await;
    assert_eq!(status, 200);
    assert!(mp4.len() > 1024 && mp4[..64].windows(4).any(|w| w == b"ftyp"));
    let file = desktop.path("downloaded.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=format_name,duration:stream=codec_type,width,height",
            "-of",
            "json",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
    let probe: Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert!(probe["format"]["format_name"].as_str().unwrap().contains("mp4"), "{probe}");
    let duration: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!(duration > 0.0, "{probe}");
    assert_eq!((probe["streams"][0]["width"].as_u64(), probe["streams"][0]["height"].as_u64()), (Some(640), Some(480)));

    let (status, _) = desktop.call(Method::DELETE, &format!("/recording/{id}"), None).await;
    assert_eq!(status, 200);
    let (status, error) = desktop.call(Method::GET, &format!("/recording/{id}"), None).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("recording_not_found")));
}

#[tokio::test]
async fn health_turns_503_when_the_x_server_dies() {
    let Some(desktop) = start(78, "640x480") else { return };
    let (status, health) = desktop.call(Method::GET, "/health", None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["window_manager"], true);
    // The X server is the daemon's child (of any of its threads) whose command line starts with Xtigervnc.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", desktop.child.id())).unwrap();
    let children: Vec<String> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|pids| pids.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let x_server = children
        .iter()
        .find(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| cmd.starts_with(b"Xtigervnc")))
        .expect("the X server is a child of the daemon")
        .to_owned();
    assert!(Command::new("kill").args(["-KILL", &x_server]).status().unwrap().success());
    let unhealthy = wait_for(|| async {
        let (status, body) = desktop.call(Method::GET, "/health", None).await;
        (status == 503).then_some(body)
    })
    .await
    .expect("health turns 503");
    assert_eq!(unhealthy["code"], "desktop_not_ready");
    let (status, body) = desktop.call(Method::GET, "/screen_size", None).await;
    assert_eq!(status, 503, "{body}");
}

#[test]
fn malformed_settings_are_refused_with_the_variable_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_nullspace-desktopd"))
        .args(["--listen", "127.0.0.1:0"])
        .env("NULLSPACE_DESKTOP_RESOLUTION", "huge")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NULLSPACE_DESKTOP_RESOLUTION") && stderr.contains("WIDTHxHEIGHT"), "{stderr}");
}
