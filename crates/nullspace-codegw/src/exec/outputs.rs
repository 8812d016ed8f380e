//! Kernel outputs in the API's shapes: a MIME bundle becomes a result (text/plain → text, image/png →
//! png, …, the chart MIME type → chart, anything else → data), the image of a displayed bundle is found
//! for its artifact, and tracebacks lose their terminal colours.

use base64::Engine;
use nullspace_types::code_api::{Chart, ExecutionError, ExecutionResult};
use serde_json::{Map, Value};

/// The MIME type the python kernel's startup code adds to matplotlib figures (see `chart.py`).
pub const CHART_MIME: &str = "application/vnd.nullspace.chart+json";

/// The result of one MIME bundle; `is_main_result` for the cell's value (`execute_result`).
pub fn result_from_bundle(bundle: &Map<String, Value>, is_main_result: bool) -> ExecutionResult {
    let mut result = ExecutionResult { is_main_result, ..Default::default() };
    let mut data = Map::new();
    for (mime, value) in bundle {
        let slot = match mime.as_str() {
            "text/plain" => &mut result.text,
            "text/html" => &mut result.html,
            "text/markdown" => &mut result.markdown,
            "image/svg+xml" => &mut result.svg,
            "image/png" => &mut result.png,
            "image/jpeg" => &mut result.jpeg,
            "application/pdf" => &mut result.pdf,
            "text/latex" => &mut result.latex,
            "application/javascript" => &mut result.javascript,
            "application/json" => {
                result.json = Some(value.clone());
                continue;
            }
            CHART_MIME => {
                result.chart = serde_json::from_value::<Chart>(value.clone()).ok();
                continue;
            }
            _ => {
                data.insert(mime.clone(), value.clone());
                continue;
            }
        };
        *slot = Some(text_of(value));
    }
    if !data.is_empty() {
        result.data = Some(data);
    }
    result
}

/// The image a bundle displays, as (MIME type, bytes): png before jpeg before svg, so a bundle with
/// several renderings of one figure is one image.
pub fn displayed_image(bundle: &Map<String, Value>) -> Option<(&'static str, Vec<u8>)> {
    for mime in ["image/png", "image/jpeg"] {
        if let Some(value) = bundle.get(mime) {
            let encoded: String = text_of(value).chars().filter(|c| !c.is_ascii_whitespace()).collect();
            match base64::engine::general_purpose::STANDARD.decode(encoded) {
                Ok(bytes) if !bytes.is_empty() => return Some((mime, bytes)),
                _ => tracing::debug!(mime, "skipping an image that is not base64"),
            }
        }
    }
    let svg = text_of(bundle.get("image/svg+xml")?);
    (!svg.is_empty()).then(|| ("image/svg+xml", svg.into_bytes()))
}

/// The file extension of an artifact's MIME type.
pub fn extension_of(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/svg+xml" => "svg",
        _ => "bin",
    }
}

/// An error event from a kernel's `error` output (kernels that name none, like bash_kernel for a failing
/// command, get `Error`).
pub fn error_event(name: &str, value: &str, traceback: &[String]) -> ExecutionError {
    let traceback: Vec<String> = traceback.iter().map(|line| strip_ansi(line)).collect();
    let name = if name.trim().is_empty() { "Error" } else { name };
    ExecutionError { name: name.to_owned(), value: strip_ansi(value), traceback: traceback.join("\n") }
}

/// `text` without ANSI escape sequences (CSI `ESC [ … final` and two-byte `ESC x`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for next in chars.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            }
            Some(']') => {
                // OSC: up to BEL or ESC \.
                while let Some(next) = chars.next() {
                    if next == '\u{7}' || (next == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A bundle value as text: strings as they are, lists of strings joined (the notebook form), other JSON
/// serialized.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(parts) if parts.iter().all(Value::is_string) => parts.iter().filter_map(Value::as_str).collect(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn every_known_mime_type_has_its_field_and_the_rest_go_to_data() {
        let result = result_from_bundle(
            &bundle(json!({
                "text/plain": "1", "text/html": "<b>", "text/markdown": "# m", "image/svg+xml": "<svg/>",
                "image/png": "iVBO", "image/jpeg": "/9j/", "application/pdf": "JVBE", "text/latex": "$x$",
                "application/json": {"a": 1}, "application/javascript": "x()", "image/gif": "R0lG",
            })),
            true,
        );
        assert_eq!(result.text.as_deref(), Some("1"));
        assert_eq!(result.html.as_deref(), Some("<b>"));
        assert_eq!(result.markdown.as_deref(), Some("# m"));
        assert_eq!(result.svg.as_deref(), Some("<svg/>"));
        assert_eq!(result.png.as_deref(), Some("iVBO"));
        assert_eq!(result.jpeg.as_deref(), Some("/9j/"));
        assert_eq!(result.pdf.as_deref(), Some("JVBE"));
        assert_eq!(result.latex.as_deref(), Some("$x$"));
        assert_eq!(result.json, Some(json!({"a": 1})));
        assert_eq!(result.javascript.as_deref(), Some("x()"));
        assert_eq!(result.data, Some(bundle(json!({"image/gif": "R0lG"}))));
        assert!(result.is_main_result && result.chart.is_none());
    }

    #[test]
    fn the_chart_mime_type_becomes_the_chart_and_notebook_lists_are_joined() {
        let chart = json!({"type": "bar", "title": "T", "x_label": "x", "y_label": "y",
            "elements": [{"label": "A", "value": 10, "group": "Revenue"}]});
        let result = result_from_bundle(&bundle(json!({CHART_MIME: chart, "text/plain": ["a", "b"]})), false);
        let chart = result.chart.unwrap();
        assert_eq!((chart.chart_type.as_str(), chart.title.as_str()), ("bar", "T"));
        assert_eq!(chart.elements[0]["value"], 10);
        assert_eq!(result.text.as_deref(), Some("ab"));
        assert!(result.data.is_none(), "the chart is not repeated in data");
    }

    #[test]
    fn a_bundle_displays_one_image_preferring_png() {
        let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG");
        let both = bundle(json!({"image/png": format!("{png}\n"), "image/svg+xml": "<svg/>", "text/plain": "F"}));
        assert_eq!(displayed_image(&both), Some(("image/png", b"\x89PNG".to_vec())));
        let svg = bundle(json!({"image/svg+xml": ["<svg>", "</svg>"]}));
        assert_eq!(displayed_image(&svg), Some(("image/svg+xml", b"<svg></svg>".to_vec())));
        assert_eq!(displayed_image(&bundle(json!({"image/png": "%%%", "text/plain": "x"}))), None);
        assert_eq!(extension_of("image/jpeg"), "jpg");
    }

    #[test]
    fn tracebacks_lose_terminal_colours() {
        assert_eq!(strip_ansi("\u{1b}[0;31mValueError\u{1b}[0m: boom"), "ValueError: boom");
        assert_eq!(strip_ansi("a\u{1b}]0;title\u{7}b"), "ab");
        let error = error_event("ValueError", "boom", &["\u{1b}[1mline 1\u{1b}[0m".into(), "line 2".into()]);
        assert_eq!(error.traceback, "line 1\nline 2");
        assert_eq!(error_event("", "1", &[]).name, "Error");
    }
}
