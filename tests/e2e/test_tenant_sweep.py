"""Cross-tenant sweep, generated from the server's own `/openapi.json` (so a new route is swept without
editing this file): tenant A creates one object of each kind it can (a running sandbox with a file, a
snapshot, a volume mounted into the sandbox, a webhook, a preview grant, a template name claim); tenant B
then calls every operation whose path has a parameter with A's ids and must get a 404 in the error
envelope that names nothing of A's but the id it sent. WebSocket routes are asked for an upgrade, which
must be refused with the same 404. Every list route (a GET without path parameters) answers B without any
of A's objects. Where A has no object of a kind (template builds, blobs, deliveries), a made-up id stands in,
so the route is still swept for answers that crash or leak."""

from __future__ import annotations

import re
from typing import Any

import httpx

from conftest import RUN_ID, unique

WS_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
# Routes that need no key at all: their credential is in the URL (signed tokens, viewer keys) or they hold
# nothing of a tenant's; the sweep is about a key of another tenant.
NO_KEY_PREFIXES = ("/v1/signed/", "/v1/desktop/viewer-assets/")
NO_KEY_SUFFIXES = ("/desktop/viewer", "/desktop/viewer/ws")

# A body that passes each route's own validation, so a 404 proves the ownership check, not a 400 on the
# body. Routes not listed get `{}`.
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/v1/sandboxes/{id}/timeout"): {"timeout_ms": 60_000},
    ("post", "/v1/sandboxes/{id}/host"): {"port": 8080},
    ("post", "/v1/sandboxes/{id}/files/download-url"): {"path": "/workspace/secret.txt"},
    ("post", "/v1/sandboxes/{id}/files/upload-url"): {"path": "/workspace/up.txt"},
    ("post", "/v1/volumes/{vid}/files/download-url"): {"path": "/secret.txt"},
    ("post", "/v1/volumes/{vid}/files/upload-url"): {"path": "/up.txt"},
    ("post", "/v1/templates/builds/{bid}/promote"): {"tag": "v1"},
    ("post", "/v1/templates/refs/{ref}/tags"): {"tags": ["v2"]},
    ("patch", "/v1/templates/refs/{ref}/visibility"): {"visibility": "public"},
    ("post", "/v1/templates/refs/{ref}/rename"): {"new_name": "stolen"},
    ("patch", "/v1/lifecycle/webhooks/{wid}"): {"enabled": False},
    ("patch", "/v1/template-warm-pools/{id}"): {"min_ready": 0},
}


# Path parameters that name content, not an object of a tenant: a template blob's id is the digest of its
# bytes, so B's PUT is checked against B's own body (no 404 to expect; the leak and crash checks still apply).
CONTENT_ADDRESSED = {"blob_id"}


def _error_code(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    return body.get("code", "") if isinstance(body, dict) else ""


def _is_websocket(op: dict[str, Any]) -> bool:
    return "101" in op.get("responses", {})


class TenantA:
    """A's objects, and the texts that must never reach B."""

    def __init__(self, server, sandboxes) -> None:
        marker = f"sweep-secret-{RUN_ID}"
        self.sandbox = sandboxes.create(metadata={"sweep": marker})
        self.sandbox.files.write("/workspace/secret.txt", marker)
        with server.http() as http:
            self.volume = http.post("/v1/volumes", json={"name": unique("sweepvol")}).raise_for_status().json()
            self.attachment = http.post(
                f"/v1/sandboxes/{self.sandbox.id}/volumes",
                json={"ref": self.volume["id"], "mount_path": "/mnt/sweep"},
            ).raise_for_status().json()
            self.snapshot = http.post(f"/v1/sandboxes/{self.sandbox.id}/snapshots", json={}).raise_for_status().json()
            self.webhook = http.post(
                "/v1/lifecycle/webhooks",
                json={"url": f"http://127.0.0.1:9/{marker}", "operations": ["create"], "signing_secret": marker},
            ).raise_for_status().json()
            self.grant = http.post(
                f"/v1/sandboxes/{self.sandbox.id}/ports/8080/signed-preview-url", json={}
            ).raise_for_status().json()
            claim = http.post("/v1/templates/claims", json={"template_ref": unique("sweeptmpl")})
            self.claim = claim.json() if claim.status_code < 300 else {}
        grant_id = self.grant.get("grant_id") or self.grant.get("id") or "pvg_missing"
        self.secrets: set[str] = set()
        self.values = {
            "id": self.sandbox.id,
            "vid": self.volume["id"],
            "name": self.volume["name"],
            "att": self.attachment["id"],
            "wid": self.webhook["id"],
            "grant_id": grant_id,
            "port": "8080",
            "token": self.claim.get("claim_token") or "claim_missing",
            "blob_id": "sha256:" + "5" * 64,
            "action": "disable",
        }
        if self.claim.get("claim_token"):
            self.secrets.add(self.claim["claim_token"])
        self.secrets |= {
            self.sandbox.id, self.volume["id"], self.volume["name"], self.attachment["id"], self.snapshot["id"],
            self.webhook["id"], grant_id, marker,
        }  # fmt: skip

    def value(self, path: str, name: str) -> str:
        if name == "id" and path.startswith("/v1/snapshots/"):
            return self.snapshot["id"]
        if name == "id" and path.startswith("/v1/template-warm-pools/"):
            return "twp_sweep_missing"
        if name == "id" and path.startswith("/v1/templates/"):
            return "tmpl_sweep_missing"
        if name == "rest":
            return "files?path=/workspace/secret.txt" if "/code/" not in path and "/desktop/" not in path else "contexts"
        return self.values.get(name, f"{name}_sweep_missing")


def _leaks(text: str, secrets: set[str], sent: set[str]) -> list[str]:
    return sorted(s for s in secrets - sent if s in text)


def test_other_tenant_gets_404_on_every_route_with_an_id(server, second_key, sandboxes):
    a = TenantA(server, sandboxes)
    doc = httpx.get(f"{server.url}/openapi.json").raise_for_status().json()
    problems: list[str] = []
    swept = 0
    with server.http(second_key) as http:
        for path, item in doc["paths"].items():
            names = re.findall(r"{([^}]+)}", path)
            if not names or path.startswith(NO_KEY_PREFIXES) or path.endswith(NO_KEY_SUFFIXES):
                continue
            sent = {a.value(path, name) for name in names}
            url = path
            for name in names:
                url = url.replace("{" + name + "}", a.value(path, name))
            for method, op in item.items():
                swept += 1
                headers = WS_HEADERS if _is_websocket(op) else {}
                body = BODIES.get((method, path), {}) if method in ("post", "put", "patch") else None
                resp = http.request(method.upper(), url, json=body, headers=headers)
                where = f"{method.upper()} {url}"
                if CONTENT_ADDRESSED & set(names):
                    if resp.status_code >= 500:
                        problems.append(f"{where}: {resp.status_code} {resp.text[:200]}")
                elif resp.status_code != 404:
                    problems.append(f"{where}: {resp.status_code} (want 404) {resp.text[:200]}")
                elif not _error_code(resp).endswith("not_found"):
                    problems.append(f"{where}: 404 without a *_not_found envelope: {resp.text[:200]}")
                leaked = _leaks(resp.text + str(resp.headers), a.secrets, sent)
                if leaked:
                    problems.append(f"{where}: answer names A's {leaked}")
    assert swept > 50, f"only {swept} operations swept: is /openapi.json complete?"
    assert not problems, f"{len(problems)} of {swept} operations failed the sweep:\n" + "\n".join(problems)
    # A's objects are untouched by B's calls.
    assert a.sandbox.is_running()
    assert a.sandbox.files.read("/workspace/secret.txt").startswith("sweep-secret-")
    with server.http() as http:
        assert http.get(f"/v1/snapshots/{a.snapshot['id']}").status_code == 200
        assert http.get(f"/v1/volumes/{a.volume['id']}").status_code == 200
        assert http.get(f"/v1/lifecycle/webhooks/{a.webhook['id']}").json()["enabled"] is True


def test_other_tenant_lists_show_nothing_of_the_first(server, second_key, sandboxes):
    a = TenantA(server, sandboxes)
    doc = httpx.get(f"{server.url}/openapi.json").raise_for_status().json()
    problems: list[str] = []
    listed = 0
    with server.http(second_key) as http:
        for path, item in doc["paths"].items():
            op = item.get("get")
            if op is None or "{" in path or _is_websocket(op) or path in ("/healthz", "/openapi.json"):
                continue
            listed += 1
            # Filters naming A's objects must not reach them either.
            for params in ({}, {"sandbox_id": a.sandbox.id, "snapshot_id": a.snapshot["id"]}):
                resp = http.get(path, params=params)
                leaked = _leaks(resp.text, a.secrets, set())
                if leaked:
                    problems.append(f"GET {path} {params}: answer names A's {leaked}")
                if resp.status_code >= 500:
                    problems.append(f"GET {path} {params}: {resp.status_code} {resp.text[:200]}")
    assert listed >= 6, f"only {listed} list routes found in /openapi.json"
    assert not problems, "\n".join(problems)
    # and A does see its own objects on the same routes (the check above can fail)
    with server.http() as http:
        assert a.sandbox.id in http.get("/v1/sandboxes").text
        assert a.snapshot["id"] in http.get("/v1/snapshots").text
        assert a.volume["id"] in http.get("/v1/volumes").text
        assert a.webhook["id"] in http.get("/v1/lifecycle/webhooks").text
