//! Boot: read the node's configuration, prepare the default cwd (and, when running as the sandbox's
//! PID 1, the login-shell environment and the sandbox's own SSH host keys), bind the control socket,
//! then serve until SIGTERM while reaping.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nullspace_types::guest::{GuestConfig, GUEST_CONFIG_NAME, GUEST_ENVS_PATH, GUEST_QUIESCED_NAME, GUEST_SOCKET_NAME};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::exec::registry::Registry;
use crate::routes::router::router;
use crate::state::Sandbox;
use crate::uploads::store::{Uploads, SWEEP_INTERVAL};

/// Where the sandbox's login shells pick up the sandbox environment.
pub const PROFILE_SCRIPT: &str = "/etc/profile.d/nullspace-env.sh";

/// How guestd was started.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Directory holding `config.json` and the socket.
    pub control_dir: PathBuf,
    /// Whether to write [`PROFILE_SCRIPT`] and generate missing SSH host keys (only inside a sandbox).
    pub write_profile: bool,
    /// Where upload sessions are staged (hidden from file watches).
    pub staging_dir: PathBuf,
}

/// What can stop guestd from serving.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The configuration cannot be read.
    #[error("cannot read the boot configuration {path}")]
    ReadConfig {
        /// Its path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not valid JSON of the expected shape.
    #[error("invalid boot configuration {path}")]
    ParseConfig {
        /// Its path.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The socket cannot be bound.
    #[error("cannot listen on {path}")]
    Bind {
        /// Its path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving the guest socket failed")]
    Serve(#[source] std::io::Error),
}

/// Reads the boot configuration from `control_dir`.
pub fn load_config(control_dir: &Path) -> Result<GuestConfig, BootError> {
    let path = control_dir.join(GUEST_CONFIG_NAME);
    let bytes = std::fs::read(&path).map_err(|source| BootError::ReadConfig { path: path.clone(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| BootError::ParseConfig { path, source })
}

/// The unprivileged account of the templates (`/home/user`): the default working directory is theirs too.
const WORKING_USER: &str = "user";

/// Creates the default working directory when missing. The directories created here are given to
/// [`WORKING_USER`] (when the sandbox has that account), so that the cwd is writable both by root and by
/// files requests made as `user`, which run with that user's own permissions. Existing directories keep
/// their owner. Runs before anything of the sandbox's user does, on components it just created (`lchown`).
pub fn prepare_cwd(cwd: &Path, users: &crate::users::UserDb) -> std::io::Result<()> {
    let missing: Vec<&Path> = cwd.ancestors().take_while(|dir| std::fs::symlink_metadata(dir).is_err()).collect();
    std::fs::create_dir_all(cwd)?;
    if let Ok(user) = users.lookup(WORKING_USER) {
        for dir in missing {
            std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid))?;
        }
    }
    Ok(())
}

/// Boots and serves until SIGTERM/SIGINT.
pub async fn run(options: BootOptions) -> Result<(), BootError> {
    let config = load_config(&options.control_dir)?;
    let registry = Arc::new(Registry::default());
    let uploads = Arc::new(Uploads::open(options.staging_dir.clone()));
    let sandbox = Sandbox::new(config, registry.clone(), uploads.clone());
    let reaper = tokio::spawn(crate::reaper::run(registry.clone()));
    if let Err(error) = prepare_cwd(Path::new(&*sandbox.cwd()), &crate::users::UserDb::default()) {
        tracing::warn!(cwd = %sandbox.cwd(), %error, "cannot create the default working directory");
    }
    if options.write_profile {
        if let Err(error) = write_profile(Path::new(PROFILE_SCRIPT), &sandbox.envs()) {
            tracing::warn!(path = PROFILE_SCRIPT, %error, "cannot write the login-shell environment");
        }
        if let Err(error) = write_envs_file(Path::new(GUEST_ENVS_PATH), &sandbox.envs()) {
            tracing::warn!(path = GUEST_ENVS_PATH, %error, "cannot write the sandbox environment file");
        }
        crate::host_keys::ensure(&sandbox).await;
    }
    let socket = options.control_dir.join(GUEST_SOCKET_NAME);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|source| BootError::Bind { path: socket.clone(), source })?;
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            let uploads = uploads.clone();
            let _ = tokio::task::spawn_blocking(move || uploads.sweep()).await;
        }
    });
    let ptys = sandbox.ptys().clone();
    tracing::info!(sandbox = sandbox.id(), socket = %socket.display(), cwd = %sandbox.cwd(), "guest ready");

    let served = serve(listener, router(sandbox), &socket, &options.control_dir).await;
    tracing::info!("shutting down");
    ptys.kill_all();
    registry.terminate_all();
    reaper.abort();
    sweeper.abort();
    let _ = std::fs::remove_file(&socket);
    served
}

/// How long open HTTP connections get to finish once a checkpoint asks the guest to quiesce.
const QUIESCE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves `app` on `listener` until SIGTERM/SIGINT. SIGUSR1 quiesces before a memory checkpoint: the
/// listener and the HTTP connections are closed (gVisor cannot save a socket bound on the host), the
/// socket file is removed and [`GUEST_QUIESCED_NAME`] is written; SIGUSR2, sent after the restore, binds
/// the socket again (in the control dir of the restored sandbox, which may be another one).
async fn serve(
    mut listener: UnixListener,
    app: axum::Router,
    socket: &Path,
    control_dir: &Path,
) -> Result<(), BootError> {
    let (Ok(mut quiesce), Ok(mut wake)) = (signal(SignalKind::user_defined1()), signal(SignalKind::user_defined2()))
    else {
        tracing::warn!("cannot watch SIGUSR1/SIGUSR2; memory checkpoints will fail");
        return tokio::select! {
            result = axum::serve(listener, app).into_future() => result.map_err(BootError::Serve),
            () = shutdown_signal() => Ok(()),
        };
    };
    let marker = control_dir.join(GUEST_QUIESCED_NAME);
    loop {
        let stop = tokio_util::sync::CancellationToken::new();
        let serving = axum::serve(listener, app.clone()).with_graceful_shutdown(stop.clone().cancelled_owned());
        let mut serving = std::pin::pin!(serving.into_future());
        tokio::select! {
            result = &mut serving => return result.map_err(BootError::Serve),
            () = shutdown_signal() => return Ok(()),
            _ = quiesce.recv() => {}
        }
        stop.cancel();
        // The listener closes at once; open requests get a moment to finish, what remains is dropped.
        let _ = tokio::time::timeout(QUIESCE_WAIT, &mut serving).await;
        let _ = std::fs::remove_file(socket);
        if let Err(error) = std::fs::write(&marker, b"") {
            tracing::warn!(path = %marker.display(), %error, "cannot write the quiesce marker");
        }
        tracing::info!("quiesced for a checkpoint");
        tokio::select! {
            _ = wake.recv() => {}
            () = shutdown_signal() => return Ok(()),
        }
        let _ = std::fs::remove_file(&marker);
        let _ = std::fs::remove_file(socket);
        listener =
            UnixListener::bind(socket).map_err(|source| BootError::Bind { path: socket.to_path_buf(), source })?;
        tracing::info!(socket = %socket.display(), "listening again after a restore");
    }
}

async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot watch SIGTERM; stop guestd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Writes the sandbox environment as a shell script sourced by login shells (Debian's /etc/profile
/// resets PATH and sources /etc/profile.d/*.sh afterwards).
pub fn write_profile(path: &Path, envs: &std::collections::BTreeMap<String, String>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, profile_script(envs))
}

/// Writes the sandbox environment as JSON for services in the sandbox (see [`GUEST_ENVS_PATH`]): to a
/// temporary file then renamed, so a reader never sees half of it; mode 0600.
pub fn write_envs_file(path: &Path, envs: &std::collections::BTreeMap<String, String>) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let temporary = dir.join(format!(".envs.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(&serde_json::to_vec(envs).map_err(std::io::Error::other)?)?;
    drop(file);
    std::fs::rename(&temporary, path)
}

/// The script text: one `export KEY='value'` per valid variable name.
pub fn profile_script(envs: &std::collections::BTreeMap<String, String>) -> String {
    let mut script =
        String::from("# Written by nullspace-guestd at boot: the sandbox environment, for login shells too.\n");
    for (key, value) in envs {
        let valid = key.chars().next().is_some_and(|first| first == '_' || first.is_ascii_alphabetic())
            && key.chars().all(|ch| ch == '_' || ch.is_ascii_alphanumeric());
        if valid {
            script.push_str(&format!("export {key}='{}'\n", value.replace('\'', r"'\''")));
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_environment_file_is_json_for_root_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("envs.json");
        let envs = BTreeMap::from([("A".to_owned(), "it's \"quoted\"".to_owned())]);
        write_envs_file(&path, &envs).unwrap();
        let read: BTreeMap<String, String> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, envs);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        write_envs_file(&path, &BTreeMap::new()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }

    #[test]
    fn profile_script_quotes_values_and_skips_bad_names() {
        let envs = BTreeMap::from([
            ("GOOD".to_owned(), "it's $HOME".to_owned()),
            ("1BAD".to_owned(), "x".to_owned()),
            ("ALSO-BAD".to_owned(), "x".to_owned()),
        ]);
        let script = profile_script(&envs);
        assert!(script.contains("export GOOD='it'\\''s $HOME'\n"));
        assert!(!script.contains("BAD"));
    }

    #[test]
    fn profile_script_survives_sh() {
        let envs = BTreeMap::from([("V".to_owned(), "a'b \"c\" $d `e`".to_owned())]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env.sh");
        write_profile(&path, &envs).unwrap();
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". {}; printf %s \"$V\"", path.display()))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "a'b \"c\" $d `e`");
    }

    #[test]
    fn a_created_cwd_belongs_to_the_working_user_and_existing_dirs_keep_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::getuid().as_raw();
        let passwd = dir.path().join("passwd");
        // The working user is this test's own uid (chown to it needs no privilege).
        std::fs::write(&passwd, format!("user:x:{me}:{me}::/home/user:/bin/sh\n")).unwrap();
        let group = dir.path().join("group");
        std::fs::write(&group, "").unwrap();
        let users = crate::users::UserDb::at(&passwd, &group);
        let cwd = dir.path().join("a/b");
        prepare_cwd(&cwd, &users).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&cwd).unwrap().uid(), me);
        assert_eq!(std::fs::metadata(dir.path().join("a")).unwrap().uid(), me);
        // An existing cwd is left alone; a sandbox without the account still gets its cwd.
        prepare_cwd(&cwd, &crate::users::UserDb::at(&group, &group)).unwrap();
        let other = dir.path().join("c");
        prepare_cwd(&other, &crate::users::UserDb::at(&group, &group)).unwrap();
        assert!(other.is_dir());
    }

    #[test]
    fn config_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load_config(dir.path()), Err(BootError::ReadConfig { .. })));
        std::fs::write(dir.path().join(GUEST_CONFIG_NAME), "{not json").unwrap();
        assert!(matches!(load_config(dir.path()), Err(BootError::ParseConfig { .. })));
        std::fs::write(dir.path().join(GUEST_CONFIG_NAME), r#"{"sandbox_id":"sb_1","cwd":"/w"}"#).unwrap();
        assert_eq!(load_config(dir.path()).unwrap().sandbox_id, "sb_1");
    }
}
