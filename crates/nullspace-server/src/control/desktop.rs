//! The `desktop` template's settings: a create request's `desktop` object checked (each bad value a
//! clear 400) and turned into the sandbox environment. The desktop daemon (the template's start command)
//! reads `NULLSPACE_DESKTOP_DISPLAY`, `NULLSPACE_DESKTOP_RESOLUTION` and `NULLSPACE_DESKTOP_DPI` to start
//! its X server, and every command sees `DISPLAY` on that display. These four variables are the
//! server's: they are kept in the sandbox's envs (so hibernate, resume, fork and snapshots keep the
//! settings), a create's `envs` may repeat them only with the same values (set `desktop` instead), and a
//! desktop sandbox always has them, with the defaults when the request gives no settings.

use std::collections::BTreeMap;

use nullspace_types::sandbox::{CreateSandboxRequest, DesktopSettings, Resolution};
use serde_json::Value;

use super::validate::invalid;
use super::ControlError;

/// The built-in template whose sandboxes run a desktop.
pub const TEMPLATE: &str = "desktop";
/// The display the desktop daemon's X server takes (`:N`).
pub const DISPLAY_ENV: &str = "NULLSPACE_DESKTOP_DISPLAY";
/// The X server's screen size (`WxH`).
pub const RESOLUTION_ENV: &str = "NULLSPACE_DESKTOP_RESOLUTION";
/// The X server's dots per inch.
pub const DPI_ENV: &str = "NULLSPACE_DESKTOP_DPI";
/// The variables this module owns in a desktop sandbox's environment.
const MANAGED: [&str; 4] = ["DISPLAY", DISPLAY_ENV, RESOLUTION_ENV, DPI_ENV];

/// Display of a desktop whose create names none (`:1`).
pub const DEFAULT_DISPLAY: u32 = 1;
/// Screen size of a desktop whose create names none.
pub const DEFAULT_RESOLUTION: Resolution = Resolution { width: 1920, height: 1080 };
/// Dots per inch of a desktop whose create names none.
pub const DEFAULT_DPI: u32 = 96;

/// Smallest screen side, in pixels.
pub const MIN_SIDE: u32 = 64;
/// Largest screen side, in pixels (an 8192×8192 frame buffer is 256 MiB).
pub const MAX_SIDE: u32 = 8192;
/// Smallest dpi.
pub const MIN_DPI: u32 = 24;
/// Largest dpi.
pub const MAX_DPI: u32 = 960;
/// Largest display number.
pub const MAX_DISPLAY: u32 = 999;

/// Settings with the defaults filled in, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desktop {
    /// Display number (`:N`).
    pub display: u32,
    /// Screen size.
    pub resolution: Resolution,
    /// Dots per inch.
    pub dpi: u32,
}

impl Default for Desktop {
    fn default() -> Self {
        Desktop { display: DEFAULT_DISPLAY, resolution: DEFAULT_RESOLUTION, dpi: DEFAULT_DPI }
    }
}

impl Desktop {
    /// `settings` with defaults for what they leave out; out-of-range values are a 400.
    pub fn resolve(settings: Option<&DesktopSettings>) -> Result<Desktop, ControlError> {
        let defaults = Desktop::default();
        let Some(settings) = settings else { return Ok(defaults) };
        let resolution = settings.resolution.unwrap_or(defaults.resolution);
        for (side, value) in [("width", resolution.width), ("height", resolution.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&value) {
                return Err(invalid(format!(
                    "desktop.resolution.{side} must be from {MIN_SIDE} to {MAX_SIDE} pixels, got {value}"
                )));
            }
        }
        let dpi = settings.dpi.unwrap_or(defaults.dpi);
        if !(MIN_DPI..=MAX_DPI).contains(&dpi) {
            return Err(invalid(format!("desktop.dpi must be from {MIN_DPI} to {MAX_DPI}, got {dpi}")));
        }
        let display = match settings.display.as_deref() {
            None => defaults.display,
            Some(text) => parse_display(text)?,
        };
        Ok(Desktop { display, resolution, dpi })
    }

    /// The X display name, `:N`.
    pub fn display_name(&self) -> String {
        format!(":{}", self.display)
    }

    /// The environment variables these settings give a sandbox.
    pub fn envs(&self) -> BTreeMap<String, String> {
        let display = self.display_name();
        BTreeMap::from([
            ("DISPLAY".to_owned(), display.clone()),
            (DISPLAY_ENV.to_owned(), display),
            (RESOLUTION_ENV.to_owned(), self.resolution.to_string()),
            (DPI_ENV.to_owned(), self.dpi.to_string()),
        ])
    }

    /// `envs` (a create's) with these settings' variables added. A create may name them itself only
    /// with the same values: anything else would leave `DISPLAY` pointing away from the X server.
    pub fn add_envs(&self, mut envs: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ControlError> {
        for (key, value) in self.envs() {
            match envs.get(&key) {
                Some(theirs) if *theirs != value => {
                    let setting = if key == RESOLUTION_ENV {
                        "desktop.resolution"
                    } else if key == DPI_ENV {
                        "desktop.dpi"
                    } else {
                        "desktop.display"
                    };
                    return Err(invalid(format!(
                        "envs.{key} is {theirs:?} but this desktop sandbox's is {value:?}: leave {key} out of envs \
                         and set {setting} instead (the server sets it for desktop sandboxes)"
                    )));
                }
                _ => {
                    envs.insert(key, value);
                }
            }
        }
        Ok(envs)
    }
}

impl super::Control {
    /// The environment of a sandbox that `request` creates from template `template_id` (resolved): the
    /// request's envs, checked, plus the desktop variables when the template is the desktop's.
    pub(super) fn create_envs(
        &self,
        template_id: &str,
        request: &CreateSandboxRequest,
    ) -> Result<BTreeMap<String, String>, ControlError> {
        let envs = request.envs.clone().unwrap_or_default();
        super::validate::envs(&envs)?;
        let desktop = self.builtins.by_template(template_id).is_some_and(|(name, _)| name == TEMPLATE);
        match (desktop, &request.desktop) {
            (true, settings) => Desktop::resolve(settings.as_ref())?.add_envs(envs),
            (false, None) => Ok(envs),
            (false, Some(_)) => Err(invalid(format!(
                "desktop settings apply only to the {TEMPLATE} template; template {} has no desktop",
                request.template.as_deref().unwrap_or("base")
            ))),
        }
    }
}

/// Whether a warm pool's sandboxes (started with the default desktop) can serve `request`.
pub fn poolable(request: &CreateSandboxRequest) -> bool {
    Desktop::resolve(request.desktop.as_ref()).is_ok_and(|desktop| desktop == Desktop::default())
}

/// `:N` → N (`:01` is `:1`); anything else is a 400.
fn parse_display(text: &str) -> Result<u32, ControlError> {
    let number = text
        .strip_prefix(':')
        .filter(|digits| !digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok())
        .filter(|number| *number <= MAX_DISPLAY);
    number.ok_or_else(|| {
        invalid(format!("desktop.display must look like :1 (a display from :0 to :{MAX_DISPLAY}), got {text:?}"))
    })
}

/// The create's `desktop` object as settings, checked; each bad value is a 400 that names it.
pub fn settings(value: &Value) -> Result<DesktopSettings, ControlError> {
    let Value::Object(map) = value else {
        return Err(invalid("desktop must be an object such as {\"resolution\": {\"width\": 1280, \"height\": 800}}"));
    };
    let mut settings = DesktopSettings::default();
    for (key, value) in map.iter().filter(|(_, value)| !value.is_null()) {
        match key.as_str() {
            "resolution" => settings.resolution = Some(resolution(value)?),
            "dpi" => settings.dpi = Some(integer("desktop.dpi", value)?),
            "display" => match value {
                Value::String(text) => settings.display = Some(text.clone()),
                other => return Err(invalid(format!("desktop.display must be a string such as \":1\", got {other}"))),
            },
            other => {
                return Err(invalid(format!(
                    "desktop has no setting {other:?}: the settings are resolution, dpi and display"
                )))
            }
        }
    }
    Desktop::resolve(Some(&settings))?;
    Ok(settings)
}

/// `{"width": W, "height": H}` or `"WxH"`.
fn resolution(value: &Value) -> Result<Resolution, ControlError> {
    let shape = || {
        invalid(format!("desktop.resolution must be {{\"width\": 1280, \"height\": 800}} or \"1280x800\", got {value}"))
    };
    match value {
        Value::String(text) => text.parse().map_err(|_| shape()),
        Value::Object(map) => {
            if map.len() != 2 {
                return Err(shape());
            }
            let side = |name: &str| {
                map.get(name).ok_or_else(shape).and_then(|v| integer(&format!("desktop.resolution.{name}"), v))
            };
            Ok(Resolution { width: side("width")?, height: side("height")? })
        }
        _ => Err(shape()),
    }
}

fn integer(what: &str, value: &Value) -> Result<u32, ControlError> {
    value
        .as_u64()
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| invalid(format!("{what} must be a positive integer, got {value}")))
}

/// The desktop variables among a sandbox's `envs`: the template's start command gets them (it hides a
/// create's other envs), so the desktop daemon starts the X server the create asked for.
pub fn start_envs(envs: &BTreeMap<String, String>) -> impl Iterator<Item = (String, String)> + '_ {
    let desktop = envs.contains_key(DISPLAY_ENV);
    envs.iter().filter(move |(key, _)| desktop && MANAGED.contains(&key.as_str())).map(|(k, v)| (k.clone(), v.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(error: ControlError) -> String {
        error.to_string()
    }

    #[test]
    fn no_settings_are_the_defaults() {
        let desktop = Desktop::resolve(None).unwrap();
        assert_eq!(desktop, Desktop::resolve(Some(&DesktopSettings::default())).unwrap());
        let envs = desktop.envs();
        assert_eq!(envs["DISPLAY"], ":1");
        assert_eq!(envs[DISPLAY_ENV], ":1");
        assert_eq!(envs[RESOLUTION_ENV], "1920x1080");
        assert_eq!(envs[DPI_ENV], "96");
    }

    #[test]
    fn settings_take_both_resolution_spellings_and_normalise_the_display() {
        let object = settings(&json!({"resolution": {"width": 1280, "height": 800}, "dpi": 144, "display": ":02"}));
        let desktop = Desktop::resolve(Some(&object.unwrap())).unwrap();
        assert_eq!(desktop, Desktop { display: 2, resolution: Resolution { width: 1280, height: 800 }, dpi: 144 });
        assert_eq!(desktop.envs()["DISPLAY"], ":2");
        let text = settings(&json!({"resolution": "1024x768", "dpi": null})).unwrap();
        assert_eq!(Desktop::resolve(Some(&text)).unwrap().resolution, Resolution { width: 1024, height: 768 });
    }

    #[test]
    fn bad_settings_are_named() {
        for (body, expected) in [
            (json!({"resolution": {"width": 0, "height": 800}}), "desktop.resolution.width must be from 64"),
            (json!({"resolution": {"width": 1280, "height": 100000}}), "desktop.resolution.height must be from 64"),
            (json!({"resolution": {"width": 1280}}), "desktop.resolution must be"),
            (json!({"resolution": {"width": 1280, "height": 800, "depth": 24}}), "desktop.resolution must be"),
            (
                json!({"resolution": {"width": -5, "height": 800}}),
                "desktop.resolution.width must be a positive integer",
            ),
            (json!({"resolution": {"width": 12.5, "height": 800}}), "must be a positive integer"),
            (json!({"resolution": "big"}), "desktop.resolution must be"),
            (json!({"resolution": [1280, 800]}), "desktop.resolution must be"),
            (json!({"dpi": 0}), "desktop.dpi must be from 24"),
            (json!({"dpi": "96"}), "desktop.dpi must be a positive integer"),
            (json!({"display": "1"}), "desktop.display must look like :1"),
            (json!({"display": ":"}), "desktop.display must look like :1"),
            (json!({"display": ":1.0"}), "desktop.display must look like :1"),
            (json!({"display": ":1000"}), "desktop.display must look like :1"),
            (json!({"display": 1}), "desktop.display must be a string"),
            (json!({"depth": 24}), "desktop has no setting \"depth\""),
            (json!("1280x800"), "desktop must be an object"),
        ] {
            let error = message(settings(&body).unwrap_err());
            assert!(error.contains(expected), "{body}: {error}");
        }
    }

    #[test]
    fn a_create_may_repeat_the_desktop_variables_but_not_contradict_them() {
        let desktop = Desktop { display: 3, ..Desktop::default() };
        let user = BTreeMap::from([("TOKEN".to_owned(), "x".to_owned()), ("DISPLAY".to_owned(), ":3".to_owned())]);
        let envs = desktop.add_envs(user).unwrap();
        assert_eq!((envs["TOKEN"].as_str(), envs["DISPLAY"].as_str(), envs[DISPLAY_ENV].as_str()), ("x", ":3", ":3"));
        let other = BTreeMap::from([("DISPLAY".to_owned(), ":0".to_owned())]);
        let error = message(desktop.add_envs(other).unwrap_err());
        assert!(error.contains("envs.DISPLAY is \":0\"") && error.contains("set desktop.display"), "{error}");
        let dpi = BTreeMap::from([(DPI_ENV.to_owned(), "200".to_owned())]);
        assert!(message(desktop.add_envs(dpi).unwrap_err()).contains("set desktop.dpi"));
    }

    #[test]
    fn only_a_desktop_sandbox_passes_its_variables_to_the_start_command() {
        let desktop = Desktop::default().add_envs(BTreeMap::from([("TOKEN".to_owned(), "x".to_owned())])).unwrap();
        let passed: BTreeMap<_, _> = start_envs(&desktop).collect();
        assert_eq!(passed, Desktop::default().envs());
        let plain = BTreeMap::from([("DISPLAY".to_owned(), ":9".to_owned())]);
        assert_eq!(start_envs(&plain).count(), 0);
    }
}
