//! Key names to X keysyms: exact X keysym names (`Return`, `XF86AudioPlay`) from the `xkeysym` crate's
//! table, the friendly aliases agents send (`ctrl`, `enter`, `pageup`), case-insensitive names when
//! unambiguous, single characters, `0x…` keysyms and `U+…` code points; combinations such as `ctrl+s`;
//! and the keysym that types a character.

use std::collections::HashMap;
use std::sync::OnceLock;

use xkeysym::Keysym;

/// Raw keysym ranges the `xkeysym` table names (Latin, function keys, named Unicode keysyms and the
/// vendor ranges: DEC, HP, OSF, Sun, XFree86).
const NAMED_RANGES: [(u32, u32); 4] =
    [(0x0000_0000, 0x0001_ffff), (0x00ff_ffff, 0x0110_ffff), (0x1000_0000, 0x1000_ffff), (0x1004_0000, 0x1008_ffff)];

/// Friendly names and what they stand for (compared in lowercase).
const ALIASES: &[(&str, &str)] = &[
    ("ctrl", "Control_L"),
    ("control", "Control_L"),
    ("lctrl", "Control_L"),
    ("rctrl", "Control_R"),
    ("shift", "Shift_L"),
    ("lshift", "Shift_L"),
    ("rshift", "Shift_R"),
    ("alt", "Alt_L"),
    ("lalt", "Alt_L"),
    ("ralt", "Alt_R"),
    ("altgr", "ISO_Level3_Shift"),
    ("option", "Alt_L"),
    ("super", "Super_L"),
    ("win", "Super_L"),
    ("windows", "Super_L"),
    ("cmd", "Super_L"),
    ("command", "Super_L"),
    ("meta", "Meta_L"),
    ("enter", "Return"),
    ("return", "Return"),
    ("esc", "Escape"),
    ("escape", "Escape"),
    ("tab", "Tab"),
    ("space", "space"),
    ("spacebar", "space"),
    ("backspace", "BackSpace"),
    ("bksp", "BackSpace"),
    ("delete", "Delete"),
    ("del", "Delete"),
    ("insert", "Insert"),
    ("ins", "Insert"),
    ("home", "Home"),
    ("end", "End"),
    ("pageup", "Prior"),
    ("page_up", "Prior"),
    ("pgup", "Prior"),
    ("pagedown", "Next"),
    ("page_down", "Next"),
    ("pgdn", "Next"),
    ("up", "Up"),
    ("down", "Down"),
    ("left", "Left"),
    ("right", "Right"),
    ("arrowup", "Up"),
    ("arrowdown", "Down"),
    ("arrowleft", "Left"),
    ("arrowright", "Right"),
    ("capslock", "Caps_Lock"),
    ("numlock", "Num_Lock"),
    ("scrolllock", "Scroll_Lock"),
    ("printscreen", "Print"),
    ("print", "Print"),
    ("prtsc", "Print"),
    ("menu", "Menu"),
    ("pause", "Pause"),
    ("plus", "plus"),
    ("minus", "minus"),
];

/// The keysym name tables, built once from `xkeysym`.
struct Names {
    exact: HashMap<&'static str, u32>,
    /// Lowercase name → keysym, `None` when two keysyms share the lowercase name (`eacute`, `Eacute`).
    folded: HashMap<String, Option<u32>>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut exact = HashMap::new();
        let mut folded: HashMap<String, Option<u32>> = HashMap::new();
        for (first, last) in NAMED_RANGES {
            for raw in first..=last {
                let Some(name) = Keysym::new(raw).name() else { continue };
                // The crate names constants `XK_Return`, `XF86XK_AudioPlay`; X names them `Return`,
                // `XF86AudioPlay`.
                let name: &'static str = match name.split_once("XK_") {
                    Some(("", rest)) => rest,
                    Some((vendor, rest)) => Box::leak(format!("{vendor}{rest}").into_boxed_str()),
                    None => name,
                };
                exact.entry(name).or_insert(raw);
                folded
                    .entry(name.to_lowercase())
                    .and_modify(|known| {
                        if *known != Some(raw) {
                            *known = None
                        }
                    })
                    .or_insert(Some(raw));
            }
        }
        Names { exact, folded }
    })
}

/// The keysym a key name stands for.
pub fn parse_key(name: &str) -> Result<u32, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("empty key name; use an X keysym name such as Return, Escape, a or F5".into());
    }
    let names = names();
    if let Some(&raw) = names.exact.get(name) {
        return Ok(raw);
    }
    let lower = name.to_lowercase();
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == lower) {
        if let Some(&raw) = names.exact.get(target) {
            return Ok(raw);
        }
    }
    if let Some(Some(raw)) = names.folded.get(&lower) {
        return Ok(*raw);
    }
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return char_keysym(c).ok_or_else(|| format!("no keysym types {c:?}"));
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        if let Ok(raw) = u32::from_str_radix(hex, 16) {
            return Ok(raw);
        }
    }
    if let Some(hex) = lower.strip_prefix("u+") {
        if let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            return char_keysym(c).ok_or_else(|| format!("no keysym types {c:?}"));
        }
    }
    Err(format!(
        "unknown key {name:?}; use an X keysym name (Return, Escape, BackSpace, Tab, a, F5, Page_Up) or a \
         modifier (ctrl, shift, alt, super)"
    ))
}

/// The keysyms of a combination such as `ctrl+shift+t` (also `ctrl+plus` or `ctrl++`), in press order.
pub fn parse_combo(combo: &str) -> Result<Vec<u32>, String> {
    let combo = combo.trim();
    if combo.is_empty() {
        return Err("empty key combination; send keys joined by '+' such as \"ctrl+s\"".into());
    }
    if combo == "+" {
        return parse_key("plus").map(|key| vec![key]);
    }
    let (head, plus_key) = match combo.strip_suffix("++") {
        Some(head) => (head, true),
        None => (combo, false),
    };
    let mut keys = Vec::new();
    for part in head.split('+') {
        if part.trim().is_empty() {
            return Err(format!("empty key in {combo:?}; join keys with a single '+' such as \"ctrl+s\""));
        }
        keys.push(parse_key(part).map_err(|why| format!("in {combo:?}: {why}"))?);
    }
    if plus_key {
        keys.push(parse_key("plus")?);
    }
    Ok(keys)
}

/// The keysym that types `c` (`\n` is Return, `\t` Tab), if any.
pub fn char_keysym(c: char) -> Option<u32> {
    let keysym = match c {
        '\n' | '\r' => Keysym::Return,
        '\t' => Keysym::Tab,
        _ => Keysym::from_char(c),
    };
    (keysym != Keysym::NoSymbol).then_some(keysym.raw())
}

/// Whether a keysym is a modifier (held while the keys after it are pressed).
pub fn is_modifier(keysym: u32) -> bool {
    Keysym::new(keysym).is_modifier_key() || keysym == Keysym::ISO_Level3_Shift.raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_keysym_names_resolve_exactly() {
        assert_eq!(parse_key("Return"), Ok(0xff0d));
        assert_eq!(parse_key("a"), Ok(0x61));
        assert_eq!(parse_key("A"), Ok(0x41));
        assert_eq!(parse_key("F5"), Ok(0xffc2));
        assert_eq!(parse_key("KP_Enter"), Ok(0xff8d));
        assert_eq!(parse_key("XF86AudioPlay"), Ok(0x1008_ff14));
        assert_eq!(parse_key("Eacute"), Ok(0xc9));
        assert_eq!(parse_key("eacute"), Ok(0xe9));
        assert_eq!(parse_key("BackSpace"), Ok(0xff08));
    }

    #[test]
    fn friendly_names_and_case_variants_resolve() {
        assert_eq!(parse_key("ctrl"), parse_key("Control_L"));
        assert_eq!(parse_key("Enter"), parse_key("Return"));
        assert_eq!(parse_key("esc"), parse_key("Escape"));
        assert_eq!(parse_key("PageUp"), parse_key("Prior"));
        assert_eq!(parse_key("backspace"), parse_key("BackSpace"));
        assert_eq!(parse_key("f12"), parse_key("F12"));
        assert_eq!(parse_key("0xff0d"), parse_key("Return"));
        assert_eq!(parse_key("U+00E9"), Ok(0xe9));
        assert_eq!(parse_key("€"), Ok(0x20ac));
    }

    #[test]
    fn unknown_keys_say_what_to_send() {
        let error = parse_key("hyperdrive").unwrap_err();
        assert!(error.contains("unknown key \"hyperdrive\"") && error.contains("Return"), "{error}");
        assert!(parse_key(" ").is_err());
    }

    #[test]
    fn combinations_keep_press_order_and_accept_plus() {
        let ctrl = parse_key("ctrl").unwrap();
        let shift = parse_key("shift").unwrap();
        assert_eq!(parse_combo("ctrl+s"), Ok(vec![ctrl, 0x73]));
        assert_eq!(parse_combo("ctrl + shift + t"), Ok(vec![ctrl, shift, 0x74]));
        assert_eq!(parse_combo("ctrl++"), Ok(vec![ctrl, 0x2b]));
        assert_eq!(parse_combo("+"), Ok(vec![0x2b]));
        assert_eq!(parse_combo("Return"), Ok(vec![0xff0d]));
        assert!(parse_combo("ctrl++s").unwrap_err().contains("empty key"));
        assert!(parse_combo("ctrl+nokey").unwrap_err().contains("in \"ctrl+nokey\""));
        assert!(parse_combo("").is_err());
    }

    #[test]
    fn characters_map_to_their_keysyms() {
        assert_eq!(char_keysym('a'), Some(0x61));
        assert_eq!(char_keysym(' '), Some(0x20));
        assert_eq!(char_keysym('\n'), Some(0xff0d));
        assert_eq!(char_keysym('\t'), Some(0xff09));
        assert_eq!(char_keysym('é'), Some(0xe9));
        assert_eq!(char_keysym('→'), Some(0x8fd), "the legacy keysym rightarrow");
        assert_eq!(char_keysym('🙂'), Some(0x0101_f642), "a Unicode keysym");
        assert!(is_modifier(parse_key("ctrl").unwrap()) && !is_modifier(0x61));
    }
}
