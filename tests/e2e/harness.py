"""Starts real Apache instances for mod_py's end-to-end tests (and for scripts/serve).

Each instance gets its own ServerRoot in a temp dir, a free loopback port, its own pid file and
error log, a small explicit environment, and its own session (prefork signals its process
group on shutdown). Stop it with stop(); it is killed by PID.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import http.client
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parents[2]
MODULES = Path("/usr/lib/apache2/modules")
APACHE2 = shutil.which("apache2", path="/usr/sbin:/usr/bin") or "/usr/sbin/apache2"
MODPY_SO = Path(os.environ.get("MODPY_SO", ROOT / "target" / "release" / "libmod_py.so"))
MPMS = ("event", "worker", "prefork")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, never the same twice in a test run: the kernel
    can hand out a just-closed port again, and two Listen lines on one port stop Apache."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def apache_user() -> str | None:
    """Children run as www-data when we are root (as in production), else as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return "nobody"


def make_readable(path: Path) -> None:
    """Apache's non-root children must read what they load."""
    for p in [path, *path.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | (0o755 if p.is_dir() else 0o644))


class Apache:
    def __init__(
        self,
        body: str,
        mpm: str = "event",
        loglevel: str = "info",
        env: dict[str, str] | None = None,
        threads: int = 8,
        processes: int = 2,
        max_requests: int = 0,
        extra_modules: tuple[str, ...] = (),
        load_modpy: bool = True,
        root: Path | None = None,
    ) -> None:
        self.mpm = mpm
        self.root = root or Path(tempfile.mkdtemp(prefix=f"modpy-{mpm}-"))
        os.chmod(self.root, 0o755)
        (self.root / "htdocs").mkdir(exist_ok=True)
        (self.root / "cores").mkdir(exist_ok=True)
        os.chmod(self.root / "cores", 0o1777)
        self.port = free_port()
        self.env = dict(CLEAN_ENV, MODPY_PYLIB=str(self.pylib()), **(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None
        mods = ["authz_core", "mime", "alias", "dir", *extra_modules]
        user = apache_user()
        if mpm == "prefork":
            mpm_conf = f"StartServers {processes}\nMinSpareServers {processes}\nMaxSpareServers {processes * 4}\nMaxRequestWorkers {threads * processes}\nServerLimit {threads * processes}"
        else:
            mpm_conf = (
                f"StartServers {processes}\nServerLimit {processes * 2}\nThreadsPerChild {threads}\n"
                f"MaxRequestWorkers {threads * processes}\nMinSpareThreads {threads}\n"
                f"MaxSpareThreads {threads * processes * 2}\nThreadLimit {threads}"
            )
        lines = [
            f"ServerRoot {self.root}",
            f"Listen 127.0.0.1:{self.port}",
            f"PidFile {self.root}/httpd.pid",
            f"ErrorLog {self.root}/error.log",
            f"LogLevel {loglevel}",
            "ServerName 127.0.0.1",
            f"LoadModule mpm_{mpm}_module {MODULES}/mod_mpm_{mpm}.so",
            *(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in mods),
            f"LoadModule py_module {MODPY_SO}" if load_modpy else "",
            f"User {user}\nGroup {user}" if user else "",
            "TypesConfig /etc/mime.types",
            f"DocumentRoot {self.root}/htdocs",
            f"MaxConnectionsPerChild {max_requests}",
            "KeepAliveTimeout 5",
            "Timeout 30",
            "GracefulShutdownTimeout 5",
            mpm_conf,
            f"Mutex file:{self.root} default",
            # a crashing child leaves ServerRoot/core (with `ulimit -c unlimited`) for gdb
            f"CoreDumpDirectory {self.root}/cores",
            body.replace("@ROOT@", str(self.root)),
        ]
        self.conf = self.root / "httpd.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def pylib(self) -> Path:
        return ROOT / "pylib"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    def log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def configtest(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [APACHE2, "-f", str(self.conf), "-t"], env=self.env, capture_output=True, text=True
        )

    def start(self, timeout: float = 15.0) -> "Apache":
        make_readable(self.root)
        self.proc = subprocess.Popen(
            [APACHE2, "-f", str(self.conf), "-DFOREGROUND"],
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                raise RuntimeError(f"apache exited ({self.proc.returncode}): {out}\n{self.log_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"apache did not listen on {self.port}\n{self.log_text()[-3000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def graceful(self) -> None:
        os.kill(self.pid, signal.SIGUSR1)

    def stop(self) -> None:
        if self.proc is None:
            return
        # graceful-stop (SIGWINCH), then SIGTERM, then SIGKILL. Not SIGTERM first: mpm_event's
        # ungraceful stop (close_worker_sockets) reads worker_sockets[] while worker threads
        # free them, and its main thread segfaults in apr_os_sock_get now and then (a race
        # inside httpd, seen in a core dump from this harness: no mod_py frame on any thread).
        for sig, wait in ((signal.SIGWINCH, 10), (signal.SIGTERM, 10)):
            if self.proc.poll() is not None:
                break
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # children that outlived the parent (should not happen) are killed by PID
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None

    def remove(self) -> None:
        """Deletes the instance's ServerRoot (after stop())."""
        shutil.rmtree(self.root, ignore_errors=True)

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def request(
        self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = headers or {}
        chunked = headers.get("Transfer-Encoding") == "chunked"
        try:
            c.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            r = c.getresponse()
            return r.status, r.headers, r.read()
        finally:
            c.close()

    def get(self, path: str, **kw) -> tuple[int, http.client.HTTPMessage, bytes]:
        return self.request("GET", path, **kw)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "Apache":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_log(a: Apache, needle: str, timeout: float = 5.0) -> str:
    """The error log once it contains `needle` (AssertionError with its tail after `timeout`)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = a.log_text()
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in error log:\n{a.log_text()[-3000:]}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
