//! Host writes into directories a sandbox (or a volume guest) can write too, such as a control dir. The
//! node never writes through a name found there: a file is replaced by unlinking the entry (which removes a
//! planted symlink itself, not its target) and creating a new one with `O_CREAT|O_EXCL|O_NOFOLLOW`, which
//! fails on any entry that reappeared in between instead of following it. A directory is made fresh by
//! removing the whole old tree (the standard library's `remove_dir_all` does not follow symlinks).

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `bytes` as a new file `path` (mode 0644), replacing whatever entry had that name.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        // A directory of that name: the create below fails and says so.
        Err(error) if error.raw_os_error() == Some(libc::EISDIR) => {}
        Err(error) => return Err(error),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)
}

/// Makes `dir` an empty directory of the host's, whatever was there (a previous launch's control dir
/// the sandbox wrote into).
pub fn fresh_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"host data").unwrap();
        let control = dir.path().join("control");
        std::fs::create_dir(&control).unwrap();
        let config = control.join("config.json");
        std::os::unix::fs::symlink(&victim, &config).unwrap();
        replace_file(&config, b"{}").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"host data");
        assert!(!std::fs::symlink_metadata(&config).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&config).unwrap(), b"{}");
    }

    #[test]
    fn a_fresh_dir_drops_what_was_planted_and_keeps_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let control = dir.path().join("control");
        std::fs::create_dir(&control).unwrap();
        std::os::unix::fs::symlink(&outside, control.join("link")).unwrap();
        std::fs::write(control.join("config.json"), b"old").unwrap();
        fresh_dir(&control).unwrap();
        assert_eq!(std::fs::read_dir(&control).unwrap().count(), 0);
        assert!(outside.join("keep").exists());
    }
}
