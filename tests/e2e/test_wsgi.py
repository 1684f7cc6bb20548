"""WSGI embedded mode end to end: one real Apache per MPM serving tests/e2e/wsgi_apps/apps.py,
every well-behaved app wrapped in wsgiref.validate; plus a side-by-side environ comparison with
mod_wsgi 4.9 under the same configuration."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Apache, MPMS, wait_log

APPS = Path(__file__).parent / "wsgi_apps"
GOOD = ["hello", "env", "echo", "echo_lines", "count", "stream", "big", "empty", "status_custom",
        "no_content", "cookies", "redirect", "file_wrapper", "closing", "exc_before_output",
        "write_callable", "auth_env"]
BAD = ["raises", "raises_after_output", "str_body", "bad_status", "crlf_header", "unicode_header",
       "hop_header", "twice", "short_cl", "short_cl_gen", "long_body", "no_start", "returns_none",
       "file_wrapper_raw"]

SCRIPT = """import sys
sys.path.insert(0, {apps!r})
import apps
{wrap}
"""


def write_scripts(root: Path) -> str:
    apps = root / "wsgi_apps"
    shutil.copytree(APPS, apps)
    scripts = root / "scripts"
    scripts.mkdir()
    conf = [f"<Directory {scripts}>\n    Require all granted\n</Directory>"]
    for name in GOOD + BAD:
        wrap = (f"from wsgiref.validate import validator\napplication = validator(apps.{name})"
                if name in GOOD else f"application = apps.{name}")
        (scripts / f"{name}.wsgi").write_text(SCRIPT.format(apps=str(apps), wrap=wrap))
        conf.append(f"WSGIScriptAlias /wsgi/{name} {scripts}/{name}.wsgi")
    conf.append(f"WSGIScriptAlias /wsgi/auth_on {scripts}/auth_env.wsgi pass-authorization=On")
    conf.append(f"WSGIScriptAlias /wsgi/nochunk {scripts}/echo.wsgi")
    conf.append(f"WSGIScriptAlias /wsgi/missing {scripts}/not_there.wsgi")
    (scripts / "nocallable.wsgi").write_text("app = None\n")
    conf.append(f"WSGIScriptAlias /wsgi/nocallable {scripts}/nocallable.wsgi")
    (scripts / "reload.wsgi").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'v1']\n")
    conf.append(f"WSGIScriptAlias /wsgi/reload {scripts}/reload.wsgi")
    for name, proxies in (("trusted", "127.0.0.1"), ("untrusted", "10.0.0.1")):
        conf.append(f"WSGIScriptAlias /wsgi/proxy_{name} {scripts}/env.wsgi")
        conf.append(f"<Location /wsgi/proxy_{name}>\n    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto\n"
                    f"    WSGITrustedProxies {proxies}\n</Location>")
    conf.append(f"WSGIScriptAliasMatch ^/match/(hello|env) {scripts}/$1.wsgi")
    conf.append(f"WSGIScriptAlias /dir/ {scripts}/")  # a directory of scripts
    conf.append(f"WSGIScriptAlias /nodir {scripts}")  # the same, no trailing slashes
    conf.append("LimitRequestBody 0")
    conf.append("<Location /wsgi>\n    WSGIChunkedRequest On\n</Location>")
    conf.append("<Location /wsgi/nochunk>\n    WSGIChunkedRequest Off\n</Location>")
    return "\n".join(conf)


DAEMON = """
WSGIDaemonProcess wsgitest processes=2 threads=4
WSGIProcessGroup wsgitest
"""


@pytest.fixture(scope="module", params=[(m, mode) for mode in ("embedded", "daemon") for m in MPMS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apache]:
    """The same apps and tests in embedded mode and in daemon mode (one WSGIDaemonProcess
    group of 2 processes x 4 threads for every script)."""
    mpm, mode = request.param
    a = Apache("", mpm=mpm, loglevel="info")
    a.mode = mode  # type: ignore[attr-defined]
    a.conf.write_text(a.conf.read_text() + write_scripts(a.root) + "\n" + (DAEMON if mode == "daemon" else ""))
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    # wsgiref.validate found nothing wrong in any good app.
    assert "AssertionError" not in log and "WSGIWarning" not in log, log[-3000:]
    a.remove()




def env_of(a: Apache, path: str = "/wsgi/env", **kw) -> dict:
    status, _, body = a.get(path, **kw)
    assert status == 200, body
    return json.loads(body)


def test_hello(server: Apache) -> None:
    status, headers, body = server.get("/wsgi/hello")
    assert (status, body, headers["Content-Length"]) == (200, b"Hello, World!\n", "14")


def test_environ(server: Apache) -> None:
    e = env_of(server, "/wsgi/env//x//y?q=1&r=%20", headers={"X-Foo": "1", "Cookie": "a=1"})
    assert e["SCRIPT_NAME"] == "/wsgi/env" and e["PATH_INFO"] == "/x/y"
    assert e["QUERY_STRING"] == "q=1&r=%20" and e["REQUEST_METHOD"] == "GET"
    assert e["REQUEST_URI"] == "/wsgi/env//x//y?q=1&r=%20"
    assert e["HTTP_X_FOO"] == "1" and e["HTTP_COOKIE"] == "a=1"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1" and e["SERVER_PORT"] == str(server.port)
    assert e["wsgi.url_scheme"] == "http" and e["wsgi.version"] == [1, 0]
    daemon = server.mode == "daemon"  # type: ignore[attr-defined]
    # Daemon mode: the group's threads (4) decide, not the MPM.
    assert e["wsgi.multithread"] is (daemon or server.mpm != "prefork")
    assert e["wsgi.input_terminated"] is True and e["wsgi.run_once"] is False
    assert e["mod_wsgi.process_group"] == ("wsgitest" if daemon else "")
    assert e["mod_wsgi.callable_object"] == "application"
    assert e["mod_wsgi.application_group"] == f"127.0.0.1:{server.port}|/wsgi/env"
    assert "PATH" not in e and "HTTP_AUTHORIZATION" not in e
    assert e["SCRIPT_FILENAME"].endswith("/scripts/env.wsgi")


def test_script_alias_match(server: Apache) -> None:
    assert server.get("/match/hello")[2] == b"Hello, World!\n"
    e = env_of(server, "/match/env/x/y")
    assert e["SCRIPT_NAME"] == "/match/env" and e["PATH_INFO"] == "/x/y"
    assert e["SCRIPT_FILENAME"].endswith("/scripts/env.wsgi")
    assert server.get("/match/other")[0] == 404


def test_trusted_proxies(server: Apache) -> None:
    h = {"X-Forwarded-For": "1.1.1.1, 2.2.2.2", "X-Forwarded-Proto": "https", "X-Real-IP": "6.6.6.6"}
    # No trust directives: everything passes through unchanged.
    e = env_of(server, "/wsgi/env", headers=h)
    assert e["REMOTE_ADDR"] == "127.0.0.1" and e["HTTP_X_FORWARDED_FOR"] == "1.1.1.1, 2.2.2.2"
    assert e["wsgi.url_scheme"] == "http" and e["HTTP_X_REAL_IP"] == "6.6.6.6"
    # From a trusted proxy: the rightmost untrusted address is the client; https is believed.
    e = env_of(server, "/wsgi/proxy_trusted", headers=h)
    assert e["REMOTE_ADDR"] == "2.2.2.2" and e["HTTP_X_FORWARDED_FOR"] == "2.2.2.2"
    assert e["wsgi.url_scheme"] == "https" and e["REQUEST_SCHEME"] == "http"
    assert "HTTP_X_REAL_IP" not in e  # another client-address header cannot be slipped in
    # From an untrusted peer: the headers of trusted categories are removed (CVE-2022-2255).
    e = env_of(server, "/wsgi/proxy_untrusted", headers=h)
    assert e["REMOTE_ADDR"] == "127.0.0.1" and e["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in e and "HTTP_X_FORWARDED_PROTO" not in e and "HTTP_X_REAL_IP" not in e


def test_post_echo_and_chunked(server: Apache) -> None:
    body = os.urandom(8 << 20)
    status, headers, out = server.request("POST", "/wsgi/echo", body=body)
    assert status == 200 and out == body
    gen = (body[i : i + 100_000] for i in range(0, 1_000_000, 100_000))
    status, _, out = server.request("POST", "/wsgi/echo", body=gen, headers={"Transfer-Encoding": "chunked"})
    assert status == 200 and out == body[:1_000_000]
    status, _, out = server.request("POST", "/wsgi/echo_lines", body=b"a\nbb\nccc")
    assert json.loads(out) == ["a\n", "bb\n", "ccc"]


def test_chunked_refused_when_off(server: Apache) -> None:
    gen = (b"x" * 10 for _ in range(3))
    status, _, _ = server.request("POST", "/wsgi/nochunk", body=gen, headers={"Transfer-Encoding": "chunked"})
    assert status == 411
    wait_log(server, "chunked request bodies are not enabled (WSGIChunkedRequest Off)")


def test_1gib_upload_rss_flat(server: Apache) -> None:
    size = 1 << 30
    chunk = b"\x01" * (1 << 20)
    status, _, out = server.request("POST", "/wsgi/count", body=(chunk for _ in range(1024)),
                                    headers={"Content-Length": str(size)}, timeout=120)
    r = json.loads(out)
    assert status == 200 and r["total"] == size
    assert r["peak"] - r["start"] < 16 * 1024, r


def test_1gib_download(server: Apache) -> None:
    from harness import rss_kib

    def children_rss() -> int:
        return sum(rss_kib(p) for p in server.children())

    server.get("/wsgi/big?mib=1")  # warm every child up to its working size
    before = children_rss()
    peak = before
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    c.request("GET", "/wsgi/big?mib=1024")
    r = c.getresponse()
    total = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        total += len(b)
        if total % (128 << 20) == 0:
            peak = max(peak, children_rss())
    c.close()
    assert r.status == 200 and total == 1 << 30
    # Streaming 1 GiB through the generator keeps the children's memory flat.
    assert peak - before < 32 * 1024, (before, peak)


def test_response_shapes(server: Apache) -> None:
    status, headers, body = server.get("/wsgi/stream")
    assert body == b"".join(b"chunk %03d\n" % i for i in range(200))
    assert headers["Transfer-Encoding"] == "chunked"
    status, headers, body = server.get("/wsgi/empty")
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.request("GET", "/wsgi/status_custom")
    r = c.getresponse()
    assert (r.status, r.reason, r.read()) == (299, "Odd Code", b"odd")
    assert r.headers["X-Latin"].encode("latin-1") == b"caf\xe9"
    c.close()
    status, headers, body = server.get("/wsgi/no_content")
    assert status == 204 and body == b""
    status, headers, body = server.get("/wsgi/cookies", headers={"Cookie": "x=1"})
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"] and body == b"x=1"
    status, headers, _ = server.get("/wsgi/redirect")
    assert status == 302 and headers["Location"] == "/wsgi/hello"
    assert server.get("/wsgi/write_callable")[2] == b"via write; then iterable"
    status, headers, body = server.request("HEAD", "/wsgi/hello")
    assert status == 200 and body == b"" and headers["Content-Length"] == "14"


def test_file_wrapper_sends_the_file(server: Apache) -> None:
    data = (APPS / "data.bin").read_bytes()[10:]
    # Wrapped in wsgiref.validate, the wrapper is iterated in blocks.
    status, headers, body = server.get("/wsgi/file_wrapper")
    assert status == 200 and body == data
    # Returned as is, the file goes to Apache as a file bucket with its length, and Apache's
    # byte-range support applies (as with mod_wsgi).
    status, headers, body = server.get("/wsgi/file_wrapper_raw")
    assert status == 200 and body == data and headers["Content-Length"] == str(len(data))
    if server.mode == "daemon":  # type: ignore[attr-defined]
        # Daemon mode streams the file from the worker (sendfile into the socket); Apache's
        # byte-range filter needs the whole body in one brigade, so a Range gets it all.
        status, headers, body = server.get("/wsgi/file_wrapper_raw", headers={"Range": "bytes=1000-1999"})
        assert status == 200 and body == data
        return
    status, headers, body = server.get("/wsgi/file_wrapper_raw", headers={"Range": "bytes=1000-1999"})
    assert status == 206 and body == data[1000:2000]
    assert headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"


def test_exc_info_before_output_replaces_status(server: Apache) -> None:
    status, headers, body = server.get("/wsgi/exc_before_output")
    assert (status, body) == (500, b"handled error") and "X-Gone" not in headers


def test_pass_authorization(server: Apache) -> None:
    h = {"Authorization": "Basic dXNlcjpwdw==", "Proxy-Authorization": "Basic eA=="}
    assert server.get("/wsgi/auth_env", headers=h)[2] == b"none"
    assert server.get("/wsgi/auth_on", headers=h)[2] == b"Basic dXNlcjpwdw=="


def test_close_called_and_client_disconnect(server: Apache) -> None:
    before = server.log_text().count("close() called")
    assert server.get("/wsgi/closing")[2] == b"part 0\npart 1\npart 2\n"
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /wsgi/closing?300 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(100)
    s.close()  # disconnect mid-response: close() is still called, nothing logged as an error
    deadline = time.time() + 10
    while server.log_text().count("close() called") < before + 2 and time.time() < deadline:
        time.sleep(0.1)
    assert server.log_text().count("close() called") >= before + 2
    assert server.get("/wsgi/hello")[0] == 200


def test_client_leaving_mid_upload_is_logged_as_such(server: Apache) -> None:
    """A client that closes the connection part-way through its body: the application's
    read fails with an error that says so (not a timeout), and Apache carries on."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /wsgi/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    time.sleep(0.3)
    s.close()
    wait_log(server, "the client closed the connection before sending the whole body")
    assert "timeout?" not in server.log_text()
    assert server.get("/wsgi/hello")[0] == 200


@pytest.mark.parametrize("name,fault", [
    ("str_body", "response item 0 is str, not bytes"),
    ("bad_status", "status \"OK\" does not start with a three-digit code"),
    ("crlf_header", "header \"X-Evil\" has a value containing CR, LF or NUL"),
    ("unicode_header", "which is not latin-1"),
    ("hop_header", "hop-by-hop header \"Connection\" is not allowed"),
    ("twice", "start_response() called a second time without exc_info"),
    ("no_start", "without calling start_response()"),
    ("returns_none", "which is not an iterable of bytes"),
])
def test_bad_output_gives_500_and_one_line(server: Apache, name: str, fault: str) -> None:
    status, headers, body = server.get(f"/wsgi/{name}")
    assert status == 500 and "injected" not in str(headers)
    log = wait_log(server, fault)
    line = [l for l in log.splitlines() if fault in l][-1]
    assert f"WSGI application '{server.root}/scripts/{name}.wsgi' (application)" in line


def test_exceptions(server: Apache) -> None:
    assert server.get("/wsgi/raises")[0] == 500
    log = wait_log(server, "ValueError: boom in application")
    assert "raises.wsgi' (application) raised an exception:" in log
    # After output began: the response is cut, never presented as complete.
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.request("GET", "/wsgi/raises_after_output")
    r = c.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    c.close()
    wait_log(server, "RuntimeError: failing mid-stream")


def test_content_length_mismatch(server: Apache) -> None:
    # A list body is checked before anything is sent: 500.
    assert server.get("/wsgi/short_cl")[0] == 500
    wait_log(server, "sent 10 bytes, less than its Content-Length of 100")
    # A generator's body is already on its way: the response is cut.
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.request("GET", "/wsgi/short_cl_gen")
    r = c.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    c.close()
    wait_log(server, "sent 12 bytes, less than its Content-Length of 100")
    # HEAD: frameworks keep GET's Content-Length with no body; that is not an error.
    status, headers, body = server.request("HEAD", "/wsgi/short_cl")
    assert status == 200 and body == b""
    status, headers, body = server.get("/wsgi/long_body")
    assert (status, body) == (200, b"four")
    wait_log(server, "wrote more than its Content-Length of 4 bytes")


def test_missing_script_and_callable(server: Apache) -> None:
    assert server.get("/wsgi/missing")[0] == 404
    wait_log(server, "target WSGI script not found or unable to stat")
    assert server.get("/wsgi/nocallable")[0] == 500
    wait_log(server, "does not contain WSGI application 'application'")


def test_script_reloading(server: Apache) -> None:
    for _ in range(4):
        assert server.get("/wsgi/reload")[2] == b"v1"
    p = server.root / "scripts" / "reload.wsgi"
    p.write_text(p.read_text().replace("v1", "v2"))
    st = p.stat()
    os.utime(p, (st.st_atime, st.st_mtime + 5))
    for _ in range(4):
        assert server.get("/wsgi/reload")[2] == b"v2"


@pytest.mark.parametrize("path,headers", [
    ("/wsgi/env/a//b?x=1", {"X-Foo": "1", "X_Foo": "2", "Cookie": "a=1"}),
    ("/wsgi/proxy_trusted", {"X-Forwarded-For": "1.1.1.1, 2.2.2.2", "X-Forwarded-Proto": "https", "X-Real-IP": "6.6.6.6"}),
    ("/wsgi/proxy_untrusted", {"X-Forwarded-For": "1.1.1.1", "X-Forwarded-Proto": "https"}),
    ("/wsgi/auth_on", {"Authorization": "Basic eDp5", "Proxy-Authorization": "Basic eA=="}),
    ("/match/env/x", {}),
    # The SCRIPT_NAME / PATH_INFO split: trailing slash, a bare slash, dot files, and a
    # directory of scripts (split by Apache's directory walk, not by mod_py).
    ("/wsgi/env/a/b/?q", {}),
    ("/wsgi/env/", {}),
    ("/wsgi/env/.x/..y/", {}),
    ("/dir/env.wsgi/x//y/", {}),
    # A directory target without a trailing slash: the rest starts with '/' but the script
    # is in it (mod_py must leave the split to the walk, not make it path_info).
    ("/nodir/env.wsgi/x/y", {}),
    ("/nodir/env.wsgi", {}),
])
def test_same_environ_as_mod_wsgi(path: str, headers: dict[str, str]) -> None:
    """Same config, same request, to mod_wsgi 4.9 and to mod_py: same environ."""
    results = {}
    for system in ("mod_wsgi", "mod_py"):
        a = Apache("", mpm="event", load_modpy=(system == "mod_py"),
                   extra_modules=("wsgi",) if system == "mod_wsgi" else ())
        a.conf.write_text(a.conf.read_text() + write_scripts(a.root) + "\nWSGIApplicationGroup %{GLOBAL}\n")
        with a:
            status, _, body = a.get(path, headers=headers)
            assert status == 200, (system, body)
            results[system] = json.loads(body) if body.startswith(b"{") else {"body": body.decode()}
            results[system]["_port"] = a.port
            results[system]["_root"] = str(a.root)
        a.remove()
    w, p = results["mod_wsgi"], results["mod_py"]
    for e in (w, p):
        port, root = str(e.pop("_port")), e.pop("_root")
        for k, v in list(e.items()):
            if isinstance(v, str):
                e[k] = v.replace(port, "PORT").replace(root, "ROOT")
    differences = {k: (w.get(k), p.get(k)) for k in set(w) | set(p) if w.get(k) != p.get(k)}
    # Known differences: each module adds its own name to SERVER_SOFTWARE; apache.version is
    # the httpd each module was built against; PATH_TRANSLATED (a whole subrequest per request
    # with path info) is left out by mod_py, as by mod_wsgi 6.
    if "SERVER_SOFTWARE" in differences:
        assert (differences.pop("SERVER_SOFTWARE")[1] or "").startswith("Apache/2.4")
    differences.pop("apache.version", None)
    if "PATH_TRANSLATED" in differences:
        assert differences.pop("PATH_TRANSLATED")[1] is None
    assert differences == {}, differences
