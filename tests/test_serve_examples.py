"""The examples that scripts/serve runs (examples/*.py, examples/examples.conf), in a real Apache
under each MPM: every page answers as its docstring says."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "e2e"))
from harness import MPMS, Apache  # noqa: E402

EXAMPLES = HERE.parent / "examples"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    conf = (EXAMPLES / "examples.conf").read_text().replace("@EXAMPLES@", str(EXAMPLES))
    a = Apache(conf, mpm=request.param, loglevel="info")
    a.start()
    try:
        yield a
    finally:
        a.stop()


def _check(a: Apache, status: int, expected: int, body: bytes) -> None:
    assert status == expected, f"{status}: {body[:2000]!r}\n--- error log ---\n{a.log_text()[-3000:]}"


def test_hello(server: Apache) -> None:
    status, headers, body = server.get("/hello")
    _check(server, status, 200, body)
    assert body == b"Hello, world!\n"
    assert headers["Content-Type"].startswith("text/plain")


def test_request_info(server: Apache) -> None:
    status, headers, body = server.get("/info/extra/path?a=1&b=2", headers={"X-Demo": "demo-value"})
    _check(server, status, 200, body)
    text = body.decode()
    assert headers["Content-Type"].startswith("text/html")
    assert "GET /info/extra/path?a=1&amp;b=2 HTTP/1.1" in text
    assert "<th>X-Demo</th><td>demo-value</td>" in text
    assert "<th>args</th><td>a=1&amp;b=2</td>" in text


def test_form_get_and_post(server: Apache) -> None:
    status, _, body = server.get("/form")
    _check(server, status, 200, body)
    assert b"<form" in body
    status, _, body = server.request(
        "POST", "/form", body=b"name=Ada+L%C3%B6w&lang=Python&empty=",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _check(server, status, 200, body)
    text = body.decode()
    assert "You sent 3 field(s)" in text
    assert "<b>name</b> = Ada Löw" in text
    assert "<b>lang</b> = Python" in text
    status, _, body = server.request(
        "POST", "/form", body=b"x" * 1000, headers={"Content-Type": "application/octet-stream"}
    )
    _check(server, status, 200, body)
    assert b"You sent 1000 byte(s)" in body


def test_options_and_logging(server: Apache) -> None:
    status, _, body = server.get("/options")
    _check(server, status, 200, body)
    text = body.decode()
    assert text.startswith("Hello from PythonOption\nHello from PythonOption\n\n")
    assert "  repeat = 2" in text
    log = server.log_text()
    assert "examples.options: serving /options with 2 option(s)" in log, log[-3000:]
    assert "options example: greeting='Hello from PythonOption'" in log, log[-3000:]


def test_index_is_not_python(server: Apache) -> None:
    # outside the <Location>s Apache serves files as usual
    (server.root / "htdocs" / "index.html").write_text("plain\n")
    status, _, body = server.get("/index.html")
    _check(server, status, 200, body)
    assert body == b"plain\n"


def test_wsgi_daemon_example(server: Apache) -> None:
    status, headers, body = server.get("/wsgi")
    _check(server, status, 200, body)
    text = body.decode()
    assert "process group <b>examples</b>" in text
    pid = int(text.split("pid ")[1].split(",")[0])
    assert pid not in server.children()  # served by the daemon process, not an Apache child
    status, _, body = server.request("POST", "/wsgi", body=b"name=daemon",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    _check(server, status, 200, body)
    assert "<li>name = daemon</li>" in body.decode()
