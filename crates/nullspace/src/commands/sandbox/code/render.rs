//! How execution events read on a terminal: stdout and stderr text as it came, each result's text and a
//! note for each rich representation (`[text/html 2.0 KiB]`; for charts and images the notes replace the
//! text: `[chart: bar 'Revenue', 3 elements]`, `[image/png 10.0 KiB → artifact art_…]`), errors with their traceback and `Name: value` on stderr. Pure: [`Renderer`] turns events
//! into chunks for stdout and stderr; `run` writes them.

use nullspace_client::types::code_api::{Artifact, ExecutionError, ExecutionEvent, ExecutionResult, RunExecution};

use crate::commands::progress::size;

/// A chunk of text for one of the two streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Chunk {
    /// For stdout.
    Out(String),
    /// For stderr.
    Err(String),
}

/// Turns a stream of events into text. An image result's note waits for the artifact event that
/// follows it (the gateway sends it right after), so both read as one line.
#[derive(Debug, Default)]
pub(super) struct Renderer {
    /// `image/png 10.0 KiB` of the last result, until its artifact (or anything else) arrives.
    pending_image: Option<String>,
    /// Whether stdout's last chunk left a line open.
    open_line: bool,
    /// Whether an error event arrived.
    pub failed: bool,
}

impl Renderer {
    /// The chunks that show `event`.
    pub fn event(&mut self, event: &ExecutionEvent) -> Vec<Chunk> {
        let mut out = Vec::new();
        if let ExecutionEvent::Artifact { artifact } = event {
            let note = match self.pending_image.take() {
                Some(image) => format!("[{image} → artifact {}]", artifact.id),
                None => format!("[artifact {}]", artifact_summary(artifact)),
            };
            self.line(&mut out, note);
            return out;
        }
        self.flush(&mut out);
        match event {
            ExecutionEvent::Stdout(text) => {
                self.open_line = !text.text.is_empty() && !text.text.ends_with('\n');
                out.push(Chunk::Out(text.text.clone()));
            }
            ExecutionEvent::Stderr(text) => out.push(Chunk::Err(text.text.clone())),
            ExecutionEvent::Result(result) => {
                let (lines, image) = result_lines(result);
                for line in lines {
                    self.line(&mut out, line);
                }
                self.pending_image = image;
            }
            ExecutionEvent::Error(error) => {
                self.failed = true;
                out.push(Chunk::Err(error_text(error)));
            }
            ExecutionEvent::Artifact { .. } | ExecutionEvent::NumberOfExecutions { .. } => {}
        }
        out
    }

    /// What is left once the stream ended.
    pub fn finish(&mut self) -> Vec<Chunk> {
        let mut out = Vec::new();
        self.flush(&mut out);
        out
    }

    /// A whole line on stdout (after closing an open one).
    fn line(&mut self, out: &mut Vec<Chunk>, text: String) {
        let newline = if self.open_line { "\n" } else { "" };
        self.open_line = false;
        let end = if text.ends_with('\n') { "" } else { "\n" };
        out.push(Chunk::Out(format!("{newline}{text}{end}")));
    }

    /// The waiting image note, without an artifact.
    fn flush(&mut self, out: &mut Vec<Chunk>) {
        if let Some(image) = self.pending_image.take() {
            self.line(out, format!("[{image}]"));
        }
    }
}

/// The lines of a result and the note of the image it displays (which waits for its artifact). A
/// result with a chart or an image shows those rather than its text (matplotlib's `<Figure …>`).
fn result_lines(result: &ExecutionResult) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    if let Some(chart) = &result.chart {
        let title = if chart.title.is_empty() { String::new() } else { format!(" '{}'", chart.title) };
        let count = chart.elements.len();
        let elements = if count == 1 { "1 element".to_owned() } else { format!("{count} elements") };
        lines.push(format!("[chart: {}{title}, {elements}]", chart.chart_type));
    }
    let images: Vec<String> = [
        ("image/png", result.png.as_deref().map(base64_len)),
        ("image/jpeg", result.jpeg.as_deref().map(base64_len)),
        ("image/svg+xml", result.svg.as_deref().map(str::len)),
    ]
    .into_iter()
    .filter_map(|(mime, len)| len.map(|len| format!("{mime} {}", size(len as u64))))
    .collect();
    if result.chart.is_none() && images.is_empty() {
        lines.extend(result.text.clone());
        lines.extend(other_formats(result).into_iter().map(|(mime, len)| format!("[{mime} {}]", size(len as u64))));
    }
    // The gateway stores the first image of a bundle; only that one gets an artifact.
    let mut images = images.into_iter();
    let first = images.next();
    lines.extend(images.map(|image| format!("[{image}]")));
    (lines, first)
}

/// The rich representations other than text and images, with their sizes.
fn other_formats(result: &ExecutionResult) -> Vec<(String, usize)> {
    let known = [
        ("text/html", result.html.as_deref().map(str::len)),
        ("text/markdown", result.markdown.as_deref().map(str::len)),
        ("text/latex", result.latex.as_deref().map(str::len)),
        ("application/pdf", result.pdf.as_deref().map(base64_len)),
        ("application/javascript", result.javascript.as_deref().map(str::len)),
        ("application/json", result.json.as_ref().map(|value| value.to_string().len())),
    ];
    let known = known.into_iter().filter_map(|(mime, len)| len.map(|len| (mime.to_owned(), len)));
    let data = result.data.iter().flat_map(|data| data.iter().map(|(mime, value)| (mime.clone(), value_len(value))));
    known.chain(data).collect()
}

fn value_len(value: &serde_json::Value) -> usize {
    value.as_str().map_or_else(|| value.to_string().len(), str::len)
}

/// Decoded size of base64 text (whitespace and padding ignored).
fn base64_len(text: &str) -> usize {
    let symbols = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=').count();
    symbols * 3 / 4
}

/// `art_1 image/png 10.0 KiB figure-1.png`.
pub(super) fn artifact_summary(artifact: &Artifact) -> String {
    format!("{} {} {} {}", artifact.id, artifact.mime_type, size(artifact.size_bytes), artifact.name)
}

/// The traceback (when there is one) and a last `Name: value` line unless the traceback ends with it.
pub(super) fn error_text(error: &ExecutionError) -> String {
    let summary = if error.value.is_empty() { error.name.clone() } else { format!("{}: {}", error.name, error.value) };
    let traceback = error.traceback.trim_end();
    let plain = anstream::adapter::strip_str(traceback).to_string();
    if traceback.is_empty() {
        format!("{summary}\n")
    } else if plain.lines().last().is_some_and(|last| last.trim() == summary.trim()) {
        format!("{traceback}\n")
    } else {
        format!("{traceback}\n{summary}\n")
    }
}

/// The chunks of a finished run's collected execution, in the order of a live stream: stdout, stderr,
/// results (with their artifacts), then the error.
pub(super) fn execution_chunks(execution: &RunExecution) -> Vec<Chunk> {
    let mut renderer = Renderer::default();
    let mut out = Vec::new();
    let mut artifacts = execution.artifacts.iter();
    let stdout = execution.logs.stdout.iter().map(|text| ExecutionEvent::Stdout(output(text)));
    let stderr = execution.logs.stderr.iter().map(|text| ExecutionEvent::Stderr(output(text)));
    for event in stdout.chain(stderr) {
        out.extend(renderer.event(&event));
    }
    for result in &execution.results {
        out.extend(renderer.event(&ExecutionEvent::Result(Box::new(result.clone()))));
        if renderer.pending_image.is_some() {
            if let Some(artifact) = artifacts.next() {
                out.extend(renderer.event(&ExecutionEvent::Artifact { artifact: artifact.clone() }));
            }
        }
    }
    for artifact in artifacts {
        out.extend(renderer.event(&ExecutionEvent::Artifact { artifact: artifact.clone() }));
    }
    if let Some(error) = &execution.error {
        out.extend(renderer.event(&ExecutionEvent::Error(error.clone())));
    }
    out.extend(renderer.finish());
    out
}

fn output(text: &str) -> nullspace_client::types::code_api::OutputText {
    nullspace_client::types::code_api::OutputText { text: text.to_owned(), timestamp: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nullspace_client::types::code_api::{Chart, OutputText};

    fn artifact(id: &str) -> Artifact {
        Artifact {
            id: id.into(),
            context_id: "ctx_1".into(),
            kind: "image".into(),
            mime_type: "image/png".into(),
            name: "figure-1-1.png".into(),
            size_bytes: 10240,
            sha256: "00".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            execution_count: Some(1),
        }
    }

    fn stdout(text: &str) -> ExecutionEvent {
        ExecutionEvent::Stdout(OutputText { text: text.into(), timestamp: None })
    }

    fn all(events: &[ExecutionEvent]) -> (String, String, bool) {
        let mut renderer = Renderer::default();
        let (mut out, mut err) = (String::new(), String::new());
        let mut chunks: Vec<Chunk> = events.iter().flat_map(|e| renderer.event(e)).collect();
        chunks.extend(renderer.finish());
        for chunk in chunks {
            match chunk {
                Chunk::Out(text) => out.push_str(&text),
                Chunk::Err(text) => err.push_str(&text),
            }
        }
        (out, err, renderer.failed)
    }

    #[test]
    fn text_streams_and_results_print_their_text_on_their_own_line() {
        let result = ExecutionResult { text: Some("2".into()), is_main_result: true, ..Default::default() };
        let events = [
            stdout("a\n"),
            stdout("b"),
            ExecutionEvent::Result(Box::new(result)),
            ExecutionEvent::NumberOfExecutions { execution_count: 1 },
        ];
        assert_eq!(all(&events), ("a\nb\n2\n".into(), String::new(), false));
    }

    #[test]
    fn charts_and_images_are_noted_with_their_artifact() {
        // 16 base64 symbols are 12 bytes.
        let result = ExecutionResult {
            text: Some("<Figure size 640x480 with 1 Axes>".into()),
            png: Some("iVBORw0KGgoAAAAN".into()),
            chart: Some(Chart {
                chart_type: "bar".into(),
                title: "Revenue".into(),
                x_label: String::new(),
                y_label: String::new(),
                x_unit: None,
                y_unit: None,
                elements: vec![serde_json::json!({"label": "A", "value": 1})],
            }),
            ..Default::default()
        };
        let events = [
            ExecutionEvent::Result(Box::new(result.clone())),
            ExecutionEvent::Artifact { artifact: artifact("art_1") },
        ];
        let (out, _, _) = all(&events);
        assert_eq!(out, "[chart: bar 'Revenue', 1 element]\n[image/png 12 B → artifact art_1]\n");
        // Without its artifact the note still ends its line.
        let (out, _, _) = all(&[ExecutionEvent::Result(Box::new(result)), stdout("x\n")]);
        assert_eq!(out, "[chart: bar 'Revenue', 1 element]\n[image/png 12 B]\nx\n");
        let (out, _, _) = all(&[ExecutionEvent::Artifact { artifact: artifact("art_2") }]);
        assert_eq!(out, "[artifact art_2 image/png 10.0 KiB figure-1-1.png]\n");
    }

    #[test]
    fn rich_results_name_their_formats() {
        let html = ExecutionResult { html: Some("<b>hi</b>".into()), ..Default::default() };
        assert_eq!(all(&[ExecutionEvent::Result(Box::new(html.clone()))]).0, "[text/html 9 B]\n");
        let both = ExecutionResult { text: Some("<HTML object>".into()), ..html };
        assert_eq!(all(&[ExecutionEvent::Result(Box::new(both))]).0, "<HTML object>\n[text/html 9 B]\n");
    }

    #[test]
    fn errors_go_to_stderr_with_their_name_once() {
        let plain = ExecutionError { name: "ValueError".into(), value: "boom".into(), traceback: String::new() };
        assert_eq!(all(&[ExecutionEvent::Error(plain.clone())]), (String::new(), "ValueError: boom\n".into(), true));
        let colored = ExecutionError {
            traceback: "Traceback:\n  line 1\n\u{1b}[0;31mValueError\u{1b}[0m: boom".into(),
            ..plain.clone()
        };
        assert_eq!(error_text(&colored), "Traceback:\n  line 1\n\u{1b}[0;31mValueError\u{1b}[0m: boom\n");
        let other = ExecutionError { traceback: "Traceback:\n  line 1".into(), ..plain };
        assert_eq!(error_text(&other), "Traceback:\n  line 1\nValueError: boom\n");
    }

    #[test]
    fn collected_executions_read_like_their_stream() {
        let mut execution = RunExecution::default();
        execution.logs.stdout.push("hi\n".into());
        execution.results.push(ExecutionResult { png: Some("AAAA".into()), ..Default::default() });
        execution.artifacts.push(artifact("art_9"));
        execution.error = Some(ExecutionError { name: "E".into(), value: String::new(), traceback: String::new() });
        let chunks = execution_chunks(&execution);
        assert_eq!(
            chunks,
            [
                Chunk::Out("hi\n".into()),
                Chunk::Out("[image/png 3 B → artifact art_9]\n".into()),
                Chunk::Err("E\n".into())
            ]
        );
    }
}
