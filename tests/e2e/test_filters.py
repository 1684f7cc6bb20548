"""PythonOutputFilter / PythonInputFilter end to end, on a real Apache per MPM: the streaming
filter object (mod_python's), the brigade API, static files (small, 16 MiB, 1 GiB), chains with
C filters, mod_filter, streaming responses, failures and client disconnects."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness import Apache, MPMS, free_port, rss_kib, wait_log

APPS = Path(__file__).parent / "apps"
MIB = 1 << 20
PATTERN = b"abcdefghijklmnopqrstuvwxyz012345"  # 32 bytes; upper-cases to a known pattern

CONF = """
PythonPath "sys.path + ['@ROOT@/apps']"
PythonOutputFilter filters::upper UPPER
PythonOutputFilter filters::upper_lines UPPERLINES
PythonOutputFilter filters::one_read_per_call ONEREAD
PythonOutputFilter filters::counting COUNTING
PythonOutputFilter filters::wrap_chunks WRAP
PythonOutputFilter filters::passthrough PASSTHROUGH
PythonOutputFilter filters::disable_after_first DISABLE
PythonOutputFilter filters::raises RAISES
PythonOutputFilter filters::raises_late RAISESLATE
PythonOutputFilter filters::returns_str RETURNSSTR
PythonOutputFilter filters::reads_nothing READSNOTHING
PythonOutputFilter filters::req_info REQINFO
PythonOutputFilter filters::upper_brigade UPPERBB
PythonOutputFilter filters::inspect_types INSPECT
PythonOutputFilter filters::split_insert SPLITINSERT
PythonOutputFilter filters::kept_bucket KEPT
PythonOutputFilter filters::delayed DELAYED
PythonOutputFilter filters::no_such_function NOFUNC
PythonOutputFilter filters::cyclic CYCLIC
PythonInputFilter filters::upper_in UPPERIN
PythonInputFilter filters::count_in COUNTIN
PythonInputFilter filters::raises_in RAISESIN
PythonInputFilter filters::upper_in_brigade UPPERINBB
LimitRequestBody 0


<Location /h>
    SetHandler modpy
</Location>
"""

HANDLER_ROUTES = {
    # path: (handler, output filters, input filters)
    "/h/upper": ("hello", "UPPER", None),
    "/h/lines": ("stream", "UPPERLINES", None),
    "/h/oneread": ("big", "ONEREAD", None),
    "/h/counting": ("big", "COUNTING", None),
    "/h/stream": ("stream", "WRAP", None),
    "/h/slow": ("slow_stream", "UPPER", None),
    "/h/pass": ("big", "PASSTHROUGH", None),
    "/h/disable": ("hello", "DISABLE", None),
    "/h/raises": ("hello", "RAISES", None),
    "/h/raises_buffered": ("hello_buffered", "RAISES", None),
    "/h/raises_ignored": ("hello_ignores_errors", "RAISES", None),
    "/h/raiseslate": ("big", "RAISESLATE", None),
    "/h/returnsstr": ("hello", "RETURNSSTR", None),
    "/h/readsnothing": ("hello", "READSNOTHING", None),
    "/h/reqinfo": ("hello", "REQINFO", None),
    "/h/nofunc": ("hello", "NOFUNC", None),
    "/h/two": ("hello", "UPPER;WRAP", None),
    "/h/delayed": ("stream", "DELAYED", None),
    "/h/bigupper": ("big", "UPPER", None),
    "/h/echo_upper": ("echo", None, "UPPERIN"),
    "/h/echo_count": ("echo", None, "COUNTIN"),
    "/h/echo_raises": ("echo", None, "RAISESIN"),
    "/h/echo_bb": ("echo", None, "UPPERINBB"),
    "/h/count_upper": ("count_body", None, "UPPERIN"),
    "/h/count_count": ("count_body", None, "COUNTIN"),
    "/h/rss": ("rss", None, None),
    "/h/api": ("api_names", None, None),
    "/h/cyclic": ("hello", "CYCLIC", None),
    "/h/gc": ("gc_check", None, None),
}

STATIC_ROUTES = {
    "/static/upper/": "UPPER",
    "/static/bb/": "UPPERBB",
    "/static/inspect/": "INSPECT",
    "/static/passinspect/": "PASSTHROUGH;INSPECT",
    "/static/split/": "SPLITINSERT",
    "/static/kept/": "KEPT",
    "/static/raises/": "RAISES",
    "/static/raiseslate/": "RAISESLATE",
    "/static/returnsstr/": "RETURNSSTR",
    "/static/deflate/": "UPPER;DEFLATE",
    "/static/includes/": "INCLUDES;UPPER",
}


def conf() -> str:
    parts = [CONF]
    for path, (handler, out, inp) in HANDLER_ROUTES.items():
        lines = [f"<Location {path}>", f"    PythonHandler filters::{handler}"]
        if out:
            lines.append(f"    SetOutputFilter {out}")
        if inp:
            lines.append(f"    SetInputFilter {inp}")
        parts.append("\n".join(lines + ["</Location>"]))
    for path, out in STATIC_ROUTES.items():
        parts.append(f"<Location {path}>\n    SetOutputFilter {out}\n</Location>")
        name = path.strip("/").split("/")[1]
        parts.append(f"Alias {path} @ROOT@/htdocs/")
        del name
    # mod_filter: only text/plain goes through the Python filter
    parts.append(
        "<Location /static/provider/>\n"
        "    FilterDeclare PYUP\n"
        '    FilterProvider PYUP UPPER "%{CONTENT_TYPE} =~ m|^text/plain|"\n'
        "    FilterChain PYUP\n"
        "</Location>\nAlias /static/provider/ @ROOT@/htdocs/"
    )
    parts.append('<Location /static/includes/>\n    Options +Includes\n    AddType text/html .shtml\n</Location>')
    # by file extension, in the document root
    parts.append("<Directory @ROOT@/htdocs>\n    AddOutputFilter UPPER .up\n</Directory>")
    return "\n".join(parts)


def m16() -> bytes:
    return PATTERN * (16 * MIB // len(PATTERN))


def make_server(mpm: str, **kw) -> Apache:
    a = Apache(conf(), mpm=mpm, loglevel="info", extra_modules=("deflate", "include", "filter"), **kw)
    shutil.copytree(APPS, a.root / "apps")
    d = a.root / "htdocs"
    (d / "small.txt").write_bytes(b"hello static file\n")
    (d / "m16.txt").write_bytes(m16())
    (d / "page.shtml").write_bytes(b'before <!--#echo var="DOCUMENT_NAME" --> after\n')
    (d / "data.bin").write_bytes(b"binary stays lower\n")
    (d / "shout.up").write_bytes(b"by extension\n")
    return a


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = make_server(request.param)
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    assert "panic" not in log, log[-3000:]
    a.remove()




def get_raw(a: Apache, path: str, headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict, bytes, Exception | None]:
    """Like Apache.get, but a truncated body is returned with the exception instead of raised."""
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        chunks = []
        err = None
        try:
            while True:
                b = r.read(65536)
                if not b:
                    break
                chunks.append(b)
        except (http.client.IncompleteRead, ConnectionError, OSError) as e:
            err = e
        return r.status, dict(r.headers), b"".join(chunks), err
    finally:
        c.close()


# ---- the streaming filter object ----


def test_output_filter_on_handler_output(server: Apache) -> None:
    status, headers, body = server.get("/h/upper")
    assert (status, body) == (200, b"HELLO WORLD\n")


def test_output_filter_on_small_static_file(server: Apache) -> None:
    status, headers, body = server.get("/static/upper/small.txt")
    assert (status, body) == (200, b"HELLO STATIC FILE\n")


@pytest.mark.parametrize("kind", ["upper", "bb"])
def test_16mib_static_file_through_python_filter(server: Apache, kind: str) -> None:
    # mod_python 3.5 answers an empty reply here, with nothing logged.
    status, headers, body = server.get(f"/static/{kind}/m16.txt")
    assert status == 200
    assert len(body) == 16 * MIB
    assert body == m16().upper()


def test_readline_filter(server: Apache) -> None:
    status, _, body = server.get("/h/lines?50")
    assert status == 200
    assert body == b"".join(b"CHUNK %05d\n" % i for i in range(50))


def test_function_called_again_with_the_rest(server: Apache) -> None:
    # one_read_per_call reads 1000 bytes per call: it is called until the brigade is read.
    status, _, body = server.get("/h/oneread?3")
    assert status == 200
    assert body == (PATTERN * (3 * MIB // len(PATTERN))).upper()


def test_ctx_persists_across_calls(server: Apache) -> None:
    status, _, body = server.get("/h/counting?5")
    assert status == 200
    data, _, trailer = body.rpartition(b"\n")
    assert data == PATTERN * (5 * MIB // len(PATTERN))
    info = trailer.decode()
    calls = int(info.split("calls=")[1].split()[0])
    nbytes = int(info.split("bytes=")[1].rstrip("]"))
    assert nbytes == 5 * MIB
    assert calls >= 5  # one call per req.write (flushed), plus the EOS


def test_many_small_flushed_chunks_all_arrive_in_order(server: Apache) -> None:
    n = 2000
    status, _, body = server.get(f"/h/stream?{n}")
    assert status == 200
    # WRAP marks every read: each flushed chunk is its own read, in order.
    assert body == b"".join(b"<chunk %05d\n>" % i for i in range(n))


def test_flushed_chunks_are_not_held_back(server: Apache) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        t0 = time.time()
        c.request("GET", "/h/slow")
        r = c.getresponse()
        first = r.read1(100)
        t_first = time.time() - t0
        rest = r.read()
        t_all = time.time() - t0
    finally:
        c.close()
    assert (first + rest) == b"".join(b"TICK %d\n" % i for i in range(5))
    # The handler sleeps 0.3 s between flushed writes: the first one arrives long before the end.
    assert t_first < 0.5 and t_all > 1.0, (t_first, t_all)


def test_pass_on_and_disable(server: Apache) -> None:
    status, _, body = server.get("/h/pass?2")
    assert status == 200 and body == PATTERN * (2 * MIB // len(PATTERN))
    status, _, body = server.get("/h/disable")
    assert (status, body) == (200, b"HELLO world\n")


def test_filter_sees_request_and_names(server: Apache) -> None:
    status, _, body = server.get("/h/reqinfo")
    assert status == 200
    text, info = body.split(b"\n", 1)[0], json.loads(body.split(b"\n", 1)[1])
    assert text == b"hello world"
    assert info == {"uri": "/h/reqinfo", "name": "REQINFO", "is_input": False,
                    "handler": "filters::req_info", "closed": False}


def test_two_python_filters_chained(server: Apache) -> None:
    status, _, body = server.get("/h/two")
    assert (status, body) == (200, b"<HELLO WORLD\n>")


def test_setaside_brigade_kept_across_calls(server: Apache) -> None:
    status, _, body = server.get("/h/delayed?300")
    assert status == 200
    assert body == b"".join(b"chunk %05d\n" % i for i in range(300))


# ---- chains with C filters, mod_filter ----


def test_python_filter_then_deflate(server: Apache) -> None:
    status, headers, body = server.get("/static/deflate/m16.txt", headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == m16().upper()


def test_includes_then_python_filter(server: Apache) -> None:
    status, _, body = server.get("/static/includes/page.shtml")
    assert (status, body) == (200, b"BEFORE PAGE.SHTML AFTER\n")


def test_add_output_filter_by_extension(server: Apache) -> None:
    assert server.get("/shout.up")[2] == b"BY EXTENSION\n"
    assert server.get("/small.txt")[2] == b"hello static file\n"


def test_filter_provider(server: Apache) -> None:
    status, _, body = server.get("/static/provider/small.txt")
    assert (status, body) == (200, b"HELLO STATIC FILE\n")
    status, _, body = server.get("/static/provider/data.bin")
    assert (status, body) == (200, b"binary stays lower\n")


# ---- the brigade API ----


def test_brigade_filter_sees_file_bucket_and_passes_it_untouched(server: Apache) -> None:
    status, _, body = server.get("/static/inspect/small.txt")
    assert status == 200
    text, _, info = body.partition(b"\n")
    assert text == b"hello static file"
    seen = json.loads(info)
    assert seen[0] == ["FILE", 18]
    assert seen[-1][0] == "EOS"


def test_pass_on_hands_file_buckets_on_as_they_are(server: Apache) -> None:
    # PASSTHROUGH (filter object, pass_on) then INSPECT: the second filter still gets the
    # FILE bucket: nothing was read or copied on the way.
    status, _, body = server.get("/static/passinspect/m16.txt")
    assert status == 200
    data, _, info = body.rpartition(b"\n")
    assert data == m16()
    seen = json.loads(info)
    assert seen[0] == ["FILE", 16 * MIB]


def test_brigade_split_and_insert(server: Apache) -> None:
    status, _, body = server.get("/static/split/small.txt")
    assert (status, body) == (200, b"[start]hello|SPLIT| static file\n")


def test_bucket_kept_past_its_call_cannot_be_used(server: Apache) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        c.request("GET", "/static/kept/small.txt")
        r = c.getresponse()
        assert r.read() == b"hello static file\n"
        c.request("GET", "/static/kept/small.txt")
        r = c.getresponse()
        assert r.status == 200
        assert r.read() == b"hello static file\n[old bucket: RuntimeError]"
    finally:
        c.close()


# ---- failures ----


@pytest.mark.parametrize("path", ["/h/raises", "/static/raises/small.txt"])
def test_exception_in_filter_gives_500_and_traceback(server: Apache, path: str) -> None:
    status, _, body = server.get(path)
    assert status == 500
    assert b"HELLO" not in body
    log = wait_log(server, "ValueError: filter exploded")
    assert f"mod_py: PythonOutputFilter RAISES (filters::raises) failed for {path.rstrip('/')}" in log
    assert 'in raises' in log


@pytest.mark.parametrize("path", ["/h/raises_buffered", "/h/raises_ignored"])
def test_exception_in_filter_500_whatever_the_handler_does(server: Apache, path: str) -> None:
    # The filter fails when the handler's output reaches it: after the handler returned
    # (flush=0 output), or in a write whose error the handler ignores. Either way the EOS that
    # follows turns into Apache's 500.
    status, _, body = server.get(path)
    assert status == 500
    assert b"HELLO" not in body and b"hello" not in body


@pytest.mark.parametrize("path", ["/h/raiseslate?8", "/static/raiseslate/m16.txt"])
def test_exception_after_headers_truncates_response(server: Apache, path: str) -> None:
    status, headers, body, err = get_raw(server, path)
    assert status == 200  # the headers went out before the failure
    assert err is not None, "a failure mid-body must not look like a complete response"
    assert len(body) < 8 * MIB
    wait_log(server, "RuntimeError: filter exploded after")
    # the server is fine afterwards
    assert server.get("/h/upper")[2] == b"HELLO WORLD\n"


def test_wrong_return_type(server: Apache) -> None:
    # A static file comes in one brigade: nothing has gone out when the filter returns.
    status, _, body = server.get("/static/returnsstr/small.txt")
    assert status == 500 and b"hello" not in body
    wait_log(server, "returned 'not a status' (str), not None or an int status")
    # req.write flushes: the first chunk went out before the function returned; the
    # response is cut, never completed.
    status, _, body, err = get_raw(server, "/h/returnsstr")
    assert status == 500 or err is not None, (status, body)


def test_filter_that_reads_nothing(server: Apache) -> None:
    status, _, body = server.get("/h/readsnothing")
    assert status == 500 and b"hello" not in body
    wait_log(server, "returned without reading its input")


def test_missing_filter_function(server: Apache) -> None:
    status, _, _ = server.get("/h/nofunc")
    assert status == 500
    wait_log(server, "AttributeError")


def test_client_disconnects_mid_body(server: Apache) -> None:
    for path in ("/h/bigupper?64", "/static/upper/m16.txt"):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = 0
        while got < 1 * MIB:
            got += len(s.recv(65536))
        s.close()
    time.sleep(0.5)
    for _ in range(5):
        assert server.get("/h/upper")[2] == b"HELLO WORLD\n"


# ---- input filters ----


def test_input_filter_transforms_post_body(server: Apache) -> None:
    status, _, body = server.request("POST", "/h/echo_upper", body=b"post body abc" * 1000)
    assert (status, body) == (200, b"POST BODY ABC" * 1000)


def test_input_filter_changing_length_chunked_body(server: Apache) -> None:
    data = b"x" * 100_000
    status, _, body = server.request(
        "POST", "/h/echo_count", body=iter([data[:50_000], data[50_000:]]),
        headers={"Transfer-Encoding": "chunked"},
    )
    assert (status, body) == (200, data + b"[100000]")


def test_input_filter_changing_length_content_length_body(server: Apache) -> None:
    # Read in chunks until b"", the handler gets all the filter produced (the trailer too);
    # req.read() with no length would stop at the request's Content-Length.
    status, _, body = server.request("POST", "/h/count_count", body=b"y" * 100_000)
    assert status == 200
    assert json.loads(body)["total"] == 100_000 + len(b"[100000]")


def test_input_filter_brigade_api(server: Apache) -> None:
    status, _, body = server.request("POST", "/h/echo_bb", body=b"brigade level" * 5000)
    assert (status, body) == (200, b"BRIGADE LEVEL" * 5000)


def test_input_filter_exception_fails_the_read(server: Apache) -> None:
    status, _, body = server.request("POST", "/h/echo_raises", body=b"secret" * 100)
    assert status == 500
    assert b"secret" not in body
    log = wait_log(server, "KeyError: 'input filter exploded'")
    assert "mod_py: PythonInputFilter RAISESIN (filters::raises_in) failed for /h/echo_raises" in log


# ---- big bodies: exact bytes, RSS flat ----


class RssSampler:
    """Samples the RSS of every child of an Apache while a transfer runs."""

    def __init__(self, a: Apache) -> None:
        self.a = a
        self.peak: dict[int, int] = {}
        self.base: dict[int, int] = {}
        self.stop = threading.Event()
        for pid in a.children():
            self.base[pid] = rss_kib(pid)
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in self.a.children():
                try:
                    self.peak[pid] = max(self.peak.get(pid, 0), rss_kib(pid))
                except (FileNotFoundError, ProcessLookupError):
                    pass
            time.sleep(0.05)

    def __enter__(self) -> "RssSampler":
        self.t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.t.join()

    def growth_kib(self) -> int:
        return max((p - self.base.get(pid, p)) for pid, p in self.peak.items())


def big_server(mpm: str) -> Apache:
    a = make_server(mpm, processes=1, threads=2 if mpm != "prefork" else 1)
    # 1 GiB, sparse but with data at a few places
    f = a.root / "htdocs" / "g1.bin"
    with open(f, "wb") as fh:
        fh.truncate(1 << 30)
        for off in (0, 1 << 29, (1 << 30) - 4096):
            fh.seek(off)
            fh.write(PATTERN * 128)
    a.start()
    # warm up: Python and the filter module loaded in the child before measuring
    assert a.get("/static/upper/small.txt")[0] == 200
    assert a.get("/h/rss")[0] == 200
    return a


def expected_g1_md5() -> str:
    h = hashlib.md5()
    zeros = bytes(MIB)
    patch = (PATTERN * 128).upper()
    for i in range(1024):
        block = bytearray(zeros)
        for off in (0, 1 << 29, (1 << 30) - 4096):
            if i * MIB <= off < (i + 1) * MIB:
                block[off - i * MIB: off - i * MIB + len(patch)] = patch
        h.update(block)
    return h.hexdigest()


@pytest.fixture
def big(mpm: str) -> Iterator[Apache]:
    a = big_server(mpm)
    yield a
    a.stop()
    a.remove()


@pytest.mark.parametrize("kind", ["upper", "bb"])
def test_1gib_static_file_through_filter_rss_flat(big: Apache, kind: str) -> None:
    h = hashlib.md5()
    total = 0
    with RssSampler(big) as rs:
        c = http.client.HTTPConnection("127.0.0.1", big.port, timeout=120)
        c.request("GET", f"/static/{kind}/g1.bin")
        r = c.getresponse()
        assert r.status == 200
        while True:
            b = r.read(MIB)
            if not b:
                break
            total += len(b)
            h.update(b)
        c.close()
    growth = rs.growth_kib()
    print(f"\n1 GiB static file through the Python filter ({kind}, {big.mpm}): child RSS grew {growth} KiB")
    assert total == 1 << 30
    assert h.hexdigest() == expected_g1_md5()
    assert growth < 32 * 1024, growth


def test_1gib_post_through_input_filter_rss_flat(big: Apache) -> None:
    size = 1 << 30
    chunk = PATTERN * (MIB // len(PATTERN))
    expect = hashlib.md5()
    upper = chunk.upper()
    for _ in range(size // MIB):
        expect.update(upper)

    def body():
        for _ in range(size // MIB):
            yield chunk

    status, _, out = big.request("POST", "/h/count_upper", body=body(),
                                 headers={"Content-Length": str(size)}, timeout=180)
    assert status == 200, out
    r = json.loads(out)
    growth = r["peak"] - r["start"]
    print(f"\n1 GiB POST through the Python input filter ({big.mpm}): child RSS grew {growth} KiB")
    assert r["total"] == size
    assert r["md5"] == expect.hexdigest()
    assert growth < 32 * 1024, r


# ---- configuration ----


@pytest.mark.parametrize(
    "body,needle",
    [
        ("PythonOutputFilter mod", "PythonOutputFilter takes two or three arguments"),
        ("PythonOutputFilter 9bad NAME", "PythonOutputFilter: '9bad': '9bad' is not a Python module name"),
        ("PythonInputFilter mod::f-x NAME", "PythonInputFilter: 'mod::f-x': 'f-x' is not a Python function name"),
        ("PythonOutputFilter mod NAME NETWORK", "PythonOutputFilter: 'NETWORK' is not a filter type"),
        ("<Location /x>\nPythonOutputFilter mod NAME\n</Location>", "PythonOutputFilter not allowed in <Location> context"),
        ("PythonConnectionHandler 1x", "PythonConnectionHandler: '1x': '1x' is not a Python module name"),
        ("<Directory />\nPythonConnectionHandler mod\n</Directory>", "PythonConnectionHandler not allowed in <Directory> context"),
    ],
)
def test_bad_filter_directives_fail_configtest(apache: Callable[..., Apache], body: str, needle: str) -> None:
    a = apache(body, start=False)
    r = a.configtest()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert needle in out, out
    assert "Syntax error on line" in out and f"of {a.conf}" in out


def test_filters_survive_graceful_restart(apache: Callable[..., Apache]) -> None:
    body = """
    PythonPath "sys.path + ['@ROOT@/apps']"
    PythonOutputFilter filters::upper UPPER
    <Location /h>
        SetHandler modpy
        PythonHandler filters::hello
        SetOutputFilter UPPER
    </Location>
    """
    a = apache(body, start=False)
    shutil.copytree(APPS, a.root / "apps")
    a.start()
    assert a.get("/h")[2] == b"HELLO WORLD\n"
    # a new filter under a new name, and the old name now on another function
    text = a.conf.read_text().replace(
        "PythonOutputFilter filters::upper UPPER",
        "PythonOutputFilter filters::wrap_chunks UPPER\nPythonOutputFilter filters::upper NEWUPPER",
    ).replace("SetOutputFilter UPPER", "SetOutputFilter NEWUPPER;UPPER")
    a.conf.write_text(text)
    pid_children = set(a.children())
    a.graceful()
    deadline = time.time() + 15
    while time.time() < deadline:
        body_ = a.get("/h")[2]
        if body_ == b"<HELLO WORLD\n>":
            break
        time.sleep(0.2)
    assert body_ == b"<HELLO WORLD\n>", body_
    assert set(a.children()) != pid_children


def test_filter_not_configured_for_this_vhost(apache: Callable[..., Apache]) -> None:
    """A filter declared in one virtual host is unknown in another: the request fails (500)
    and the log says why, rather than passing the data on unfiltered."""
    port = free_port()
    a = apache(
        f"""
        PythonPath "sys.path + ['@ROOT@/apps']"
        Listen 127.0.0.1:{port}
        <VirtualHost 127.0.0.1:{port}>
            PythonOutputFilter filters::upper ONLYHERE
        </VirtualHost>
        <Location /h>
            SetHandler modpy
            PythonHandler filters::hello
            SetOutputFilter ONLYHERE
        </Location>
        """,
        start=False,
    )
    shutil.copytree(APPS, a.root / "apps")
    a.start()
    status, _, body = a.get("/h")
    assert status == 500 and b"hello" not in body
    wait_log(a, "Python filter 'onlyhere' is not configured for this server")


def test_type_stubs_match_the_classes(server: Apache) -> None:
    import ast

    status, _, body = server.get("/h/api")
    assert status == 200
    names = json.loads(body)
    stub = ast.parse((Path(__file__).parents[2] / "pylib/modpy/apache.pyi").read_text())
    declared: dict[str, set[str]] = {}
    top: set[str] = set()
    for node in stub.body:
        if isinstance(node, ast.ClassDef):
            declared[node.name] = {
                n.name if isinstance(n, ast.FunctionDef) else n.target.id  # type: ignore[union-attr]
                for n in node.body
                if isinstance(n, ast.FunctionDef) or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            top.add(node.target.id)
    for cls in ("Filter", "Brigade", "Bucket", "Connection"):
        missing = set(names[cls]) - declared[cls]
        assert not missing, (cls, missing)
        extra = {n for n in declared[cls] - set(names[cls]) if not n.startswith("_")}
        assert not extra, (cls, extra)
    assert set(names["constants"]) <= top, set(names["constants"]) - top
    assert "OSError" in names["APRError"]


CGI = """#!/usr/bin/python3
import sys, time
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n")
sys.stdout.write("first part\\n")
sys.stdout.flush()
time.sleep(2)
sys.stdout.write("second part\\n")
"""


def test_pipe_buckets_from_cgi_do_not_hold_the_gil(apache: Callable[..., Apache]) -> None:
    """mod_cgi's output is PIPE buckets: the Python filter waits for the script without the
    GIL, so another request in the same process runs meanwhile."""
    a = apache(
        """
        PythonPath "sys.path + ['@ROOT@/apps']"
        PythonOutputFilter filters::upper UPPER
        PythonOutputFilter filters::collect COLLECT
        ScriptAlias /cgi/ @ROOT@/cgi/
        ScriptAlias /cgi2/ @ROOT@/cgi/
        <Location /cgi/>
            SetOutputFilter UPPER
        </Location>
        <Location /cgi2/>
            SetOutputFilter COLLECT
        </Location>
        <Location /h>
            SetHandler modpy
            PythonHandler filters::hello
            SetOutputFilter UPPER
        </Location>
        """,
        start=False, processes=1, threads=4, extra_modules=("cgi",),
    )
    shutil.copytree(APPS, a.root / "apps")
    (a.root / "cgi").mkdir()
    (a.root / "cgi" / "slow.py").write_text(CGI)
    (a.root / "cgi" / "slow.py").chmod(0o755)
    a.start()
    assert a.get("/h")[2] == b"HELLO WORLD\n"  # Python loaded in the child
    result: dict[str, object] = {}

    def slow() -> None:
        result["slow"] = a.get("/cgi/slow.py")

    t = threading.Thread(target=slow)
    t0 = time.time()
    t.start()
    time.sleep(0.7)
    status, _, body = a.get("/h")
    t_other = time.time() - t0
    t.join()
    assert (status, body) == (200, b"HELLO WORLD\n")
    assert t_other < 1.8, t_other  # did not wait for the CGI script
    status, _, body = result["slow"]  # type: ignore[misc]
    assert (status, body) == (200, b"FIRST PART\nSECOND PART\n")
    # the brigade API on the same PIPE buckets: held across calls, measured, flattened
    status, _, body = a.get("/cgi2/slow.py")
    assert status == 200
    text, _, info = body.partition(b"[")
    assert text == b"FIRST PART\nSECOND PART\n"
    # mod_cgi's own bucket type, a pipe of unknown length, read without the GIL
    assert info.startswith(b"%d " % len(text)) and b"CGI" in info, info


def test_filter_objects_in_reference_cycles_are_collected(server: Apache) -> None:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)  # one child
    try:
        for _ in range(5):
            c.request("GET", "/h/cyclic")
            r = c.getresponse()
            assert r.read() == b"hello world\n"
        c.request("GET", "/h/gc")
        made, alive = map(int, c.getresponse().read().split())
    finally:
        c.close()
    assert made >= 5 and alive == 0, (made, alive)
