//! The MCP server of `nullspace mcp serve`: lists the [`Catalog`]'s tools and runs each call as a
//! child `nullspace <command> … --json` (this very binary, stdin null, killed at the tool timeout),
//! whose JSON output becomes the tool result.
//!
//! A result's text is the JSON payload; its `structuredContent` is the same payload: the command's
//! JSON object, `{"result": …}` for other JSON, `{"output": "…"}` for text. A non-zero exit sets
//! `isError` and makes sure the payload has an `error` object (`code`, `message` from stderr,
//! `exit_code`), keeping what the command printed (e.g. `sandbox exec`'s stdout and stderr).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};

use super::tools::{Catalog, ToolSpec};

/// How tool calls run the CLI.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The `nullspace` binary.
    pub exe: PathBuf,
    /// Variables set for every call (the API URL and key given to `mcp serve`).
    pub env: Vec<(String, String)>,
    /// How long one call may take.
    pub timeout: Duration,
}

/// The MCP handler: the catalog and how to run it.
#[derive(Debug, Clone)]
pub struct NullspaceMcp {
    catalog: Arc<Catalog>,
    tools: Arc<Vec<Tool>>,
    runner: Arc<Runner>,
}

impl NullspaceMcp {
    pub fn new(catalog: Catalog, runner: Runner) -> Self {
        let tools = catalog.tools().iter().map(mcp_tool).collect();
        Self { catalog: Arc::new(catalog), tools: Arc::new(tools), runner: Arc::new(runner) }
    }

    /// Runs one call of `spec` to completion (or its timeout).
    async fn call(&self, spec: &ToolSpec, arguments: &Map<String, Value>) -> CallToolResult {
        let argv = match spec.argv(arguments) {
            Ok(argv) => argv,
            Err(error) => return failure("invalid_arguments", error.to_string()),
        };
        let shown = format!("nullspace {}", spec.path.join(" "));
        let mut command = tokio::process::Command::new(&self.runner.exe);
        command
            .args(&argv)
            .envs(self.runner.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out (dropped) call takes its command with it.
            .kill_on_drop(true);
        tracing::debug!(tool = %spec.name, ?argv, "running a tool call");
        match tokio::time::timeout(self.runner.timeout, command.output()).await {
            Err(_) => failure(
                "timeout",
                format!(
                    "`{shown}` did not finish within {} s and was killed; start the server with a larger \
                     `nullspace mcp serve --tool-timeout`",
                    self.runner.timeout.as_secs()
                ),
            ),
            Ok(Err(error)) => {
                failure("spawn_failed", format!("could not run {} for `{shown}`: {error}", self.runner.exe.display()))
            }
            Ok(Ok(output)) => tool_result(
                &shown,
                output.status.code(),
                &String::from_utf8_lossy(&output.stdout),
                &String::from_utf8_lossy(&output.stderr),
            ),
        }
    }
}

impl ServerHandler for NullspaceMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("nullspace", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool runs one `nullspace` CLI command against the Nullspace API this server was \
                 started for and returns its JSON output. Start with nullspace.sandbox.create, then use \
                 the returned `id` with nullspace.sandbox.exec and the nullspace.sandbox.file.* tools; \
                 nullspace.sandbox.kill destroys the sandbox.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(spec) = self.catalog.get(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}; tools/list shows the {} tools", request.name, self.tools.len()),
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        Ok(self.call(spec, &arguments).await.into())
    }
}

/// The MCP form of a catalog entry.
fn mcp_tool(spec: &ToolSpec) -> Tool {
    Tool::new(spec.name.clone(), spec.description.clone(), spec.input_schema())
}

/// The result of a command that ran: `code` is `None` when a signal ended it.
pub fn tool_result(shown: &str, code: Option<i32>, stdout: &str, stderr: &str) -> CallToolResult {
    let trimmed = stdout.trim();
    let mut payload = match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(object)) => object,
        Ok(other) if !trimmed.is_empty() => Map::from_iter([("result".to_owned(), other)]),
        _ => Map::from_iter([("output".to_owned(), Value::String(stdout.to_owned()))]),
    };
    if code == Some(0) {
        return result(payload, false);
    }
    if !payload.get("error").is_some_and(Value::is_object) {
        let message = match (stderr.trim(), code) {
            (text, _) if !text.is_empty() => text.to_owned(),
            (_, Some(code)) => format!("`{shown}` exited with {code}"),
            (_, None) => format!("`{shown}` was killed by a signal"),
        };
        payload.insert("error".into(), json!({"code": "cli_error", "message": message, "exit_code": code}));
    }
    result(payload, true)
}

/// An error result for a call that did not run to an exit.
fn failure(code: &str, message: String) -> CallToolResult {
    result(Map::from_iter([("error".to_owned(), json!({"code": code, "message": message}))]), true)
}

fn result(payload: Map<String, Value>, is_error: bool) -> CallToolResult {
    let payload = Value::Object(payload);
    let text = serde_json::to_string_pretty(&payload).unwrap_or_else(|_| payload.to_string());
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(payload);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn structured(result: &CallToolResult) -> &Value {
        result.structured_content.as_ref().expect("structured content")
    }

    #[test]
    fn json_objects_pass_through() {
        let result = tool_result("nullspace sandbox get", Some(0), "{\n  \"id\": \"sb_1\"\n}\n", "");
        assert_eq!(result.is_error, Some(false));
        assert_eq!(structured(&result), &json!({"id": "sb_1"}));
        let text = result.content[0].as_text().expect("text").text.clone();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"id": "sb_1"}));
    }

    #[test]
    fn other_output_is_wrapped() {
        assert_eq!(structured(&tool_result("x", Some(0), "[1, 2]\n", "")), &json!({"result": [1, 2]}));
        assert_eq!(structured(&tool_result("x", Some(0), "plain\n", "")), &json!({"output": "plain\n"}));
        assert_eq!(structured(&tool_result("x", Some(0), "", "")), &json!({"output": ""}));
    }

    #[test]
    fn a_failure_keeps_the_commands_error() {
        let stdout = r#"{"error": {"code": "not_found", "message": "no sandbox sb_x"}}"#;
        let result = tool_result("nullspace sandbox get", Some(1), stdout, "");
        assert_eq!(result.is_error, Some(true));
        assert_eq!(structured(&result)["error"]["code"], "not_found");
    }

    #[test]
    fn a_failure_without_an_error_object_gets_one_from_stderr() {
        let stdout = r#"{"exit_code": 3, "stdout": "out", "stderr": "err"}"#;
        let result = tool_result("nullspace sandbox exec", Some(3), stdout, "");
        assert_eq!(result.is_error, Some(true));
        let body = structured(&result);
        assert_eq!(body["stdout"], "out");
        assert_eq!(
            body["error"],
            json!({"code": "cli_error", "message": "`nullspace sandbox exec` exited with 3", "exit_code": 3})
        );

        let usage =
            tool_result("nullspace volume upload", Some(2), "", "error: invalid value '0' for '--concurrency'\n");
        assert_eq!(structured(&usage)["error"]["message"], "error: invalid value '0' for '--concurrency'");
        assert_eq!(structured(&usage)["error"]["exit_code"], 2);
        assert_eq!(structured(&tool_result("x", None, "", ""))["error"]["exit_code"], Value::Null);
    }
}
