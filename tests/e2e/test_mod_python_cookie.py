"""mod_python.Cookie as 3.5 code uses it: plain, signed and marshal cookies through a real
Apache under each MPM; forged and truncated signed cookies are not believed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from harness import MPMS, Apache

APPS = Path(__file__).parent / "mp_apps"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
PythonPath "sys.path + ['@ROOT@/mp_apps']"
<Location /c>
    SetHandler mod_python
</Location>
<Location /c/set>
    PythonHandler mp_cookie::set_cookies
</Location>
<Location /c/read>
    PythonHandler mp_cookie::read_cookies
</Location>
""", mpm=request.param)
    shutil.copytree(APPS, a.root / "mp_apps")
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def read(a: Apache, cookie: str) -> dict:
    status, _, body = a.get("/c/read", headers={"Cookie": cookie})
    assert status == 200, (body, a.log_text()[-2000:])
    return json.loads(body)


def test_round_trip(server: Apache) -> None:
    status, headers, _ = server.get("/c/set")
    sets = headers.get_all("Set-Cookie") or []
    assert status == 200 and len(sets) == 3
    assert sets[0] == "plain=hello; path=/; httponly"
    assert headers["Cache-Control"] == 'no-cache="set-cookie"'
    jar = "; ".join(s.split(";")[0] for s in sets)
    r = read(server, jar)
    assert r["plain"]["plain"] == "hello"
    assert r["signed_ok"]["signed"] is True and r["signed_value"] == "alice"
    assert r["data"] == {"user": "alice", "n": [1, 2]}


def test_forged_and_truncated_signed_cookies_are_not_believed(server: Apache) -> None:
    _, headers, _ = server.get("/c/set")
    cookies = dict(s.split(";")[0].split("=", 1) for s in headers.get_all("Set-Cookie") or [])
    signed, data = cookies["signed"], cookies["data"]
    forged = signed[:32] + "mallory"                 # new value, old signature
    truncated = signed[:20]
    flipped = data[:-2] + ("A" if data[-2] != "A" else "B") + data[-1]
    r = read(server, f"signed={forged}; data={flipped}")
    assert r["signed_ok"]["signed"] is False and r["signed_value"] is None and r["data"] is None
    r = read(server, f"signed={truncated}")
    assert r["signed_ok"]["signed"] is False
    r = read(server, "signed=; data=")
    assert r["signed_value"] is None and r["data"] is None
