//! Runs one template build: writes the recipe's files next to the target, runs mmdebstrap with the
//! recipe's suite, packages and customize hook, and streams its output to the caller.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::mirrors::MirrorPlan;
use super::recipe::Recipe;
use super::TemplateError;

/// Lines of build output kept for the error message.
const LOG_TAIL_LINES: usize = 25;

/// Builds `recipe` into `build_dir/rootfs`. `build_dir` must exist and be empty; the caller owns it
/// (and removes it on failure). The full output is kept in `log_path`.
pub(super) async fn build_rootfs(
    recipe: &Recipe,
    build_dir: &Path,
    log_path: &Path,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), TemplateError> {
    let name = recipe.spec.name.clone();
    let recipe_dir = build_dir.join("recipe");
    write_recipe_files(recipe, &recipe_dir)?;

    let mirrors = MirrorPlan::from_host(Path::new("/etc/apt"), &recipe.spec.suite, &recipe.spec.components);
    progress(&format!(
        "building template `{name}` ({} {}) from {}: {}",
        recipe.spec.suite,
        recipe.spec.variant,
        if mirrors.from_host { "the host's apt mirrors" } else { "the default Debian mirror" },
        mirrors.lines.join(", ")
    ));

    let mut command = Command::new("mmdebstrap");
    command
        .args(mmdebstrap_args(recipe, &recipe_dir, &build_dir.join("rootfs"), &mirrors))
        .env("NULLSPACE_RECIPE_DIR", &recipe_dir)
        .current_dir(build_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| TemplateError::BuilderMissing { name: name.clone(), source })?;

    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let readers = [
        child.stdout.take().map(|out| tokio::spawn(forward_lines(out, tx.clone()))),
        child.stderr.take().map(|err| tokio::spawn(forward_lines(err, tx.clone()))),
    ];
    drop(tx);

    let mut log = String::new();
    let mut tail = VecDeque::with_capacity(LOG_TAIL_LINES);
    while let Some(line) = rx.recv().await {
        progress(&line);
        log.push_str(&line);
        log.push('\n');
        if tail.len() == LOG_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    let status = child.wait().await.map_err(|e| TemplateError::io("wait for mmdebstrap building", build_dir, e))?;
    tokio::fs::write(log_path, &log).await.map_err(|e| TemplateError::io("write", log_path, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(TemplateError::Build {
            name,
            status: status.to_string(),
            log_tail: Vec::from(tail).join("\n"),
            log: log_path.to_owned(),
        })
    }
}

/// The mmdebstrap command line for `recipe`, minus the program name.
pub(super) fn mmdebstrap_args(recipe: &Recipe, recipe_dir: &Path, target: &Path, mirrors: &MirrorPlan) -> Vec<String> {
    let spec = &recipe.spec;
    let mut args = vec![
        format!("--variant={}", spec.variant),
        format!("--components={}", spec.components.join(",")),
        "--format=directory".to_owned(),
    ];
    if !spec.packages.is_empty() {
        args.push(format!("--include={}", spec.packages.join(",")));
    }
    args.extend(mirrors.apt_options.iter().map(|o| format!("--aptopt={o}")));
    args.extend(spec.path_exclude.iter().map(|p| format!("--dpkgopt=path-exclude={p}")));
    args.extend(spec.path_include.iter().map(|p| format!("--dpkgopt=path-include={p}")));
    let hook = recipe_dir.join(&spec.customize);
    args.push(format!("--customize-hook=sh {} \"$1\"", shell_quote(&hook.to_string_lossy())));
    args.push("--".to_owned());
    args.push(spec.suite.clone());
    args.push(target.to_string_lossy().into_owned());
    args.extend(mirrors.lines.iter().cloned());
    args
}

fn write_recipe_files(recipe: &Recipe, dir: &Path) -> Result<(), TemplateError> {
    for file in &recipe.files {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TemplateError::io("create", parent, e))?;
        }
        std::fs::write(&path, file.content).map_err(|e| TemplateError::io("write", &path, e))?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| TemplateError::io("set permissions of", &path, e))?;
    }
    Ok(())
}

async fn forward_lines(stream: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<String>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            break;
        }
    }
}

/// Quotes `s` for `sh` as one word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_carries_recipe_mirrors_and_a_quoted_hook() {
        let recipe = Recipe::base().expect("recipe");
        let mirrors = MirrorPlan {
            lines: vec!["deb http://m/debian bookworm main".into()],
            apt_options: vec!["Acquire::http::Proxy \"http://p:3128\";".into()],
            from_host: true,
        };
        let args = mmdebstrap_args(&recipe, Path::new("/data dir/it's/recipe"), Path::new("/t/rootfs"), &mirrors);
        assert!(args.contains(&"--variant=minbase".to_owned()));
        assert!(args.iter().any(|a| a.starts_with("--include=") && a.contains("python3") && a.contains("s3fs")));
        assert!(args.contains(&"--aptopt=Acquire::http::Proxy \"http://p:3128\";".to_owned()));
        assert!(args.contains(&"--customize-hook=sh '/data dir/it'\\''s/recipe/customize.sh' \"$1\"".to_owned()));
        let tail: Vec<&str> = args.iter().rev().take(3).rev().map(String::as_str).collect();
        assert_eq!(tail, ["bookworm", "/t/rootfs", "deb http://m/debian bookworm main"]);
    }

    #[test]
    fn recipe_files_are_written_with_modes() {
        let dir = std::env::temp_dir().join(format!("nullspace-recipe-files-{}", std::process::id()));
        let recipe = Recipe::base().expect("recipe");
        write_recipe_files(&recipe, &dir).expect("write");
        let mode = |p: &str| std::fs::metadata(dir.join(p)).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode("customize.sh"), 0o755);
        assert_eq!(mode("files/mount-s3.sh"), 0o755);
        assert_eq!(mode("recipe.json"), 0o644);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
