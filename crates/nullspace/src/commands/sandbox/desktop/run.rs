//! Running the `sandbox desktop` commands: one request each, then `--json` (the API object) or a short
//! human line (windows and recordings as tables).

use std::path::Path;

use anyhow::Context;
use nullspace_client::types::desktop_api::{
    ClickRequest, CompressedScreenshotRequest, DragRequest, LaunchRequest, MouseButtonRequest, PressRequest,
    RecordingInfo, Region, ScrollRequest, WindowInfo,
};
use nullspace_client::{ButtonAction, Client, Screenshot};
use serde_json::json;

use super::output::Sink;
use super::{
    failed, Button, ButtonState, ClipboardCommand, DesktopCommand, Encoding, ImageFormat, LaunchCommand, PointerClick,
    RecordingCommand, ScreenshotArgs, StreamCommand,
};
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// Runs a `sandbox desktop` subcommand.
pub async fn run(client: &Client, command: DesktopCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        DesktopCommand::Screenshot(args) => screenshot_command(client, args, json).await,
        DesktopCommand::ScreenshotRegion { id, x, y, width, height, output } => {
            let shot = Screenshot::Region(Region { x, y, width, height });
            screenshot(client, &id, &shot, &output.output, json).await
        }
        DesktopCommand::ScreenshotCompressed { id, encoding, x, y, width, height, output } => {
            let region = match (x, y, width, height) {
                (Some(x), Some(y), Some(width), Some(height)) => Some(Region { x, y, width, height }),
                _ => None,
            };
            let shot = Screenshot::Compressed(compressed(&encoding, region));
            screenshot(client, &id, &shot, &output.output, json).await
        }
        DesktopCommand::Click { id, x, y, button, double } => {
            let request = ClickRequest { x, y, button: Some(button.as_str().into()), clicks: double.then_some(2) };
            client.desktop_click(&id, &request).await.map_err(failed(&id, format!("could not click on {id}")))?;
            done(json, &format!("clicked {} at {x},{y}", button.as_str()))
        }
        DesktopCommand::DoubleClick { id, x, y } => {
            let request = ClickRequest { x, y, button: Some("left".into()), clicks: Some(2) };
            client.desktop_click(&id, &request).await.map_err(failed(&id, format!("could not click on {id}")))?;
            done(json, &format!("double-clicked at {x},{y}"))
        }
        DesktopCommand::LeftClick(args) => pointer_click(client, args, Button::Left, json).await,
        DesktopCommand::RightClick(args) => pointer_click(client, args, Button::Right, json).await,
        DesktopCommand::MiddleClick(args) => pointer_click(client, args, Button::Middle, json).await,
        DesktopCommand::Move { id, x, y } => {
            client.desktop_move(&id, x, y).await.map_err(failed(&id, format!("could not move the pointer on {id}")))?;
            done(json, &format!("moved to {x},{y}"))
        }
        DesktopCommand::MouseDown(args) => button_state(client, args, ButtonAction::Down, json).await,
        DesktopCommand::MouseUp(args) => button_state(client, args, ButtonAction::Up, json).await,
        DesktopCommand::Drag { id, x1, y1, x2, y2, button } => {
            let request = DragRequest { x1, y1, x2, y2, button: Some(button.as_str().into()) };
            client.desktop_drag(&id, &request).await.map_err(failed(&id, format!("could not drag on {id}")))?;
            done(json, &format!("dragged from {x1},{y1} to {x2},{y2}"))
        }
        DesktopCommand::Scroll { id, x, y, direction_arg, direction, amount } => {
            let direction = direction.or(direction_arg).context("a scroll direction is required")?;
            let request = ScrollRequest { x, y, direction: direction.as_str().into(), amount: Some(amount) };
            client.desktop_scroll(&id, &request).await.map_err(failed(&id, format!("could not scroll on {id}")))?;
            done(json, &format!("scrolled {} {amount} at {x},{y}", direction.as_str()))
        }
        DesktopCommand::Type { id, text } => {
            let text = read_text(text, "TEXT")?;
            client.desktop_type(&id, &text).await.map_err(failed(&id, format!("could not type on {id}")))?;
            done(json, &format!("typed {} characters", text.chars().count()))
        }
        DesktopCommand::Key { id, key } => {
            client.desktop_key(&id, &key).await.map_err(failed(&id, format!("could not press {key} on {id}")))?;
            done(json, &format!("pressed {key}"))
        }
        DesktopCommand::Hotkey { id, keys } => {
            client.desktop_hotkey(&id, &keys).await.map_err(failed(&id, format!("could not press {keys} on {id}")))?;
            done(json, &format!("pressed {keys}"))
        }
        DesktopCommand::Press { id, key, modifiers } => {
            let request = PressRequest { key: key.clone(), modifiers };
            client.desktop_press(&id, &request).await.map_err(failed(&id, format!("could not press {key} on {id}")))?;
            done(json, &format!("pressed {}", [request.modifiers.join("+"), key].join("+").trim_start_matches('+')))
        }
        DesktopCommand::ScreenSize { id } => {
            let size =
                client.desktop_screen_size(&id).await.map_err(failed(&id, format!("could not read {id}'s screen")))?;
            print_or(json, &size, || format!("{}x{}", size.width, size.height))
        }
        DesktopCommand::Cursor { id } => {
            let at = client.desktop_cursor(&id).await.map_err(failed(&id, format!("could not read {id}'s pointer")))?;
            print_or(json, &at, || format!("{},{}", at.x, at.y))
        }
        DesktopCommand::Display { id } => {
            let info =
                client.desktop_display(&id).await.map_err(failed(&id, format!("could not read {id}'s display")))?;
            print_json(&info)?;
            Ok(ExitStatus::Success)
        }
        DesktopCommand::Capabilities { id } => {
            let caps = client
                .desktop_capabilities(&id)
                .await
                .map_err(failed(&id, format!("could not read {id}'s desktop capabilities")))?;
            print_json(&caps)?;
            Ok(ExitStatus::Success)
        }
        DesktopCommand::Windows { id } => {
            let windows =
                client.desktop_windows(&id).await.map_err(failed(&id, format!("could not list {id}'s windows")))?;
            if json {
                print_json(&windows)?;
            } else {
                print_table(&WINDOW_HEADERS, &windows.iter().map(window_row).collect::<Vec<_>>())?;
            }
            Ok(ExitStatus::Success)
        }
        DesktopCommand::CurrentWindow { id } => {
            let current = client
                .desktop_current_window(&id)
                .await
                .map_err(failed(&id, format!("could not read {id}'s active window")))?;
            print_or(json, &current, || current.window_id.clone())
        }
        DesktopCommand::WindowTitle { id, window } => {
            let title = client
                .desktop_window_title(&id, &window)
                .await
                .map_err(failed(&id, format!("could not read the title of window {window}")))?;
            print_or(json, &title, || title.title.clone())
        }
        DesktopCommand::Clipboard(command) => clipboard(client, command, json).await,
        DesktopCommand::Launch(command) => launch(client, command, json).await,
        DesktopCommand::Open { id, target } => {
            client.desktop_open(&id, &target).await.map_err(failed(&id, format!("could not open {target} on {id}")))?;
            done(json, &format!("opened {target}"))
        }
        DesktopCommand::Stream(command) => stream(client, command, json).await,
        DesktopCommand::Recording(command) => recording(client, command, json).await,
    }
}

async fn screenshot_command(client: &Client, args: ScreenshotArgs, json: bool) -> anyhow::Result<ExitStatus> {
    let shot = match (args.region, args.encoding.is_set()) {
        (None, false) => Screenshot::Full,
        (Some(region), false) => Screenshot::Region(region),
        (region, true) => Screenshot::Compressed(compressed(&args.encoding, region)),
    };
    screenshot(client, &args.id, &shot, &args.output.output, json).await
}

/// The compressed screenshot body, with the API's defaults where an option is absent.
pub(super) fn compressed(encoding: &Encoding, region: Option<Region>) -> CompressedScreenshotRequest {
    let defaults = CompressedScreenshotRequest::default();
    CompressedScreenshotRequest {
        format: match encoding.format {
            Some(ImageFormat::Jpeg) => "jpeg".into(),
            Some(ImageFormat::Png) | None => defaults.format,
        },
        quality: encoding.quality.unwrap_or(defaults.quality),
        scale: encoding.scale.unwrap_or(defaults.scale),
        show_cursor: encoding.show_cursor,
        region,
    }
}

async fn screenshot(
    client: &Client,
    id: &str,
    shot: &Screenshot,
    output: &Path,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let mut sink = Sink::open(output)?;
    let bytes = client
        .desktop_screenshot(id, shot, &mut sink.writer, &sink.label)
        .await
        .map_err(failed(id, format!("could not take a screenshot of {id}")))?;
    saved(sink, bytes, json, "screenshot")
}

/// Reports a finished download (nothing on stdout when the bytes went there).
fn saved(sink: Sink, bytes: u64, json: bool, what: &str) -> anyhow::Result<ExitStatus> {
    let Some(path) = sink.finish()? else { return Ok(ExitStatus::Success) };
    if json {
        print_json(&json!({"path": path, "bytes": bytes}))?;
    } else {
        println!("saved {what} to {} ({bytes} bytes)", path.display());
    }
    Ok(ExitStatus::Success)
}

async fn pointer_click(client: &Client, args: PointerClick, button: Button, json: bool) -> anyhow::Result<ExitStatus> {
    let id = args.id;
    let (x, y) = match (args.x, args.y) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            let at = client.desktop_cursor(&id).await.map_err(failed(&id, format!("could not read {id}'s pointer")))?;
            (at.x, at.y)
        }
    };
    let request = ClickRequest { x, y, button: Some(button.as_str().into()), clicks: None };
    client.desktop_click(&id, &request).await.map_err(failed(&id, format!("could not click on {id}")))?;
    done(json, &format!("clicked {} at {x},{y}", button.as_str()))
}

async fn button_state(
    client: &Client,
    args: ButtonState,
    action: ButtonAction,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let id = args.id;
    let request = MouseButtonRequest { button: Some(args.button.as_str().into()), x: args.x, y: args.y };
    let verb = if action == ButtonAction::Down { "pressed" } else { "released" };
    client
        .desktop_mouse_button(&id, action, &request)
        .await
        .map_err(failed(&id, format!("could not change the {} button on {id}", args.button.as_str())))?;
    done(json, &format!("{verb} {}", args.button.as_str()))
}

async fn clipboard(client: &Client, command: ClipboardCommand, json: bool) -> anyhow::Result<ExitStatus> {
    let text = match command {
        ClipboardCommand::Get { id } => {
            client.desktop_clipboard(&id).await.map_err(failed(&id, format!("could not read {id}'s clipboard")))?
        }
        ClipboardCommand::Set { id, text } => {
            let text = read_text(text, "TEXT")?;
            client
                .set_desktop_clipboard(&id, &text)
                .await
                .map_err(failed(&id, format!("could not set {id}'s clipboard")))?
        }
    };
    if json {
        print_json(&text)?;
    } else {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.text.as_bytes())?;
        if !text.text.ends_with('\n') && std::io::IsTerminal::is_terminal(&stdout) {
            writeln!(stdout)?;
        }
    }
    Ok(ExitStatus::Success)
}

async fn launch(client: &Client, command: LaunchCommand, json: bool) -> anyhow::Result<ExitStatus> {
    let (id, request) = match command {
        LaunchCommand::Executable { id, command, args } => (id, LaunchRequest::Executable { command, args }),
        LaunchCommand::DesktopEntry { id, desktop_entry, uri } => {
            (id, LaunchRequest::DesktopEntry { desktop_entry, uri })
        }
    };
    let launched =
        client.desktop_launch(&id, &request).await.map_err(failed(&id, format!("could not launch on {id}")))?;
    print_or(json, &launched, || format!("started {} (pid {})", launched.argv.join(" "), launched.pid))
}

async fn stream(client: &Client, command: StreamCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        StreamCommand::Start { id, view_only } => {
            let info = client
                .start_desktop_stream(&id, view_only)
                .await
                .map_err(failed(&id, format!("could not start the viewer of {id}")))?;
            print_or(json, &info, || info.viewer_url.clone())
        }
        StreamCommand::Stop { id } => {
            client.stop_desktop_stream(&id).await.map_err(failed(&id, format!("could not stop the viewer of {id}")))?;
            done(json, "viewer stopped")
        }
        StreamCommand::Url { id, auth_key: Some(key) } => {
            let url = client.desktop_viewer_url(&id, &key);
            print_or(json, &json!({"viewer_url": url}), || url.clone())
        }
        StreamCommand::Url { id, auth_key: None } => {
            let current = current_stream(client, &id).await?;
            print_or(json, &current, || current.viewer_url.clone())
        }
        StreamCommand::AuthKey { id } => {
            let current = current_stream(client, &id).await?;
            print_or(json, &current, || current.auth_key.clone())
        }
        StreamCommand::Info { id } => {
            let info = client
                .desktop_stream_info(&id)
                .await
                .map_err(failed(&id, format!("could not read the raw VNC address of {id}")))?;
            print_or(json, &info, || info.url.clone())
        }
    }
}

/// The running viewer's key and URL; "none running" gets a hint to start one.
async fn current_stream(
    client: &Client,
    id: &str,
) -> anyhow::Result<nullspace_client::types::desktop_api::StreamAuthKey> {
    client.desktop_stream_auth_key(id).await.map_err(|error| {
        if error.code() == "not_found" && error.status() == Some(404) {
            let hint = format!("start it with `nullspace sandbox desktop stream start {id}`");
            let user = UserError { message: format!("no viewer runs on {id}"), hint: Some(hint) };
            return anyhow::Error::new(error).context(user);
        }
        failed(id, format!("could not read the viewer of {id}"))(error)
    })
}

async fn recording(client: &Client, command: RecordingCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        RecordingCommand::Start { id, name } => {
            let info = client
                .start_desktop_recording(&id, name.as_deref())
                .await
                .map_err(failed(&id, format!("could not start recording {id}")))?;
            print_or(json, &info, || info.id.clone())
        }
        RecordingCommand::Stop { id, recording } => {
            let info = client
                .stop_desktop_recording(&id, &recording)
                .await
                .map_err(failed(&id, format!("could not stop recording {recording}")))?;
            print_or(json, &info, || recording_line(&info))
        }
        RecordingCommand::List { id } => {
            let list = client
                .list_desktop_recordings(&id)
                .await
                .map_err(failed(&id, format!("could not list the recordings of {id}")))?;
            if json {
                print_json(&list)?;
            } else {
                print_table(&RECORDING_HEADERS, &list.iter().map(recording_row).collect::<Vec<_>>())?;
            }
            Ok(ExitStatus::Success)
        }
        RecordingCommand::Get { id, recording } => {
            let info = client
                .desktop_recording(&id, &recording)
                .await
                .map_err(failed(&id, format!("could not read recording {recording}")))?;
            print_or(json, &info, || recording_line(&info))
        }
        RecordingCommand::Delete { id, recording } => {
            client
                .delete_desktop_recording(&id, &recording)
                .await
                .map_err(failed(&id, format!("could not delete recording {recording}")))?;
            done(json, &format!("deleted {recording}"))
        }
        RecordingCommand::Download { id, recording, output } => {
            let mut sink = Sink::open(&output.output)?;
            let bytes = client
                .download_desktop_recording(&id, &recording, &mut sink.writer, &sink.label)
                .await
                .map_err(failed(&id, format!("could not download recording {recording}")))?;
            saved(sink, bytes, json, "recording")
        }
    }
}

/// Columns of `windows`.
pub(super) const WINDOW_HEADERS: [&str; 6] = ["ID", "PID", "ACTIVE", "GEOMETRY", "CLASS", "TITLE"];

pub(super) fn window_row(window: &WindowInfo) -> Vec<String> {
    vec![
        window.id.clone(),
        window.pid.map_or_else(|| "-".into(), |pid| pid.to_string()),
        if window.is_active { "*".into() } else { String::new() },
        format!("{}x{}+{}+{}", window.width, window.height, window.x, window.y),
        window.class_name.clone(),
        window.title.clone(),
    ]
}

const RECORDING_HEADERS: [&str; 6] = ["ID", "STATUS", "SECONDS", "BYTES", "CREATED", "NAME"];

fn recording_row(info: &RecordingInfo) -> Vec<String> {
    vec![
        info.id.clone(),
        info.status.clone(),
        info.duration_seconds.map_or_else(|| "-".into(), |secs| format!("{secs:.1}")),
        info.file_size_bytes.map_or_else(|| "-".into(), |bytes| bytes.to_string()),
        info.created_at.clone().unwrap_or_default(),
        info.name.clone().unwrap_or_default(),
    ]
}

fn recording_line(info: &RecordingInfo) -> String {
    let mut line = format!("{} {}", info.id, info.status);
    if let Some(secs) = info.duration_seconds {
        line.push_str(&format!(", {secs:.1} s"));
    }
    if let Some(bytes) = info.file_size_bytes {
        line.push_str(&format!(", {bytes} bytes"));
    }
    line
}

/// `value` as JSON, or the human line.
fn print_or<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(value)?;
    } else {
        println!("{}", human());
    }
    Ok(ExitStatus::Success)
}

/// An action without an answer: `{"ok": true}` or a short line.
fn done(json: bool, line: &str) -> anyhow::Result<ExitStatus> {
    print_or(json, &json!({"ok": true}), || line.to_owned())
}

/// A text argument: itself, stdin for `-`, a file's contents for `@FILE` (as the official CLI reads it).
pub(super) fn read_text(value: String, name: &str) -> anyhow::Result<String> {
    if value == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .with_context(|| format!("could not read {name} from stdin"))?;
        return Ok(text);
    }
    match value.strip_prefix('@') {
        Some("") => {
            Err(UserError::new(format!("{name} `@` names no file"), Some("write @PATH, or - for stdin")).into())
        }
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("could not read {name} from {path}")),
        None => Ok(value),
    }
}
