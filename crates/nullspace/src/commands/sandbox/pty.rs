//! `nullspace sandbox pty ID`: an interactive terminal in a sandbox. The local terminal goes raw while
//! attached, keystrokes go up as they are typed, window resizes follow, and the shell's exit code is ours.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use nullspace_client::{Client, PtyEvent};
use tokio::io::AsyncReadExt;

use crate::exit::ExitStatus;

/// Restores the terminal when dropped (also on errors and panics).
struct RawMode(bool);

impl RawMode {
    fn enable() -> Self {
        let interactive = std::io::stdin().is_terminal();
        Self(interactive && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// Attaches this terminal to a new shell in sandbox `id`.
pub async fn run(client: &Client, id: &str) -> anyhow::Result<ExitStatus> {
    let (cols, rows) = crossterm::terminal::size().unwrap_or((120, 30));
    let session =
        client.pty_start(id, cols, rows).await.with_context(|| format!("could not open a terminal in {id}"))?;
    let (mut writer, mut reader) = (session.writer, session.reader);
    let raw = RawMode::enable();
    let mut stdin = tokio::io::stdin();
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .context("could not watch for terminal resizes")?;
    let mut buffer = vec![0u8; 4096];
    let mut stdin_open = true;
    let code = loop {
        tokio::select! {
            read = stdin.read(&mut buffer), if stdin_open => match read {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => writer.input(&buffer[..n]).await.context("sending input")?,
            },
            event = reader.next_event() => match event {
                Some(Ok(PtyEvent::Output(bytes))) => {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(&bytes).and_then(|()| stdout.flush()).context("writing output")?;
                }
                Some(Ok(PtyEvent::Exited(code))) => break code,
                Some(Err(error)) => return Err(error).context("the terminal stream failed"),
                None => anyhow::bail!("the server closed the terminal without an exit code"),
            },
            _ = resized.recv() => {
                if let Ok((cols, rows)) = crossterm::terminal::size() {
                    writer.resize(cols, rows).await.context("resizing")?;
                }
            }
        }
    };
    drop(raw);
    Ok(ExitStatus::Child(code))
}
