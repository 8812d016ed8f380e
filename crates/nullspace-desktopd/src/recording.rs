//! Screen recordings: one `ffmpeg -f x11grab` per recording, encoding H.264 (MPEG-4 part 2 when the
//! ffmpeg build lacks libx264) into `<dir>/<id>.mp4` with the index at the front (`+faststart`), and
//! `<dir>/<id>.json` holding its `RecordingInfo`. Stopping sends `q` on ffmpeg's stdin and waits for it
//! to finish the file, so a stopped recording is a complete MP4. The files stay until deleted (the
//! directory lives in the sandbox and goes with it).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nullspace_types::desktop_api::RecordingInfo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use crate::error::{DesktopError, DesktopResult};

/// Recordings running at once.
const MAX_ACTIVE: usize = 4;
/// Longest wait for ffmpeg to write its first frame.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for ffmpeg to finish the file after `q`.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Frames per second recorded.
const FRAMERATE: u32 = 15;
/// Longest recording name.
const MAX_NAME_CHARS: usize = 256;

/// A running ffmpeg.
struct Active {
    child: Child,
    started: Instant,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

/// The recordings of this desktop.
pub struct Recorder {
    dir: PathBuf,
    display: String,
    ffmpeg: String,
    encoder: OnceCell<&'static str>,
    active: tokio::sync::Mutex<HashMap<String, Active>>,
}

/// Whether `id` has the form this daemon gives ids (so it never names a path outside the directory).
pub fn valid_id(id: &str) -> bool {
    id.strip_prefix("rec_").is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The ffmpeg arguments recording `display` at `size` with `encoder` into `path`.
pub fn ffmpeg_args(display: &str, size: (u16, u16), encoder: &str, path: &Path) -> Vec<String> {
    let mut args: Vec<String> =
        ["-hide_banner", "-nostats", "-loglevel", "error", "-f", "x11grab", "-draw_mouse", "1", "-framerate"]
            .map(String::from)
            .into();
    args.push(FRAMERATE.to_string());
    args.extend(["-video_size".into(), format!("{}x{}", size.0, size.1), "-i".into(), format!("{display}+0,0")]);
    // yuv420p needs even sides.
    args.extend(["-vf".into(), "pad=ceil(iw/2)*2:ceil(ih/2)*2".into(), "-c:v".into(), encoder.into()]);
    if encoder == "libx264" {
        args.extend(["-preset", "ultrafast", "-crf", "28"].map(String::from));
    } else {
        args.extend(["-q:v", "5"].map(String::from));
    }
    args.extend(["-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", "-y"].map(String::from));
    args.push(path.display().to_string());
    args
}

fn check_name(name: Option<String>) -> DesktopResult<Option<String>> {
    match name {
        Some(name) if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) => {
            Err(DesktopError::invalid(format!(
                "name must be at most {MAX_NAME_CHARS} characters without control characters"
            )))
        }
        name => Ok(name.filter(|n| !n.is_empty())),
    }
}

impl Recorder {
    /// Recordings of `display` kept in `dir`, made with the `ffmpeg` program. Recordings a previous run
    /// left marked as running are marked stopped (ffmpeg finishes its file when the daemon ends).
    pub fn open(dir: PathBuf, display: String, ffmpeg: String) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the recordings directory {}: {e}", dir.display()))?;
        let recorder =
            Self { dir, display, ffmpeg, encoder: OnceCell::new(), active: tokio::sync::Mutex::new(HashMap::new()) };
        for mut info in recorder.stored().unwrap_or_default() {
            if info.status == "recording" {
                info.status = "stopped".into();
                info.file_size_bytes = std::fs::metadata(&info.file_path).ok().map(|m| m.len());
                let _ = recorder.save(&info);
            }
        }
        Ok(recorder)
    }

    fn paths(&self, id: &str) -> (PathBuf, PathBuf) {
        (self.dir.join(format!("{id}.mp4")), self.dir.join(format!("{id}.json")))
    }

    fn save(&self, info: &RecordingInfo) -> DesktopResult<()> {
        let (_, json) = self.paths(&info.id);
        let bytes =
            serde_json::to_vec_pretty(info).map_err(|e| DesktopError::storage("encode a recording", e.into()))?;
        let partial = json.with_extension("json.partial");
        std::fs::write(&partial, bytes).map_err(|e| DesktopError::storage("write a recording's metadata", e))?;
        std::fs::rename(&partial, &json).map_err(|e| DesktopError::storage("write a recording's metadata", e))
    }

    fn load(&self, id: &str) -> DesktopResult<RecordingInfo> {
        if !valid_id(id) {
            return Err(DesktopError::RecordingNotFound { id: id.to_owned() });
        }
        let (_, json) = self.paths(id);
        let bytes = match std::fs::read(&json) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DesktopError::RecordingNotFound { id: id.to_owned() })
            }
            Err(e) => return Err(DesktopError::storage("read a recording's metadata", e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| DesktopError::storage("read a recording's metadata", e.into()))
    }

    fn stored(&self) -> DesktopResult<Vec<RecordingInfo>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| DesktopError::storage("list recordings", e))?;
        let mut infos: Vec<RecordingInfo> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
            .filter_map(|id| self.load(&id).ok())
            .collect();
        infos.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(infos)
    }

    async fn encoder(&self) -> DesktopResult<&'static str> {
        self.encoder
            .get_or_try_init(|| async {
                let output = Command::new(&self.ffmpeg)
                    .args(["-hide_banner", "-encoders"])
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .map_err(|e| DesktopError::RecordingFailed {
                        message: format!("cannot run {}: {e}", self.ffmpeg),
                    })?;
                let encoders = String::from_utf8_lossy(&output.stdout);
                Ok(if encoders.split_whitespace().any(|word| word == "libx264") { "libx264" } else { "mpeg4" })
            })
            .await
            .copied()
    }

    /// Starts recording the screen of `size`; answers once ffmpeg has written its first frame.
    pub async fn start(&self, name: Option<String>, size: (u16, u16)) -> DesktopResult<RecordingInfo> {
        let name = check_name(name)?;
        let encoder = self.encoder().await?;
        let mut active = self.active.lock().await;
        if active.len() >= MAX_ACTIVE {
            return Err(DesktopError::RecordingConflict {
                message: format!("{MAX_ACTIVE} recordings are running; stop one before starting another"),
            });
        }
        let id = format!("rec_{:016x}", rand::random::<u64>());
        let (mp4, _) = self.paths(&id);
        let mut command = Command::new(&self.ffmpeg);
        command
            .args(ffmpeg_args(&self.display, size, encoder, &mp4))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl(2) between fork and exec, async-signal-safe: ffmpeg finishes its file and ends
        // with the daemon.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| DesktopError::RecordingFailed { message: format!("cannot start {}: {e}", self.ffmpeg) })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(pipe) = child.stderr.take() {
            let tail = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    tail.push_back(line);
                    if tail.len() > 20 {
                        tail.pop_front();
                    }
                }
            });
        }
        let started = Instant::now();
        let mut recording = Active { child, started, stderr };
        // ffmpeg writes the file's header once the first frame is encoded.
        let deadline = started + START_TIMEOUT;
        loop {
            if std::fs::metadata(&mp4).is_ok_and(|m| m.len() > 0) {
                break;
            }
            let exited = recording.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let _ = recording.child.kill().await;
                let _ = std::fs::remove_file(&mp4);
                return Err(DesktopError::RecordingFailed {
                    message: format!(
                        "ffmpeg did not start recording ({}): {}",
                        exited.map_or("no frame within the time limit".to_owned(), |s| s.to_string()),
                        tail(&recording.stderr)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The recording's duration counts from its first frame.
        recording.started = Instant::now();
        let info = RecordingInfo {
            id: id.clone(),
            name,
            status: "recording".into(),
            file_path: mp4.display().to_string(),
            duration_seconds: None,
            file_size_bytes: None,
            created_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        };
        self.save(&info)?;
        active.insert(id, recording);
        Ok(info)
    }

    /// Stops a recording and waits until its file is complete.
    pub async fn stop(&self, id: &str) -> DesktopResult<RecordingInfo> {
        let mut info = self.load(id)?;
        let Some(recording) = self.active.lock().await.remove(id) else {
            if info.status == "recording" {
                return Err(DesktopError::RecordingConflict { message: format!("recording {id} is not running here") });
            }
            return Ok(info);
        };
        self.finish(&mut info, recording, true).await?;
        Ok(info)
    }

    /// Ends ffmpeg (`q`, or a kill when `graceful` is false or it does not finish) and records the result.
    async fn finish(&self, info: &mut RecordingInfo, mut recording: Active, graceful: bool) -> DesktopResult<()> {
        let mut status = None;
        if graceful {
            if let Some(mut stdin) = recording.child.stdin.take() {
                let _ = stdin.write_all(b"q").await;
                let _ = stdin.flush().await;
                drop(stdin);
            }
            status = tokio::time::timeout(STOP_TIMEOUT, recording.child.wait()).await.ok().and_then(Result::ok);
        }
        if status.is_none() {
            let _ = recording.child.kill().await;
        }
        let size = std::fs::metadata(&info.file_path).ok().map(|m| m.len());
        let finished = status.is_some_and(|s| s.success()) && size.is_some_and(|s| s > 0);
        if !finished && graceful {
            tracing::warn!(id = %info.id, "ffmpeg did not finish cleanly ({status:?}): {}", tail(&recording.stderr));
        }
        info.status = if finished { "stopped" } else { "failed" }.into();
        info.duration_seconds = Some((recording.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        info.file_size_bytes = size;
        self.save(info)
    }

    /// Marks recordings whose ffmpeg ended on its own (the display went away) as failed.
    async fn reap_ended(&self) {
        let mut active = self.active.lock().await;
        let ended: Vec<String> =
            active.iter_mut().filter_map(|(id, r)| r.child.try_wait().ok().flatten().map(|_| id.clone())).collect();
        for id in ended {
            let (Some(recording), Ok(mut info)) = (active.remove(&id), self.load(&id)) else { continue };
            let _ = self.finish(&mut info, recording, false).await;
        }
    }

    /// Every recording, oldest first.
    pub async fn list(&self) -> DesktopResult<Vec<RecordingInfo>> {
        self.reap_ended().await;
        self.stored()
    }

    /// One recording.
    pub async fn get(&self, id: &str) -> DesktopResult<RecordingInfo> {
        self.reap_ended().await;
        self.load(id)
    }

    /// Deletes a recording (stopping it first when it runs).
    pub async fn delete(&self, id: &str) -> DesktopResult<()> {
        let mut info = self.load(id)?;
        if let Some(recording) = self.active.lock().await.remove(id) {
            self.finish(&mut info, recording, false).await?;
        }
        let (mp4, json) = self.paths(id);
        for path in [mp4, json] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DesktopError::storage(format!("delete {}", path.display()), e)),
            }
        }
        Ok(())
    }

    /// The MP4 file of a stopped recording.
    pub async fn file(&self, id: &str) -> DesktopResult<(RecordingInfo, PathBuf)> {
        let info = self.get(id).await?;
        if info.status == "recording" {
            return Err(DesktopError::RecordingConflict {
                message: format!("recording {id} is still running; stop it before downloading"),
            });
        }
        Ok((info, self.paths(id).0))
    }

    /// Stops every running recording cleanly (the daemon is ending).
    pub async fn stop_all(&self) {
        let running: Vec<(String, Active)> = self.active.lock().await.drain().collect();
        for (id, recording) in running {
            if let Ok(mut info) = self.load(&id) {
                let _ = self.finish(&mut info, recording, true).await;
            }
        }
    }
}

fn tail(lines: &Mutex<VecDeque<String>>) -> String {
    lines.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_name_a_file() {
        assert!(valid_id("rec_0123456789abcdef"));
        assert!(!valid_id("rec_../../etc/passwd"));
        assert!(!valid_id("rec_0123"));
        assert!(!valid_id("0123456789abcdef"));
    }

    #[test]
    fn ffmpeg_records_the_display_at_its_size_into_a_fast_start_mp4() {
        let line = ffmpeg_args(":3", (1366, 768), "libx264", Path::new("/r/rec_1.mp4")).join(" ");
        for part in ["-f x11grab", "-video_size 1366x768", "-i :3+0,0", "-c:v libx264", "-movflags +faststart"] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        assert!(line.ends_with("-f mp4 -y /r/rec_1.mp4"), "{line}");
        let fallback = ffmpeg_args(":1", (800, 600), "mpeg4", Path::new("/r/x.mp4")).join(" ");
        assert!(fallback.contains("-c:v mpeg4") && !fallback.contains("ultrafast"));
    }

    #[test]
    fn names_are_optional_and_bounded() {
        assert_eq!(check_name(None).unwrap(), None);
        assert_eq!(check_name(Some(String::new())).unwrap(), None);
        assert_eq!(check_name(Some("demo".into())).unwrap(), Some("demo".into()));
        assert!(check_name(Some("a\nb".into())).is_err());
        assert!(check_name(Some("x".repeat(300))).is_err());
    }
}
