"""Times create, fork, hibernate+resume and snapshot against a running server (median of N).

Usage: measure-sandbox-ops.py URL API_KEY N [DISK_MB|-] [MIB_WRITTEN] (run with the e2e venv's python).
"""
import statistics, sys, time
from nullspace import Sandbox

url, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
disk = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
write_mib = int(sys.argv[5]) if len(sys.argv) > 5 else 0
times = {"create": [], "fork": [], "hibernate": [], "resume": [], "snapshot": []}
def t(name, fn):
    s = time.monotonic(); r = fn(); times[name].append((time.monotonic() - s) * 1000); return r
for _ in range(n):
    kw = {"disk_mb": disk} if disk else {}
    sb = t("create", lambda: Sandbox.create(api_key=key, base_url=url, timeout=600, **kw))
    if write_mib:
        sb.commands.run("sh", ["-c", f"dd if=/dev/urandom of=/tmp/data bs=1M count={write_mib} 2>/dev/null; sync"])
    snap = t("snapshot", lambda: sb.create_snapshot())
    child = t("fork", lambda: sb.fork())
    child.kill()
    h = t("hibernate", lambda: sb.hibernate())
    r = t("resume", lambda: Sandbox.resume(h.id, api_key=key, base_url=url))
    r.kill()
print(f"disk_mb={disk} write={write_mib}MiB n={n}: " + ", ".join(f"{k} {statistics.median(v):.0f} ms" for k, v in times.items()))
