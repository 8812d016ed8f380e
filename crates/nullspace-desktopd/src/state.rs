//! The daemon's shared state: the settings, the running desktop (X server, window manager, the shared
//! X connection), the clipboard owner, the launcher and the recordings; and the one way handlers run
//! X requests (on the blocking pool, refused once the X server is gone).

use std::sync::Arc;

use crate::error::{DesktopError, DesktopResult};
use crate::launch::Launcher;
use crate::recording::Recorder;
use crate::settings::Settings;
use crate::supervisor::Desktop;
use crate::x11::clipboard::ClipboardOwner;
use crate::x11::X11;

/// Everything the handlers share.
pub struct State {
    /// What the X server was started with.
    pub settings: Settings,
    /// The running desktop.
    pub desktop: Desktop,
    /// The owner of CLIPBOARD and PRIMARY for text set through the API.
    pub clipboard: Arc<ClipboardOwner>,
    /// Starts applications.
    pub launcher: Launcher,
    /// The recordings.
    pub recorder: Recorder,
}

/// The state as handlers hold it.
pub type Shared = Arc<State>;

impl State {
    /// The X connection, while the X server runs.
    pub fn x11(&self) -> DesktopResult<Arc<X11>> {
        if !self.desktop.x_server.alive() {
            return Err(DesktopError::NotReady {
                message: format!(
                    "the X server on {} has exited; the desktop must be restarted. Its last output: {}",
                    self.settings.display_name(),
                    self.desktop.x_server.tail()
                ),
            });
        }
        Ok(Arc::clone(&self.desktop.x11))
    }

    /// Runs `operation` with the X connection on the blocking pool. An X failure while the X server
    /// does not answer (it died) is `desktop_not_ready`, like every request after it.
    pub async fn run<T, F>(&self, operation: F) -> DesktopResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&X11) -> DesktopResult<T> + Send + 'static,
    {
        let x11 = self.x11()?;
        let display = self.settings.display_name();
        let result = tokio::task::spawn_blocking(move || match operation(&x11) {
            Err(error @ DesktopError::X11 { .. }) if x11.ping().is_err() || !X11::answers(&display) => {
                Err(DesktopError::NotReady {
                    message: format!("the X server on {display} does not answer ({})", error.message()),
                })
            }
            result => result,
        })
        .await;
        result.map_err(|error| DesktopError::X11 { what: "finish the request".into(), message: error.to_string() })?
    }
}
