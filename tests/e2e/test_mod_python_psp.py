"""mod_python.psp as 3.5 sites use it (AddHandler mod_python .psp), under each MPM: text,
expressions, loops by indentation, includes, comments, the form, a session, errors."""
from __future__ import annotations

import shutil
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Iterator

import pytest

from harness import MPMS, Apache, wait_log

APPS = Path(__file__).parent / "mp_apps"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
PythonOption mod_python.file_session.database_directory @ROOT@/sessions
<Directory @ROOT@/htdocs/psp>
    AddHandler mod_python .psp
    PythonHandler mod_python.psp
</Directory>
""", mpm=request.param)
    shutil.copytree(APPS / "psp", a.root / "htdocs" / "psp")
    (a.root / "sessions").mkdir()
    (a.root / "sessions").chmod(0o1777)
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def test_page(server: Apache) -> None:
    status, headers, body = server.get("/psp/page.psp?name=Ada")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<p>included header</p>" in text and "<h1>Hello Ada</h1>" in text
    assert [line for line in text.splitlines() if line.startswith("<li>")] == [
        "<li>item 0</li>", "<li>item 1</li>", "<li>item 2</li>"]
    assert "comment" not in text and "<%" not in text
    assert "<h1>Hello nobody</h1>" in server.get("/psp/page.psp")[2].decode()


def test_session_in_a_page(server: Apache) -> None:
    status, headers, body = server.get("/psp/counter.psp")
    assert body.strip() == b"hits=1"
    c = SimpleCookie()
    c.load(headers["Set-Cookie"])
    cookie = {"Cookie": f"pysid={c['pysid'].value}"}
    assert server.get("/psp/counter.psp", headers=cookie)[2].strip() == b"hits=2"
    assert server.get("/psp/counter.psp", headers=cookie)[2].strip() == b"hits=3"


def test_errors(server: Apache) -> None:
    assert server.get("/psp/broken.psp")[0] == 500
    wait_log(server, "ValueError: psp page exploded")
    assert server.get("/psp/missing.psp")[0] == 404


def test_error_page(server: Apache) -> None:
    # The error page runs after the output so far, gets sys.exc_info() as `exception` and the
    # page's own session (not a second one, which would wait for the first one's lock); the
    # session is saved once, after the error page.
    status, headers, body = server.get("/psp/with_error_page.psp")
    assert status == 200, body
    assert body.split() == [b"before", b"error", b"page:", b"KeyError", b"'no", b"such", b"thing'", b"tries=11"]
    c = SimpleCookie()
    c.load(headers["Set-Cookie"])
    body = server.get("/psp/with_error_page.psp", headers={"Cookie": f"pysid={c['pysid'].value}"})[2]
    assert body.split()[-1] == b"tries=22"
