//! `nullspace bench`'s desktop figures, each next to a baseline measured in the same run: create of a
//! `desktop` sandbox (it returns once the X server answers) next to a cold `base` create; full HD
//! screenshots (PNG, JPEG q80) through the API next to desktopd's own request over loopback inside the
//! sandbox (same capture and encoder, no relay; one curl on a keep-alive connection times each); the
//! input round trip (pointer moved through the API, `GET /cursor` polled until it reports the position)
//! next to the same done inside the sandbox by XTEST + XQueryPointer in one process (the X server's own
//! cost) and by `xdotool mousemove` + `getmouselocation` (a script's); and framebuffer updates per second
//! of an animated screen through the managed viewer's WebSocket bridge next to the same RFB client on
//! the raw VNC address (the node's host port; only when the server runs with `--desktop-raw-vnc`).
//! Skipped when the server has no such template.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::{Client, ClientConfig};
use nullspace_types::desktop_api::{
    CursorPosition, DesktopStreamInfo, Launched, ManagedDesktopStreamInfo, MoveRequest, WindowInfo,
};
use nullspace_types::exec_api::ExecRequest;
use nullspace_types::sandbox::CreateSandboxRequest;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::report::{summarize, Summary};
use super::rfb::{Link, Session};
use crate::cli::GlobalArgs;

/// The built-in template the figures need.
pub(super) const TEMPLATE: &str = "desktop";
/// Untimed runs before each timed series (ours and the baselines').
const WARMUP: usize = 3;
/// Rounds the screenshot and input series are split into (ours, then the baseline's, in each).
const ROUNDS: usize = 4;
/// How long updates are counted on each viewer connection.
const VIEWER_WINDOW: Duration = Duration::from_secs(5);
/// What animates the screen while updates are counted: ffmpeg's test pattern at 60 frames per second
/// in a 1280×720 window (`ffplay` comes with the template's ffmpeg).
const ANIMATION_TITLE: &str = "nullspace-bench-animation";
const ANIMATION_SIZE: &str = "1280x720";
const ANIMATION_RATE: u32 = 60;
/// How long a pointer position or the animation's window is waited for.
const WAIT_LIMIT: Duration = Duration::from_secs(30);
/// The in-sandbox baselines (`python3 -c`).
const INSIDE_SCRIPT: &str = include_str!("desktop_inside.py");

/// The desktop figures.
#[derive(Debug, serde::Serialize)]
pub(super) struct DesktopFigures {
    /// Create of a `desktop` sandbox (returns once its X server answers), every pool bypassed.
    create_to_ready: Summary,
    /// Create of a `base` sandbox, every pool bypassed, alternating with the desktop creates.
    base_create: Summary,
    create_vs_base_p50_ratio: f64,
    /// `POST /screenshot` (full screen, PNG) through the API.
    screenshot_png: Summary,
    /// The same request to desktopd over loopback inside the sandbox.
    raw_screenshot_png: Summary,
    png_vs_raw_p50_ratio: f64,
    /// `POST /screenshot/compressed` JPEG quality 80 through the API.
    screenshot_jpeg: Summary,
    raw_screenshot_jpeg: Summary,
    jpeg_vs_raw_p50_ratio: f64,
    /// `POST /move`, then `GET /cursor` until it reports the position, through the API.
    input_round_trip: Summary,
    /// XTEST motion + XQueryPointer until it reports the position, in one process inside the sandbox.
    xtest_input_round_trip: Summary,
    input_vs_xtest_p50_ratio: f64,
    /// `xdotool mousemove` + `getmouselocation` until it reports the position, inside the sandbox.
    xdotool_input_round_trip: Summary,
    input_vs_xdotool_p50_ratio: f64,
    /// Framebuffer updates per second of the animated screen.
    viewer: ViewerFigures,
}

/// Framebuffer updates per second while [`ANIMATION_RATE`] frames per second play.
#[derive(Debug, serde::Serialize)]
struct ViewerFigures {
    animation_fps: u32,
    animation_size: &'static str,
    /// Through the managed viewer (`stream/start`, then the WebSocket bridge).
    bridge_updates_per_s: f64,
    /// The bytes of those updates (raw encoding), MiB/s.
    bridge_mib_per_s: f64,
    /// The same client on the raw VNC address, when the server offers one.
    raw_vnc_updates_per_s: Option<f64>,
    raw_vnc_mib_per_s: Option<f64>,
    /// Why there is no raw figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_vnc_skipped: Option<String>,
    bridge_vs_raw_ratio: Option<f64>,
}

/// Measures the figures over `samples` creates and `samples` round trips of each kind; `None` (with a
/// message) when the server has no `desktop` template.
pub(super) async fn measure(
    client: &Client,
    global: &GlobalArgs,
    samples: usize,
) -> anyhow::Result<Option<DesktopFigures>> {
    if !client.template_exists(TEMPLATE).await.context("looking up the desktop template")? {
        eprintln!("bench: desktop figures skipped: the server lists no `{TEMPLATE}` template");
        return Ok(None);
    }
    let api = Api::new(global)?;
    eprintln!("bench: {TEMPLATE} create→ready ×{samples}, alternating with cold base creates");
    let (create, base) = measure_creates(client, samples).await?;
    let request = CreateSandboxRequest { template: Some(TEMPLATE.into()), ..CreateSandboxRequest::default() };
    let sandbox = client.create_sandbox(&request, None).await.context("creating a desktop sandbox")?;
    let outcome = measure_in(client, &api, &sandbox.id, samples).await;
    client.kill_sandbox(&sandbox.id).await.context("killing the desktop bench sandbox")?;
    let (shots, input, viewer) = outcome?;
    let ratio = |ours: &Summary, raw: &Summary| ours.p50_ms / raw.p50_ms.max(f64::EPSILON);
    Ok(Some(DesktopFigures {
        create_vs_base_p50_ratio: ratio(&create, &base),
        create_to_ready: create,
        base_create: base,
        png_vs_raw_p50_ratio: ratio(&shots.png, &shots.raw_png),
        jpeg_vs_raw_p50_ratio: ratio(&shots.jpeg, &shots.raw_jpeg),
        screenshot_png: shots.png,
        raw_screenshot_png: shots.raw_png,
        screenshot_jpeg: shots.jpeg,
        raw_screenshot_jpeg: shots.raw_jpeg,
        input_vs_xtest_p50_ratio: ratio(&input.api, &input.xtest),
        input_vs_xdotool_p50_ratio: ratio(&input.api, &input.xdotool),
        input_round_trip: input.api,
        xtest_input_round_trip: input.xtest,
        xdotool_input_round_trip: input.xdotool,
        viewer,
    }))
}

/// Prints the figures as rows of `nullspace bench`'s table (or why they were skipped).
pub(super) fn print_rows(figures: Option<&DesktopFigures>, skipped_by_flag: bool, row: impl Fn(&str, &Summary)) {
    let Some(f) = figures else {
        let why = if skipped_by_flag { "--no-desktop" } else { "the server lists no `desktop` template" };
        println!("{:<24} skipped: {why}", "desktop");
        return;
    };
    row("desktop create→ready", &f.create_to_ready);
    row("base create (cold)", &f.base_create);
    println!("{:<24} {:.2}× a cold base create (p50)", "desktop create→ready", f.create_vs_base_p50_ratio);
    row("screenshot PNG (API)", &f.screenshot_png);
    row("screenshot PNG (inside)", &f.raw_screenshot_png);
    println!("{:<24} {:.2}× desktopd over loopback (p50, full HD)", "screenshot PNG", f.png_vs_raw_p50_ratio);
    row("screenshot JPEG80 (API)", &f.screenshot_jpeg);
    row("screenshot JPEG80 (in)", &f.raw_screenshot_jpeg);
    println!("{:<24} {:.2}× desktopd over loopback (p50, full HD)", "screenshot JPEG q80", f.jpeg_vs_raw_p50_ratio);
    row("input move→cursor (API)", &f.input_round_trip);
    row("XTEST move→query (in)", &f.xtest_input_round_trip);
    row("xdotool move→location", &f.xdotool_input_round_trip);
    println!(
        "{:<24} {:.1}× in-process XTEST, {:.2}× xdotool inside the sandbox (p50)",
        "input round trip", f.input_vs_xtest_p50_ratio, f.input_vs_xdotool_p50_ratio
    );
    let v = &f.viewer;
    let raw = match (v.raw_vnc_updates_per_s, &v.raw_vnc_skipped) {
        (Some(raw), _) => format!(
            "raw VNC {raw:.1}/s ({:.0} MiB/s); {:.2}× raw",
            v.raw_vnc_mib_per_s.unwrap_or(f64::NAN),
            v.bridge_vs_raw_ratio.unwrap_or(f64::NAN)
        ),
        (None, why) => format!("raw VNC skipped: {}", why.as_deref().unwrap_or("unknown")),
    };
    println!(
        "{:<24} viewer bridge {:.1} updates/s ({:.0} MiB/s); {raw} ({} {} fps animation, raw encoding, {}s each)",
        "desktop viewer",
        v.bridge_updates_per_s,
        v.bridge_mib_per_s,
        v.animation_size,
        v.animation_fps,
        VIEWER_WINDOW.as_secs()
    );
}

/// The pointer position of run `index` (the in-sandbox script uses the same series).
fn position(index: usize) -> (i64, i64) {
    (100 + (index as i64 * 37) % 1700, 100 + (index as i64 * 53) % 900)
}

/// `samples` cold desktop creates and as many cold base creates, alternating.
async fn measure_creates(client: &Client, samples: usize) -> anyhow::Result<(Summary, Summary)> {
    let bypass = json!({"mode": "bypass"});
    let (mut desktop, mut base) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        for (template, series) in [(TEMPLATE, &mut desktop), ("base", &mut base)] {
            let request = CreateSandboxRequest { template: Some(template.into()), ..CreateSandboxRequest::default() };
            let started = Instant::now();
            let (sandbox, _) = client
                .create_sandbox_checked_out(&request, Some(bypass.clone()))
                .await
                .with_context(|| format!("creating a {template} sandbox"))?;
            series.push(started.elapsed());
            client.kill_sandbox(&sandbox.id).await.with_context(|| format!("killing a {template} bench sandbox"))?;
        }
    }
    Ok((summarize(&mut desktop), summarize(&mut base)))
}

struct Inputs {
    api: Summary,
    xtest: Summary,
    xdotool: Summary,
}

struct Shots {
    png: Summary,
    raw_png: Summary,
    jpeg: Summary,
    raw_jpeg: Summary,
}

/// The screenshot, input and viewer figures in desktop sandbox `id`.
async fn measure_in(
    client: &Client,
    api: &Api,
    id: &str,
    samples: usize,
) -> anyhow::Result<(Shots, Inputs, ViewerFigures)> {
    // Ours and the baselines alternate in rounds, so a load change on the host weighs on both alike.
    eprintln!("bench: desktop screenshots (PNG, JPEG q80) ×{samples}, through the API and inside, in {ROUNDS} rounds");
    let (mut png, mut jpeg, mut raw_png, mut raw_jpeg) = (vec![], vec![], vec![], vec![]);
    for chunk in rounds(samples) {
        png.extend(timed(chunk, |_| api.image(id, "/screenshot", json!({}), b"\x89PNG")).await?);
        jpeg.extend(
            timed(chunk, |_| {
                api.image(id, "/screenshot/compressed", json!({"format": "jpeg", "quality": 80}), b"\xff\xd8")
            })
            .await?,
        );
        let raw = inside(client, id, "screenshots", chunk).await?;
        raw_png.extend(series(&raw, "png_ms", chunk)?);
        raw_jpeg.extend(series(&raw, "jpeg_ms", chunk)?);
    }
    let shots = Shots {
        png: summarize(&mut png),
        jpeg: summarize(&mut jpeg),
        raw_png: summarize(&mut raw_png),
        raw_jpeg: summarize(&mut raw_jpeg),
    };
    eprintln!("bench: desktop input round trip ×{samples}, through the API and by XTEST and xdotool inside");
    let (mut api_input, mut xtest, mut xdotool) = (vec![], vec![], vec![]);
    for chunk in rounds(samples) {
        api_input.extend(timed(chunk, |index| api.move_and_see(id, position(index))).await?);
        let raw = inside(client, id, "input", chunk).await?;
        xtest.extend(series(&raw, "xtest_ms", chunk)?);
        xdotool.extend(series(&raw, "xdotool_ms", chunk)?);
    }
    let inputs =
        Inputs { api: summarize(&mut api_input), xtest: summarize(&mut xtest), xdotool: summarize(&mut xdotool) };
    eprintln!("bench: desktop viewer updates/s over {VIEWER_WINDOW:?} (managed viewer, then raw VNC)");
    let viewer = measure_viewer(api, id).await?;
    Ok((shots, inputs, viewer))
}

/// `samples` split into at most [`ROUNDS`] rounds of nearly equal size.
fn rounds(samples: usize) -> Vec<usize> {
    let count = ROUNDS.min(samples);
    (0..count).map(|round| samples / count + usize::from(round < samples % count)).collect()
}

/// [`WARMUP`] untimed then `samples` timed runs of `run`.
async fn timed<F, Fut>(samples: usize, mut run: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut times = Vec::with_capacity(samples);
    for index in 0..WARMUP + samples {
        let started = Instant::now();
        run(index).await?;
        if index >= WARMUP {
            times.push(started.elapsed());
        }
    }
    Ok(times)
}

/// Runs the in-sandbox script in `mode` in sandbox `id`: its JSON line.
async fn inside(client: &Client, id: &str, mode: &str, samples: usize) -> anyhow::Result<Value> {
    let request = ExecRequest {
        command: "python3".into(),
        args: vec!["-c".into(), INSIDE_SCRIPT.into(), mode.into(), samples.to_string(), WARMUP.to_string()],
        timeout_secs: Some(120 + 2 * samples as u64),
        ..ExecRequest::default()
    };
    let result = client.exec(id, &request).await.with_context(|| format!("running the in-sandbox {mode} baseline"))?;
    if result.exit_code != 0 {
        bail!("the in-sandbox {mode} baseline exited {}: {}", result.exit_code, result.stderr.trim());
    }
    parse_last_json_line(&result.stdout).with_context(|| format!("the in-sandbox {mode} baseline"))
}

/// The JSON object on the last non-empty line of `stdout`.
fn parse_last_json_line(stdout: &str) -> anyhow::Result<Value> {
    let line = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()).context("printed nothing")?;
    let value: Value = serde_json::from_str(line).with_context(|| format!("printed no JSON: {line:?}"))?;
    if !value.is_object() {
        bail!("printed {line:?}, not a JSON object");
    }
    Ok(value)
}

/// The durations in `output[key]`: exactly `samples` finite, non-negative milliseconds.
fn series(output: &Value, key: &str, samples: usize) -> anyhow::Result<Vec<Duration>> {
    let values: Vec<f64> = serde_json::from_value(output[key].clone())
        .with_context(|| format!("the in-sandbox baseline printed no `{key}` list of milliseconds"))?;
    if values.len() != samples {
        bail!("the in-sandbox baseline timed {} runs of `{key}`, not {samples}", values.len());
    }
    values
        .iter()
        .map(|ms| {
            Duration::try_from_secs_f64(ms / 1000.0)
                .map_err(|_| anyhow::anyhow!("the in-sandbox baseline timed an impossible {ms} ms"))
        })
        .collect()
}

/// Animates the screen, then counts updates through the managed viewer and on the raw VNC address.
async fn measure_viewer(api: &Api, id: &str) -> anyhow::Result<ViewerFigures> {
    let source = format!("testsrc=size={ANIMATION_SIZE}:rate={ANIMATION_RATE}");
    let launch = json!({"mode": "executable", "command": "ffplay",
        "args": ["-f", "lavfi", "-i", source, "-an", "-loglevel", "error", "-window_title", ANIMATION_TITLE]});
    let launched: Launched = api.post_json(id, "/launch", &launch).await.context("launching ffplay")?;
    let waited = Instant::now();
    loop {
        let windows: Vec<WindowInfo> = api.get_json(id, "/windows").await?;
        if windows.iter().any(|w| w.title == ANIMATION_TITLE || w.pid == Some(launched.pid)) {
            break;
        }
        if waited.elapsed() > WAIT_LIMIT {
            bail!("ffplay (pid {}) showed no window within {WAIT_LIMIT:?}", launched.pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stream: ManagedDesktopStreamInfo =
        api.post_json(id, "/stream/start", &json!({})).await.context("starting the managed viewer")?;
    let url = format!("{}/v1/sandboxes/{id}/desktop/viewer/ws?auth={}", api.ws_base(), stream.auth_key);
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.context("opening the viewer WebSocket")?;
    let bridge = rates(Link::Ws(Box::new(socket))).await.context("counting updates through the viewer")?;
    let (raw, skipped) = match api.get_json::<DesktopStreamInfo>(id, "/stream").await {
        Ok(info) => {
            let tcp = tokio::net::TcpStream::connect((info.host.as_str(), info.port))
                .await
                .with_context(|| format!("connecting to the raw VNC address {}", info.url))?;
            (Some(rates(Link::Tcp(tcp)).await.context("counting updates on raw VNC")?), None)
        }
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    api.post_json::<Value>(id, "/stream/stop", &json!({})).await.context("stopping the managed viewer")?;
    Ok(ViewerFigures {
        animation_fps: ANIMATION_RATE,
        animation_size: ANIMATION_SIZE,
        bridge_updates_per_s: bridge.0,
        bridge_mib_per_s: bridge.1,
        raw_vnc_updates_per_s: raw.map(|r| r.0),
        raw_vnc_mib_per_s: raw.map(|r| r.1),
        raw_vnc_skipped: skipped,
        bridge_vs_raw_ratio: raw.map(|raw| bridge.0 / raw.0.max(f64::EPSILON)),
    })
}

/// Updates per second and MiB per second of updates on `link`.
async fn rates(link: Link) -> anyhow::Result<(f64, f64)> {
    let limit = VIEWER_WINDOW + WAIT_LIMIT;
    let counted = tokio::time::timeout(limit, async {
        let mut session = Session::handshake(link).await?;
        session.count_updates(VIEWER_WINDOW).await
    })
    .await
    .map_err(|_| anyhow::anyhow!("counting updates did not end within {limit:?}: the VNC server stopped sending them (did the animation stop?)"))??;
    let seconds = counted.took.as_secs_f64();
    Ok((counted.updates as f64 / seconds, counted.bytes as f64 / f64::from(1 << 20) / seconds))
}

/// The desktop API over HTTP (the typed client has no desktop calls yet).
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// The flat part of the protocol's error envelope, for messages.
#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(Deserialize)]
struct EnvelopeError {
    code: String,
    message: String,
}

impl Api {
    fn new(global: &GlobalArgs) -> anyhow::Result<Api> {
        let config = ClientConfig::resolve(global.api_key.clone(), global.api_url.clone());
        let key = config.api_key.clone().context("the desktop figures need an API key")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        Ok(Api { http, base: config.base_url.trim_end_matches('/').to_owned(), key })
    }

    fn ws_base(&self) -> String {
        match self.base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => format!("ws://{}", self.base),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        id: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/v1/sandboxes/{id}/desktop{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let bytes = response.bytes().await.with_context(|| format!("reading {method} {url}"))?;
        if !status.is_success() {
            let detail = match serde_json::from_slice::<Envelope>(&bytes) {
                Ok(e) => format!("{}: {}", e.error.code, e.error.message),
                Err(_) => String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            };
            bail!("{method} {url} answered {status}: {detail}");
        }
        Ok(bytes.to_vec())
    }

    async fn get_json<T: DeserializeOwned>(&self, id: &str, path: &str) -> anyhow::Result<T> {
        let bytes = self.send(reqwest::Method::GET, id, path, None).await?;
        serde_json::from_slice(&bytes).with_context(|| format!("decoding GET {path}"))
    }

    async fn post_json<T: DeserializeOwned>(&self, id: &str, path: &str, body: &Value) -> anyhow::Result<T> {
        let bytes = self.send(reqwest::Method::POST, id, path, Some(body)).await?;
        serde_json::from_slice(&bytes).with_context(|| format!("decoding POST {path}"))
    }

    /// A screenshot request whose answer must start with `magic`.
    async fn image(&self, id: &str, path: &str, body: Value, magic: &[u8]) -> anyhow::Result<()> {
        let bytes = self.send(reqwest::Method::POST, id, path, Some(&body)).await?;
        if !bytes.starts_with(magic) {
            bail!("POST {path} answered {} bytes that are not the expected image", bytes.len());
        }
        Ok(())
    }

    /// Moves the pointer to `(x, y)`, then polls `GET /cursor` until it reports that position.
    async fn move_and_see(&self, id: &str, (x, y): (i64, i64)) -> anyhow::Result<()> {
        let body = serde_json::to_value(MoveRequest { x, y })?;
        self.send(reqwest::Method::POST, id, "/move", Some(&body)).await?;
        let started = Instant::now();
        loop {
            let cursor: CursorPosition = self.get_json(id, "/cursor").await?;
            if (cursor.x, cursor.y) == (x, y) {
                return Ok(());
            }
            if started.elapsed() > WAIT_LIMIT {
                bail!("GET /cursor still reports {},{} {WAIT_LIMIT:?} after moving to {x},{y}", cursor.x, cursor.y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_series_are_exact_lists_of_milliseconds() {
        let output = parse_last_json_line("noise\n{\"png_ms\": [2.0, 1.0, 3.0], \"jpeg_ms\": [1]}\n\n").unwrap();
        let png = series(&output, "png_ms", 3).unwrap();
        assert_eq!(png, [Duration::from_millis(2), Duration::from_millis(1), Duration::from_millis(3)]);
        assert!(series(&output, "jpeg_ms", 2).unwrap_err().to_string().contains("timed 1 runs of `jpeg_ms`, not 2"));
        assert!(series(&output, "xdotool_ms", 1).unwrap_err().to_string().contains("no `xdotool_ms` list"));
        let negative = parse_last_json_line("{\"xtest_ms\": [-4]}").unwrap();
        assert!(series(&negative, "xtest_ms", 1).unwrap_err().to_string().contains("impossible -4 ms"));
        assert!(parse_last_json_line("[1, 2]").unwrap_err().to_string().contains("not a JSON object"));
        assert!(parse_last_json_line("Traceback (most recent call last):").is_err());
        assert!(parse_last_json_line(" \n").unwrap_err().to_string().contains("printed nothing"));
    }

    #[test]
    fn rounds_split_the_samples_evenly() {
        assert_eq!(rounds(10), [3, 3, 2, 2]);
        assert_eq!(rounds(8), [2, 2, 2, 2]);
        assert_eq!(rounds(2), [1, 1]);
        for samples in 1..50 {
            let split = rounds(samples);
            assert_eq!(split.iter().sum::<usize>(), samples);
            assert!(split.iter().all(|&n| n > 0) && split.len() <= ROUNDS);
        }
    }

    #[test]
    fn positions_stay_on_a_full_hd_screen_and_change_every_run() {
        for index in 0..200 {
            let (x, y) = position(index);
            assert!((100..1800).contains(&x) && (100..1000).contains(&y), "{index}: {x},{y}");
            assert_ne!(position(index), position(index + 1));
        }
    }

    /// The script's positions are the same series as [`position`].
    #[test]
    fn the_script_moves_the_pointer_along_the_same_positions() {
        let probe = INSIDE_SCRIPT.replace("\nmain()\n", "\nprint([position(i) for i in range(50)])\n");
        let output = std::process::Command::new("python3").args(["-c", &probe]).output().expect("python3 runs");
        assert!(output.status.success(), "{output:?}");
        let expected: Vec<String> = (0..50).map(|i| format!("{:?}", position(i))).collect();
        assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), format!("[{}]", expected.join(", ")));
    }

    #[test]
    fn the_script_refuses_an_unknown_mode() {
        let output =
            std::process::Command::new("python3").args(["-c", INSIDE_SCRIPT, "paint", "1", "0"]).output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("unknown mode paint"));
    }
}
