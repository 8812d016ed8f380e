"""The code interpreter with the official client: the built-in `code-interpreter` template (built by the
server's template engine from `images/code-interpreter/`), its gateway on port 8888 behind
`/v1/sandboxes/{id}/code/**`, and the kernels of every language it ships."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from nullspace import Sandbox

from conftest import unique, wait_for_builtin_template, wait_until

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def interpreter(server, module_sandboxes):
    wait_for_builtin_template(server, "code-interpreter")
    sb = Sandbox.create(template="code-interpreter", api_key=server.key, base_url=server.url)
    module_sandboxes.created.append((sb.id, server.key))
    return sb


def stdout(execution) -> str:
    return "".join(execution.logs.stdout)


def test_the_template_is_a_listed_builtin_with_its_default_memory(server, interpreter):
    listed = httpx.get(f"{server.url}/v1/templates", headers={"Authorization": f"Bearer {server.key}"}).json()
    info = next(t for t in listed if t["id"] == "code-interpreter")
    assert info["builtin"] is True and info["canonical_ref"] == "nullspace/code-interpreter"
    got = httpx.get(f"{server.url}/v1/sandboxes/{interpreter.id}", headers={"Authorization": f"Bearer {server.key}"})
    assert got.json()["config"]["memory_mb"] == 2048
    # The gateway answers through the preview path like any port.
    assert interpreter.commands.run("pwd").stdout.strip() == "/workspace"


@pytest.mark.parametrize(
    "language,code,expected",
    [
        ("python", "print(6 * 7)", "42"),
        ("javascript", "console.log([1, 2, 3].map(x => x * 2).join(','))", "2,4,6"),
        ("typescript", "const n: number = 40; console.log(n + 2)", "42"),
        ("r", "cat(sum(1:10), '\\n')", "55"),
        ("java", "int twice(int a) { return a * 2; }\nSystem.out.println(twice(21));", "42"),
        ("bash", "echo $((6 * 7))", "42"),
    ],
)
def test_every_language_runs_and_keeps_state(interpreter, language, code, expected):
    first = interpreter.run_code(code, language=language)
    assert first.error is None, first.error
    assert stdout(first).strip() == expected
    state = {
        "python": ("kept = 5", "print(kept + 1)"),
        "javascript": ("var kept = 5", "console.log(kept + 1)"),
        "typescript": ("let kept2: number = 5", "console.log(kept2 + 1)"),
        "r": ("kept <- 5", "cat(kept + 1, '\\n')"),
        "java": ("int kept = 5;", "System.out.println(kept + 1);"),
        "bash": ("KEPT=5", "echo $((KEPT + 1))"),
    }[language]
    interpreter.run_code(state[0], language=language)
    assert stdout(interpreter.run_code(state[1], language=language)).strip() == "6"


def test_results_errors_and_the_main_result(interpreter):
    result = interpreter.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
    main = [r for r in result.results if r.is_main_result]
    assert len(main) == 1 and main[0].html and "<table" in main[0].html
    failed = interpreter.run_code("raise ValueError('boom')")
    assert failed.error is not None and failed.error.name == "ValueError" and "boom" in failed.error.value
    assert stdout(interpreter.run_code("print('still here')")).strip() == "still here"


def test_a_chart_gives_one_png_result_one_chart_and_exactly_one_artifact(server, interpreter):
    seen = []
    execution = interpreter.run_code(
        "import matplotlib.pyplot as plt\n"
        "plt.bar(['Q1', 'Q2'], [10, 20]); plt.title('Revenue'); plt.xlabel('Quarter'); plt.ylabel('USD')\n"
        "plt.show()",
        on_artifact=lambda artifact: seen.append(artifact.id),
    )
    assert execution.error is None
    charts = [r.chart for r in execution.results if r.chart is not None]
    assert len(charts) == 1 and charts[0].type == "bar" and charts[0].title == "Revenue"
    assert [e.label for e in charts[0].elements] == ["Q1", "Q2"]
    assert any(r.png for r in execution.results)
    assert len(seen) == 1
    code = interpreter.code_interpreter
    artifact = code.get_artifact(seen[0])
    assert artifact.kind == "image" and artifact.mime_type == "image/png"
    data = code.download_artifact(seen[0])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and hashlib.sha256(data).hexdigest() == artifact.sha256.removeprefix("sha256:")
    assert seen[0] in [a["id"] for a in code.list_artifacts(kind="image", limit=100)["items"]]
    code.delete_artifact(seen[0])
    assert seen[0] not in [a["id"] for a in code.list_artifacts(limit=100)["items"]]


def test_envs_reach_one_execution_only_and_contexts_are_isolated(interpreter):
    code = interpreter.code_interpreter
    scoped = interpreter.run_code("import os; print(os.environ.get('SCOPED', 'unset'))", envs={"SCOPED": "yes"})
    assert stdout(scoped).strip() == "yes"
    assert stdout(interpreter.run_code("import os; print(os.environ.get('SCOPED', 'unset'))")).strip() == "unset"
    first = code.create_code_context(language="python", cwd="/tmp")
    second = code.create_code_context(language="python")
    code.run_code("secret = 'first'", context=first)
    assert stdout(code.run_code("import os; print(secret, os.getcwd())", context=first)).split() == ["first", "/tmp"]
    isolated = code.run_code("print(secret)", context=second)
    assert isolated.error is not None and isolated.error.name == "NameError"
    code.restart_code_context(first)
    assert code.run_code("print(secret)", context=first).error.name == "NameError"
    with pytest.raises(Exception, match="cwd is reserved"):
        code.create_code_context(cwd="/workspace/.nullspace/x")
    for ctx in (first, second):
        code.remove_code_context(ctx)


def test_a_timeout_and_a_dying_kernel_leave_the_interpreter_usable(interpreter):
    code = interpreter.code_interpreter
    timed = interpreter.run_code("import time; time.sleep(30)", timeout=1)
    assert timed.error is not None and timed.error.name == "TimeoutError"
    assert stdout(interpreter.run_code("print('after timeout')")).strip() == "after timeout"
    doomed = code.create_code_context(language="python")
    died = code.run_code("import os; os._exit(3)", context=doomed)
    assert died.error is not None
    assert stdout(code.run_code("print('replaced')", context=doomed)).strip() == "replaced"
    assert stdout(interpreter.run_code("print('others fine')")).strip() == "others fine"
    code.remove_code_context(doomed)


def test_pip_installs_from_the_network_into_the_kernel(interpreter):
    installed = interpreter.run_code("!pip install --quiet humanize==4.9.0\nimport humanize\nprint(humanize.intcomma(1234567))")
    assert installed.error is None, (installed.error, installed.logs.stdout, installed.logs.stderr)
    assert stdout(installed).strip().endswith("1,234,567")


def _create_reasons(server, sandbox_id: str) -> list:
    with server.http() as http:
        events = http.get(f"/v1/sandboxes/{sandbox_id}/lifecycle", params={"order": "asc"}).json()["events"]
    return [e.get("reason") for e in events if e["operation"] == "create"]


def test_a_create_takes_a_started_sandbox_of_the_builtin_pool_and_its_kernel_gets_the_envs(
    server, second_key, sandboxes
):
    """The server keeps one code-interpreter sandbox started for every tenant (`--builtin-warm-pool`,
    default code-interpreter=1): a create with default size takes it, gateway and kernel already
    running; the create's envs reach that kernel (set before its first code), and the sandbox is the
    creating tenant's alone from then on."""
    wait_for_builtin_template(server, "code-interpreter")

    def warm_create():
        sb = Sandbox.create(
            template="code-interpreter", envs={"CREATE_VAR": "from-create"}, api_key=server.key, base_url=server.url
        )
        sandboxes.created.append((sb.id, server.key))
        if _create_reasons(server, sb.id) == ["warm_pool", "warm_pool"]:
            return sb
        sb.kill()  # the pool was still refilling after an earlier create: this one started cold
        return None

    sb = wait_until(warm_create, timeout=300, interval=2, what="a create served by the built-in pool")
    # Its default kernel started before the create: the first execution is its first, and sees the envs.
    first = sb.run_code("import os\nos.environ.get('CREATE_VAR')")
    assert first.error is None and first.execution_count == 1
    assert [r.text for r in first.results if r.is_main_result] == ["'from-create'"]
    for language, code in [("bash", "echo $CREATE_VAR"), ("javascript", "console.log(process.env.CREATE_VAR)")]:
        got = sb.run_code(code, language=language)
        assert got.error is None and stdout(got).strip() == "from-create", (language, got)
    assert sb.commands.run("echo $CREATE_VAR", shell=True).stdout.strip() == "from-create"
    assert sb.id in {s.id for s in Sandbox.list(api_key=server.key, base_url=server.url)}
    # Another tenant neither lists nor reaches it.
    assert sb.id not in {s.id for s in Sandbox.list(api_key=second_key, base_url=server.url)}
    foreign = httpx.get(f"{server.url}/v1/sandboxes/{sb.id}", headers={"Authorization": f"Bearer {second_key}"})
    assert foreign.status_code == 404
    foreign_code = httpx.post(
        f"{server.url}/v1/sandboxes/{sb.id}/code/execute",
        headers={"Authorization": f"Bearer {second_key}"},
        json={"code": "1", "language": "python"},
    )
    assert foreign_code.status_code == 404


def test_a_cold_create_gives_its_envs_to_every_kernel(server, sandboxes):
    """Bypassing every pool: the create's envs reach the default kernel and kernels started later."""
    wait_for_builtin_template(server, "code-interpreter")
    sb = Sandbox.create(
        template="code-interpreter",
        envs={"CREATE_VAR": "cold"},
        warm_pool_mode="bypass",
        api_key=server.key,
        base_url=server.url,
    )
    sandboxes.created.append((sb.id, server.key))
    assert "warm_pool" not in _create_reasons(server, sb.id)
    for language, code in [("python", "import os\nprint(os.environ.get('CREATE_VAR'))"), ("r", "cat(Sys.getenv('CREATE_VAR'))")]:
        got = sb.run_code(code, language=language)
        assert got.error is None and stdout(got).strip() == "cold", (language, got)


def test_a_sandbox_without_the_interpreter_says_what_to_do(server, sandboxes):
    sb = Sandbox.create(template="base", api_key=server.key, base_url=server.url)
    sandboxes.created.append((sb.id, server.key))
    answer = httpx.post(
        f"{server.url}/v1/sandboxes/{sb.id}/code/execute",
        headers={"Authorization": f"Bearer {server.key}"},
        json={"code": "1"},
    )
    assert answer.status_code >= 400
    body = answer.json()
    error = body.get("error")
    code = body.get("code") or (error.get("code") if isinstance(error, dict) else None)
    assert code == "feature_unavailable" and "code-interpreter" in answer.text


def test_files_survive_hibernate_and_kernels_start_clean_after_resume(server, sandboxes):
    wait_for_builtin_template(server, "code-interpreter")
    sb = Sandbox.create(template="code-interpreter", api_key=server.key, base_url=server.url)
    sandboxes.created.append((sb.id, server.key))
    marker = unique("kept")
    sb.run_code(f"open('/workspace/marker.txt', 'w').write({marker!r})\nvalue = 1")
    snap = sb.hibernate()
    resumed = Sandbox.resume(snap.id, api_key=server.key, base_url=server.url)
    sandboxes.created.append((resumed.id, server.key))
    assert stdout(resumed.run_code("print(open('/workspace/marker.txt').read())")).strip() == marker
    # Under runc a kernel's memory does not survive: the context comes back fresh, and says so.
    assert resumed.run_code("print(value)").error.name == "NameError"
