"""mod_python.wsgi as 3.5 ran it, under each MPM: SCRIPT_NAME from mod_python.wsgi.base_uri
(else ""), the request as wsgi.input, sys.stderr as wsgi.errors, str response data as Latin-1,
start_response's status and headers, and a URI outside base_uri declined."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from harness import MPMS, Apache, wait_log

APPS = Path(__file__).parent / "mp_apps"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
PythonPath "sys.path + ['@ROOT@/mp_apps']"
<Directory @ROOT@/htdocs/w>
    SetHandler mod_python
    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application mp_wsgi
</Directory>
<Location /based>
    SetHandler mod_python
    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application mp_wsgi::application
    PythonOption mod_python.wsgi.base_uri /based
</Location>
<Location /pot>
    SetHandler mod_python
    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application mp_wsgi::teapot
</Location>
<Location /outside>
    SetHandler mod_python
    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application mp_wsgi
    PythonOption mod_python.wsgi.base_uri /somewhere
</Location>
""", mpm=request.param)
    shutil.copytree(APPS, a.root / "mp_apps")
    (a.root / "htdocs" / "w").mkdir()
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def test_environ(server: Apache) -> None:
    status, headers, body = server.get("/w/some/path?x=1")
    r = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert (r["SCRIPT_NAME"], r["PATH_INFO"], r["QUERY_STRING"]) == ("", "/w/some/path", "x=1")
    assert r["input"] == "mp_request" and r["errors_is_stderr"] is True
    assert r["wsgi.url_scheme"] == "http" and r["version"] == [1, 0]
    wait_log(server, "written_from_mp_wsgi")
    status, _, body = server.request("POST", "/based/x/y", body=b"posted body",
                                     headers={"Content-Type": "text/plain"})
    r = json.loads(body)
    assert (r["SCRIPT_NAME"], r["PATH_INFO"], r["body"]) == ("/based", "/x/y", "posted body")


def test_status_headers_and_str_data(server: Apache) -> None:
    status, headers, body = server.get("/pot")
    assert status == 418 and headers["X-Pot"] == "1"
    assert headers["Content-Type"] == "text/plain; charset=latin-1"
    assert body == b"caf\xe9 short and stout"


def test_uri_outside_base_uri_is_declined(server: Apache) -> None:
    server.get("/outside/x")
    wait_log(server, "does not start with mod_python.wsgi.base_uri ('/somewhere'), declining.")
