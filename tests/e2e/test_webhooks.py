"""Lifecycle webhooks and the monitor stream, through the official client: signed deliveries reach a
loopback receiver, are listed with their attempts, failing receivers are retried, webhooks are scoped by
tenant; the monitor sends a snapshot, metrics, processes and updates."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import RUN_ID, wait_until
from nullspace import Lifecycle, Monitor, NotFoundError, SandboxError


class Receiver:
    """A loopback HTTP server that records every POST and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(status: int = 200) -> Receiver:
        made.append(Receiver(status))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def lifecycle(server):
    lc = Lifecycle(api_key=server.key, base_url=server.url)
    created: list[str] = []
    original = lc.create_webhook

    def create_webhook(*args: Any, **kwargs: Any):
        hook = original(*args, **kwargs)
        created.append(hook.id)
        return hook

    lc.create_webhook = create_webhook  # type: ignore[method-assign]
    yield lc
    for hook_id in created:
        try:
            lc.delete_webhook(hook_id)
        except SandboxError:
            pass
    lc.close()


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["x-nullspace-timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return abs(time.time() - int(timestamp)) < 300 and hmac.compare_digest(expected, headers["x-nullspace-signature"])


def _events_for(rx: Receiver, sandbox_id: str) -> list[tuple[dict[str, str], bytes, dict[str, Any]]]:
    out = []
    for headers, body in rx.received():
        payload = json.loads(body)
        if payload["event"].get("sandbox_id") == sandbox_id:
            out.append((headers, body, payload))
    return out


def test_signed_deliveries_for_create_and_destroy(server, sandboxes, lifecycle, receiver):
    rx = receiver(200)
    secret = f"whsec-{uuid.uuid4().hex}"
    hook = lifecycle.create_webhook(rx.url, ["create", "destroy"], signing_secret=secret)
    assert hook.id.startswith("wh_") and hook.enabled and hook.has_signing_secret
    assert hook.url == rx.url
    assert [op.value for op in hook.operations] == ["create", "destroy"]
    with server.http() as http:
        raw = http.get(f"/v1/lifecycle/webhooks/{hook.id}").text
    assert secret not in raw and "signing_secret" not in json.loads(raw)
    assert hook.id in [h.id for h in lifecycle.list_webhooks()]

    sb = sandboxes.create(metadata={"e2e": RUN_ID, "test": "webhooks"})
    sb.kill()

    def arrived():
        seen = {(p["event"]["operation"], p["event"]["status"]) for _, _, p in _events_for(rx, sb.id)}
        return {("create", "succeeded"), ("destroy", "requested"), ("destroy", "succeeded")} <= seen

    wait_until(arrived, timeout=30, what="create and destroy deliveries")
    deliveries = _events_for(rx, sb.id)
    for headers, body, payload in deliveries:
        assert headers["content-type"] == "application/json"
        assert _verify(secret, headers, body), f"bad signature on {payload}"
        assert not _verify("wrong-secret", headers, body)
        assert payload["type"] == "lifecycle.event"
        assert payload["webhook_id"] == headers["x-nullspace-webhook-id"] == hook.id
        assert payload["delivery_id"] == headers["x-nullspace-delivery-id"]
        assert payload["delivery_id"].startswith("del_")
        assert payload["event"]["id"].startswith("evt_")

    # Every received delivery is listed as succeeded, with its event and attempts.
    by_id = {p["delivery_id"]: p for _, _, p in deliveries}

    def listed():
        items = {d.id: d for d in lifecycle.list_webhook_deliveries(hook.id, limit=200)}
        ok = all(did in items and items[did].delivery_status.value == "succeeded" for did in by_id)
        return items if ok else None

    items = wait_until(listed, timeout=15, what="deliveries listed as succeeded")
    for delivery_id, payload in by_id.items():
        delivery = items[delivery_id]
        assert delivery.webhook_id == hook.id
        assert delivery.event_id == payload["event"]["id"]
        assert delivery.operation.value == payload["event"]["operation"]
        assert delivery.attempt_count == 1
        detail = lifecycle.get_webhook_delivery(hook.id, delivery_id)
        assert detail.delivery.id == delivery_id
        assert detail.event.id == payload["event"]["id"]
        assert len(detail.attempts) == 1
        attempt = detail.attempts[0]
        assert attempt.id.startswith("att_") and attempt.attempt_number == 1
        assert attempt.response_status == 200 and attempt.error_code is None
        assert attempt.duration_ms >= 0
    # The lifecycle event log has the same events.
    logged = {e.id for e in lifecycle.list_events(sandbox_id=sb.id, limit=100).events}
    assert {p["event"]["id"] for p in by_id.values()} <= logged

    got = lifecycle.get_webhook(hook.id)
    assert got.last_delivery_status is not None and got.last_delivery_status.value == "succeeded"
    assert got.last_delivery_at is not None


def test_failing_receiver_is_retried_with_recorded_attempts(sandboxes, lifecycle, receiver):
    rx = receiver(500)
    hook = lifecycle.create_webhook(rx.url, ["create"], signing_secret="s")
    sb = sandboxes.create(metadata={"e2e": RUN_ID, "test": "webhook-retries"})

    def retried():
        for delivery in lifecycle.list_webhook_deliveries(hook.id):
            if delivery.attempt_count >= 2:
                return delivery
        return None

    delivery = wait_until(retried, timeout=30, what="a second attempt after a 500")
    assert delivery.delivery_status.value in ("queued", "in_progress")
    assert delivery.last_response_status == 500
    detail = lifecycle.get_webhook_delivery(hook.id, delivery.id)
    assert detail.event.sandbox_id == sb.id
    assert [a.attempt_number for a in detail.attempts][:2] == [1, 2]
    assert all(a.response_status == 500 and a.error_code == "http_status" for a in detail.attempts)
    assert len(_events_for(rx, sb.id)) >= 2
    hook_now = lifecycle.get_webhook(hook.id)
    assert hook_now.last_error and "500" in hook_now.last_error


def test_disabled_webhook_gets_nothing(sandboxes, lifecycle, receiver):
    rx = receiver(200)
    hook = lifecycle.create_webhook(rx.url, ["create"], signing_secret="s", enabled=False)
    assert not hook.enabled
    updated = lifecycle.update_webhook(hook.id, operations=["create", "destroy"])
    assert not updated.enabled and len(updated.operations) == 2
    sb = sandboxes.create(metadata={"e2e": RUN_ID, "test": "webhook-disabled"})
    sb.kill()
    time.sleep(1.5)
    assert _events_for(rx, sb.id) == []
    assert lifecycle.list_webhook_deliveries(hook.id) == []


def test_webhook_validation_and_tenancy(server, second_key, lifecycle, receiver):
    rx = receiver(200)
    with server.http() as http:
        for body in [
            {"url": "ftp://example.com/x", "operations": ["create"], "signing_secret": "s"},
            {"url": "not a url", "operations": ["create"], "signing_secret": "s"},
            {"url": rx.url, "operations": [], "signing_secret": "s"},
            {"url": rx.url, "operations": ["explode"], "signing_secret": "s"},
            {"url": rx.url, "operations": ["create"]},
        ]:
            resp = http.post("/v1/lifecycle/webhooks", json=body)
            assert resp.status_code == 400, f"{body} → {resp.status_code} {resp.text}"
            assert "invalid_request" in resp.text

    hook = lifecycle.create_webhook(rx.url, ["create"], signing_secret="s")
    other = Lifecycle(api_key=second_key, base_url=server.url)
    try:
        assert hook.id not in [h.id for h in other.list_webhooks()]
        with pytest.raises(NotFoundError):
            other.get_webhook(hook.id)
        with pytest.raises(NotFoundError):
            other.update_webhook(hook.id, enabled=False)
        with pytest.raises(NotFoundError):
            other.list_webhook_deliveries(hook.id)
        with pytest.raises(NotFoundError):
            other.delete_webhook(hook.id)
    finally:
        other.close()
    assert lifecycle.get_webhook(hook.id).enabled

    lifecycle.delete_webhook(hook.id)
    with pytest.raises(NotFoundError):
        lifecycle.get_webhook(hook.id)


def test_monitor_streams_snapshot_metrics_processes_and_updates(server, sandboxes):
    sb = sandboxes.create(metadata={"e2e": RUN_ID, "test": "monitor"})
    got: dict[str, list[Any]] = {"snapshot": [], "update": [], "metrics": [], "processes": [], "error": []}
    monitor = Monitor(api_key=server.key, base_url=server.url)
    sub = monitor.subscribe(
        interval_ms=250,
        include_processes=True,
        on_snapshot=got["snapshot"].append,
        on_update=got["update"].append,
        on_metrics=got["metrics"].append,
        on_processes=got["processes"].append,
        on_error=got["error"].append,
    )
    try:
        wait_until(lambda: got["snapshot"], timeout=10, what="monitor_snapshot")
        snapshot = got["snapshot"][0]
        mine = [s for s in snapshot.sandboxes if s.id == sb.id]
        assert mine and mine[0].status.value == "running" and mine[0].config.vcpus >= 1
        wait_until(lambda: [m for m in got["metrics"] if m.sandbox_id == sb.id], timeout=10, what="monitor_metrics")
        metrics = [m for m in got["metrics"] if m.sandbox_id == sb.id][-1].metrics
        assert metrics.cpu_percent >= 0 and metrics.mem_total_bytes > 0
        wait_until(lambda: [p for p in got["processes"] if p.sandbox_id == sb.id], timeout=10, what="monitor_processes")

        sb.kill()
        wait_until(
            lambda: [u for u in got["update"] if u.sandbox_id == sb.id and u.removed and u.sandbox is None],
            timeout=15,
            what="monitor_update removed",
        )
        assert got["error"] == []
    finally:
        sub.stop()


def test_monitor_rejects_bad_keys(server):
    resp = httpx.get(f"{server.url}/v1/monitor/ws", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
