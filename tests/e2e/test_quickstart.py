"""The README quickstart (sync and async), exactly as a new user runs it, with api_key/base_url passed."""

from __future__ import annotations

import asyncio
import time
import warnings

import httpx
import pytest

from nullspace import AsyncSandbox, NotFoundError, Sandbox


def _fetch_listing(url: str) -> str | None:
    """GET the preview URL for up to 10 s; the body of the first 200, or None if never reachable."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(url, timeout=3, follow_redirects=True)
            if resp.status_code == 200:
                return resp.text
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return None


def test_sync_quickstart(server, capsys):
    api_key, base_url = server.key, server.url

    with Sandbox.create(api_key=api_key, base_url=base_url) as sandbox:
        # Run a command
        result = sandbox.commands.run("echo 'Hello from Nullspace!'", shell=True)
        print(result.stdout)

        # Work with files
        sandbox.files.write("/hello.txt", "world")
        print(sandbox.files.read("/hello.txt"))

        # Expose a port
        server_cmd = sandbox.commands.run(
            "python3 -m http.server 8080",
            background=True,
            shell=True,
        )
        url = sandbox.get_url(8080)
        print(url)

        assert result.exit_code == 0
        assert result.stdout == "Hello from Nullspace!\n"
        assert sandbox.files.read("/hello.txt") == "world"
        assert isinstance(server_cmd.pid, int) and server_cmd.pid > 0
        assert url.startswith("http://") or url.startswith("https://"), url
        body = _fetch_listing(url)
        if body is None:
            warnings.warn(f"preview URL {url} was not reachable within 10 s; listing not checked")
        else:
            assert "Directory listing for /" in body, body[:500]

        server_cmd.kill()
        sandbox_id = sandbox.id

    out = capsys.readouterr().out
    assert "Hello from Nullspace!" in out and "world" in out
    # Leaving the `with` block kills the sandbox.
    with pytest.raises(NotFoundError):
        Sandbox.get_info_by_id(sandbox_id, api_key=api_key, base_url=base_url)


def test_async_quickstart(server):
    api_key, base_url = server.key, server.url
    seen: dict[str, str] = {}

    async def main() -> None:
        async with await AsyncSandbox.create(api_key=api_key, base_url=base_url) as sandbox:
            result = await sandbox.commands.run("echo 'Hello from Nullspace!'", shell=True)
            print(result.stdout)
            seen["stdout"] = result.stdout

            await sandbox.files.write("/hello.txt", "world")
            content = await sandbox.files.read("/hello.txt")
            print(content)
            seen["content"] = content
            seen["id"] = sandbox.id

    asyncio.run(main())

    assert seen["stdout"] == "Hello from Nullspace!\n"
    assert seen["content"] == "world"
    with pytest.raises(NotFoundError):
        Sandbox.get_info_by_id(seen["id"], api_key=api_key, base_url=base_url)
