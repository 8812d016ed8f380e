//! Which kernel runs which language: discovers kernelspecs (`<dir>/<name>/kernel.json`) and maps the
//! API's languages (python, javascript, typescript, r, java, bash) to them through one table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jupyter_protocol::JupyterKernelspec;
use jupyter_zmq_client::KernelspecDir;

/// System directories searched for kernelspecs (after `--kernel-dir`, `$JUPYTER_PATH` and the user's).
pub const SYSTEM_KERNEL_DIRS: [&str; 2] = ["/usr/local/share/jupyter/kernels", "/usr/share/jupyter/kernels"];

/// The kernelspec directories in search order: `explicit` (`--kernel-dir`), each `$JUPYTER_PATH` entry's
/// `kernels`, `$HOME/.local/share/jupyter/kernels`, then [`SYSTEM_KERNEL_DIRS`].
pub fn search_path(explicit: &[PathBuf], jupyter_path: Option<&str>, home: Option<&str>) -> Vec<PathBuf> {
    let mut dirs = explicit.to_vec();
    let entries = jupyter_path.unwrap_or_default().split(':').filter(|entry| !entry.is_empty());
    dirs.extend(entries.map(|entry| Path::new(entry).join("kernels")));
    if let Some(home) = home.filter(|home| !home.is_empty()) {
        dirs.push(Path::new(home).join(".local/share/jupyter/kernels"));
    }
    dirs.extend(SYSTEM_KERNEL_DIRS.iter().map(PathBuf::from));
    dirs
}

/// The languages of the API, their aliases and the kernelspec names that serve them, in preference order.
/// A kernelspec whose `language` field names the language serves it too when no listed name exists.
const LANGUAGES: [(&str, &[&str], &[&str]); 6] = [
    ("python", &["python", "python3", "py", "ipython"], &["python3", "python"]),
    ("javascript", &["javascript", "js", "node", "nodejs"], &["javascript", "jslab", "nodejs"]),
    ("typescript", &["typescript", "ts"], &["tslab", "typescript"]),
    ("r", &["r"], &["ir", "r"]),
    ("java", &["java", "jshell"], &["java", "ijava", "jshell"]),
    ("bash", &["bash", "sh", "shell"], &["bash"]),
];

/// The canonical language of `name` (case-insensitive, aliases allowed), if the API knows it.
pub fn canonical_language(name: &str) -> Option<&'static str> {
    let lowered = name.trim().to_ascii_lowercase();
    LANGUAGES.iter().find(|(_, aliases, _)| aliases.contains(&lowered.as_str())).map(|(canonical, _, _)| *canonical)
}

/// Every language the API knows.
pub fn known_languages() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().map(|(canonical, _, _)| *canonical)
}

/// The kernelspecs found at start, by kernel name (the first directory that has a name wins).
#[derive(Debug, Clone, Default)]
pub struct Kernelspecs {
    specs: BTreeMap<String, KernelspecDir>,
    searched: Vec<PathBuf>,
}

impl Kernelspecs {
    /// Reads every `<dir>/<name>/kernel.json` of `dirs`; unreadable ones are skipped with a warning.
    pub fn discover(dirs: &[PathBuf]) -> Self {
        let mut specs = BTreeMap::new();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            let mut names: Vec<_> = entries.flatten().map(|entry| entry.path()).collect();
            names.sort();
            for path in names {
                let Some(name) = path.file_name().and_then(|name| name.to_str()).map(str::to_owned) else { continue };
                if specs.contains_key(&name) {
                    continue;
                }
                match read_spec(&path.join("kernel.json")) {
                    Ok(kernelspec) => {
                        specs.insert(name.clone(), KernelspecDir { kernel_name: name, path, kernelspec });
                    }
                    Err(error) => {
                        if path.is_dir() {
                            tracing::warn!(path = %path.display(), "skipping kernelspec: {error}");
                        }
                    }
                }
            }
        }
        Self { specs, searched: dirs.to_vec() }
    }

    /// The kernelspec serving canonical `language`: the first listed name present, else the first whose
    /// `language` field matches.
    pub fn for_language(&self, language: &str) -> Option<&KernelspecDir> {
        let (_, _, names) = LANGUAGES.iter().find(|(canonical, _, _)| *canonical == language)?;
        names.iter().find_map(|name| self.specs.get(*name)).or_else(|| {
            self.specs.values().find(|spec| canonical_language(&spec.kernelspec.language) == Some(language))
        })
    }

    /// The languages that have a kernel here.
    pub fn available_languages(&self) -> Vec<&'static str> {
        known_languages().filter(|language| self.for_language(language).is_some()).collect()
    }

    /// Names of every kernelspec found.
    pub fn kernel_names(&self) -> Vec<String> {
        self.specs.keys().cloned().collect()
    }

    /// The directories searched.
    pub fn searched(&self) -> &[PathBuf] {
        &self.searched
    }
}

fn read_spec(path: &Path) -> Result<JupyterKernelspec, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let spec: JupyterKernelspec =
        serde_json::from_slice(&bytes).map_err(|error| format!("{} is not a kernelspec: {error}", path.display()))?;
    if spec.argv.is_empty() {
        return Err(format!("{} has an empty argv", path.display()));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_spec(dir: &Path, name: &str, language: &str) {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        let spec = serde_json::json!({"argv": ["k", "{connection_file}"], "display_name": name, "language": language});
        std::fs::write(dir.join(name).join("kernel.json"), spec.to_string()).unwrap();
    }

    #[test]
    fn explicit_dirs_come_first_then_jupyter_path_the_user_and_the_system() {
        let dirs = search_path(&["/k".into()], Some("/a::/b"), Some("/root"));
        let expected = ["/k", "/a/kernels", "/b/kernels", "/root/.local/share/jupyter/kernels"];
        assert_eq!(dirs[..4], expected.map(PathBuf::from));
        assert_eq!(dirs[4..], SYSTEM_KERNEL_DIRS.map(PathBuf::from));
        assert_eq!(search_path(&[], None, None), SYSTEM_KERNEL_DIRS.map(PathBuf::from));
    }

    #[test]
    fn aliases_map_to_canonical_languages() {
        assert_eq!(canonical_language("Python3"), Some("python"));
        assert_eq!(canonical_language(" R "), Some("r"));
        assert_eq!(canonical_language("ts"), Some("typescript"));
        assert_eq!(canonical_language("sh"), Some("bash"));
        assert_eq!(canonical_language("cobol"), None);
    }

    #[test]
    fn kernels_are_found_by_table_name_then_by_their_language_field() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        write_spec(first.path(), "python3", "python");
        write_spec(second.path(), "python3", "other");
        write_spec(second.path(), "ir", "R");
        write_spec(second.path(), "my-node", "javascript");
        std::fs::create_dir_all(second.path().join("broken")).unwrap();
        std::fs::write(second.path().join("broken/kernel.json"), "{").unwrap();
        let specs = Kernelspecs::discover(&[first.path().to_owned(), second.path().to_owned()]);
        assert_eq!(specs.for_language("python").unwrap().path, first.path().join("python3"), "first directory wins");
        assert_eq!(specs.for_language("r").unwrap().kernel_name, "ir");
        assert_eq!(specs.for_language("javascript").unwrap().kernel_name, "my-node");
        assert!(specs.for_language("java").is_none());
        assert_eq!(specs.available_languages(), ["python", "javascript", "r"]);
        assert_eq!(specs.kernel_names(), ["ir", "my-node", "python3"]);
    }
}
