"""Side-by-side wrk benchmark of mod_py against mod_python, a C handler (and references).

Run through bench/run.sh, which checks the tools first. For each system in SYSTEMS: start its
own Apache, check every scenario's response byte for byte, then per scenario warm up (WARM s)
and measure (DUR s) with wrk, reading the CPU time and memory of the server's whole process
tree from /proc; stop it by PID. Writes RESULTS/<stamp>.tsv (+ .log) and prints the report.

Environment: DUR WARM CONNS THREADS MPM SYSTEMS PIN SCHED MODPY_SO WSGI_SO RESULTS KEEP QUIET QUIET_MAX
(see run.sh).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import platform
import pwd
import resource
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proctree  # noqa: E402
import report  # noqa: E402
from systems import MODS, SCENARIOS, SYSTEMS, System, httpd_conf  # noqa: E402

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
APACHE2 = shutil.which("apache2", path="/usr/sbin:/usr/bin") or "/usr/sbin/apache2"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
MODPY_COPY = "libmod_py.so"  # in the run directory: what the modpy_* systems load
DEFAULT_SYSTEMS = "apache_c mod_python modpy_handler modpy_brigade wsgi_embedded modpy_wsgi static"

HELLO = b"Hello, World!\n"
K64 = (b"0123456789abcdef" * 4096)[:65536]
_LINE = b"the quick brown fox jumps over the lazy dog 0123456789\n"
MIB = (_LINE * (1048576 // len(_LINE) + 1))[:1048576]
EXPECT: dict[str, bytes] = {
    "hello": HELLO, "psp_hello": HELLO, "get_64k": K64, "post_echo_1m": MIB,
    # htdocs/1m.txt as it is, and through an upper-casing output filter (C or Python)
    "file_1m": MIB, "file_1m_upper": MIB.upper(),
}


@dataclass(frozen=True)
class Options:
    dur: int
    warm: int
    conns: int
    threads: int
    mpm: str
    systems: list[str]
    pin: bool
    sched: str  # "other" or "batch": every server (all its processes) under that policy
    modpy_so: str
    wsgi_so: str
    results: Path
    keep: bool
    quiet: int  # wait before each measurement until the machine is this % busy or less (0: no)
    quiet_max: int
    rounds: int  # >1: every system measured this many times, in alternating order; medians kept

    @staticmethod
    def from_env() -> "Options":
        e = os.environ.get
        mpm = e("MPM", "event")
        if mpm not in ("event", "worker", "prefork"):
            sys.exit(f"MPM={mpm}: expected event, worker or prefork")
        sched = e("SCHED", "other")
        if sched not in ("other", "batch"):
            sys.exit(f"SCHED={sched}: expected other or batch")
        return Options(
            dur=int(e("DUR", "10")),
            warm=int(e("WARM", "3")),
            conns=int(e("CONNS", "16")),
            threads=int(e("THREADS", "2")),
            mpm=mpm,
            systems=e("SYSTEMS", DEFAULT_SYSTEMS).split(),
            pin=e("PIN", "0") == "1",
            sched=sched,
            modpy_so=os.path.abspath(e("MODPY_SO", str(REPO / "target/release/libmod_py.so"))),
            wsgi_so=e("WSGI_SO", f"{MODS}/mod_wsgi.so"),
            results=Path(e("RESULTS", str(BENCH / "results"))).resolve(),
            keep=e("KEEP", "0") == "1",
            quiet=int(e("QUIET", "0")),
            quiet_max=int(e("QUIET_MAX", "120")),
            rounds=max(1, int(e("ROUNDS", "1"))),
        )


class Log:
    """Progress to stderr and to RESULTS/<stamp>.log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: TextIO = open(path, "w")

    def __call__(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
        self.fh.write(msg + "\n")
        self.fh.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def apache_user() -> str | None:
    """Children run as www-data (or nobody) when we are root; else as ourselves."""
    if os.geteuid() != 0:
        return None
    for u in ("www-data", "nobody"):
        try:
            pwd.getpwnam(u)
            return u
        except KeyError:
            pass
    return None


def make_readable(root: Path) -> None:
    """Apache's non-root children must be able to read everything they load."""
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() or os.access(p, os.X_OK) else 0o644)


def prepare(run: Path, opts: Options, log: Log) -> None:
    """RUN/htdocs, RUN/expect, RUN/apps, RUN/pylib (a readable copy), RUN/<system>/, mod_bench.so."""
    for name, data in {
        "htdocs/hello.txt": HELLO, "htdocs/64k.bin": K64, "htdocs/1m.txt": MIB,
        **{f"htdocs/{d}/1m.txt": MIB for d in ("c", "f", "fb")},
        **{f"expect/{k}": v for k, v in EXPECT.items()},
    }.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    shutil.copytree(BENCH / "apps", run / "apps")
    shutil.copytree(REPO / "pylib", run / "pylib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for s in opts.systems:
        (run / s).mkdir(exist_ok=True)
    if any(s.startswith("modpy_") for s in opts.systems) and os.path.exists(opts.modpy_so):
        # a private copy: a cargo build during the run must not change the module under Apache
        shutil.copy(opts.modpy_so, run / MODPY_COPY)
    if "apache_c" in opts.systems:
        d = run / "apache_c"
        shutil.copy(BENCH / "apps/mod_bench.c", d)
        r = subprocess.run(["apxs", "-c", "mod_bench.c"], cwd=d, capture_output=True, text=True)
        (d / "build.log").write_text(r.stdout + r.stderr)
        if r.returncode == 0 and (d / ".libs/mod_bench.so").exists():
            shutil.copy(d / ".libs/mod_bench.so", d / "mod_bench.so")
        else:
            log(f"apxs -c mod_bench.c failed, apache_c is skipped:\n{r.stdout}{r.stderr}")
    make_readable(run)


class Server:
    """One Apache instance: `apache2 -f conf -DFOREGROUND`, its own session, stopped by PID."""

    def __init__(self, system: System, run: Path, opts: Options) -> None:
        self.system = system
        self.root = run / system.name
        self.port = free_port()
        self.conf = self.root / "httpd.conf"
        modpy_so = str(run / MODPY_COPY)
        self.conf.write_text(
            httpd_conf(system, str(run), self.port, opts.mpm, apache_user(), modpy_so, opts.wsgi_so)
        )
        self.conf.chmod(0o644)
        self.env = dict(CLEAN_ENV, MODPY_PYLIB=str(run / "pylib"))
        self.prefix = ["taskset", "-c", "1"] if opts.pin else []
        # As systemd's CPUSchedulingPolicy=batch would: Apache and all it forks and execs.
        if opts.sched == "batch":
            self.prefix = ["chrt", "--batch", "0", *self.prefix]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def error_log(self) -> str:
        text = ""
        for f in (self.root / "stdout.log", self.root / "error.log"):
            if f.exists():
                text += f.read_text(errors="replace")
        return text

    def request(self, scenario: str, timeout: float = 30.0) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if scenario.startswith("post_"):
                c.request("POST", self.system.paths[scenario], body=EXPECT[scenario],
                          headers={"Content-Type": "application/octet-stream"})
            else:
                c.request("GET", self.system.paths[scenario])
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def start(self, timeout: float = 30.0) -> str | None:
        """Starts Apache; returns None once the first scenario answers 200, else why not."""
        out = open(self.root / "stdout.log", "wb")
        self.proc = subprocess.Popen(
            [*self.prefix, APACHE2, "-f", str(self.conf), "-DFOREGROUND"],
            env=self.env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
        out.close()
        first = next(iter(self.system.paths))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"apache2 exited with {self.proc.returncode}"
            try:
                if self.request(first, timeout=2)[0] == 200:
                    return None
            except OSError:
                pass
            time.sleep(0.1)
        return f"no 200 from {first} within {timeout:.0f} s"

    def stop(self) -> None:
        """graceful-stop (SIGWINCH), then SIGTERM, each waited for; then SIGKILL any process of
        the tree still alive, by PID. Not SIGTERM first: mpm_event's ungraceful stop closes
        the sockets of busy worker threads under them (EBADF in whatever request a wrk
        connection left behind) and now and then segfaults in close_worker_sockets, for
        every system alike (tests/e2e/harness.py does the same)."""
        if self.proc is None:
            return
        tree = proctree.pids(self.pid)
        for sig in (signal.SIGWINCH, signal.SIGTERM):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for p in tree:
            try:
                os.kill(p, 0)
            except ProcessLookupError:
                continue
            print(f"  leftover pid {p}: SIGKILL", file=sys.stderr)
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait()
        self.proc = None


def log_summary(text: str) -> list[str]:
    """Distinct error-level lines of an error log (the message part), most frequent first."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if any(f":{lv}]" in line for lv in ("error", "crit", "alert", "emerg")) or "Error:" in line:
            msg = line.rsplit("] ", 1)[-1][:110]
            counts[msg] = counts.get(msg, 0) + 1
    return [f"{n:6d}x {m}" for m, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6]]


def wrk_cmd(opts: Options, dur: int, url: str) -> list[str]:
    pin = ["taskset", "-c", "0"] if opts.pin else []
    return [*pin, "wrk", f"-t{opts.threads}", f"-c{opts.conns}", f"-d{dur}s", "--timeout", "10s",
            "-s", str(BENCH / "lib/wrk.lua"), url]


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def machine_busy_pct(seconds: float) -> float:
    """How busy all CPUs were over the next `seconds` (our servers are idle meanwhile)."""
    def snap() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
        return f[0] + f[1] + f[2] + f[5] + f[6], sum(f)
    b0, t0 = snap()
    time.sleep(seconds)
    b1, t1 = snap()
    return 100 * (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(opts: Options, log: Log) -> None:
    """QUIET=N: before a measurement, wait (up to QUIET_MAX s) until the machine is <= N% busy."""
    if opts.quiet <= 0:
        return
    start = time.monotonic()
    while (busy := machine_busy_pct(2)) > opts.quiet:
        if time.monotonic() - start > opts.quiet_max:
            log(f"  machine still {busy:.0f}% busy after {opts.quiet_max} s: measuring anyway")
            return
    if time.monotonic() - start > 3:
        log(f"  waited {time.monotonic() - start:.0f} s for a quiet machine")


def measure(srv: Server, scenario: str, opts: Options, run: Path) -> list[str]:
    """Warm-up, then one measured wrk run; returns the TSV row (see report.COLUMNS)."""
    env = dict(os.environ, WRK_BODY=str(run / "expect" / scenario) if scenario.startswith("post_") else "")
    url = srv.url(srv.system.paths[scenario])
    if opts.warm > 0:
        subprocess.run(wrk_cmd(opts, opts.warm, url), env=env, capture_output=True)
    s0, b0, w0, t0 = proctree.sample(srv.pid, memory=False), proctree.machine_busy_ticks(), children_cpu_s(), time.monotonic()
    wrk = subprocess.Popen(wrk_cmd(opts, opts.dur, url), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(opts.dur / 2)
    mid = proctree.sample(srv.pid)  # memory under load
    out, _ = wrk.communicate()
    s1, b1, w1, t1 = proctree.sample(srv.pid, memory=False), proctree.machine_busy_ticks(), children_cpu_s(), time.monotonic()
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        return [srv.system.name, scenario, f"FAIL(wrk: {out.strip()[:80]})"]
    w = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    requests = max(w["requests"], 1)
    server_cpu_s = (s1.cpu_ticks - s0.cpu_ticks) / proctree.CLK_TCK
    wrk_cpu_s = w1 - w0
    busy_s = (b1 - b0) / proctree.CLK_TCK
    ncpu = os.cpu_count() or 1
    other = 100 * (busy_s - server_cpu_s - wrk_cpu_s) / ((t1 - t0) * ncpu)
    return [
        srv.system.name, scenario,
        f"{w['requests'] * 1e6 / w['duration_us']:.0f}",
        f"{w['p50_us'] / 1000:.2f}", f"{w['p99_us'] / 1000:.2f}",
        str(w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]), str(w["err_status"]),
        f"{server_cpu_s * 1e6 / requests:.1f}",
        f"{(s1.minflt - s0.minflt) / requests:.2f}",
        str(mid.nproc), f"{mid.rss_kib / 1024:.1f}", f"{mid.pss_kib / 1024:.1f}",
        f"{other:.0f}", str(w["requests"]),
        f"{100 * wrk_cpu_s / ((t1 - t0) * ncpu):.0f}",
    ]


def check(srv: Server, scenario: str) -> str | None:
    """None if the response is 200 and its body equals EXPECT[scenario] byte for byte."""
    try:
        status, body = srv.request(scenario)
    except OSError as e:
        return f"request failed: {e}"
    if status != 200:
        return f"status {status}"
    if body != EXPECT[scenario]:
        return f"body differs ({len(body)} bytes, expected {len(EXPECT[scenario])})"
    return None


def bench_system(system: System, run: Path, opts: Options, log: Log) -> list[list[str]]:
    name = system.name
    if name == "apache_c" and not (run / "apache_c/mod_bench.so").exists():
        return [[name, "-", "SKIP(apxs build failed)"]]
    if name.startswith("modpy_") and not (run / MODPY_COPY).exists():
        return [[name, "-", "SKIP(no MODPY_SO: cargo build --release)"]]
    srv = Server(system, run, opts)
    rows: list[list[str]] = []
    try:
        why = srv.start()
        if why is not None:
            log(f"  {name} did not start: {why}\n{srv.error_log()[-2000:]}")
            return [[name, "-", "FAIL(start)"]]
        idle = proctree.sample(srv.pid)
        rows.append([name, "idle", *["-"] * 7, str(idle.nproc), f"{idle.rss_kib / 1024:.1f}",
                     f"{idle.pss_kib / 1024:.1f}", "-", "-", "-"])
        for sc in SCENARIOS:
            if sc not in system.paths:
                continue
            bad = check(srv, sc)
            if bad is not None:
                log(f"  {sc}: wrong response: {bad}")
                rows.append([name, sc, "FAIL(body)"])
                continue
            wait_quiet(opts, log)
            log(f"  {sc}")
            rows.append(measure(srv, sc, opts, run))
    finally:
        srv.stop()
        text = srv.error_log()
        for line in log_summary(text):
            log(f"  log: {line}")
        # mpm_event's "reached MaxRequestWorkers" notices are expected at 16 connections
        if [ln for ln in log_summary(text) if "AH00484" not in ln and "AH10159" not in ln]:
            # the whole error log next to the results (*.log: not committed)
            copy = log.path.with_name(f"{log.path.stem}-{name}-error.log")
            copy.write_text(text)
            log(f"  error log: {copy}")
    return rows


def meta(opts: Options, run: Path) -> list[str]:
    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **CLEAN_ENV)).stdout.strip()
        except OSError:
            return "?"

    so, copy = Path(opts.modpy_so), run / MODPY_COPY
    so_info = (f"{so} built {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(so.stat().st_mtime))}"
               if so.exists() else f"{so} missing")
    if copy.exists():
        so_info += f", sha256 {hashlib.sha256(copy.read_bytes()).hexdigest()[:12]}"
    native = run / "pylib" / "modpy" / "_native.abi3.so"
    so_info += ("; daemon workers: modpy._native, sha256 "
                f"{hashlib.sha256(native.read_bytes()).hexdigest()[:12]}" if native.exists()
                else "; daemon workers: pure-Python loop (pylib/modpy/_native.abi3.so not built)")
    commit = sh("git", "-C", str(REPO), "describe", "--always", "--dirty")
    pkgs = sh("dpkg-query", "-W", "-f", "${Package} ${Version}; ", "libapache2-mod-python", "libapache2-mod-wsgi-py3").strip()
    load = open("/proc/loadavg").read().split()[:3]
    return [
        f"# {time.strftime('%Y-%m-%dT%H:%M:%S%z')}  DUR={opts.dur}s WARM={opts.warm}s wrk -t{opts.threads} "
        f"-c{opts.conns} PIN={int(opts.pin)} SCHED={opts.sched} QUIET={opts.quiet}  {os.cpu_count()} CPUs  loadavg {' '.join(load)}",
        f"# {sh(APACHE2, '-v').splitlines()[0].replace('Server version: ', '')}, mpm_{opts.mpm} "
        f"{'16x1' if opts.mpm == 'prefork' else '2x8'}; {pkgs} python {platform.python_version()} (driver)",
        f"# mod_py {commit}: {so_info}; wrk {(sh('wrk', '-v').split() or ['?', '?'])[1]}",
    ]


def median_rows(rounds: list[list[list[str]]]) -> list[list[str]]:
    """One row per (system, scenario): that of the round with the median req/s, with the
    median CPU us/req of all rounds (each measured separately: a slow moment of the machine
    in one round does not decide the comparison)."""
    out: list[list[str]] = []
    for row in rounds[0]:
        key = (row[0], row[1])
        same = [r for rnd in rounds for r in rnd if (r[0], r[1]) == key]
        if row[1] == "idle" or any(r[2].startswith("FAIL") for r in same):
            out.append(next((r for r in same if r[2].startswith("FAIL")), row))
            continue
        by_rate = sorted(same, key=lambda r: float(r[2]))
        chosen = list(by_rate[(len(by_rate) - 1) // 2])
        cpu = report.COLUMNS.index("cpu_us_req")
        chosen[cpu] = f"{statistics.median(float(r[cpu]) for r in same):.1f}"
        out.append(chosen)
    return out


def write_tsv(path: Path, lines: list[str], rows: list[list[str]]) -> None:
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n" + "\t".join(report.COLUMNS) + "\n")
        fh.writelines("\t".join(row) + "\n" for row in rows)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the Apache instance on the way out
    opts = Options.from_env()
    unknown = [s for s in opts.systems if s not in SYSTEMS]
    if unknown:
        sys.exit(f"unknown system(s) {unknown}; known: {' '.join(SYSTEMS)}")
    opts.results.mkdir(parents=True, exist_ok=True)
    tsv = opts.results / f"{time.strftime('%Y%m%d-%H%M%S')}.tsv"
    log = Log(tsv.with_suffix(".log"))
    run = Path(tempfile.mkdtemp(prefix="modpy-bench-"))
    ok = True
    try:
        prepare(run, opts, log)
        lines = meta(opts, run)
        rounds: list[list[list[str]]] = []
        for n in range(1, opts.rounds + 1):
            # Alternate the order (A B C, C B A, ...) so that a drift of the machine's speed
            # during the run does not favour the systems measured first.
            order = opts.systems if n % 2 else list(reversed(opts.systems))
            rows: dict[str, list[list[str]]] = {}
            for name in order:
                log(f"== {name}" + (f" (round {n} of {opts.rounds})" if opts.rounds > 1 else ""))
                rows[name] = bench_system(SYSTEMS[name], run, opts, log)
                ok = ok and not any(row[2].startswith("FAIL") for row in rows[name])
            rounds.append([row for name in opts.systems for row in rows[name]])
            if opts.rounds > 1:
                write_tsv(tsv.with_name(f"{tsv.stem}-r{n}.tsv"), lines + [f"# round {n} of {opts.rounds}"], rounds[-1])
        if opts.rounds > 1:
            names = ", ".join(f"{tsv.stem}-r{n}.tsv" for n in range(1, opts.rounds + 1))
            lines.append(f"# ROUNDS={opts.rounds}: each row is the round with the median req/s, with the "
                         f"median CPU us/req of the rounds; the rounds: {names}")
            write_tsv(tsv, lines, median_rows(rounds))
            print(report.compare([report.load(tsv.with_name(f"{tsv.stem}-r{n}.tsv"))
                                  for n in range(1, opts.rounds + 1)]), flush=True)
        else:
            write_tsv(tsv, lines, rounds[0])
        print(report.render(tsv), flush=True)
        log(f"results: {tsv}")
    finally:
        if opts.keep or not ok:
            log(f"run directory kept: {run}")
        else:
            shutil.rmtree(run, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
