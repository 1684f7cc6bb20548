"""Load, big bodies, graceful restarts and the environment Apache is started from."""
from __future__ import annotations

import concurrent.futures as cf
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from harness import Apache, rss_kib

APPS = Path(__file__).parent / "apps"

CONF = """
PythonPath "sys.path + ['@ROOT@/apps']"
<Location /s>
    SetHandler modpy
</Location>
<Location /s/hello>
    PythonHandler stress::hello
</Location>
<Location /s/echo>
    PythonHandler stress::echo
</Location>
<Location /s/count>
    PythonHandler stress::count
</Location>
<Location /s/env>
    PythonHandler stress::env
</Location>
LimitRequestBody 0
"""


def start(apache: Callable[..., Apache], **kw) -> Apache:
    a = apache(CONF, start=False, **kw)
    shutil.copytree(APPS, a.root / "apps", dirs_exist_ok=True)
    return a.start()


def test_1gib_post_read_in_chunks_keeps_rss_flat(apache: Callable[..., Apache]) -> None:
    a = start(apache, processes=1, threads=4)
    size = 1 << 30
    chunk = b"\x5a" * (1 << 20)

    def body():
        for _ in range(size // len(chunk)):
            yield chunk

    status, _, out = a.request("POST", "/s/count", body=body(), headers={"Content-Length": str(size)}, timeout=120)
    assert status == 200, out
    r = json.loads(out)
    assert r["total"] == size
    # The child's RSS while reading 1 GiB stays within a few MiB of where it started.
    assert r["peak"] - r["start"] < 16 * 1024, r


def test_concurrency_24_threads_x_40_requests(apache: Callable[..., Apache]) -> None:
    # 24 worker threads for 24 keep-alive clients.
    a = start(apache, threads=12)
    payload = os.urandom(100_000)
    reconnects = [0]

    def exchange(c: http.client.HTTPConnection, j: int) -> bool:
        if j % 4 == 3:
            c.request("POST", "/s/echo", body=payload)
            r = c.getresponse()
            return r.status == 200 and r.read() == payload
        c.request("GET", "/s/hello")
        r = c.getresponse()
        return r.status == 200 and r.read() == b"Hello, World!\n"

    def client(i: int) -> int:
        ok = 0
        c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
        used = False
        for j in range(40):
            try:
                ok += exchange(c, j)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A server may close an idle keep-alive connection at any time (mpm_event does
                # when all its workers are busy); clients retry on a new one, as browsers and
                # urllib3 do. A failure on a fresh connection is a real failure.
                if not used:
                    raise
                reconnects[0] += 1
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
                ok += exchange(c, j)
            used = True
        c.close()
        return ok

    with cf.ThreadPoolExecutor(24) as ex:
        results = list(ex.map(client, range(24)))
    assert results == [40] * 24
    print(f"keep-alive connections closed by the server and reopened: {reconnects[0]}")
    log = a.log_text()
    assert "[py:error]" not in log and "exit signal" not in log, log[-3000:]


def test_graceful_restarts_under_load(apache: Callable[..., Apache]) -> None:
    # Children are also recycled every 50 connections while restarting.
    a = start(apache, max_requests=50)
    stop = threading.Event()
    failures: list[str] = []
    done = [0]

    def load() -> None:
        while not stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
                c.request("GET", "/s/hello")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status != 200 or body != b"Hello, World!\n":
                    failures.append(f"{r.status} {body[:100]!r}")
                done[0] += 1
            except Exception as e:  # any refused/reset connection is a failure
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    rss = []
    try:
        for i in range(20):
            time.sleep(0.3)
            before = a.log_text().count("resuming normal operations")
            a.graceful()
            # Wait for this restart to complete before the next (signals sent during a
            # restart are merged by Apache, which a loaded machine makes likely).
            deadline = time.time() + 15
            while a.log_text().count("resuming normal operations") <= before and time.time() < deadline:
                time.sleep(0.05)
            rss.append(rss_kib(a.pid))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures, failures[:10]
    assert done[0] > 100
    log = a.log_text()
    assert log.count("resuming normal operations") >= 21
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    # The parent (no Python in it) does not grow across restarts.
    assert rss[-1] - rss[4] < 1024, rss


def test_hostile_path_and_pythonhome_do_not_change_python(apache: Callable[..., Apache], tmp_path: Path) -> None:
    # A venv of the same Python version first on PATH (what breaks mod_python: "No module
    # named 'encodings'"), and PYTHONHOME pointing at nothing.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable if False else "/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {"PATH": f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONHOME": "/nonexistent"}
    a = start(apache, env=env)
    status, _, out = a.get("/s/env")
    assert status == 200, out
    r = json.loads(out)
    assert r["prefix"] == "/usr" and r["base_prefix"] == "/usr" and r["executable"] == "/usr/bin/python3"
    assert r["env_path"].startswith(str(venv))
    assert "No module named 'encodings'" not in a.log_text()
