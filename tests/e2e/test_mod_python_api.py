"""mod_python 3.5's module-level API and directives under mod_py, each MPM: import_module,
build_cgi_env, server_root, exists_config_define, _apache locks, the table, testhandler,
cgihandler, PythonOptimize, PythonInterpPerDirectory; PythonEnablePdb On refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness import MPMS, Apache, wait_log

APPS = Path(__file__).parent / "mp_apps"


@pytest.fixture(scope="module", params=MPMS)
def server(request: pytest.FixtureRequest) -> Iterator[Apache]:
    a = Apache("""
PythonPath "sys.path + ['@ROOT@/mp_apps']"
PythonOptimize On
<Location /m/info>
    SetHandler mod_python
    PythonHandler mp_misc::info
</Location>
<Location /m/test>
    SetHandler mod_python
    PythonHandler mod_python.testhandler
    PythonOption shown here
</Location>
<Directory @ROOT@/htdocs/cgi>
    SetHandler mod_python
    PythonHandler mod_python.cgihandler
    PythonInterpPerDirectory On
</Directory>
""", mpm=request.param)
    shutil.copytree(APPS, a.root / "mp_apps")
    shutil.copytree(APPS / "cgi", a.root / "htdocs" / "cgi")
    a.start()
    yield a
    a.stop()
    assert "exit signal" not in a.log_text()
    a.remove()


def test_module_api(server: Apache) -> None:
    status, _, body = server.get("/m/info")
    assert status == 200, (body, server.log_text()[-2000:])
    r = json.loads(body)
    assert r["helper"] == "from extra" and r["method"] == "GET" and r["script_name"] == "/m/info"
    assert r["server_root"] == str(server.root)
    assert (r["foreground"], r["nope"]) == (True, False)
    assert r["version"] == "3.5.0" and r["same_objects"] is True
    assert r["optimize"] == 1 and r["table"] == "1"


def test_testhandler_and_cgihandler(server: Apache) -> None:
    status, _, body = server.get("/m/test")
    assert status == 200 and b"mod_python is working" in body and b"shown" in body
    status, headers, body = server.request("POST", "/cgi/hello.py?x=1", body=b"posted data")
    assert status == 200 and headers["X-Cgi"] == "yes" and headers["Content-Type"].startswith("text/plain")
    assert body == b"cgi says hello to x=1\nbody: posted data\n"
    wait_log(server, "mod_py runs one interpreter per process")


def test_enable_pdb_refused(apache: Callable[..., Apache]) -> None:
    a = apache("PythonEnablePdb On\n", start=False)
    r = a.configtest()
    assert r.returncode != 0 and "PythonEnablePdb: On is not supported" in r.stderr
    assert apache("PythonEnablePdb Off\n", start=False).configtest().returncode == 0
