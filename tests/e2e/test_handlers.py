"""PythonHandler end to end: one real Apache per MPM serving tests/e2e/apps/handlers.py."""
from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import Apache, MPMS, wait_log

APPS = Path(__file__).parent / "apps"

CONF = """
PythonPath "sys.path + ['@ROOT@/apps']"
PythonImport preload_mod main_interpreter
<Location /h>
    SetHandler modpy
    PythonOption who world
    PythonOption gone soon
</Location>
<Location /h/opts>
    PythonOption gone
    PythonOption extra 42
</Location>
"""

ROUTES = [
    "hello", "fields", "echo", "echo_chunks", "lines", "count_body", "tables", "status_404",
    "status_teapot", "status_raise", "status_declined", "status_done", "set_status", "boom",
    "returns_none", "returns_str", "logs", "keep", "keep_table", "options", "imported", "syspath",
    "write_flush0", "write_str", "write_bad_type", "redirect", "cleanup", "sendfile", "attr",
    "readonly", "server_return_bad", "read_then_write", "mpm",
]


def conf() -> str:
    parts = [CONF]
    for r in ROUTES:
        parts.append(f"<Location /h/{r}>\n    PythonHandler handlers::{r}\n</Location>")
    parts.append("<Location /h/opts>\n    PythonHandler handlers::options\n</Location>")
    parts.append("<Location /h/dotted>\n    PythonHandler handlers::obj.method\n</Location>")
    parts.append("<Location /h/debug>\n    PythonHandler handlers::boom\n    PythonDebug On\n</Location>")
    parts.append("<Location /hello>\n    SetHandler mod_python\n    PythonHandler handlers::hello\n</Location>")
    parts.append("<Location /h/sendfile>\n    PythonOption file @ROOT@/apps/big.bin\n</Location>")
    parts.append("<Location /h/echo_chunks>\n    PythonOption chunk 777\n</Location>")
    parts.append("<Location /h/nomodule>\n    PythonHandler no_such_module\n</Location>")
    parts.append("<Location /h/syntax>\n    PythonHandler broken_syntax\n</Location>")
    parts.append("<Location /h/importerr>\n    PythonHandler raises_on_import\n</Location>")
    parts.append("<Location /h/nofunc>\n    PythonHandler handlers::no_such_function\n</Location>")
    parts.append("<Location /h/read_then_write>\n    LimitRequestBody 1000\n</Location>")
    parts.append("<Location /nohandler>\n    SetHandler modpy\n</Location>")
    return "\n".join(parts)


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache(conf(), mpm=request.param, loglevel="info")
    shutil.copytree(APPS, a.root / "apps")
    (a.root / "apps" / "big.bin").write_bytes(bytes(range(256)) * 4096 * 3)  # 3 MiB
    a.start()
    yield a
    a.stop()
    log = a.log_text()
    # No child may have crashed during the whole module.
    assert "Segmentation fault" not in log and "exit signal" not in log, log[-3000:]
    a.remove()


def get_json(a: Apache, path: str, **kw) -> dict:
    status, headers, body = a.get(path, **kw)
    assert status == 200, (status, body[:2000], a.log_text()[-2000:])
    return json.loads(body)




def test_hello(server: Apache) -> None:
    status, headers, body = server.get("/h/hello")
    assert (status, body) == (200, b"Hello, World!\n")
    assert headers["Content-Type"] == "text/plain"
    assert headers["Content-Length"] == "14"
    # SetHandler mod_python (old configs) is the same handler.
    assert server.get("/hello")[2] == b"Hello, World!\n"


def test_request_fields(server: Apache) -> None:
    f = get_json(server, "/h/fields/extra/path?a=1&b=%20x", headers={"User-Agent": "tester/1", "X-One": "1"})
    assert f["method"] == "GET" and f["method_number"] == 0
    assert f["uri"] == "/h/fields/extra/path"
    assert f["unparsed_uri"] == "/h/fields/extra/path?a=1&b=%20x"
    assert f["args"] == "a=1&b=%20x"
    assert f["the_request"] == "GET /h/fields/extra/path?a=1&b=%20x HTTP/1.1"
    assert f["protocol"] == "HTTP/1.1" and f["proto_num"] == 1001
    assert f["hostname"] == "127.0.0.1"
    assert f["user_agent"] == "tester/1" and f["headers_in"]["X-One"] == "1"
    assert f["handler"] == "modpy"
    assert f["status"] == 200 and f["header_only"] is False
    assert abs(f["request_time"] - time.time()) < 60
    assert f["main"] is None and f["prev"] is None and f["next"] is None
    assert f["parsed_uri"][6] == "/h/fields/extra/path" and f["parsed_uri"][7] == "a=1&b=%20x"
    assert f["client_ip"] == "127.0.0.1" == f["remote_ip"] == f["local_ip"] == f["useragent_ip"]
    assert f["remote_addr"][0] == "127.0.0.1" and f["remote_addr"][1] > 0
    assert f["local_addr"] == ["127.0.0.1", server.port]
    assert f["server_hostname"] == "127.0.0.1" and f["is_virtual"] is False
    assert f["timeout"] == 30.0
    assert f["construct_url"] == f"http://127.0.0.1:{server.port}/x"
    assert f["is_https"] is False and f["is_initial_req"] is True
    assert f["options"] == {"who": "world", "gone": "soon"}
    assert f["config"]["PythonHandler"] == "handlers::fields"
    assert f["type"] == "Request" and f["module"] == "modpy.apache"
    assert f["log_id"] is None or isinstance(f["log_id"], str)  # set lazily by Apache
    assert f["user"] is None and f["ap_auth_type"] is None


def test_post_echo_8mib(server: Apache) -> None:
    body = bytes(range(256)) * (8 * 4096)
    status, headers, out = server.request("POST", "/h/echo", body=body)
    assert status == 200 and out == body
    assert headers["Content-Length"] == str(len(body))


def test_post_read_in_chunks_and_chunked_request(server: Apache) -> None:
    body = b"abcdefghij" * 100_000
    assert server.request("POST", "/h/echo_chunks", body=body)[2] == body
    # A chunked request body (no Content-Length) is de-chunked for the handler.
    gen = (body[i : i + 65536] for i in range(0, len(body), 65536))
    status, _, out = server.request("POST", "/h/echo", body=gen, headers={"Transfer-Encoding": "chunked"})
    assert status == 200 and out == body


def test_readline(server: Apache) -> None:
    f = get_json(server, "/h/lines", headers={}) if False else None
    status, _, out = server.request("POST", "/h/lines", body=b"line one\nabcdef\nthree\nfour")
    f = json.loads(out)
    assert f == {"first": "line one\n", "second": "abc", "rest": ["def\n", "three\n", "four"]}


def test_tables_multivalued_headers(server: Apache) -> None:
    c = __import__("http.client").client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.putrequest("GET", "/h/tables")
    c.putheader("X-Multi", "first")
    c.putheader("X-Multi", "second")
    c.endheaders()
    r = c.getresponse()
    f = json.loads(r.read())
    # Apache itself merges repeated request headers into one value.
    assert f["getall_x_multi"] == ["first, second"]
    assert f["x_multi_item"] == "first, second"
    assert f["in"] is True and f["not_in"] is False
    assert f["a_all"] == ["1", "2", "3"] and f["a_item"] == ["1", "2", "3"]
    assert f["b"] == "x, y" and f["len_notes"] == 4
    assert f["keys"] == ["a", "a", "A", "b"]
    assert f["get_default"] == "dflt"
    assert f["after_unset"] is False and f["after_del"] is None and f["keyerror"] is True
    assert r.headers.get_all("X-Out") == ["one", "two"]
    assert sorted(r.headers.get_all("Set-Cookie")) == ["a=1", "b=2"]
    c.close()


@pytest.mark.parametrize(
    "path,status",
    [("/h/status_404", 404), ("/h/status_teapot", 410), ("/h/status_raise", 403), ("/h/set_status", 201)],
)
def test_statuses(server: Apache, path: str, status: int) -> None:
    assert server.get(path)[0] == status


def test_status_line_and_done(server: Apache) -> None:
    c = __import__("http.client").client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    c.request("GET", "/h/set_status")
    r = c.getresponse()
    assert (r.status, r.reason, r.headers["Location"], r.read()) == (201, "Made It", "/somewhere", b"created")
    c.close()
    assert server.get("/h/status_done")[0:3:2] == (202, b"accepted")


def test_declined_falls_back_to_apache(server: Apache) -> None:
    # DECLINED lets Apache's default handler run: no file there -> 404.
    assert server.get("/h/status_declined")[0] == 404


def test_exception_gives_500_and_logged_traceback(server: Apache) -> None:
    status, _, body = server.get("/h/boom")
    assert status == 500 and b"boom in handler" not in body
    log = wait_log(server, "ValueError: boom in handler")
    assert "PythonHandler 'handlers::boom' failed for /h/boom" in log
    assert 'in boom' in log and "Traceback (most recent call last):" in log


def test_python_debug_sends_traceback(server: Apache) -> None:
    status, headers, body = server.get("/h/debug")
    assert status == 500
    assert b"ValueError: boom in handler" in body and b"Traceback" in body
    assert headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("path,needle", [
    ("/h/returns_none", "handler 'handlers::returns_none' returned None (NoneType)"),
    ("/h/returns_str", "handler 'handlers::returns_str' returned 'OK' (str)"),
    ("/h/write_bad_type", "TypeError: expected str or bytes, got int"),
    ("/h/nomodule", "ModuleNotFoundError: No module named 'no_such_module'"),
    ("/h/syntax", "SyntaxError"),
    ("/h/importerr", "RuntimeError: failing at import"),
    ("/h/nofunc", "handlers.py' contains no 'no_such_function'"),
    ("/h/server_return_bad", "raised SERVER_RETURN(12345), not apache.OK"),
])
def test_bad_handlers_give_500_and_clear_log(server: Apache, path: str, needle: str) -> None:
    assert server.get(path)[0] == 500
    log = wait_log(server, needle)
    assert f"failed for {path}" in log


def test_sethandler_without_pythonhandler(server: Apache) -> None:
    # As mod_python: declined, so Apache's default handler answers (no file here: 404).
    assert server.get("/nohandler")[0] == 404
    wait_log(server, "no PythonHandler is configured; declined")


def test_logging_reaches_error_log_at_its_level(server: Apache) -> None:
    assert server.get("/h/logs")[2] == b"logged"
    log = wait_log(server, "apache-log-error")
    lines = log.splitlines()

    def line_with(s: str) -> str:
        found = [l for l in lines if s in l]
        assert found, s
        return found[-1]

    assert "[py:info]" in line_with("handlers: info-record /h/logs")
    assert "[py:warn]" in line_with("handlers: warning-record")
    assert "[py:error]" in line_with("handlers: error-record")
    assert "[py:crit]" in line_with("handlers: critical-record")
    assert "debug-record" not in log  # LogLevel info
    assert "[py:error]" in line_with("print-line")
    assert "[py:error]" in line_with("stderr-line")
    assert "[py:notice]" in line_with("req-log-error")
    assert "[py:warn]" in line_with("server-log-warning")
    # Request context: the client address is on request-bound lines.
    assert "[client 127.0.0.1:" in line_with("warning-record")
    assert "[client 127.0.0.1:" in line_with("apache-log-error")


def test_stale_request_raises_runtime_error(server: Apache) -> None:
    # prefork: the second request may land in another child; keep asking on one connection.
    c = __import__("http.client").client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(2):
        c.request("GET", "/h/keep")
        r = c.getresponse()
        body = r.read()
    c.close()
    results = json.loads(body)
    for name in ("uri", "write", "headers_in", "read"):
        assert results[name].startswith("RuntimeError: the request this object wraps has ended"), results
    assert results["alive"] == "False"
    c = __import__("http.client").client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(2):
        c.request("GET", "/h/keep_table")
        body = c.getresponse().read()
    c.close()
    assert body.startswith(b"RuntimeError: the request this object wraps has ended")


def test_python_option(server: Apache) -> None:
    assert get_json(server, "/h/opts") == {"who": "world", "extra": "42"}


def test_python_import_preloads_in_child(server: Apache) -> None:
    f = get_json(server, "/h/imported")
    assert f["preloaded"] is True and f["value"] == "preloaded"
    assert f["pid_at_import"] == f["pid"]  # imported in the child, not the parent


def test_python_home_is_the_built_one(server: Apache) -> None:
    f = get_json(server, "/h/syspath")
    assert f["prefix"] == "/usr" and f["executable"] == "/usr/bin/python3"
    assert str(server.root / "apps") in f["path"]


def test_write_variants(server: Apache) -> None:
    status, _, body = server.get("/h/write_flush0")
    assert status == 200 and body == b"".join(b"%04d\n" % i for i in range(1000))
    assert server.get("/h/write_str")[2] == "héllo".encode()


def test_internal_redirect(server: Apache) -> None:
    assert server.get("/h/redirect")[0:3:2] == (200, b"Hello, World!\n")


def test_register_cleanup(server: Apache) -> None:
    assert server.get("/h/cleanup")[2] == b"ok"
    wait_log(server, "cleanup-ran with-data")


def test_sendfile(server: Apache) -> None:
    status, headers, body = server.get("/h/sendfile")
    assert status == 200 and body == bytes(range(256)) * 4096 * 3


def test_attributes_and_readonly_fields(server: Apache) -> None:
    assert server.get("/h/attr")[2] == b"stored"
    assert server.get("/h/readonly")[2].startswith(b"AttributeError")
    assert server.get("/h/dotted")[2] == b"dotted"


def test_head_request(server: Apache) -> None:
    status, headers, body = server.request("HEAD", "/h/hello")
    assert status == 200 and body == b"" and headers["Content-Length"] == "14"


def test_client_disconnect_mid_body_is_survived(server: Apache) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /h/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
    s.close()
    time.sleep(0.3)
    assert server.get("/h/hello")[0] == 200


def test_body_over_limit_gets_413_and_nothing_appended(server: Apache) -> None:
    assert server.request("POST", "/h/read_then_write", body=b"x" * 500)[2] == b"read ok"
    body = b"y" * 5000
    gen = (body[i : i + 1000] for i in range(0, len(body), 1000))
    status, _, out = server.request("POST", "/h/read_then_write", body=gen, headers={"Transfer-Encoding": "chunked"})
    assert status == 413 and b"JUNK" not in out
    wait_log(server, "read failed: reading the request body failed: Apache has answered the client")


def test_mpm_query(server: Apache) -> None:
    f = get_json(server, "/h/mpm")
    assert f["threaded"] == f["alias"] == (0 if server.mpm == "prefork" else 1)
