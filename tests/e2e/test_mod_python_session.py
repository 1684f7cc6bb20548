"""mod_python.Session as 3.5 code uses it: a FileSession login kept by a SignedCookie, under
each MPM (sessions cross processes: they live in files); forged cookies and session ids with
path characters get a new, empty session and a log line, never another file."""
from __future__ import annotations

import json
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
PythonPath "sys.path + ['@ROOT@/mp_apps']"
PythonOption mod_python.file_session.database_directory @ROOT@/sessions
<Location /s>
    SetHandler mod_python
</Location>
""" + "".join(f"<Location /s/{n}>\n    PythonHandler mp_session::{n}\n</Location>\n"
              for n in ("login", "whoami", "logout", "unsigned")) + """
<LocationMatch ^/s/scoped/>
    PythonOption mod_python.session.application_path /s/scoped
    PythonOption mod_python.session.application_domain example.test
</LocationMatch>
<Location /s/scoped/in>
    PythonHandler mp_session::unsigned
</Location>
<Location /s/scoped/out>
    PythonHandler mp_session::logout
</Location>
<Location /s/dbm>
    PythonHandler mp_session::dbm_counter
    PythonOption mod_python.session.session_type DbmSession
    PythonOption mod_python.dbm_session.database_filename @ROOT@/sessions/sessions.dbm
</Location>
""", mpm=request.param)
    shutil.copytree(APPS, a.root / "mp_apps")
    (a.root / "sessions").mkdir()
    (a.root / "sessions").chmod(0o1777)
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def cookie_of(headers) -> str:
    c = SimpleCookie()
    for h in headers.get_all("Set-Cookie") or []:
        c.load(h)
    return c["pysid"].value


def whoami(a: Apache, cookie: str | None) -> dict:
    status, _, body = a.get("/s/whoami", headers={"Cookie": f"pysid={cookie}"} if cookie else {})
    assert status == 200, (body, a.log_text()[-2000:])
    return json.loads(body)


def test_login_session_across_requests(server: Apache) -> None:
    status, headers, sid = server.get("/s/login?user=alice")
    assert status == 200
    cookie = cookie_of(headers)
    assert cookie.endswith(sid.decode()) and len(cookie) == 64  # signature + id
    for visits in (1, 2, 3, 4):  # served by any child of any process
        r = whoami(server, cookie)
        assert (r["user"], r["new"], r["visits"]) == ("alice", False, visits)
    assert whoami(server, None)["new"] is True
    server.get("/s/logout", headers={"Cookie": f"pysid={cookie}"})
    assert whoami(server, cookie)["user"] is None


@pytest.mark.parametrize("forged,logged", [
    ("0" * 32 + "../../../../etc/passwd", "ignored an incorrectly signed pysid cookie"),
    ("deadbeef" * 4, "ignored an incorrectly signed pysid cookie"),
    ("x" * 70, "ignored an incorrectly signed pysid cookie"),
])
def test_forged_session_cookies(server: Apache, forged: str, logged: str) -> None:
    r = whoami(server, forged)
    assert r["user"] is None and r["new"] is True and len(r["sid"]) == 32
    wait_log(server, logged)
    assert not any("passwd" in p.name for p in (server.root / "sessions").rglob("*"))


def test_unsigned_session_ids_are_checked(server: Apache) -> None:
    status, headers, body = server.get("/s/unsigned")
    assert body == b"new"
    sid = cookie_of(headers)
    assert server.get("/s/unsigned", headers={"Cookie": f"pysid={sid}"})[2] == b"old"
    for bad in ("../../../../tmp/x", "..%2f..%2fetc", "ABCDEF" * 6):
        assert server.get("/s/unsigned", headers={"Cookie": f"pysid={bad}"})[2] == b"new"
    wait_log(server, "ignored a malformed session id")


def test_cookie_path_and_domain_options(server: Apache) -> None:
    # 3.5's shape: every attribute is name=value (no httponly), lower-case names; invalidate()
    # expires the cookie with the same path and domain, or the client would keep it.
    status, headers, _ = server.get("/s/scoped/in")
    setcookie = headers["Set-Cookie"]
    parts = dict(p.split("=") for p in setcookie.split("; "))
    assert status == 200 and len(parts["pysid"]) == 32
    assert parts["path"] == "/s/scoped" and parts["domain"] == "example.test"
    _, headers, _ = server.get("/s/scoped/out", headers={"Cookie": f"pysid={parts['pysid']}"})
    gone = (headers.get_all("Set-Cookie") or [""])[-1]
    assert "; path=/s/scoped; domain=example.test; expires=Thu, 01-Jan-1970 00:00:00 GMT" in gone


def test_dbm_session_shared_by_the_children(server: Apache) -> None:
    status, headers, body = server.get("/s/dbm")
    assert status == 200, (body, server.log_text()[-2000:])
    first = json.loads(body)
    assert (first["n"], first["type"]) == (1, "DbmSession")
    cookie = cookie_of(headers)
    pids = set()
    for n in range(2, 12):  # whichever child serves it, the count goes on
        r = json.loads(server.get("/s/dbm", headers={"Cookie": f"pysid={cookie}"})[2])
        assert r["n"] == n
        pids.add(r["pid"])
    assert any(p.name.startswith("sessions.dbm") for p in (server.root / "sessions").iterdir())
