//! The keyboard map as the core protocol reports it, and the plan that types keysyms with it: each
//! keysym on a keycode's first level is pressed alone, on its second level with Shift; a keysym the map
//! lacks is bound to a spare keycode (one without symbols) first, like xdotool does. Bound keycodes keep
//! their keysym afterwards (clients read the new map when they handle the key, possibly after the
//! request ended) and are reused oldest first once no spare is left.

use std::collections::VecDeque;

/// `NoSymbol`.
const NO_SYMBOL: u32 = 0;
/// Keycodes below this are never remapped (8 is reserved by XKB setups for no key).
const FIRST_SPARE: u8 = 9;

/// The core keyboard mapping.
#[derive(Debug, Clone)]
pub struct Keymap {
    min_keycode: u8,
    per_keycode: usize,
    keysyms: Vec<u32>,
}

/// One key to press (with Shift held when `shift`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stroke {
    /// The keycode.
    pub keycode: u8,
    /// Whether Shift is held around it.
    pub shift: bool,
}

/// How to type a run of keysyms: the bindings to make first, then the strokes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Spare keycodes to bind to a keysym before typing.
    pub bind: Vec<(u8, u32)>,
    /// The keys in order, one per keysym.
    pub strokes: Vec<Stroke>,
}

/// The keycodes this daemon bound, oldest first.
#[derive(Debug, Default)]
pub struct Scratch {
    bound: VecDeque<u8>,
}

impl Keymap {
    /// A map from `GetKeyboardMapping` of every keycode from `min_keycode`.
    pub fn new(min_keycode: u8, per_keycode: u8, keysyms: Vec<u32>) -> Self {
        Self { min_keycode, per_keycode: usize::from(per_keycode.max(1)), keysyms }
    }

    /// Keysyms per keycode.
    pub fn per_keycode(&self) -> u8 {
        u8::try_from(self.per_keycode).unwrap_or(u8::MAX)
    }

    fn entries(&self) -> impl Iterator<Item = (u8, &[u32])> {
        self.keysyms.chunks(self.per_keycode).enumerate().filter_map(|(index, syms)| {
            let keycode = usize::from(self.min_keycode) + index;
            u8::try_from(keycode).ok().map(|keycode| (keycode, syms))
        })
    }

    /// The keycode typing `keysym` and whether Shift is needed (a first-level binding preferred).
    pub fn find(&self, keysym: u32) -> Option<Stroke> {
        if keysym == NO_SYMBOL {
            return None;
        }
        let on_level = |level: usize| {
            self.entries().find(|(_, syms)| syms.get(level) == Some(&keysym)).map(|(keycode, _)| keycode)
        };
        if let Some(keycode) = on_level(0) {
            return Some(Stroke { keycode, shift: false });
        }
        // A keycode whose second level is empty types its first-level keysym with Shift too.
        on_level(1).map(|keycode| Stroke { keycode, shift: true })
    }

    fn is_spare(&self, keycode: u8) -> bool {
        keycode >= FIRST_SPARE
            && self.entries().any(|(code, syms)| code == keycode && syms.iter().all(|&s| s == NO_SYMBOL))
    }

    fn spares(&self) -> impl Iterator<Item = u8> + '_ {
        self.entries()
            .filter(|(keycode, syms)| *keycode >= FIRST_SPARE && syms.iter().all(|&s| s == NO_SYMBOL))
            .map(|(keycode, _)| keycode)
    }
}

impl Scratch {
    /// A keycode to bind: a spare one, else the one this daemon bound longest ago, never one in `taken`.
    fn pick(&mut self, keymap: &Keymap, taken: &[u8]) -> Option<u8> {
        let keycode = keymap
            .spares()
            .find(|keycode| !taken.contains(keycode))
            .or_else(|| self.bound.iter().copied().find(|keycode| !taken.contains(keycode)))?;
        self.bound.retain(|&k| k != keycode);
        self.bound.push_back(keycode);
        Some(keycode)
    }

    /// Plans typing `keysyms` with `keymap`; returns the plan and how many keysyms it covers (fewer than
    /// all when one request needs more new bindings than there are keycodes to bind: the caller types
    /// the plan, then plans the rest).
    pub fn plan(&mut self, keymap: &Keymap, keysyms: &[u32]) -> (Plan, usize) {
        let mut plan = Plan::default();
        for (done, &keysym) in keysyms.iter().enumerate() {
            if let Some(stroke) = keymap.find(keysym) {
                plan.strokes.push(stroke);
                continue;
            }
            if let Some(&(keycode, _)) = plan.bind.iter().find(|(_, bound)| *bound == keysym) {
                plan.strokes.push(Stroke { keycode, shift: false });
                continue;
            }
            let taken: Vec<u8> = plan.bind.iter().map(|(keycode, _)| *keycode).collect();
            match self.pick(keymap, &taken) {
                Some(keycode) => {
                    plan.bind.push((keycode, keysym));
                    plan.strokes.push(Stroke { keycode, shift: false });
                }
                None => return (plan, done),
            }
        }
        (plan, keysyms.len())
    }

    /// Forgets bound keycodes that the map shows as spare again (someone reset the map).
    pub fn refresh(&mut self, keymap: &Keymap) {
        self.bound.retain(|&keycode| !keymap.is_spare(keycode));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keycodes 9..=12: `a A`, nothing, `Shift_L`, nothing.
    fn keymap() -> Keymap {
        Keymap::new(9, 2, vec![0x61, 0x41, 0, 0, 0xffe1, 0, 0, 0])
    }

    #[test]
    fn keysyms_in_the_map_are_pressed_with_shift_for_the_second_level() {
        let keymap = keymap();
        assert_eq!(keymap.find(0x61), Some(Stroke { keycode: 9, shift: false }));
        assert_eq!(keymap.find(0x41), Some(Stroke { keycode: 9, shift: true }));
        assert_eq!(keymap.find(0xffe1), Some(Stroke { keycode: 11, shift: false }));
        assert_eq!(keymap.find(0xe9), None);
        assert_eq!(keymap.find(0), None);
    }

    #[test]
    fn missing_keysyms_are_bound_to_spare_keycodes_once_per_request() {
        let mut scratch = Scratch::default();
        let (plan, done) = scratch.plan(&keymap(), &[0xe9, 0x61, 0xe9, 0x20ac]);
        assert_eq!(done, 4);
        assert_eq!(plan.bind, vec![(10, 0xe9), (12, 0x20ac)]);
        let keycodes: Vec<u8> = plan.strokes.iter().map(|s| s.keycode).collect();
        assert_eq!(keycodes, [10, 9, 10, 12]);
    }

    #[test]
    fn without_spares_the_oldest_binding_is_reused_and_long_runs_are_split() {
        let mut scratch = Scratch::default();
        let keymap = keymap();
        let (first, _) = scratch.plan(&keymap, &[0xe9, 0xe8]);
        assert_eq!(first.bind, vec![(10, 0xe9), (12, 0xe8)]);
        // The server now has both bound: no spare is left.
        let bound = Keymap::new(9, 2, vec![0x61, 0x41, 0xe9, 0xe9, 0xffe1, 0, 0xe8, 0xe8]);
        let (second, done) = scratch.plan(&bound, &[0xe0, 0xe1, 0xe2]);
        assert_eq!(second.bind, vec![(10, 0xe0), (12, 0xe1)]);
        assert_eq!(done, 2, "the third new keysym waits for the next plan");
    }

    #[test]
    fn keycodes_reset_to_spare_are_forgotten() {
        let mut scratch = Scratch::default();
        let keymap = keymap();
        scratch.plan(&keymap, &[0xe9]);
        scratch.refresh(&keymap);
        assert!(scratch.bound.is_empty());
    }
}
