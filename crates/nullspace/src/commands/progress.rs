//! Progress on stderr for long commands, shown only when stderr is a terminal and `--json` is off: a
//! spinner for waits of unknown length, a byte counter for transfers. Both clear their line when done.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nullspace_client::ProgressFn;

/// Whether progress should be drawn for this command.
pub fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

/// A one-line spinner on stderr, cleared when stopped.
pub struct Spinner {
    task: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Spinner {
    /// Starts spinning next to `message`.
    pub fn start(message: String) -> Self {
        let started = Instant::now();
        let task = tokio::spawn(async move {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let mut tick = tokio::time::interval(Duration::from_millis(120));
            for frame in FRAMES.iter().cycle() {
                tick.tick().await;
                eprint!("\r\x1b[2K{frame} {message} ({:.1}s)", started.elapsed().as_secs_f64());
            }
        });
        Self { task, started }
    }

    /// Clears the line; returns how long it ran.
    pub fn stop(self) -> Duration {
        self.task.abort();
        eprint!("\r\x1b[2K");
        self.started.elapsed()
    }
}

/// A byte counter for an upload or download: `verb name  12.0/64.0 MiB  18%  40.2 MiB/s`.
pub struct Transfer {
    state: Arc<Mutex<Drawn>>,
    started: Instant,
}

struct Drawn {
    label: String,
    last: Option<Instant>,
}

impl Transfer {
    /// A counter labelled `label` (e.g. `uploading model.bin`).
    pub fn new(label: String) -> Self {
        Self { state: Arc::new(Mutex::new(Drawn { label, last: None })), started: Instant::now() }
    }

    /// The callback the client calls as bytes move (redraws at most ten times a second).
    pub fn callback(&self) -> ProgressFn {
        let (state, started) = (self.state.clone(), self.started);
        Arc::new(move |done, total| {
            let Ok(mut drawn) = state.lock() else { return };
            let now = Instant::now();
            let finished = total.is_some_and(|total| done >= total);
            if drawn.last.is_some_and(|last| now - last < Duration::from_millis(100)) && !finished {
                return;
            }
            drawn.last = Some(now);
            eprint!("\r\x1b[2K{}", line(&drawn.label, done, total, started.elapsed()));
        })
    }

    /// Clears the line.
    pub fn finish(self) {
        if self.state.lock().is_ok_and(|drawn| drawn.last.is_some()) {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The text of one progress line.
fn line(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(total) if total > 0 => {
            let percent = done.saturating_mul(100) / total;
            format!("{label}  {}/{}  {percent}%  {}/s", size(done), size(total), size(rate as u64))
        }
        _ => format!("{label}  {}  {}/s", size(done), size(rate as u64)),
    }
}

/// Bytes in B, KiB, MiB or GiB with one decimal.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_lines_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(
            line("uploading m.bin", 1 << 20, Some(4 << 20), Duration::from_secs(1)),
            "uploading m.bin  1.0 MiB/4.0 MiB  25%  1.0 MiB/s"
        );
        assert_eq!(line("downloading", 2048, None, Duration::from_secs(2)), "downloading  2.0 KiB  1.0 KiB/s");
    }
}
