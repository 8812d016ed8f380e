"""Schemathesis checks of the HTTP fuzzer (`test_http_fuzz.py` loads this module through SCHEMATHESIS_HOOKS).

`nullspace_no_crash_and_envelope`: no answer is a 5xx other than the protocol's deliberate ones (503
`capacity_exceeded` / `warm_pool_unavailable`, 501 `feature_unavailable` / `not_implemented`), and every
4xx/5xx answer is the error envelope `{"error": str, "code": str}` (the desktop viewer page, a browser page,
answers its own 404 as HTML)."""

from __future__ import annotations

import json

import schemathesis

DELIBERATE_5XX = {
    503: {"capacity_exceeded", "warm_pool_unavailable"},
    501: {"feature_unavailable", "not_implemented"},
}


@schemathesis.check
def nullspace_no_crash_and_envelope(ctx, response, case):
    status = response.status_code
    if status < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if case.operation.path == "/healthz" and status == 503:
        return None  # not ready yet: the health body, documented as such
    if case.operation.path.endswith("/desktop/viewer") and content_type.startswith("text/html") and status < 500:
        return None
    try:
        body = json.loads(response.content or b"")
    except ValueError:
        raise AssertionError(f"{status} answer is not JSON: {response.content[:200]!r}")
    if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not isinstance(body.get("code"), str):
        raise AssertionError(f"{status} answer is not the error envelope: {str(body)[:300]}")
    if status >= 500 and body["code"] not in DELIBERATE_5XX.get(status, set()):
        raise AssertionError(f"server error {status} {body['code']}: {body['error'][:300]}")
    return None
