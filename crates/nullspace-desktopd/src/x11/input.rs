//! Mouse and keyboard input through the XTEST extension (`FakeInput`): pointer motion, button presses,
//! wheel steps, typed text and key combinations. Each operation ends with a round trip, so the X server
//! has processed every event before the request is answered.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, BUTTON_PRESS_EVENT, BUTTON_RELEASE_EVENT, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
    MOTION_NOTIFY_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::CURRENT_TIME;

use super::keymap::{Keymap, Stroke};
use super::X11;
use crate::error::{DesktopError, DesktopResult};
use crate::keysym;

/// `Shift_L`.
const SHIFT_L: u32 = 0xffe1;
/// Pointer motion events sent between the ends of a drag (toolkits start a drag after some motion).
const DRAG_STEPS: i32 = 12;

/// A pointer button number (1 left, 2 middle, 3 right, 4–7 wheel up/down/left/right).
pub type Button = u8;

impl X11 {
    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> DesktopResult<()> {
        let root = if kind == MOTION_NOTIFY_EVENT { self.root } else { x11rb::NONE };
        self.conn
            .xtest_fake_input(kind, detail, CURRENT_TIME, root, x, y, 0)
            .map_err(DesktopError::x11("send input"))?;
        Ok(())
    }

    fn settle(&self) -> DesktopResult<()> {
        self.conn.sync().map_err(DesktopError::x11("send input"))
    }

    fn motion(&self, x: i16, y: i16) -> DesktopResult<()> {
        self.fake(MOTION_NOTIFY_EVENT, 0, x, y)
    }

    /// Moves the pointer to `x,y`.
    pub fn move_pointer(&self, x: i16, y: i16) -> DesktopResult<()> {
        let _input = self.input.lock();
        self.motion(x, y)?;
        self.settle()
    }

    /// Moves to `x,y` and clicks `button` `clicks` times in a row.
    pub fn click(&self, x: i16, y: i16, button: Button, clicks: u8) -> DesktopResult<()> {
        let _input = self.input.lock();
        self.motion(x, y)?;
        for _ in 0..clicks {
            self.fake(BUTTON_PRESS_EVENT, button, 0, 0)?;
            self.fake(BUTTON_RELEASE_EVENT, button, 0, 0)?;
        }
        self.settle()
    }

    /// Presses (`down`) or releases `button`, after moving to `at` when given.
    pub fn button(&self, button: Button, down: bool, at: Option<(i16, i16)>) -> DesktopResult<()> {
        let _input = self.input.lock();
        if let Some((x, y)) = at {
            self.motion(x, y)?;
        }
        self.fake(if down { BUTTON_PRESS_EVENT } else { BUTTON_RELEASE_EVENT }, button, 0, 0)?;
        self.settle()
    }

    /// Presses `button` at `from`, moves to `to` in steps, releases it there.
    pub fn drag(&self, from: (i16, i16), to: (i16, i16), button: Button) -> DesktopResult<()> {
        let _input = self.input.lock();
        self.motion(from.0, from.1)?;
        self.fake(BUTTON_PRESS_EVENT, button, 0, 0)?;
        let (dx, dy) = (i32::from(to.0) - i32::from(from.0), i32::from(to.1) - i32::from(from.1));
        for step in 1..=DRAG_STEPS {
            let x = i32::from(from.0) + dx * step / DRAG_STEPS;
            let y = i32::from(from.1) + dy * step / DRAG_STEPS;
            self.motion(clamp16(x), clamp16(y))?;
        }
        self.fake(BUTTON_RELEASE_EVENT, button, 0, 0)?;
        self.settle()
    }

    /// Moves to `x,y` and turns the wheel `amount` steps (`wheel` is button 4–7).
    pub fn scroll(&self, x: i16, y: i16, wheel: Button, amount: u32) -> DesktopResult<()> {
        let _input = self.input.lock();
        self.motion(x, y)?;
        for _ in 0..amount {
            self.fake(BUTTON_PRESS_EVENT, wheel, 0, 0)?;
            self.fake(BUTTON_RELEASE_EVENT, wheel, 0, 0)?;
        }
        self.settle()
    }

    /// The pointer position on the root window.
    pub fn pointer(&self) -> DesktopResult<(i16, i16)> {
        let reply = self
            .conn
            .query_pointer(self.root)
            .map_err(DesktopError::x11("read the pointer"))?
            .reply()
            .map_err(DesktopError::x11("read the pointer"))?;
        Ok((reply.root_x, reply.root_y))
    }

    fn keymap(&self) -> DesktopResult<Keymap> {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(DesktopError::x11("read the keyboard map"))?
            .reply()
            .map_err(DesktopError::x11("read the keyboard map"))?;
        Ok(Keymap::new(min, reply.keysyms_per_keycode, reply.keysyms))
    }

    /// Types `text` character by character.
    pub fn type_text(&self, text: &str) -> DesktopResult<()> {
        let mut keysyms = Vec::with_capacity(text.len());
        for c in text.chars() {
            if c == '\r' {
                continue;
            }
            keysyms.push(keysym::char_keysym(c).ok_or_else(|| {
                DesktopError::invalid(format!("cannot type {c:?} (U+{:04X}): no X keysym stands for it", c as u32))
            })?);
        }
        let mut scratch = self.input.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut rest = keysyms.as_slice();
        while !rest.is_empty() {
            let keymap = self.keymap()?;
            scratch.refresh(&keymap);
            let (plan, done) = scratch.plan(&keymap, rest);
            if done == 0 {
                return Err(DesktopError::X11 {
                    what: "type text".into(),
                    message: "the keyboard map has no keycode left to bind a character to".into(),
                });
            }
            self.bind(&keymap, &plan.bind)?;
            let shift = shift_keycode(&keymap, &plan.strokes)?;
            for stroke in &plan.strokes {
                self.stroke(*stroke, shift, true)?;
                self.stroke(*stroke, shift, false)?;
            }
            self.settle()?;
            rest = &rest[done..];
        }
        Ok(())
    }

    /// Holds `keysyms` in order and releases them in reverse (`ctrl+s`; a single key is a key press).
    pub fn key_combo(&self, keysyms: &[u32]) -> DesktopResult<()> {
        let mut scratch = self.input.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let keymap = self.keymap()?;
        scratch.refresh(&keymap);
        let (plan, done) = scratch.plan(&keymap, keysyms);
        if done < keysyms.len() {
            return Err(DesktopError::invalid("too many keys in one combination that the keyboard map lacks"));
        }
        self.bind(&keymap, &plan.bind)?;
        let shift = shift_keycode(&keymap, &plan.strokes)?;
        for stroke in &plan.strokes {
            self.stroke(*stroke, shift, true)?;
        }
        for stroke in plan.strokes.iter().rev() {
            self.stroke(*stroke, shift, false)?;
        }
        self.settle()
    }

    /// Presses or releases one key, with Shift pressed before it (or released after it) when needed.
    fn stroke(&self, stroke: Stroke, shift: Option<u8>, down: bool) -> DesktopResult<()> {
        let shift = shift.filter(|_| stroke.shift);
        if let (true, Some(shift)) = (down, shift) {
            self.fake(KEY_PRESS_EVENT, shift, 0, 0)?;
        }
        self.fake(if down { KEY_PRESS_EVENT } else { KEY_RELEASE_EVENT }, stroke.keycode, 0, 0)?;
        if let (false, Some(shift)) = (down, shift) {
            self.fake(KEY_RELEASE_EVENT, shift, 0, 0)?;
        }
        Ok(())
    }

    /// Binds spare keycodes to keysyms the map lacks (every level, so Shift does not matter).
    fn bind(&self, keymap: &Keymap, bindings: &[(u8, u32)]) -> DesktopResult<()> {
        for &(keycode, keysym) in bindings {
            let per = keymap.per_keycode();
            let syms = vec![keysym; usize::from(per)];
            self.conn.change_keyboard_mapping(1, keycode, per, &syms).map_err(DesktopError::x11("bind a keycode"))?;
        }
        Ok(())
    }
}

/// The Shift keycode, when a stroke needs it.
fn shift_keycode(keymap: &Keymap, strokes: &[Stroke]) -> DesktopResult<Option<u8>> {
    if !strokes.iter().any(|s| s.shift) {
        return Ok(None);
    }
    match keymap.find(SHIFT_L) {
        Some(stroke) => Ok(Some(stroke.keycode)),
        None => {
            Err(DesktopError::X11 { what: "press shift".into(), message: "the keyboard map has no Shift_L".into() })
        }
    }
}

fn clamp16(value: i32) -> i16 {
    i16::try_from(value.clamp(i32::from(i16::MIN), i32::from(i16::MAX))).unwrap_or(0)
}
