//! Desktop entries (`NAME.desktop`): where they are looked up (`$XDG_DATA_HOME/applications`, then each
//! of `$XDG_DATA_DIRS`), and what launching one runs: its `Exec` line split and its field codes filled
//! with the URI by the `freedesktop-desktop-entry` crate, in its `Path`; or, for a `Link` entry, its URL
//! opened.

use std::path::{Path, PathBuf};

use freedesktop_desktop_entry::DesktopEntry;

/// What launching an entry does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryLaunch {
    /// Run this command line, in this directory when given.
    Exec {
        /// Program and arguments.
        argv: Vec<String>,
        /// The entry's `Path`.
        cwd: Option<PathBuf>,
    },
    /// Open this URL (a `Type=Link` entry).
    Open(String),
}

/// The `applications` directories to search, most important first.
pub fn search_dirs(data_home: Option<&str>, home: Option<&str>, data_dirs: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    match (data_home.filter(|d| !d.is_empty()), home.filter(|h| !h.is_empty())) {
        (Some(data_home), _) => dirs.push(PathBuf::from(data_home)),
        (None, Some(home)) => dirs.push(Path::new(home).join(".local/share")),
        (None, None) => {}
    }
    let data_dirs = data_dirs.filter(|d| !d.is_empty()).unwrap_or("/usr/local/share:/usr/share");
    dirs.extend(data_dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from));
    dirs.into_iter().map(|dir| dir.join("applications")).collect()
}

/// The file of entry `name` (`mousepad`, `org.xfce.mousepad.desktop`): `NAME.desktop` in the first
/// directory holding it, else the one entry whose id ends in `.NAME` (so `mousepad` finds
/// `org.xfce.mousepad.desktop`). An error says what was wrong or searched.
pub fn find(name: &str, dirs: &[PathBuf]) -> Result<Option<PathBuf>, String> {
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err(format!(
            "desktop_entry {name:?} is not a desktop file id; send a name such as \"mousepad\" or \
             \"org.xfce.mousepad.desktop\""
        ));
    }
    let file = if name.ends_with(".desktop") { name.to_owned() } else { format!("{name}.desktop") };
    if let Some(path) = dirs.iter().map(|dir| dir.join(&file)).find(|path| path.is_file()) {
        return Ok(Some(path));
    }
    let suffix = format!(".{}", file.to_lowercase());
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut matches = entries.filter_map(Result::ok).map(|entry| entry.path()).filter(|path| {
            path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.to_lowercase().ends_with(&suffix))
        });
        if let (Some(only), None) = (matches.next(), matches.next()) {
            return Ok(Some(only));
        }
    }
    Ok(None)
}

/// What launching the entry in `contents` (read from `path`) with `uri` runs.
pub fn launch_of(path: &Path, contents: &str, uri: Option<&str>) -> Result<EntryLaunch, String> {
    let locales: [&str; 0] = [];
    let entry = DesktopEntry::from_str(path, contents, Some(&locales[..]))
        .map_err(|error| format!("{} is not a valid desktop entry: {error}", path.display()))?;
    if entry.type_() == Some("Link") {
        return entry
            .url()
            .map(|url| EntryLaunch::Open(url.to_owned()))
            .ok_or_else(|| format!("{} is a link without URL", path.display()));
    }
    if entry.terminal() {
        return Err(format!(
            "{} runs in a terminal (Terminal=true); launch its command with mode executable",
            path.display()
        ));
    }
    let exec = entry.exec().unwrap_or_default();
    // %f and %F take local paths: a file:// URI is given as its path.
    let wants_file = exec.split_whitespace().any(|arg| arg == "%f" || arg == "%F");
    let uri = uri.map(|uri| match uri.strip_prefix("file://") {
        Some(path) if wants_file => path.to_owned(),
        _ => uri.to_owned(),
    });
    let uris: Vec<&str> = uri.as_deref().into_iter().collect();
    let argv = entry
        .parse_exec_with_uris(&uris, &locales)
        .map_err(|error| format!("the Exec line of {} cannot be run: {error}", path.display()))?;
    let cwd = entry.path().filter(|p| !p.is_empty()).map(PathBuf::from);
    Ok(EntryLaunch::Exec { argv, cwd })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(exec: &str, uri: Option<&str>) -> Result<EntryLaunch, String> {
        let contents = format!("[Desktop Entry]\nType=Application\nName=Editor\nExec={exec}\n");
        launch_of(Path::new("/usr/share/applications/editor.desktop"), &contents, uri)
    }

    fn argv(exec: &str, uri: Option<&str>) -> Vec<String> {
        match launch(exec, uri).unwrap() {
            EntryLaunch::Exec { argv, .. } => argv,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_codes_take_the_uri_or_vanish() {
        assert_eq!(argv("mousepad %U", Some("/workspace/a.txt")), ["mousepad", "/workspace/a.txt"]);
        assert_eq!(argv("mousepad %U", None), ["mousepad"]);
        assert_eq!(argv("chromium %u", Some("https://example.com")), ["chromium", "https://example.com"]);
        assert_eq!(argv("viewer %f", Some("file:///workspace/b.png")), ["viewer", "/workspace/b.png"]);
        assert_eq!(argv("browser %U", Some("file:///workspace/b.html")), ["browser", "file:///workspace/b.html"]);
        assert_eq!(argv("app --name %c", None), ["app", "--name", "Editor"]);
    }

    #[test]
    fn quoting_follows_the_specification() {
        assert_eq!(argv(r#""/opt/My App/run" --flag "%u literal""#, None), ["/opt/My App/run", "--flag", "%u literal"]);
    }

    #[test]
    fn links_open_their_url_and_terminal_entries_are_refused() {
        let link = "[Desktop Entry]\nType=Link\nName=Docs\nURL=https://example.com/docs\n";
        assert_eq!(
            launch_of(Path::new("docs.desktop"), link, None),
            Ok(EntryLaunch::Open("https://example.com/docs".into()))
        );
        let terminal = "[Desktop Entry]\nType=Application\nName=Top\nExec=top\nTerminal=true\n";
        assert!(launch_of(Path::new("top.desktop"), terminal, None).unwrap_err().contains("Terminal=true"));
        assert!(launch("", None).unwrap_err().contains("cannot be run"));
    }

    #[test]
    fn the_search_path_follows_xdg_defaults() {
        assert_eq!(
            search_dirs(None, Some("/root"), None),
            [
                PathBuf::from("/root/.local/share/applications"),
                PathBuf::from("/usr/local/share/applications"),
                PathBuf::from("/usr/share/applications")
            ]
        );
        assert_eq!(
            search_dirs(Some("/d"), Some("/root"), Some("/x")),
            [PathBuf::from("/d/applications"), PathBuf::from("/x/applications")]
        );
    }

    #[test]
    fn entries_are_found_by_id_or_by_their_last_name_part() {
        let dir = tempfile::tempdir().unwrap();
        let apps = dir.path().join("applications");
        std::fs::create_dir_all(&apps).unwrap();
        std::fs::write(apps.join("org.xfce.mousepad.desktop"), "[Desktop Entry]\n").unwrap();
        let dirs = vec![apps.clone()];
        assert_eq!(find("org.xfce.mousepad.desktop", &dirs), Ok(Some(apps.join("org.xfce.mousepad.desktop"))));
        assert_eq!(find("org.xfce.mousepad", &dirs), Ok(Some(apps.join("org.xfce.mousepad.desktop"))));
        assert_eq!(find("mousepad", &dirs), Ok(Some(apps.join("org.xfce.mousepad.desktop"))));
        assert_eq!(find("gedit", &dirs), Ok(None));
        assert!(find("../etc/passwd", &dirs).is_err());
        assert!(find("", &dirs).is_err());
    }
}
