use clap::Parser;
use nullspace_client::types::desktop_api::{Region, WindowInfo};
use nullspace_client::ClientError;

use super::run::{compressed, window_row, WINDOW_HEADERS};
use super::*;
use crate::cli::{Cli, Command, SandboxCommand};
use crate::exit::ExitStatus;

fn parse(args: &[&str]) -> DesktopCommand {
    let cli = Cli::try_parse_from(["nullspace", "sandbox", "desktop"].iter().chain(args)).expect("parses");
    match cli.command {
        Command::Sandbox(SandboxCommand::Desktop(command)) => command,
        other => panic!("unexpected {other:?}"),
    }
}

fn refused(args: &[&str]) -> bool {
    Cli::try_parse_from(["nullspace", "sandbox", "desktop"].iter().chain(args)).is_err()
}

#[test]
fn regions_are_four_non_negative_integers_with_a_positive_size() {
    assert_eq!(parse_region("10,20,300,400"), Ok(Region { x: 10, y: 20, width: 300, height: 400 }));
    assert_eq!(parse_region(" 0, 0 ,1,1"), Ok(Region { x: 0, y: 0, width: 1, height: 1 }));
    for bad in ["", "1,2,3", "1,2,3,4,5", "a,0,1,1", "0,0,0,10", "0,0,10,-1", "-1,0,10,10", "1.5,0,1,1"] {
        assert!(parse_region(bad).is_err(), "{bad:?} should be refused");
    }
    assert!(parse_region("0,0,0,10").unwrap_err().contains("empty"));
}

#[test]
fn the_seed_lines_parse() {
    let DesktopCommand::Screenshot(args) = parse(&["screenshot", "sb_123", "--output", "screen.png"]) else {
        panic!("not screenshot")
    };
    assert_eq!((args.id.as_str(), args.output.output.to_str()), ("sb_123", Some("screen.png")));
    assert!(args.region.is_none() && !args.encoding.is_set());
    let DesktopCommand::Click { x, y, button, double, .. } = parse(&["click", "sb_123", "320", "240"]) else {
        panic!("not click")
    };
    assert_eq!((x, y, button, double), (320, 240, Button::Left, false));
    let DesktopCommand::Type { text, .. } = parse(&["type", "sb_123", "hello"]) else { panic!("not type") };
    assert_eq!(text, "hello");
    assert!(matches!(parse(&["clipboard", "get", "sb_123"]), DesktopCommand::Clipboard(ClipboardCommand::Get { .. })));
    let DesktopCommand::Launch(LaunchCommand::Executable { command, args, .. }) =
        parse(&["launch", "executable", "sb_123", "firefox", "https://example.com"])
    else {
        panic!("not launch")
    };
    assert_eq!((command.as_str(), args), ("firefox", vec!["https://example.com".to_owned()]));
    let DesktopCommand::Stream(StreamCommand::Start { view_only, .. }) =
        parse(&["stream", "start", "sb_123", "--view-only"])
    else {
        panic!("not stream start")
    };
    assert!(view_only);
    let DesktopCommand::Recording(RecordingCommand::Start { name, .. }) =
        parse(&["recording", "start", "sb_123", "--name", "demo"])
    else {
        panic!("not recording start")
    };
    assert_eq!(name.as_deref(), Some("demo"));
}

#[test]
fn buttons_are_left_right_or_middle() {
    for (name, button) in [("left", Button::Left), ("right", Button::Right), ("middle", Button::Middle)] {
        let DesktopCommand::Click { button: parsed, double, .. } =
            parse(&["click", "sb", "1", "2", "--button", name, "--double"])
        else {
            panic!("not click")
        };
        assert_eq!((parsed, parsed.as_str(), double), (button, name, true));
    }
    assert!(refused(&["click", "sb", "1", "2", "--button", "fourth"]));
    let DesktopCommand::Drag { button, x2, .. } = parse(&["drag", "sb", "1", "2", "3", "4", "--button", "right"])
    else {
        panic!("not drag")
    };
    assert_eq!((button, x2), (Button::Right, 3));
}

#[test]
fn scroll_takes_its_direction_as_a_flag_or_an_argument() {
    let DesktopCommand::Scroll { direction, direction_arg, amount, .. } =
        parse(&["scroll", "sb", "5", "6", "--direction", "down", "--amount", "2"])
    else {
        panic!("not scroll")
    };
    assert_eq!((direction, direction_arg, amount), (Some(Direction::Down), None, 2));
    let DesktopCommand::Scroll { direction, direction_arg, amount, .. } = parse(&["scroll", "sb", "5", "6", "left"])
    else {
        panic!("not scroll")
    };
    assert_eq!((direction, direction_arg.map(Direction::as_str), amount), (None, Some("left"), 3));
    assert!(refused(&["scroll", "sb", "5", "6"]), "a direction is required");
    assert!(refused(&["scroll", "sb", "5", "6", "sideways"]));
    assert!(refused(&["scroll", "sb", "5", "6", "up", "--direction", "down"]), "only one direction");
    assert!(refused(&["scroll", "sb", "5", "6", "up", "--amount", "0"]));
}

#[test]
fn screenshot_options_pick_the_endpoint_and_fill_the_defaults() {
    let DesktopCommand::Screenshot(args) = parse(&["screenshot", "sb", "-o", "a.png", "--region", "1,2,3,4"]) else {
        panic!("not screenshot")
    };
    assert_eq!(args.region, Some(Region { x: 1, y: 2, width: 3, height: 4 }));
    assert!(!args.encoding.is_set());
    let DesktopCommand::Screenshot(args) =
        parse(&["screenshot", "sb", "-o", "a.jpg", "--format", "jpeg", "--quality", "60", "--scale", "0.5"])
    else {
        panic!("not screenshot")
    };
    let body = compressed(&args.encoding, None);
    assert_eq!((body.format.as_str(), body.quality, body.scale, body.show_cursor), ("jpeg", 60, 0.5, false));
    let DesktopCommand::Screenshot(args) = parse(&["screenshot", "sb", "--show-cursor"]) else { panic!() };
    let body = compressed(&args.encoding, Some(Region { x: 0, y: 0, width: 5, height: 5 }));
    assert_eq!((body.format.as_str(), body.quality, body.scale, body.show_cursor), ("png", 80, 1.0, true));
    assert!(body.region.is_some());
    for bad in [
        &["screenshot", "sb", "--quality", "0"][..],
        &["screenshot", "sb", "--quality", "101"],
        &["screenshot", "sb", "--scale", "0"],
        &["screenshot", "sb", "--scale", "2.5"],
        &["screenshot", "sb", "--format", "webp"],
        &["screenshot", "sb", "--region", "0,0,0,0"],
        &["screenshot-compressed", "sb", "--x", "1"],
    ] {
        assert!(refused(bad), "{bad:?} should be refused");
    }
}

#[test]
fn launch_passes_hyphenated_arguments_through() {
    let DesktopCommand::Launch(LaunchCommand::Executable { args, .. }) =
        parse(&["launch", "executable", "sb", "chromium", "--no-sandbox", "about:blank"])
    else {
        panic!("not launch")
    };
    assert_eq!(args, ["--no-sandbox", "about:blank"]);
    let DesktopCommand::Launch(LaunchCommand::DesktopEntry { desktop_entry, uri, .. }) =
        parse(&["launch", "desktop-entry", "sb", "mousepad", "--uri", "/workspace/a.txt"])
    else {
        panic!("not desktop-entry")
    };
    assert_eq!((desktop_entry.as_str(), uri.as_deref()), ("mousepad", Some("/workspace/a.txt")));
}

#[test]
fn stream_url_has_the_official_alias_and_recordings_their_verbs() {
    assert!(matches!(
        parse(&["stream", "url", "sb"]),
        DesktopCommand::Stream(StreamCommand::Url { auth_key: None, .. })
    ));
    assert!(matches!(
        parse(&["stream", "viewer-url", "sb", "--auth-key", "k"]),
        DesktopCommand::Stream(StreamCommand::Url { auth_key: Some(_), .. })
    ));
    let DesktopCommand::Recording(RecordingCommand::Download { recording, output, .. }) =
        parse(&["recording", "download", "sb", "rec_1", "--output", "out.mp4"])
    else {
        panic!("not download")
    };
    assert_eq!((recording.as_str(), output.output.to_str()), ("rec_1", Some("out.mp4")));
    for verb in ["stop", "get", "delete"] {
        assert!(refused(&["recording", verb, "sb"]), "recording {verb} needs an id");
    }
}

#[test]
fn windows_render_as_rows() {
    let window = WindowInfo {
        id: "4194307".into(),
        title: "Untitled - Mousepad".into(),
        class_name: "mousepad.Mousepad".into(),
        is_active: true,
        desktop: Some(0),
        desktop_name: None,
        pid: Some(42),
        x: 10,
        y: 20,
        width: 800,
        height: 600,
    };
    let row = window_row(&window);
    assert_eq!(row.len(), WINDOW_HEADERS.len());
    assert_eq!(row, ["4194307", "42", "*", "800x600+10+20", "mousepad.Mousepad", "Untitled - Mousepad"]);
}

#[test]
fn desktop_errors_get_their_own_hints() {
    let missing = ClientError::from_response(501, br#"{"error":{"code":"feature_unavailable","message":"no"}}"#);
    let hint = desktop_hint("sb_1", &missing).unwrap();
    assert!(hint.contains("not created from the desktop template") && hint.contains("--template desktop"), "{hint}");
    let recording = ClientError::from_response(404, br#"{"error":{"code":"recording_not_found","message":"no"}}"#);
    assert!(desktop_hint("sb_1", &recording).unwrap().contains("recording list sb_1"));
    let internal = ClientError::from_response(500, br#"{"error":{"code":"internal_error","message":"boom"}}"#);
    assert_eq!(desktop_hint("sb_1", &internal), None);
    let error = failed("sb_1", "could not click".into())(missing);
    assert_eq!(crate::exit::report(&error, true), ExitStatus::Failure);
}
