"""`nullspace mcp serve` driven by the official Python MCP client (`mcp`) over stdio against the real
server: the tool list and its schemas, a sandbox created, used (exec, files) and killed through tools,
errors as `isError` results, and the API URL/key given to `mcp serve` reaching the tool calls."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from typing import Any

import httpx
import pytest
from mcp import ClientSession, McpError, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import RUN_ID, unique

CALL_TIMEOUT = timedelta(seconds=300)  # a first create may wait for the base template


class Session:
    """An initialized MCP session to `nullspace mcp serve`, remembering the sandboxes it created."""

    def __init__(self, session: ClientSession, created: list[str]) -> None:
        self.session = session
        self.created = created

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        result = await self.session.call_tool(tool, arguments, read_timeout_seconds=CALL_TIMEOUT)
        if tool == "nullspace.sandbox.create" and isinstance(result.structuredContent, dict):
            sandbox_id = result.structuredContent.get("id")
            if isinstance(sandbox_id, str):
                self.created.append(sandbox_id)
        return result

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, arguments)
        assert not result.isError, f"{tool} {arguments} failed: {_text(result)}"
        assert isinstance(result.structuredContent, dict), _text(result)
        # The text content is the same JSON, for clients that read only text.
        assert json.loads(_text(result)) == result.structuredContent
        return result.structuredContent


def _text(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def _serve(server, cli, args: list[str] | None = None, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=server.binary,
        args=["mcp", "serve", *(args or [])],
        env=cli.env() if env is None else env,
        cwd=str(cli.home),
    )


async def _with_session(params: StdioServerParameters, created: list[str], body) -> None:
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            info = await session.initialize()
            assert info.serverInfo.name == "nullspace"
            await body(Session(session, created))


@pytest.fixture
def created(server):
    """Ids of sandboxes the test created through MCP, plus any found by its metadata tag: all killed at
    teardown, so a failing test leaks nothing."""
    ids: list[str] = []
    tag = unique("mcp")
    yield ids, tag
    with server.http() as http:
        resp = http.get("/v1/sandboxes", params={"metadata": json.dumps({"mcp_tag": tag})})
        if resp.status_code == 200:
            body = resp.json()
            items = body if isinstance(body, list) else body.get("items", body.get("sandboxes", []))
            ids.extend(item["id"] for item in items if item.get("metadata", {}).get("mcp_tag") == tag)
        for sandbox_id in set(ids):
            try:
                http.delete(f"/v1/sandboxes/{sandbox_id}")
            except httpx.HTTPError:
                pass


def test_tools_drive_a_sandbox(server, cli, created):
    ids, tag = created

    async def body(mcp: Session) -> None:
        listed = await mcp.session.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        for name in (
            "nullspace.sandbox.create",
            "nullspace.sandbox.exec",
            "nullspace.sandbox.kill",
            "nullspace.sandbox.file.read",
            "nullspace.sandbox.file.write",
            "nullspace.volume.ls_files",
            "nullspace.template.list",
        ):
            assert name in tools, f"{name} not in {sorted(tools)}"
        for absent in ("nullspace.server", "nullspace.mcp.serve", "nullspace.sandbox.pty", "nullspace.bench"):
            assert absent not in tools
        create_schema = tools["nullspace.sandbox.create"].inputSchema
        assert create_schema["type"] == "object" and create_schema["additionalProperties"] is False
        props = create_schema["properties"]
        assert props["template"]["type"] == "string" and props["template"]["default"] == "base"
        assert props["metadata"]["type"] == "array" and props["timeout"]["type"] == "integer"
        assert props["timeout_action"]["enum"] == ["destroy", "hibernate"]
        assert not {"api_key", "api_url", "json"} & set(props)
        exec_schema = tools["nullspace.sandbox.exec"].inputSchema
        assert exec_schema["required"] == ["id"]
        assert exec_schema["properties"]["argv"]["type"] == "array"
        assert tools["nullspace.sandbox.create"].description == "Create a sandbox and wait until it runs"

        sandbox = await mcp.ok("nullspace.sandbox.create", {"metadata": [f"mcp_tag={tag}"], "timeout": 600})
        sandbox_id = sandbox["id"]
        assert sandbox_id.startswith("sb_") and sandbox["status"] == "running"
        assert sandbox["metadata"] == {"mcp_tag": tag}

        hi = await mcp.ok("nullspace.sandbox.exec", {"id": sandbox_id, "argv": ["echo", "hi"]})
        assert hi["stdout"] == "hi\n" and hi["exit_code"] == 0

        # A command that fails is an error result that still carries its output and exit code.
        three = await mcp.call("nullspace.sandbox.exec", {"id": sandbox_id, "shell": "echo out; echo err >&2; exit 3"})
        assert three.isError
        assert three.structuredContent["exit_code"] == 3
        assert three.structuredContent["stdout"] == "out\n" and "err" in three.structuredContent["stderr"]
        assert three.structuredContent["error"]["exit_code"] == 3

        content = f"from mcp {RUN_ID}\n-n is no flag here"
        await mcp.ok("nullspace.sandbox.file.write", {"id": sandbox_id, "path": "/workspace/mcp.txt", "content": content})
        read = await mcp.ok("nullspace.sandbox.file.read", {"id": sandbox_id, "path": "/workspace/mcp.txt"})
        assert read["content"] == content
        cat = await mcp.ok("nullspace.sandbox.exec", {"id": sandbox_id, "argv": ["cat", "/workspace/mcp.txt"]})
        assert cat["stdout"] == content

        # Arguments that do not fit the schema are error results that say what is wrong.
        bad = await mcp.call("nullspace.sandbox.exec", {"id": sandbox_id, "shell": "true", "timeout": "soon"})
        assert bad.isError
        assert bad.structuredContent["error"]["code"] == "invalid_arguments"
        assert "`timeout` must be an integer" in bad.structuredContent["error"]["message"]
        unknown_arg = await mcp.call("nullspace.sandbox.get", {"id": sandbox_id, "verbose": True})
        assert unknown_arg.isError and "`verbose` is no argument" in _text(unknown_arg)
        # A value clap refuses comes back with clap's message.
        refused = await mcp.call("nullspace.sandbox.file.chmod", {"id": sandbox_id, "path": "/workspace/mcp.txt", "mode": "999"})
        assert refused.isError and "octal mode" in refused.structuredContent["error"]["message"]
        # An unknown tool is a protocol error (invalid params).
        with pytest.raises(McpError) as unknown_tool:
            await mcp.call("nullspace.sandbox.teleport", {"id": sandbox_id})
        assert unknown_tool.value.error.code == -32602 and "no tool named" in unknown_tool.value.error.message

        killed = await mcp.ok("nullspace.sandbox.kill", {"id": sandbox_id})
        assert killed == {"id": sandbox_id, "killed": True}
        gone = await mcp.call("nullspace.sandbox.get", {"id": sandbox_id})
        assert gone.isError
        assert "not found" in gone.structuredContent["error"]["message"].lower()

    asyncio.run(_with_session(_serve(server, cli), ids, body))
    with server.http() as http:
        assert http.get(f"/v1/sandboxes/{ids[0]}").status_code == 404


def test_api_flags_of_serve_reach_the_tool_calls(server, cli):
    env = cli.env()
    env.pop("NULLSPACE_API_URL")
    env.pop("NULLSPACE_API_KEY")
    params = _serve(server, cli, ["--api-url", server.url, "--api-key", server.key, "--json"], env=env)

    async def body(mcp: Session) -> None:
        templates = await mcp.ok("nullspace.template.list", {})
        assert "base" in json.dumps(templates)

    asyncio.run(_with_session(params, [], body))

    async def wrong_key(mcp: Session) -> None:
        denied = await mcp.call("nullspace.template.list", {})
        assert denied.isError and denied.structuredContent["error"]["code"] == "unauthorized"

    bad = _serve(server, cli, ["--api-url", server.url, "--api-key", "ns_wrong_key_for_the_mcp_test"], env=env)
    asyncio.run(_with_session(bad, [], wrong_key))


def test_only_the_stdio_transport_exists(server, cli):
    proc = subprocess.run(
        [server.binary, "mcp", "serve", "--transport", "http"],
        capture_output=True,
        text=True,
        env=cli.env(),
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "stdio only" in proc.stderr
