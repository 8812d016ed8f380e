//! Template recipes: the declarative `recipe.json` plus the hook and helper files it ships, embedded in
//! the binary so an installed server can build its templates anywhere.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::TemplateError;

/// Name (id) of the template every sandbox gets by default.
pub const BASE_TEMPLATE: &str = "base";

/// One file of a recipe: its path relative to the recipe directory and its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeFile {
    /// Path relative to the recipe directory, e.g. `files/mount-s3.sh`.
    pub path: &'static str,
    /// The file's text.
    pub content: &'static str,
    /// Whether the file is written with mode 0755.
    pub executable: bool,
}

const BASE_FILES: &[RecipeFile] = &[
    RecipeFile { path: "recipe.json", content: include_str!("../../../../images/base/recipe.json"), executable: false },
    RecipeFile {
        path: "customize.sh",
        content: include_str!("../../../../images/base/customize.sh"),
        executable: true,
    },
    RecipeFile {
        path: "files/mount-s3.sh",
        content: include_str!("../../../../images/base/files/mount-s3.sh"),
        executable: true,
    },
    RecipeFile {
        path: "files/mount-gcs.sh",
        content: include_str!("../../../../images/base/files/mount-gcs.sh"),
        executable: true,
    },
];

/// A parsed recipe together with the files it was parsed from.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The parsed `recipe.json`.
    pub spec: RecipeSpec,
    /// Every file of the recipe, `recipe.json` included; all of them are hashed.
    pub files: Vec<RecipeFile>,
}

/// The content of `recipe.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    /// Template id; must match the name the recipe is embedded under.
    pub name: String,
    /// One line shown in template listings.
    pub description: String,
    /// Debian suite, e.g. `bookworm`.
    pub suite: String,
    /// mmdebstrap variant, e.g. `minbase`.
    pub variant: String,
    /// Archive components, e.g. `main`.
    pub components: Vec<String>,
    /// Packages installed on top of the variant.
    pub packages: Vec<String>,
    /// Path (within the recipe) of the script run as mmdebstrap's customize hook.
    pub customize: String,
    /// dpkg `path-exclude` globs: files never unpacked (docs, man pages, locales).
    #[serde(default)]
    pub path_exclude: Vec<String>,
    /// dpkg `path-include` globs that win over `path_exclude` (e.g. copyright files).
    #[serde(default)]
    pub path_include: Vec<String>,
    /// User processes run as unless the request says otherwise.
    pub default_user: String,
    /// Working directory of processes unless the request says otherwise.
    pub default_cwd: String,
    /// Environment of every process in the sandbox.
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
}

impl Recipe {
    /// The embedded recipe of the `base` template.
    pub fn base() -> Result<Self, TemplateError> {
        Self::from_files(BASE_TEMPLATE, BASE_FILES)
    }

    /// Parses and checks a recipe from its files; `recipe.json` must be one of them.
    pub fn from_files(name: &str, files: &[RecipeFile]) -> Result<Self, TemplateError> {
        let invalid = |reason: String| TemplateError::Recipe { name: name.to_owned(), reason };
        let manifest =
            files.iter().find(|f| f.path == "recipe.json").ok_or_else(|| invalid("recipe.json is missing".into()))?;
        let spec: RecipeSpec =
            serde_json::from_str(manifest.content).map_err(|e| invalid(format!("recipe.json: {e}")))?;
        if spec.name != name {
            return Err(invalid(format!("recipe.json names template `{}`", spec.name)));
        }
        let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.:_".contains(c));
        for (what, value) in [("suite", &spec.suite), ("variant", &spec.variant)] {
            if !word(value) {
                return Err(invalid(format!("{what} `{value}` is not a plain word")));
            }
        }
        if let Some(bad) = spec.packages.iter().chain(&spec.components).find(|p| !word(p)) {
            return Err(invalid(format!("`{bad}` is not a valid package or component name")));
        }
        if spec.components.is_empty() {
            return Err(invalid("components is empty".into()));
        }
        if !files.iter().any(|f| f.path == spec.customize) {
            return Err(invalid(format!("customize hook `{}` is not part of the recipe", spec.customize)));
        }
        if !spec.default_cwd.starts_with('/') {
            return Err(invalid(format!("default_cwd `{}` is not absolute", spec.default_cwd)));
        }
        Ok(Self { spec, files: files.to_vec() })
    }

    /// sha256 (hex) over every recipe file, path and content, in path order; any change to the recipe
    /// changes it, and nothing else does.
    pub fn hash(&self) -> String {
        let mut files: Vec<&RecipeFile> = self.files.iter().collect();
        files.sort_by_key(|f| f.path);
        let mut hasher = Sha256::new();
        for file in files {
            for part in [file.path.as_bytes(), file.content.as_bytes()] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            hasher.update([u8::from(file.executable)]);
        }
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_recipe_parses() {
        let recipe = Recipe::base().expect("embedded base recipe");
        let spec = &recipe.spec;
        assert_eq!(spec.name, "base");
        assert_eq!(spec.suite, "bookworm");
        assert_eq!(spec.variant, "minbase");
        assert_eq!(spec.default_user, "root");
        assert_eq!(spec.default_cwd, "/workspace");
        assert_eq!(spec.envs.get("LANG").map(String::as_str), Some("C.UTF-8"));
        for needed in ["bash", "python3", "git", "sudo", "openssh-client", "s3fs", "findutils", "debianutils"] {
            assert!(spec.packages.iter().any(|p| p == needed), "base recipe lacks {needed}");
        }
    }

    #[test]
    fn hash_is_stable_and_covers_every_file() {
        let a = Recipe::base().expect("recipe");
        let b = Recipe::base().expect("recipe");
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);

        // Order of files does not matter.
        let mut reversed = a.clone();
        reversed.files.reverse();
        assert_eq!(a.hash(), reversed.hash());

        // Any content change, in any file, changes the hash.
        for i in 0..a.files.len() {
            let mut changed = a.clone();
            let content = format!("{}\n", changed.files[i].content);
            changed.files[i].content = Box::leak(content.into_boxed_str());
            assert_ne!(a.hash(), changed.hash(), "{} not covered", a.files[i].path);
        }

        // Moving bytes between path and content changes it too (length-prefixed).
        let x = [RecipeFile { path: "ab", content: "c", executable: false }];
        let y = [RecipeFile { path: "a", content: "bc", executable: false }];
        let hash = |files: &[RecipeFile]| Recipe { spec: a.spec.clone(), files: files.to_vec() }.hash();
        assert_ne!(hash(&x), hash(&y));
    }

    #[test]
    fn invalid_recipes_are_rejected() {
        let manifest = |json: &'static str| {
            vec![
                RecipeFile { path: "recipe.json", content: json, executable: false },
                RecipeFile { path: "hook.sh", content: "", executable: true },
            ]
        };
        let ok = r#"{"name":"t","description":"","suite":"bookworm","variant":"minbase","components":["main"],
            "packages":["bash"],"customize":"hook.sh","default_user":"root","default_cwd":"/workspace"}"#;
        assert!(Recipe::from_files("t", &manifest(ok)).is_ok());
        assert!(Recipe::from_files("other", &manifest(ok)).is_err());
        assert!(Recipe::from_files("t", &manifest("{")).is_err());
        let bad_package = r#"{"name":"t","description":"","suite":"bookworm","variant":"minbase",
            "components":["main"],"packages":["bash; rm -rf /"],"customize":"hook.sh","default_user":"root",
            "default_cwd":"/workspace"}"#;
        assert!(Recipe::from_files("t", &manifest(bad_package)).is_err());
        let missing_hook = r#"{"name":"t","description":"","suite":"bookworm","variant":"minbase",
            "components":["main"],"packages":[],"customize":"nope.sh","default_user":"root","default_cwd":"/w"}"#;
        assert!(Recipe::from_files("t", &manifest(missing_hook)).is_err());
        let unknown_field = r#"{"name":"t","description":"","suite":"bookworm","variant":"minbase",
            "components":["main"],"packages":[],"customize":"hook.sh","default_user":"root","default_cwd":"/w",
            "surprise":1}"#;
        assert!(Recipe::from_files("t", &manifest(unknown_field)).is_err());
    }
}
