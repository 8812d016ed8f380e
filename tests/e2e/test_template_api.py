"""Template API end to end, through the official client and raw HTTP against the real server: builtins,
refs and their 404s, the build-context blob store (preflight, checked uploads, per tenant), validate and
plan, builds that fail before the engine (unknown blob) or in it, status polling by offset, the SSE log
streams, cancel, retry, namespaces and name claims. Successful builds are tested with the build engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from nullspace import Template, TemplateBuild
from nullspace.errors import FileUploadError, SandboxError

from conftest import unique


def ref_path(ref: str) -> str:
    return f"/v1/templates/refs/{quote(ref, safe='')}"


def sse_entries(response: httpx.Response) -> list[dict]:
    entries = []
    for line in response.iter_lines():
        if line.startswith("data:"):
            entries.append(json.loads(line[5:].strip()))
    return entries


def unknown_blob_build(http: httpx.Client, name: str) -> str:
    resp = http.post(
        "/v1/templates/builds",
        json={
            "name": name,
            "base_image": "ubuntu:22.04",
            "tags": ["default"],
            "steps": [{"action": "copy", "src": "builder-context/step-0/src-0/missing.txt", "dst": "/workspace/missing.txt"}],
            "build_context": {
                "files": [
                    {
                        "path": "builder-context/step-0/src-0/missing.txt",
                        "entry_type": "file",
                        "blob_id": "blob_missing",
                        "mode": "0644",
                    }
                ]
            },
        },
    )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] in {"waiting", "building", "error"}
    assert body["name"] == name and body["tags"] == ["default"]
    assert body["build_id"].startswith("tb_") and body["template_id"].startswith("tmpl_")
    return body["build_id"]


def test_builtins_are_listed_and_resolve_by_every_builtin_ref(server):
    listed = Template.list(api_key=server.key, base_url=server.url)
    base = next(item for item in listed if item.id == "base")
    assert base.builtin is True
    assert base.canonical_ref == "nullspace/base"
    assert base.namespace_slug == "nullspace"
    assert base.visibility.value == "public"
    for ref in ["base", "nullspace/base", "nullspace/base:default"]:
        assert Template.exists(ref, api_key=server.key, base_url=server.url) is True, ref
        assert Template.get(ref, api_key=server.key, base_url=server.url).id == "base"
    with server.http() as http:
        raw = http.get("/v1/templates").json()
    assert isinstance(raw, list)
    assert any(item["id"] == "base" and item["builtin"] is True for item in raw)


def test_unknown_and_malformed_refs_are_template_not_found(server):
    for ref in [unique("missing"), "tmpl_doesnotexist", f"{unique('x')}:stable", "someone-else/app", "bad ref!", "a/b/c"]:
        assert Template.exists(ref, api_key=server.key, base_url=server.url) is False, ref
        with server.http() as http:
            resp = http.get(ref_path(ref))
        assert resp.status_code == 404, (ref, resp.text)
        assert resp.json()["code"] == "template_not_found"
    with server.http() as http:
        resp = http.get("/v1/templates/builds/tb_doesnotexist")
        assert resp.status_code == 404 and resp.json()["code"] == "build_not_found"
        resp = http.post(ref_path("base") + "/tags", json={"tags": ["x"]})
        assert resp.status_code == 400, "builtins cannot be retagged"


def test_blob_preflight_asks_only_for_missing_blobs_and_uploads_are_checked(server, second_key):
    content = f"context {unique()}\n".encode()
    sha = hashlib.sha256(content).hexdigest()
    files = [
        {"path": "builder-context/step-0/src-0", "entry_type": "dir", "mode": "0755"},
        {"path": "builder-context/step-0/src-0/a.txt", "entry_type": "file", "mode": "0644", "sha256": sha, "size_bytes": len(content)},
    ]
    with server.http() as http:
        first = http.post("/v1/templates/blobs/preflight", json={"files": files})
        assert first.status_code == 200, first.text
        answer = first.json()["files"]
        assert [item["path"] for item in answer] == [f["path"] for f in files]
        assert answer[0]["entry_type"] == "dir" and answer[0]["missing"] is False
        blob_id = answer[1]["blob_id"]
        assert answer[1]["missing"] is True and isinstance(blob_id, str) and blob_id

        put = lambda body: http.put(f"/v1/templates/blobs/{blob_id}", content=body, headers={"Content-Type": "application/octet-stream"})
        wrong = put(content + b"tampered")
        assert wrong.status_code == 400 and wrong.json()["code"] == "file_upload_error", wrong.text
        again = http.post("/v1/templates/blobs/preflight", json={"files": files}).json()["files"]
        assert again[1]["missing"] is True, "a refused upload stores nothing"

        assert put(content).status_code in {200, 201, 204}
        again = http.post("/v1/templates/blobs/preflight", json={"files": files}).json()["files"]
        assert again[1] == {**answer[1], "missing": False}
        forced = [{**files[1], "force_upload": True}]
        assert http.post("/v1/templates/blobs/preflight", json={"files": forced}).json()["files"][0]["missing"] is True

        bad = http.put("/v1/templates/blobs/not-a-blob-id", content=content)
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
        escape = http.post("/v1/templates/blobs/preflight", json={"files": [{"path": "../x", "entry_type": "file", "sha256": sha}]})
        assert escape.status_code == 400 and escape.json()["code"] == "invalid_request"
    with server.http(second_key) as other:
        theirs = other.post("/v1/templates/blobs/preflight", json={"files": files}).json()["files"]
        assert theirs[1]["missing"] is True, "blobs are per tenant"


def test_validate_and_plan_answer_in_the_clients_shapes(server, tmp_path: Path):
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "hello.txt").write_text("hello\n")
    builder = Template().from_image("debian:stable-slim").run_cmd("echo hi").copy(str(payload), "/opt/app/")
    result = Template.validate(builder, name=unique("validate"), api_key=server.key, base_url=server.url)
    assert result.valid is True and result.errors == []
    plan = Template.plan(builder, name=unique("plan"), api_key=server.key, base_url=server.url)
    assert plan.requires_base_image_auth is False
    assert plan.source_type.value == "declarative"
    assert plan.context_manifest is not None and plan.context_manifest.file_count >= 1
    with server.http() as http:
        both = http.post("/v1/templates/validate", json={"base_image": "debian", "dockerfile": "FROM debian"}).json()
        assert both["valid"] is False
        assert all(isinstance(e["code"], str) and isinstance(e["message"], str) for e in both["errors"])
        bad_tag = http.post("/v1/templates/validate", json={"base_image": "debian", "tags": ["tb_nope"]}).json()
        assert bad_tag["valid"] is False
        refused = http.post("/v1/templates/plan", json={"steps": []})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_request"


def test_a_build_with_an_unknown_blob_fails_with_the_typed_preflight_error(server):
    with server.http() as http:
        build_id = unknown_blob_build(http, unique("py-sdk-template-error"))
    build = TemplateBuild.connect(build_id, api_key=server.key, base_url=server.url)
    try:
        with pytest.raises(FileUploadError) as exc_info:
            build.wait_until_terminal(poll_interval=0.1)
        assert exc_info.value.code == "file_upload_error"
        assert exc_info.value.phase.value == "preflight"
        assert exc_info.value.details["reason"] == "unknown_blob"
        assert exc_info.value.build_id == build_id
    finally:
        build.close()


def test_status_polling_by_offset_and_the_log_stream_of_a_failed_build(server, second_key):
    with server.http() as http:
        build_id = unknown_blob_build(http, unique("poll"))
        build = TemplateBuild.connect(build_id, api_key=server.key, base_url=server.url)
        with pytest.raises(FileUploadError):
            build.wait_until_terminal(poll_interval=0.1)
        full = build.get_status(offset=0)
        assert full.build.status.value == "error"
        kinds = [entry.kind.value for entry in full.entries]
        assert kinds[0] == "start" and kinds[-1] == "error", kinds
        assert [entry.offset for entry in full.entries] == list(range(len(full.entries)))
        assert full.next_offset == len(full.entries)
        assert all(e.build_id == build_id and e.template_id == full.build.template_id for e in full.entries)
        assert full.entries[-1].error_detail.details["reason"] == "unknown_blob"
        tail = build.get_status(offset=full.next_offset)
        assert tail.entries == [] and tail.next_offset == full.next_offset
        assert build.get_status(offset=0).entries == full.entries
        middle = build.get_status(offset=1)
        assert middle.entries == full.entries[1:]

        raw = http.get(f"/v1/templates/builds/{build_id}", params={"offset": 0}).json()
        assert raw["build"]["error_detail"]["code"] == "file_upload_error"
        assert raw["build"]["failure_phase"] == "preflight"
        assert isinstance(raw["next_offset"], int) and not isinstance(raw["next_offset"], bool)

        for follow in ["true", "false"]:
            with http.stream("GET", f"/v1/templates/builds/{build_id}/logs", params={"follow": follow, "offset": 0}) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                streamed = sse_entries(resp)
            assert [e["offset"] for e in streamed] == [e.offset for e in full.entries]
        with http.stream("GET", f"/v1/templates/builds/{build_id}/logs", params={"cursor": str(full.next_offset - 1)}) as resp:
            assert [e["kind"] for e in sse_entries(resp)] == ["error"]

        # Cancelling a finished build changes nothing; the answer is its status snapshot.
        cancelled = http.post(f"/v1/templates/builds/{build_id}/cancel", json={}).json()
        assert cancelled["build"]["status"] == "error" and cancelled["next_offset"] == full.next_offset

        listed = Template.list_builds(full.build.template_id, api_key=server.key, base_url=server.url)
        assert [b.build_id for b in listed.builds] == [build_id]
    with server.http(second_key) as other:
        for path in [f"/v1/templates/builds/{build_id}", f"/v1/templates/builds/{build_id}/logs"]:
            resp = other.get(path)
            assert resp.status_code == 404 and resp.json()["code"] == "build_not_found", path
        assert other.post(f"/v1/templates/builds/{build_id}/cancel", json={}).status_code == 404


def test_the_build_stream_ends_with_the_error_entry_and_retry_makes_a_new_build(server):
    name = unique("stream")
    request = {
        "name": name,
        "base_image": "ubuntu:22.04",
        "steps": [{"action": "run", "command": "echo hi"}],
        "build_envs": {"LONG_ENV": "build-env-value-1234"},
        "build_secrets": [{"id": "TOKEN", "value": "very-secret-value-5678", "source": "value"}],
    }
    with server.http() as http:
        with http.stream("POST", "/v1/templates/build", json=request, timeout=900) as resp:
            assert resp.status_code == 200
            entries = sse_entries(resp)
        assert entries[0]["kind"] == "start" and entries[-1]["kind"] in {"error", "end"}
        assert [e["offset"] for e in entries] == list(range(len(entries)))
        text = json.dumps(entries)
        assert "very-secret-value-5678" not in text and "build-env-value-1234" not in text
        build_id = entries[0]["build_id"]
        if entries[-1]["kind"] == "error":
            detail = entries[-1]["error_detail"]
            assert isinstance(detail["retryable"], bool) and isinstance(detail["suggested_action"], str)
            assert detail["build_id"] == build_id

        retry = http.post(f"/v1/templates/builds/{build_id}/retry", json={"tags": ["again"]})
        assert retry.status_code in {200, 202}, retry.text
        retried = retry.json()
        assert retried["build_id"] != build_id and retried["retry_of_build_id"] == build_id
        assert retried["name"] == name and retried["tags"] == ["again"]
        legacy = http.post(
            "/v1/templates",
            json={"base_image": "ubuntu:22.04", "steps": [{"action": "run", "command": "echo hi"}], "envs": {"FOO": "bar"},
                  "start_cmd": "sleep infinity", "alias": unique("legacy"), "cpu_count": 1, "memory_mb": 256},
        )
        assert legacy.status_code == 201, legacy.text
        assert legacy.json()["id"].startswith("tmpl_")
        http.delete(f"/v1/templates/{legacy.json()['id']}")


def test_namespaces_and_name_claims(server):
    system = Template.get_namespace("nullspace", api_key=server.key, base_url=server.url)
    assert system.kind.value == "system"
    name = unique("claimed")
    claim = Template.reserve_name(name, api_key=server.key, base_url=server.url)
    slug, _, claimed = claim.canonical_ref.partition("/")
    assert claimed == name and slug and slug != "nullspace"
    own = Template.get_namespace(slug, api_key=server.key, base_url=server.url)
    assert own.kind.value == "user" and own.is_default is True
    Template.release_name_claim(claim.claim_token, api_key=server.key, base_url=server.url)
    with pytest.raises(SandboxError):
        Template.get_namespace(unique("nobody"), api_key=server.key, base_url=server.url)
