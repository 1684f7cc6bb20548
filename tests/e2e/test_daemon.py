"""Daemon mode end to end (WSGIDaemonProcess): what only daemon mode has. The PEP 3333
behaviour of daemon mode is tested by test_wsgi.py, which runs its whole suite in both modes.

Real Apache, real worker processes (`python -m modpy.daemon` exec'd by the monitor), real
signals: workers and the monitor are killed with SIGKILL under load, Apache is restarted
gracefully under load, and the sockets are attacked as another local user."""
from __future__ import annotations

import http.client
import os
import re
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from harness import MODPY_SO, ROOT, Apache, wait_log

APP = '''
import os, sys, json, time
def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1))
    if path == "/hold_gil":  # a C call that keeps the GIL: the whole process stands still
        import ctypes
        ctypes.PyDLL(None).sleep(int(environ.get("QUERY_STRING") or 30))
    if path == "/redirect":
        start_response("200 OK", [("Location", "/static.txt")])
        return [b"ignored"]
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"app's own 404"]
    body = json.dumps({
        "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
        "group": environ["mod_wsgi.process_group"],
        "version": sys.version.split()[0], "implementation": sys.implementation.name,
        "preloaded": "preload_marker" in sys.modules, "prefix": sys.prefix,
        "policy": os.sched_getscheduler(0), "nice": os.getpriority(os.PRIO_PROCESS, 0),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
'''


def start(apache: Callable[..., Apache], conf: str, **kw) -> Apache:
    a = apache(conf, files={"app.wsgi": APP, "htdocs/static.txt": "static file\n",
                            "htdocs/custom404.html": "custom not found page\n"}, start=False, **kw)
    (a.root / "run").mkdir()
    a.start()
    return a


def get_json(a: Apache, path: str = "/app") -> dict:
    import json
    status, _, body = a.get(path, timeout=30)
    assert status == 200, (status, body, a.log_text()[-2000:])
    return json.loads(body)


def wait_for_new_pid(a: Apache, old: int, timeout: float = 10) -> None:
    """Waits until a process other than `old` answers (the monitor has started another)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if get_json(a)["pid"] != old:
                return
        except AssertionError:
            pass
        time.sleep(0.2)
    assert get_json(a)["pid"] != old


def workers(a: Apache, group: str) -> list[int]:
    """Pids of the group's worker processes (their last argument is "(wsgi:GROUP:N)")."""
    out = subprocess.run(["pgrep", "-f", "--", rf"-m modpy.daemon \(wsgi:{group}:"], capture_output=True, text=True).stdout
    mine = []
    for pid in map(int, out.split()):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"MODPY_PYLIB={ROOT}".encode() in env or b"MODPY_DAEMON_GROUP=" + group.encode() in env:
            mine.append(pid)
    return mine


def monitor_pids(a: Apache) -> set[int]:
    """Apache's children that are mod_py monitors (after a graceful restart the old one may
    still be there, finishing its workers' requests)."""
    found = set()
    for pid in a.children():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "modpy-monitor":
                found.add(pid)
        except OSError:  # it ended meanwhile
            pass
    return found


def monitor_pid(a: Apache) -> int:
    pids = monitor_pids(a)
    if not pids:
        raise AssertionError(f"no monitor among {a.children()}")
    return min(pids)


class Load:
    """Background clients hammering `path` until stopped; records every outcome."""

    def __init__(self, a: Apache, path: str = "/app", threads: int = 6) -> None:
        self.a, self.path, self.stop_flag = a, path, threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run) for _ in range(threads)]

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.a.port, timeout=30)
                c.request("GET", self.path)
                r = c.getresponse()
                body = r.read()
                c.close()
                with self.lock:
                    if r.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{r.status} {body[:100]!r}")
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                with self.lock:
                    self.failures.append(repr(e))

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join()


def test_daemon_process_serves_as_its_user(apache: Callable[..., Apache], mpm: str) -> None:
    nobody = pwd.getpwnam("nobody")
    a = start(apache, """
        WSGIDaemonProcess site processes=2 threads=3 display-name=%{GROUP}
        WSGIDaemonProcess other processes=1 threads=2 user=nobody group=nogroup cpu-priority=5 cpu-policy=batch
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site application-group=%{GLOBAL}
        WSGIScriptAlias /other @ROOT@/app.wsgi process-group=other
        """)
    site = get_json(a)
    assert site["group"] == "site" and site["pid"] not in a.children()
    assert site["uid"] == pwd.getpwnam("www-data").pw_uid
    other = get_json(a, "/other")
    assert other["group"] == "other" and (other["uid"], other["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    # cpu-priority= (mod_wsgi's nice value) and cpu-policy= apply to every thread of the
    # group's workers; the other group keeps the system's defaults.
    assert (site["policy"], site["nice"]) == (os.SCHED_OTHER, 0)
    assert (other["policy"], other["nice"]) == (os.SCHED_BATCH, 5)
    assert workers(a, "other")
    for pid in workers(a, "other"):
        for task in Path(f"/proc/{pid}/task").iterdir():
            assert os.sched_getscheduler(int(task.name)) == os.SCHED_BATCH, (pid, task.name)
    # display-name=%{GROUP} names the processes "(wsgi:site)" in ps.
    out = subprocess.run(["ps", "-eo", "comm,args"], capture_output=True, text=True).stdout
    assert any(line.startswith("(wsgi:site) ") and line.endswith(" -m modpy.daemon (wsgi:site)")
               for line in out.splitlines()), out
    # The socket: mode 0600, owned by Apache's user.
    socks = list(Path(a.root / "wsgi_sockets").glob("*.sock")) if (a.root / "wsgi_sockets").exists() else []
    text = a.log_text()
    assert "daemon monitor started for 2 process group(s): site, other" in text
    for s in socks:
        st = s.stat()
        assert oct(st.st_mode & 0o777) == "0o600" and st.st_uid == pwd.getpwnam("www-data").pw_uid
    # Connections are reused: many requests, few accepted connections.
    pids = {get_json(a)["pid"] for _ in range(20)}
    assert pids <= set(workers(a, "site")) or len(pids) <= 2


def test_socket_permissions_and_foreign_user(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGISocketPrefix @ROOT@/run/wsgi
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    get_json(a)
    socks = list((a.root / "run").glob("wsgi.*.sock"))  # (run/ made before start)
    assert len(socks) == 1
    sock = socks[0]
    st = sock.stat()
    assert oct(st.st_mode & 0o777) == "0o600" and st.st_uid == pwd.getpwnam("www-data").pw_uid
    connect = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
               "try:\n    s.connect(sys.argv[1]); s.sendall(b'x'*8); print('connected', s.recv(10))\n"
               "except OSError as e:\n    print('refused', e.errno)\n")
    run_as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", connect, str(sock)]
    os.chmod(a.root / "run", 0o755)
    out = subprocess.run(run_as_nobody, capture_output=True, text=True, timeout=20).stdout
    assert out.startswith("refused 13"), out  # EACCES: the socket is 0600, Apache's user's
    # Even with the file opened up by mistake, the worker checks the peer's uid.
    os.chmod(sock, 0o666)
    out = subprocess.run(run_as_nobody, capture_output=True, text=True, timeout=20).stdout
    # closed unanswered (reset, as it sent bytes the worker never read)
    assert out.startswith(("connected b''", "refused 104", "refused 32")), out
    wait_log(a, f"refused a connection from uid {pwd.getpwnam('nobody').pw_uid}")
    assert get_json(a)["group"] == "site"


KEPT_APP = """
kept = {}

def application(environ, start_response):
    if environ["PATH_INFO"] == "/keep":
        kept["input"] = environ["wsgi.input"]
        kept["write"] = start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"kept\\n"]
    # A later request uses what the first one kept: it must not reach this connection.
    out = []
    for name, use in (("input", lambda: kept["input"].read(10)), ("write", lambda: kept["write"](b"late"))):
        try:
            use()
            out.append(name + ": no error")
        except Exception as e:
            out.append(name + ": " + type(e).__name__ + ": " + str(e))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["\\n".join(out).encode()]
"""


def test_objects_kept_past_their_request_raise(apache: Callable[..., Apache]) -> None:
    """wsgi.input and write() kept by the app after their request ended: the input is at its
    end, write() raises (it would reach the next request's frames), and the worker serves on."""
    a = apache("""
        LogLevel info
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias / @ROOT@/kept.wsgi process-group=site
        """, files={"kept.wsgi": KEPT_APP})
    assert a.get("/keep")[0] == 200
    status, _, body = a.get("/use")
    assert status == 200, (status, body)
    text = body.decode()
    # The body was read to its end with the request (drained): the old input reads nothing.
    assert "input: no error" in text, text
    if "modpy._native" in a.log_text():
        assert "write: OSError: the request this daemon connection served is over" in text, text
    assert a.get("/keep")[0] == 200


def test_malformed_frames_close_only_that_connection(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGISocketPrefix @ROOT@/wsgi
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    get_json(a)
    path = str(next(a.root.glob("wsgi.*.sock")))
    cases = [
        (b"\xff" * 8, "bad frame header"),                                   # unknown kind
        (struct.pack(">BBHI", 1, 0, 0, 50) + b"MODPYD\0\0" + b"\0\1" + b"\0" * 40, "did not start with HELLO"),
        (struct.pack(">BBHI", 1, 0, 0, 42) + b"MODPYD\0\0\0\1" + b"\0" * 32, "wrong group secret"),
        (struct.pack(">BBHI", 10, 0, 0, (1 << 20) + 1), "over the limit"),   # oversized frame
    ]
    with Load(a, threads=2) as load:
        for data, logged in cases:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.sendall(data)
            s.settimeout(5)
            assert s.recv(100) == b""  # closed by the worker, nothing answered
            s.close()
            wait_log(a, logged)
        time.sleep(0.5)
    assert load.failures == [] and load.ok > 0


def test_kill_worker_under_load(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=2 threads=4
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    get_json(a)
    before = workers(a, "site")
    assert len(before) == 2
    with Load(a) as load:
        time.sleep(1)
        os.kill(before[0], signal.SIGKILL)
        time.sleep(2)
    wait_log(a, f"daemon process 'site' (pid {before[0]}) died with signal 9 (SIGKILL)")
    # Only requests on the killed worker can fail, and those with 503.
    assert all(f.startswith("503") for f in load.failures), load.failures
    assert len(load.failures) <= 4 and load.ok > 50, (load.ok, load.failures)
    deadline = time.time() + 10
    while len(workers(a, "site")) != 2 and time.time() < deadline:
        time.sleep(0.1)
    after = workers(a, "site")
    assert len(after) == 2 and before[0] not in after and before[1] in after
    assert get_json(a)["group"] == "site"


def test_kill_monitor(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=4
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    get_json(a)
    old = monitor_pid(a)
    with Load(a, threads=3) as load:
        time.sleep(0.5)
        os.kill(old, signal.SIGKILL)
        wait_log(a, f"the daemon monitor (pid {old}) died (signal 9 (SIGKILL)); starting a new one", timeout=10)
        time.sleep(2)
    new = monitor_pid(a)
    assert new != old
    assert load.failures == [] and load.ok > 20, (load.ok, load.failures[:5])
    assert get_json(a)["group"] == "site"


@pytest.mark.parametrize("mpm", ["event", "prefork"])
def test_graceful_restarts_under_load(apache: Callable[..., Apache], mpm: str) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=2 threads=4
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """, mpm=mpm)
    get_json(a)
    with Load(a, threads=4) as load:
        for _ in range(20):
            a.graceful()
            time.sleep(0.4)
        time.sleep(1)
    errors = [line for line in a.log_text().splitlines() if "[py:error]" in line]
    assert load.failures == [], (load.failures[:5], errors[-5:])
    assert load.ok > 100
    text = a.log_text()
    assert "Segmentation fault" not in text and "exit signal" not in text
    assert get_json(a)["group"] == "site"


def test_maximum_requests_restart_without_failures(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=4 maximum-requests=25
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    first = get_json(a)["pid"]
    with Load(a, threads=4) as load:
        time.sleep(3)
    assert load.failures == [], load.failures[:5]
    assert load.ok > 100
    wait_log(a, "stopping: maximum-requests=25 reached")
    assert get_json(a)["pid"] != first


def test_inactivity_timeout_restarts_idle_process(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=2 inactivity-timeout=1
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    first = get_json(a)["pid"]
    wait_log(a, "stopping: inactivity-timeout of 1s", timeout=6)
    assert get_json(a)["pid"] != first


def test_all_threads_serve_when_requests_block(apache: Callable[..., Apache]) -> None:
    """One thread of a daemon process leads (serves request after request); a request that
    blocks hands the lead to another thread, so `threads` blocking requests run at once and
    a quick request is not queued behind them."""
    # Enough Apache children under prefork for four requests at once from the start.
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=4
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """, processes=6)
    pid = get_json(a)["pid"]
    results: list[int] = []

    def slow() -> None:
        results.append(a.get("/app/sleep?2", timeout=30)[0])

    t0 = time.monotonic()
    clients = [threading.Thread(target=slow) for _ in range(3)]
    for t in clients:
        t.start()
    time.sleep(0.5)
    quick = get_json(a)  # the fourth thread answers while three sleep
    quick_at = time.monotonic() - t0
    for t in clients:
        t.join()
    elapsed = time.monotonic() - t0
    assert results == [200, 200, 200] and quick["pid"] == pid
    # One after the other would take 6 s and answer the quick request after 6 s.
    assert quick_at < 1.9 and elapsed < 4, (quick_at, elapsed)


def test_request_timeout_gives_504_and_restarts(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=2 request-timeout=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    first = get_json(a)["pid"]
    status, _, _ = a.get("/app/sleep?10", timeout=30)
    assert status == 504
    wait_log(a, "no response within 2s")
    wait_log(a, "a request ran longer than request-timeout=2s: restarting the daemon process", timeout=6)
    wait_for_new_pid(a, first)


def test_queue_timeout_gives_503(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=1 queue-timeout=1
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    get_json(a)
    slow: list[int] = []
    t = threading.Thread(target=lambda: slow.append(a.get("/app/sleep?3", timeout=30)[0]))
    t.start()
    time.sleep(0.5)
    # The one thread is busy for 2.5 s more: this request waits longer than queue-timeout.
    status, _, body = a.get("/app/", timeout=30)
    t.join()
    assert slow == [200]
    assert status == 503 and b"waited too long" in body, (status, body)
    wait_log(a, "queue-timeout of 1s expired for")
    assert get_json(a)["group"] == "site"  # not waiting now: served


def test_deadlock_timeout_restarts_a_process_that_holds_the_gil(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=2 deadlock-timeout=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    first = get_json(a)["pid"]
    status, _, _ = a.get("/app/hold_gil?60", timeout=30)
    assert status == 503
    # faulthandler's timer (no GIL needed) dumps the stacks and exits; the monitor restarts it.
    log = wait_log(a, "Timeout (0:00:02)!", timeout=10)
    assert "hold_gil" in log or "application" in log
    wait_log(a, f"(pid {first}) died with exit status 1", timeout=10)
    wait_for_new_pid(a, first)


def test_handler_script_in_a_daemon_group(apache: Callable[..., Apache]) -> None:
    # WSGIHandlerScript + AddHandler: the script's handle_request serves each matching file,
    # in the daemon group of the directory.
    handler = (
        "import os\n"
        "def handle_request(environ, start_response):\n"
        "    with open(environ['SCRIPT_FILENAME'], 'rb') as f:\n"
        "        body = f.read().upper()\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Pid', str(os.getpid())),\n"
        "                              ('X-Handler', environ['mod_wsgi.handler_script'])])\n"
        "    return [body]\n"
    )
    a = apache("""
        WSGIDaemonProcess site processes=1 threads=2
        WSGIHandlerScript upper-text @ROOT@/handler.wsgi
        <Directory @ROOT@/htdocs/hs>
            Options +ExecCGI
            AddHandler upper-text .txt
            WSGIProcessGroup site
        </Directory>
        """, files={"handler.wsgi": handler, "htdocs/hs/page.txt": "served through the handler\n"},
        start=False)
    (a.root / "run").mkdir()
    a.start()
    status, headers, body = a.get("/hs/page.txt")
    assert status == 200 and body == b"SERVED THROUGH THE HANDLER\n", (status, body, a.log_text()[-2000:])
    assert headers["X-Handler"] == str(a.root / "handler.wsgi")
    assert int(headers["X-Pid"]) not in a.children()  # a daemon worker, not Apache's child
    assert a.get("/hs/missing.txt")[0] == 404


def test_unknown_user_fails_configtest(apache: Callable[..., Apache]) -> None:
    a = apache("""
        WSGIDaemonProcess site user=no_such_user_xyz
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """, start=False)
    r = a.configtest()
    assert r.returncode != 0
    assert "WSGI process user 'no_such_user_xyz' of daemon process group 'site' does not exist" in r.stderr
    assert "httpd.conf" in r.stderr
    a = apache("WSGIDaemonProcess site threads=zero\n", start=False)
    r = a.configtest()
    assert r.returncode != 0 and "threads= expects a number" in r.stderr


def test_unknown_group_name_and_failed_switch(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess jail processes=1 threads=2 chroot=/nonexistent/jail socket-timeout=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=jail
        WSGIScriptAlias /nogroup @ROOT@/app.wsgi process-group=undefined
        """)
    # A worker that cannot chroot never runs the app; it says why, and the monitor retries.
    wait_log(a, "daemon process 'jail'", timeout=5)
    wait_log(a, "cannot chroot: No such file or directory (os error 2); not starting it")
    status, _, _ = a.get("/app", timeout=30)
    assert status == 504
    assert a.get("/nogroup")[0] == 500
    wait_log(a, "no WSGI daemon process called 'undefined' has been configured")


def test_internal_redirect_and_error_override(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        WSGIScriptAlias /over @ROOT@/app.wsgi process-group=site
        <Location /over>
            WSGIErrorOverride On
        </Location>
        ErrorDocument 404 /custom404.html
        """)
    # Location + 200 from the app: Apache serves that URL instead (mod_wsgi daemon mode).
    status, headers, body = a.get("/app/redirect")
    assert (status, body) == (200, b"static file\n")
    # Without the override the app's own error page goes out; with it, Apache's ErrorDocument.
    assert a.get("/app/missing")[:3:2] == (404, b"app's own 404")
    assert a.get("/over/missing")[:3:2] == (404, b"custom not found page\n")


def test_script_user_check(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess mine processes=1 threads=2 script-user=root
        WSGIDaemonProcess theirs processes=1 threads=2 script-user=nobody
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=mine
        WSGIScriptAlias /theirs @ROOT@/app.wsgi process-group=theirs
        """)
    assert get_json(a)["group"] == "mine"  # app.wsgi belongs to root
    assert a.get("/theirs")[0] == 403
    wait_log(a, "is not owned by script-user 'nobody' of daemon process group 'theirs'")


def test_preload_with_both_groups_and_import_script(apache: Callable[..., Apache]) -> None:
    a = apache("""
        WSGIDaemonProcess site processes=1 threads=2
        WSGIImportScript @ROOT@/preload.py process-group=site
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site application-group=%{GLOBAL}
        """, files={"app.wsgi": APP, "preload.py": "import sys\nsys.modules['preload_marker'] = sys\nprint('preloaded at start')\n"})
    wait_log(a, "preloaded at start")
    assert get_json(a)["preloaded"] is True


def pyenv_python(version_prefix: str) -> str | None:
    """A pyenv CPython copied where Apache's users can read it (pyenv lives in root's home),
    its rpath fixed to find its own libpython; None without pyenv."""
    base = Path("/root/.pyenv/versions")
    if not base.exists():
        return None
    versions = sorted(p for p in base.iterdir() if p.name.startswith(version_prefix))
    if not versions:
        return None
    src = versions[-1]
    dest = Path(f"/opt/modpy-test-python/{src.name}")
    major_minor = ".".join(src.name.split(".")[:2])
    exe = dest / "bin" / f"python{major_minor}"
    if not exe.exists():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        subprocess.run(["patchelf", "--set-rpath", "$ORIGIN/../lib", str(exe)], check=True)
        subprocess.run(["chmod", "-R", "a+rX", "/opt/modpy-test-python"], check=True)
    return str(exe)


def test_several_pythons_at_once(apache: Callable[..., Apache]) -> None:
    """One Apache, daemon groups on different Pythons: Debian's CPython 3.11, PyPy 3.9 (apt),
    and a CPython 3.13 copied from pyenv where pyenv exists."""
    pythons = {"cpython311": "/usr/bin/python3", "pypy": "/usr/bin/pypy3"}
    extra = pyenv_python("3.13")
    if extra:
        pythons["cpython313"] = extra
    conf = []
    for name, exe in pythons.items():
        conf.append(f"WSGIDaemonProcess {name} processes=1 threads=2 python-executable={exe}")
        conf.append(f"WSGIScriptAlias /{name} @ROOT@/app.wsgi process-group={name}")
    a = start(apache, "\n".join(conf))
    seen = {name: get_json(a, f"/{name}") for name in pythons}
    assert seen["cpython311"]["version"].startswith("3.11") and seen["cpython311"]["implementation"] == "cpython"
    assert seen["pypy"]["implementation"] == "pypy" and seen["pypy"]["version"].startswith("3.9")
    if extra:
        assert seen["cpython313"]["version"].startswith("3.13")
    assert len({s["pid"] for s in seen.values()}) == len(pythons)
    # One build of modpy._native (abi3) loads in every CPython; PyPy runs the pure-Python loop.
    log = a.log_text()
    for name, s in seen.items():
        loop = "pure-Python loop" if name == "pypy" else "modpy._native"
        assert re.search(rf"pid {s['pid']}:.*\({name}\): daemon process started \(Python [^,]+, 2 threads, {re.escape(loop)}\)", log), name


def test_mod_pyd_links_no_python_and_serves_daemon_groups(apache: Callable[..., Apache]) -> None:
    """The daemon-only build: `cargo build --release --no-default-features`."""
    so = ROOT / "target" / "pyd" / "release" / "libmod_py.so"
    subprocess.run(["cargo", "build", "--release", "--no-default-features", "--target-dir",
                    str(ROOT / "target" / "pyd")], cwd=ROOT, check=True, capture_output=True)
    ldd = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
    assert "python" not in ldd.lower(), ldd
    syms = subprocess.run(["nm", "-D", str(so)], capture_output=True, text=True).stdout
    assert not [l for l in syms.splitlines() if l.split()[-1].startswith("Py")]
    a = apache("""
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        WSGIScriptAlias /embedded @ROOT@/app.wsgi
        """, files={"app.wsgi": APP}, start=False)
    a.conf.write_text(a.conf.read_text().replace(str(MODPY_SO), str(so)))
    a.start()
    assert get_json(a)["group"] == "site"
    assert a.get("/embedded")[0] == 500
    wait_log(a, "this is mod_pyd, the daemon-only build")
    status, headers, _ = a.get("/app")
    assert "mod_pyd/" in headers["Server"]
    # What needs embedded Python fails the configuration rather than doing nothing: an
    # ignored WSGIAccessScript would let everyone in.
    for line in ("<Location />\nWSGIAccessScript @ROOT@/access.py\n</Location>", "PythonHandler mymodule",
                 "PythonAuthnProvider mine mymodule::check"):
        b = apache(line + "\n", start=False)
        b.conf.write_text(b.conf.read_text().replace(str(MODPY_SO), str(so)))
        r = b.configtest()
        assert r.returncode != 0 and "mod_pyd (the daemon-only build) does not have" in r.stderr, (line, r.stderr)


def test_graceful_restart_waits_for_in_flight_request(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIRestrictEmbedded On
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        WSGIScriptAlias /embedded @ROOT@/app.wsgi
        """)
    get_json(a)
    result: list[tuple[int, bytes]] = []
    t = threading.Thread(target=lambda: result.append(a.get("/app/sleep?2", timeout=30)[::2]))
    t.start()
    time.sleep(0.5)
    a.graceful()
    t.join()
    assert result and result[0][0] == 200 and b'"group": "site"' in result[0][1], result
    assert get_json(a)["group"] == "site"
    # WSGIRestrictEmbedded On: daemon groups only.
    assert a.get("/embedded")[0] == 500
    wait_log(a, "embedded mode is disabled by WSGIRestrictEmbedded On")


EXIT_APP = """
import atexit, os, time
here = os.path.dirname(__file__)
def bye():
    with open(os.path.join(here, "exited", str(os.getpid())), "w"):
        pass
atexit.register(bye)
def application(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep":
        time.sleep(float(environ["QUERY_STRING"]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def start_exit_app(apache: Callable[..., Apache], processes: int) -> tuple[Apache, Path]:
    a = apache(f"""
        WSGIDaemonProcess site processes={processes} threads=2 shutdown-timeout=10
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """, files={"app.wsgi": EXIT_APP}, start=False)
    exited = a.root / "exited"
    exited.mkdir()
    exited.chmod(0o777)
    a.start()
    return a, exited


def holds_listener(pid: int, port: int) -> bool:
    """True if process `pid` has a descriptor on the TCP socket listening on 127.0.0.1:port
    (/proc/net/tcp gives the socket's inode, /proc/PID/fd the process's sockets)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
            inodes.add(f"socket:[{f[9]}]")
    assert inodes, f"nothing listens on port {port}"
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held.add(os.readlink(fd))
        except OSError:
            pass
    return bool(inodes & held)


def assert_gone(pids: list[int]) -> None:
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone, and reaped (a zombie would still answer)


@pytest.mark.parametrize("how", [signal.SIGWINCH, signal.SIGTERM], ids=["graceful-stop", "stop"])
def test_apache_exits_after_the_monitor_and_workers(apache: Callable[..., Apache], how: signal.Signals) -> None:
    """When Apache's parent has exited, the monitor and every worker have too (a service
    manager finds no stragglers to kill), and the workers ended cleanly: the application's
    atexit handler ran. The monitor never held Apache's listening socket (a monitor that
    outlived Apache would have kept the port accepting connections nobody answers)."""
    a, exited = start_exit_app(apache, processes=2)
    seen = set()
    for _ in range(20):
        status, _, body = a.get("/app")
        assert status == 200, body
        seen.add(int(body))
    monitor = monitor_pid(a)
    procs = workers(a, "site")
    assert len(procs) == 2 and seen <= set(procs), (procs, seen)
    assert holds_listener(a.pid, a.port) and not holds_listener(monitor, a.port)
    assert a.proc is not None
    os.kill(a.pid, how)
    a.proc.wait(timeout=30)
    assert_gone([monitor, *procs])
    # (a worker loads the script at its first request: those that served ran the handler)
    assert {int(p.name) for p in exited.iterdir()} == seen
    log = a.log_text()
    assert "still running after shutdown-timeout" not in log
    assert "starting a new one" not in log  # no monitor started again while Apache stops


def test_apache_exits_after_an_earlier_generations_monitor(apache: Callable[..., Apache]) -> None:
    """A graceful restart leaves the old monitor finishing its worker's request while the new
    one serves; when Apache then stops, its parent waits for both."""
    a, exited = start_exit_app(apache, processes=1)
    assert a.get("/app")[0] == 200
    old_monitor, old_workers = monitor_pid(a), workers(a, "site")
    assert len(old_workers) == 1
    cut: list[object] = []

    def slow() -> None:
        try:
            cut.append(a.get("/app/sleep?6", timeout=30)[0])
        except OSError as e:  # Apache stops under it: the connection may be cut
            cut.append(e)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    a.graceful()
    deadline = time.time() + 10
    while time.time() < deadline and monitor_pids(a) <= {old_monitor}:
        time.sleep(0.1)
    new_monitor = min(monitor_pids(a) - {old_monitor})
    deadline = time.time() + 10
    while time.time() < deadline and set(workers(a, "site")) <= set(old_workers):
        time.sleep(0.1)
    new_workers = [p for p in workers(a, "site") if p not in old_workers]
    assert new_workers and not cut  # the new generation is up, the slow request still runs
    assert a.proc is not None
    # stop, not graceful-stop: Apache does not wait for the cut request (with prefork its
    # parent is done at once), the old worker still finishes it.
    os.kill(a.pid, signal.SIGTERM)
    a.proc.wait(timeout=30)
    t.join()
    assert_gone([old_monitor, *old_workers, new_monitor, *new_workers])
    # the old worker finished its request and exited cleanly, before Apache's parent did
    assert old_workers[0] in {int(p.name) for p in exited.iterdir()}


def test_python_home_virtualenv(apache: Callable[..., Apache]) -> None:
    """python-home= naming a virtual environment runs the group in it (as WSGIPythonHome)."""
    a = apache("""
        WSGIDaemonProcess venv processes=1 threads=2 python-home=@ROOT@/venv
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=venv
        """, files={"app.wsgi": APP}, start=False)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(a.root / "venv")], check=True)
    a.start()
    assert get_json(a)["prefix"] == str(a.root / "venv")


def test_body_over_limit_is_413(apache: Callable[..., Apache]) -> None:
    a = start(apache, """
        WSGIDaemonProcess site processes=1 threads=2
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        <Location /app>
            LimitRequestBody 1000
        </Location>
        """)
    assert a.request("POST", "/app", body=b"x" * 500)[0] == 200
    assert a.request("POST", "/app", body=b"x" * 5000)[0] == 413
    assert get_json(a)["group"] == "site"


def test_daemon_processes_recycled_every_few_requests_lose_nothing(apache: Callable[..., Apache]) -> None:
    # Each process exits after 3 requests while 8 clients keep it busy: every stop races with
    # connections just accepted and greeted, and none of those requests may be lost.
    a = start(apache, """
        WSGIDaemonProcess site processes=2 threads=4 maximum-requests=3
        WSGIScriptAlias /app @ROOT@/app.wsgi process-group=site
        """)
    get_json(a)
    with Load(a, threads=8) as load:
        time.sleep(5)
    errors = [line for line in a.log_text().splitlines() if ":error]" in line]
    assert load.failures == [], (len(load.failures), load.ok, errors[-5:])
    assert load.ok > 50
