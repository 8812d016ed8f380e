//! Checks that the guest daemon binary can run in any root filesystem: it must be a statically linked
//! ELF (no program interpreter), since volume guests run with nothing but the volume as their root and
//! templates need not ship a compatible libc.

use std::path::Path;

/// `PT_INTERP`: the program header naming a dynamic loader.
const PT_INTERP: u32 = 3;

/// Whether the ELF file at `path` names a program interpreter (is dynamically linked). `None` when the
/// file is not a readable 64-bit little-endian ELF.
pub fn has_interpreter(path: &Path) -> Option<bool> {
    let bytes = std::fs::read(path).ok()?;
    interpreter_in(&bytes)
}

fn interpreter_in(bytes: &[u8]) -> Option<bool> {
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(4)? != 2 || *bytes.get(5)? != 1 {
        return None;
    }
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    Some((0..phnum).any(|index| u32_at(phoff + index * phentsize) == Some(PT_INTERP)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_binary_has_an_interpreter() {
        // The test binary itself is dynamically linked on this host.
        let exe = std::env::current_exe().unwrap();
        assert_eq!(has_interpreter(&exe), Some(true));
    }

    #[test]
    fn non_elf_files_are_not_judged() {
        assert_eq!(interpreter_in(b"#!/bin/sh\n"), None);
        assert_eq!(interpreter_in(b""), None);
    }
}
