//! The desktop's settings from the environment the server sets at create (`NULLSPACE_DESKTOP_DISPLAY`,
//! `NULLSPACE_DESKTOP_RESOLUTION`, `NULLSPACE_DESKTOP_DPI`), checked, with the protocol's defaults
//! (`:1`, 1920×1080, 96 dpi).

use std::fmt;

/// Largest side the X server is asked for (Xtigervnc's framebuffer limit is far above any real screen).
const MAX_SIDE: u32 = 16384;
/// Smallest side a desktop is usable at.
const MIN_SIDE: u32 = 64;

/// What the X server is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The display number (`:N`).
    pub display: u32,
    /// Screen width in pixels.
    pub width: u32,
    /// Screen height in pixels.
    pub height: u32,
    /// Dots per inch.
    pub dpi: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { display: 1, width: 1920, height: 1080, dpi: 96 }
    }
}

impl Settings {
    /// Reads the settings through `var` (the process environment in production); an unset or empty
    /// variable takes its default, a malformed one is an error naming the variable and the expected form.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut settings = Self::default();
        let value = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(display) = value("NULLSPACE_DESKTOP_DISPLAY") {
            settings.display = parse_display(&display)
                .map_err(|why| format!("NULLSPACE_DESKTOP_DISPLAY={display:?} is invalid: {why}"))?;
        }
        if let Some(resolution) = value("NULLSPACE_DESKTOP_RESOLUTION") {
            (settings.width, settings.height) = parse_resolution(&resolution)
                .map_err(|why| format!("NULLSPACE_DESKTOP_RESOLUTION={resolution:?} is invalid: {why}"))?;
        }
        if let Some(dpi) = value("NULLSPACE_DESKTOP_DPI") {
            settings.dpi = parse_dpi(&dpi).map_err(|why| format!("NULLSPACE_DESKTOP_DPI={dpi:?} is invalid: {why}"))?;
        }
        Ok(settings)
    }

    /// The display name (`:1`), as `DISPLAY` holds it.
    pub fn display_name(&self) -> String {
        format!(":{}", self.display)
    }

    /// The geometry argument (`1920x1080`).
    pub fn geometry(&self) -> String {
        format!("{}x{}", self.width, self.height)
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "display :{} {}x{} at {} dpi", self.display, self.width, self.height, self.dpi)
    }
}

/// `:N` (also `N` and `:N.0`) with N in 0..=999.
fn parse_display(value: &str) -> Result<u32, String> {
    let digits = value.strip_prefix(':').unwrap_or(value);
    let digits = digits.strip_suffix(".0").unwrap_or(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 3 {
        return Err("use a local display such as \":1\" (a colon and a number 0-999)".into());
    }
    digits.parse().map_err(|_| "not a number".to_owned())
}

/// `WIDTHxHEIGHT` with both sides in MIN_SIDE..=MAX_SIDE.
fn parse_resolution(value: &str) -> Result<(u32, u32), String> {
    let usage = || format!("use WIDTHxHEIGHT such as \"1920x1080\", each side {MIN_SIDE}-{MAX_SIDE}");
    let (width, height) = value.split_once(['x', 'X']).ok_or_else(usage)?;
    let side = |s: &str| s.trim().parse::<u32>().ok().filter(|n| (MIN_SIDE..=MAX_SIDE).contains(n));
    match (side(width), side(height)) {
        (Some(width), Some(height)) => Ok((width, height)),
        _ => Err(usage()),
    }
}

/// Dots per inch in 24..=960.
fn parse_dpi(value: &str) -> Result<u32, String> {
    value.parse::<u32>().ok().filter(|dpi| (24..=960).contains(dpi)).ok_or_else(|| "use a number 24-960".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_env(|name| vars.get(name).cloned())
    }

    #[test]
    fn unset_and_empty_variables_take_the_protocol_defaults() {
        assert_eq!(settings(&[]).unwrap(), Settings { display: 1, width: 1920, height: 1080, dpi: 96 });
        assert_eq!(settings(&[("NULLSPACE_DESKTOP_DISPLAY", " ")]).unwrap(), Settings::default());
    }

    #[test]
    fn set_variables_are_used() {
        let parsed = settings(&[
            ("NULLSPACE_DESKTOP_DISPLAY", ":3"),
            ("NULLSPACE_DESKTOP_RESOLUTION", "1366x768"),
            ("NULLSPACE_DESKTOP_DPI", "144"),
        ])
        .unwrap();
        assert_eq!(parsed, Settings { display: 3, width: 1366, height: 768, dpi: 144 });
        assert_eq!((parsed.display_name().as_str(), parsed.geometry().as_str()), (":3", "1366x768"));
        assert_eq!(settings(&[("NULLSPACE_DESKTOP_DISPLAY", "7")]).unwrap().display, 7);
        assert_eq!(settings(&[("NULLSPACE_DESKTOP_DISPLAY", ":2.0")]).unwrap().display, 2);
    }

    #[test]
    fn malformed_values_name_the_variable_and_the_expected_form() {
        for (name, value, hint) in [
            ("NULLSPACE_DESKTOP_DISPLAY", "localhost:1", "a colon and a number"),
            ("NULLSPACE_DESKTOP_DISPLAY", ":-1", "a colon and a number"),
            ("NULLSPACE_DESKTOP_DISPLAY", ":1000", "a colon and a number"),
            ("NULLSPACE_DESKTOP_RESOLUTION", "1920", "WIDTHxHEIGHT"),
            ("NULLSPACE_DESKTOP_RESOLUTION", "0x1080", "WIDTHxHEIGHT"),
            ("NULLSPACE_DESKTOP_RESOLUTION", "100000x10", "WIDTHxHEIGHT"),
            ("NULLSPACE_DESKTOP_DPI", "high", "24-960"),
            ("NULLSPACE_DESKTOP_DPI", "5000", "24-960"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(error.contains(name) && error.contains(hint), "{name}={value}: {error}");
        }
    }
}
