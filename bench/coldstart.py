#!/usr/bin/env python3
"""bench/coldstart.py -- first-request latency of a new WSGIDaemonTemplate instance (a Flask
app: the monitor starts a Python process, which imports Flask and the app), against the same
instance once warm and a statically configured WSGIDaemonProcess group, in one Apache.

Usage:  cargo build --release && python3 bench/coldstart.py [N]     (N new instances, default 10)
Needs the Flask virtualenv of the end-to-end tests (made here if missing: pip install flask).
Prints one table; writes bench/results/<stamp>-coldstart.txt.
"""
from __future__ import annotations

import http.client
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import Apache, make_readable  # noqa: E402

APPS = ROOT / "tests" / "e2e" / "wsgi_frameworks"


def venv() -> Path:
    import test_wsgi_frameworks as fw  # the tests' pinned Flask virtualenv

    return fw.fw_venv.__wrapped__() if hasattr(fw.fw_venv, "__wrapped__") else fw.fw_venv()


def timed_get(port: int, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, (time.perf_counter() - t0) * 1000


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    v = venv()
    a = Apache(f"""
WSGIDaemonTemplate cold processes=1 threads=4 python-home={v} python-path={APPS} display-name=modpy:cold:%{{ENV:INSTANCE}}
WSGIDaemonProcess static processes=1 threads=4 python-home={v} python-path={APPS}
SetEnvIf Request_URI "^/i/([a-z0-9]+)" INSTANCE=$1
WSGIScriptAliasMatch ^/i/[a-z0-9]+ {APPS}/flask_app.wsgi process-group=%{{TEMPLATE:cold}} application-group=%{{GLOBAL}}
WSGIScriptAlias /static {APPS}/flask_app.wsgi process-group=static application-group=%{{GLOBAL}}
<Directory {APPS}>
    Require all granted
</Directory>
""", mpm="event", loglevel="warn", extra_modules=("setenvif",))
    make_readable(APPS)
    a.start()
    try:
        status, _ = timed_get(a.port, "/static/form")
        cold, warm, static = [], [], []
        for i in range(n):
            s1, t1 = timed_get(a.port, f"/i/n{i}/form")
            s2, t2 = timed_get(a.port, f"/i/n{i}/form")
            s3, t3 = timed_get(a.port, "/static/form")
            assert s1 == s2 == s3 == 200, (s1, s2, s3, a.log_text()[-2000:])
            cold.append(t1)
            warm.append(t2)
            static.append(t3)
        lines = [
            f"# {time.strftime('%Y-%m-%dT%H:%M:%S')}  {n} new instances of a Flask app (GET /form), event MPM",
            f"{'request':<40} {'median ms':>10} {'min ms':>8} {'max ms':>8}",
        ]
        for name, xs in (("first request of a new instance (cold)", cold),
                         ("second request, same instance (warm)", warm),
                         ("static WSGIDaemonProcess group", static)):
            lines.append(f"{name:<40} {statistics.median(xs):>10.1f} {min(xs):>8.1f} {max(xs):>8.1f}")
        out = "\n".join(lines)
        print(out)
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        (results / f"{time.strftime('%Y%m%d-%H%M%S')}-coldstart.txt").write_text(out + "\n")
    finally:
        a.stop()
        a.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
