//! `nullspace sandbox desktop …`: the clap tree of the desktop group (the official CLI's commands and
//! argument shapes, plus the options of the seed reference), its argument parsers, and the one helper
//! that gives the group's errors a context and a `hint:` line. The commands run in `run`; images and
//! recordings are written by `output`.

mod output;
mod run;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use nullspace_client::types::desktop_api::Region;
use nullspace_client::ClientError;

use crate::exit::UserError;

pub use run::run;

#[derive(Debug, Subcommand)]
pub enum DesktopCommand {
    /// Save a screenshot (PNG, or JPEG with --format) to a file or stdout.
    Screenshot(ScreenshotArgs),
    /// Save a PNG of part of the screen (same as `screenshot --region X,Y,W,H`).
    ScreenshotRegion {
        /// Sandbox id.
        id: String,
        /// Left edge.
        x: i64,
        /// Top edge.
        y: i64,
        /// Width.
        width: i64,
        /// Height.
        height: i64,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Save a compressed screenshot (the official CLI's form; `screenshot` takes the same options).
    ScreenshotCompressed {
        /// Sandbox id.
        id: String,
        #[command(flatten)]
        encoding: Encoding,
        /// Region left edge (with --y, --width, --height).
        #[arg(long, requires_all = ["y", "width", "height"])]
        x: Option<i64>,
        /// Region top edge.
        #[arg(long, requires_all = ["x", "width", "height"])]
        y: Option<i64>,
        /// Region width.
        #[arg(long, requires_all = ["x", "y", "height"])]
        width: Option<i64>,
        /// Region height.
        #[arg(long, requires_all = ["x", "y", "width"])]
        height: Option<i64>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Click at a point.
    Click {
        /// Sandbox id.
        id: String,
        /// Pointer x.
        x: i64,
        /// Pointer y.
        y: i64,
        /// Mouse button.
        #[arg(long, value_enum, default_value_t = Button::Left)]
        button: Button,
        /// Click twice.
        #[arg(long)]
        double: bool,
    },
    /// Double-click at a point with the left button.
    DoubleClick {
        /// Sandbox id.
        id: String,
        /// Pointer x.
        x: i64,
        /// Pointer y.
        y: i64,
    },
    /// Click the left button (at --x/--y, else where the pointer is).
    LeftClick(PointerClick),
    /// Click the right button (at --x/--y, else where the pointer is).
    RightClick(PointerClick),
    /// Click the middle button (at --x/--y, else where the pointer is).
    MiddleClick(PointerClick),
    /// Move the pointer.
    Move {
        /// Sandbox id.
        id: String,
        /// Pointer x.
        x: i64,
        /// Pointer y.
        y: i64,
    },
    /// Press a mouse button and keep it down (at --x/--y, else where the pointer is).
    MouseDown(ButtonState),
    /// Release a mouse button (at --x/--y, else where the pointer is).
    MouseUp(ButtonState),
    /// Press at X1,Y1, move to X2,Y2 and release.
    Drag {
        /// Sandbox id.
        id: String,
        /// Start x.
        x1: i64,
        /// Start y.
        y1: i64,
        /// End x.
        x2: i64,
        /// End y.
        y2: i64,
        /// Mouse button.
        #[arg(long, value_enum, default_value_t = Button::Left)]
        button: Button,
    },
    /// Turn the mouse wheel at a point.
    Scroll {
        /// Sandbox id.
        id: String,
        /// Pointer x.
        x: i64,
        /// Pointer y.
        y: i64,
        /// Direction (or --direction).
        #[arg(value_enum, value_name = "DIRECTION", required_unless_present = "direction")]
        direction_arg: Option<Direction>,
        /// Direction.
        #[arg(long, value_enum, conflicts_with = "direction_arg")]
        direction: Option<Direction>,
        /// Wheel steps.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i64).range(1..))]
        amount: i64,
    },
    /// Type text (`-` reads stdin, `@FILE` reads a file; `\n` is Return).
    Type {
        /// Sandbox id.
        id: String,
        /// The text.
        text: String,
    },
    /// Press and release one key by X keysym name (`Return`, `a`, `F5`) or a combination (`ctrl+c`).
    Key {
        /// Sandbox id.
        id: String,
        /// The key.
        key: String,
    },
    /// Hold keys joined by `+` in order and release them in reverse (`ctrl+s`).
    Hotkey {
        /// Sandbox id.
        id: String,
        /// The combination.
        keys: String,
    },
    /// Press a key while modifiers are held.
    Press {
        /// Sandbox id.
        id: String,
        /// The key.
        key: String,
        /// Modifier held meanwhile (ctrl, shift, alt, super; repeatable).
        #[arg(long = "modifier", value_name = "MODIFIER")]
        modifiers: Vec<String>,
    },
    /// Print the screen size.
    ScreenSize {
        /// Sandbox id.
        id: String,
    },
    /// Print the pointer position.
    Cursor {
        /// Sandbox id.
        id: String,
    },
    /// Print the screen and its monitors.
    Display {
        /// Sandbox id.
        id: String,
    },
    /// Print what this desktop offers (capture formats, input, streaming, recording).
    Capabilities {
        /// Sandbox id.
        id: String,
    },
    /// List the top-level windows.
    Windows {
        /// Sandbox id.
        id: String,
    },
    /// Print the active window's id.
    CurrentWindow {
        /// Sandbox id.
        id: String,
    },
    /// Print a window's title.
    WindowTitle {
        /// Sandbox id.
        id: String,
        /// Window id (from `windows`).
        window: String,
    },
    /// Read or set the clipboard text.
    #[command(subcommand)]
    Clipboard(ClipboardCommand),
    /// Start an application.
    #[command(subcommand)]
    Launch(LaunchCommand),
    /// Open a URL or a file (relative paths are under /workspace) with its default application.
    Open {
        /// Sandbox id.
        id: String,
        /// URL or path.
        target: String,
    },
    /// Watch the desktop in a browser: the managed viewer's key and URL.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Record the screen to MP4 files kept in the sandbox.
    #[command(subcommand)]
    Recording(RecordingCommand),
}

/// Where an image or recording goes.
#[derive(Debug, Args)]
pub struct OutputArg {
    /// Local file (replaced if it exists), or `-` for stdout.
    #[arg(long, short, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
}

/// Image encoding of a compressed screenshot.
#[derive(Debug, Args)]
pub struct Encoding {
    /// Image format [default: png].
    #[arg(long, value_enum)]
    pub format: Option<ImageFormat>,
    /// JPEG quality 1-100 (PNG: below 50 favours size over speed) [default: 80].
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub quality: Option<i64>,
    /// Scale both sides by this factor, in (0, 2] [default: 1].
    #[arg(long, value_parser = parse_scale)]
    pub scale: Option<f64>,
    /// Draw the pointer into the picture.
    #[arg(long)]
    pub show_cursor: bool,
}

impl Encoding {
    /// Whether any option asks for the compressed endpoint.
    fn is_set(&self) -> bool {
        self.format.is_some() || self.quality.is_some() || self.scale.is_some() || self.show_cursor
    }
}

#[derive(Debug, Args)]
pub struct ScreenshotArgs {
    /// Sandbox id.
    pub id: String,
    #[command(flatten)]
    pub output: OutputArg,
    /// Only this part of the screen.
    #[arg(long, value_name = "X,Y,W,H", value_parser = parse_region)]
    pub region: Option<Region>,
    #[command(flatten)]
    pub encoding: Encoding,
}

#[derive(Debug, Args)]
pub struct PointerClick {
    /// Sandbox id.
    pub id: String,
    /// Pointer x (with --y).
    #[arg(long, requires = "y")]
    pub x: Option<i64>,
    /// Pointer y (with --x).
    #[arg(long, requires = "x")]
    pub y: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ButtonState {
    /// Sandbox id.
    pub id: String,
    /// Mouse button.
    #[arg(long, value_enum, default_value_t = Button::Left)]
    pub button: Button,
    /// Move the pointer here first (with --y).
    #[arg(long, requires = "y")]
    pub x: Option<i64>,
    /// Move the pointer here first (with --x).
    #[arg(long, requires = "x")]
    pub y: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum ClipboardCommand {
    /// Print the clipboard text.
    Get {
        /// Sandbox id.
        id: String,
    },
    /// Set the clipboard text (`-` reads stdin, `@FILE` reads a file).
    Set {
        /// Sandbox id.
        id: String,
        /// The text.
        text: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LaunchCommand {
    /// Run a program (found on PATH) with arguments; prints its pid.
    Executable {
        /// Sandbox id.
        id: String,
        /// The program.
        command: String,
        /// Its arguments, all of them: flags of ours such as --json go before COMMAND.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run an application by its desktop entry (`mousepad`, `org.xfce.mousepad.desktop`).
    DesktopEntry {
        /// Sandbox id.
        id: String,
        /// Desktop file id, with or without `.desktop`.
        desktop_entry: String,
        /// A file or URL handed to the application.
        #[arg(long)]
        uri: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Start the managed viewer and print its URL (a new start replaces the previous key).
    Start {
        /// Sandbox id.
        id: String,
        /// Viewers see the desktop but their input is dropped.
        #[arg(long)]
        view_only: bool,
    },
    /// Stop the managed viewer (open viewers are disconnected).
    Stop {
        /// Sandbox id.
        id: String,
    },
    /// Print the current viewer URL (or the one for --auth-key).
    #[command(visible_alias = "viewer-url")]
    Url {
        /// Sandbox id.
        id: String,
        /// Build the URL for this key instead of asking the server.
        #[arg(long)]
        auth_key: Option<String>,
    },
    /// Print the current viewer key.
    AuthKey {
        /// Sandbox id.
        id: String,
    },
    /// Print the raw VNC address (only when the server offers raw VNC).
    Info {
        /// Sandbox id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordingCommand {
    /// Start recording the screen; prints the recording id.
    Start {
        /// Sandbox id.
        id: String,
        /// A name to remember it by.
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop a recording (the MP4 is finished and kept in the sandbox).
    Stop {
        /// Sandbox id.
        id: String,
        /// Recording id (`rec_…`).
        recording: String,
    },
    /// List the recordings.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
    },
    /// Show one recording.
    Get {
        /// Sandbox id.
        id: String,
        /// Recording id (`rec_…`).
        recording: String,
    },
    /// Delete a recording and its file.
    #[command(visible_alias = "rm")]
    Delete {
        /// Sandbox id.
        id: String,
        /// Recording id (`rec_…`).
        recording: String,
    },
    /// Save a stopped recording's MP4 to a file or stdout (streamed).
    Download {
        /// Sandbox id.
        id: String,
        /// Recording id (`rec_…`).
        recording: String,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Button {
    /// Button 1.
    Left,
    /// Button 3.
    Right,
    /// Button 2.
    Middle,
}

impl Button {
    /// The wire name.
    fn as_str(self) -> &'static str {
        match self {
            Button::Left => "left",
            Button::Right => "right",
            Button::Middle => "middle",
        }
    }
}

/// A scroll direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// Wheel up.
    Up,
    /// Wheel down.
    Down,
    /// Wheel left.
    Left,
    /// Wheel right.
    Right,
}

impl Direction {
    /// The wire name.
    fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Left => "left",
            Direction::Right => "right",
        }
    }
}

/// A screenshot format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// Lossless.
    Png,
    /// Lossy, with --quality.
    #[value(alias = "jpg")]
    Jpeg,
}

/// `X,Y,W,H` with a positive width and height.
pub fn parse_region(text: &str) -> Result<Region, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [x, y, width, height] = parts.as_slice() else {
        return Err(format!("`{text}` is not X,Y,W,H (four integers separated by commas)"));
    };
    let number = |name: &str, value: &str| {
        value.parse::<i64>().map_err(|_| format!("{name} `{value}` of region `{text}` is not an integer"))
    };
    let region = Region {
        x: number("x", x)?,
        y: number("y", y)?,
        width: number("width", width)?,
        height: number("height", height)?,
    };
    if region.x < 0 || region.y < 0 {
        return Err(format!("region `{text}` starts left of or above the screen: x and y must be 0 or more"));
    }
    if region.width <= 0 || region.height <= 0 {
        return Err(format!("region `{text}` is empty: width and height must be more than 0"));
    }
    Ok(region)
}

/// A scale factor in (0, 2].
fn parse_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if scale > 0.0 && scale <= 2.0 => Ok(scale),
        Ok(_) => Err(format!("scale {text} is out of range: it must be more than 0 and at most 2")),
        Err(_) => Err(format!("scale `{text}` is not a number")),
    }
}

/// The error of a failed request, saying what could not be done (`what`) and, for the desktop's own
/// failures, what to do about it.
fn failed(sandbox: &str, what: String) -> impl FnOnce(ClientError) -> anyhow::Error + '_ {
    move |error| match desktop_hint(sandbox, &error) {
        Some(hint) => anyhow::Error::new(error).context(UserError { message: what, hint: Some(hint) }),
        None => anyhow::Error::new(error).context(what),
    }
}

/// The hint for the desktop API's error codes (others keep the client's general hint).
fn desktop_hint(sandbox: &str, error: &ClientError) -> Option<String> {
    let hint = match error.code() {
        "feature_unavailable" => format!(
            "sandbox {sandbox} runs no desktop: the sandbox was not created from the desktop template; create one \
             with `nullspace sandbox create --template desktop`"
        ),
        "recording_not_found" => {
            format!("list the recordings with `nullspace sandbox desktop recording list {sandbox}`")
        }
        "window_not_found" => format!("list the windows with `nullspace sandbox desktop windows {sandbox}`"),
        "desktop_entry_not_found" => {
            "name an entry of /usr/share/applications (e.g. `mousepad`), or use `launch executable`".to_owned()
        }
        "desktop_raw_vnc_disabled" => {
            format!("watch the desktop through the managed viewer: `nullspace sandbox desktop stream start {sandbox}`")
        }
        "sandbox_not_ready" => {
            format!("the desktop is still starting; try again, or check `nullspace sandbox get {sandbox}`")
        }
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests;
